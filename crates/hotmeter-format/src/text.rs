//! Prometheus text exposition formats 0.0.4 and 1.0.0, and the encoder
//! they share with OpenMetrics 0.0.1 and 1.0.0 ([`crate::openmetrics`]).
//!
//! Owns: turning a [`hotmeter::Registry`] walk into exposition bytes:
//! `# HELP`/`# TYPE` once per family, escaped label values, shortest
//! round-trip floats spelled `+Inf`/`-Inf`/`NaN`, cumulative histogram
//! buckets ending in `le="+Inf"`, summaries as `quantile` series. Writes
//! into a caller-owned buffer and allocates nothing per series. Must not:
//! hold any lock a recording thread could wait on (it only reads snapshots).
//!
//! UTF-8 names: text 1.0.0 is 0.0.4 plus names outside the legacy set,
//! quoted when the scraper allows UTF-8 (`{"my.metric",label="v"}`,
//! `# TYPE "my.metric" gauge`, `"label.name"="v"`) and escaped by its
//! scheme otherwise; 0.0.4 always escapes with `underscores`. Whether a
//! family needs any of this is decided once per family
//! ([`Desc::names_are_legacy`]): a family of legacy names takes exactly the
//! path it took before, the cached series prefixes and the `counters()`
//! run included; only families with UTF-8 names go the slower way.
//!
//! Spec: <https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format>

use hotmeter::Registry;
use hotmeter::expose::{
    CounterRun, Desc, EscapingScheme, Labels, MetricType, Value, Visitor, escape_label_value, write_f64,
    write_label_set,
};
use hotmeter::name::{is_legacy_label_name, is_legacy_metric_name};

use crate::names::FamilyNames;
use crate::negotiate::{ExpositionFormat, Negotiated};

/// Appends the Prometheus text format of everything in `registry` to `out`.
///
/// ```
/// let registry = hotmeter::Registry::new();
/// let c = registry.counter("jobs_total", "Jobs run.")?;
/// c.inc_by(3);
/// let mut out = Vec::new();
/// hotmeter_format::encode_text(&registry, &mut out);
/// assert_eq!(
///     String::from_utf8(out).unwrap(),
///     "# HELP jobs_total Jobs run.\n# TYPE jobs_total counter\njobs_total 3\n"
/// );
/// # Ok::<(), hotmeter::RegistryError>(())
/// ```
pub fn encode_text(registry: &Registry, out: &mut Vec<u8>) {
    registry.collect(&mut Encoder::new(out, Format::Text, EscapingScheme::Underscores));
}

/// Appends `chosen`'s text format (see [`negotiate`](crate::negotiate)) of
/// everything in `registry` to `out`, and returns what it wrote, to name
/// in `Content-Type`: `chosen` itself for the four text formats; text
/// 0.0.4 for protobuf, which this crate's text encoders do not write.
///
/// ```
/// use hotmeter::{NameValidation, Registry};
/// use hotmeter::expose::EscapingScheme;
/// use hotmeter_format::{ExpositionFormat::Text100, Negotiated, encode_negotiated};
/// let registry = Registry::builder().name_validation(NameValidation::Utf8).build()?;
/// registry.gauge("queue.depth", "Jobs waiting.")?.set(3.0);
/// let mut out = Vec::new();
/// encode_negotiated(&registry, Negotiated::new(Text100, EscapingScheme::AllowUtf8), &mut out);
/// let text = String::from_utf8(out).unwrap();
/// assert!(text.ends_with("# HELP \"queue.depth\" Jobs waiting.\n# TYPE \"queue.depth\" gauge\n{\"queue.depth\"} 3.0\n"));
/// let mut out = Vec::new();
/// encode_negotiated(&registry, Negotiated::new(Text100, EscapingScheme::Values), &mut out);
/// assert!(String::from_utf8(out).unwrap().ends_with("U__queue_2e_depth 3.0\n"));
/// # Ok::<(), hotmeter::RegistryError>(())
/// ```
pub fn encode_negotiated(registry: &Registry, chosen: Negotiated, out: &mut Vec<u8>) -> Negotiated {
    let format = match chosen.format {
        ExpositionFormat::Text100 | ExpositionFormat::Text004 => Format::Text,
        ExpositionFormat::OpenMetrics100 | ExpositionFormat::OpenMetrics001 => Format::OpenMetrics,
        _ => {
            let fallback = Negotiated::default();
            encode_text(registry, out);
            return fallback;
        }
    };
    let mut encoder = Encoder::new(out, format, chosen.escaping);
    encoder.created = format == Format::OpenMetrics && registry.created_samples();
    registry.collect(&mut encoder);
    if format == Format::OpenMetrics {
        out.extend_from_slice(b"# EOF\n");
    }
    chosen
}

