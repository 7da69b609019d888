//! Stress: N threads x M operations on shared metrics while a reader
//! snapshots concurrently. Totals must be exact: no increment is ever lost,
//! and every histogram snapshot is consistent. Bounded in count, not time.

use std::sync::atomic::{AtomicBool, Ordering};

use hotmeter::{Buckets, Counter, Family, Histogram, Registry, SingleCounter, StringFamily};

const THREADS: usize = 4;
const OPS: u64 = 50_000;

hotmeter::label_enum! {
    /// Lane.
    pub enum Lane: "lane" { High = "high", Normal = "normal", Low = "low" }
}

#[test]
fn no_update_is_lost_while_a_reader_snapshots() {
    let registry = Registry::new();
    let counter = registry.counter("ops_total", "Ops.").unwrap();
    let single = registry.register(("single_total", "Ops."), SingleCounter::new()).unwrap();
    let gauge = registry.gauge("level", "Level.").unwrap();
    let int_gauge = registry.int_gauge("depth", "Depth.").unwrap();
    let hist = registry.histogram("lat_seconds", "Latency.", Buckets::new([0.25, 0.5, 0.75]).unwrap()).unwrap();
    let lanes: Family<Lane, Counter> = registry.typed_family("lane_total", "By lane.", Counter::new).unwrap();
    let spaces: StringFamily<Counter> =
        registry.labeled_family("space_total", "By space.", &["space"], Counter::new).unwrap();

    let done = AtomicBool::new(false);
    let mut snapshots = 0u64;
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (counter, single, gauge, int_gauge, hist, lanes, spaces) =
                    (&counter, &single, &gauge, &int_gauge, &hist, &lanes, &spaces);
                s.spawn(move || {
                    let names = ["a", "b", "c", "d", "e"];
                    for i in 0..OPS {
                        counter.inc();
                        single.inc();
                        gauge.add(1.0);
                        int_gauge.inc();
                        // Values 0.125 apart: every bucket is used; the sum is exact in f64.
                        hist.observe((i % 8) as f64 * 0.125);
                        lanes.get(Lane::ALL[(i % 3) as usize]).inc();
                        spaces.with(&[names[(i as usize + t) % names.len()]], |c| c.inc()).unwrap();
                    }
                })
            })
            .collect();
        let reader = s.spawn(|| {
            let mut n = 0u64;
            let mut last = 0;
            loop {
                let finished = done.load(Ordering::Relaxed);
                let h = hist.snapshot();
                assert_eq!(h.count(), h.counts().iter().sum::<u64>());
                assert!(h.count() >= last, "count went backwards");
                last = h.count();
                let snap = registry.snapshot();
                assert!(snap.families.len() >= 7);
                n += 1;
                if finished {
                    break n;
                }
            }
        });
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        snapshots = reader.join().unwrap();
    });
    assert!(snapshots > 0, "the reader must have run");

    let total = THREADS as u64 * OPS;
    assert_eq!(counter.get(), total);
    assert_eq!(single.get(), total);
    assert_eq!(gauge.get(), total as f64);
    assert_eq!(int_gauge.get(), total as i64);
    let h = hist.snapshot();
    assert_eq!(h.count(), total);
    // Per thread, each residue r of i % 8 occurs OPS / 8 times, value r / 8.
    let per_value = total / 8;
    assert_eq!(h.counts(), &[per_value * 3, per_value * 2, per_value * 2, per_value]);
    assert_eq!(h.sum(), per_value as f64 * (0..8).map(|r| r as f64 * 0.125).sum::<f64>());
    let lane_total: u64 = Lane::ALL.iter().map(|&l| lanes.get(l).get()).sum();
    assert_eq!(lane_total, total);
    let space_total: u64 = ["a", "b", "c", "d", "e"].iter().map(|n| spaces.get(&[n]).unwrap().get()).sum();
    assert_eq!(space_total, total);
    assert_eq!(spaces.len(), 5);
}

#[test]
fn concurrent_first_inserts_agree() {
    // Many threads race to create the same 100 label sets.
    let f = StringFamily::new(&["k"], SingleCounter::new);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for i in 0..100 {
                    f.with(&[&i.to_string()], |c| c.inc()).unwrap();
                }
            });
        }
    });
    assert_eq!(f.len(), 100);
    for i in 0..100 {
        assert_eq!(f.get(&[&i.to_string()]).unwrap().get(), THREADS as u64);
    }
}

