//! The remote_write client's own metrics, registered in the registry it
//! pushes: the names it exports and the handles (`PushMetrics`) it records into.
//!
//! Owns: the names, help texts and buckets of `remote_write_*`. Must not:
//! count anything itself (the queue and sender record into these handles).
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
    pub(crate) native_refused: IntGauge,
    pub(crate) stale_markers: Counter,
}

impl PushMetrics {
    pub(crate) fn register(registry: &Registry, capacity: usize) -> Result<Self, RegistryError> {
        let buckets = Buckets::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
            .map_err(RegistryError::InvalidBuckets)?;
        let capacity_gauge = registry.int_gauge(QUEUE_CAPACITY, "Bound of the remote_write queue, in snapshots.")?;
        capacity_gauge.set(i64::try_from(capacity).unwrap_or(i64::MAX));
        Ok(Self {
            samples: registry.counter(SAMPLES, "Samples taken into the remote_write queue.")?,
            sent: registry.counter(SENT, "Samples the remote_write receiver accepted.")?,
            failed: registry.counter(FAILED, "Samples refused by the receiver with a status that is not retried.")?,
            dropped: registry
                .counter(DROPPED, "Samples dropped: evicted from a full queue or left at the shutdown deadline.")?,
            retried: registry.counter(RETRIED, "Samples sent again after a 5xx, 429 or transport failure.")?,
            send_duration: registry.histogram(SEND_DURATION, "Duration of one remote_write HTTP attempt.", buckets)?,
            queue_length: registry
                .int_gauge(QUEUE_LENGTH, "Snapshots waiting in the remote_write queue, the one being sent included.")?,
            native_refused: registry.int_gauge(
                NATIVE_REFUSED,
                "1 once the receiver refused native histograms and remote_write sends classic series instead.",
            )?,
            stale_markers: registry.counter(
                STALE_MARKERS,
                "Stale markers taken into the remote_write queue: one per pushed series that ended.",
            )?,
        })
    }
}