/// Which text dialect an [`Encoder`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// Prometheus text 0.0.4 and 1.0.0 (the same syntax; 1.0.0 may quote
    /// UTF-8 names).
    Text,
    /// OpenMetrics text 1.0.0 and 0.0.1 (the same syntax for everything
    /// this encoder writes; 1.0.0 may quote UTF-8 names).
    OpenMetrics,
}

/// A [`Visitor`] that writes one of the text formats.
pub(crate) struct Encoder<'a> {
    out: &'a mut Vec<u8>,
    format: Format,
    /// How names outside the legacy set are written.
    escaping: EscapingScheme,
    /// OpenMetrics only, when the registry asks for it: a `_created` sample
    /// after each counter, histogram and summary.
    pub(crate) created: bool,
    /// The current family's metric and label names as written; when all
    /// are legacy, the quoting state below is unused and the cached
    /// prefixes are exact.
    names: FamilyNames,
    /// The current family's name (escaped) is quoted inside the braces.
    quote_name: bool,
    /// The current family's label names as written (escaped, or quoted),
    /// concatenated; name `i` ends at `label_ends[i]`. Families with UTF-8
    /// names only.
    label_names: Vec<u8>,
    label_ends: Vec<usize>,
    /// The current family's sample name stem (for OpenMetrics counters, the
    /// name without `_total`).
    stem_end: usize,
    kind: MetricType,
    /// Whether the family's main sample (a counter's or gauge's value) is
    /// named exactly as the registered family name.
    main_sample_is_family_name: bool,
    /// The `le` values of the last histogram layout seen, formatted.
    le: LeCache,
    /// The current histogram series' `name_bucket{labels,le="`.
    bucket_prefix: Vec<u8>,
}

/// Formatted `le` label values of the last bucket layout seen (compared bit
/// for bit: the bounds are finite, and `0.0` and `-0.0` are spelt apart).
#[derive(Default)]
struct LeCache {
    bounds: Vec<f64>,
    /// Per bucket, `+Inf` last: the rest of a bucket line up to its value
    /// (`0.005"} `), padded, and its length. A float takes at most 24
    /// bytes, so every entry fits.
    padded: Vec<([u8; LE_PADDED], usize)>,
}

/// How many bytes of a counter run's prefixes are copied at once.
const PREFIX_CHUNK: usize = 64;

/// Room for a bucket's `le` value and `"} `.
const LE_PADDED: usize = 32;

/// Room for a histogram series' `name_bucket{labels,le="` copied without a
/// call to `memcpy`; a longer one is copied as it is.
const PREFIX_PADDED: usize = 96;

impl<'a> Encoder<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>, format: Format, escaping: EscapingScheme) -> Self {
        Self {
            out,
            format,
            escaping,
            created: false,
            names: FamilyNames::default(),
            quote_name: false,
            label_names: Vec::new(),
            label_ends: Vec::new(),
            stem_end: 0,
            kind: MetricType::Gauge,
            main_sample_is_family_name: false,
            le: LeCache::default(),
            bucket_prefix: Vec::new(),
        }
    }

    /// Writes one sample line. `extra` is a label the format adds (`le`,
    /// `quantile`) with its value already formatted.
    fn sample_line(&mut self, suffix: &str, labels: &Labels<'_>, extra: Option<(&str, &[u8])>, value: Num) {
        let out = &mut *self.out;
        // Fast path: the sample is named as the family, so the series' cached
        // `name{labels} ` is the whole prefix.
        if self.main_sample_is_family_name
            && suffix.len() == self.names.name().len() - self.stem_end
            && extra.is_none()
            && let Some(prefix) = labels.rendered_sample_prefix()
        {
            out.extend_from_slice(prefix);
            write_num(out, value);
            out.push(b'\n');
            return;
        }
        let open = self.series_open(suffix, labels);
        let out = &mut *self.out;
        if let Some((name, bound)) = extra {
            out.push(if open { b',' } else { b'{' });
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"=\"");
            out.extend_from_slice(bound);
            out.extend_from_slice(b"\"}");
        } else if open {
            out.push(b'}');
        }
        out.push(b' ');
        write_num(out, value);
        out.push(b'\n');
    }
}

