//! Memory spaces that come and go: retirement, idle retirement, revival,
//! removal of their series, and no record lost to any of it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hotmeter::{OwnedValue, Registry, RegistrySnapshot};
use hotmeter_streaming::metrics as names;
use hotmeter_streaming::{
    BatchContext, BatchFailure, BatchHandler, Observation, PoolConfig, Priority, RejectReason, Shutdown, WorkerPool,
};

/// Counts what it sees, by space name; blocks while `hold` is set.
#[derive(Debug, Default)]
struct Tally {
    hold: AtomicBool,
    seen: Mutex<HashMap<String, u64>>,
}

impl BatchHandler for Tally {
    fn handle(&self, _ctx: &BatchContext, batch: &[Observation]) -> Result<(), BatchFailure> {
        let t = Instant::now();
        while self.hold.load(Ordering::Acquire) && t.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_micros(200));
        }
        let mut seen = self.seen.lock().unwrap();
        for o in batch {
            *seen.entry(o.space.name().to_owned()).or_default() += 1;
        }
        Ok(())
    }
}

fn config(linger_ms: u64) -> PoolConfig {
    PoolConfig {
        workers: 2,
        monitor_interval: Duration::from_millis(2),
        retired_linger: Duration::from_millis(linger_ms),
        ..PoolConfig::default()
    }
}

/// A counter's value, `None` when the series is not exported.
fn counter(snap: &RegistrySnapshot, name: &str, labels: &[&str]) -> Option<u64> {
    match snap.value(name, labels)? {
        OwnedValue::Counter(n) => Some(*n),
        other => panic!("{name}{labels:?} is {other:?}"),
    }
}

fn accepted(snap: &RegistrySnapshot, space: &str) -> Option<u64> {
    let lanes: Vec<u64> =
        Priority::ALL.iter().filter_map(|p| counter(snap, names::OBSERVATIONS, &[space, p.as_str()])).collect();
    (!lanes.is_empty()).then(|| lanes.iter().sum())
}

