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

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use hotmeter::expose::Desc;
use hotmeter::expose::{Labels, Value, Visitor};
use hotmeter::native::{NativeBuckets, NativeBucketsRef, merge_down};
use hotmeter::{Exemplar, Registry};
use prost::Message;

use crate::error::{ConfigError, EncodeError};
use crate::otlp_proto::{
    AggregationTemporality, AnyValue, ExponentialHistogram, ExponentialHistogramDataPoint, ExportMetricsServiceRequest,
    Gauge, Histogram, HistogramDataPoint, InstrumentationScope, KeyValue, Metric, NumberDataPoint, Resource,
    ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint, any_value, exemplar,
    exponential_histogram_data_point::Buckets, metric::Data, number_data_point, summary_data_point::ValueAtQuantile,
};

/// The OpenTelemetry semantic conventions' schema the resource attributes
/// follow (`service.name`, `service.instance.id`).
pub const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.26.0";

/// The instrumentation scope every export names.
const SCOPE_NAME: &str = "hotmeter";

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

/// Encodes a registry as OTLP metrics, reusing its buffers from one export
/// to the next.
///
/// # Examples
/// ```
/// use prost::Message;
/// use hotmeter_push::otlp_proto::{ExportMetricsServiceRequest, metric::Data};
///
/// let registry = hotmeter::Registry::new();
/// registry.counter("jobs_total", "Jobs.")?.inc_by(3);
/// let mut encoder = hotmeter_push::OtlpEncoder::new("batch-worker")?.attribute("deployment.environment.name", "prod")?;
/// let body = encoder.encode(&registry, 1_700_000_000_000_000_000)?.body.to_vec();
/// let request = ExportMetricsServiceRequest::decode(&body[..])?;
/// let metric = &request.resource_metrics[0].scope_metrics[0].metrics[0];
/// assert_eq!(metric.name, "jobs_total");
/// let Some(Data::Sum(sum)) = &metric.data else { panic!("a counter is a sum") };
/// assert!(sum.is_monotonic);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct OtlpEncoder {
    resource: Vec<KeyValue>,
    temporality: Temporality,
    /// When this encoder was made: the start of a series that keeps none.
    started_unix_nano: u64,
    request: ExportMetricsServiceRequest,
    raw: Vec<u8>,
    /// With delta temporality: each sum's and histogram's last reading.
    previous: HashMap<SeriesKey, Reading>,
    /// This export's readings, swapped with `previous` after it.
    current: HashMap<SeriesKey, Reading>,
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

/// A series: its family's name and its label values.
type SeriesKey = (String, Vec<String>);

