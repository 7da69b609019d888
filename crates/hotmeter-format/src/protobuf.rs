//! The Prometheus protobuf exposition format: length-delimited
//! `io.prometheus.client.MetricFamily` messages, one per family, as
//! client_model's `metrics.proto` defines them. The only format that
//! carries native histograms to Prometheus.
//!
//! Owns: writing the wire format straight into a caller-owned buffer from
//! one registry walk (varints, tags, little-endian doubles), with no
//! message structs and no allocation per series; every metric and label
//! name is written as [`FamilyNames`] decides once per family (as
//! registered, or escaped by the negotiated scheme). Must not: hold any
//! lock a recording thread could wait on (it only reads snapshots),
//! negotiate content types (the server and `negotiate` do that), or know
//! how a native histogram records.
//!
//! What is sent, following client_golang (the reference producer):
//! - names as registered, so a counter family keeps its `_total`;
//! - label pairs constant labels first, then the family's labels, in
//!   declaration order (Prometheus sorts them when it parses);
//! - integer counters and gauges as doubles (the format has no integers);
//! - classic buckets cumulative, without the `+Inf` bucket (it is the
//!   sample count) unless that bucket has an exemplar to carry;
//! - native histograms with schema, zero threshold and zero count always
//!   set, spans and deltas from [`hotmeter::native::spans_and_deltas`], deltas
//!   packed, and a no-op span (offset 0, length 0) when the histogram has no
//!   observations and a zero threshold of 0, which would otherwise read as
//!   a classic histogram; classic buckets alongside when it keeps them;
//! - exemplars with their one `trace_id` label and a millisecond timestamp;
//! - `created_timestamp` on counters, histograms and summaries, exact to
//!   the nanosecond, from [`hotmeter::expose::Labels::created_unix_nanos`].
//!
//! Nested lengths: a message's length comes before its bytes. Small
//! messages whose size is known up front (label pairs, plain buckets,
//! quantiles, spans) get it computed exactly. The rest reserve a guessed
//! number of bytes for the length, are written, and are shifted when the
//! length needs a different number of bytes: a series' `Metric` guesses
//! what the family's previous series needed (series of a family are alike,
//! so after the first series a shift is rare), a family guesses three
//! bytes (16 KiB to 2 MiB, where a family of thousands of series lands; a
//! smaller family is cheap to shift, a larger one is shifted once).
//!
//! Spec: <https://github.com/prometheus/client_model/blob/master/io/prometheus/client/metrics.proto>,
//! <https://prometheus.io/docs/instrumenting/exposition_formats/#protobuf-format>

use hotmeter::expose::{Desc, EscapingScheme, Labels, MetricType, Value, Visitor};
use hotmeter::native::NativeBucketsRef;
use hotmeter::{Exemplar, Registry};

use crate::names::FamilyNames;
use crate::wire::{LEN, Open, close, double, open, string, tag, varint, varint_field, varint_len, zigzag};

/// Content type of the Prometheus protobuf format (length-delimited
/// `MetricFamily` messages).
pub const PROTOBUF_CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// Appends the Prometheus protobuf format of everything in `registry` to
/// `out`: one length-delimited `io.prometheus.client.MetricFamily` per
/// family, in name order.
///
/// ```
/// let registry = hotmeter::Registry::new();
/// registry.gauge("queue_depth", "Jobs waiting.")?.set(3.0);
/// let mut out = Vec::new();
/// hotmeter_format::encode_protobuf(&registry, &mut out);
/// assert_eq!(
///     out,
///     [
///         &[43u8][..],                                // MetricFamily, 43 bytes
///         &[0x0a, 11], b"queue_depth",                // name
///         &[0x12, 13], b"Jobs waiting.",              // help
///         &[0x18, 1],                                 // type GAUGE
///         &[0x22, 11, 0x12, 9, 0x09],                 // metric { gauge { value
///         &3.0f64.to_le_bytes(),                      // 3.0 } }
///     ]
///     .concat()
/// );
/// // A counter also carries its creation time (`created_timestamp`).
/// let jobs = registry.counter("jobs_total", "Jobs run.")?;
/// let mut out = Vec::new();
/// hotmeter_format::encode_protobuf(&registry, &mut out);
/// let seconds = jobs.created_unix_nanos() / 1_000_000_000;
/// let mut varint = Vec::new();
/// prost::encoding::encode_varint(seconds, &mut varint);
/// assert!(out.windows(varint.len() + 1).any(|w| w[0] == 0x08 && w[1..] == varint[..]));
/// # Ok::<(), hotmeter::RegistryError>(())
/// ```
pub fn encode_protobuf(registry: &Registry, out: &mut Vec<u8>) {
    encode_protobuf_escaped(registry, EscapingScheme::AllowUtf8, out);
}

