//! The OTLP metrics wire messages, declared by hand with `prost`'s derive
//! (no `protoc` at build time, and no gRPC stack: the `opentelemetry-proto`
//! crate's prost messages come with its `tonic` features, and OTLP/HTTP
//! needs the messages only).
//!
//! Owns: the field numbers and types of `opentelemetry/proto` v1
//! (`collector/metrics/v1/metrics_service.proto`,
//! `metrics/v1/metrics.proto`, `common/v1/common.proto`,
//! `resource/v1/resource.proto`) that an exporter sends, as types to read
//! a body back with. [`crate::OtlpEncoder`] does not build these: it
//! writes the wire format straight from the registry walk (its own table
//! of field numbers), and its tests decode every body with these types
//! and check that prost writes the decoded message as the very same
//! bytes, which ties the two tables together. Must not: know about
//! registries, queues or HTTP.
//!
//! Fields an exporter of hotmeter's data never sets are left out (a
//! decoder skips what it does not know; a receiver reads them as unset):
//! `Metric.metadata` = 12, the data points' `min` and `max`, the
//! `*_strindex` fields of the profiles signal, `Resource.entity_refs` = 3,
//! `ArrayValue` and `KeyValueList` values. Timestamps are `fixed64` Unix
//! nanoseconds; counts are `fixed64`, except the exponential buckets'
//! `bucket_counts` (`uint64`); `scale` and `offset` are `sint32`.

/// The body of one export: `POST /v1/metrics`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportMetricsServiceRequest {
    /// One entry per resource (a hotmeter exporter sends one).
    #[prost(message, repeated, tag = "1")]
    pub resource_metrics: Vec<ResourceMetrics>,
}

/// A receiver's answer to an export (`200 OK`, body optional).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportMetricsServiceResponse {
    /// Set when the receiver took the request but refused some points.
    #[prost(message, optional, tag = "1")]
    pub partial_success: Option<ExportMetricsPartialSuccess>,
}

/// How much of an export a receiver refused, and why.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportMetricsPartialSuccess {
    /// Data points refused (0: none, the message is a warning).
    #[prost(int64, tag = "1")]
    pub rejected_data_points: i64,
    /// Why, for people.
    #[prost(string, tag = "2")]
    pub error_message: String,
}

/// A resource's metrics, by instrumentation scope.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceMetrics {
    /// What produced the metrics (`service.name` and the rest).
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    /// The metrics, by scope.
    #[prost(message, repeated, tag = "2")]
    pub scope_metrics: Vec<ScopeMetrics>,
    /// The semantic conventions' schema the resource follows.
    #[prost(string, tag = "3")]
    pub schema_url: String,
}

/// A resource: its attributes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    /// `service.name`, `service.instance.id`, and the user's own.
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
    /// Attributes left out (never any here).
    #[prost(uint32, tag = "2")]
    pub dropped_attributes_count: u32,
}

/// The metrics of one instrumentation scope.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScopeMetrics {
    /// The library that recorded them.
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    /// The metrics.
    #[prost(message, repeated, tag = "2")]
    pub metrics: Vec<Metric>,
    /// Schema of the scope's data.
    #[prost(string, tag = "3")]
    pub schema_url: String,
}

/// The instrumentation scope: a name and a version.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InstrumentationScope {
    /// Its name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its version.
    #[prost(string, tag = "2")]
    pub version: String,
    /// Its attributes.
    #[prost(message, repeated, tag = "3")]
    pub attributes: Vec<KeyValue>,
    /// Attributes left out.
    #[prost(uint32, tag = "4")]
    pub dropped_attributes_count: u32,
}

/// An attribute.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    /// Its key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Its value.
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

/// An attribute's value (the scalar kinds: hotmeter's label values are
/// strings, and a resource attribute may be any of these).
#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    /// The value.
    #[prost(oneof = "any_value::Value", tags = "1, 2, 3, 4, 7")]
    pub value: Option<any_value::Value>,
}

/// [`AnyValue`]'s members.
pub mod any_value {
    /// One of an attribute's scalar values.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        /// A string.
        #[prost(string, tag = "1")]
        StringValue(String),
        /// A boolean.
        #[prost(bool, tag = "2")]
        BoolValue(bool),
        /// A signed integer.
        #[prost(int64, tag = "3")]
        IntValue(i64),
        /// A double.
        #[prost(double, tag = "4")]
        DoubleValue(f64),
        /// Bytes.
        #[prost(bytes = "vec", tag = "7")]
        BytesValue(Vec<u8>),
    }
}