/// Every family keyed by memory space that holds a series of `space`.
fn families_holding(snap: &RegistrySnapshot, space: &str) -> Vec<String> {
    snap.families
        .iter()
        .filter(|f| f.series.iter().any(|s| s.labels.iter().any(|(n, v)| n == "memory_space" && v == space)))
        .map(|f| f.desc.name.to_string())
        .collect()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(t.elapsed() < Duration::from_secs(20), "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_retired_space_drains_lingers_with_its_final_values_then_leaves() {
    let registry = Registry::new();
    let h = Arc::new(Tally::default());
    h.hold.store(true, Ordering::Release);
    let pool = WorkerPool::start(config(300), &registry, h.clone()).unwrap();
    let t1 = pool.memory_space("t1").unwrap();
    for k in 0..50 {
        pool.submit(&t1, Priority::Normal, k, vec![0; 8]).unwrap();
    }
    assert!(pool.retire_memory_space(&t1));
    assert!(!pool.retire_memory_space(&t1), "retiring twice says so");
    assert!(t1.is_retired());
    let e = pool.submit(&t1, Priority::High, 99, vec![1; 3]).unwrap_err();
    assert_eq!(e.reason(), RejectReason::Retired);
    assert_eq!((e.observation().key, e.into_observation().payload), (99, vec![1; 3]), "handed back whole");
    assert_eq!(pool.memory_spaces(), (0, 1));

    // Queued work keeps it: well past the linger, nothing is removed.
    std::thread::sleep(Duration::from_millis(600));
    let snap = registry.snapshot();
    assert_eq!(accepted(&snap, "t1"), Some(50));
    assert_eq!(counter(&snap, names::OBSERVATIONS_REJECTED, &["t1", "retired"]), Some(1));
    assert_eq!(pool.memory_spaces_removed(), 0);

    // Processed, then exported with the final values for the linger, then gone.
    h.hold.store(false, Ordering::Release);
    let mut final_seen = false;
    wait_until("t1's series leave", || {
        let snap = registry.snapshot();
        if counter(&snap, names::OBSERVATIONS_PROCESSED, &["t1"]) == Some(50) {
            final_seen = true;
        }
        families_holding(&snap, "t1").is_empty()
    });
    assert!(final_seen, "a scrape during the linger saw every observation processed");
    assert_eq!(h.seen.lock().unwrap()["t1"], 50);
    assert_eq!((pool.memory_spaces(), pool.memory_spaces_removed()), ((0, 0), 1));

    // The name comes back as a new space, from zero.
    let again = pool.memory_space("t1").unwrap();
    assert_ne!(again, t1);
    assert!(again.index() > t1.index(), "numbers are never reused");
    pool.submit(&again, Priority::Normal, 1, vec![]).unwrap();
    assert_eq!(accepted(&registry.snapshot(), "t1"), Some(1), "starts again from zero");
    assert!(!pool.retire_memory_space(&t1), "the old handle is no longer the pool's");

    // Asked through the old handle, after its series left: refused (or
    // answered) as before, and counted in the pool-wide series, never in
    // the new space's.
    let before = registry.snapshot();
    assert_eq!(counter(&before, names::REMOVED_SPACE_USES, &["submit"]), Some(0));
    let e = pool.submit(&t1, Priority::Normal, 7, vec![]).unwrap_err();
    assert_eq!(e.reason(), RejectReason::Retired);
    let recalls = hotmeter_streaming::RecallIndex::new(8);
    assert_eq!(recalls.recall(&t1, 7), None);
    let snap = registry.snapshot();
    assert_eq!(counter(&snap, names::REMOVED_SPACE_USES, &["submit"]), Some(1));
    assert_eq!(counter(&snap, names::REMOVED_SPACE_USES, &["recall"]), Some(1));
    assert_eq!(counter(&snap, names::OBSERVATIONS_REJECTED, &["t1", "retired"]), Some(0), "not the new t1's");
    match snap.value(names::RECALL_LATENCY, &["t1"]) {
        Some(OwnedValue::Histogram { count, .. }) => {
            assert_eq!(*count, 0, "the recall was not timed into the new t1's")
        }
        other => panic!("the new t1's recall latency is {other:?}"),
    }
    pool.shutdown(Shutdown::Drain);
}

#[test]
fn a_space_registered_again_before_removal_is_revived_and_its_series_go_on() {
    let registry = Registry::new();
    let pool = WorkerPool::start(config(60_000), &registry, Arc::new(Tally::default())).unwrap();
    let a = pool.memory_space("a").unwrap();
    pool.submit(&a, Priority::Normal, 1, vec![]).unwrap();
    assert!(pool.retire_memory_space(&a));
    assert_eq!(pool.submit(&a, Priority::Normal, 2, vec![]).unwrap_err().reason(), RejectReason::Retired);
    let back = pool.memory_space("a").unwrap();
    assert_eq!(back, a);
    assert!(!a.is_retired());
    pool.submit(&a, Priority::Normal, 3, vec![]).unwrap();
    assert_eq!(accepted(&registry.snapshot(), "a"), Some(2));
    pool.shutdown(Shutdown::Drain);
}

#[test]
fn idle_spaces_are_retired_and_busy_ones_are_not() {
    let registry = Registry::new();
    let cfg = PoolConfig { space_idle_timeout: Some(Duration::from_millis(150)), ..config(100) };
    let pool = WorkerPool::start(cfg, &registry, Arc::new(Tally::default())).unwrap();
    let (quiet, busy) = (pool.memory_space("quiet").unwrap(), pool.memory_space("busy").unwrap());
    pool.submit(&quiet, Priority::Normal, 0, vec![]).unwrap();
    let mut k = 0;
    wait_until("quiet's series leave", || {
        k += 1;
        pool.submit(&busy, Priority::Normal, k, vec![]).unwrap();
        families_holding(&registry.snapshot(), "quiet").is_empty()
    });
    assert!(quiet.is_retired() && !busy.is_retired());
    assert!(!families_holding(&registry.snapshot(), "busy").is_empty());
    assert_eq!(pool.memory_spaces(), (1, 0));

    let bad = PoolConfig { space_idle_timeout: Some(Duration::ZERO), ..PoolConfig::default() };
    assert!(matches!(
        WorkerPool::start(bad, &Registry::new(), Arc::new(Tally::default())),
        Err(hotmeter_streaming::PoolError::InvalidConfig { setting: "space_idle_timeout", .. })
    ));
    pool.shutdown(Shutdown::Drain);
}

#[test]
fn observations_handed_back_at_shutdown_release_their_space() {
    let registry = Registry::new();
    let h = Arc::new(Tally::default());
    h.hold.store(true, Ordering::Release);
    let pool = WorkerPool::start(config(1), &registry, h.clone()).unwrap();
    let s = pool.memory_space("s").unwrap();
    for k in 0..20 {
        pool.submit(&s, Priority::Low, k, vec![]).unwrap();
    }
    pool.retire_memory_space(&s);
    let stopper = {
        let h = h.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            h.hold.store(false, Ordering::Release);
        })
    };
    let report = pool.shutdown(Shutdown::HandBack);
    stopper.join().unwrap();
    assert_eq!(report.processed + report.handed_back.len() as u64, 20);
    // A stopped pool has no monitor to remove series: the space stays
    // retired in the list (a hold given back twice would have failed the
    // debug assertion in `SpaceLife::leave`).
    assert_eq!(pool.memory_spaces(), (0, 1));
}