#[test]
fn histograms_stay_consistent_under_many_snapshots() {
    let h = Histogram::new(Buckets::new([1.0]).unwrap());
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    for _ in 0..OPS {
                        h.observe(2.0);
                    }
                })
            })
            .collect();
        for _ in 0..2 {
            s.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    let snap = h.snapshot();
                    assert_eq!(snap.sum(), 2.0 * snap.count() as f64, "torn snapshot");
                }
            });
        }
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
    });
    assert_eq!(h.snapshot().count(), 2 * OPS);
}

#[test]
fn more_threads_than_owned_shards_lose_nothing() {
    // 40 live threads at once: slots beyond the owned shards share one shard
    // through atomic read-modify-writes, while a reader snapshots.
    let h = Histogram::new(Buckets::new([1.0]).unwrap());
    let c = Counter::new();
    let done = AtomicBool::new(false);
    let barrier = std::sync::Barrier::new(40);
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..40)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    for _ in 0..5_000 {
                        h.observe(0.5);
                        c.inc();
                    }
                })
            })
            .collect();
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                let snap = h.snapshot();
                assert_eq!(snap.sum(), 0.5 * snap.count() as f64, "torn snapshot");
            }
        });
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
    });
    assert_eq!(h.snapshot().count(), 40 * 5_000);
    assert_eq!(h.snapshot().sum(), 0.5 * 40.0 * 5_000.0);
    assert_eq!(c.get(), 40 * 5_000);
}

/// A thread whose lock-free lookup misses just before another thread
/// inserts the same label set (filling the family) must still land on that
/// series, never on the overflow series. Before the fix this happened about
/// once in 20,000 runs with 6 threads; the loom model `family.rs` proves it.
#[test]
fn an_existing_label_set_never_lands_in_overflow_at_the_limit() {
    const THREADS: usize = 6;
    const ROUNDS: usize = 3_000;
    let started = std::time::Instant::now();
    let mut rounds = 0;
    for round in 0..ROUNDS {
        // Half the rounds with reclaimed memory (lookups pin the epoch).
        let family = hotmeter::StringFamily::builder(&["id"], hotmeter::Counter::new).limit(1);
        let family = if round % 4 >= 2 { family.reclaim_memory() } else { family }.build();
        // Every other round the label set is inserted and removed first, and
        // made again (from zero) by the racing threads.
        if round % 2 == 1 {
            family.with(&["a"], |c| c.inc()).unwrap();
            assert_eq!(family.remove(&["a"]), Ok(true));
        }
        let barrier = std::sync::Barrier::new(THREADS);
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    barrier.wait();
                    family.with(&["a"], |c| c.inc()).unwrap();
                });
            }
        });
        let expected = THREADS as u64;
        assert_eq!(family.overflowed(), 0, "round {round}: an increment of an existing series went to overflow");
        assert_eq!(family.get(&["a"]).unwrap().get(), expected, "round {round}");
        rounds += 1;
        if started.elapsed() > std::time::Duration::from_secs(20) {
            break;
        }
    }
    assert!(rounds >= 100, "only {rounds} rounds ran");
}

