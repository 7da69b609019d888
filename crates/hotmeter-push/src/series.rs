//! One walk of a registry turned into a remote_write request:
//! [`RemoteWriteEncoder`] and what it returns, [`Encoded`].
//!
//! Owns: the mapping from hotmeter values to Prometheus series (a counter
//! or gauge is one series; a classic histogram is `_bucket{le}` per bound
//! plus `le="+Inf"`, `_sum` and `_count`; a summary is one
//! `{quantile}` series per quantile plus `_sum` and `_count`), external
//! labels, label sorting, protobuf encoding and snappy block compression.
//! Must not: send anything, or run on a recording thread (it allocates
//! per series).
//!
//! Spellings match the Prometheus text exposition the exporter serves
//! (`le="0.005"`, `le="1.0"`, `le="+Inf"`, `quantile="0.99"`), so a
//! dashboard reads pushed and scraped series with the same selectors.

use hotmeter::{Desc, Labels, Registry, Value, Visitor};
use prost::Message;

use crate::error::{ConfigError, EncodeError};
use crate::proto::{Label, Sample, TimeSeries, WriteRequest};
use hotmeter::write_f64;

/// Encodes registry snapshots as remote_write 1.0 request bodies, reusing
/// its buffers from one push to the next.
///
/// ```
/// let registry = hotmeter::Registry::new();
/// registry.counter("jobs_total", "Jobs.")?.inc_by(3);
/// let mut encoder = hotmeter_push::RemoteWriteEncoder::new([("job", "batch")])?;
/// let encoded = encoder.encode(&registry, 1_700_000_000_000)?;
/// assert_eq!(encoded.samples, 1);
/// let series = &encoder.request().timeseries[0];
/// let labels: Vec<_> = series.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
/// assert_eq!(labels, [("__name__", "jobs_total"), ("job", "batch")]);
/// assert_eq!(series.samples[0].value, 3.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RemoteWriteEncoder {
    /// External labels, sorted by name.
    external: Vec<(String, String)>,
    request: WriteRequest,
    raw: Vec<u8>,
    compressed: Vec<u8>,
    snappy: snap::raw::Encoder,
}

/// One encoded push, borrowed from the [`RemoteWriteEncoder`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Encoded<'a> {
    /// The snappy-compressed protobuf `WriteRequest`: the HTTP body.
    pub body: &'a [u8],
    /// Samples in it (one per series).
    pub samples: u64,
    /// The protobuf's size before compression.
    pub uncompressed_len: usize,
}

impl RemoteWriteEncoder {
    /// An encoder that adds `external_labels` to every series that does not
    /// already have a label of that name (the series' own label wins, as in
    /// Prometheus). Names must be valid label names, each given once.
    pub fn new<N: Into<String>, V: Into<String>>(
        external_labels: impl IntoIterator<Item = (N, V)>,
    ) -> Result<Self, ConfigError> {
        let mut external: Vec<(String, String)> =
            external_labels.into_iter().map(|(n, v)| (n.into(), v.into())).collect();
        for (name, _) in &external {
            hotmeter::validate_label_name(name)
                .map_err(|source| ConfigError::InvalidLabelName { name: name.clone(), source })?;
        }
        external.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = external.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(ConfigError::DuplicateLabel { name: w[0].0.clone() });
        }
        Ok(Self {
            external,
            request: WriteRequest::default(),
            raw: Vec::new(),
            compressed: Vec::new(),
            snappy: snap::raw::Encoder::new(),
        })
    }

    /// Walks `registry` once, stamping every sample with `timestamp_ms`
    /// (milliseconds since the Unix epoch), and returns the compressed body.
    pub fn encode(&mut self, registry: &Registry, timestamp_ms: i64) -> Result<Encoded<'_>, EncodeError> {
        self.request.timeseries.clear();
        let mut collector = Collector {
            external: &self.external,
            timestamp_ms,
            name: String::new(),
            out: &mut self.request.timeseries,
        };
        registry.collect(&mut collector);
        self.raw.clear();
        // Encoding into a Vec only fails for want of capacity, which a Vec grows.
        self.request.encode(&mut self.raw).map_err(EncodeError::Protobuf)?;
        self.compressed.resize(snap::raw::max_compress_len(self.raw.len()).max(1), 0);
        let n = self.snappy.compress(&self.raw, &mut self.compressed).map_err(EncodeError::Compress)?;
        self.compressed.truncate(n);
        Ok(Encoded {
            body: &self.compressed,
            samples: self.request.timeseries.len() as u64,
            uncompressed_len: self.raw.len(),
        })
    }

    /// The request the last [`encode`](Self::encode) built, before encoding.
    pub fn request(&self) -> &WriteRequest {
        &self.request
    }
}

