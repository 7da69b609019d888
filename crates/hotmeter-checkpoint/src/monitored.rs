//! Instrumentation for any checkpoint store.
//!
//! Owns: recording every write (outcome, duration with an optional trace
//! exemplar) and publishing the file size at each scrape. Must not: change
//! a result — errors are counted and returned unchanged — or record reads.

use std::sync::{Arc, Weak};
use std::time::Instant;

use hotmeter::{Registry, RegistryError, TraceId};

use crate::metrics::{CheckpointMetrics, PoolConnections, WriteStatus};
use crate::store::{Checkpoint, CheckpointError, CheckpointStore};

/// Wraps a [`CheckpointStore`] and records every write:
/// `checkpoint_writes_total{status}`, `checkpoint_write_duration_seconds`
/// (failed writes included) and, at each scrape,
/// `checkpoint_store_file_size_bytes` and
/// `checkpoint_store_pool_connections{state}`.
///
/// Errors are counted and returned unchanged. Reads (`get`, `list`) pass
/// through unrecorded. Cloning shares the store and its metrics.
///
/// ```
/// use hotmeter_checkpoint::{CheckpointStore, MonitoredStore, SqliteStore};
/// let dir = tempfile::tempdir()?;
/// let registry = hotmeter::Registry::new();
/// let store = MonitoredStore::new(SqliteStore::open(dir.path().join("c.db"))?, &registry)?;
/// store.put("worker-0", b"state")?;
/// assert!(store.put("", b"state").is_err()); // counted, and handed back
/// let snap = registry.snapshot();
/// assert_eq!(snap.value("checkpoint_writes_total", &["success"]), Some(&hotmeter::OwnedValue::Counter(1)));
/// assert_eq!(snap.value("checkpoint_writes_total", &["error"]), Some(&hotmeter::OwnedValue::Counter(1)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MonitoredStore<S> {
    store: Arc<S>,
    metrics: CheckpointMetrics,
}

impl<S> Clone for MonitoredStore<S> {
    fn clone(&self) -> Self {
        MonitoredStore { store: self.store.clone(), metrics: self.metrics.clone() }
    }
}

impl<S: CheckpointStore> MonitoredStore<S> {
    /// Registers the checkpoint metrics on `registry` (or finds them, so
    /// several monitored stores can share one registry) and wraps `store`.
    pub fn new(store: S, registry: &Registry) -> Result<Self, RegistryError> {
        let metrics = CheckpointMetrics::register(registry)?;
        let store = Arc::new(store);
        let weak: Weak<S> = Arc::downgrade(&store);
        let (gauge, pool) = (metrics.file_size.clone(), metrics.pool.clone());
        registry.on_collect(move || {
            let Some(store) = weak.upgrade() else { return };
            if let Some(size) = store.file_size_bytes() {
                gauge.set(i64::try_from(size).unwrap_or(i64::MAX));
            }
            let (busy, max) = store.pool_usage().unwrap_or((0, 0));
            pool.get(PoolConnections::Busy).set(i64::from(busy));
            pool.get(PoolConnections::Max).set(i64::from(max));
        });
        if let Some(size) = store.file_size_bytes() {
            metrics.file_size.set(i64::try_from(size).unwrap_or(i64::MAX));
        }
        Ok(MonitoredStore { store, metrics })
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.store
    }

    /// Successful writes recorded so far (the `status="success"` series).
    pub fn successes(&self) -> u64 {
        self.metrics.writes.get(WriteStatus::Success).get()
    }

    /// Failed writes recorded so far (the `status="error"` series).
    pub fn errors(&self) -> u64 {
        self.metrics.writes.get(WriteStatus::Error).get()
    }
}

impl<S: CheckpointStore> MonitoredStore<S> {
    /// [`put`](CheckpointStore::put), with the write's duration carrying
    /// `trace` as its exemplar: the OpenMetrics output then links the
    /// latency bucket this write fell in to that trace.
    pub fn put_traced(&self, thread_id: &str, state: &[u8], trace: Option<&TraceId>) -> Result<i64, CheckpointError> {
        let started = Instant::now();
        let result = self.store.put(thread_id, state);
        let seconds = started.elapsed().as_secs_f64();
        match trace {
            Some(t) => self.metrics.duration.observe_with_exemplar(seconds, t),
            None => self.metrics.duration.observe(seconds),
        }
        let status = if result.is_ok() { WriteStatus::Success } else { WriteStatus::Error };
        self.metrics.writes.get(status).inc();
        result
    }
}

impl<S: CheckpointStore> CheckpointStore for MonitoredStore<S> {
    fn put(&self, thread_id: &str, state: &[u8]) -> Result<i64, CheckpointError> {
        self.put_traced(thread_id, state, None)
    }

    fn get(&self, thread_id: &str) -> Result<Option<Checkpoint>, CheckpointError> {
        self.store.get(thread_id)
    }

    fn list(&self, thread_id: &str, limit: usize) -> Result<Vec<Checkpoint>, CheckpointError> {
        self.store.list(thread_id, limit)
    }

    fn file_size_bytes(&self) -> Option<u64> {
        self.store.file_size_bytes()
    }

    fn pool_usage(&self) -> Option<(u32, u32)> {
        self.store.pool_usage()
    }
}
