//! The pipeline's accounting under concurrency, at shutdown and under
//! backpressure: nothing lost, nothing counted twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use hotmeter::{OwnedValue, Registry, RegistrySnapshot};
use hotmeter_streaming::metrics as names;
use hotmeter_streaming::{
    BackpressureState, BackpressureThresholds, BatchContext, BatchFailure, BatchHandler, FailureKind, Observation,
    PoolConfig, Priority, QueueConfig, RejectReason, Shutdown, WorkerPool,
};

/// Counts what it sees; fails every batch whose first key is divisible by
/// `fail_every`; panics once, on the first batch holding a key that is 13
/// modulo 1,000, if `panic_once` is set; sleeps `delay` per batch.
#[derive(Debug, Default)]
struct Recorder {
    seen: AtomicU64,
    key_sum: AtomicU64,
    fail_every: u64,
    panic_once: AtomicBool,
    delay: Duration,
    hold: AtomicBool,
}

impl BatchHandler for Recorder {
    fn handle(&self, _ctx: &BatchContext, batch: &[Observation]) -> Result<(), BatchFailure> {
        while self.hold.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_micros(200));
        }
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        self.seen.fetch_add(batch.len() as u64, Ordering::Relaxed);
        for o in batch {
            self.key_sum.fetch_add(o.key, Ordering::Relaxed);
        }
        if batch.iter().any(|o| o.key % 1000 == 13) && self.panic_once.swap(false, Ordering::Relaxed) {
            panic!("handler panic on purpose");
        }
        if self.fail_every > 0 && batch[0].key.is_multiple_of(self.fail_every) {
            return Err(BatchFailure::new(FailureKind::Processing, "synthetic failure"));
        }
        Ok(())
    }
}

fn counter(snap: &RegistrySnapshot, name: &str, labels: &[&str]) -> u64 {
    match snap.value(name, labels) {
        Some(OwnedValue::Counter(n)) => *n,
        None => 0,
        other => panic!("{name}{labels:?} is {other:?}"),
    }
}

fn sum_counter(snap: &RegistrySnapshot, name: &str) -> u64 {
    let family = snap.family(name).unwrap_or_else(|| panic!("{name} missing"));
    family
        .series
        .iter()
        .map(|s| match s.value {
            OwnedValue::Counter(n) => n,
            ref v => panic!("{name} holds {v:?}"),
        })
        .sum()
}

fn histogram_count(snap: &RegistrySnapshot, name: &str) -> u64 {
    snap.family(name)
        .unwrap_or_else(|| panic!("{name} missing"))
        .series
        .iter()
        .map(|s| match s.value {
            OwnedValue::Histogram { count, .. } => count,
            ref v => panic!("{name} holds {v:?}"),
        })
        .sum()
}

const SPACES: [&str; 3] = ["tenant-a", "tenant-b", "tenant \"c\" \\ d"];