/// As [`encode_protobuf`], with every UTF-8 metric and label name escaped
/// by `escaping` (names valid under the legacy rules are sent as they are;
/// a registry that has only those pays nothing for this).
pub fn encode_protobuf_escaped(registry: &Registry, escaping: EscapingScheme, out: &mut Vec<u8>) {
    let mut encoder = Encoder::new(out);
    encoder.escaping = escaping;
    registry.collect(&mut encoder);
    encoder.finish();
}

/// Field numbers of `metrics.proto`, by message.
mod field {
    pub(super) mod family {
        pub(crate) const NAME: u32 = 1;
        pub(crate) const HELP: u32 = 2;
        pub(crate) const TYPE: u32 = 3;
        pub(crate) const METRIC: u32 = 4;
        pub(crate) const UNIT: u32 = 5;
    }
    pub(super) mod metric {
        pub(crate) const LABEL: u32 = 1;
        pub(crate) const GAUGE: u32 = 2;
        pub(crate) const COUNTER: u32 = 3;
        pub(crate) const SUMMARY: u32 = 4;
        pub(crate) const HISTOGRAM: u32 = 7;
    }
    pub(super) mod label_pair {
        pub(crate) const NAME: u32 = 1;
        pub(crate) const VALUE: u32 = 2;
    }
    /// `Gauge`, `Counter` and `Untyped` all keep their value in field 1.
    pub(super) const VALUE: u32 = 1;
    pub(super) mod counter {
        pub(crate) const EXEMPLAR: u32 = 2;
        pub(crate) const CREATED_TIMESTAMP: u32 = 3;
    }
    pub(super) mod summary {
        pub(crate) const SAMPLE_COUNT: u32 = 1;
        pub(crate) const SAMPLE_SUM: u32 = 2;
        pub(crate) const QUANTILE: u32 = 3;
        pub(crate) const CREATED_TIMESTAMP: u32 = 4;
    }
    pub(super) mod quantile {
        pub(crate) const QUANTILE: u32 = 1;
        pub(crate) const VALUE: u32 = 2;
    }
    pub(super) mod histogram {
        pub(crate) const SAMPLE_COUNT: u32 = 1;
        pub(crate) const SAMPLE_SUM: u32 = 2;
        pub(crate) const BUCKET: u32 = 3;
        pub(crate) const SCHEMA: u32 = 5;
        pub(crate) const ZERO_THRESHOLD: u32 = 6;
        pub(crate) const ZERO_COUNT: u32 = 7;
        pub(crate) const NEGATIVE_SPAN: u32 = 9;
        pub(crate) const NEGATIVE_DELTA: u32 = 10;
        pub(crate) const POSITIVE_SPAN: u32 = 12;
        pub(crate) const POSITIVE_DELTA: u32 = 13;
        pub(crate) const CREATED_TIMESTAMP: u32 = 15;
    }
    pub(super) mod bucket {
        pub(crate) const CUMULATIVE_COUNT: u32 = 1;
        pub(crate) const UPPER_BOUND: u32 = 2;
        pub(crate) const EXEMPLAR: u32 = 3;
    }
    pub(super) mod span {
        pub(crate) const OFFSET: u32 = 1;
        pub(crate) const LENGTH: u32 = 2;
    }
    pub(super) mod exemplar {
        pub(crate) const LABEL: u32 = 1;
        pub(crate) const VALUE: u32 = 2;
        pub(crate) const TIMESTAMP: u32 = 3;
    }
    /// `google.protobuf.Timestamp`.
    pub(super) mod timestamp {
        pub(crate) const SECONDS: u32 = 1;
        pub(crate) const NANOS: u32 = 2;
    }
}

