//! The OTLP/HTTP client: [`OtlpPush`] (its settings) and
//! [`OtlpPushHandle`] (the running client).
//!
//! Owns: the OTLP protocol's part of a push client (the encoder it
//! samples with, gzip, the request's headers, OTLP/HTTP's retry rule, the
//! reading of a partial success, its `otlp_*` metrics' names and its `log`
//! target, `hotmeter_push::otlp`). Must not: keep a queue, retry or count
//! on its own: the delivery is remote_write's, shared
//! ([`crate::remote_write`]'s module docs: a sampler thread walks the
//! registry every interval as a scrape does; a bounded queue drops its
//! oldest snapshot when full and counts it; the sender retries with
//! backoff and jitter, never sooner than `Retry-After`; shutdown flushes
//! within a deadline; `samples == sent + failed + dropped` afterwards).
//!
//! Each export is one `POST` of an `ExportMetricsServiceRequest`
//! ([`OtlpEncoder`], protobuf) with `Content-Type: application/x-protobuf`,
//! gzipped with `Content-Encoding: gzip` when [`OtlpPush::gzip`] asks.
//! Counts are in data points (one per series per export):
//! `otlp_data_points_total`, `_sent_total`, `_failed_total`,
//! `_dropped_total`, `_retried_total`, `otlp_send_duration_seconds`,
//! `otlp_queue_length`, `otlp_queue_capacity`.
//!
//! Answers, as the OTLP/HTTP specification has them: 429, 502, 503 and 504
//! (and transport failures) are retried; every other status is not (500
//! and 501 included, unlike remote_write; a receiver that refuses
//! exponential histograms is read by its status too: there is no classic
//! fallback here). A `200` whose `ExportMetricsServiceResponse` carries a
//! partial success counts the points it refused as failed, the rest as
//! sent ([`PushStats::partially_refused_requests`]), with one warning when
//! such answers start.
//!
//! With [`Temporality::Delta`], each export carries what changed since the
//! one before it was encoded: an export dropped from a full queue or
//! refused loses that interval's change (counted as dropped or failed), and
//! one retried after a timeout that the receiver had in fact stored counts
//! twice. Cumulative exports lose only resolution in time.
//!
//! The queue holds bodies as sent: about 61 bytes per counter series
//! uncompressed (docs/benchmarks-history.md, "OTLP and remote_write encoding"), so the default 30 exports
//! of 1,000 series hold about 1.8 MB; gzipped, about an eighth of that
//! (7.3 KB per export), for about three times the encode's CPU.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use hotmeter::Registry;
use prost::Message;

use crate::error::ConfigError;
use crate::metrics;
use crate::otlp::{OtlpEncoder, Temporality};
use crate::remote_write::{Client, Delivery, Protocol, PushStats, Snapshotter, Taken};
use crate::transport::check_url;

const OTLP: Protocol = Protocol {
    name: "otlp",
    thread_prefix: "otlp",
    log_target: "hotmeter_push::otlp",
    headers: &[("Content-Type", "application/x-protobuf")],
    metrics: &metrics::OTLP,
    retried: retried_status,
    refused_in_answer,
};

/// [`OTLP`] with gzip bodies.
const OTLP_GZIP: Protocol =
    Protocol { headers: &[("Content-Type", "application/x-protobuf"), ("Content-Encoding", "gzip")], ..OTLP };

/// OTLP/HTTP's rule: 429, 502, 503 and 504 are retried; every other 4xx
/// and 5xx must not be (the specification's "Retryable Response Codes").
fn retried_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// `ExportMetricsServiceResponse` as read here: its message as bytes, so
/// that a receiver's message that is not valid UTF-8 (which prost's
/// `String` refuses, failing the whole decode) still lets the count of
/// refused points through.
#[derive(Clone, PartialEq, Message)]
struct Answer {
    #[prost(message, optional, tag = "1")]
    partial_success: Option<PartialAnswer>,
}

#[derive(Clone, PartialEq, Message)]
struct PartialAnswer {
    #[prost(int64, tag = "1")]
    rejected_data_points: i64,
    #[prost(bytes = "vec", tag = "2")]
    error_message: Vec<u8>,
}