/// The visitor that appends one [`TimeSeries`] per Prometheus sample.
struct Collector<'a> {
    external: &'a [(String, String)],
    timestamp_ms: i64,
    name: String,
    out: &'a mut Vec<TimeSeries>,
}

impl Collector<'_> {
    /// One series: `name+suffix`, the series' labels, `extra` (`le` or
    /// `quantile`), the external labels not already present; sorted by
    /// name (the spec requires it).
    fn push(&mut self, suffix: &str, labels: &Labels<'_>, extra: Option<(&str, String)>, value: f64) {
        let mut set = Vec::with_capacity(2 + labels.len() + self.external.len());
        set.push(Label { name: "__name__".into(), value: format!("{}{suffix}", self.name) });
        if let Some((n, v)) = extra {
            set.push(Label { name: n.into(), value: v });
        }
        set.extend(labels.iter().map(|(n, v)| Label { name: n.into(), value: v.into() }));
        set.extend(self.external.iter().map(|(n, v)| Label { name: n.clone(), value: v.clone() }));
        // Stable: of two labels with one name, the first pushed (the
        // series' own) stays and the external one goes.
        set.sort_by(|a, b| a.name.cmp(&b.name));
        set.dedup_by(|later, first| later.name == first.name);
        // Prometheus reads one NaN bit pattern (0x7ff0000000000002) as a
        // staleness marker that ends the series; a NaN recorded in a gauge
        // could carry it. Send every NaN as the ordinary one.
        let value = if value.is_nan() { f64::NAN } else { value };
        self.out.push(TimeSeries { labels: set, samples: vec![Sample { value, timestamp: self.timestamp_ms }] });
    }
}

fn float_text(v: f64) -> String {
    let mut out = Vec::with_capacity(24);
    write_f64(&mut out, v);
    String::from_utf8(out).unwrap_or_default()
}