impl Encoder<'_> {
    /// Writes a sample's name and its label set, open (`name{a="x"` with
    /// no closing brace, or just `name`), and returns whether a brace is
    /// open.
    fn series_open(&mut self, suffix: &str, labels: &Labels<'_>) -> bool {
        let stem = &self.names.name()[..self.stem_end];
        let out = &mut *self.out;
        if self.names.is_legacy() {
            out.extend_from_slice(stem.as_bytes());
            out.extend_from_slice(suffix.as_bytes());
            // The label set, open: `{a="x",b="y"` (cached per series by the core).
            let start = out.len();
            match labels.rendered() {
                Some(rendered) => out.extend_from_slice(rendered),
                None => write_label_set(out, labels),
            }
            return out.len() > start;
        }
        // UTF-8 names: `{"my.metric_sum",a="x"` or `my_metric_sum{"a.b"="x"`.
        if self.quote_name {
            out.extend_from_slice(b"{\"");
            escape_label_value(out, stem);
            out.extend_from_slice(suffix.as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(stem.as_bytes());
            out.extend_from_slice(suffix.as_bytes());
        }
        let mut open = self.quote_name;
        let mut start = 0;
        for ((_, value), &end) in labels.iter().zip(&self.label_ends) {
            out.push(if open { b',' } else { b'{' });
            open = true;
            out.extend_from_slice(&self.label_names[start..end]);
            out.extend_from_slice(b"=\"");
            escape_label_value(out, value);
            out.push(b'"');
            start = end;
        }
        open
    }

    /// The family name as `# HELP`/`# TYPE`/`# UNIT` write it: bare, or
    /// quoted when it is a UTF-8 name the scraper allows.
    fn write_family_name(&mut self, end: usize) {
        let name = &self.names.name()[..end];
        if self.quote_name {
            self.out.push(b'"');
            escape_label_value(self.out, name);
            self.out.push(b'"');
        } else {
            self.out.extend_from_slice(name.as_bytes());
        }
    }

    /// Decides, once per family, how its names are written.
    fn names_for(&mut self, desc: &Desc) {
        self.names.set(desc, self.escaping);
        if self.names.is_legacy() {
            self.quote_name = false;
            return;
        }
        self.quote_name = !is_legacy_metric_name(self.names.name());
        self.label_names.clear();
        self.label_ends.clear();
        for written in self.names.labels() {
            if is_legacy_label_name(written) {
                self.label_names.extend_from_slice(written.as_bytes());
            } else {
                self.label_names.push(b'"');
                escape_label_value(&mut self.label_names, written);
                self.label_names.push(b'"');
            }
            self.label_ends.push(self.label_names.len());
        }
    }
}

/// Bytes every text sample line can take without growing the buffer mid
/// line: a `u64`'s 20 digits.
const U64_DIGITS: usize = 20;

/// `"00"` to `"99"`, two bytes each.
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Appends `v` in decimal. The digits are written in place behind one
/// fixed-size extension: copying a formatter's buffer of varying length
/// costs a call to `memcpy` for a few bytes, on every line of a scrape.
#[inline(always)]
fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let len = v.checked_ilog10().map_or(1, |l| l as usize + 1);
    let start = out.len();
    out.extend_from_slice(&[b'0'; U64_DIGITS]);
    out.truncate(start + len);
    let digits = &mut out[start..];
    let mut end = len;
    while v >= 100 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        digits[end - 2..end].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
        end -= 2;
    }
    if v >= 10 {
        let pair = v as usize * 2;
        digits[end - 2..end].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        digits[end - 1] = b'0' + v as u8;
    }
}

/// Appends `bytes` (at most `N` of them) with one fixed-size copy of
/// `padded`, which holds them followed by anything: the same bytes as
/// `extend_from_slice(bytes)` without a call to `memcpy`.
#[inline]
fn push_padded<const N: usize>(out: &mut Vec<u8>, padded: &[u8; N], len: usize) {
    let start = out.len();
    out.extend_from_slice(padded);
    out.truncate(start + len);
}

#[inline]
fn write_num(out: &mut Vec<u8>, value: Num) {
    match value {
        Num::U(v) => push_u64(out, v),
        Num::I(v) => out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
        Num::F(v) => write_f64(out, v),
    }
}

