//! OTLP metrics: one export of a registry as an OTLP/HTTP protobuf body
//! (`ExportMetricsServiceRequest`, [`crate::otlp_proto`]).
//!
//! Owns: the mapping of hotmeter's values onto OTLP's data model, the
//! resource and scope every export carries, and (with
//! [`Temporality::Delta`]) what each series read at the export before.
//! Must not: send anything, keep a queue, or retry (the delivery machinery
//! does), or touch recording paths: an encode only reads the registry.
//!
//! # Mapping
//! | hotmeter | OTLP |
//! |---|---|
//! | counter (integer or float) | monotonic `Sum`, integer or double points |
//! | gauge, integer gauge | `Gauge` |
//! | histogram | explicit-bucket `Histogram` (`bucket_counts` per bucket, the last `+Inf`) |
//! | native histogram | `ExponentialHistogram`: `scale` = schema; Prometheus' bucket `i` (`base^(i-1) < v <= base^i`) is OTLP's bucket `i - 1`, so `offset` = first index - 1; zero count and threshold as they are; a point whose buckets would span more than 2,048 (OTLP's are dense) is merged down to a coarser scale until they fit, exactly; classic buckets kept alongside are not sent (they are the same observations) |
//! | summary | `Summary` (quantiles with no observations in their window, NaN, are left out) |
//!
//! A family's unit goes out in UCUM, as OTLP asks (`seconds` as `s`,
//! `bytes` as `By`, `ratio` as `1`; others as they are). Every point
//! carries its series' labels (constant labels first) as string
//! attributes. A sum's or histogram's `start_time_unix_nano` is its
//! series' created timestamp (a series that was removed and came back has
//! a new one, so a receiver sees a reset), or the encoder's own start for
//! a series that keeps none (the overflow series). Exemplars go with their
//! points: a trace id of 32 hex digits as OTLP's 16-byte `trace_id`, any
//! other as a `trace_id` attribute.
//!
//! # Temporality
//! [`Temporality::Cumulative`] (the default) sends totals since each
//! series' start. [`Temporality::Delta`] sends what each sum and histogram
//! gained since the last export, starting when that export read it. A
//! series seen for the first time, or whose created timestamp changed
//! (removed and come back), starts a new delta stream from its created
//! timestamp. A series that went down in place (a collector's source
//! restarted, a collector's histogram changed its bounds) sends all it
//! has, counted from the export before, as Prometheus reads a reset; a
//! native histogram that merged its buckets down to a coarser schema is
//! not a reset (the earlier reading is merged down too). Gauges and
//! summaries are the same either way. The encoder moves its delta state
//! on at every encode: a client must deliver every body (or resend it) or
//! lose that interval's change.
//!
//! Readings are kept per family registration and series. A series missing
//! from an export that walked its family is gone, and its reading with it
//! (coming back, it is a new series with a new created timestamp), except
//! one that keeps no created timestamp (a collector's, which may skip a
//! series on a transient error): its reading waits up to 64 exports, and
//! the series continues its stream if it comes back within them. Readings
//! of a family not walked at all (unregistered, or of another registry the
//! same encoder also encodes) wait as long. A collector's series that turns
//! from integer to float (or back) subtracts as floats. A histogram whose
//! sum went infinite sends NaN as its delta sums from then on (infinity
//! minus infinity), as its cumulative sum stays infinite.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use hotmeter::expose::Desc;
use hotmeter::expose::{CounterRun, Labels, Value, Visitor};
use hotmeter::native::{NativeBuckets, NativeBucketsRef, merge_down};
use hotmeter::{Exemplar, Registry};
use hotmeter_format::wire::{self, FixedFields, LEN, Open};

use crate::error::ConfigError;
use crate::run::{RunSeen, keep};

/// The OpenTelemetry semantic conventions' schema the resource attributes
/// follow (`service.name`, `service.instance.id`).
pub const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.26.0";

/// The instrumentation scope every export names.
const SCOPE_NAME: &str = "hotmeter";

/// Field numbers of the messages written, as the upstream
/// `opentelemetry/proto/{collector/metrics/v1,metrics/v1,common/v1,resource/v1}`
/// files (and [`crate::otlp_proto`], which tests decode with) declare them.
/// Fields are written in field-number order (a oneof at its first
/// field's place) and zero values of plain fields are left out, as prost
/// writes a message: a body re-encoded by prost is the same bytes (the
/// tests check).
mod field {
    pub(super) mod request {
        pub(crate) const RESOURCE_METRICS: u32 = 1;
    }
    pub(super) mod resource_metrics {
        pub(crate) const RESOURCE: u32 = 1;
        pub(crate) const SCOPE_METRICS: u32 = 2;
        pub(crate) const SCHEMA_URL: u32 = 3;
    }
    pub(super) mod resource {
        pub(crate) const ATTRIBUTES: u32 = 1;
    }
    pub(super) mod scope_metrics {
        pub(crate) const SCOPE: u32 = 1;
        pub(crate) const METRICS: u32 = 2;
    }
    pub(super) mod scope {
        pub(crate) const NAME: u32 = 1;
        pub(crate) const VERSION: u32 = 2;
    }
    pub(super) mod key_value {
        pub(crate) const KEY: u32 = 1;
        pub(crate) const VALUE: u32 = 2;
        /// `AnyValue.string_value`.
        pub(crate) const STRING_VALUE: u32 = 1;
    }
    pub(super) mod metric {
        pub(crate) const NAME: u32 = 1;
        pub(crate) const DESCRIPTION: u32 = 2;
        pub(crate) const UNIT: u32 = 3;
    }
    /// `Gauge`, `Sum`, `Histogram`, `ExponentialHistogram`, `Summary`.
    pub(super) mod data {
        pub(crate) const DATA_POINTS: u32 = 1;
        pub(crate) const AGGREGATION_TEMPORALITY: u32 = 2;
        pub(crate) const IS_MONOTONIC: u32 = 3;
    }
    /// Fields every kind of data point has at the same number.
    pub(super) mod point {
        pub(crate) const START_TIME_UNIX_NANO: u32 = 2;
        pub(crate) const TIME_UNIX_NANO: u32 = 3;
        pub(crate) const COUNT: u32 = 4;
        pub(crate) const SUM: u32 = 5;
    }
    pub(super) mod number {
        pub(crate) const AS_DOUBLE: u32 = 4;
        pub(crate) const EXEMPLARS: u32 = 5;
        pub(crate) const AS_INT: u32 = 6;
        pub(crate) const ATTRIBUTES: u32 = 7;
    }
    pub(super) mod histogram {
        pub(crate) const BUCKET_COUNTS: u32 = 6;
        pub(crate) const EXPLICIT_BOUNDS: u32 = 7;
        pub(crate) const EXEMPLARS: u32 = 8;
        pub(crate) const ATTRIBUTES: u32 = 9;
    }
    pub(super) mod exponential {
        pub(crate) const ATTRIBUTES: u32 = 1;
        pub(crate) const SCALE: u32 = 6;
        pub(crate) const ZERO_COUNT: u32 = 7;
        pub(crate) const POSITIVE: u32 = 8;
        pub(crate) const NEGATIVE: u32 = 9;
        pub(crate) const EXEMPLARS: u32 = 11;
        pub(crate) const ZERO_THRESHOLD: u32 = 14;
        /// `Buckets.offset`, `Buckets.bucket_counts`.
        pub(crate) const OFFSET: u32 = 1;
        pub(crate) const BUCKET_COUNTS: u32 = 2;
    }
    pub(super) mod summary {
        pub(crate) const QUANTILE_VALUES: u32 = 6;
        pub(crate) const ATTRIBUTES: u32 = 7;
        /// `ValueAtQuantile.quantile`, `ValueAtQuantile.value`.
        pub(crate) const QUANTILE: u32 = 1;
        pub(crate) const VALUE: u32 = 2;
    }
    pub(super) mod exemplar {
        pub(crate) const TIME_UNIX_NANO: u32 = 2;
        pub(crate) const AS_DOUBLE: u32 = 3;
        pub(crate) const TRACE_ID: u32 = 5;
        pub(crate) const FILTERED_ATTRIBUTES: u32 = 7;
    }
}

/// `AggregationTemporality` values.
const DELTA: u64 = 1;
const CUMULATIVE: u64 = 2;

/// Whether sums and histograms are sent as totals or as changes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Temporality {
    /// Totals since each series started (Prometheus' model; what
    /// Prometheus and VictoriaMetrics expect).
    #[default]
    Cumulative,
    /// What each series gained since the export before (what some vendor
    /// backends expect). See the module docs for restarts.
    Delta,
}