/// `MetricType` enum values.
fn type_number(kind: MetricType) -> u64 {
    match kind {
        MetricType::Counter => 0,
        MetricType::Gauge => 1,
        MetricType::Summary => 2,
        MetricType::Histogram => 4,
        // UNTYPED, for a kind this encoder does not know yet.
        _ => 3,
    }
}

/// What a family guesses its length needs (see the module docs).
const FAMILY_LENGTH_GUESS: usize = 3;

/// A [`Visitor`] that writes the protobuf format.
struct Encoder<'a> {
    out: &'a mut Vec<u8>,
    /// The family being written, until the next one starts or the walk ends.
    family: Option<Open>,
    /// Bytes the previous series' `Metric` length took: the next one's guess.
    metric_width: usize,
    /// The open family's unit, written after its metrics.
    unit: Option<hotmeter::Unit>,
    /// Reused by native histograms.
    spans: Vec<(i32, u32)>,
    deltas: Vec<i64>,
    /// How to send UTF-8 names.
    escaping: EscapingScheme,
    /// The current family's metric and label names as sent.
    names: FamilyNames,
    /// Whether the current family's samples are one number each, whose
    /// text size hint also fits their protobuf form.
    one_number: bool,
}

impl<'a> Encoder<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        Self {
            out,
            family: None,
            metric_width: 1,
            unit: None,
            spans: Vec::new(),
            deltas: Vec::new(),
            escaping: EscapingScheme::AllowUtf8,
            names: FamilyNames::default(),
            one_number: false,
        }
    }

    /// Closes the last family.
    fn finish(&mut self) {
        if let Some(family) = self.family.take() {
            if let Some(unit) = self.unit.take() {
                string(self.out, field::family::UNIT, unit.as_str());
            }
            close(self.out, family);
        }
    }
}

impl Visitor for Encoder<'_> {
    fn family(&mut self, desc: &Desc) {
        self.finish();
        let out = &mut *self.out;
        // Delimited: the family's length, then its fields (no tag).
        self.family = Some(open(out, FAMILY_LENGTH_GUESS));
        self.metric_width = 1;
        self.names.set(desc, self.escaping);
        string(out, field::family::NAME, self.names.name());
        string(out, field::family::HELP, &desc.help);
        uint(out, field::family::TYPE, type_number(desc.kind));
        self.one_number = matches!(desc.kind, MetricType::Counter | MetricType::Gauge);
        // As OpenMetrics does: only a unit the name ends with. Written after
        // the metrics, in field-number order as client_golang's are.
        self.unit = desc.unit.clone().filter(|unit| {
            let stem = match desc.kind {
                MetricType::Counter => desc.name.strip_suffix("_total").unwrap_or(&desc.name),
                _ => &desc.name,
            };
            stem.strip_suffix(unit.as_str()).is_some_and(|rest| rest.ends_with('_'))
        });
    }

    fn size_hint(&mut self, bytes: usize) {
        // Text bytes: the protobuf form of one-number samples is about as
        // long; histograms' and summaries' is several times shorter (one
        // label set per series, not per line), so their hint is not taken.
        if self.one_number {
            self.out.reserve(bytes);
        }
    }

    fn sample(&mut self, labels: &Labels<'_>, value: &Value<'_>) {
        let out = &mut *self.out;
        tag(out, field::family::METRIC, LEN);
        let metric = open(out, self.metric_width);
        for (i, (name, value)) in labels.iter().enumerate() {
            label_pair(out, field::metric::LABEL, self.names.label(i).unwrap_or(name), value);
        }
        let created = labels.created_unix_nanos();
        match *value {
            Value::Counter(v) => counter(out, v as f64, None, created),
            Value::TracedCounter { total, exemplar } => counter(out, total as f64, exemplar.as_ref(), created),
            Value::FloatCounter(v) => counter(out, v, None, created),
            Value::Gauge(v) => gauge(out, v),
            Value::IntGauge(v) => gauge(out, v as f64),
            Value::Histogram { bounds, counts, sum, count, exemplars } => {
                tag(out, field::metric::HISTOGRAM, LEN);
                let h = open(out, 1);
                uint(out, field::histogram::SAMPLE_COUNT, count);
                double(out, field::histogram::SAMPLE_SUM, sum);
                classic_buckets(out, bounds, counts, exemplars);
                created_timestamp(out, field::histogram::CREATED_TIMESTAMP, created);
                close(out, h);
            }
            Value::NativeHistogram { native, bounds, counts, exemplars } => {
                tag(out, field::metric::HISTOGRAM, LEN);
                let h = open(out, 1);
                uint(out, field::histogram::SAMPLE_COUNT, native.count);
                double(out, field::histogram::SAMPLE_SUM, native.sum);
                if !bounds.is_empty() {
                    classic_buckets(out, bounds, counts, exemplars);
                }
                native_buckets(out, &native, &mut self.spans, &mut self.deltas);
                created_timestamp(out, field::histogram::CREATED_TIMESTAMP, created);
                close(out, h);
            }
            Value::Summary { quantiles, sum, count } => {
                tag(out, field::metric::SUMMARY, LEN);
                let s = open(out, 1);
                uint(out, field::summary::SAMPLE_COUNT, count);
                double(out, field::summary::SAMPLE_SUM, sum);
                for &(q, v) in quantiles {
                    tag(out, field::summary::QUANTILE, LEN);
                    out.push(18);
                    double(out, field::quantile::QUANTILE, q);
                    double(out, field::quantile::VALUE, v);
                }
                created_timestamp(out, field::summary::CREATED_TIMESTAMP, created);
                close(out, s);
            }
        }
        self.metric_width = close(out, metric);
    }
}

