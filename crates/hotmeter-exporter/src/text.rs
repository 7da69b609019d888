//! Prometheus text exposition format 0.0.4, and the encoder it shares with
//! OpenMetrics 1.0 ([`crate::openmetrics`]).
//!
//! Owns: turning a [`hotmeter::Registry`] walk into exposition bytes:
//! `# HELP`/`# TYPE` once per family, escaped label values, shortest
//! round-trip floats spelled `+Inf`/`-Inf`/`NaN`, cumulative histogram
//! buckets ending in `le="+Inf"`, summaries as `quantile` series. Writes
//! into a caller-owned buffer and allocates nothing per series. Must not:
//! hold any lock a recording thread could wait on (it only reads snapshots).
//!
//! Spec: <https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format>

use hotmeter::{CounterRun, Desc, Labels, MetricType, Registry, Value, Visitor, write_f64, write_label_set};

/// Content type of the Prometheus text format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Appends the Prometheus text format of everything in `registry` to `out`.
///
/// ```
/// let registry = hotmeter::Registry::new();
/// let c = registry.counter("jobs_total", "Jobs run.")?;
/// c.inc_by(3);
/// let mut out = Vec::new();
/// hotmeter_exporter::encode_text(&registry, &mut out);
/// assert_eq!(
///     String::from_utf8(out).unwrap(),
///     "# HELP jobs_total Jobs run.\n# TYPE jobs_total counter\njobs_total 3\n"
/// );
/// # Ok::<(), hotmeter::RegistryError>(())
/// ```
pub fn encode_text(registry: &Registry, out: &mut Vec<u8>) {
    registry.collect(&mut Encoder::new(out, Format::Text));
}

/// Which text dialect an [`Encoder`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// Prometheus text 0.0.4.
    Text,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

/// A [`Visitor`] that writes one of the text formats.
pub(crate) struct Encoder<'a> {
    out: &'a mut Vec<u8>,
    format: Format,
    /// The current family's sample name stem (for OpenMetrics counters, the
    /// name without `_total`).
    stem_end: usize,
    name: String,
    kind: MetricType,
    /// Whether the family's main sample (a counter's or gauge's value) is
    /// named exactly as the registered family name.
    main_sample_is_family_name: bool,
    /// The `le` values of the last histogram layout seen, formatted.
    le: LeCache,
    /// The current histogram series' `name_bucket{labels,le="`.
    bucket_prefix: Vec<u8>,
}

/// Formatted `le` label values of the last bucket layout seen (the bounds
/// are finite, so comparing them as floats is exact).
#[derive(Default)]
struct LeCache {
    bounds: Vec<f64>,
    text: Vec<u8>,
    ends: Vec<usize>,
}

