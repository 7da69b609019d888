//! A live migration measured (issue #25): how fast `Migration` copies a
//! SQLite file into PostgreSQL, bare and while writers keep writing at the
//! demo's default pace, and what the migration does to those writers' p99
//! write latency (a durable SQLite commit, then PostgreSQL after the
//! cut-over) against the same writers without it.
//!
//! Not a criterion benchmark: it reports a latency distribution and a
//! rate, one run per invocation (run it twice). PostgreSQL is a throwaway
//! cluster of the test kit's with `fsync` on; SQLite is `synchronous=FULL`
//! in the target directory. Run:
//!
//! ```text
//! cargo bench -p hotmeter-benches --bench migration
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hotmeter_checkpoint::{CheckpointStore, CutoverStore, Durability, Migration, PostgresStore, SqliteStore};

/// Rows in the file before the migration.
const ROWS: usize = 100_000;
/// The demo's default pace: 50 observations/s, one checkpoint per batch,
/// over four workers.
const WRITERS: usize = 4;
const WRITES_PER_SECOND: f64 = 50.0;
const BASELINE: Duration = Duration::from_secs(10);

fn prefill(path: &std::path::Path) {
    let store = SqliteStore::open_with(path, Durability::Normal).unwrap();
    let state = vec![b's'; 96];
    for i in 0..ROWS {
        store.put(&format!("worker-{}", i % WRITERS), &state).unwrap();
    }
}

/// Paced writers until `stop`; every write's latency, in seconds.
fn write_paced(store: &Arc<CutoverStore>, stop: &AtomicBool) -> Vec<f64> {
    let state = vec![b'w'; 96];
    let every = Duration::from_secs_f64(WRITERS as f64 / WRITES_PER_SECOND);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (store, state) = (store.clone(), &state);
                s.spawn(move || {
                    let thread = format!("worker-{w}");
                    let mut next = Instant::now() + every.mul_f64(w as f64 / WRITERS as f64);
                    let mut latencies = Vec::new();
                    while !stop.load(Ordering::Acquire) {
                        if let Some(wait) = next.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        next += every;
                        let started = Instant::now();
                        store.put(&thread, state).unwrap();
                        latencies.push(started.elapsed().as_secs_f64());
                    }
                    latencies
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1]
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is ignored.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let pg = hotmeter_testkit::Postgres::start_durable();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    println!("migration: {ROWS} rows of 96 bytes, {WRITERS} writers at {WRITES_PER_SECOND} writes/s; {cpu}");

    // 1. Bare: nothing else writes.
    let bare = dir.path().join("bare.db");
    prefill(&bare);
    pg.psql("CREATE DATABASE bare");
    let url = |db: &str| format!("{}/{db}", pg.url().strip_suffix("/postgres").unwrap());
    let migration = Migration::open(&bare, PostgresStore::connect(&url("bare")).unwrap()).unwrap();
    let started = Instant::now();
    let copied = migration.copy_all(|_| {}).unwrap();
    let bare_secs = started.elapsed().as_secs_f64();
    let verify_started = Instant::now();
    assert!(migration.verify().unwrap().is_exact());
    let verify_secs = verify_started.elapsed().as_secs_f64();
    println!(
        "bare copy: {copied} rows in {bare_secs:.2} s = {:.0} rows/s; verification {verify_secs:.2} s = {:.0} rows/s",
        copied as f64 / bare_secs,
        copied as f64 / verify_secs
    );

    // 2. Baseline: the writers alone on SQLite.
    let live = dir.path().join("live.db");
    prefill(&live);
    let store = Arc::new(CutoverStore::sqlite(Arc::new(SqliteStore::open(&live).unwrap())));
    let stop = AtomicBool::new(false);
    let mut baseline = std::thread::scope(|s| {
        let writers = s.spawn(|| write_paced(&store, &stop));
        std::thread::sleep(BASELINE);
        stop.store(true, Ordering::Release);
        writers.join().unwrap()
    });

    // 3. The same writers while the migration copies and cuts over.
    pg.psql("CREATE DATABASE live");
    let migration = Migration::open(&live, PostgresStore::connect(&url("live")).unwrap()).unwrap();
    stop.store(false, Ordering::Release);
    let (mut during, copy_secs, copied, cut) = std::thread::scope(|s| {
        let writers = s.spawn(|| write_paced(&store, &stop));
        let started = Instant::now();
        let copied = migration.copy_all(|_| {}).unwrap();
        let cut = store.cut_over(&migration).unwrap();
        let secs = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Release);
        (writers.join().unwrap(), secs, copied + cut.copied_during_pause, cut)
    });
    assert!(cut.verification.is_exact());
    println!(
        "live copy and cut-over: {copied} rows in {copy_secs:.2} s = {:.0} rows/s (verification included); writers held {:.1} ms",
        copied as f64 / copy_secs,
        cut.pause.as_secs_f64() * 1e3
    );
    println!(
        "write latency without migration: {} writes, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        baseline.len(),
        quantile(&mut baseline, 0.5) * 1e3,
        quantile(&mut baseline, 0.99) * 1e3,
        quantile(&mut baseline, 1.0) * 1e3
    );
    println!(
        "write latency during migration:  {} writes, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        during.len(),
        quantile(&mut during, 0.5) * 1e3,
        quantile(&mut during, 0.99) * 1e3,
        quantile(&mut during, 1.0) * 1e3
    );
}
