//! The remote_write 1.0 wire messages, declared by hand with `prost`'s
//! derive (no `protoc` at build time): [`WriteRequest`], [`TimeSeries`],
//! [`Label`], [`Sample`].
//!
//! Owns: the field numbers and types of `prometheus/prompb/remote.proto`
//! and `types.proto` that remote_write 1.0 uses. Must not: know about
//! registries, queues or HTTP.
//!
//! Field numbers as in the Prometheus repository: `WriteRequest.timeseries`
//! = 1 (`metadata` = 3 is not sent), `TimeSeries.labels` = 1,
//! `TimeSeries.samples` = 2 (exemplars = 3 and histograms = 4 are not
//! sent: native histograms wait for the core to have them), `Label.name` =
//! 1, `Label.value` = 2, `Sample.value` = 1 (double), `Sample.timestamp` =
//! 2 (int64, milliseconds since the Unix epoch).

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
}
