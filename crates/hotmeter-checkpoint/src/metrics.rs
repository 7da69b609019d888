//! Every metric the checkpoint store exports: names, labels, help, buckets.
//!
//! Owns: the `checkpoint_*` names (dashboards, alert rules, the decision's
//! Prometheus queries and tests refer to the constants here), their
//! registration, and the handles [`MonitoredStore`](crate::MonitoredStore)
//! keeps. Must not: decide anything or look a label set up per write.

use hotmeter::{Buckets, Counter, Family, Gauge, IntGauge, NativeHistogram, NativeOpts, Registry, RegistryError};

/// `checkpoint_writes_total{status}`: checkpoint writes, `success` or `error`.
pub const CHECKPOINT_WRITES: &str = "checkpoint_writes_total";
/// `checkpoint_write_duration_seconds`: one checkpoint write, success or
/// error. A native histogram (schema 3, every bucket about 9% wide) with the
/// classic [`CHECKPOINT_WRITE_BUCKETS`] alongside: Prometheus with native
/// histograms enabled scrapes the exponential buckets over protobuf, text
/// scrapers and the alert rules get `_bucket` series (a Prometheus before
/// 2.45 with the feature keeps no `_bucket` series for it, so the alert
/// rules need one without: see `docs/operations.md`).
pub const CHECKPOINT_WRITE_DURATION: &str = "checkpoint_write_duration_seconds";
/// `checkpoint_store_file_size_bytes`: database file plus write-ahead log.
pub const CHECKPOINT_FILE_SIZE: &str = "checkpoint_store_file_size_bytes";

/// `checkpoint_store_pool_connections{state}`: the store's connection pool,
/// `busy` (in use) and `max` (its size), at each scrape; both 0 for a store
/// without a pool (SQLite).
pub const CHECKPOINT_POOL_CONNECTIONS: &str = "checkpoint_store_pool_connections";

/// `checkpoint_store_info{backend}`: 1 for the database behind the store
/// (`sqlite`, `postgres`), so dashboards and alerts can tell them apart
/// while every other name stays the same for both. Set by whoever opens
/// the store (the demo), not by `MonitoredStore`, which does not know.
pub const CHECKPOINT_STORE_INFO: &str = "checkpoint_store_info";

/// `checkpoint_migration_rows_copied_total`: rows a migration copied into
/// PostgreSQL (a row already there is not counted again).
pub const CHECKPOINT_MIGRATION_ROWS_COPIED: &str = "checkpoint_migration_rows_copied_total";
/// `checkpoint_migration_rows_remaining`: source rows not copied yet, as of
/// the last batch.
pub const CHECKPOINT_MIGRATION_ROWS_REMAINING: &str = "checkpoint_migration_rows_remaining";
/// `checkpoint_migration_duration_seconds`: how long the migration has run
/// (its whole length once it is done or failed).
pub const CHECKPOINT_MIGRATION_DURATION: &str = "checkpoint_migration_duration_seconds";
/// `checkpoint_migration_phase{phase}`: 1 for the phase the migration is
/// in (`copying`, `cutting_over`, `done`, `failed`), 0 for the others.
pub const CHECKPOINT_MIGRATION_PHASE: &str = "checkpoint_migration_phase";
/// `checkpoint_migration_pause_seconds`: how long the cut-over held the
/// writers (the last rows' copy and check).
pub const CHECKPOINT_MIGRATION_PAUSE: &str = "checkpoint_migration_pause_seconds";

/// Buckets of `checkpoint_write_duration_seconds`, as the alert rules expect.
pub const CHECKPOINT_WRITE_BUCKETS: [f64; 9] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

hotmeter::label_enum! {
    /// Outcome of a checkpoint write.
    pub enum WriteStatus: "status" { Success = "success", Error = "error" }
}

hotmeter::label_enum! {
    /// A pool's connections: in use, or its size.
    pub enum PoolConnections: "state" { Busy = "busy", Max = "max" }
}

hotmeter::label_enum! {
    /// Where a migration stands.
    pub enum MigrationPhase: "phase" {
        Copying = "copying",
        CuttingOver = "cutting_over",
        Done = "done",
        Failed = "failed",
    }
}

/// Handles of a migration's metrics.
#[derive(Clone, Debug)]
pub(crate) struct MigrationHandles {
    pub(crate) copied: Counter,
    pub(crate) remaining: IntGauge,
    pub(crate) duration: Gauge,
    pub(crate) pause: Gauge,
    phase: Family<MigrationPhase, IntGauge>,
}

impl MigrationHandles {
    pub(crate) fn register(registry: &Registry) -> Result<Self, RegistryError> {
        Ok(MigrationHandles {
            copied: registry
                .counter(CHECKPOINT_MIGRATION_ROWS_COPIED, "Checkpoint rows a migration copied into PostgreSQL.")?,
            remaining: registry.int_gauge(
                CHECKPOINT_MIGRATION_ROWS_REMAINING,
                "Source checkpoint rows not copied yet, as of the migration's last batch.",
            )?,
            duration: registry.gauge(
                CHECKPOINT_MIGRATION_DURATION,
                "How long the checkpoint migration has run (its whole length once it ended).",
            )?,
            pause: registry
                .gauge(CHECKPOINT_MIGRATION_PAUSE, "How long the migration's cut-over held checkpoint writers.")?,
            phase: registry.typed_family(
                CHECKPOINT_MIGRATION_PHASE,
                "1 for the phase the checkpoint migration is in.",
                IntGauge::new,
            )?,
        })
    }

    pub(crate) fn set_phase(&self, phase: MigrationPhase) {
        for &p in MigrationPhase::ALL {
            self.phase.get(p).set(i64::from(p == phase));
        }
    }
}

/// Handles of the checkpoint-store metrics.
#[derive(Clone, Debug)]
pub(crate) struct CheckpointMetrics {
    pub(crate) writes: Family<WriteStatus, Counter>,
    pub(crate) duration: NativeHistogram,
    pub(crate) file_size: IntGauge,
    pub(crate) pool: Family<PoolConnections, IntGauge>,
}

impl CheckpointMetrics {
    pub(crate) fn register(registry: &Registry) -> Result<Self, RegistryError> {
        Ok(CheckpointMetrics {
            writes: registry.typed_family(CHECKPOINT_WRITES, "Checkpoint writes, by outcome.", Counter::new)?,
            duration: registry.native_histogram(
                CHECKPOINT_WRITE_DURATION,
                "Time to write one checkpoint, including a durable commit; failed writes included.",
                NativeOpts::new().classic(Buckets::new(CHECKPOINT_WRITE_BUCKETS).expect("valid constant buckets")),
            )?,
            file_size: registry
                .int_gauge(CHECKPOINT_FILE_SIZE, "Size of the checkpoint database: main file plus write-ahead log.")?,
            pool: registry.typed_family(
                CHECKPOINT_POOL_CONNECTIONS,
                "The checkpoint store's connection pool: connections in use (busy) and its size (max).",
                IntGauge::new,
            )?,
        })
    }
}