impl<'a> Encoder<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>, format: Format) -> Self {
        Self {
            out,
            format,
            stem_end: 0,
            name: String::new(),
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
            && suffix.len() == self.name.len() - self.stem_end
            && extra.is_none()
            && let Some(prefix) = labels.rendered_sample_prefix()
        {
            out.extend_from_slice(prefix);
            write_num(out, value);
            out.push(b'\n');
            return;
        }
        out.extend_from_slice(&self.name.as_bytes()[..self.stem_end]);
        out.extend_from_slice(suffix.as_bytes());
        // The label set, open: `{a="x",b="y"` (cached per series by the core).
        let start = out.len();
        match labels.rendered() {
            Some(rendered) => out.extend_from_slice(rendered),
            None => write_label_set(out, labels),
        }
        let open = out.len() > start;
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

#[inline]
fn write_num(out: &mut Vec<u8>, value: Num) {
    match value {
        Num::U(v) => out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
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
        self.name.clear();
        self.name.push_str(&desc.name);
        self.stem_end = self.name.len();
        // OpenMetrics names a counter family without `_total`; its sample
        // gets the suffix back.
        let family_end = match (self.format, desc.kind) {
            (Format::OpenMetrics, MetricType::Counter) => {
                let stem = desc.name.strip_suffix("_total").unwrap_or(&desc.name);
                self.stem_end = stem.len();
                stem.len()
            }
            _ => self.name.len(),
        };
        // The counter sample is stem + `_total` in OpenMetrics: the family
        // name itself when it was registered with `_total`.
        self.main_sample_is_family_name = match (self.format, desc.kind) {
            (Format::OpenMetrics, MetricType::Counter) => desc.name.ends_with("_total"),
            (_, MetricType::Counter | MetricType::Gauge) => true,
            _ => false,
        };
        let family = &self.name[..family_end];
        let out = &mut *self.out;
        if !desc.help.is_empty() {
            out.extend_from_slice(b"# HELP ");
            out.extend_from_slice(family.as_bytes());
            out.push(b' ');
            escape_help(out, &desc.help, self.format);
            out.push(b'\n');
        }
        out.extend_from_slice(b"# TYPE ");
        out.extend_from_slice(family.as_bytes());
        out.push(b' ');
        out.extend_from_slice(desc.kind.as_str().as_bytes());
        out.push(b'\n');
        if self.format == Format::OpenMetrics
            && let Some(unit) = &desc.unit
            // OpenMetrics requires the family name to end in `_<unit>`.
            && family.strip_suffix(unit.as_str()).is_some_and(|rest| rest.ends_with('_'))
        {
            out.extend_from_slice(b"# UNIT ");
            out.extend_from_slice(family.as_bytes());
            out.push(b' ');
            out.extend_from_slice(unit.as_str().as_bytes());
            out.push(b'\n');
        }
    }

    fn size_hint(&mut self, bytes: usize) {
        self.out.reserve(bytes);
    }

    fn counters(&mut self, run: &CounterRun<'_>) {
        if !self.main_sample_is_family_name {
            for i in 0..run.len() {
                self.sample(&run.labels(i), &Value::Counter(run.value(i)));
            }
            return;
        }
        // The floor: a copy of each prefix, its value's digits, a newline.
        let out = &mut *self.out;
        out.reserve(run.prefix_bytes() + run.len() * 21);
        for (prefix, v) in run.iter() {
            out.extend_from_slice(prefix);
            out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
            out.push(b'\n');
        }
    }

    fn sample(&mut self, labels: &Labels<'_>, value: &Value<'_>) {
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
                // ones kept alongside, or else only `_sum` and `_count`.
                if bounds.is_empty() {
                    self.sample_line("_sum", labels, None, Num::F(native.sum));
                    self.sample_line("_count", labels, None, Num::U(native.count));
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
        if le.bounds[..] != *bounds {
            le.bounds.clear();
            le.bounds.extend_from_slice(bounds);
            le.text.clear();
            le.ends.clear();
            // Each entry is the rest of a bucket line up to its value:
            // `0.005"} `.
            for &b in bounds.iter().chain(std::iter::once(&f64::INFINITY)) {
                write_f64(&mut le.text, b);
                le.text.extend_from_slice(b"\"} ");
                le.ends.push(le.text.len());
            }
        }
        // `name_bucket{labels,le="` once per series, then per bucket:
        // that prefix, the cached bound, the count.
        let mut prefix = std::mem::take(&mut self.bucket_prefix);
        prefix.clear();
        prefix.extend_from_slice(&self.name.as_bytes()[..self.stem_end]);
        prefix.extend_from_slice(b"_bucket");
        let before = prefix.len();
        match labels.rendered() {
            Some(rendered) => prefix.extend_from_slice(rendered),
            None => write_label_set(&mut prefix, labels),
        }
        prefix.extend_from_slice(if prefix.len() > before { b",le=\"" } else { b"{le=\"" });
        let mut cumulative = 0u64;
        let mut start = 0;
        // OpenMetrics 1.0 carries exemplars on bucket lines; text 0.0.4 cannot.
        let exemplars = if self.format == Format::OpenMetrics { exemplars } else { &[] };
        for (i, (&c, &end)) in counts.iter().zip(&le.ends).enumerate() {
            cumulative += c;
            let out = &mut *self.out;
            out.extend_from_slice(&prefix);
            out.extend_from_slice(&le.text[start..end]);
            write_num(out, Num::U(cumulative));
            if let Some(Some(e)) = exemplars.get(i) {
                write_exemplar(out, e);
            }
            out.push(b'\n');
            start = end;
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
    hotmeter::escape_label_value(out, e.trace_id.as_str());
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
        return hotmeter::escape_label_value(out, help);
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
    fn escaping() {
        let mut out = Vec::new();
        hotmeter::escape_label_value(&mut out, "a\\b\"c\nd");
        assert_eq!(String::from_utf8(out).unwrap(), "a\\\\b\\\"c\\nd");
        let mut out = Vec::new();
        escape_help(&mut out, "say \"hi\"\\\n", Format::Text);
        assert_eq!(String::from_utf8(out).unwrap(), "say \"hi\"\\\\\\n");
        let mut out = Vec::new();
        escape_help(&mut out, "say \"hi\"", Format::OpenMetrics);
        assert_eq!(String::from_utf8(out).unwrap(), "say \\\"hi\\\"");
    }
}

#[cfg(test)]
mod native_tests {
    use hotmeter::{Buckets, NativeOpts, Registry, TraceId};

    #[test]
    fn native_histograms_show_their_classic_buckets_or_only_sum_and_count() {
        let r = Registry::new();
        let both =
            r.native_histogram("both_seconds", "B.", NativeOpts::new().classic(Buckets::new([0.5]).unwrap())).unwrap();
        let native = r.native_histogram("native_seconds", "N.", NativeOpts::new()).unwrap();
        both.observe(0.25);
        both.observe_with_exemplar(2.0, &TraceId::new("abc").unwrap());
        native.observe(0.25);
        let mut out = Vec::new();
        crate::encode_text(&r, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            concat!(
                "# HELP both_seconds B.\n# TYPE both_seconds histogram\n",
                "both_seconds_bucket{le=\"0.5\"} 1\nboth_seconds_bucket{le=\"+Inf\"} 2\n",
                "both_seconds_sum 2.25\nboth_seconds_count 2\n",
                "# HELP native_seconds N.\n# TYPE native_seconds histogram\n",
                "native_seconds_sum 0.25\nnative_seconds_count 1\n",
            )
        );
        let mut out = Vec::new();
        crate::encode_openmetrics(&r, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("both_seconds_bucket{le=\"+Inf\"} 2 # {trace_id=\"abc\"} 2.0 "), "{text}");
    }
}