/// A `Counter` message.
#[inline]
fn counter(out: &mut Vec<u8>, value: f64, exemplar: Option<&Exemplar>, created: Option<u64>) {
    tag(out, field::metric::COUNTER, LEN);
    let c = open(out, 1);
    double(out, field::VALUE, value);
    if let Some(e) = exemplar {
        write_exemplar(out, field::counter::EXEMPLAR, e);
    }
    created_timestamp(out, field::counter::CREATED_TIMESTAMP, created);
    close(out, c);
}

/// A series' `created_timestamp`, exact to the nanosecond, when it has one.
#[inline]
fn created_timestamp(out: &mut Vec<u8>, number: u32, unix_nanos: Option<u64>) {
    let Some(n) = unix_nanos else { return };
    let (secs, nanos) = (n / 1_000_000_000, n % 1_000_000_000);
    let len = if secs != 0 { 1 + varint_len(secs) } else { 0 } + if nanos != 0 { 1 + varint_len(nanos) } else { 0 };
    tag(out, number, LEN);
    varint(out, len as u64);
    if secs != 0 {
        varint_field(out, field::timestamp::SECONDS, secs);
    }
    if nanos != 0 {
        varint_field(out, field::timestamp::NANOS, nanos);
    }
}

/// A `Gauge` message.
#[inline]
fn gauge(out: &mut Vec<u8>, value: f64) {
    tag(out, field::metric::GAUGE, LEN);
    out.push(9);
    double(out, field::VALUE, value);
}

/// Cumulative `Bucket`s for `bounds` (`+Inf` only with an exemplar).
fn classic_buckets(out: &mut Vec<u8>, bounds: &[f64], counts: &[u64], exemplars: &[Option<Exemplar>]) {
    let mut cumulative = 0u64;
    for (i, (&bound, &c)) in bounds.iter().zip(counts).enumerate() {
        cumulative += c;
        bucket(out, cumulative, bound, exemplars.get(i).and_then(Option::as_ref));
    }
    if let Some(Some(e)) = exemplars.get(bounds.len()) {
        cumulative += counts.get(bounds.len()).copied().unwrap_or(0);
        bucket(out, cumulative, f64::INFINITY, Some(e));
    }
}

/// One `Bucket`.
#[inline]
fn bucket(out: &mut Vec<u8>, cumulative: u64, upper_bound: f64, exemplar: Option<&Exemplar>) {
    tag(out, field::histogram::BUCKET, LEN);
    match exemplar {
        None => {
            varint(out, (1 + varint_len(cumulative) + 9) as u64);
            uint(out, field::bucket::CUMULATIVE_COUNT, cumulative);
            double(out, field::bucket::UPPER_BOUND, upper_bound);
        }
        Some(e) => {
            let b = open(out, 1);
            uint(out, field::bucket::CUMULATIVE_COUNT, cumulative);
            double(out, field::bucket::UPPER_BOUND, upper_bound);
            write_exemplar(out, field::bucket::EXEMPLAR, e);
            close(out, b);
        }
    }
}