/// What a series read at an export, for the next delta.
#[derive(Debug, Clone)]
struct Reading {
    /// Its created timestamp (`None` when it keeps none).
    created: Option<u64>,
    /// The export's time: the next delta's start.
    at: u64,
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

fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_owned())) }),
    }
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
            resource: vec![
                string_attribute("service.name", &service_name),
                string_attribute("service.instance.id", &instance),
            ],
            temporality: Temporality::Cumulative,
            started_unix_nano,
            request: ExportMetricsServiceRequest::default(),
            raw: Vec::new(),
            previous: HashMap::new(),
            current: HashMap::new(),
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
        let attribute = string_attribute(key, value);
        match self.resource.iter_mut().find(|kv| kv.key == key) {
            Some(existing) => *existing = attribute,
            None => self.resource.push(attribute),
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
        self.resource.iter().filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(v) => Some((kv.key.as_str(), v.as_str())),
            _ => None,
        })
    }

    /// Walks `registry` once, stamping every point with `time_unix_nano`
    /// (nanoseconds since the Unix epoch), and returns the body.
    pub fn encode(&mut self, registry: &Registry, time_unix_nano: u64) -> Result<EncodedOtlp<'_>, EncodeError> {
        let mut metrics = Vec::new();
        self.current.clear();
        let mut collector = Collector {
            time: time_unix_nano,
            fallback_start: self.started_unix_nano,
            temporality: self.temporality,
            previous: &self.previous,
            current: &mut self.current,
            desc: None,
            metric: None,
            out: &mut metrics,
            points: 0,
        };
        registry.collect(&mut collector);
        collector.flush();
        let points = collector.points;
        // Series not read this time are gone: a later one with their labels
        // starts a new delta stream.
        std::mem::swap(&mut self.previous, &mut self.current);
        self.request.resource_metrics = vec![ResourceMetrics {
            resource: Some(Resource { attributes: self.resource.clone(), dropped_attributes_count: 0 }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: SCOPE_NAME.to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    attributes: Vec::new(),
                    dropped_attributes_count: 0,
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: SCHEMA_URL.to_owned(),
        }];
        self.raw.clear();
        self.request.encode(&mut self.raw).map_err(EncodeError::Protobuf)?;
        Ok(EncodedOtlp { body: &self.raw, data_points: points })
    }

    /// Data points in the request the last [`encode`](Self::encode) built.
    pub fn data_points(&self) -> u64 {
        let points = |m: &Metric| match &m.data {
            Some(Data::Gauge(g)) => g.data_points.len(),
            Some(Data::Sum(s)) => s.data_points.len(),
            Some(Data::Histogram(h)) => h.data_points.len(),
            Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
            Some(Data::Summary(s)) => s.data_points.len(),
            None => 0,
        };
        self.request
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .map(points)
            .sum::<usize>() as u64
    }

    /// The request the last [`encode`](Self::encode) built.
    pub fn request(&self) -> &ExportMetricsServiceRequest {
        &self.request
    }
}

/// The registry walk of one export.
struct Collector<'a> {
    time: u64,
    fallback_start: u64,
    temporality: Temporality,
    previous: &'a HashMap<SeriesKey, Reading>,
    current: &'a mut HashMap<SeriesKey, Reading>,
    /// The family being walked: name, help, unit.
    desc: Option<(String, String, String)>,
    /// Its metric, made at its first point.
    metric: Option<Metric>,
    out: &'a mut Vec<Metric>,
    points: u64,
}

/// Which kind of points a value makes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Sum,
    Histogram,
    Exponential,
    Summary,
}

fn kind_of(data: &Data) -> Kind {
    match data {
        Data::Gauge(_) => Kind::Gauge,
        Data::Sum(_) => Kind::Sum,
        Data::Histogram(_) => Kind::Histogram,
        Data::ExponentialHistogram(_) => Kind::Exponential,
        Data::Summary(_) => Kind::Summary,
    }
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

/// A counter's total as a point value: an integer while it fits.
fn int_value(v: u64) -> number_data_point::Value {
    i64::try_from(v).map_or(number_data_point::Value::AsDouble(v as f64), number_data_point::Value::AsInt)
}

/// An exemplar as OTLP has them.
fn exemplar(e: &Exemplar) -> crate::otlp_proto::Exemplar {
    let id = e.trace_id.as_str();
    // 32 hex digits, not all zero (the W3C invalid id): OTLP's 16 bytes.
    let hex = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) && id.bytes().any(|b| b != b'0');
    let trace_id = if hex {
        (0..16).map(|i| u8::from_str_radix(&id[2 * i..2 * i + 2], 16).unwrap_or(0)).collect()
    } else {
        Vec::new()
    };
    let time = if e.timestamp.is_finite() && e.timestamp > 0.0 { (e.timestamp * 1e9) as u64 } else { 0 };
    crate::otlp_proto::Exemplar {
        filtered_attributes: if hex { Vec::new() } else { vec![string_attribute("trace_id", id)] },
        time_unix_nano: time,
        value: Some(exemplar::Value::AsDouble(e.value)),
        span_id: Vec::new(),
        trace_id,
    }
}