/// One metric: its name, help and unit, and its points.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    /// The name (the family's).
    #[prost(string, tag = "1")]
    pub name: String,
    /// The family's help.
    #[prost(string, tag = "2")]
    pub description: String,
    /// The family's unit (empty when it has none).
    #[prost(string, tag = "3")]
    pub unit: String,
    /// The points, of one kind.
    #[prost(oneof = "metric::Data", tags = "5, 7, 9, 10, 11")]
    pub data: Option<metric::Data>,
}

/// [`Metric`]'s members.
pub mod metric {
    /// What kind of points a metric has.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Data {
        /// Last values.
        #[prost(message, tag = "5")]
        Gauge(super::Gauge),
        /// Sums (a counter is a monotonic one).
        #[prost(message, tag = "7")]
        Sum(super::Sum),
        /// Explicit-bucket histograms.
        #[prost(message, tag = "9")]
        Histogram(super::Histogram),
        /// Exponential (native) histograms.
        #[prost(message, tag = "10")]
        ExponentialHistogram(super::ExponentialHistogram),
        /// Summaries.
        #[prost(message, tag = "11")]
        Summary(super::Summary),
    }
}

/// Gauge points.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Gauge {
    /// One per series.
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<NumberDataPoint>,
}

/// Sum points.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sum {
    /// One per series.
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<NumberDataPoint>,
    /// [`AggregationTemporality`] as its number.
    #[prost(enumeration = "AggregationTemporality", tag = "2")]
    pub aggregation_temporality: i32,
    /// True for a counter.
    #[prost(bool, tag = "3")]
    pub is_monotonic: bool,
}

/// Explicit-bucket histogram points.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    /// One per series.
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<HistogramDataPoint>,
    /// [`AggregationTemporality`] as its number.
    #[prost(enumeration = "AggregationTemporality", tag = "2")]
    pub aggregation_temporality: i32,
}

/// Exponential histogram points.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExponentialHistogram {
    /// One per series.
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<ExponentialHistogramDataPoint>,
    /// [`AggregationTemporality`] as its number.
    #[prost(enumeration = "AggregationTemporality", tag = "2")]
    pub aggregation_temporality: i32,
}

/// Summary points (cumulative by definition).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// One per series.
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<SummaryDataPoint>,
}

/// How a point's value relates to earlier ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum AggregationTemporality {
    /// Never sent.
    Unspecified = 0,
    /// Since the point before (`start_time_unix_nano` is that point's time).
    Delta = 1,
    /// Since the series started (`start_time_unix_nano` is its start).
    Cumulative = 2,
}

/// A gauge's or sum's point.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NumberDataPoint {
    /// The series' labels.
    #[prost(message, repeated, tag = "7")]
    pub attributes: Vec<KeyValue>,
    /// When the sum started (cumulative: the series' creation; delta: the
    /// point before); 0 for a gauge.
    #[prost(fixed64, tag = "2")]
    pub start_time_unix_nano: u64,
    /// When it was read.
    #[prost(fixed64, tag = "3")]
    pub time_unix_nano: u64,
    /// The value.
    #[prost(oneof = "number_data_point::Value", tags = "4, 6")]
    pub value: Option<number_data_point::Value>,
    /// Exemplars.
    #[prost(message, repeated, tag = "5")]
    pub exemplars: Vec<Exemplar>,
    /// Data point flags (none set here).
    #[prost(uint32, tag = "8")]
    pub flags: u32,
}

/// [`NumberDataPoint`]'s members.
pub mod number_data_point {
    /// A point's value: a double or an integer.
    #[derive(Clone, Copy, PartialEq, prost::Oneof)]
    pub enum Value {
        /// A double.
        #[prost(double, tag = "4")]
        AsDouble(f64),
        /// An integer.
        #[prost(sfixed64, tag = "6")]
        AsInt(i64),
    }
}

/// An explicit-bucket histogram's point.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HistogramDataPoint {
    /// The series' labels.
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    /// Start of the counts.
    #[prost(fixed64, tag = "2")]
    pub start_time_unix_nano: u64,
    /// When it was read.
    #[prost(fixed64, tag = "3")]
    pub time_unix_nano: u64,
    /// Observations.
    #[prost(fixed64, tag = "4")]
    pub count: u64,
    /// Their sum.
    #[prost(double, optional, tag = "5")]
    pub sum: Option<f64>,
    /// Per bucket (not cumulative), one more than the bounds.
    #[prost(fixed64, repeated, tag = "6")]
    pub bucket_counts: Vec<u64>,
    /// Finite upper bounds, each bucket `(previous, bound]`.
    #[prost(double, repeated, tag = "7")]
    pub explicit_bounds: Vec<f64>,
    /// Exemplars.
    #[prost(message, repeated, tag = "8")]
    pub exemplars: Vec<Exemplar>,
    /// Data point flags.
    #[prost(uint32, tag = "10")]
    pub flags: u32,
}