/// Two registries scrape one string family while a writer inserts (growing
/// the index through several generations) and removes series: every scrape
/// lists series in strictly increasing label order, each with the value its
/// label names, and always every series that is never removed.
#[test]
fn scrapes_racing_inserts_removals_and_growth_stay_consistent() {
    use hotmeter::{Counter, Registry, StringFamily};
    struct Lines(Vec<(String, u64)>);
    impl hotmeter::expose::Visitor for Lines {
        fn family(&mut self, _: &hotmeter::expose::Desc) {}
        fn sample(&mut self, labels: &hotmeter::expose::Labels<'_>, value: &hotmeter::expose::Value<'_>) {
            if let (Some((_, id)), hotmeter::expose::Value::Counter(v)) =
                (labels.iter().find(|(n, _)| *n == "id"), value)
            {
                self.0.push((id.to_owned(), *v));
            }
        }
    }
    let f = StringFamily::with_limit(&["id"], 10_000, Counter::new);
    // Zero-padded, so label order is numeric order; the value is the number.
    let key = |i: u64| format!("{i:06}");
    let stable: Vec<u64> = (0..50).map(|i| i * 97).collect();
    for &i in &stable {
        f.with(&[&key(i)], |c| c.inc_by(i)).unwrap();
    }
    let a = Registry::new();
    let b = Registry::builder().const_label("host", "b").build().unwrap();
    let _ = a.register(("s_total", "S."), f.clone()).unwrap();
    let _ = b.register(("s_total", "S."), f.clone()).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for i in 0..6_000u64 {
                let i = i * 97 + 1; // never a stable key
                f.with(&[&key(i)], |c| c.inc_by(i)).unwrap();
                if i % 3 == 0 {
                    f.remove(&[&key(i)]).unwrap();
                }
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        for r in [&a, &b] {
            let done = &done;
            let stable = &stable;
            scope.spawn(move || {
                let mut scrapes = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) || scrapes < 3 {
                    let mut lines = Lines(Vec::new());
                    r.collect(&mut lines);
                    for w in lines.0.windows(2) {
                        assert!(w[0].0 < w[1].0, "order: {:?} then {:?}", w[0], w[1]);
                    }
                    for (id, v) in &lines.0 {
                        let n: u64 = id.parse().unwrap();
                        // A series just created may not have its increment yet.
                        assert!(*v == n || *v == 0, "{id} = {v}");
                    }
                    for &i in stable {
                        assert!(lines.0.iter().any(|(id, v)| *id == key(i) && *v == i), "stable {i} missing");
                    }
                    scrapes += 1;
                }
            });
        }
    });
}

/// A counter read from one thread never goes down while other threads
/// increment it through its growth from one cell to shards.
#[test]
fn counter_reads_never_go_down_through_shard_growth() {
    for _ in 0..20 {
        let c = hotmeter::Counter::new();
        let writers_done = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    for _ in 0..50_000 {
                        c.inc();
                    }
                    writers_done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                });
            }
            scope.spawn(|| {
                let mut last = 0;
                loop {
                    let finished = writers_done.load(std::sync::atomic::Ordering::Relaxed) == 2;
                    let now = c.get();
                    assert!(now >= last, "{now} after {last}");
                    last = now;
                    if finished {
                        break;
                    }
                }
            });
        });
        assert_eq!(c.get(), 100_000);
    }
}

/// 8 writers over a churning key space, one scraper that expires idle
/// series: every increment is accounted for. A series' last exported value
/// is final when it leaves the scrape (or is replaced by a new series of
/// the same key, told apart by its created timestamp), so the sum of those
/// and of the live values at the end equals the increments.
#[test]
fn churn_with_expiry_loses_no_increment() {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    const WRITERS: usize = 8;
    const WINDOW: u64 = 40;
    let registry = hotmeter::Registry::new();
    let family = registry
        .register(
            ("churn_total", "Churn."),
            hotmeter::StringFamily::builder(&["key"], hotmeter::Counter::new)
                .limit(10_000)
                .idle_timeout(Duration::from_millis(15))
                .build(),
        )
        .unwrap();
    let increments = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    // key -> (created, last exported value)
    struct Books {
        seen: HashMap<String, (u64, u64)>,
        ended: u64,
        expirations: u64,
        /// Series that left the scrape, by key: one that comes back with
        /// the same created timestamp was put back (an update raced its
        /// expiry), value and all, and is no longer ended.
        gone: HashMap<String, (u64, u64)>,
        revivals: u64,
    }
    impl Books {
        fn scrape(&mut self, registry: &hotmeter::Registry) {
            struct V(Vec<(String, u64, u64)>);
            impl hotmeter::expose::Visitor for V {
                fn family(&mut self, _: &hotmeter::expose::Desc) {}
                fn sample(&mut self, labels: &hotmeter::expose::Labels<'_>, value: &hotmeter::expose::Value<'_>) {
                    if let (Some(("key", k)), hotmeter::expose::Value::Counter(v)) = (labels.get(0), value) {
                        self.0.push((k.to_owned(), labels.created_unix_nanos().unwrap_or(0), *v));
                    }
                }
            }
            let mut v = V(Vec::new());
            registry.collect(&mut v);
            let mut now: HashMap<String, (u64, u64)> = HashMap::with_capacity(v.0.len());
            for (k, created, value) in v.0 {
                if let Some(&(c, last)) = self.seen.get(&k)
                    && c != created
                {
                    self.ended += last;
                    self.expirations += 1;
                }
                if !self.seen.contains_key(&k)
                    && let Some((c, last)) = self.gone.remove(&k)
                    && c == created
                {
                    self.ended -= last;
                    self.revivals += 1;
                }
                now.insert(k, (created, value));
            }
            for (k, &(created, last)) in &self.seen {
                if !now.contains_key(k) {
                    self.ended += last;
                    self.expirations += 1;
                    self.gone.insert(k.clone(), (created, last));
                }
            }
            self.seen = now;
        }
    }
    let mut books = Books { seen: HashMap::new(), ended: 0, expirations: 0, gone: HashMap::new(), revivals: 0 };
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let (family, increments, done) = (&family, &increments, &done);
            s.spawn(move || {
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ w as u64;
                let mut n = 0u64;
                while !done.load(Ordering::Relaxed) && n < 2_000_000 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // The window of keys in use moves on every 2 ms.
                    let base = started.elapsed().as_millis() as u64 / 2;
                    let key = format!("k{}", base + x % WINDOW);
                    family.with(&[&key], |c| c.inc()).unwrap();
                    n += 1;
                }
                increments.fetch_add(n, Ordering::Relaxed);
            });
        }
        while started.elapsed() < Duration::from_millis(1500) {
            books.scrape(&registry);
            std::thread::sleep(Duration::from_millis(3));
        }
        done.store(true, Ordering::Relaxed);
    });
    // Writers stopped: the final scrape holds every live value.
    books.scrape(&registry);
    let live: u64 = books.seen.values().map(|&(_, v)| v).sum();
    assert_eq!(family.overflowed(), 0);
    assert!(books.expirations > 50, "the test must churn: {} expirations", books.expirations);
    assert_eq!(
        books.ended + live,
        increments.load(Ordering::Relaxed),
        "{} expirations, {} put back",
        books.expirations,
        books.revivals
    );
}