/// Encodes a registry as OTLP metrics, writing the protobuf body straight
/// from one registry walk (no message structs, no allocation per series
/// once its buffers have grown), reusing its buffers from one export to
/// the next.
///
/// # Examples
/// ```
/// use prost::Message;
/// use hotmeter_push::otlp_proto::{ExportMetricsServiceRequest, metric::Data};
///
/// let registry = hotmeter::Registry::new();
/// registry.counter("jobs_total", "Jobs.")?.inc_by(3);
/// let mut encoder = hotmeter_push::OtlpEncoder::new("batch-worker")?.attribute("deployment.environment.name", "prod")?;
/// let body = encoder.encode(&registry, 1_700_000_000_000_000_000).body.to_vec();
/// let request = ExportMetricsServiceRequest::decode(&body[..])?;
/// let metric = &request.resource_metrics[0].scope_metrics[0].metrics[0];
/// assert_eq!(metric.name, "jobs_total");
/// let Some(Data::Sum(sum)) = &metric.data else { panic!("a counter is a sum") };
/// assert!(sum.is_monotonic);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct OtlpEncoder {
    /// `(key, value)` string attributes, `service.name` first.
    resource: Vec<(String, String)>,
    temporality: Temporality,
    /// When this encoder was made: the start of a series that keeps none.
    started_unix_nano: u64,
    body: Vec<u8>,
    /// Widths the export before took for its two outer lengths
    /// (`ResourceMetrics`, `ScopeMetrics`): this one's guesses.
    outer_widths: (usize, usize),
    /// The walk's buffers and guesses, kept from one export to the next.
    walk: WalkState,
}

/// One encoded export, borrowed from the [`OtlpEncoder`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct EncodedOtlp<'a> {
    /// The protobuf `ExportMetricsServiceRequest`: the HTTP body.
    pub body: &'a [u8],
    /// Data points in it (one per series).
    pub data_points: u64,
}

/// What a walk keeps for the next one.
#[derive(Debug, Default)]
struct WalkState {
    /// Widths the last metric, its data and its last point took for their
    /// lengths: the next ones' guesses (series of a family are alike).
    metric_width: usize,
    data_width: usize,
    point_width: usize,
    /// With delta temporality: each sum's and histogram's last reading,
    /// keyed by its family's registration and its attributes as encoded
    /// (the same labels always encode the same, and two label sets never
    /// do).
    readings: HashMap<Box<[u8]>, Reading>,
    /// Counts exports: a reading not seen in this one is gone.
    export: u64,
    /// Reused: the key being looked up; a delta's bucket counts; buckets
    /// being merged down to fit.
    key: Vec<u8>,
    counts: Vec<u64>,
    positive: Vec<(i32, u64)>,
    negative: Vec<(i32, u64)>,
    /// Each string family's counter run as last encoded, by registration.
    runs: HashMap<u64, RunCache>,
    /// The family being walked: its registration; and every registration
    /// this export walked.
    registration: u64,
    walked: Vec<u64>,
    /// The family being walked, as sent: name, description, unit.
    name: String,
    help: String,
    unit: String,
}

/// A string family's counter run as last encoded: the run's sample
/// prefixes, which it is checked against at every export, and each
/// series' attributes, encoded.
///
/// Kept per registration ([`Desc::registration_id`]: the family's label
/// names and constant labels fixed), where the text prefixes name every
/// series exactly (values are escaped), so a run whose prefixes, and each
/// prefix's length, are the same bytes as at the export before holds the
/// same label sets in the same order, and their attributes encode the
/// same: they are copied, not encoded again. Any other run is encoded
/// afresh. Nothing here trusts an address, nor a name: two registrations
/// of one name (re-registered with other labels, or in two registries)
/// never share a cache, since UTF-8 label names can spell alike.
#[derive(Debug, Default)]
struct RunCache {
    run: RunSeen,
    /// Every series' attributes (`NumberDataPoint` field 7), in order;
    /// `ends[i]` is where series `i`'s end.
    attributes: Vec<u8>,
    ends: Vec<usize>,
}

impl RunCache {
    fn fill(&mut self, run: &CounterRun<'_>) {
        self.run.note(run);
        self.attributes.clear();
        self.ends.clear();
        for i in 0..run.len() {
            attributes(&mut self.attributes, field::number::ATTRIBUTES, &run.labels(i));
            self.ends.push(self.attributes.len());
        }
    }
}

/// What a series read at an export, for the next delta.
#[derive(Debug, Clone)]
struct Reading {
    /// Its created timestamp (`None` when it keeps none).
    created: Option<u64>,
    /// The export's time: the next delta's start.
    at: u64,
    /// The export that read it ([`WalkState::export`]).
    seen: u64,
    /// Its family's registration.
    registration: u64,
    value: Cumulative,
}

#[derive(Debug, Clone)]
enum Cumulative {
    Int(u64),
    Float(f64),
    /// Bounds kept: a collector may change them, and counts under other
    /// bounds do not subtract.
    Buckets {
        bounds: Vec<f64>,
        counts: Vec<u64>,
        sum: f64,
        count: u64,
    },
    /// Subtracted with [`NativeBuckets::increase_since`], which follows a
    /// histogram that merged its buckets down to a coarser schema.
    Native(NativeBuckets),
}

fn unix_nanos_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl OtlpEncoder {
    /// An encoder whose resource is `service.name` = `service_name` and
    /// `service.instance.id` = this process (its id and start time, unique
    /// on a host); [`attribute`](Self::attribute) adds more. Cumulative
    /// temporality.
    pub fn new(service_name: impl Into<String>) -> Result<Self, ConfigError> {
        let service_name = service_name.into();
        if service_name.is_empty() {
            return Err(ConfigError::InvalidAttribute { key: "service.name".to_owned(), reason: "empty" });
        }
        let started_unix_nano = unix_nanos_now();
        let instance = format!("{}-{started_unix_nano:x}", std::process::id());
        Ok(Self {
            resource: vec![("service.name".to_owned(), service_name), ("service.instance.id".to_owned(), instance)],
            temporality: Temporality::Cumulative,
            started_unix_nano,
            body: Vec::new(),
            outer_widths: (3, 3),
            walk: WalkState { metric_width: 2, data_width: 2, point_width: 1, ..WalkState::default() },
        })
    }

    /// Adds (or replaces) a string resource attribute: `service.version`,
    /// `deployment.environment.name`, `host.name`, your own. The key must
    /// not be empty.
    pub fn attribute(mut self, key: &str, value: &str) -> Result<Self, ConfigError> {
        if key.is_empty() {
            return Err(ConfigError::InvalidAttribute { key: String::new(), reason: "empty key" });
        }
        if key == "service.name" && value.is_empty() {
            return Err(ConfigError::InvalidAttribute { key: key.to_owned(), reason: "empty" });
        }
        match self.resource.iter_mut().find(|(k, _)| k == key) {
            Some(existing) => existing.1 = value.to_owned(),
            None => self.resource.push((key.to_owned(), value.to_owned())),
        }
        Ok(self)
    }

    /// Sends sums and histograms as totals (the default) or as changes.
    pub fn temporality(mut self, temporality: Temporality) -> Self {
        self.temporality = temporality;
        self
    }

    /// The resource attributes every export carries.
    pub fn resource(&self) -> impl Iterator<Item = (&str, &str)> {
        self.resource.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Walks `registry` once, stamping every point with `time_unix_nano`
    /// (nanoseconds since the Unix epoch), and returns the body.
    pub fn encode(&mut self, registry: &Registry, time_unix_nano: u64) -> EncodedOtlp<'_> {
        let Self { resource, temporality, started_unix_nano, body: out, outer_widths, walk } = self;
        out.clear();
        walk.export += 1;
        wire::tag(out, field::request::RESOURCE_METRICS, LEN);
        let resource_metrics = wire::open(out, outer_widths.0);
        wire::tag(out, field::resource_metrics::RESOURCE, LEN);
        let resource_open = wire::open(out, 1);
        for (k, v) in resource.iter() {
            key_value(out, field::resource::ATTRIBUTES, k, v);
        }
        wire::close(out, resource_open);
        wire::tag(out, field::resource_metrics::SCOPE_METRICS, LEN);
        let scope_metrics = wire::open(out, outer_widths.1);
        wire::tag(out, field::scope_metrics::SCOPE, LEN);
        let scope = wire::open(out, 1);
        wire::string(out, field::scope::NAME, SCOPE_NAME);
        wire::string(out, field::scope::VERSION, env!("CARGO_PKG_VERSION"));
        wire::close(out, scope);
        let mut writer = Writer {
            out: &mut *out,
            time: time_unix_nano,
            fallback_start: *started_unix_nano,
            temporality: *temporality,
            walk: &mut *walk,
            metric: None,
            points: 0,
        };
        registry.collect(&mut writer);
        writer.close_metric();
        let points = writer.points;
        outer_widths.1 = wire::close(out, scope_metrics);
        wire::string(out, field::resource_metrics::SCHEMA_URL, SCHEMA_URL);
        outer_widths.0 = wire::close(out, resource_metrics);
        let export = walk.export;
        walk.walked.sort_unstable();
        let walked = &walk.walked;
        let elsewhere = |registration: &u64| walked.binary_search(registration).is_err();
        if *temporality == Temporality::Delta {
            // A series of a walked family not read this time is gone (one
            // with its labels later is a new series with a new created
            // timestamp), unless it keeps none (`crate::run::KEEP_UNSEEN`).
            walk.readings.retain(|_, r| keep(r.seen, export, r.created.is_none() || elsewhere(&r.registration)));
        }
        // A run cache lives as long as its family's counter run, or a while
        // when its family was not walked (another registry's).
        walk.runs.retain(|registration, cache| keep(cache.run.seen, export, elsewhere(registration)));
        walk.walked.clear();
        EncodedOtlp { body: out, data_points: points }
    }
}