/// A partial success in a `200`'s `ExportMetricsServiceResponse`
/// ([`crate::otlp_proto::ExportMetricsServiceResponse`]): the points it
/// refused and why. An empty or unreadable answer (a JSON one, a receiver
/// that sends none, one over the 1 MiB the sender reads) refused nothing;
/// a negative count is none.
fn refused_in_answer(answer: &[u8]) -> Option<(u64, String)> {
    let partial = Answer::decode(answer).ok()?.partial_success?;
    let rejected = u64::try_from(partial.rejected_data_points).unwrap_or(0);
    (rejected > 0).then(|| (rejected, String::from_utf8_lossy(&partial.error_message).into_owned()))
}

/// The sampler's side of an OTLP client: the encoder, and gzip when asked.
struct Sampler {
    encoder: OtlpEncoder,
    gzip: bool,
}

impl Snapshotter for Sampler {
    fn take(&mut self, registry: &Registry, timestamp_ms: i64) -> Result<Taken, u64> {
        let nanos = u64::try_from(timestamp_ms).unwrap_or(0).saturating_mul(1_000_000);
        let e = self.encoder.encode(registry, nanos);
        let samples = e.data_points;
        let body = if self.gzip {
            // Fast level: 1,000 counter series' body shrinks 8.4x, for about
            // three times the encode's cost (docs/benchmarks-history.md).
            let mut gz = GzEncoder::new(Vec::with_capacity(e.body.len() / 4), Compression::fast());
            match gz.write_all(e.body).and_then(|()| gz.finish()) {
                Ok(compressed) => Arc::from(compressed),
                // Writing into a Vec fails only for want of memory.
                Err(_) => return Err(samples),
            }
        } else {
            Arc::from(e.body)
        };
        Ok(Taken { body, samples, stale_markers: 0, native: false })
    }
}

/// Settings of an OTLP/HTTP client; [`start`](Self::start) checks them and
/// starts it.
///
/// ```no_run
/// use std::time::Duration;
/// let registry = hotmeter::Registry::new();
/// let exporter = hotmeter_push::OtlpPush::new("http://127.0.0.1:4318/v1/metrics")
///     .service_name("checkout")
///     .attribute("deployment.environment.name", "prod")
///     .interval(Duration::from_secs(10))
///     .start(&registry)?;
/// // ... work ...
/// let stats = exporter.shutdown(Duration::from_secs(5)); // flushes the last export
/// assert!(stats.accounted());
/// # Ok::<(), hotmeter_push::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct OtlpPush {
    url: String,
    service_name: Option<String>,
    attributes: Vec<(String, String)>,
    temporality: Temporality,
    gzip: bool,
    delivery: Delivery,
}

impl OtlpPush {
    /// A client for the receiver at `url`, the full path included (the
    /// OpenTelemetry Collector: `http://HOST:4318/v1/metrics`;
    /// VictoriaMetrics: `.../opentelemetry/v1/metrics`), exporting every
    /// 15 s, cumulative, queueing at most 30 exports, 10 s per attempt,
    /// backoff 100 ms to 5 s, and 5 s to flush when dropped.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            service_name: None,
            attributes: Vec::new(),
            temporality: Temporality::Cumulative,
            gzip: false,
            delivery: Delivery::default(),
        }
    }

    /// The `service.name` resource attribute; unset, it is
    /// `unknown_service:<executable name>`, as the OpenTelemetry SDKs name
    /// an unnamed service.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// A resource attribute (`service.version`,
    /// `deployment.environment.name`, your own); a later value for the same
    /// key replaces an earlier one, and `service.name` given here wins over
    /// [`service_name`](Self::service_name). An empty key, or an empty
    /// `service.name`, is refused by [`start`](Self::start).
    pub fn attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        self.attributes.retain(|(k, _)| *k != key);
        self.attributes.push((key, value.into()));
        self
    }

    /// Totals (the default) or changes since the export before.
    pub fn temporality(mut self, temporality: Temporality) -> Self {
        self.temporality = temporality;
        self
    }

    /// Sends every body gzipped (`Content-Encoding: gzip`, fast level),
    /// compressed on the sampler thread, so the queue holds it compressed
    /// too; off by default (OTLP/HTTP receivers must take gzip, and the
    /// OpenTelemetry Collector, VictoriaMetrics and Prometheus do).
    pub fn gzip(mut self, on: bool) -> Self {
        self.gzip = on;
        self
    }

    /// How often to export.
    pub fn interval(mut self, every: Duration) -> Self {
        self.delivery.interval = every;
        self
    }

    /// The queue's bound in exports, at least 2.
    pub fn queue_capacity(mut self, exports: usize) -> Self {
        self.delivery.capacity = exports;
        self
    }

    /// The longest one HTTP attempt may take.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.delivery.timeout = timeout;
        self
    }

    /// Backoff between retries: doubling from `min` up to `max`, each wait
    /// drawn from its upper half.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.delivery.backoff = (min, max);
        self
    }

    /// How long dropping an [`OtlpPushHandle`] may spend flushing.
    pub fn flush_deadline(mut self, deadline: Duration) -> Self {
        self.delivery.flush_deadline = deadline;
        self
    }

    fn encoder(&self) -> Result<OtlpEncoder, ConfigError> {
        let service = self.service_name.clone().unwrap_or_else(|| {
            let exe =
                std::env::current_exe().ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
            exe.map_or_else(|| "unknown_service".to_owned(), |exe| format!("unknown_service:{exe}"))
        });
        let mut encoder = OtlpEncoder::new(service)?.temporality(self.temporality);
        for (k, v) in &self.attributes {
            encoder = encoder.attribute(k, v)?;
        }
        Ok(encoder)
    }

    /// Checks the settings, registers the client's `otlp_*` metrics in
    /// `registry` and starts its two threads. The first export is taken at
    /// once.
    pub fn start(self, registry: &Registry) -> Result<OtlpPushHandle, ConfigError> {
        let uri = check_url(&self.url)?;
        let sampler = Sampler { encoder: self.encoder()?, gzip: self.gzip };
        let protocol = if self.gzip { &OTLP_GZIP } else { &OTLP };
        Ok(OtlpPushHandle { client: self.delivery.start(uri, protocol, registry, sampler, None)? })
    }
}