#[test]
fn processed_plus_rejected_equals_submitted_under_concurrency() {
    let registry = Registry::new();
    let handler = Arc::new(Recorder { fail_every: 7, panic_once: AtomicBool::new(true), ..Recorder::default() });
    let config = PoolConfig {
        workers: 3,
        // Small lanes so some submissions are refused as full or shed.
        queue: QueueConfig { high: 16, normal: 64, low: 32, max_payload_bytes: 64 },
        max_batch: 16,
        monitor_interval: Duration::from_millis(1),
        ..PoolConfig::default()
    };
    let pool = WorkerPool::start(config, &registry, handler.clone()).unwrap();
    let spaces: Vec<_> = SPACES.iter().map(|s| pool.memory_space(s).unwrap()).collect();

    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 20_000;
    let accepted_keys = AtomicU64::new(0);
    let rejections: Vec<HashMap<(usize, RejectReason), u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (pool, spaces, accepted_keys) = (&pool, &spaces, &accepted_keys);
                s.spawn(move || {
                    let session = pool.session(&spaces[t as usize % 3]);
                    let mut rejected = HashMap::new();
                    for i in 0..PER_THREAD {
                        let key = t * PER_THREAD + i;
                        let priority = Priority::ALL[(key % 3) as usize];
                        // Every 1000th payload is over the 64-byte limit.
                        let payload = vec![0u8; if key % 1000 == 999 { 65 } else { 8 }];
                        let space = &spaces[(key % 3) as usize];
                        let result = if i % 2 == 0 {
                            pool.submit(space, priority, key, payload)
                        } else {
                            session.submit(priority, key, payload)
                        };
                        match result {
                            Ok(()) => {
                                accepted_keys.fetch_add(key, Ordering::Relaxed);
                            }
                            Err(e) => {
                                let obs = e.observation();
                                assert_eq!(obs.key, key, "the refused observation comes back");
                                let space_ix = if i % 2 == 0 { (key % 3) as usize } else { t as usize % 3 };
                                assert_eq!(obs.space, spaces[space_ix]);
                                *rejected.entry((space_ix, e.reason())).or_insert(0) += 1;
                            }
                        }
                    }
                    rejected
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let report = pool.shutdown(Shutdown::Drain);
    assert!(report.handed_back.is_empty());
    let rejected: u64 = rejections.iter().flat_map(|m| m.values()).sum();
    let submitted = THREADS * PER_THREAD;
    assert_eq!(report.processed + rejected, submitted, "processed + rejected == submitted");
    assert_eq!(handler.seen.load(Ordering::Relaxed), report.processed, "the handler saw each exactly once");
    assert_eq!(handler.key_sum.load(Ordering::Relaxed), accepted_keys.load(Ordering::Relaxed));
    assert!(report.failed_batches > 0, "failures and the panic were exercised");

    let snap = registry.snapshot();
    assert_eq!(sum_counter(&snap, names::OBSERVATIONS), report.processed, "accepted == processed after a drain");
    assert_eq!(sum_counter(&snap, names::OBSERVATIONS_PROCESSED), report.processed);
    assert_eq!(histogram_count(&snap, names::OBSERVATION_LATENCY), report.processed);
    assert_eq!(histogram_count(&snap, names::QUEUE_WAIT), report.processed);
    assert_eq!(sum_counter(&snap, names::OBSERVATIONS_REJECTED), rejected);
    let mut by_label: HashMap<(usize, RejectReason), u64> = HashMap::new();
    for m in &rejections {
        for (k, v) in m {
            *by_label.entry(*k).or_insert(0) += v;
        }
    }
    for (&(space, reason), &n) in &by_label {
        assert_eq!(counter(&snap, names::OBSERVATIONS_REJECTED, &[SPACES[space], reason.as_str()]), n);
    }
    assert!(by_label.keys().any(|(_, r)| *r == RejectReason::Invalid));
    assert_eq!(sum_counter(&snap, names::BATCHES_PROCESSED), report.batches);
    assert_eq!(histogram_count(&snap, names::BATCH_SIZE), report.batches);
    assert_eq!(sum_counter(&snap, names::BATCH_FAILURES), report.failed_batches);
    assert_eq!(
        counter(&snap, names::BATCH_FAILURES, &["0", "panic"])
            + counter(&snap, names::BATCH_FAILURES, &["1", "panic"])
            + counter(&snap, names::BATCH_FAILURES, &["2", "panic"]),
        1,
        "the one panic, caught and counted"
    );
    assert_eq!(snap.value(names::ACTIVE_SESSIONS, &[]), Some(&OwnedValue::IntGauge(0)), "sessions closed");
    for p in ["high", "normal", "low"] {
        assert_eq!(snap.value(names::QUEUE_DEPTH, &[p]), Some(&OwnedValue::IntGauge(0)));
    }
    assert_eq!(snap.value(names::QUEUE_MEMORY, &[]), Some(&OwnedValue::IntGauge(0)));
    for w in ["0", "1", "2"] {
        assert_eq!(snap.value(names::WORKER_UP, &[w]), Some(&OwnedValue::IntGauge(0)), "worker {w} stopped");
    }
}

#[test]
fn shutdown_during_submission_loses_nothing_in_either_mode() {
    for mode in [Shutdown::Drain, Shutdown::HandBack] {
        let registry = Registry::new();
        let handler = Arc::new(Recorder { delay: Duration::from_micros(50), ..Recorder::default() });
        let config = PoolConfig { workers: 2, max_batch: 8, ..PoolConfig::default() };
        let pool = WorkerPool::start(config, &registry, handler.clone()).unwrap();
        let space = pool.memory_space("s").unwrap();
        let start = Barrier::new(3);
        let stop_after = Instant::now() + Duration::from_secs(10);
        let (submitted, rejected, report) = std::thread::scope(|s| {
            let submitters: Vec<_> = (0..2u64)
                .map(|t| {
                    let (pool, space, start) = (&pool, &space, &start);
                    s.spawn(move || {
                        start.wait();
                        let (mut submitted, mut rejected) = (0u64, 0u64);
                        // Bounded: stops at the first `shutdown` refusal, or after 10 s.
                        while Instant::now() < stop_after {
                            submitted += 1;
                            match pool.submit(space, Priority::Normal, t, Vec::new()) {
                                Ok(()) => {}
                                Err(e) if e.reason() == RejectReason::Shutdown => {
                                    rejected += 1;
                                    break;
                                }
                                Err(_) => rejected += 1,
                            }
                        }
                        (submitted, rejected)
                    })
                })
                .collect();
            start.wait();
            std::thread::sleep(Duration::from_millis(100));
            // Shut down from a third thread while both submit.
            let report = s.spawn(|| pool.shutdown(mode)).join().unwrap();
            let report = (report.processed, report.handed_back.len() as u64);
            let totals: Vec<(u64, u64)> = submitters.into_iter().map(|h| h.join().unwrap()).collect();
            (totals.iter().map(|t| t.0).sum::<u64>(), totals.iter().map(|t| t.1).sum::<u64>(), report)
        });
        let (processed, handed_back) = report;
        assert_eq!(processed + handed_back + rejected, submitted, "{mode:?}");
        assert_eq!(handler.seen.load(Ordering::Relaxed), processed, "{mode:?}");
        if mode == Shutdown::Drain {
            assert_eq!(handed_back, 0);
        }
        drop(pool);
    }
}

struct Release<'a>(&'a Recorder);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.0.hold.store(false, Ordering::Release);
    }
}