/// Lookups racing a writer that churns a reclaiming index: inserts,
/// removals, batch expiry and settling, so tables are rebuilt and retired
/// and freed slots reused while readers probe. Every value a lookup
/// reaches must be its own key's (each value holds a copy of its key).
/// Run under AddressSanitizer too, it also shows any read of freed memory
/// (see the issue #21 note for the command).
#[test]
fn lookups_racing_churn_read_only_their_own_keys() {
    use hotmeter::index::{Expiry, StringIndex};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    let index: StringIndex<String> = StringIndex::reclaiming_with_limit(1, 512);
    let keys: Vec<String> = (0..2_000).map(|i| format!("key-{i}-{}", "x".repeat(i % 40))).collect();
    let done = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|s| {
        for r in 0..3 {
            let (index, keys, done) = (&index, &keys, &done);
            s.spawn(move || {
                let mut i = r * 7;
                let mut found = 0u64;
                while !done.load(Ordering::Relaxed) {
                    let k = keys[i % keys.len()].as_str();
                    if let Some(same) = index.find_with(StringIndex::<String>::hash(&[k]), &[k], |v| v == k).unwrap() {
                        assert!(same, "a lookup of {k} reached another key's value");
                        found += 1;
                    }
                    i = i.wrapping_mul(31).wrapping_add(17);
                }
                assert!(found > 0);
            });
        }
        let mut round = 0usize;
        while started.elapsed() < Duration::from_millis(1500) {
            let base = (round * 97) % keys.len();
            for k in keys.iter().cycle().skip(base).take(300) {
                index.get_or_insert_with(StringIndex::<String>::hash(&[k]), &[k], || k.clone(), |_| ()).unwrap();
            }
            // Remove a third, expire a third (half of those "raced"), settle.
            let mut live = Vec::new();
            index.walk_live_since(None, &mut Vec::new(), |e| live.push((e.key_value(0).to_owned(), e.id())));
            let values: Vec<[&str; 1]> = live.iter().map(|(k, _)| [k.as_str()]).collect();
            let batch: Vec<Expiry<'_>> = live
                .iter()
                .zip(&values)
                .enumerate()
                .filter(|(n, _)| n % 3 == 1)
                .map(|(n, ((_, id), v))| Expiry {
                    hash: StringIndex::<String>::hash(v),
                    values: v,
                    id: *id,
                    fingerprint: if n % 2 == 0 { 0 } else { 1 },
                })
                .collect();
            index.expire_all(&batch);
            index.retain(|v| v[0].len() % 3 != round % 3);
            index.settle_expired(|v, at| v.len() as u64 % 2 == at);
            round += 1;
        }
        done.store(true, Ordering::Relaxed);
    });
    assert!(index.len() <= 512);
}
