//! # hotmeter-exporter
//!
//! Serves a [`hotmeter::Registry`] over HTTP in the formats Prometheus and
//! its tools read. The encoders live in `hotmeter-format` (no I/O) and are
//! re-exported here, so one dependency gives both.
//!
//! | item | what it is |
//! |---|---|
//! | [`encode_text`], [`TEXT_CONTENT_TYPE`] | Prometheus text format 0.0.4 |
//! | [`encode_openmetrics`], [`OPENMETRICS_CONTENT_TYPE`] | OpenMetrics 1.0 text |
//! | [`encode_protobuf`], [`PROTOBUF_CONTENT_TYPE`] | the Prometheus protobuf format (length-delimited `MetricFamily`), the one that carries native histograms (feature `protobuf`) |
//! | [`negotiate`], [`Offered`], [`Negotiated`], [`ExpositionFormat`], [`encode_negotiated`] | content negotiation over text 0.0.4 and 1.0.0, OpenMetrics 0.0.1 and 1.0.0 and protobuf, with `escaping=`; the chosen format written with UTF-8 names quoted or escaped |
//! | [`encode_json`] | a JSON snapshot with quantile estimates |
//! | [`register_process_metrics`] | `process_*` metrics from Linux `/proc` |
//! | [`promtool::check_metrics`] | runs `promtool check metrics` on exposition, for tests |
//! | [`Exporter`], [`ServerHandle`], [`ThreadedServerHandle`], [`MetricsService`], [`Limits`], [`Auth`] | the hardened HTTP server (hyper 1.x on tokio), loopback by default |
//! | [`ConnectionStats`] | connections a running server holds, sheds and refuses at its cap |
//! | [`HistoryConfig`], [`DASHBOARD_CSP`], [`dashboard_page_weight`] | the live page at `/dashboard` (embedded HTML, CSS and script; plain SVG charts), its history ring (`/dashboard/history`) and the application's panel sources ([`Exporter::dashboard_source`]) (feature `dashboard`) |
//!
//! ## Quick start
//! ```
//! let registry = hotmeter::Registry::new();
//! let jobs = registry.counter("jobs_total", "Jobs run.")?;
//! let depth = registry.int_gauge("queue_depth", "Jobs waiting.")?;
//! jobs.inc();
//! depth.set(7);
//! let mut out = Vec::new();
//! hotmeter_exporter::encode_text(&registry, &mut out);
//! assert_eq!(
//!     String::from_utf8(out).unwrap(),
//!     concat!(
//!         "# HELP jobs_total Jobs run.\n# TYPE jobs_total counter\njobs_total 1\n",
//!         "# HELP queue_depth Jobs waiting.\n# TYPE queue_depth gauge\nqueue_depth 7\n",
//!     )
//! );
//! # Ok::<(), hotmeter::RegistryError>(())
//! ```
//!
//! ## Features
//! The server (hyper, tokio) and the text formats are always built. Three
//! default features add what a basic service may not need; turn them off
//! with `default-features = false` and pick the ones you want:
//!
//! | feature | adds | without it |
//! |---|---|---|
//! | `dashboard` | the live page, its history sampler and [`Exporter::dashboard_source`] | `/dashboard` and its paths answer 404 (or an application route mounted there), no sampler runs, no history is held |
//! | `gzip` | gzipped scrapes and page assets for clients that accept them (the `flate2` crate) | every body goes out uncompressed |
//! | `protobuf` | the Prometheus protobuf format in negotiation and [`encode_protobuf`] (no extra crate: the encoder is written in `hotmeter-format`) | protobuf is not offered: a client that asks for it first gets its next choice, as from a server that does not offer it (also when another crate turns on `hotmeter-format`'s own `protobuf`) |
//!
//! docs/benchmarks-history.md ("Dependency weight") gives the dependency count and cold build time with and
//! without them.

#![forbid(unsafe_code)]
// The tables above link items the default features bring; a build without
// them shows those names as plain text.
#![cfg_attr(not(all(feature = "dashboard", feature = "protobuf")), allow(rustdoc::broken_intra_doc_links))]

mod connections;
#[cfg(feature = "dashboard")]
mod dashboard;
mod first;
mod gzip;
#[cfg(feature = "dashboard")]
mod history;
mod process;
pub mod promtool;
mod server;

pub use connections::ConnectionStats;
#[cfg(feature = "dashboard")]
pub use dashboard::{DASHBOARD_CSP, dashboard_page_weight};
#[cfg(feature = "dashboard")]
pub use history::HistoryConfig;
#[allow(deprecated)]
pub use hotmeter_format::wants_openmetrics;
pub use hotmeter_format::{
    ExpositionFormat, JSON_CONTENT_TYPE, Negotiated, OPENMETRICS_CONTENT_TYPE, Offered, TEXT_CONTENT_TYPE, encode_json,
    encode_negotiated, encode_openmetrics, encode_text, negotiate,
};
#[cfg(feature = "protobuf")]
pub use hotmeter_format::{PROTOBUF_CONTENT_TYPE, encode_protobuf, encode_protobuf_escaped};
pub use process::register_process_metrics;
pub use server::{Auth, DEFAULT_LISTEN, Exporter, Limits, MetricsService, ServerHandle, ThreadedServerHandle};

/// The old name of [`ThreadedServerHandle`]: both things
/// [`Exporter`] starts are handles, [`ServerHandle`] on the caller's
/// runtime (`serve().await`) and `ThreadedServerHandle` on a thread of its
/// own (`start()`).
#[deprecated(since = "0.1.0", note = "renamed ThreadedServerHandle")]
pub type ThreadedServer = ThreadedServerHandle;