/// The native part of a `Histogram` message.
fn native_buckets(
    out: &mut Vec<u8>,
    native: &NativeBucketsRef<'_>,
    spans: &mut Vec<(i32, u32)>,
    deltas: &mut Vec<i64>,
) {
    use field::histogram as h;
    varint_field(out, h::SCHEMA, zigzag(i64::from(native.schema)));
    double(out, h::ZERO_THRESHOLD, native.zero_threshold);
    uint(out, h::ZERO_COUNT, native.zero_count);
    hotmeter::native::spans_and_deltas(native.negative, spans, deltas);
    spans_field(out, h::NEGATIVE_SPAN, spans);
    deltas_field(out, h::NEGATIVE_DELTA, deltas);
    hotmeter::native::spans_and_deltas(native.positive, spans, deltas);
    if spans.is_empty() && native.negative.is_empty() && native.zero_threshold == 0.0 && native.zero_count == 0 {
        // Without observations and with no zero bucket, nothing above would
        // tell a scraper this is a native histogram: a no-op span does.
        spans.push((0, 0));
    }
    spans_field(out, h::POSITIVE_SPAN, spans);
    deltas_field(out, h::POSITIVE_DELTA, deltas);
}

/// Repeated `BucketSpan`s (offsets `sint32`, lengths `uint32`).
fn spans_field(out: &mut Vec<u8>, number: u32, spans: &[(i32, u32)]) {
    for &(offset, length) in spans {
        let offset = zigzag(i64::from(offset));
        tag(out, number, LEN);
        varint(out, (2 + varint_len(offset) + varint_len(u64::from(length))) as u64);
        varint_field(out, field::span::OFFSET, offset);
        varint_field(out, field::span::LENGTH, u64::from(length));
    }
}

/// Repeated `sint64` deltas, packed (parsers take packed and unpacked
/// alike; packed is one tag and one length for all of them).
fn deltas_field(out: &mut Vec<u8>, number: u32, deltas: &[i64]) {
    if deltas.is_empty() {
        return;
    }
    tag(out, number, LEN);
    let len: usize = deltas.iter().map(|&d| varint_len(zigzag(d))).sum();
    varint(out, len as u64);
    for &d in deltas {
        varint(out, zigzag(d));
    }
}

/// An `Exemplar` message: the `trace_id` label, the value, the time.
fn write_exemplar(out: &mut Vec<u8>, number: u32, e: &Exemplar) {
    tag(out, number, LEN);
    let x = open(out, 1);
    label_pair(out, field::exemplar::LABEL, "trace_id", e.trace_id.as_str());
    double(out, field::exemplar::VALUE, e.value);
    timestamp(out, field::exemplar::TIMESTAMP, e.timestamp);
    close(out, x);
}

/// A `google.protobuf.Timestamp` from seconds since the Unix epoch, to the
/// millisecond Prometheus keeps (zero fields left out, as proto3 does).
fn timestamp(out: &mut Vec<u8>, number: u32, seconds: f64) {
    let ms = (seconds * 1e3).round() as i64;
    let (secs, nanos) = (ms.div_euclid(1000), ms.rem_euclid(1000) * 1_000_000);
    // int64 and int32 are plain two's-complement varints (not zigzag).
    let len = if secs != 0 { 1 + varint_len(secs as u64) } else { 0 }
        + if nanos != 0 { 1 + varint_len(nanos as u64) } else { 0 };
    tag(out, number, LEN);
    varint(out, len as u64);
    if secs != 0 {
        varint_field(out, field::timestamp::SECONDS, secs as u64);
    }
    if nanos != 0 {
        varint_field(out, field::timestamp::NANOS, nanos as u64);
    }
}

/// A `LabelPair` message (its length computed up front).
#[inline]
fn label_pair(out: &mut Vec<u8>, number: u32, name: &str, value: &str) {
    let len = 2 + varint_len(name.len() as u64) + name.len() + varint_len(value.len() as u64) + value.len();
    tag(out, number, LEN);
    varint(out, len as u64);
    string(out, field::label_pair::NAME, name);
    string(out, field::label_pair::VALUE, value);
}

/// An unsigned varint field.
#[inline]
fn uint(out: &mut Vec<u8>, number: u32, v: u64) {
    varint_field(out, number, v);
}

#[cfg(test)]
mod tests;