#[test]
fn backpressure_rises_sheds_low_then_normal_and_recovers() {
    let registry = Registry::new();
    let handler = Arc::new(Recorder::default());
    handler.hold.store(true, Ordering::Release);
    let config = PoolConfig {
        workers: 1,
        queue: QueueConfig { high: 1200, normal: 50, low: 50, max_payload_bytes: 16 },
        min_batch: 1,
        max_batch: 1,
        monitor_interval: Duration::from_millis(1),
        ..PoolConfig::default()
    };
    let pool = WorkerPool::start(config, &registry, handler.clone()).unwrap();
    // Declared after the pool, so dropped before it: a failed assertion
    // releases the worker instead of leaving the pool's drain waiting on it.
    let _release = Release(&handler);
    let quiet = pool.memory_space("quiet").unwrap();
    let busy = pool.memory_space("busy").unwrap();
    pool.submit(&quiet, Priority::High, 0, Vec::new()).unwrap();

    let wait_for = |state: BackpressureState| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while pool.backpressure_state() != state {
            assert!(Instant::now() < deadline, "state {state:?} not reached; at {:?}", pool.backpressure_state());
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    // Capacity 1,300: Warning at 780 queued, Critical at 1,040, Overloaded
    // at 1,235. The worker is held inside its first batch, so the queue only grows.
    let mut key = 1;
    let mut fill_to = |queued: usize, p: Priority| {
        while pool.queue().total_len() < queued {
            pool.submit(&busy, p, key, Vec::new()).unwrap();
            key += 1;
        }
    };
    fill_to(779, Priority::High);
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(pool.backpressure_state(), BackpressureState::Normal, "59.9% is below Warning");
    fill_to(780, Priority::High);
    wait_for(BackpressureState::Warning);
    fill_to(1040, Priority::High);
    wait_for(BackpressureState::Critical);
    let low = pool.submit(&busy, Priority::Low, 9_999, Vec::new()).unwrap_err();
    assert_eq!(low.reason(), RejectReason::Backpressure);
    pool.submit(&busy, Priority::Normal, 10_000, Vec::new()).unwrap();
    fill_to(1199, Priority::High);
    fill_to(1235, Priority::Normal);
    wait_for(BackpressureState::Overloaded);
    let normal = pool.submit(&busy, Priority::Normal, 10_001, Vec::new()).unwrap_err();
    assert_eq!(normal.reason(), RejectReason::Backpressure);
    pool.submit(&busy, Priority::High, 10_002, Vec::new()).unwrap();

    // Let it drain: back to Normal, each level activated exactly once.
    handler.hold.store(false, Ordering::Release);
    wait_for(BackpressureState::Normal);
    let report = pool.shutdown(Shutdown::Drain);
    let snap = registry.snapshot();
    for level in ["warning", "critical", "overloaded"] {
        assert_eq!(counter(&snap, names::BACKPRESSURE_ACTIVATIONS, &["busy", level]), 1, "{level}");
        assert_eq!(counter(&snap, names::BACKPRESSURE_ACTIVATIONS, &["quiet", level]), 0, "{level}");
    }
    assert_eq!(counter(&snap, names::OBSERVATIONS_REJECTED, &["busy", "backpressure"]), 2);
    for space in ["busy", "quiet"] {
        assert_eq!(snap.value(names::BACKPRESSURE_STATE, &[space]), Some(&OwnedValue::IntGauge(0)));
    }
    assert_eq!(report.processed, sum_counter(&snap, names::OBSERVATIONS));
}

#[test]
fn idle_workers_steal_from_busy_ones() {
    let registry = Registry::new();
    let handler = Arc::new(Recorder { delay: Duration::from_millis(1), ..Recorder::default() });
    let config = PoolConfig { workers: 2, min_batch: 4, max_batch: 4, ..PoolConfig::default() };
    let pool = WorkerPool::start(config, &registry, handler).unwrap();
    let space = pool.memory_space("s").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let stolen = || sum_counter(&registry.snapshot(), names::WORK_STOLEN);
    // Bursts of 16: each worker claims up to 8 ahead; the one that finds the
    // lanes empty steals from the other.
    while stolen() == 0 {
        assert!(Instant::now() < deadline, "no work was ever stolen");
        for k in 0..16 {
            pool.submit(&space, Priority::Normal, k, Vec::new()).unwrap();
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    let report = pool.shutdown(Shutdown::Drain);
    assert_eq!(report.processed, sum_counter(&registry.snapshot(), names::OBSERVATIONS));
}

#[test]
fn invalid_configuration_and_spaces_are_typed_errors() {
    let registry = Registry::new();
    let h = Arc::new(Recorder::default());
    for bad in [
        PoolConfig { workers: 0, ..PoolConfig::default() },
        PoolConfig { min_batch: 8, max_batch: 4, ..PoolConfig::default() },
        PoolConfig { queue: QueueConfig { low: 0, ..QueueConfig::default() }, ..PoolConfig::default() },
    ] {
        let err = WorkerPool::start(bad, &registry, h.clone()).unwrap_err();
        assert!(matches!(err, hotmeter_streaming::PoolError::InvalidConfig { .. }), "{err}");
    }
    let thresholds = BackpressureThresholds { warning: 0.9, critical: 0.5, ..BackpressureThresholds::default() };
    let err = WorkerPool::start(PoolConfig { backpressure: thresholds, ..PoolConfig::default() }, &registry, h.clone());
    assert!(matches!(err, Err(hotmeter_streaming::PoolError::Thresholds(_))));

    let pool =
        WorkerPool::start(PoolConfig { workers: 1, max_memory_spaces: 2, ..PoolConfig::default() }, &registry, h)
            .unwrap();
    let a = pool.memory_space("a").unwrap();
    assert_eq!(pool.memory_space("a").unwrap(), a, "same name, same space");
    pool.memory_space("b").unwrap();
    assert!(matches!(pool.memory_space("c"), Err(hotmeter_streaming::SpaceError::TooMany { limit: 2, .. })));
    assert!(matches!(pool.memory_space(""), Err(hotmeter_streaming::SpaceError::InvalidName { .. })));
}