/// An exponential histogram's point: bucket `i` of the positive range
/// holds `base^(offset+i) < v <= base^(offset+i+1)`, `base =
/// 2^(2^-scale)`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExponentialHistogramDataPoint {
    /// The series' labels.
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
    /// Start of the counts.
    #[prost(fixed64, tag = "2")]
    pub start_time_unix_nano: u64,
    /// When it was read.
    #[prost(fixed64, tag = "3")]
    pub time_unix_nano: u64,
    /// Observations.
    #[prost(fixed64, tag = "4")]
    pub count: u64,
    /// Their sum.
    #[prost(double, optional, tag = "5")]
    pub sum: Option<f64>,
    /// Resolution: Prometheus' schema.
    #[prost(sint32, tag = "6")]
    pub scale: i32,
    /// Observations in the zero bucket.
    #[prost(fixed64, tag = "7")]
    pub zero_count: u64,
    /// Buckets of positive observations.
    #[prost(message, optional, tag = "8")]
    pub positive: Option<exponential_histogram_data_point::Buckets>,
    /// Buckets of negative observations, by magnitude.
    #[prost(message, optional, tag = "9")]
    pub negative: Option<exponential_histogram_data_point::Buckets>,
    /// Data point flags.
    #[prost(uint32, tag = "10")]
    pub flags: u32,
    /// Exemplars.
    #[prost(message, repeated, tag = "11")]
    pub exemplars: Vec<Exemplar>,
    /// Observations with `|v|` at or below this are in the zero bucket.
    #[prost(double, tag = "14")]
    pub zero_threshold: f64,
}

/// [`ExponentialHistogramDataPoint`]'s members.
pub mod exponential_histogram_data_point {
    /// A dense run of buckets from `offset`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Buckets {
        /// Index of the first bucket.
        #[prost(sint32, tag = "1")]
        pub offset: i32,
        /// Counts from `offset` on, empty buckets as zeros.
        #[prost(uint64, repeated, tag = "2")]
        pub bucket_counts: Vec<u64>,
    }
}

/// A summary's point.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryDataPoint {
    /// The series' labels.
    #[prost(message, repeated, tag = "7")]
    pub attributes: Vec<KeyValue>,
    /// Start of the count and sum.
    #[prost(fixed64, tag = "2")]
    pub start_time_unix_nano: u64,
    /// When it was read.
    #[prost(fixed64, tag = "3")]
    pub time_unix_nano: u64,
    /// Observations.
    #[prost(fixed64, tag = "4")]
    pub count: u64,
    /// Their sum.
    #[prost(double, tag = "5")]
    pub sum: f64,
    /// Quantiles, ascending.
    #[prost(message, repeated, tag = "6")]
    pub quantile_values: Vec<summary_data_point::ValueAtQuantile>,
    /// Data point flags.
    #[prost(uint32, tag = "8")]
    pub flags: u32,
}

/// [`SummaryDataPoint`]'s members.
pub mod summary_data_point {
    /// One quantile's value.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct ValueAtQuantile {
        /// The quantile, in `[0, 1]`.
        #[prost(double, tag = "1")]
        pub quantile: f64,
        /// Its value.
        #[prost(double, tag = "2")]
        pub value: f64,
    }
}

/// An exemplar: one recorded value with the trace it belongs to.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    /// Attributes of the measurement not in the point's (here: the trace
    /// id when it is not 16 bytes of hex).
    #[prost(message, repeated, tag = "7")]
    pub filtered_attributes: Vec<KeyValue>,
    /// When it was recorded.
    #[prost(fixed64, tag = "2")]
    pub time_unix_nano: u64,
    /// The value.
    #[prost(oneof = "exemplar::Value", tags = "3, 6")]
    pub value: Option<exemplar::Value>,
    /// The span (hotmeter's exemplars carry none).
    #[prost(bytes = "vec", tag = "4")]
    pub span_id: Vec<u8>,
    /// The trace, 16 bytes.
    #[prost(bytes = "vec", tag = "5")]
    pub trace_id: Vec<u8>,
}

/// [`Exemplar`]'s members.
pub mod exemplar {
    /// An exemplar's value.
    #[derive(Clone, Copy, PartialEq, prost::Oneof)]
    pub enum Value {
        /// A double.
        #[prost(double, tag = "3")]
        AsDouble(f64),
        /// An integer.
        #[prost(sfixed64, tag = "6")]
        AsInt(i64),
    }
}
