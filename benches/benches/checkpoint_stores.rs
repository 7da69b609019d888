//! Durable checkpoint writes per second, SQLite beside PostgreSQL, in one
//! process (issue #25): one and four writer threads, each store bare and
//! wrapped in `MonitoredStore` (every write timed and counted by outcome).
//!
//! SQLite: one file in WAL mode, `synchronous=FULL`, on the target
//! directory's disk. PostgreSQL: a throwaway cluster of the test kit's with
//! `fsync` on (its tests' clusters turn it off), `synchronous_commit = on`,
//! over loopback TCP, a pool of four connections; Debian's `postgresql`
//! package must be installed (the README's test command installs it). The
//! state is 96 bytes, as the demo's checkpoints are about. Throughput is
//! writes per second across all writers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hotmeter_checkpoint::{CheckpointStore, MonitoredStore, PostgresStore, SqliteStore};

/// Runs `iters` writes split over `writers` threads; returns the wall time.
fn writes(store: &Arc<dyn CheckpointStore>, writers: u64, iters: u64) -> Duration {
    let state = vec![b's'; 96];
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..writers {
            let (store, state) = (store.clone(), &state);
            let n = iters / writers + u64::from(w < iters % writers);
            s.spawn(move || {
                let thread = format!("worker-{w}");
                for _ in 0..n {
                    store.put(&thread, state).unwrap();
                }
            });
        }
    });
    started.elapsed()
}

fn stores(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let pg = hotmeter_testkit::Postgres::start_durable();
    let sqlite = |name: &str| SqliteStore::open(dir.path().join(format!("{name}.db"))).unwrap();
    let postgres = || PostgresStore::connect(&pg.url()).unwrap();
    for writers in [1u64, 4] {
        let mut g = c.benchmark_group(format!("checkpoint_store/{writers}writers"));
        g.sample_size(10);
        g.measurement_time(Duration::from_secs(5));
        g.throughput(Throughput::Elements(1));
        let registry = hotmeter::Registry::new();
        let cases: Vec<(&str, Arc<dyn CheckpointStore>)> = vec![
            ("sqlite_full/bare", Arc::new(sqlite(&format!("bare{writers}")))),
            (
                "sqlite_full/monitored",
                Arc::new(MonitoredStore::new(sqlite(&format!("mon{writers}")), &registry).unwrap()),
            ),
            ("postgres/bare", Arc::new(postgres())),
            ("postgres/monitored", Arc::new(MonitoredStore::new(postgres(), &hotmeter::Registry::new()).unwrap())),
        ];
        for (name, store) in cases {
            g.bench_function(name, |b| b.iter_custom(|iters| writes(&store, writers, iters)));
        }
        g.finish();
    }
}

criterion_group!(benches, stores);
criterion_main!(benches);
