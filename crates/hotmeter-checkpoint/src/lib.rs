//! A monitored checkpoint store, and when to outgrow it.
//!
//! `hotmeter-checkpoint` holds durable snapshots of a worker's or agent
//! thread's state, keyed by thread id, and instruments every write through
//! the hotmeter core's public API. Write throughput, errors and latency are
//! what tell users when a single-file SQLite store has reached its ceiling
//! (about 100 durable writes/s); the [`decision`] module turns them into a
//! verdict.
//!
//! | part | type | what it tells you |
//! |---|---|---|
//! | store contract | [`CheckpointStore`], [`Checkpoint`], [`CheckpointError`] | put / get / list by thread id |
//! | SQLite | [`SqliteStore`], [`Durability`] | one file, WAL mode, durable commits |
//! | PostgreSQL | [`PostgresStore`], [`PostgresOptions`] | a server many processes share: a connection pool, `synchronous_commit = on` by default |
//! | live migration | [`Migration`], [`CutoverStore`] | SQLite rows copied into PostgreSQL while writers go on, resumable after `kill -9`, verified by count and checksum, then the writers switched |
//! | instrumentation | [`MonitoredStore`], [`AsyncCheckpointStore`] | write rate, errors, write latency, file size |
//! | fault injection | [`FaultInjectingStore`] | fails a chosen share of writes, to watch alerts fire |
//! | migration decision | [`decision`] | whether a single SQLite file is still enough, from in-process counters or Prometheus, logged for audit |
//!
//! Every metric name lives in one place, [`metrics`]. With a registry
//! namespace (`Registry::builder().namespace("engram")`) the names become
//! `engram_checkpoint_...`.
//!
//! # Quick start
//! ```
//! use hotmeter_checkpoint::{CheckpointStore, MonitoredStore, SqliteStore};
//! let dir = tempfile::tempdir()?;
//! let registry = hotmeter::Registry::new();
//! let store = MonitoredStore::new(SqliteStore::open(dir.path().join("c.db"))?, &registry)?;
//! store.put("worker-0", b"state")?;
//! assert!(store.put("", b"state").is_err()); // counted, and handed back
//! let snap = registry.snapshot();
//! assert_eq!(snap.value("checkpoint_writes_total", &["success"]), Some(&hotmeter::OwnedValue::Counter(1)));
//! assert_eq!(snap.value("checkpoint_writes_total", &["error"]), Some(&hotmeter::OwnedValue::Counter(1)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Features
//! None: SQLite is always bundled (rusqlite's `bundled`), so nothing needs to
//! be installed on the host; the PostgreSQL client (`postgres` in an `r2d2`
//! pool, through `r2d2_postgres`) is pure Rust and always built.
#![forbid(unsafe_code)]

mod async_store;
pub mod decision;
mod fault;
pub mod metrics;
mod migration;
mod monitored;
mod postgres;
mod sqlite;
mod store;

pub use async_store::AsyncCheckpointStore;
pub use fault::{FaultInjectingStore, InvalidFaultRate};
pub use migration::{
    Cutover, CutoverStore, DEFAULT_BATCH_BYTES, DEFAULT_BATCH_ROWS, DEFAULT_HOLD_LIMIT, MAX_STATE_BYTES, Migration,
    MigrationError, Progress, Verification, migrated_to,
};
pub use monitored::MonitoredStore;
pub use postgres::{PostgresOptions, PostgresStore};
pub use sqlite::{Durability, SqliteStore};
pub use store::{Checkpoint, CheckpointError, CheckpointStore, MAX_THREAD_ID};