/// Submitters race retirements: each round registers a new space, four
/// threads submit to it while the main thread retires it at a random
/// moment, and a scraper keeps snapshotting. The last snapshot holding a
/// space must hold its final values: every accepted submission, every
/// processed observation and every refusal for a full or shedding queue,
/// none recorded after its series were removed.
#[test]
fn retirement_racing_submitters_loses_no_record() {
    const ROUNDS: u64 = 40;
    let registry = Registry::new();
    let h = Arc::new(Tally::default());
    let pool = Arc::new(WorkerPool::start(config(40), &registry, h.clone()).unwrap());
    let current: Arc<Mutex<Option<hotmeter_streaming::MemorySpace>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let accepted_by: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let shed_by: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let refused = Arc::new(AtomicU64::new(0));
    let last_seen: Arc<Mutex<HashMap<String, [u64; 3]>>> = Arc::default();

    let submitters: Vec<_> = (0..4)
        .map(|t| {
            let (pool, current, stop, accepted_by, shed_by, refused) =
                (pool.clone(), current.clone(), stop.clone(), accepted_by.clone(), shed_by.clone(), refused.clone());
            std::thread::spawn(move || {
                let mut k = t;
                let deadline = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
                    let Some(space) = current.lock().unwrap().clone() else { continue };
                    for _ in 0..16 {
                        k += 4;
                        match pool.submit(&space, Priority::Normal, k, vec![]) {
                            Ok(()) => *accepted_by.lock().unwrap().entry(space.name().to_owned()).or_default() += 1,
                            Err(e) if e.reason() == RejectReason::Retired => {
                                refused.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                            Err(e) if matches!(e.reason(), RejectReason::QueueFull | RejectReason::Backpressure) => {
                                *shed_by.lock().unwrap().entry(space.name().to_owned()).or_default() += 1;
                            }
                            Err(e) => panic!("unexpected refusal: {e}"),
                        }
                    }
                    std::thread::yield_now();
                }
            })
        })
        .collect();
    let scraper = {
        let (registry, stop, last_seen) = (registry.clone(), stop.clone(), last_seen.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(90);
            while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
                let snap = registry.snapshot();
                let mut seen = last_seen.lock().unwrap();
                for r in 0..ROUNDS {
                    let name = format!("r{r}");
                    if let (Some(a), Some(p)) =
                        (accepted(&snap, &name), counter(&snap, names::OBSERVATIONS_PROCESSED, &[&name]))
                    {
                        let shed: u64 = ["queue_full", "backpressure"]
                            .iter()
                            .filter_map(|reason| counter(&snap, names::OBSERVATIONS_REJECTED, &[&name, reason]))
                            .sum();
                        seen.insert(name, [a, p, shed]);
                    }
                }
                drop(seen);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };

    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut spaces = Vec::new();
    for r in 0..ROUNDS {
        let space = pool.memory_space(&format!("r{r}")).unwrap();
        *current.lock().unwrap() = Some(space.clone());
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_micros(200 + rng % 3_000));
        assert!(pool.retire_memory_space(&space));
        spaces.push(space);
    }
    *current.lock().unwrap() = None;
    wait_until("every round's series leave", || pool.memory_spaces() == (0, 0));
    // One more scrape interval, so the scraper's map is settled.
    std::thread::sleep(Duration::from_millis(20));
    stop.store(true, Ordering::Release);
    for s in submitters {
        s.join().unwrap();
    }
    scraper.join().unwrap();

    let accepted_by = accepted_by.lock().unwrap();
    let shed_by = shed_by.lock().unwrap();
    let seen = h.seen.lock().unwrap();
    let last_seen = last_seen.lock().unwrap();
    assert_eq!(pool.memory_spaces_removed(), ROUNDS);
    let mut total = 0;
    for r in 0..ROUNDS {
        let name = format!("r{r}");
        let sent = accepted_by.get(&name).copied().unwrap_or(0);
        let handled = seen.get(&name).copied().unwrap_or(0);
        assert_eq!(handled, sent, "{name}: every accepted observation was handled");
        let [exported_accepted, exported_processed, exported_shed] = last_seen.get(&name).copied().unwrap_or_default();
        assert_eq!(exported_accepted, sent, "{name}: the last scrape holding it had every acceptance");
        assert_eq!(exported_processed, sent, "{name}: ... every processed observation");
        assert_eq!(exported_shed, shed_by.get(&name).copied().unwrap_or(0), "{name}: ... every shed one");
        assert!(families_holding(&registry.snapshot(), &name).is_empty(), "{name} left /metrics");
        total += sent;
    }
    assert!(total > 0 && refused.load(Ordering::Relaxed) > 0, "the race was exercised: {total} accepted");
    assert_eq!(pool.stats().processed, total);
}