fn exemplars(slots: &[Option<Exemplar>]) -> Vec<crate::otlp_proto::Exemplar> {
    slots.iter().flatten().map(exemplar).collect()
}

/// Most buckets an exponential point carries per sign. OTLP's buckets are
/// dense, Prometheus' sparse: two observations far apart at a fine schema
/// (1e-30 and 1e300 at schema 8) would span 280,000 buckets, so a wider
/// point is merged down to a coarser scale until it fits (exact: merging
/// never splits a bucket; at scale -4 all of f64 takes about 130).
const MAX_DENSE_BUCKETS: i64 = 2048;

/// Populated buckets, `(Prometheus index, count)`, ascending.
type SparseBuckets = Vec<(i32, u64)>;

/// The width of a run of populated buckets, in buckets.
fn span(buckets: &[(i32, u64)]) -> i64 {
    match (buckets.first(), buckets.last()) {
        (Some(&(first, _)), Some(&(last, _))) => i64::from(last) - i64::from(first) + 1,
        _ => 0,
    }
}

/// The scale and both signs' buckets of an exponential point, merged down
/// until each fits [`MAX_DENSE_BUCKETS`].
fn fit(schema: i8, mut positive: SparseBuckets, mut negative: SparseBuckets) -> (i32, SparseBuckets, SparseBuckets) {
    let mut scale = i32::from(schema);
    while (span(&positive) > MAX_DENSE_BUCKETS || span(&negative) > MAX_DENSE_BUCKETS) && scale > -4 {
        merge_down(&mut positive, 1);
        merge_down(&mut negative, 1);
        scale -= 1;
    }
    (scale, positive, negative)
}

/// Prometheus' populated buckets `(index, count)` as OTLP's dense run:
/// Prometheus' bucket `i` is OTLP's `i - 1`.
fn dense(buckets: &[(i32, u64)]) -> Option<Buckets> {
    let first = buckets.first()?.0;
    let mut counts = vec![0u64; usize::try_from(span(buckets)).unwrap_or(0)];
    for &(i, c) in buckets {
        counts[usize::try_from(i64::from(i) - i64::from(first)).unwrap_or(0)] = c;
    }
    Some(Buckets { offset: first.saturating_sub(1), bucket_counts: counts })
}

