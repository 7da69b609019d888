//! What recording costs a pipeline, and where a single SQLite file tops out.
//!
//! `pipeline/*`: the same worker pool (1 worker, one submitting thread:
//! two busy threads on the two-core reference machine) pushes 20,000
//! observations from submit to processed, once with hotmeter recording
//! every metric of the streaming layer and once with recording disabled
//! (`PoolConfig::record = false`); the ratio is the overhead. Three
//! handlers: `noop` (the pipeline's own cost only, the worst case for the
//! ratio), `index` (stores each observation in a `RecallIndex`, a light
//! in-memory step) and `checkpoint` (the demo's work: index, then one
//! durable SQLite checkpoint per batch, through `MonitoredStore` when
//! recording and the bare store when not). The rig is
//! `hotmeter_benches::pipeline`; `pipeline_paired` measures the same pairs
//! alternating, run by run.
//!
//! `checkpoint_write/*`: one writer, one `SqliteStore::put` per iteration
//! into a file on the target directory's disk, WAL mode, `synchronous=FULL`
//! (durable, the demo's default) versus `NORMAL`. 1 / time is the
//! single-writer ceiling in writes per second.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hotmeter_benches::pipeline::{HANDLERS, PER_RUN, Rig};
use hotmeter_checkpoint::{CheckpointStore, Durability, SqliteStore};

fn pipeline(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    for handler in HANDLERS {
        let mut g = c.benchmark_group(format!("pipeline/{handler}_handler/1worker"));
        g.throughput(Throughput::Elements(PER_RUN));
        if handler == "checkpoint" {
            g.sample_size(10);
            g.measurement_time(Duration::from_secs(8));
        } else {
            g.sample_size(30);
        }
        for (name, record) in [("hotmeter_recording", true), ("recording_disabled", false)] {
            let mut rig = Rig::new(handler, record, dir.path());
            g.bench_function(name, |b| b.iter(|| rig.run()));
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
