//! The push clients' own metrics, registered in the registry they push:
//! the names they export and the handles (`PushMetrics`) they record into.
//!
//! Owns: the names, help texts and buckets of `remote_write_*` and
//! `otlp_*`. Must not: count anything itself (the queue and sender record
//! into these handles).
//!
//! The OTLP client ([`crate::OtlpPush`]) has the same counts in data points
//! (one per series per export): [`OTLP_DATA_POINTS`],
//! `otlp_data_points_sent_total`, `_failed_total`, `_dropped_total`,
//! `_retried_total`, `otlp_send_duration_seconds`, `otlp_queue_length` and
//! `otlp_queue_capacity`; it has no stale markers and no classic fallback.
//! remote_write's:
//!
//! | name | type | what |
//! |---|---|---|
//! | `remote_write_samples_total` | counter | samples taken into the queue (one per series per snapshot) |
//! | `remote_write_samples_sent_total` | counter | samples the receiver accepted (2xx) |
//! | `remote_write_samples_failed_total` | counter | samples refused with a non-retried status (4xx but 429), or in snapshots refused for holding native histograms |
//! | `remote_write_samples_dropped_total` | counter | samples evicted from a full queue, or left at the shutdown deadline |
//! | `remote_write_samples_retried_total` | counter | samples sent again after a 5xx, 429 or transport failure |
//! | `remote_write_send_duration_seconds` | histogram | one HTTP attempt, connect to answer |
//! | `remote_write_queue_length` | gauge | snapshots waiting, the one being sent included |
//! | `remote_write_queue_capacity` | gauge | the queue's bound, in snapshots |
//! | `remote_write_stale_markers_total` | counter | stale markers taken into the queue (counted in `remote_write_samples_total` too): one per pushed series that ended |
//! | `remote_write_native_histograms_refused` | gauge | 1 once the receiver refused native histograms and the client sends classic series instead, else 0 |
//!
//! Two clients started on one registry record into the same handles (the
//! registry hands back the registered metric), so their counts add up.
//! Counters only go up and never reset. Once the client has shut down,
//! `samples = sent + failed + dropped`; while it runs the difference is
//! what is queued.

use hotmeter::{Buckets, Counter, Histogram, IntGauge, Registry, RegistryError};

/// Metric names, without a registry namespace.
pub const SAMPLES: &str = "remote_write_samples_total";
/// See the module table.
pub const SENT: &str = "remote_write_samples_sent_total";
/// See the module table.
pub const FAILED: &str = "remote_write_samples_failed_total";
/// See the module table.
pub const DROPPED: &str = "remote_write_samples_dropped_total";
/// See the module table.
pub const RETRIED: &str = "remote_write_samples_retried_total";
/// See the module table.
pub const SEND_DURATION: &str = "remote_write_send_duration_seconds";
/// See the module table.
pub const QUEUE_LENGTH: &str = "remote_write_queue_length";
/// See the module table.
pub const QUEUE_CAPACITY: &str = "remote_write_queue_capacity";
/// See the module table.
pub const STALE_MARKERS: &str = "remote_write_stale_markers_total";
/// See the module table.
pub const NATIVE_REFUSED: &str = "remote_write_native_histograms_refused";

/// One push protocol's metric names and help texts (remote_write's are
/// the constants above; OTLP's are [`OTLP`]).
#[derive(Debug)]
pub(crate) struct MetricNames {
    pub(crate) samples: &'static str,
    pub(crate) sent: &'static str,
    pub(crate) failed: &'static str,
    pub(crate) dropped: &'static str,
    pub(crate) retried: &'static str,
    pub(crate) send_duration: &'static str,
    pub(crate) queue_length: &'static str,
    pub(crate) queue_capacity: &'static str,
    /// remote_write only: OTLP has no stale markers.
    pub(crate) stale_markers: Option<&'static str>,
    /// remote_write only: OTLP sends exponential histograms as they are.
    pub(crate) native_refused: Option<&'static str>,
    /// What the protocol is called in help texts.
    pub(crate) what: &'static str,
}

