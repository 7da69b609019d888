//! The remote_write 1.0 wire messages, declared by hand with `prost`'s
//! derive (no `protoc` at build time): [`WriteRequest`], [`TimeSeries`],
//! [`Label`], [`Sample`], and the native histogram's [`Histogram`] and
//! [`BucketSpan`].
//!
//! Owns: the field numbers and types of `prometheus/prompb/remote.proto`
//! and `types.proto` that remote_write 1.0 uses. Must not: know about
//! registries, queues or HTTP.
//!
//! Field numbers as in the Prometheus repository: `WriteRequest.timeseries`
//! = 1 (`metadata` = 3 is not sent), `TimeSeries.labels` = 1,
//! `TimeSeries.samples` = 2, `TimeSeries.histograms` = 4 (exemplars = 3
//! are not sent), `Label.name` = 1, `Label.value` = 2, `Sample.value` = 1
//! (double), `Sample.timestamp` = 2 (int64, milliseconds since the Unix
//! epoch).
//!
//! `Histogram` as in `prompb/types.proto` of Prometheus v2.40 to v2.x (the
//! receiver of Debian's 2.42 decodes exactly these): `count_int` = 1
//! (uint64) or `count_float` = 2 (double), a oneof; `sum` = 3 (double);
//! `schema` = 4 (sint32); `zero_threshold` = 5 (double); `zero_count_int`
//! = 6 (uint64) or `zero_count_float` = 7 (double), a oneof;
//! `negative_spans` = 8, `negative_deltas` = 9 (sint64), `negative_counts`
//! = 10 (double); `positive_spans` = 11, `positive_deltas` = 12 (sint64),
//! `positive_counts` = 13 (double); `reset_hint` = 14 (enum); `timestamp`
//! = 15 (int64, ms). `BucketSpan.offset` = 1 (sint32), `length` = 2
//! (uint32). hotmeter's counts are integers: it writes the `_int` members
//! and the deltas, never the float forms (2.42's receiver takes a
//! histogram as a float one only when a float count is above zero).

/// One request body before compression: a batch of series.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series, each with its samples.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// One series: its complete label set (sorted by name, `__name__`
/// included) and its samples (oldest first).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Labels, sorted by name.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Samples, in timestamp order.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Native histogram samples, in timestamp order.
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<Histogram>,
}

/// A label pair.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Label {
    /// The label name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The label value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// One sample.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// One native histogram sample: Prometheus' spans-and-deltas form of the
/// exponential buckets (see `hotmeter::native::NativeBucketsRef` for what a bucket
/// holds).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    /// Number of observations.
    #[prost(oneof = "histogram::Count", tags = "1, 2")]
    pub count: Option<histogram::Count>,
    /// Sum of observations.
    #[prost(double, tag = "3")]
    pub sum: f64,
    /// Resolution, -4 to 8.
    #[prost(sint32, tag = "4")]
    pub schema: i32,
    /// Observations with `|v|` at or below this are in the zero bucket.
    #[prost(double, tag = "5")]
    pub zero_threshold: f64,
    /// Observations in the zero bucket.
    #[prost(oneof = "histogram::ZeroCount", tags = "6, 7")]
    pub zero_count: Option<histogram::ZeroCount>,
    /// Runs of negative buckets.
    #[prost(message, repeated, tag = "8")]
    pub negative_spans: Vec<BucketSpan>,
    /// Each negative bucket's count minus the previous one's (the first's
    /// minus zero).
    #[prost(sint64, repeated, tag = "9")]
    pub negative_deltas: Vec<i64>,
    /// Float histograms' absolute counts (never written here).
    #[prost(double, repeated, tag = "10")]
    pub negative_counts: Vec<f64>,
    /// Runs of positive buckets.
    #[prost(message, repeated, tag = "11")]
    pub positive_spans: Vec<BucketSpan>,
    /// As `negative_deltas`, for the positive buckets.
    #[prost(sint64, repeated, tag = "12")]
    pub positive_deltas: Vec<i64>,
    /// Float histograms' absolute counts (never written here).
    #[prost(double, repeated, tag = "13")]
    pub positive_counts: Vec<f64>,
    /// A [`histogram::ResetHint`] as its number.
    #[prost(enumeration = "histogram::ResetHint", tag = "14")]
    pub reset_hint: i32,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
}