impl Visitor for Collector<'_> {
    fn family(&mut self, desc: &Desc) {
        self.name.clear();
        self.name.push_str(&desc.name);
    }

    fn sample(&mut self, labels: &Labels<'_>, value: &Value<'_>) {
        match *value {
            Value::Counter(v) | Value::TracedCounter { total: v, .. } => self.push("", labels, None, v as f64),
            Value::FloatCounter(v) | Value::Gauge(v) => self.push("", labels, None, v),
            Value::IntGauge(v) => self.push("", labels, None, v as f64),
            Value::Histogram { bounds, counts, sum, count, exemplars: _ } => {
                let mut cumulative = 0u64;
                for (i, &c) in counts.iter().enumerate() {
                    cumulative += c;
                    let le = bounds.get(i).copied().unwrap_or(f64::INFINITY);
                    self.push("_bucket", labels, Some(("le", float_text(le))), cumulative as f64);
                }
                self.push("_sum", labels, None, sum);
                self.push("_count", labels, None, count as f64);
            }
            // Sent as its classic series (or only `_sum` and `_count`
            // without them); the protocol's native histogram field is not
            // written yet.
            Value::NativeHistogram { native, bounds, counts, exemplars: _ } => {
                let mut cumulative = 0u64;
                for (i, &c) in counts.iter().enumerate() {
                    cumulative += c;
                    let le = bounds.get(i).copied().unwrap_or(f64::INFINITY);
                    self.push("_bucket", labels, Some(("le", float_text(le))), cumulative as f64);
                }
                self.push("_sum", labels, None, native.sum);
                self.push("_count", labels, None, native.count as f64);
            }
            Value::Summary { quantiles, sum, count } => {
                for &(q, v) in quantiles {
                    self.push("", labels, Some(("quantile", float_text(q))), v);
                }
                self.push("_sum", labels, None, sum);
                self.push("_count", labels, None, count as f64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotmeter::{Buckets, Counter, SummaryOpts};

    /// A series as (labels, value, timestamp).
    type Flat = (Vec<(String, String)>, f64, i64);

    fn series(enc: &RemoteWriteEncoder) -> Vec<Flat> {
        enc.request()
            .timeseries
            .iter()
            .map(|s| {
                (
                    s.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect(),
                    s.samples[0].value,
                    s.samples[0].timestamp,
                )
            })
            .collect()
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn histograms_become_cumulative_buckets_sum_and_count() {
        let r = Registry::builder().const_label("zone", "z1").build().unwrap();
        let h = r.histogram("lat_seconds", "Latency.", Buckets::new([0.1, 1.0]).unwrap()).unwrap();
        h.observe(0.05);
        h.observe(0.5);
        h.observe(0.7);
        h.observe(5.0);
        let mut enc = RemoteWriteEncoder::new([("job", "j"), ("instance", "i:1")]).unwrap();
        let encoded = enc.encode(&r, 42).unwrap();
        assert_eq!(encoded.samples, 5);
        let got = series(&enc);
        let with = |name: &str, le: Option<&str>| {
            let mut l = vec![("__name__", name), ("instance", "i:1"), ("job", "j")];
            if let Some(le) = le {
                l.push(("le", le));
            }
            l.push(("zone", "z1"));
            labels(&l)
        };
        assert_eq!(
            got,
            vec![
                (with("lat_seconds_bucket", Some("0.1")), 1.0, 42),
                (with("lat_seconds_bucket", Some("1.0")), 3.0, 42),
                (with("lat_seconds_bucket", Some("+Inf")), 4.0, 42),
                (with("lat_seconds_sum", None), 6.25, 42),
                (with("lat_seconds_count", None), 4.0, 42),
            ]
        );
    }

    #[test]
    fn summaries_counters_and_label_order() {
        let r = Registry::new();
        let s = r.summary("size_bytes", "Sizes.", SummaryOpts::default()).unwrap();
        s.observe(10.0);
        let fam = r.string_family(("req_total", "Requests."), &["Zeta", "alpha"], Counter::new).unwrap();
        fam.with(&["z", "a"], |c| c.inc_by(7)).unwrap();
        // `Zeta` sorts before `__name__` (uppercase before `_`); an external
        // `alpha` loses to the series' own.
        let mut enc = RemoteWriteEncoder::new([("alpha", "external"), ("b", "x")]).unwrap();
        enc.encode(&r, 1).unwrap();
        let got = series(&enc);
        let named =
            |name: &'static str| got.iter().filter(move |s| s.0.iter().any(|l| l.0 == "__name__" && l.1 == name));
        let req = named("req_total").next().unwrap();
        assert_eq!(req.0, labels(&[("Zeta", "z"), ("__name__", "req_total"), ("alpha", "a"), ("b", "x")]));
        assert_eq!(req.1, 7.0);
        let quantiles: Vec<_> =
            named("size_bytes").map(|s| s.0.iter().find(|l| l.0 == "quantile").unwrap().1.clone()).collect();
        assert_eq!(quantiles.len(), SummaryOpts::default().quantiles.len());
        assert!(quantiles.iter().all(|q| q.parse::<f64>().is_ok()), "{quantiles:?}");
        let count = named("size_bytes_count").next().unwrap();
        assert_eq!(count.1, 1.0);
    }

    #[test]
    fn body_is_snappy_of_the_protobuf() {
        let r = Registry::new();
        r.gauge("g", "G.").unwrap().set(-1.5);
        let mut enc = RemoteWriteEncoder::new::<&str, &str>([]).unwrap();
        let e = enc.encode(&r, 7).unwrap();
        let raw = snap::raw::Decoder::new().decompress_vec(e.body).unwrap();
        assert_eq!(raw.len(), e.uncompressed_len);
        let decoded = WriteRequest::decode(&raw[..]).unwrap();
        assert_eq!(&decoded, enc.request());
        assert_eq!(decoded.timeseries[0].samples[0], Sample { value: -1.5, timestamp: 7 });
    }

    #[test]
    fn a_recorded_nan_is_never_the_staleness_marker() {
        const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;
        let r = Registry::new();
        r.gauge("g", "G.").unwrap().set(f64::from_bits(STALE_NAN));
        r.gauge("h", "H.").unwrap().set(f64::NAN);
        let mut enc = RemoteWriteEncoder::new::<&str, &str>([]).unwrap();
        let e = enc.encode(&r, 7).unwrap();
        let raw = snap::raw::Decoder::new().decompress_vec(e.body).unwrap();
        for s in WriteRequest::decode(&raw[..]).unwrap().timeseries {
            let v = s.samples[0].value;
            assert!(v.is_nan() && v.to_bits() != STALE_NAN, "{:?}: {:#x}", s.labels, v.to_bits());
        }
    }

    #[test]
    fn bad_external_labels_are_refused() {
        assert!(matches!(
            RemoteWriteEncoder::new([("__name__", "x")]),
            Err(ConfigError::InvalidLabelName { name, .. }) if name == "__name__"
        ));
        assert!(matches!(
            RemoteWriteEncoder::new([("a-b", "x")]),
            Err(ConfigError::InvalidLabelName { name, .. }) if name == "a-b"
        ));
        assert!(matches!(
            RemoteWriteEncoder::new([("job", "a"), ("job", "b")]),
            Err(ConfigError::DuplicateLabel { name }) if name == "job"
        ));
    }
}