#[derive(Clone, Copy)]
enum Num {
    U(u64),
    I(i64),
    F(f64),
}

impl Visitor for Encoder<'_> {
    fn family(&mut self, desc: &Desc) {
        self.kind = desc.kind;
        self.names_for(desc);
        self.stem_end = self.names.name().len();
        // OpenMetrics names a counter family without `_total`; its sample
        // gets the suffix back.
        let family_end = match (self.format, desc.kind) {
            (Format::OpenMetrics, MetricType::Counter) => {
                let stem = self.names.name().strip_suffix("_total").unwrap_or(self.names.name());
                self.stem_end = stem.len();
                stem.len()
            }
            _ => self.names.name().len(),
        };
        // The counter sample is stem + `_total` in OpenMetrics: the family
        // name itself when it was registered with `_total`.
        // (The cached prefix spells the registered names: exact only for
        // a family of legacy names.)
        self.main_sample_is_family_name = self.names.is_legacy()
            && match (self.format, desc.kind) {
                (Format::OpenMetrics, MetricType::Counter) => desc.name.ends_with("_total"),
                (_, MetricType::Counter | MetricType::Gauge) => true,
                _ => false,
            };
        if !desc.help.is_empty() {
            self.out.extend_from_slice(b"# HELP ");
            self.write_family_name(family_end);
            self.out.push(b' ');
            escape_help(self.out, &desc.help, self.format);
            self.out.push(b'\n');
        }
        self.out.extend_from_slice(b"# TYPE ");
        self.write_family_name(family_end);
        self.out.push(b' ');
        self.out.extend_from_slice(desc.kind.as_str().as_bytes());
        self.out.push(b'\n');
        if self.format == Format::OpenMetrics
            && let Some(unit) = &desc.unit
            // OpenMetrics requires the family name to end in `_<unit>`.
            && self.names.name()[..family_end].strip_suffix(unit.as_str()).is_some_and(|rest| rest.ends_with('_'))
        {
            self.out.extend_from_slice(b"# UNIT ");
            self.write_family_name(family_end);
            self.out.push(b' ');
            self.out.extend_from_slice(unit.as_str().as_bytes());
            self.out.push(b'\n');
        }
    }

    fn size_hint(&mut self, bytes: usize) {
        self.out.reserve(bytes);
    }

    fn reads_created(&self) -> bool {
        self.created
    }

    fn counters(&mut self, run: &CounterRun<'_>) {
        if !self.main_sample_is_family_name || self.created {
            for i in 0..run.len() {
                self.sample(&run.labels(i), &Value::Counter(run.value(i)));
            }
            return;
        }
        // The floor: a copy of each prefix, its value's digits, a newline.
        // The prefixes lie end to end: a short one is copied as the fixed
        // `PREFIX_CHUNK` bytes from its start (the next prefixes' bytes
        // beyond it are cut off again), without a call to `memcpy`.
        let out = &mut *self.out;
        out.reserve(run.prefix_bytes() + run.len() * (U64_DIGITS + 1) + PREFIX_CHUNK);
        let all = run.prefixes();
        let mut at = 0;
        for (prefix, v) in run.iter() {
            let chunk = all.get(at..at + PREFIX_CHUNK).and_then(|c| <&[u8; PREFIX_CHUNK]>::try_from(c).ok());
            match chunk {
                Some(chunk) if prefix.len() <= PREFIX_CHUNK => push_padded(out, chunk, prefix.len()),
                _ => out.extend_from_slice(prefix),
            }
            at += prefix.len();
            push_u64(out, v);
            out.push(b'\n');
        }
    }

    fn sample(&mut self, labels: &Labels<'_>, value: &Value<'_>) {
        self.sample_lines(labels, value);
        if self.created
            && let Some(nanos) = labels.created_unix_nanos()
        {
            // `<name>_created{labels} <seconds>`, after the point's other samples.
            let seconds = (nanos / 1_000_000_000) as f64 + (nanos % 1_000_000_000) as f64 / 1e9;
            self.sample_line("_created", labels, None, Num::F(seconds));
        }
    }
}