/// A running OTLP client. Dropping it shuts it down with the
/// [flush deadline](OtlpPush::flush_deadline).
#[derive(Debug)]
pub struct OtlpPushHandle {
    client: Client,
}

impl OtlpPushHandle {
    /// The client's counts so far, in data points ([`PushStats`]'s
    /// samples).
    pub fn stats(&self) -> PushStats {
        self.client.stats()
    }

    /// Exports now instead of at the next tick (the interval restarts
    /// from it).
    pub fn push_now(&self) {
        self.client.push_now();
    }

    /// Stops: takes a last export, sends what is queued until `deadline`
    /// from now, counts what is left as dropped, and returns the final
    /// counts within about `deadline`.
    pub fn shutdown(self, deadline: Duration) -> PushStats {
        self.client.shutdown(deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp_proto::{ExportMetricsPartialSuccess, ExportMetricsServiceResponse};

    fn answer(rejected: i64, message: &str) -> Vec<u8> {
        let partial = ExportMetricsPartialSuccess { rejected_data_points: rejected, error_message: message.to_owned() };
        ExportMetricsServiceResponse { partial_success: Some(partial) }.encode_to_vec()
    }

    /// Review findings: a message that is not UTF-8, or long, still lets
    /// the count through; nothing, garbage and negative counts refuse
    /// nothing.
    #[test]
    fn partial_successes_are_read_whatever_their_message() {
        assert_eq!(refused_in_answer(&answer(2, "bad points")), Some((2, "bad points".to_owned())));
        let long = "x".repeat(70_000);
        assert_eq!(refused_in_answer(&answer(3, &long)).map(|(n, m)| (n, m.len())), Some((3, 70_000)));
        // `error_message` = the bytes ff fe: not UTF-8.
        let not_utf8 = [0x0a, 0x06, 0x08, 0x05, 0x12, 0x02, 0xff, 0xfe];
        assert_eq!(refused_in_answer(&not_utf8), Some((5, "\u{fffd}\u{fffd}".to_owned())));
        assert_eq!(refused_in_answer(&answer(0, "only a warning")), None);
        assert_eq!(refused_in_answer(&answer(-4, "")), None);
        assert_eq!(refused_in_answer(b""), None);
        assert_eq!(refused_in_answer(b"{\"partialSuccess\":{}}"), None);
    }

    #[test]
    fn otlp_retries_only_what_its_specification_lists() {
        let retried: Vec<u16> = (400..600).filter(|&s| retried_status(s)).collect();
        assert_eq!(retried, [429, 502, 503, 504]);
    }
}