/// remote_write's names.
pub(crate) const REMOTE_WRITE: MetricNames = MetricNames {
    samples: SAMPLES,
    sent: SENT,
    failed: FAILED,
    dropped: DROPPED,
    retried: RETRIED,
    send_duration: SEND_DURATION,
    queue_length: QUEUE_LENGTH,
    queue_capacity: QUEUE_CAPACITY,
    stale_markers: Some(STALE_MARKERS),
    native_refused: Some(NATIVE_REFUSED),
    what: "remote_write",
};

/// The OTLP client's names: as remote_write's, a data point for a sample
/// (one per series per export).
/// The OTLP client's data points taken into its queue (the other names:
/// the module docs).
pub const OTLP_DATA_POINTS: &str = "otlp_data_points_total";

pub(crate) const OTLP: MetricNames = MetricNames {
    samples: OTLP_DATA_POINTS,
    sent: "otlp_data_points_sent_total",
    failed: "otlp_data_points_failed_total",
    dropped: "otlp_data_points_dropped_total",
    retried: "otlp_data_points_retried_total",
    send_duration: "otlp_send_duration_seconds",
    queue_length: "otlp_queue_length",
    queue_capacity: "otlp_queue_capacity",
    stale_markers: None,
    native_refused: None,
    what: "OTLP",
};

/// Handles to the client's metrics.
#[derive(Debug, Clone)]
pub(crate) struct PushMetrics {
    pub(crate) samples: Counter,
    pub(crate) sent: Counter,
    pub(crate) failed: Counter,
    pub(crate) dropped: Counter,
    pub(crate) retried: Counter,
    pub(crate) send_duration: Histogram,
    pub(crate) queue_length: IntGauge,
    native_refused: Option<IntGauge>,
    stale_markers: Option<Counter>,
}

impl PushMetrics {
    pub(crate) fn register(registry: &Registry, names: &MetricNames, capacity: usize) -> Result<Self, RegistryError> {
        let buckets = Buckets::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
            .map_err(RegistryError::InvalidBuckets)?;
        let what = names.what;
        let capacity_gauge =
            registry.int_gauge(names.queue_capacity, &format!("Bound of the {what} queue, in snapshots."))?;
        capacity_gauge.set(i64::try_from(capacity).unwrap_or(i64::MAX));
        let unit = if names.stale_markers.is_some() { "Samples" } else { "Data points" };
        Ok(Self {
            samples: registry.counter(names.samples, &format!("{unit} taken into the {what} queue."))?,
            sent: registry.counter(names.sent, &format!("{unit} the {what} receiver accepted."))?,
            failed: registry
                .counter(names.failed, &format!("{unit} refused by the receiver with a status that is not retried."))?,
            dropped: registry.counter(
                names.dropped,
                &format!("{unit} dropped: evicted from a full queue or left at the shutdown deadline."),
            )?,
            retried: registry
                .counter(names.retried, &format!("{unit} sent again after a 5xx, 429 or transport failure."))?,
            send_duration: registry.histogram(
                names.send_duration,
                &format!("Duration of one {what} HTTP attempt."),
                buckets,
            )?,
            queue_length: registry.int_gauge(
                names.queue_length,
                &format!("Snapshots waiting in the {what} queue, the one being sent included."),
            )?,
            native_refused: names
                .native_refused
                .map(|name| {
                    registry.int_gauge(
                        name,
                        "1 once the receiver refused native histograms and remote_write sends classic series instead.",
                    )
                })
                .transpose()?,
            stale_markers: names
                .stale_markers
                .map(|name| {
                    registry.counter(
                        name,
                        "Stale markers taken into the remote_write queue: one per pushed series that ended.",
                    )
                })
                .transpose()?,
        })
    }

    /// `n` stale markers were queued (remote_write only).
    pub(crate) fn stale_markers(&self, n: u64) {
        if let Some(c) = &self.stale_markers {
            c.inc_by(n);
        }
    }

    /// The receiver refused native histograms (remote_write only).
    pub(crate) fn native_refused(&self) {
        if let Some(g) = &self.native_refused {
            g.set(1);
        }
    }
}
