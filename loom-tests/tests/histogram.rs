//! Histogram observe vs snapshot: a reader never sees a torn snapshot
//! (count == sum of buckets, and the sum belongs to exactly those
//! observations), and no observation is lost across flips.
#![cfg(hotmeter_loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::thread;

/// Every observation is 1.0, so a consistent snapshot has `sum == count`.
fn assert_consistent(s: &hotmeter::HistogramSnapshot) {
    assert_eq!(s.count(), s.counts().iter().sum::<u64>());
    assert_eq!(s.sum(), s.count() as f64, "torn: sum {} for count {}", s.sum(), s.count());
}

#[test]
fn snapshot_during_observe_is_consistent() {
    loom::model(|| {
        let h = hotmeter::Histogram::new(hotmeter::Buckets::new([0.5]).unwrap());
        let w = h.clone();
        let t = thread::spawn(move || {
            w.observe(1.0);
            w.observe(1.0);
        });
        let s = h.snapshot();
        assert_consistent(&s);
        t.join().unwrap();
        let s = h.snapshot();
        assert_consistent(&s);
        assert_eq!(s.count(), 2);
        assert_eq!(s.counts(), &[0, 2]);
    });
}

/// `writers` threads observe 1.0 once each while the main thread
/// snapshots; afterwards the snapshot holds every observation.
fn writers_and_reader(writers: usize) {
    loom::model(move || {
        let h = hotmeter::Histogram::new(hotmeter::Buckets::new([0.5]).unwrap());
        let ts: Vec<_> = (0..writers)
            .map(|_| {
                let w = h.clone();
                thread::spawn(move || w.observe(1.0))
            })
            .collect();
        assert_consistent(&h.snapshot());
        for t in ts {
            t.join().unwrap();
        }
        let s = h.snapshot();
        assert_consistent(&s);
        assert_eq!(s.count(), writers as u64);
    });
}

#[test]
fn two_writers_one_reader() {
    writers_and_reader(2);
}

#[test]
fn two_readers_one_writer() {
    loom::model(|| {
        let h = hotmeter::Histogram::new(hotmeter::Buckets::new([0.5]).unwrap());
        let r = h.clone();
        let reader = thread::spawn(move || assert_consistent(&r.snapshot()));
        h.observe(1.0);
        assert_consistent(&h.snapshot());
        reader.join().unwrap();
        assert_eq!(h.snapshot().count(), 1);
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
#[should_panic]
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