/// A `KeyValue` with a string value (its length computed up front).
#[inline]
fn key_value(out: &mut Vec<u8>, number: u32, key: &str, value: &str) {
    use field::key_value as kv;
    // `AnyValue { string_value }`: a oneof, written even when empty.
    let any = wire::bytes_field_len(kv::STRING_VALUE, value.len());
    let key_len = if key.is_empty() { 0 } else { wire::bytes_field_len(kv::KEY, key.len()) };
    let len = key_len + wire::bytes_field_len(kv::VALUE, any);
    out.reserve(wire::bytes_field_len(number, len));
    wire::tag(out, number, LEN);
    wire::varint(out, len as u64);
    if !key.is_empty() {
        wire::string(out, kv::KEY, key);
    }
    wire::tag(out, kv::VALUE, LEN);
    wire::varint(out, any as u64);
    wire::string(out, kv::STRING_VALUE, value);
}

/// A series' labels as string attributes, constant labels first.
#[inline]
fn attributes(out: &mut Vec<u8>, number: u32, labels: &Labels<'_>) {
    for (name, value) in labels.iter() {
        key_value(out, number, name, value);
    }
}

/// A `fixed64` field, left out when zero (as proto3 writes plain fields).
#[inline]
fn fixed64(out: &mut Vec<u8>, number: u32, v: u64) {
    if v != 0 {
        wire::fixed64(out, number, v);
    }
}

/// A `double` field, left out when zero.
#[inline]
fn double(out: &mut Vec<u8>, number: u32, v: f64) {
    if v != 0.0 {
        wire::double(out, number, v);
    }
}

/// Which kind of points a value makes, and where a metric keeps them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Gauge = 5,
    Sum = 7,
    Histogram = 9,
    Exponential = 10,
    Summary = 11,
}

/// A unit as OTLP writes it (UCUM, `metrics.proto`: `s`, `By`, `1`):
/// OpenMetrics' base units translated, anything else as it is.
fn ucum(unit: &str) -> &str {
    match unit {
        "seconds" => "s",
        "milliseconds" => "ms",
        "microseconds" => "us",
        "nanoseconds" => "ns",
        "bytes" => "By",
        "bits" => "bit",
        "ratio" => "1",
        "percent" => "%",
        "celsius" => "Cel",
        "hertz" => "Hz",
        "volts" => "V",
        "amperes" => "A",
        "joules" => "J",
        "grams" => "g",
        "meters" => "m",
        "watts" => "W",
        other => other,
    }
}

/// An `Exemplar`: a trace id of 32 hex digits, not all zero (the W3C
/// invalid id), as OTLP's 16 bytes; any other as a `trace_id` attribute.
fn exemplar(out: &mut Vec<u8>, number: u32, e: &Exemplar) {
    use field::exemplar as x;
    let id = e.trace_id.as_str();
    let hex = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) && id.bytes().any(|b| b != b'0');
    wire::tag(out, number, LEN);
    let open = wire::open(out, 1);
    let time = if e.timestamp.is_finite() && e.timestamp > 0.0 { (e.timestamp * 1e9) as u64 } else { 0 };
    fixed64(out, x::TIME_UNIX_NANO, time);
    // A oneof: written even when zero.
    wire::double(out, x::AS_DOUBLE, e.value);
    if hex {
        let mut trace_id = [0u8; 16];
        for (i, byte) in trace_id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&id[2 * i..2 * i + 2], 16).unwrap_or(0);
        }
        wire::bytes(out, x::TRACE_ID, &trace_id);
    } else {
        key_value(out, x::FILTERED_ATTRIBUTES, "trace_id", id);
    }
    wire::close(out, open);
}

/// Most buckets an exponential point carries per sign. OTLP's buckets are
/// dense, Prometheus' sparse: two observations far apart at a fine schema
/// (1e-30 and 1e300 at schema 8) would span 280,000 buckets, so a wider
/// point is merged down to a coarser scale until it fits (exact: merging
/// never splits a bucket; at scale -4 all of f64 takes about 130).
const MAX_DENSE_BUCKETS: i64 = 2048;

/// The width of a run of populated buckets, in buckets.
fn span(buckets: &[(i32, u64)]) -> i64 {
    match (buckets.first(), buckets.last()) {
        (Some(&(first, _)), Some(&(last, _))) => i64::from(last) - i64::from(first) + 1,
        _ => 0,
    }
}

/// Prometheus' populated buckets `(index, count)` as OTLP's dense
/// `Buckets` message (Prometheus' bucket `i` is OTLP's `i - 1`); nothing
/// for none.
fn dense(out: &mut Vec<u8>, number: u32, buckets: &[(i32, u64)]) {
    use field::exponential as e;
    let Some(&(first, _)) = buckets.first() else { return };
    // Every bucket in the run is a varint: a gap is a zero, one byte.
    let gaps = usize::try_from(span(buckets)).unwrap_or(0) - buckets.len();
    let packed = gaps + buckets.iter().map(|&(_, c)| wire::varint_len(c)).sum::<usize>();
    let offset = wire::zigzag(i64::from(first.saturating_sub(1)));
    let len =
        if offset != 0 { 1 + wire::varint_len(offset) } else { 0 } + wire::bytes_field_len(e::BUCKET_COUNTS, packed);
    wire::tag(out, number, LEN);
    wire::varint(out, len as u64);
    if offset != 0 {
        wire::varint_field(out, e::OFFSET, offset);
    }
    wire::tag(out, e::BUCKET_COUNTS, LEN);
    wire::varint(out, packed as u64);
    let mut next = first;
    for &(i, c) in buckets {
        out.resize(out.len() + usize::try_from(i - next).unwrap_or(0), 0);
        wire::varint(out, c);
        next = i + 1;
    }
}

/// The metric being written: its kind and its two open lengths.
struct OpenMetric {
    kind: Kind,
    metric: Open,
    data: Open,
}

/// The registry walk of one export, writing as it goes.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
    time: u64,
    fallback_start: u64,
    temporality: Temporality,
    walk: &'a mut WalkState,
    /// The current family's metric, opened at its first point.
    metric: Option<OpenMetric>,
    points: u64,
}

/// A sum's or histogram's point as [`Writer::settle`] decides it: where it
/// starts and, for a delta, what it gained (`None`: send the reading as
/// it is).
struct Settled<T> {
    start: u64,
    gained: Option<T>,
}