/// Families keyed by memory space hold every space the pool may hold: 600
/// spaces with every reason of refusal never overflow (the default limit
/// of 2,000 series a family would after 400 spaces of five reasons).
#[test]
fn a_pool_of_many_spaces_never_overflows_its_families() {
    let registry = Registry::new();
    let cfg = PoolConfig {
        max_memory_spaces: 600,
        queue: hotmeter_streaming::QueueConfig { max_payload_bytes: 4, ..Default::default() },
        ..config(60_000)
    };
    let pool = WorkerPool::start(cfg, &registry, Arc::new(Tally::default())).unwrap();
    for i in 0..600 {
        let s = pool.memory_space(&format!("s{i}")).unwrap();
        pool.submit(&s, Priority::Normal, 0, vec![]).unwrap();
        assert_eq!(pool.submit(&s, Priority::Normal, 1, vec![0; 5]).unwrap_err().reason(), RejectReason::Invalid);
    }
    let snap = registry.snapshot();
    for i in [0, 399, 400, 599] {
        let name = format!("s{i}");
        assert_eq!(counter(&snap, names::OBSERVATIONS_REJECTED, &[&name, "invalid"]), Some(1), "{name}");
        assert_eq!(accepted(&snap, &name), Some(1), "{name}");
    }
    assert!(families_holding(&snap, "__overflow__").is_empty(), "no series overflowed");
    pool.shutdown(Shutdown::Drain);
}

/// A client that keeps submitting to a retired space through a stale
/// handle (each refusal holds the space for an instant) does not keep it:
/// its series still leave after the linger.
#[test]
fn a_client_retrying_a_retired_space_does_not_keep_it() {
    let registry = Registry::new();
    let pool = Arc::new(WorkerPool::start(config(200), &registry, Arc::new(Tally::default())).unwrap());
    let s = pool.memory_space("stale").unwrap();
    pool.submit(&s, Priority::Normal, 0, vec![]).unwrap();
    assert!(pool.retire_memory_space(&s));
    let stop = Arc::new(AtomicBool::new(false));
    let retriers: Vec<_> = (0..2)
        .map(|_| {
            let (pool, s, stop) = (pool.clone(), s.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut refused, deadline) = (0u64, Instant::now() + Duration::from_secs(20));
                while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
                    if pool.submit(&s, Priority::Normal, 1, vec![]).is_err() {
                        refused += 1;
                    }
                }
                refused
            })
        })
        .collect();
    wait_until("the retired space leaves despite the retries", || pool.memory_spaces() == (0, 0));
    stop.store(true, Ordering::Release);
    let refused: u64 = retriers.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(refused > 1_000, "the retries ran: {refused}");
    assert!(families_holding(&registry.snapshot(), "stale").is_empty());
    pool.shutdown(Shutdown::Drain);
}

/// A space revived after idle retirement is as fresh as a new one: the
/// monitor does not retire it again at its next tick.
#[test]
fn a_revived_space_gets_a_whole_idle_timeout() {
    let registry = Registry::new();
    let cfg = PoolConfig { space_idle_timeout: Some(Duration::from_millis(300)), ..config(60_000) };
    let pool = WorkerPool::start(cfg, &registry, Arc::new(Tally::default())).unwrap();
    let s = pool.memory_space("nap").unwrap();
    wait_until("idle retirement", || s.is_retired());
    assert_eq!(pool.memory_space("nap").unwrap(), s, "revived, not replaced");
    std::thread::sleep(Duration::from_millis(100));
    assert!(!s.is_retired(), "a third of the timeout after its revival, still live");
    pool.submit(&s, Priority::Normal, 0, vec![]).unwrap();
    pool.shutdown(Shutdown::Drain);
}

/// `Shutdown::Drain` hands nothing back while submitters race the close
/// (a worker must not stop while a submission that passed the gate is
/// still pushing).
#[test]
fn drain_hands_nothing_back_to_racing_submitters() {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut rounds = 0;
    while rounds < 60 && Instant::now() < deadline {
        rounds += 1;
        let cfg = PoolConfig {
            workers: 1,
            queue: hotmeter_streaming::QueueConfig { high: 16, normal: 256, low: 16, max_payload_bytes: 64 },
            ..PoolConfig::default()
        };
        let pool = Arc::new(WorkerPool::start(cfg, &Registry::new(), Arc::new(Tally::default())).unwrap());
        let s = pool.memory_space("d").unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let submitters: Vec<_> = (0..3)
            .map(|_| {
                let (pool, s, stop) = (pool.clone(), s.clone(), stop.clone());
                std::thread::spawn(move || {
                    let deadline = Instant::now() + Duration::from_secs(5);
                    while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
                        let _ = pool.submit(&s, Priority::Normal, 0, vec![]);
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(3));
        let report = pool.shutdown(Shutdown::Drain);
        stop.store(true, Ordering::Release);
        for t in submitters {
            t.join().unwrap();
        }
        assert_eq!(report.handed_back.len(), 0, "round {rounds}: Drain handed back accepted observations");
    }
}