/// The oneofs and the enum of [`Histogram`].
pub mod histogram {
    /// `count`: integer or float.
    #[derive(Clone, Copy, PartialEq, prost::Oneof)]
    pub enum Count {
        /// An integer histogram's count.
        #[prost(uint64, tag = "1")]
        CountInt(u64),
        /// A float histogram's count.
        #[prost(double, tag = "2")]
        CountFloat(f64),
    }

    /// `zero_count`: integer or float.
    #[derive(Clone, Copy, PartialEq, prost::Oneof)]
    pub enum ZeroCount {
        /// An integer histogram's zero bucket.
        #[prost(uint64, tag = "6")]
        ZeroCountInt(u64),
        /// A float histogram's zero bucket.
        #[prost(double, tag = "7")]
        ZeroCountFloat(f64),
    }

    /// Whether the counts were reset since the previous sample.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum ResetHint {
        /// The receiver checks for itself (what hotmeter sends).
        Unknown = 0,
        /// The first sample after a reset.
        Yes = 1,
        /// No reset since the previous sample.
        No = 2,
        /// A gauge histogram: resets do not apply.
        Gauge = 3,
    }
}

/// A run of consecutive buckets: `offset` is the first bucket's key for
/// the first span, and the gap after the previous span for later ones.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct BucketSpan {
    /// Start key (first span) or gap from the previous span (later ones).
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    /// Buckets in the run.
    #[prost(uint32, tag = "2")]
    pub length: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Bytes written by hand from the field numbers and wire types above,
    /// so a wrong tag or type fails here rather than at a receiver.
    #[test]
    fn wire_bytes_match_the_proto_declaration() {
        let req = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label { name: "a".into(), value: "b".into() }],
                samples: vec![Sample { value: 1.0, timestamp: 2 }],
                histograms: vec![],
            }],
        };
        let bytes = req.encode_to_vec();
        let mut want = vec![0x0a, 0x15]; // field 1, length-delimited, 21 bytes
        want.extend_from_slice(&[0x0a, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, b'b']); // labels
        want.extend_from_slice(&[0x12, 0x0b, 0x09]); // samples, 11 bytes; value: field 1, 64-bit
        want.extend_from_slice(&1.0f64.to_le_bytes());
        want.extend_from_slice(&[0x10, 0x02]); // timestamp: field 2, varint
        assert_eq!(bytes, want);
        assert_eq!(WriteRequest::decode(&bytes[..]).unwrap(), req);
    }

    /// A native histogram's bytes, by hand: zigzag `sint32`/`sint64`, the
    /// oneof members written even when zero, packed deltas.
    #[test]
    fn histogram_wire_bytes_match_types_proto() {
        let h = Histogram {
            count: Some(histogram::Count::CountInt(5)),
            sum: 1.5,
            schema: -1,
            zero_threshold: 0.5,
            zero_count: Some(histogram::ZeroCount::ZeroCountInt(0)),
            positive_spans: vec![BucketSpan { offset: -2, length: 2 }],
            positive_deltas: vec![3, -2],
            timestamp: 7,
            ..Histogram::default()
        };
        let mut want = vec![0x08, 0x05, 0x19]; // count_int = 5; sum: field 3, 64-bit
        want.extend_from_slice(&1.5f64.to_le_bytes());
        want.extend_from_slice(&[0x20, 0x01, 0x29]); // schema: zigzag(-1) = 1; zero_threshold: field 5, 64-bit
        want.extend_from_slice(&0.5f64.to_le_bytes());
        want.extend_from_slice(&[0x30, 0x00]); // zero_count_int = 0, present
        want.extend_from_slice(&[0x5a, 0x04, 0x08, 0x03, 0x10, 0x02]); // positive_spans: offset zigzag(-2) = 3, length 2
        want.extend_from_slice(&[0x62, 0x02, 0x06, 0x03]); // positive_deltas packed: zigzag 3 = 6, -2 = 3
        want.extend_from_slice(&[0x78, 0x07]); // timestamp: field 15, varint
        let bytes = h.encode_to_vec();
        assert_eq!(bytes, want);
        assert_eq!(Histogram::decode(&bytes[..]).unwrap(), h);
        // In a series: field 4 of TimeSeries.
        let ts = TimeSeries { labels: vec![], samples: vec![], histograms: vec![h] };
        let mut framed = vec![0x22, want.len() as u8];
        framed.extend_from_slice(&want);
        assert_eq!(ts.encode_to_vec(), framed);
    }
}