impl Writer<'_> {
    fn temporality_number(&self) -> u64 {
        match self.temporality {
            Temporality::Cumulative => CUMULATIVE,
            Temporality::Delta => DELTA,
        }
    }

    /// Ends the open metric: the data's own fields after its points, then
    /// both lengths.
    fn close_metric(&mut self) {
        let Some(m) = self.metric.take() else { return };
        let temporality = self.temporality_number();
        let out = &mut *self.out;
        match m.kind {
            Kind::Sum => {
                wire::varint_field(out, field::data::AGGREGATION_TEMPORALITY, temporality);
                wire::varint_field(out, field::data::IS_MONOTONIC, 1);
            }
            Kind::Histogram | Kind::Exponential => {
                wire::varint_field(out, field::data::AGGREGATION_TEMPORALITY, temporality);
            }
            Kind::Gauge | Kind::Summary => {}
        }
        self.walk.data_width = wire::close(out, m.data);
        self.walk.metric_width = wire::close(out, m.metric);
    }

    /// Opens a point of `kind` in the current family's metric (making the
    /// metric at its first point, or anew when a collector's family changes
    /// kind). Returns the point, to [`close_point`](Self::close_point).
    fn open_point(&mut self, kind: Kind) -> Open {
        if self.metric.as_ref().is_some_and(|m| m.kind != kind) {
            self.close_metric();
        }
        if self.metric.is_none() {
            let out = &mut *self.out;
            let walk = &*self.walk;
            wire::tag(out, field::scope_metrics::METRICS, LEN);
            let metric = wire::open(out, walk.metric_width);
            if !walk.name.is_empty() {
                wire::string(out, field::metric::NAME, &walk.name);
            }
            if !walk.help.is_empty() {
                wire::string(out, field::metric::DESCRIPTION, &walk.help);
            }
            if !walk.unit.is_empty() {
                wire::string(out, field::metric::UNIT, &walk.unit);
            }
            wire::tag(out, kind as u32, LEN);
            let data = wire::open(out, walk.data_width);
            self.metric = Some(OpenMetric { kind, metric, data });
        }
        self.points += 1;
        wire::tag(self.out, field::data::DATA_POINTS, LEN);
        wire::open(self.out, self.walk.point_width)
    }

    fn close_point(&mut self, point: Open) {
        self.walk.point_width = wire::close(self.out, point);
    }

    /// Where a sum's or histogram's point starts and (delta) what it
    /// gained since the export before: `subtract(now, before)` makes the
    /// change, `None` for a reset; `record(now)` is the reading to keep.
    /// The series is known by its family's name and its attributes as
    /// encoded.
    fn settle<T>(
        &mut self,
        created: Option<u64>,
        attributes: Attributes<'_, '_>,
        subtract: impl FnOnce(&Cumulative, &mut WalkScratch<'_>) -> Option<T>,
        record: impl FnOnce(&mut Option<Cumulative>),
    ) -> Settled<T> {
        // Never after the point's own time (a series made during the walk).
        let series_start = created.unwrap_or(self.fallback_start).min(self.time);
        if self.temporality == Temporality::Cumulative {
            return Settled { start: series_start, gained: None };
        }
        let walk = &mut *self.walk;
        walk.key.clear();
        walk.key.extend_from_slice(&walk.registration.to_le_bytes());
        attributes.write(&mut walk.key);
        let (time, export, registration) = (self.time, walk.export, walk.registration);
        let mut scratch = WalkScratch { counts: &mut walk.counts };
        match walk.readings.get_mut(&walk.key[..]) {
            Some(reading) => {
                let settled = if reading.created == created {
                    // The same series as at the export before: what it
                    // gained since, or, if it went down (a collector's
                    // source restarted, bounds changed), everything it
                    // has, counted from that export on.
                    Settled { start: reading.at, gained: subtract(&reading.value, &mut scratch) }
                } else {
                    // A new series under the same labels: a new stream.
                    Settled { start: series_start, gained: None }
                };
                // Kept in place: a histogram's vectors are reused.
                let mut kept = Some(std::mem::replace(&mut reading.value, Cumulative::Int(0)));
                record(&mut kept);
                if let Some(value) = kept {
                    reading.value = value;
                }
                (reading.created, reading.at, reading.seen) = (created, time, export);
                settled
            }
            None => {
                let mut value = None;
                record(&mut value);
                if let Some(value) = value {
                    let reading = Reading { created, at: time, seen: export, registration, value };
                    walk.readings.insert(Box::from(&walk.key[..]), reading);
                }
                Settled { start: series_start, gained: None }
            }
        }
    }

    fn sum(
        &mut self,
        attributes: Attributes<'_, '_>,
        created: Option<u64>,
        value: Number,
        exemplar: Option<&Exemplar>,
    ) {
        use field::number as n;
        let settled = self.settle(
            created,
            attributes,
            |before, _| match (value, before) {
                (Number::Int(now), Cumulative::Int(b)) => now.checked_sub(*b).map(Number::Int),
                (Number::Float(now), Cumulative::Float(b)) => (now >= *b).then(|| Number::Float(now - b)),
                // A collector's series that turned from integer to float
                // (or back) subtracts as floats.
                (Number::Float(now), Cumulative::Int(b)) => {
                    (now >= *b as f64).then_some(Number::Float(now - *b as f64))
                }
                (Number::Int(now), Cumulative::Float(b)) => (now as f64 >= *b).then(|| Number::Float(now as f64 - b)),
                // Was a histogram (a collector's family changed kind): a
                // new reading.
                _ => None,
            },
            |kept| {
                *kept = Some(match value {
                    Number::Int(v) => Cumulative::Int(v),
                    Number::Float(v) => Cumulative::Float(v),
                });
            },
        );
        let point = self.open_point(Kind::Sum);
        let mut fields = FixedFields::default();
        if settled.start != 0 {
            fields.fixed64(field::point::START_TIME_UNIX_NANO, settled.start);
        }
        if self.time != 0 {
            fields.fixed64(field::point::TIME_UNIX_NANO, self.time);
        }
        match settled.gained.unwrap_or(value) {
            // An integer while it fits an `int64`.
            Number::Int(v) => match i64::try_from(v) {
                Ok(v) => fields.fixed64(n::AS_INT, v as u64),
                Err(_) => fields.double(n::AS_DOUBLE, v as f64),
            },
            Number::Float(v) => fields.double(n::AS_DOUBLE, v),
        }
        let out = &mut *self.out;
        fields.append_to(out);
        if let Some(e) = exemplar {
            self::exemplar(out, n::EXEMPLARS, e);
        }
        attributes.write(out);
        self.close_point(point);
    }

    fn gauge(&mut self, labels: &Labels<'_>, value: GaugeValue) {
        use field::number as n;
        let point = self.open_point(Kind::Gauge);
        let mut fields = FixedFields::default();
        if self.time != 0 {
            fields.fixed64(field::point::TIME_UNIX_NANO, self.time);
        }
        match value {
            GaugeValue::Int(v) => fields.fixed64(n::AS_INT, v as u64),
            GaugeValue::Float(v) => fields.double(n::AS_DOUBLE, v),
        }
        fields.append_to(self.out);
        attributes(self.out, n::ATTRIBUTES, labels);
        self.close_point(point);
    }

    fn histogram(
        &mut self,
        labels: &Labels<'_>,
        bounds: &[f64],
        counts: &[u64],
        sum: f64,
        count: u64,
        slots: &[Option<Exemplar>],
    ) {
        use field::histogram as h;
        let settled = self.settle(
            labels.created_unix_nanos(),
            Attributes::Labels { labels, number: h::ATTRIBUTES },
            |before, scratch| match before {
                Cumulative::Buckets { bounds: bb, counts: b, sum: bs, count: bc }
                    if bb.as_slice() == bounds && b.len() == counts.len() =>
                {
                    scratch.counts.clear();
                    for (n, b) in counts.iter().zip(b) {
                        scratch.counts.push(n.checked_sub(*b)?);
                    }
                    Some((sum - bs, count.checked_sub(*bc)?))
                }
                _ => None,
            },
            |kept| match kept {
                Some(Cumulative::Buckets { bounds: kb, counts: kc, sum: ks, count: kn }) => {
                    kb.clear();
                    kb.extend_from_slice(bounds);
                    kc.clear();
                    kc.extend_from_slice(counts);
                    (*ks, *kn) = (sum, count);
                }
                _ => {
                    *kept = Some(Cumulative::Buckets { bounds: bounds.to_vec(), counts: counts.to_vec(), sum, count });
                }
            },
        );
        let point = self.open_point(Kind::Histogram);
        let (counts, sum, count) = match settled.gained {
            Some((sum, count)) => (&self.walk.counts[..], sum, count),
            None => (counts, sum, count),
        };
        let out = &mut *self.out;
        fixed64(out, field::point::START_TIME_UNIX_NANO, settled.start);
        fixed64(out, field::point::TIME_UNIX_NANO, self.time);
        fixed64(out, field::point::COUNT, count);
        // `optional`: written even when zero.
        wire::double(out, field::point::SUM, sum);
        if !counts.is_empty() {
            wire::tag(out, h::BUCKET_COUNTS, LEN);
            wire::varint(out, 8 * counts.len() as u64);
            for &c in counts {
                out.extend_from_slice(&c.to_le_bytes());
            }
        }
        if !bounds.is_empty() {
            wire::tag(out, h::EXPLICIT_BOUNDS, LEN);
            wire::varint(out, 8 * bounds.len() as u64);
            for &b in bounds {
                out.extend_from_slice(&b.to_le_bytes());
            }
        }
        for e in slots.iter().flatten() {
            exemplar(out, h::EXEMPLARS, e);
        }
        attributes(self.out, h::ATTRIBUTES, labels);
        self.close_point(point);
    }

    fn exponential(&mut self, labels: &Labels<'_>, native: &NativeBucketsRef<'_>, slots: &[Option<Exemplar>]) {
        use field::exponential as e;
        let settled = self.settle(
            labels.created_unix_nanos(),
            Attributes::Labels { labels, number: e::ATTRIBUTES },
            |before, _| match before {
                Cumulative::Native(before) => NativeBuckets::from(*native).increase_since(before),
                _ => None,
            },
            |kept| *kept = Some(Cumulative::Native(NativeBuckets::from(*native))),
        );
        let gained;
        let view = match &settled.gained {
            Some(g) => {
                gained = g.view();
                &gained
            }
            None => native,
        };
        let point = self.open_point(Kind::Exponential);
        let walk = &mut *self.walk;
        let mut scale = i32::from(view.schema);
        let (mut positive, mut negative) = (view.positive, view.negative);
        if span(positive) > MAX_DENSE_BUCKETS || span(negative) > MAX_DENSE_BUCKETS {
            walk.positive.clear();
            walk.positive.extend_from_slice(positive);
            walk.negative.clear();
            walk.negative.extend_from_slice(negative);
            while (span(&walk.positive) > MAX_DENSE_BUCKETS || span(&walk.negative) > MAX_DENSE_BUCKETS) && scale > -4 {
                merge_down(&mut walk.positive, 1);
                merge_down(&mut walk.negative, 1);
                scale -= 1;
            }
            (positive, negative) = (&walk.positive, &walk.negative);
        }
        let out = &mut *self.out;
        attributes(out, e::ATTRIBUTES, labels);
        fixed64(out, field::point::START_TIME_UNIX_NANO, settled.start);
        fixed64(out, field::point::TIME_UNIX_NANO, self.time);
        fixed64(out, field::point::COUNT, view.count);
        wire::double(out, field::point::SUM, view.sum);
        if scale != 0 {
            wire::varint_field(out, e::SCALE, wire::zigzag(i64::from(scale)));
        }
        fixed64(out, e::ZERO_COUNT, view.zero_count);
        dense(out, e::POSITIVE, positive);
        dense(out, e::NEGATIVE, negative);
        for x in slots.iter().flatten() {
            exemplar(out, e::EXEMPLARS, x);
        }
        double(out, e::ZERO_THRESHOLD, view.zero_threshold);
        self.close_point(point);
    }

    fn summary(&mut self, labels: &Labels<'_>, quantiles: &[(f64, f64)], sum: f64, count: u64) {
        use field::summary as s;
        let point = self.open_point(Kind::Summary);
        let out = &mut *self.out;
        let start = labels.created_unix_nanos().unwrap_or(self.fallback_start).min(self.time);
        fixed64(out, field::point::START_TIME_UNIX_NANO, start);
        fixed64(out, field::point::TIME_UNIX_NANO, self.time);
        fixed64(out, field::point::COUNT, count);
        double(out, field::point::SUM, sum);
        // Quantiles with no observations in their window (NaN) are left out.
        for &(q, v) in quantiles.iter().filter(|(_, v)| !v.is_nan()) {
            wire::tag(out, s::QUANTILE_VALUES, LEN);
            wire::varint(out, (if q != 0.0 { 9 } else { 0 } + if v != 0.0 { 9 } else { 0 }) as u64);
            double(out, s::QUANTILE, q);
            double(out, s::VALUE, v);
        }
        attributes(self.out, s::ATTRIBUTES, labels);
        self.close_point(point);
    }
}