impl Encoder<'_> {
    /// Every sample line of one series but `_created`.
    fn sample_lines(&mut self, labels: &Labels<'_>, value: &Value<'_>) {
        match *value {
            Value::Counter(v) => {
                let suffix = if self.format == Format::OpenMetrics { "_total" } else { "" };
                self.sample_line(suffix, labels, None, Num::U(v));
            }
            Value::TracedCounter { total, exemplar } => {
                let om = self.format == Format::OpenMetrics;
                self.sample_line(if om { "_total" } else { "" }, labels, None, Num::U(total));
                if let (true, Some(e)) = (om, exemplar) {
                    // Before the line's newline: `name_total 5 # {trace_id="..."} 1 ts`.
                    self.out.pop();
                    write_exemplar(self.out, &e);
                    self.out.push(b'\n');
                }
            }
            Value::Gauge(v) => self.sample_line("", labels, None, Num::F(v)),
            Value::FloatCounter(v) => {
                let suffix = if self.format == Format::OpenMetrics { "_total" } else { "" };
                self.sample_line(suffix, labels, None, Num::F(v));
            }
            Value::IntGauge(v) => self.sample_line("", labels, None, Num::I(v)),
            Value::Histogram { bounds, counts, sum, count, exemplars } => {
                self.histogram(labels, bounds, counts, sum, count, exemplars);
            }
            Value::NativeHistogram { native, bounds, counts, exemplars } => {
                // Text formats cannot carry exponential buckets: the classic
                // ones kept alongside, or else one `+Inf` bucket (as
                // client_golang writes it: OpenMetrics requires a histogram
                // to end in `+Inf`), `_sum` and `_count`.
                if bounds.is_empty() {
                    self.histogram(labels, &[], &[native.count], native.sum, native.count, &[]);
                } else {
                    self.histogram(labels, bounds, counts, native.sum, native.count, exemplars);
                }
            }
            Value::Summary { quantiles, sum, count } => {
                for &(q, v) in quantiles {
                    let mut text = Vec::with_capacity(24);
                    write_f64(&mut text, q);
                    self.sample_line("", labels, Some(("quantile", &text)), Num::F(v));
                }
                self.sample_line("_sum", labels, None, Num::F(sum));
                self.sample_line("_count", labels, None, Num::U(count));
            }
        }
    }
}

impl Encoder<'_> {
    /// A classic histogram's bucket lines, `_sum` and `_count`.
    fn histogram(
        &mut self,
        labels: &Labels<'_>,
        bounds: &[f64],
        counts: &[u64],
        sum: f64,
        count: u64,
        exemplars: &[Option<hotmeter::Exemplar>],
    ) {
        // A family's series share their bounds: format them once.
        let mut le = std::mem::take(&mut self.le);
        // Compared bit for bit: `-0.0 == 0.0`, but they are spelt apart.
        if le.padded.is_empty()
            || le.bounds.len() != bounds.len()
            || le.bounds.iter().zip(bounds).any(|(a, b)| a.to_bits() != b.to_bits())
        {
            le.bounds.clear();
            le.bounds.extend_from_slice(bounds);
            le.padded.clear();
            let mut text = Vec::with_capacity(LE_PADDED);
            for &b in bounds.iter().chain(std::iter::once(&f64::INFINITY)) {
                text.clear();
                write_f64(&mut text, b);
                text.extend_from_slice(b"\"} ");
                let mut padded = [0u8; LE_PADDED];
                padded[..text.len()].copy_from_slice(&text);
                le.padded.push((padded, text.len()));
            }
        }
        // `name_bucket{labels,le="` once per series, then per bucket:
        // that prefix, the cached bound, the count.
        let mut prefix = std::mem::take(&mut self.bucket_prefix);
        prefix.clear();
        // The series' name and labels go into the prefix buffer, not the output.
        std::mem::swap(self.out, &mut prefix);
        let open = self.series_open("_bucket", labels);
        std::mem::swap(self.out, &mut prefix);
        prefix.extend_from_slice(if open { b",le=\"" } else { b"{le=\"" });
        let padded_prefix = (prefix.len() <= PREFIX_PADDED).then(|| {
            let mut padded = [0u8; PREFIX_PADDED];
            padded[..prefix.len()].copy_from_slice(&prefix);
            padded
        });
        // Room for every bucket line, so no line grows the buffer.
        self.out.reserve(counts.len() * (prefix.len().max(PREFIX_PADDED) + LE_PADDED + U64_DIGITS + 1));
        let mut cumulative = 0u64;
        // OpenMetrics 1.0 carries exemplars on bucket lines; text 0.0.4 cannot.
        let exemplars = if self.format == Format::OpenMetrics { exemplars } else { &[] };
        for (i, (&c, (le_text, le_len))) in counts.iter().zip(&le.padded).enumerate() {
            cumulative += c;
            let out = &mut *self.out;
            match &padded_prefix {
                Some(padded) => push_padded(out, padded, prefix.len()),
                None => out.extend_from_slice(&prefix),
            }
            push_padded(out, le_text, *le_len);
            push_u64(out, cumulative);
            if let Some(Some(e)) = exemplars.get(i) {
                write_exemplar(out, e);
            }
            out.push(b'\n');
        }
        self.le = le;
        self.bucket_prefix = prefix;
        self.sample_line("_sum", labels, None, Num::F(sum));
        self.sample_line("_count", labels, None, Num::U(count));
    }
}

