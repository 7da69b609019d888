//! The streaming pipeline as a benchmark subject: one worker, one
//! submitting thread, a handler of a chosen weight, recording on or off.
//!
//! Owns: building that pipeline and running it once. Must not: time
//! anything (the criterion and paired benches do).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hotmeter_checkpoint::{CheckpointStore, MonitoredStore, SqliteStore};
use hotmeter_streaming::{
    BackpressureThresholds, BatchContext, BatchFailure, BatchHandler, MemorySpace, Observation, PoolConfig, Priority,
    QueueConfig, RecallIndex, Shutdown, WorkerPool,
};

/// Observations per run.
pub const PER_RUN: u64 = 20_000;

/// The handlers, lightest first.
pub const HANDLERS: [&str; 3] = ["noop", "index", "checkpoint"];

enum Work {
    Noop(AtomicU64),
    Index(RecallIndex),
    /// The demo's work: index each observation, write one durable
    /// checkpoint per batch (monitored only when recording).
    Checkpoint(RecallIndex, Box<dyn CheckpointStore>),
}

/// The work, behind a gate a run closes to build a backlog.
struct Handler {
    work: Work,
    hold: AtomicBool,
    held: AtomicBool,
}

impl BatchHandler for Handler {
    fn handle(&self, _ctx: &BatchContext, batch: &[Observation]) -> Result<(), BatchFailure> {
        while self.hold.load(Ordering::Acquire) {
            self.held.store(true, Ordering::Release);
            std::hint::spin_loop();
        }
        match &self.work {
            Work::Noop(n) => {
                n.fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            Work::Index(idx) => batch.iter().for_each(|o| idx.insert(o)),
            Work::Checkpoint(idx, store) => {
                batch.iter().for_each(|o| idx.insert(o));
                let last = batch.last().map_or(0, |o| o.key);
                let state = format!("{{\"observations\":{},\"last_key\":{last}}}", batch.len());
                store.put("worker-0", state.as_bytes()).expect("checkpoint write");
            }
        }
        Ok(())
    }
}

/// A running pipeline to push runs through.
pub struct Rig {
    pool: WorkerPool,
    handler: Arc<Handler>,
    space: MemorySpace,
    key: u64,
}

impl std::fmt::Debug for Rig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rig").field("pool", &self.pool).finish_non_exhaustive()
    }
}

impl Rig {
    /// A pipeline with `handler` (one of [`HANDLERS`]), recording or not;
    /// the checkpoint handler's database goes in `dir`.
    pub fn new(handler: &str, record: bool, dir: &Path) -> Rig {
        let registry = hotmeter::Registry::new();
        let work = match handler {
            "noop" => Work::Noop(AtomicU64::new(0)),
            "index" => Work::Index(RecallIndex::new(100_000)),
            _ => {
                let sqlite = SqliteStore::open(dir.join(format!("{handler}-{record}.db"))).expect("open the database");
                let store: Box<dyn CheckpointStore> = if record {
                    Box::new(MonitoredStore::new(sqlite, &registry).expect("register"))
                } else {
                    Box::new(sqlite)
                };
                Work::Checkpoint(RecallIndex::new(100_000), store)
            }
        };
        let config = PoolConfig {
            workers: 1,
            record,
            queue: QueueConfig { high: PER_RUN as usize, ..QueueConfig::default() },
            // A full lane is the scenario here, not an emergency.
            backpressure: BackpressureThresholds { warning: 0.97, critical: 0.98, overloaded: 0.99, hysteresis: 0.1 },
            ..PoolConfig::default()
        };
        let handler = Arc::new(Handler { work, hold: AtomicBool::new(false), held: AtomicBool::new(false) });
        let pool = WorkerPool::start(config, &registry, handler.clone()).expect("start the pool");
        let space = pool.memory_space("bench").expect("a space");
        Rig { pool, handler, space, key: 0 }
    }

    /// One run: the worker is held inside a one-observation batch while
    /// `PER_RUN - 1` more are submitted (a backlog, as under load), then
    /// released; the run ends when all are processed. Submission and
    /// processing never race, so the time is their summed cost, free of
    /// wake-up and scheduling effects.
    pub fn run(&mut self) {
        let target = self.pool.stats().processed + PER_RUN;
        self.handler.held.store(false, Ordering::Release);
        self.handler.hold.store(true, Ordering::Release);
        for i in 0..PER_RUN {
            self.key += 1;
            self.pool.submit(&self.space, Priority::High, self.key, vec![0u8; 64]).expect("the lane holds a whole run");
            if i == 0 {
                while !self.handler.held.load(Ordering::Acquire) {
                    std::hint::spin_loop();
                }
            }
        }
        self.handler.hold.store(false, Ordering::Release);
        while self.pool.stats().processed < target {
            std::hint::spin_loop();
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.pool.shutdown(Shutdown::Drain);
    }
}