/// A point's attributes: from its labels, or as encoded already (a
/// cached counter run's).
#[derive(Clone, Copy)]
enum Attributes<'l, 'a> {
    /// Written as `number` fields.
    Labels { labels: &'l Labels<'a>, number: u32 },
    /// Already written, as the point's own attribute fields.
    Encoded(&'l [u8]),
}

impl Attributes<'_, '_> {
    #[inline]
    fn write(self, out: &mut Vec<u8>) {
        match self {
            Attributes::Labels { labels, number } => attributes(out, number, labels),
            Attributes::Encoded(bytes) => out.extend_from_slice(bytes),
        }
    }
}

/// A sum point's attributes from its labels.
fn sum_attributes<'l, 'a>(labels: &'l Labels<'a>) -> Attributes<'l, 'a> {
    Attributes::Labels { labels, number: field::number::ATTRIBUTES }
}

/// A delta's reusable buffer, lent to [`Writer::settle`]'s `subtract`.
struct WalkScratch<'a> {
    counts: &'a mut Vec<u64>,
}

/// A sum's value.
#[derive(Clone, Copy)]
enum Number {
    Int(u64),
    Float(f64),
}

/// A gauge's value.
#[derive(Clone, Copy)]
enum GaugeValue {
    Int(i64),
    Float(f64),
}

