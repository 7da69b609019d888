//! Histogram observe vs snapshot: a reader never sees a torn snapshot
//! (count == sum of buckets, and the sum belongs to exactly those
//! observations), and no observation is lost across flips.
#![cfg(hotmeter_loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::thread;

#[test]
fn snapshot_during_observe_is_consistent() {
    loom::model(|| {
        let h = hotmeter::Histogram::new(hotmeter::Buckets::new(BOUNDS).unwrap());
        let w = h.clone();
        let t = thread::spawn(move || {
            w.observe(VALUES[0]);
            w.observe(VALUES[2]);
        });
        let s = h.snapshot();
        // A prefix of the writer's observations: none, the first, or both.
        let (counts, sum) = (s.counts().to_vec(), s.sum());
        assert!(
            (counts == [0, 0, 0] && sum == 0.0)
                || (counts == [1, 0, 0] && sum == 0.5)
                || (counts == [1, 0, 1] && sum == 3.5),
            "torn or out of order: {counts:?} with sum {sum}"
        );
        t.join().unwrap();
        let s = h.snapshot();
        assert_eq!(s.counts(), &[1, 0, 1]);
        assert_eq!(s.sum(), 3.5);
    });
}

/// Writer `i` observes `VALUES[i]`, which falls in bucket `i` alone, so a
/// snapshot shows exactly which observations it holds: each bucket 0 or 1,
/// and the sum exactly the sum of the values of the buckets at 1 (all
/// values are exact in binary). A snapshot that counted an observation
/// without its sum, or summed one it did not count, fails here; unlike
/// `count == sum(buckets)`, which holds by construction.
const BOUNDS: [f64; 2] = [1.0, 2.0];
const VALUES: [f64; 3] = [0.5, 1.5, 3.0];

fn assert_exact_subset(s: &hotmeter::HistogramSnapshot, writers: usize) {
    let mut expected_sum = 0.0;
    for (bucket, &n) in s.counts().iter().enumerate() {
        assert!(n <= 1, "bucket {bucket} counts {n}, more than were observed");
        if n == 1 {
            assert!(bucket < writers, "bucket {bucket} counted but nobody observed into it");
            expected_sum += VALUES[bucket];
        }
    }
    assert_eq!(s.sum(), expected_sum, "torn: sum {} for buckets {:?}", s.sum(), s.counts());
}

/// `writers` threads observe one distinct value each while the main thread
/// snapshots; afterwards the snapshot holds every observation.
fn writers_and_reader(writers: usize) {
    loom::model(move || {
        let h = hotmeter::Histogram::new(hotmeter::Buckets::new(BOUNDS).unwrap());
        let ts: Vec<_> = (0..writers)
            .map(|i| {
                let w = h.clone();
                thread::spawn(move || w.observe(VALUES[i]))
            })
            .collect();
        assert_exact_subset(&h.snapshot(), writers);
        for t in ts {
            t.join().unwrap();
        }
        let s = h.snapshot();
        assert_exact_subset(&s, writers);
        for (bucket, &n) in s.counts().iter().enumerate() {
            assert_eq!(n, u64::from(bucket < writers), "bucket {bucket} after every writer finished");
        }
        assert_eq!(s.sum(), VALUES[..writers].iter().sum::<f64>());
    });
}

#[test]
fn two_writers_one_reader() {
    writers_and_reader(2);
}

#[test]
fn two_readers_one_writer() {
    loom::model(|| {
        let h = hotmeter::Histogram::new(hotmeter::Buckets::new(BOUNDS).unwrap());
        let r = h.clone();
        let reader = thread::spawn(move || assert_exact_subset(&r.snapshot(), 2));
        h.observe(VALUES[0]);
        assert_exact_subset(&h.snapshot(), 2);
        h.observe(VALUES[1]);
        reader.join().unwrap();
        let s = h.snapshot();
        assert_eq!(s.counts(), &[1, 1, 0]);
        assert_eq!(s.sum(), 2.0);
    });
}

/// Threads 2 and 3 are beyond the owned shards under loom (2), so they
/// share one shard and race with compare-and-swap and `fetch_add`.
#[test]
fn shared_shard_writers_and_reader() {
    writers_and_reader(3);
}

/// A histogram that adds the bucket and then the sum, with no hot/cold
/// protocol: loom must find a reader that sees the bucket without the sum.
#[test]
#[should_panic(expected = "torn read")]
fn histogram_without_hot_cold_is_caught() {
    loom::model(|| {
        let bucket = Arc::new(AtomicU64::new(0));
        let sum = Arc::new(AtomicU64::new(0f64.to_bits()));
        let (b, s) = (bucket.clone(), sum.clone());
        let t = thread::spawn(move || {
            b.fetch_add(1, Ordering::Release);
            let cur = f64::from_bits(s.load(Ordering::Relaxed));
            s.store((cur + 1.0).to_bits(), Ordering::Release);
        });
        let count = bucket.load(Ordering::Acquire);
        let total = f64::from_bits(sum.load(Ordering::Acquire));
        assert_eq!(total, count as f64, "torn read");
        t.join().unwrap();
    });
}