impl Collector<'_> {
    fn flush(&mut self) {
        if let Some(metric) = self.metric.take() {
            self.out.push(metric);
        }
    }

    /// The current family's metric with `kind` points, made (or, if its
    /// points so far are of another kind, started anew) as needed.
    fn data(&mut self, kind: Kind, temporality: AggregationTemporality) -> &mut Data {
        if self.metric.as_ref().and_then(|m| m.data.as_ref()).is_some_and(|d| kind_of(d) != kind) {
            self.flush();
        }
        if self.metric.is_none() {
            let (name, description, unit) = self.desc.clone().unwrap_or_default();
            self.metric = Some(Metric { name, description, unit, data: None });
        }
        let metric = self.metric.as_mut().expect("made just above");
        let data = metric.data.get_or_insert_with(|| match kind {
            Kind::Gauge => Data::Gauge(Gauge::default()),
            Kind::Sum => Data::Sum(Sum {
                data_points: Vec::new(),
                aggregation_temporality: temporality as i32,
                is_monotonic: true,
            }),
            Kind::Histogram => {
                Data::Histogram(Histogram { data_points: Vec::new(), aggregation_temporality: temporality as i32 })
            }
            Kind::Exponential => Data::ExponentialHistogram(ExponentialHistogram {
                data_points: Vec::new(),
                aggregation_temporality: temporality as i32,
            }),
            Kind::Summary => Data::Summary(Summary::default()),
        });
        self.points += 1;
        data
    }

    fn aggregation(&self) -> AggregationTemporality {
        match self.temporality {
            Temporality::Cumulative => AggregationTemporality::Cumulative,
            Temporality::Delta => AggregationTemporality::Delta,
        }
    }

    /// Where a sum's or histogram's point starts and what it carries: the
    /// cumulative reading itself, or (delta) what it gained since the last
    /// export's, with `subtract` making the change (`None`: a reset).
    fn settle(
        &mut self,
        labels: &Labels<'_>,
        reading: Cumulative,
        subtract: impl FnOnce(&Cumulative, &Cumulative) -> Option<Cumulative>,
    ) -> (u64, Cumulative) {
        let created = labels.created_unix_nanos();
        // Never after the point's own time (a series made during the walk).
        let series_start = created.unwrap_or(self.fallback_start).min(self.time);
        if self.temporality == Temporality::Cumulative {
            return (series_start, reading);
        }
        let name = self.desc.as_ref().map(|d| d.0.clone()).unwrap_or_default();
        let key = (name, labels.iter().flat_map(|(n, v)| [n.to_owned(), v.to_owned()]).collect());
        let point = match self.previous.get(&key) {
            // The same series as at the export before: what it gained since,
            // or, if it went down (a collector's source restarted, bounds
            // changed), everything it has, counted from that export on.
            Some(p) if p.created == created => match subtract(&reading, &p.value) {
                Some(gained) => (p.at, gained),
                None => (p.at, reading.clone()),
            },
            // New, or a new series under the same labels: a new stream.
            _ => (series_start, reading.clone()),
        };
        self.current.insert(key, Reading { created, at: self.time, value: reading });
        point
    }

    fn attributes(labels: &Labels<'_>) -> Vec<KeyValue> {
        labels.iter().map(|(n, v)| string_attribute(n, v)).collect()
    }

    fn sum(&mut self, labels: &Labels<'_>, reading: Cumulative, exemplar: Option<&Exemplar>) {
        let (start, value) = self.settle(labels, reading, |now, before| match (now, before) {
            (Cumulative::Int(n), Cumulative::Int(b)) => n.checked_sub(*b).map(Cumulative::Int),
            (Cumulative::Float(n), Cumulative::Float(b)) => (n >= b).then(|| Cumulative::Float(n - b)),
            _ => None,
        });
        let value = match value {
            Cumulative::Int(v) => int_value(v),
            Cumulative::Float(v) => number_data_point::Value::AsDouble(v),
            _ => unreachable!("a sum reads a number"),
        };
        let point = NumberDataPoint {
            attributes: Self::attributes(labels),
            start_time_unix_nano: start,
            time_unix_nano: self.time,
            value: Some(value),
            exemplars: exemplar.map(self::exemplar).into_iter().collect(),
            flags: 0,
        };
        let temporality = self.aggregation();
        if let Data::Sum(sum) = self.data(Kind::Sum, temporality) {
            sum.data_points.push(point);
        }
    }

    fn gauge(&mut self, labels: &Labels<'_>, value: number_data_point::Value) {
        let point = NumberDataPoint {
            attributes: Self::attributes(labels),
            start_time_unix_nano: 0,
            time_unix_nano: self.time,
            value: Some(value),
            exemplars: Vec::new(),
            flags: 0,
        };
        if let Data::Gauge(gauge) = self.data(Kind::Gauge, AggregationTemporality::Unspecified) {
            gauge.data_points.push(point);
        }
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
        let reading = Cumulative::Buckets { bounds: bounds.to_vec(), counts: counts.to_vec(), sum, count };
        let (start, value) = self.settle(labels, reading, |now, before| match (now, before) {
            (
                Cumulative::Buckets { bounds: nb, counts: n, sum: ns, count: nc },
                Cumulative::Buckets { bounds: bb, counts: b, sum: bs, count: bc },
            ) if nb == bb && n.len() == b.len() => {
                let counts = n.iter().zip(b).map(|(n, b)| n.checked_sub(*b)).collect::<Option<Vec<u64>>>()?;
                Some(Cumulative::Buckets { bounds: nb.clone(), counts, sum: ns - bs, count: nc.checked_sub(*bc)? })
            }
            _ => None,
        });
        let Cumulative::Buckets { counts, sum, count, .. } = value else { unreachable!("a histogram reads buckets") };
        let point = HistogramDataPoint {
            attributes: Self::attributes(labels),
            start_time_unix_nano: start,
            time_unix_nano: self.time,
            count,
            sum: Some(sum),
            bucket_counts: counts,
            explicit_bounds: bounds.to_vec(),
            exemplars: exemplars(slots),
            flags: 0,
        };
        let temporality = self.aggregation();
        if let Data::Histogram(h) = self.data(Kind::Histogram, temporality) {
            h.data_points.push(point);
        }
    }

    fn exponential(&mut self, labels: &Labels<'_>, native: &NativeBucketsRef<'_>, slots: &[Option<Exemplar>]) {
        let reading = Cumulative::Native(NativeBuckets {
            schema: native.schema,
            zero_threshold: native.zero_threshold,
            zero_count: native.zero_count,
            count: native.count,
            sum: native.sum,
            positive: native.positive.to_vec(),
            negative: native.negative.to_vec(),
        });
        let (start, value) = self.settle(labels, reading, |now, before| match (now, before) {
            (Cumulative::Native(now), Cumulative::Native(before)) => now.increase_since(before).map(Cumulative::Native),
            _ => None,
        });
        let Cumulative::Native(buckets) = value else { unreachable!("a native histogram reads native buckets") };
        let (scale, positive, negative) = fit(buckets.schema, buckets.positive, buckets.negative);
        let point = ExponentialHistogramDataPoint {
            attributes: Self::attributes(labels),
            start_time_unix_nano: start,
            time_unix_nano: self.time,
            count: buckets.count,
            sum: Some(buckets.sum),
            scale,
            zero_count: buckets.zero_count,
            positive: dense(&positive),
            negative: dense(&negative),
            flags: 0,
            exemplars: exemplars(slots),
            zero_threshold: buckets.zero_threshold,
        };
        let temporality = self.aggregation();
        if let Data::ExponentialHistogram(h) = self.data(Kind::Exponential, temporality) {
            h.data_points.push(point);
        }
    }

    fn summary(&mut self, labels: &Labels<'_>, quantiles: &[(f64, f64)], sum: f64, count: u64) {
        let point = SummaryDataPoint {
            attributes: Self::attributes(labels),
            start_time_unix_nano: labels.created_unix_nanos().unwrap_or(self.fallback_start).min(self.time),
            time_unix_nano: self.time,
            count,
            sum,
            quantile_values: quantiles
                .iter()
                .filter(|(_, v)| !v.is_nan())
                .map(|&(quantile, value)| ValueAtQuantile { quantile, value })
                .collect(),
            flags: 0,
        };
        if let Data::Summary(s) = self.data(Kind::Summary, AggregationTemporality::Unspecified) {
            s.data_points.push(point);
        }
    }
}