impl Visitor for Writer<'_> {
    fn family(&mut self, desc: &Desc) {
        self.close_metric();
        let walk = &mut *self.walk;
        walk.registration = desc.registration_id();
        walk.walked.push(walk.registration);
        walk.name.clear();
        walk.name.push_str(&desc.name);
        walk.help.clear();
        walk.help.push_str(&desc.help);
        walk.unit.clear();
        if let Some(unit) = &desc.unit {
            walk.unit.push_str(ucum(unit.as_str()));
        }
    }

    /// A string family's plain counters: their attributes copied from the
    /// family's [`RunCache`] while the run holds the same label sets.
    fn counters(&mut self, run: &CounterRun<'_>) {
        let walk = &mut *self.walk;
        // Taken out while the points are written, then put back.
        let mut cache = walk.runs.remove(&walk.registration).unwrap_or_default();
        cache.run.seen = walk.export;
        if !cache.run.holds(run) {
            cache.fill(run);
        }
        let mut start = 0;
        for (i, &end) in cache.ends.iter().enumerate() {
            let attributes = Attributes::Encoded(&cache.attributes[start..end]);
            self.sum(attributes, run.created_unix_nanos(i), Number::Int(run.value(i)), None);
            start = end;
        }
        self.walk.runs.insert(self.walk.registration, cache);
    }

    fn sample(&mut self, labels: &Labels<'_>, value: &Value<'_>) {
        let created = labels.created_unix_nanos();
        match *value {
            Value::Counter(v) => self.sum(sum_attributes(labels), created, Number::Int(v), None),
            Value::TracedCounter { total, exemplar } => {
                self.sum(sum_attributes(labels), created, Number::Int(total), exemplar.as_ref());
            }
            Value::FloatCounter(v) => self.sum(sum_attributes(labels), created, Number::Float(v), None),
            Value::Gauge(v) => self.gauge(labels, GaugeValue::Float(v)),
            Value::IntGauge(v) => self.gauge(labels, GaugeValue::Int(v)),
            Value::Histogram { bounds, counts, sum, count, exemplars } => {
                self.histogram(labels, bounds, counts, sum, count, exemplars);
            }
            Value::NativeHistogram { native, exemplars, .. } => self.exponential(labels, &native, exemplars),
            Value::Summary { quantiles, sum, count } => self.summary(labels, quantiles, sum, count),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp_proto::exponential_histogram_data_point::Buckets as OtlpBuckets;
    use crate::otlp_proto::{
        AggregationTemporality, ExportMetricsServiceRequest, KeyValue, Metric, any_value, exemplar, metric::Data,
        number_data_point,
    };
    use hotmeter::{Buckets, FloatCounter, NativeOpts, OwnedValue, SummaryOpts, TraceId, TracedCounter};
    use prost::Message;

    const T: u64 = 1_700_000_000_000_000_000;

    /// The body as prost reads it, checked to be the very bytes prost
    /// writes for that message: fields in order, zero plain fields left
    /// out, every length in its shortest form.
    fn decode(body: &[u8]) -> ExportMetricsServiceRequest {
        let request = ExportMetricsServiceRequest::decode(body).expect("a body prost decodes");
        let again = request.encode_to_vec();
        if let Some(at) = (0..body.len().max(again.len())).find(|&i| body.get(i) != again.get(i)) {
            let around = |b: &[u8]| format!("{:02x?}", &b[at.saturating_sub(24)..(at + 24).min(b.len())]);
            panic!(
                "prost writes the same message otherwise from byte {at}: {} here, {} by prost",
                around(body),
                around(&again)
            );
        }
        request
    }

    fn metrics(request: &ExportMetricsServiceRequest) -> &[Metric] {
        &request.resource_metrics[0].scope_metrics[0].metrics
    }

    fn metric<'a>(request: &'a ExportMetricsServiceRequest, name: &str) -> &'a Data {
        metrics(request)
            .iter()
            .find(|m| m.name == name)
            .and_then(|m| m.data.as_ref())
            .unwrap_or_else(|| panic!("no {name}"))
    }

    fn attrs(kvs: &[KeyValue]) -> Vec<(String, String)> {
        kvs.iter()
            .map(|kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => (kv.key.clone(), s.clone()),
                other => panic!("{} is {other:?}", kv.key),
            })
            .collect()
    }

    /// Prometheus' `(index, count)` buckets back from OTLP's dense run.
    fn sparse(b: Option<&OtlpBuckets>) -> Vec<(i32, u64)> {
        b.map_or_else(Vec::new, |b| {
            (0..).zip(&b.bucket_counts).filter(|&(_, &c)| c > 0).map(|(i, &c)| (b.offset + 1 + i, c)).collect()
        })
    }

    #[test]
    fn every_kind_maps_onto_its_otlp_point_as_the_snapshot_reads() {
        let r = Registry::new();
        let jobs = r.labeled_family("jobs_total", "Jobs.", &["tenant"], hotmeter::Counter::new).unwrap();
        jobs.with(&["a"], |c| c.inc_by(3)).unwrap();
        jobs.with(&["b"], |c| c.inc_by(u64::MAX)).unwrap();
        r.register(hotmeter::Opts::new("cpu_seconds_total", "CPU."), FloatCounter::new()).unwrap().inc_by(1.25);
        r.gauge("temp", "T.").unwrap().set(-1.5);
        r.int_gauge("depth", "D.").unwrap().set(-4);
        let h = r.histogram("lat_seconds", "Latency.", Buckets::new([0.1, 1.0]).unwrap()).unwrap();
        for v in [0.05, 0.5, 2.0] {
            h.observe(v);
        }
        let n = r.native_histogram("rt_seconds", "RT.", NativeOpts::new().schema(2).unwrap()).unwrap();
        for v in [-3.0, 0.0, 0.001, 0.3, 0.3, 7.0, 1e6] {
            n.observe(v);
        }
        let s = r.summary("size_bytes", "Sizes.", SummaryOpts::default()).unwrap();
        s.observe(10.0);
        s.observe(30.0);

        let mut enc = OtlpEncoder::new("svc").unwrap().attribute("deployment.environment.name", "test").unwrap();
        let encoded = enc.encode(&r, T);
        assert_eq!(encoded.data_points, 9);
        let request = decode(encoded.body);
        let snap = r.snapshot();

        let rm = &request.resource_metrics[0];
        let resource = attrs(&rm.resource.as_ref().unwrap().attributes);
        assert_eq!(resource[0], ("service.name".to_owned(), "svc".to_owned()));
        assert_eq!(resource[1].0, "service.instance.id");
        assert_eq!(resource[2], ("deployment.environment.name".to_owned(), "test".to_owned()));
        assert_eq!(rm.schema_url, SCHEMA_URL);
        let scope = rm.scope_metrics[0].scope.as_ref().unwrap();
        assert_eq!((scope.name.as_str(), scope.version.as_str()), ("hotmeter", env!("CARGO_PKG_VERSION")));

        let Data::Sum(jobs) = metric(&request, "jobs_total") else { panic!("a counter is a sum") };
        assert!(jobs.is_monotonic);
        assert_eq!(jobs.aggregation_temporality, AggregationTemporality::Cumulative as i32);
        let by_tenant: Vec<_> = jobs.data_points.iter().map(|p| (attrs(&p.attributes), p.value)).collect();
        assert_eq!(
            by_tenant,
            [
                (vec![("tenant".to_owned(), "a".to_owned())], Some(number_data_point::Value::AsInt(3))),
                (
                    vec![("tenant".to_owned(), "b".to_owned())],
                    Some(number_data_point::Value::AsDouble(u64::MAX as f64))
                ),
            ],
            "an integer while it fits in an int64, else a double"
        );
        for p in &jobs.data_points {
            assert!(p.start_time_unix_nano > 0 && p.start_time_unix_nano < unix_nanos_now() + 1, "its created time");
            assert_eq!(p.time_unix_nano, T);
        }
        let Data::Sum(cpu) = metric(&request, "cpu_seconds_total") else { panic!() };
        assert_eq!(cpu.data_points[0].value, Some(number_data_point::Value::AsDouble(1.25)));
        let Data::Gauge(temp) = metric(&request, "temp") else { panic!() };
        assert_eq!(
            (temp.data_points[0].value, temp.data_points[0].start_time_unix_nano),
            (Some(number_data_point::Value::AsDouble(-1.5)), 0)
        );
        let Data::Gauge(depth) = metric(&request, "depth") else { panic!() };
        assert_eq!(depth.data_points[0].value, Some(number_data_point::Value::AsInt(-4)));

        let Data::Histogram(lat) = metric(&request, "lat_seconds") else { panic!() };
        let p = &lat.data_points[0];
        let Some(OwnedValue::Histogram { bounds, counts, sum, count }) = snap.value("lat_seconds", &[]) else {
            panic!()
        };
        assert_eq!((&p.explicit_bounds, &p.bucket_counts, p.sum, p.count), (bounds, counts, Some(*sum), *count));
        assert_eq!(p.bucket_counts, [1, 1, 1]);

        let Data::ExponentialHistogram(rt) = metric(&request, "rt_seconds") else { panic!() };
        let p = &rt.data_points[0];
        let Some(OwnedValue::NativeHistogram { native, .. }) = snap.value("rt_seconds", &[]) else { panic!() };
        let view = native.view();
        assert_eq!((p.scale, p.count, p.sum, p.zero_count), (2, view.count, Some(view.sum), view.zero_count));
        assert_eq!(p.zero_threshold, view.zero_threshold);
        assert_eq!(sparse(p.positive.as_ref()), view.positive, "every positive bucket, at its index");
        assert_eq!(sparse(p.negative.as_ref()), view.negative, "every negative bucket, at its index");
        // OTLP's bucket `offset` holds base^offset < v <= base^(offset+1):
        // 0.3 with base 2^(1/4) is in (2^(-7/4), 2^(-6/4)], OTLP index -7.
        let pos = p.positive.as_ref().unwrap();
        let base = 2f64.powf(0.25);
        let i = (0..).zip(&pos.bucket_counts).find(|&(_, &c)| c == 2).map(|(i, _)| pos.offset + i).unwrap();
        assert!(base.powi(i) < 0.3 && 0.3 <= base.powi(i + 1), "0.3 is in OTLP bucket {i}");

        let Data::Summary(size) = metric(&request, "size_bytes") else { panic!() };
        let p = &size.data_points[0];
        assert_eq!((p.count, p.sum), (2, 40.0));
        let Some(OwnedValue::Summary { quantiles, .. }) = snap.value("size_bytes", &[]) else { panic!() };
        let expected: Vec<_> = quantiles.iter().filter(|(_, v)| !v.is_nan()).map(|&(q, v)| (q, v)).collect();
        let sent: Vec<_> = p.quantile_values.iter().map(|q| (q.quantile, q.value)).collect();
        // The snapshot reads the decaying window again: equal within a rounding.
        assert!(!sent.is_empty() && sent.len() == expected.len(), "{sent:?} vs {expected:?}");
        for ((sq, sv), (eq, ev)) in sent.iter().zip(&expected) {
            assert!(sq == eq && (sv - ev).abs() <= 1e-9 * ev.abs(), "quantile {sq}: sent {sv}, snapshot {ev}");
        }
    }

    #[test]
    fn exemplars_carry_trace_ids_as_otlp_has_them() {
        let r = Registry::new();
        let c = r.register(hotmeter::Opts::new("req_total", "Req."), TracedCounter::new()).unwrap();
        c.inc_with_exemplar(1, &TraceId::new("4bf92f3577b34da6a3ce929d0e0e4736").unwrap());
        let zero = r.register(hotmeter::Opts::new("zero_total", "Z."), TracedCounter::new()).unwrap();
        zero.inc_with_exemplar(1, &TraceId::new(&"0".repeat(32)).unwrap());
        let h = r.histogram("lat_seconds", "L.", Buckets::new([1.0]).unwrap()).unwrap();
        h.observe_with_exemplar(0.5, &TraceId::new("job-42").unwrap());
        let mut enc = OtlpEncoder::new("svc").unwrap();
        let request = decode(enc.encode(&r, T).body);
        let Data::Sum(req) = metric(&request, "req_total") else { panic!() };
        let e = &req.data_points[0].exemplars[0];
        assert_eq!(
            e.trace_id,
            [0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36]
        );
        assert!(e.filtered_attributes.is_empty() && e.span_id.is_empty());
        assert!(e.time_unix_nano > 0);
        let Data::Sum(zero) = metric(&request, "zero_total") else { panic!() };
        let e = &zero.data_points[0].exemplars[0];
        assert!(e.trace_id.is_empty(), "the all-zero id is invalid in OTLP: an attribute instead");
        assert_eq!(attrs(&e.filtered_attributes), [("trace_id".to_owned(), "0".repeat(32))]);
        let Data::Histogram(lat) = metric(&request, "lat_seconds") else { panic!() };
        let e = &lat.data_points[0].exemplars[0];
        assert!(e.trace_id.is_empty(), "not 32 hex digits: no OTLP trace id");
        assert_eq!(attrs(&e.filtered_attributes), [("trace_id".to_owned(), "job-42".to_owned())]);
        assert_eq!(e.value, Some(exemplar::Value::AsDouble(0.5)));
    }

    fn int_point(request: &ExportMetricsServiceRequest, name: &str) -> (u64, Option<number_data_point::Value>) {
        let Data::Sum(s) = metric(request, name) else { panic!("{name} is not a sum") };
        (s.data_points[0].start_time_unix_nano, s.data_points[0].value)
    }

    #[test]
    fn delta_sends_what_each_series_gained_and_a_series_that_came_back_starts_anew() {
        let r = Registry::new();
        let jobs = r.labeled_family("jobs_total", "Jobs.", &["tenant"], hotmeter::Counter::new).unwrap();
        jobs.with(&["a"], |c| c.inc_by(3)).unwrap();
        let n = r.native_histogram("rt_seconds", "RT.", NativeOpts::new().schema(0).unwrap()).unwrap();
        n.observe(3.0);
        // Export times after the series' creation, as they are in use.
        const T: u64 = 4_000_000_000_000_000_000;
        let mut enc = OtlpEncoder::new("svc").unwrap().temporality(Temporality::Delta);
        let first = decode(enc.encode(&r, T).body);
        let (start1, v1) = int_point(&first, "jobs_total");
        assert_eq!(v1, Some(number_data_point::Value::AsInt(3)), "the first point: everything since creation");
        assert!(start1 < T);
        let Data::Sum(s) = metric(&first, "jobs_total") else { panic!() };
        assert_eq!(s.aggregation_temporality, AggregationTemporality::Delta as i32);

        jobs.with(&["a"], |c| c.inc_by(2)).unwrap();
        n.observe(3.5);
        n.observe(100.0);
        let second = decode(enc.encode(&r, T + 10).body);
        assert_eq!(
            int_point(&second, "jobs_total"),
            (T, Some(number_data_point::Value::AsInt(2))),
            "since the last export"
        );
        let Data::ExponentialHistogram(rt) = metric(&second, "rt_seconds") else { panic!() };
        let p = &rt.data_points[0];
        assert_eq!((p.start_time_unix_nano, p.count, p.sum), (T, 2, Some(103.5)));
        // Schema 0: 3.0 and 3.5 share (2, 4], Prometheus index 2; 100 is in (64, 128], index 7.
        assert_eq!(sparse(p.positive.as_ref()), [(2, 1), (7, 1)], "only the gained observations, bucket by bucket");

        // Removed and come back: a new series, from zero with a new start.
        assert!(jobs.remove(&["a"]).unwrap());
        jobs.with(&["a"], |c| c.inc()).unwrap();
        let third = decode(enc.encode(&r, T + 20).body);
        let (start3, v3) = int_point(&third, "jobs_total");
        assert_eq!(v3, Some(number_data_point::Value::AsInt(1)));
        assert!(start3 >= start1 && start3 != T + 10, "a new stream from its created time, not the last export");

        // Nothing new: zero deltas, each from the export before.
        let fourth = decode(enc.encode(&r, T + 30).body);
        assert_eq!(int_point(&fourth, "jobs_total"), (T + 20, Some(number_data_point::Value::AsInt(0))));
    }

    /// A collector's source, read at each scrape: the counter's total, and
    /// the histogram's bounds and counts.
    type Source = std::sync::Arc<std::sync::Mutex<(u64, Vec<f64>, Vec<u64>)>>;

    struct CounterFeed(Source);
    impl hotmeter::Collector for CounterFeed {
        fn collect(&self, out: &mut hotmeter::CollectorSeries<'_>) {
            let total = self.0.lock().unwrap().0;
            out.counter(&[], total).unwrap();
        }
    }

    struct HistogramFeed(Source);
    impl hotmeter::Collector for HistogramFeed {
        fn collect(&self, out: &mut hotmeter::CollectorSeries<'_>) {
            let (_, bounds, counts) = self.0.lock().unwrap().clone();
            out.histogram(&[], &bounds, &counts, 1.0).unwrap();
        }
    }

    /// Review findings: a series whose total went down without a new
    /// created time (a collector's source restarted) restarts from the
    /// export before, never from the encoder's start, which would overlap
    /// the points already sent; a histogram whose bounds changed does the
    /// same rather than subtract counts of other buckets.
    #[test]
    fn delta_after_a_reset_in_place_counts_from_the_export_before() {
        const T: u64 = 4_000_000_000_000_000_000;
        use hotmeter::expose::MetricType;
        let r = Registry::new();
        let source: Source = std::sync::Arc::new(std::sync::Mutex::new((10, vec![1.0, 2.0], vec![1, 1, 0])));
        r.register_collector(("pool_reads_total", "Reads."), MetricType::Counter, &[], CounterFeed(source.clone()))
            .unwrap();
        r.register_collector(
            ("pool_wait_seconds", "Waits."),
            MetricType::Histogram,
            &[],
            HistogramFeed(source.clone()),
        )
        .unwrap();
        let mut enc = OtlpEncoder::new("svc").unwrap().temporality(Temporality::Delta);
        let first = decode(enc.encode(&r, T).body);
        let (start, value) = int_point(&first, "pool_reads_total");
        assert_eq!(value, Some(number_data_point::Value::AsInt(10)));
        assert!(start <= T, "no created time: the encoder's start, never after the point");
        source.lock().unwrap().0 = 15;
        assert_eq!(
            int_point(&decode(enc.encode(&r, T + 10).body), "pool_reads_total"),
            (T, Some(number_data_point::Value::AsInt(5)))
        );
        *source.lock().unwrap() = (3, vec![100.0, 200.0], vec![5, 1, 0]);
        let third = decode(enc.encode(&r, T + 20).body);
        assert_eq!(
            int_point(&third, "pool_reads_total"),
            (T + 10, Some(number_data_point::Value::AsInt(3))),
            "went down: a reset since the export before, all it has"
        );
        let Data::Histogram(wait) = metric(&third, "pool_wait_seconds") else { panic!() };
        let p = &wait.data_points[0];
        assert_eq!(
            (p.start_time_unix_nano, &p.explicit_bounds[..], &p.bucket_counts[..], p.count),
            (T + 10, &[100.0, 200.0][..], &[5, 1, 0][..], 6),
            "new bounds: all it has since the export before, never counts subtracted across other buckets"
        );
    }

    /// Review finding: a native histogram lowers its schema when it fills
    /// more than its bucket limit, in normal operation; the delta follows
    /// it (the earlier reading merged down) instead of resending all.
    #[test]
    fn delta_follows_a_native_histogram_that_merges_its_buckets_down() {
        const T: u64 = 4_000_000_000_000_000_000;
        let r = Registry::new();
        let n = r
            .native_histogram("rt_seconds", "RT.", NativeOpts::new().schema(3).unwrap().max_buckets(4).unwrap())
            .unwrap();
        for v in [1.0, 1.1, 1.2, 1.3] {
            n.observe(v);
        }
        let mut enc = OtlpEncoder::new("svc").unwrap().temporality(Temporality::Delta);
        let _ = enc.encode(&r, T);
        n.observe(5.0);
        let request = decode(enc.encode(&r, T + 10).body);
        let Data::ExponentialHistogram(rt) = metric(&request, "rt_seconds") else { panic!() };
        let p = &rt.data_points[0];
        assert!(p.scale < 3, "the histogram did merge down (scale {})", p.scale);
        assert_eq!((p.count, p.start_time_unix_nano), (1, T), "only 5.0, since the export before");
        assert_eq!(sparse(p.positive.as_ref()).iter().map(|&(_, c)| c).sum::<u64>(), 1);
    }

    /// Review finding: OTLP's buckets are dense; two observations far apart
    /// at a fine schema would span 280,000 of them. The point is merged
    /// down until it fits, exactly.
    #[test]
    fn a_wide_exponential_point_is_merged_down_to_fit() {
        let r = Registry::new();
        let n = r.native_histogram("wide", "W.", NativeOpts::new().schema(8).unwrap()).unwrap();
        for v in [1e-30, 1e-30, 1.0, 1e300, -1e200] {
            n.observe(v);
        }
        let mut enc = OtlpEncoder::new("svc").unwrap();
        let request = decode(enc.encode(&r, T).body);
        let Data::ExponentialHistogram(h) = metric(&request, "wide") else { panic!() };
        let p = &h.data_points[0];
        let (pos, neg) = (p.positive.as_ref().unwrap(), p.negative.as_ref().unwrap());
        assert!(
            pos.bucket_counts.len() as i64 <= MAX_DENSE_BUCKETS && neg.bucket_counts.len() as i64 <= MAX_DENSE_BUCKETS
        );
        assert!(p.scale < 8);
        let Some(OwnedValue::NativeHistogram { native, .. }) = r.snapshot().value("wide", &[]).cloned() else {
            panic!()
        };
        let (mut positive, mut negative) = (native.positive.clone(), native.negative.clone());
        let by = u32::try_from(i32::from(native.schema) - p.scale).unwrap();
        merge_down(&mut positive, by);
        merge_down(&mut negative, by);
        assert_eq!(sparse(Some(pos)), positive, "the snapshot's buckets at the coarser scale");
        assert_eq!(sparse(Some(neg)), negative);
        assert_eq!(p.count, 5);
    }

    #[test]
    fn start_times_never_pass_the_point_and_units_are_ucum() {
        let r = Registry::new();
        r.counter("jobs_total", "Jobs.").unwrap().inc();
        let _lat = r
            .register(
                hotmeter::Opts::new("lat_seconds", "L.").unit(hotmeter::Unit::new("seconds").unwrap()),
                hotmeter::Histogram::new(Buckets::new([1.0]).unwrap()),
            )
            .unwrap();
        let mut enc = OtlpEncoder::new("svc").unwrap();
        let request = decode(enc.encode(&r, 1).body);
        let (start, _) = int_point(&request, "jobs_total");
        assert_eq!(start, 1, "a series made after the export's time starts at that time");
        let lat = metrics(&request).iter().find(|m| m.name == "lat_seconds").unwrap();
        assert_eq!(lat.unit, "s");
        assert_eq!((ucum("bytes"), ucum("ratio"), ucum("widgets")), ("By", "1", "widgets"));
    }

    /// A string family's counters reuse their attributes, encoded at the
    /// export before, only while the family holds the very same label
    /// sets: a series swapped for another (same count, same lengths) is
    /// encoded afresh, and values are always this export's.
    #[test]
    fn a_counter_run_reuses_attributes_only_for_the_same_label_sets() {
        let r = Registry::new();
        let jobs = r.labeled_family("jobs_total", "Jobs.", &["tenant"], hotmeter::Counter::new).unwrap();
        let mut enc = OtlpEncoder::new("svc").unwrap();
        let points = |enc: &mut OtlpEncoder| {
            let request = decode(enc.encode(&r, T).body);
            let Data::Sum(s) = metric(&request, "jobs_total") else { panic!() };
            s.data_points
                .iter()
                .map(|p| {
                    let Some(number_data_point::Value::AsInt(v)) = p.value else { panic!() };
                    (attrs(&p.attributes)[0].1.clone(), v)
                })
                .collect::<Vec<_>>()
        };
        let expected = |pairs: &[(&str, i64)]| pairs.iter().map(|&(t, v)| (t.to_owned(), v)).collect::<Vec<_>>();
        for (t, n) in [("a", 1), ("b", 2), ("c", 3)] {
            jobs.with(&[t], |c| c.inc_by(n)).unwrap();
        }
        assert_eq!(points(&mut enc), expected(&[("a", 1), ("b", 2), ("c", 3)]));
        jobs.with(&["b"], |c| c.inc_by(10)).unwrap();
        assert_eq!(points(&mut enc), expected(&[("a", 1), ("b", 12), ("c", 3)]), "same label sets: new values");
        // Same count, same lengths, other label sets.
        jobs.remove(&["b"]).unwrap();
        jobs.with(&["d"], |c| c.inc_by(4)).unwrap();
        assert_eq!(points(&mut enc), expected(&[("a", 1), ("c", 3), ("d", 4)]));
        jobs.remove(&["a"]).unwrap();
        jobs.with(&["e"], |c| c.inc_by(5)).unwrap();
        assert_eq!(points(&mut enc), expected(&[("c", 3), ("d", 4), ("e", 5)]));
        // The same encoder on another registry with a family of that name.
        let other = Registry::new();
        let theirs = other.labeled_family("jobs_total", "Jobs.", &["tenant"], hotmeter::Counter::new).unwrap();
        for (t, n) in [("c", 30), ("d", 40), ("e", 50)] {
            theirs.with(&[t], |c| c.inc_by(n)).unwrap();
        }
        let request = decode(enc.encode(&other, T).body);
        let Data::Sum(s) = metric(&request, "jobs_total") else { panic!() };
        let values: Vec<_> = s.data_points.iter().map(|p| p.value).collect();
        assert_eq!(values, [30, 40, 50].map(|v| Some(number_data_point::Value::AsInt(v))));
        assert_eq!(points(&mut enc), expected(&[("c", 3), ("d", 4), ("e", 5)]));
    }

    /// Review finding: with UTF-8 names, `{a="x",b="y"}` spells both the
    /// labels `a`, `b` and the one label `a="x",b`: the run cache is kept
    /// per registration, never carried to another by a name or by text.
    #[test]
    fn a_run_cache_never_crosses_registrations() {
        let utf8 = || Registry::builder().name_validation(hotmeter::NameValidation::Utf8).build().unwrap();
        let family = |r: &Registry, labels: &[&str]| {
            r.labeled_family("jobs_total", "J.", labels, hotmeter::Counter::new).unwrap()
        };
        let first = |request: &ExportMetricsServiceRequest| {
            let Data::Sum(s) = metric(request, "jobs_total") else { panic!() };
            (attrs(&s.data_points[0].attributes), s.data_points[0].value)
        };
        let odd = vec![("a=\"x\",b".to_owned(), "y".to_owned())];
        let plain = vec![("a".to_owned(), "x".to_owned()), ("b".to_owned(), "y".to_owned())];
        // Re-registered in one registry.
        let r = utf8();
        family(&r, &["a", "b"]).with(&["x", "y"], |c| c.inc_by(1)).unwrap();
        let mut enc = OtlpEncoder::new("s").unwrap();
        assert_eq!(first(&decode(enc.encode(&r, T).body)).0, plain);
        assert!(r.unregister("jobs_total"));
        family(&r, &["a=\"x\",b"]).with(&["y"], |c| c.inc_by(2)).unwrap();
        assert_eq!(first(&decode(enc.encode(&r, T).body)), (odd.clone(), Some(number_data_point::Value::AsInt(2))));
        // Two registries, one encoder, alternately.
        let (a, b) = (utf8(), utf8());
        family(&a, &["a", "b"]).with(&["x", "y"], |c| c.inc_by(1)).unwrap();
        family(&b, &["a=\"x\",b"]).with(&["y"], |c| c.inc_by(2)).unwrap();
        for _ in 0..2 {
            assert_eq!(first(&decode(enc.encode(&a, T).body)).0, plain);
            assert_eq!(first(&decode(enc.encode(&b, T).body)).0, odd);
        }
    }

    /// A collector's counters, read from a list at each scrape.
    type Feed = std::sync::Arc<std::sync::Mutex<Vec<(&'static str, Number)>>>;
    struct CollectorFeed(Feed);
    impl hotmeter::Collector for CollectorFeed {
        fn collect(&self, out: &mut hotmeter::CollectorSeries<'_>) {
            for &(k, v) in self.0.lock().unwrap().iter() {
                match v {
                    Number::Int(v) => out.counter(&[k], v).unwrap(),
                    Number::Float(v) => out.float_counter(&[k], v).unwrap(),
                }
            }
        }
    }

    fn delta_values(request: &ExportMetricsServiceRequest, name: &str) -> Vec<f64> {
        let Data::Sum(s) = metric(request, name) else { panic!() };
        s.data_points
            .iter()
            .map(|p| match p.value {
                Some(number_data_point::Value::AsInt(v)) => v as f64,
                Some(number_data_point::Value::AsDouble(v)) => v,
                None => panic!("no value"),
            })
            .collect()
    }

    /// Review findings: in delta, a collector's series (no created
    /// timestamp) that skips an export continues its stream when it comes
    /// back (its total is not sent again); one that turns from integer to
    /// float subtracts as floats; and one encoder alternating between two
    /// registries keeps each one's readings.
    #[test]
    fn delta_survives_a_skipped_export_a_type_change_and_two_registries() {
        const T: u64 = 4_000_000_000_000_000_000;
        use hotmeter::expose::MetricType;
        let r = Registry::new();
        let feed: Feed = std::sync::Arc::new(std::sync::Mutex::new(vec![("a", Number::Int(100))]));
        r.register_collector(("reads_total", "R."), MetricType::Counter, &["k"], CollectorFeed(feed.clone())).unwrap();
        let mut enc = OtlpEncoder::new("s").unwrap().temporality(Temporality::Delta);
        let mut sent = 0.0;
        let mut at = T;
        let mut export = |enc: &mut OtlpEncoder, feed_now: Vec<(&'static str, Number)>| {
            *feed.lock().unwrap() = feed_now;
            at += 10_000_000_000;
            let request = decode(enc.encode(&r, at).body);
            let values = metrics(&request)
                .iter()
                .any(|m| m.name == "reads_total")
                .then(|| delta_values(&request, "reads_total"));
            values.unwrap_or_default()
        };
        for (feed_now, expected) in [
            (vec![("a", Number::Int(100))], vec![100.0]),
            (vec![], vec![]),
            (vec![("a", Number::Int(110))], vec![10.0]),
            (vec![("a", Number::Float(110.5))], vec![0.5]),
            (vec![("a", Number::Int(120))], vec![9.5]),
        ] {
            let got = export(&mut enc, feed_now);
            assert_eq!(got, expected);
            sent += got.iter().sum::<f64>();
        }
        assert_eq!(sent, 120.0, "the deltas add up to the total, never more");

        let (a, b) = (Registry::new(), Registry::new());
        let (ca, cb) = (a.counter("jobs_total", "J.").unwrap(), b.counter("jobs_total", "J.").unwrap());
        let mut enc = OtlpEncoder::new("s").unwrap().temporality(Temporality::Delta);
        for round in 0..3u64 {
            ca.inc_by(10);
            cb.inc_by(100);
            let pa = int_point(&decode(enc.encode(&a, T + 2 * round + 10).body), "jobs_total").1;
            let pb = int_point(&decode(enc.encode(&b, T + 2 * round + 11).body), "jobs_total").1;
            assert_eq!(
                (pa, pb),
                (Some(number_data_point::Value::AsInt(10)), Some(number_data_point::Value::AsInt(100))),
                "round {round}"
            );
        }
    }

    /// Lengths are written before their bodies from guesses (the export
    /// before, the metric and point before): a body whose sizes swing
    /// from one family, one export, to the next still decodes to every
    /// point, and is written as prost writes it.
    #[test]
    fn lengths_settle_whatever_the_guesses() {
        let r = Registry::new();
        r.counter("a_total", "A.").unwrap().inc();
        let wide = r.labeled_family("b_total", "B.", &["id", "path"], hotmeter::Counter::new).unwrap();
        let long = "x".repeat(300);
        for i in 0..5_000u64 {
            wide.with(&[&i.to_string(), if i % 7 == 0 { &long } else { "/" }], |c| c.inc_by(i << (i % 60))).unwrap();
        }
        r.gauge("c", "C.").unwrap().set(1.0);
        let mut enc = OtlpEncoder::new("svc").unwrap();
        for round in 0..3 {
            let encoded = enc.encode(&r, T);
            let points = encoded.data_points;
            let request = decode(encoded.body);
            let all: usize = metrics(&request)
                .iter()
                .map(|m| match m.data.as_ref().unwrap() {
                    Data::Sum(s) => s.data_points.len(),
                    Data::Gauge(g) => g.data_points.len(),
                    other => panic!("{other:?}"),
                })
                .sum();
            assert_eq!(all as u64, points, "every point counted once");
            let Data::Sum(b) = metric(&request, "b_total") else { panic!() };
            assert_eq!(b.data_points.len(), [2_001, 101, 4][round], "the cardinality limit's 2,000, and the overflow");
            let mut overflowed = 0;
            for p in &b.data_points {
                let labels = attrs(&p.attributes);
                let Ok(i) = labels[0].1.parse::<u64>() else {
                    assert_eq!(labels[0].1, "__overflow__");
                    overflowed += 1;
                    continue;
                };
                let value = i << (i % 60);
                let expected = i64::try_from(value)
                    .map_or(number_data_point::Value::AsDouble(value as f64), number_data_point::Value::AsInt);
                assert_eq!(p.value, Some(expected), "{labels:?}");
            }
            assert_eq!(overflowed, 1);
            assert!(matches!(metric(&request, "c"), Data::Gauge(_)));
            // Smaller each round: every guess from the round before is too wide.
            let keep = [100u64, 3, 0][round];
            for i in keep..5_000 {
                wide.remove(&[&i.to_string(), if i % 7 == 0 { &long } else { "/" }]).unwrap();
            }
        }
    }

    #[test]
    fn resource_attributes_are_checked_and_replaced() {
        assert!(matches!(OtlpEncoder::new(""), Err(ConfigError::InvalidAttribute { .. })));
        let enc = OtlpEncoder::new("a").unwrap();
        assert!(matches!(enc.attribute("", "x"), Err(ConfigError::InvalidAttribute { .. })));
        let enc = OtlpEncoder::new("a").unwrap();
        assert!(matches!(enc.attribute("service.name", ""), Err(ConfigError::InvalidAttribute { .. })));
        let enc = OtlpEncoder::new("a").unwrap().attribute("service.name", "b").unwrap();
        assert_eq!(enc.resource().find(|(k, _)| *k == "service.name"), Some(("service.name", "b")));
        assert_eq!(enc.resource().count(), 2);
    }
}
