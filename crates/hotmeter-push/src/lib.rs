//! # hotmeter-push
//!
//! Push a hotmeter registry where a scrape cannot reach it: a Prometheus
//! **remote_write 1.0** client for fleets that send into a scaled store
//! (Prometheus' own receiver, Grafana Mimir, Thanos Receive,
//! VictoriaMetrics), and a **Pushgateway** client for batch jobs that live
//! shorter than a scrape interval.
//!
//! | item | what it is |
//! |---|---|
//! | [`RemoteWrite`], [`RemoteWriteHandle`], [`PushStats`] | the remote_write client: settings, the running client, its counts |
//! | [`RemoteWriteEncoder`], [`Encoded`], [`NativeHistograms`] | one registry walk → protobuf `WriteRequest` → snappy block; what native histograms become |
//! | [`proto`] | the hand-declared remote_write messages (`prost` derive, no `protoc`) |
//! | [`OtlpEncoder`], [`EncodedOtlp`], [`Temporality`] | one registry walk → OTLP/HTTP protobuf `ExportMetricsServiceRequest`, cumulative or delta |
//! | [`OtlpPush`], [`OtlpPushHandle`] | the OTLP/HTTP client: remote_write's delivery (queue, retries, accounting), shared, with the OTLP encoder |
//! | [`otlp_proto`] | the OTLP metrics messages, hand-declared with `prost` derive (no gRPC stack), to read an OTLP body back: the encoder writes the wire format directly |
//! | [`Pushgateway`], [`GroupingKey`] | push (`PUT`), push-add (`POST`) and delete of a group |
//! | [`metrics`] | the clients' own `remote_write_*` and `otlp_*` metrics |
//! | [`ConfigError`], [`EncodeError`], [`SendError`] | typed errors |
//!
//! This crate depends on the core and on `hotmeter-format` (the exposition
//! formats, no I/O) only: it stands beside the exporter and the
//! integrations and never imports them. The Pushgateway body is the text
//! format 0.0.4 the exporter serves, from the same encoder; remote_write
//! escapes names with the same `FamilyNames`.
//!
//! ## remote_write
//! Every interval a sampler thread walks the registry (as a scrape does:
//! recording threads never wait), builds one `TimeSeries` per Prometheus
//! sample, with `__name__`, the series' labels and the external labels
//! (`job`, `instance`, your own) sorted by name, stamps them with the
//! snapshot's time, encodes and snappy-compresses the request and queues
//! it. A sender thread `POST`s it with `Content-Encoding: snappy`,
//! `Content-Type: application/x-protobuf`,
//! `X-Prometheus-Remote-Write-Version: 0.1.0` and
//! `User-Agent: hotmeter-push/<version>`. 5xx, 429 and transport failures
//! are retried with exponential backoff and jitter, never sooner than a
//! `Retry-After`; any other 4xx drops the request and counts its samples
//! as failed. The queue is bounded and drops its oldest snapshots first,
//! counting every dropped sample (memory bound in [`RemoteWriteHandle`]'s
//! module docs, on [`RemoteWrite::queue_capacity`]).
//!
//! Classic histograms travel as `_bucket{le}` (cumulative, `+Inf` last),
//! `_sum` and `_count`; summaries as `{quantile}` series, `_sum` and
//! `_count`. A [`hotmeter::NativeHistogram`] travels as one series named
//! as the family carrying an integer native histogram (the protocol's
//! `histograms` field: schema, zero bucket, spans and deltas), and counts
//! as one sample; its classic buckets kept alongside are not sent unless
//! [`NativeHistograms::NativeAndClassic`] asks for them too, and
//! [`NativeHistograms::Classic`] sends only those, for receivers without
//! native histograms (Prometheus without
//! `--enable-feature=native-histograms` refuses, with 500, every request
//! that holds one). Exemplars and metadata are not sent. Metric and label
//! names registered as UTF-8 are sent escaped with the `underscores`
//! scheme (`http.server.requests_total` as `http_server_requests_total`):
//! remote_write 1.0 takes legacy names only, Prometheus 2.42 stores others
//! unchecked (PromQL reaches such a metric only as `{__name__="..."}`),
//! 2.46 and later skip such series. Families of legacy names (all of a
//! default registry's) are sent as registered, with no extra work.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = hotmeter::Registry::new();
//! let writes = registry.counter("checkpoint_writes_total", "Checkpoint writes.")?;
//! writes.inc_by(5);
//! let mut encoder = hotmeter_push::RemoteWriteEncoder::new([("job", "demo"), ("instance", "a:1")])?;
//! let push = encoder.encode(&registry, 1_700_000_000_000)?;
//! assert_eq!(push.samples, 1);
//! let request = encoder.request();
//! let series = &request.timeseries[0];
//! let labels: Vec<String> = series.labels.iter().map(|l| format!("{}={}", l.name, l.value)).collect();
//! assert_eq!(labels, ["__name__=checkpoint_writes_total", "instance=a:1", "job=demo"]);
//! assert_eq!((series.samples[0].value, series.samples[0].timestamp), (5.0, 1_700_000_000_000));
//! # Ok(()) }
//! ```
//! A running client: [`RemoteWrite::start`]; its shutdown flushes the last
//! snapshot within a deadline.
//!
//! ## OTLP
//! [`OtlpEncoder`] maps a registry onto OTLP's data model (the table in
//! its module's docs): counters as monotonic sums, gauges, classic
//! histograms as explicit-bucket histograms, native histograms as
//! exponential ones, summaries; the series' created timestamps as start
//! times, exemplars with 16-byte trace ids, `service.name`,
//! `service.instance.id` and your own resource attributes. [`OtlpPush`]
//! sends it on a schedule with the remote_write client's delivery (the
//! same sampler, queue, retries, shutdown and accounting, in data points,
//! under `otlp_*` metrics).
//!
//! ## Pushgateway
//! [`Pushgateway::push`], [`push_add`](Pushgateway::push_add) and
//! [`delete`](Pushgateway::delete) send the text format 0.0.4 to
//! `/metrics/job/<job>/<label>/<value>...` with the same retry rules.
//!
//! ## Features
//! - `rustls` (default): `https://` endpoints through rustls with the
//!   webpki root certificates. Without it an `https://` URL is refused
//!   with [`ConfigError::TlsDisabled`].

#![forbid(unsafe_code)]

mod error;
pub mod metrics;
mod otlp;
pub mod otlp_proto;
mod otlp_push;
pub mod proto;
mod pushgateway;
mod remote_write;
mod run;
mod series;
mod transport;

pub use error::{ConfigError, EncodeError, SendError};
pub use otlp::{EncodedOtlp, OtlpEncoder, SCHEMA_URL as OTLP_SCHEMA_URL, Temporality};
pub use otlp_push::{OtlpPush, OtlpPushHandle};
pub use pushgateway::{GroupingKey, Pushgateway};
pub use remote_write::{DEFAULT_INTERVAL, DEFAULT_QUEUE_CAPACITY, PushStats, RemoteWrite, RemoteWriteHandle};

/// The old name of [`RemoteWriteHandle`]: what a builder starts is named
/// for the builder, with `Handle` (`RemoteWrite` starts a
/// `RemoteWriteHandle`, as the exporter's `serve` and `start` give a
/// `ServerHandle` and a `ThreadedServerHandle`).
#[deprecated(since = "0.1.0", note = "renamed RemoteWriteHandle")]
pub type RemoteWriter = RemoteWriteHandle;
pub use series::{Encoded, NativeHistograms, RemoteWriteEncoder, STALE_NAN_BITS};
pub use transport::USER_AGENT;