impl Visitor for Collector<'_> {
    fn family(&mut self, desc: &Desc) {
        self.flush();
        let unit = desc.unit.as_ref().map(|u| ucum(u.as_str()).to_owned()).unwrap_or_default();
        self.desc = Some((desc.name.clone(), desc.help.clone(), unit));
    }

    fn sample(&mut self, labels: &Labels<'_>, value: &Value<'_>) {
        match *value {
            Value::Counter(v) => self.sum(labels, Cumulative::Int(v), None),
            Value::TracedCounter { total, exemplar } => self.sum(labels, Cumulative::Int(total), exemplar.as_ref()),
            Value::FloatCounter(v) => self.sum(labels, Cumulative::Float(v), None),
            Value::Gauge(v) => self.gauge(labels, number_data_point::Value::AsDouble(v)),
            Value::IntGauge(v) => self.gauge(labels, number_data_point::Value::AsInt(v)),
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
    use hotmeter::{Buckets, FloatCounter, NativeOpts, OwnedValue, StringFamily, SummaryOpts, TraceId, TracedCounter};

    const T: u64 = 1_700_000_000_000_000_000;

    fn decode(body: &[u8]) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest::decode(body).expect("a body prost decodes")
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
        let jobs = r
            .register(
                hotmeter::Opts::new("jobs_total", "Jobs."),
                StringFamily::new(&["tenant"], hotmeter::Counter::new),
            )
            .unwrap();
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
        let encoded = enc.encode(&r, T).unwrap();
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
        let request = decode(enc.encode(&r, T).unwrap().body);
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
        let jobs = r
            .register(
                hotmeter::Opts::new("jobs_total", "Jobs."),
                StringFamily::new(&["tenant"], hotmeter::Counter::new),
            )
            .unwrap();
        jobs.with(&["a"], |c| c.inc_by(3)).unwrap();
        let n = r.native_histogram("rt_seconds", "RT.", NativeOpts::new().schema(0).unwrap()).unwrap();
        n.observe(3.0);
        // Export times after the series' creation, as they are in use.
        const T: u64 = 4_000_000_000_000_000_000;
        let mut enc = OtlpEncoder::new("svc").unwrap().temporality(Temporality::Delta);
        let first = decode(enc.encode(&r, T).unwrap().body);
        let (start1, v1) = int_point(&first, "jobs_total");
        assert_eq!(v1, Some(number_data_point::Value::AsInt(3)), "the first point: everything since creation");
        assert!(start1 < T);
        let Data::Sum(s) = metric(&first, "jobs_total") else { panic!() };
        assert_eq!(s.aggregation_temporality, AggregationTemporality::Delta as i32);

        jobs.with(&["a"], |c| c.inc_by(2)).unwrap();
        n.observe(3.5);
        n.observe(100.0);
        let second = decode(enc.encode(&r, T + 10).unwrap().body);
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
        let third = decode(enc.encode(&r, T + 20).unwrap().body);
        let (start3, v3) = int_point(&third, "jobs_total");
        assert_eq!(v3, Some(number_data_point::Value::AsInt(1)));
        assert!(start3 >= start1 && start3 != T + 10, "a new stream from its created time, not the last export");

        // Nothing new: zero deltas, each from the export before.
        let fourth = decode(enc.encode(&r, T + 30).unwrap().body);
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
        let first = decode(enc.encode(&r, T).unwrap().body);
        let (start, value) = int_point(&first, "pool_reads_total");
        assert_eq!(value, Some(number_data_point::Value::AsInt(10)));
        assert!(start <= T, "no created time: the encoder's start, never after the point");
        source.lock().unwrap().0 = 15;
        assert_eq!(
            int_point(&decode(enc.encode(&r, T + 10).unwrap().body), "pool_reads_total"),
            (T, Some(number_data_point::Value::AsInt(5)))
        );
        *source.lock().unwrap() = (3, vec![100.0, 200.0], vec![5, 1, 0]);
        let third = decode(enc.encode(&r, T + 20).unwrap().body);
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
        let _ = enc.encode(&r, T).unwrap();
        n.observe(5.0);
        let request = decode(enc.encode(&r, T + 10).unwrap().body);
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
        let request = decode(enc.encode(&r, T).unwrap().body);
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
        let request = decode(enc.encode(&r, 1).unwrap().body);
        let (start, _) = int_point(&request, "jobs_total");
        assert_eq!(start, 1, "a series made after the export's time starts at that time");
        let lat = metrics(&request).iter().find(|m| m.name == "lat_seconds").unwrap();
        assert_eq!(lat.unit, "s");
        assert_eq!((ucum("bytes"), ucum("ratio"), ucum("widgets")), ("By", "1", "widgets"));
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