/// ` # {trace_id="..."} value timestamp`: an OpenMetrics exemplar.
fn write_exemplar(out: &mut Vec<u8>, e: &hotmeter::Exemplar) {
    out.extend_from_slice(b" # {trace_id=\"");
    hotmeter::expose::escape_label_value(out, e.trace_id.as_str());
    out.extend_from_slice(b"\"} ");
    write_f64(out, e.value);
    out.push(b' ');
    // Milliseconds are what Prometheus keeps of an exemplar's time.
    write_f64(out, (e.timestamp * 1e3).round() / 1e3);
}

/// HELP escaping: `\` and line feed in the text format; OpenMetrics
/// escapes `"` too, exactly as label values are escaped.
fn escape_help(out: &mut Vec<u8>, help: &str, format: Format) {
    if format == Format::OpenMetrics {
        return hotmeter::expose::escape_label_value(out, help);
    }
    for (i, part) in help.split('\n').enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\\n");
        }
        for (j, piece) in part.split('\\').enumerate() {
            if j > 0 {
                out.extend_from_slice(b"\\\\");
            }
            out.extend_from_slice(piece.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: f64) -> String {
        let mut out = Vec::new();
        write_f64(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn floats() {
        assert_eq!(f(f64::NAN), "NaN");
        assert_eq!(f(f64::INFINITY), "+Inf");
        assert_eq!(f(f64::NEG_INFINITY), "-Inf");
        assert_eq!(f(0.005), "0.005");
        assert_eq!(f(1.0), "1.0");
        assert_eq!(f(-2.5), "-2.5");
        assert_eq!(f(1e-9), "1e-9");
        assert_eq!(f(0.1 + 0.2).parse::<f64>().unwrap(), 0.1 + 0.2);
    }

    #[test]
    fn integers_are_written_as_display_writes_them() {
        let mut values = vec![0, u64::MAX, u64::MAX - 1];
        for k in 0..20u32 {
            let p = 10u64.pow(k);
            values.extend([p - 1, p, p + 1, p.saturating_mul(5)]);
        }
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.extend([x, x >> (x % 64)]);
        }
        let mut out = b"x".to_vec();
        let mut expected = b"x".to_vec();
        for v in values {
            push_u64(&mut out, v);
            out.push(b' ');
            expected.extend_from_slice(format!("{v} ").as_bytes());
        }
        assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(expected).unwrap());
    }

    /// The longest bounds a float can spell fill their padded slot, label
    /// sets longer than the padded copies take the plain copy, and both
    /// write what a plain formatter writes.
    #[test]
    fn longest_bounds_and_label_sets_are_written_whole() {
        let longest = [-1.234_567_890_123_456_7e-300, -2.2250738585072014e-308, 1.797_693_134_862_315_7e308];
        for v in longest {
            let mut text = Vec::new();
            write_f64(&mut text, v);
            assert!(text.len() + 3 <= LE_PADDED, "{v:e} spelt in {} bytes", text.len());
        }
        let r = hotmeter::Registry::new();
        let long = "v".repeat(150);
        let h = r
            .labeled_family("t_seconds", "T.", &["k"], move || {
                hotmeter::Histogram::new(hotmeter::Buckets::new(longest).unwrap())
            })
            .unwrap();
        let c = r.labeled_family("t_total", "T.", &["k"], hotmeter::Counter::new).unwrap();
        for (i, key) in ["a", &long[..50], &long[..70], &long].into_iter().enumerate() {
            h.with(&[key], |h| h.observe(i as f64)).unwrap();
            c.with(&[key], |c| c.inc_by(u64::MAX - i as u64)).unwrap();
        }
        let mut out = Vec::new();
        encode_text(&r, &mut out);
        let text = String::from_utf8(out).unwrap();
        let mut expected = String::new();
        for key in ["a", &long[..50], &long[..70], &long] {
            let i = ["a", &long[..50], &long[..70], &long].iter().position(|k| *k == key).unwrap() as u64;
            expected.push_str(&format!("t_total{{k=\"{key}\"}} {}\n", u64::MAX - i));
        }
        assert!(text.contains(&expected), "{text}");
        for (i, key) in ["a", &long[..50], &long[..70], &long].into_iter().enumerate() {
            let mut lines = String::new();
            for (j, le) in ["-1.2345678901234568e-300", "-2.2250738585072014e-308", "1.7976931348623157e308", "+Inf"]
                .into_iter()
                .enumerate()
            {
                lines.push_str(&format!("t_seconds_bucket{{k=\"{key}\",le=\"{le}\"}} {}\n", u64::from(j >= 2)));
            }
            lines.push_str(&format!("t_seconds_sum{{k=\"{key}\"}} {}.0\nt_seconds_count{{k=\"{key}\"}} 1\n", i));
            assert!(text.contains(&lines), "{key}: {text}");
        }
    }

    /// A family whose first series has many more buckets than the rest
    /// must not have every series reserved at the first one's size (one
    /// such family once asked for 50 GB): the buffer a scrape leaves is
    /// within three times what it wrote (the estimate allows 40 bytes a line for
    /// the suffix, bound and value; growth by doubling allows two).
    #[test]
    fn a_scrape_reserves_about_what_it_writes_when_series_differ() {
        use std::sync::atomic::{AtomicBool, Ordering};
        static BIG: AtomicBool = AtomicBool::new(false);
        let r = hotmeter::Registry::new();
        let h = r
            .register(
                ("t_seconds", "T."),
                hotmeter::StringFamily::with_limit(&["k"], 10_000, || {
                    let bounds: Vec<f64> =
                        if BIG.load(Ordering::Relaxed) { (1..=5_000).map(f64::from).collect() } else { vec![1.0] };
                    hotmeter::Histogram::new(hotmeter::Buckets::new(bounds).unwrap())
                }),
            )
            .unwrap();
        BIG.store(true, Ordering::Relaxed);
        h.with(&["a"], |h| h.observe(1.0)).unwrap();
        BIG.store(false, Ordering::Relaxed);
        for i in 0..5_000 {
            h.with(&[&format!("b{i}")], |h| h.observe(1.0)).unwrap();
        }
        for scrape in 0..3 {
            let mut out = Vec::new();
            encode_text(&r, &mut out);
            assert!(out.capacity() <= 3 * out.len(), "scrape {scrape}: {} reserved for {}", out.capacity(), out.len());
        }
    }

    /// Bucket layouts that compare equal as floats but are spelt apart
    /// (`0.0`, `-0.0`) each get their own `le` text (found in review).
    #[test]
    fn a_negative_zero_bound_is_spelt_as_such_after_a_zero_one() {
        let r = hotmeter::Registry::new();
        let _a = r.histogram("a_seconds", "A.", hotmeter::Buckets::new([0.0, 1.0]).unwrap()).unwrap();
        let _b = r.histogram("b_seconds", "B.", hotmeter::Buckets::new([-0.0, 1.0]).unwrap()).unwrap();
        let mut out = Vec::new();
        encode_text(&r, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("a_seconds_bucket{le=\"0.0\"} 0\n"), "{text}");
        assert!(text.contains("b_seconds_bucket{le=\"-0.0\"} 0\n"), "{text}");
    }

    #[test]
    fn escaping() {
        let mut out = Vec::new();
        hotmeter::expose::escape_label_value(&mut out, "a\\b\"c\nd");
        assert_eq!(String::from_utf8(out).unwrap(), "a\\\\b\\\"c\\nd");
        let mut out = Vec::new();
        escape_help(&mut out, "say \"hi\"\\\n", Format::Text);
        assert_eq!(String::from_utf8(out).unwrap(), "say \"hi\"\\\\\\n");
        let mut out = Vec::new();
        escape_help(&mut out, "say \"hi\"", Format::OpenMetrics);
        assert_eq!(String::from_utf8(out).unwrap(), "say \\\"hi\\\"");
    }
}
