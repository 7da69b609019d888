//! What recording costs a pipeline, and where a single SQLite file tops out.
//!
//! `pipeline/*`: the same worker pool (1 worker, one submitting thread:
//! two busy threads on the two-core reference machine) pushes 20,000 observations from submit to processed, once with hotmeter
//! recording every metric of the streaming layer and once with recording
//! disabled (`PoolConfig::record = false`); the ratio is the overhead.
//! Three handlers: `noop` (the pipeline's own cost only, the worst case for
//! the ratio), `index` (stores each observation in a `RecallIndex`, a
//! light in-memory step) and `checkpoint` (the demo's work: index, then one
//! durable SQLite checkpoint per batch, through `MonitoredStore` when
//! recording and the bare store when not).
//!
//! `checkpoint_write/*`: one writer, one `SqliteStore::put` per iteration
//! into a file on the target directory's disk, WAL mode, `synchronous=FULL`
//! (durable, the demo's default) versus `NORMAL`. 1 / time is the
//! single-writer ceiling in writes per second.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hotmeter_streaming::{
    BackpressureThresholds, BatchContext, BatchFailure, BatchHandler, CheckpointStore, Durability, MonitoredStore,
    Observation, PoolConfig, Priority, QueueConfig, RecallIndex, SqliteStore, WorkerPool,
};

const PER_RUN: u64 = 20_000;

enum Work {
    Noop(AtomicU64),
    Index(RecallIndex),
    /// The demo's work: index each observation, write one durable
    /// checkpoint per batch (monitored only when recording).
    Checkpoint(RecallIndex, Box<dyn CheckpointStore>),
}

/// The work, behind a gate the bench closes to build a backlog.
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
                store
                    .put("worker-0", format!("{{\"observations\":{},\"last_key\":{last}}}", batch.len()).as_bytes())
                    .unwrap();
            }
        }
        Ok(())
    }
}

/// One run: the worker is held inside a one-observation batch while
/// `PER_RUN - 1` more are submitted (a backlog, as under load), then
/// released; the run ends when all are processed. Submission and
/// processing therefore never race, and the figure is their summed cost
/// per observation, free of wake-up and scheduling effects.
fn run(pool: &WorkerPool, handler: &Handler, space: &hotmeter_streaming::MemorySpace, key: &mut u64) {
    let target = pool.stats().processed + PER_RUN;
    handler.held.store(false, Ordering::Release);
    handler.hold.store(true, Ordering::Release);
    for i in 0..PER_RUN {
        *key += 1;
        pool.submit(space, Priority::High, *key, vec![0u8; 64]).expect("the lane holds a whole run");
        if i == 0 {
            while !handler.held.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
        }
    }
    handler.hold.store(false, Ordering::Release);
    while pool.stats().processed < target {
        std::hint::spin_loop();
    }
}

fn pipeline(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    for handler_name in ["noop", "index", "checkpoint"] {
        let mut g = c.benchmark_group(format!("pipeline/{handler_name}_handler/1worker"));
        g.throughput(Throughput::Elements(PER_RUN));
        if handler_name == "checkpoint" {
            g.sample_size(10);
            g.measurement_time(Duration::from_secs(8));
        } else {
            g.sample_size(30);
        }
        for (name, record) in [("hotmeter_recording", true), ("recording_disabled", false)] {
            let registry = hotmeter::Registry::new();
            let work = match handler_name {
                "noop" => Work::Noop(AtomicU64::new(0)),
                "index" => Work::Index(RecallIndex::new(100_000)),
                _ => {
                    let sqlite = SqliteStore::open(dir.path().join(format!("{name}.db"))).unwrap();
                    let store: Box<dyn CheckpointStore> = if record {
                        Box::new(MonitoredStore::new(sqlite, &registry).unwrap())
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
                backpressure: BackpressureThresholds {
                    warning: 0.97,
                    critical: 0.98,
                    overloaded: 0.99,
                    hysteresis: 0.1,
                },
                ..PoolConfig::default()
            };
            let handler = Arc::new(Handler { work, hold: AtomicBool::new(false), held: AtomicBool::new(false) });
            let pool = WorkerPool::start(config, &registry, handler.clone()).unwrap();
            let space = pool.memory_space("bench").unwrap();
            let mut key = 0u64;
            g.bench_function(name, |b| b.iter(|| run(&pool, &handler, &space, &mut key)));
            pool.shutdown(hotmeter_streaming::Shutdown::Drain);
        }
        g.finish();
    }
}

fn checkpoint_write(c: &mut Criterion) {
    // On the target directory's disk, not a tmpfs: fsync must reach a device.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut g = c.benchmark_group("checkpoint_write/sqlite_wal/1writer");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(5));
    for (name, durability) in
        [("hotmeter_sqlite_sync_full", Durability::Full), ("hotmeter_sqlite_sync_normal", Durability::Normal)]
    {
        let store = SqliteStore::open_with(dir.path().join(format!("{name}.db")), durability).unwrap();
        let state = vec![b's'; 96];
        g.bench_function(name, |b| b.iter(|| store.put("worker-0", &state).unwrap()));
    }
    g.finish();
}

criterion_group!(benches, pipeline, checkpoint_write);
criterion_main!(benches);
