//! Counters: concurrent increments are never lost, whether they land in the
//! first cell, race the growth of the shards, or share a shard; and a
//! concurrent read sees a value between the bounds.
#![cfg(hotmeter_loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::thread;

#[test]
fn sharded_counter_loses_no_increment() {
    loom::model(|| {
        let c = hotmeter::Counter::new();
        let c1 = c.clone();
        let c2 = c.clone();
        let t1 = thread::spawn(move || {
            c1.inc();
            c1.inc_by(2);
        });
        let t2 = thread::spawn(move || c2.inc_by(10));
        // A read during the writes is a value some prefix of them makes.
        let mid = c.get();
        assert!(mid <= 13, "read {mid} above every possible total");
        t1.join().unwrap();
        t2.join().unwrap();
        assert_eq!(c.get(), 13);
    });
}

/// Three recording threads, two increments each, on a counter that grows
/// two shards (loom's shard count) when its first cell's exchange fails:
/// slots 0 and 2 then share shard 0, so two threads do read-modify-writes
/// on one cell. A shard update split into a load and a store loses one.
#[test]
fn more_threads_than_shards_lose_no_increment() {
    loom::model(|| {
        let c = hotmeter::Counter::new();
        loom_tests::on_threads(3, &c, |c| {
            c.inc();
            c.inc();
        });
        assert_eq!(c.get(), 6, "lost update on a shared shard");
    });
}

#[test]
fn single_counter_loses_no_increment() {
    loom::model(|| {
        let c = hotmeter::SingleCounter::new();
        loom_tests::on_threads(2, &c, |c| c.inc());
        assert_eq!(c.get(), 2);
    });
}

/// A counter that increments with a load and a store: loom must find the
/// lost update.
#[test]
#[should_panic(expected = "lost update")]
fn racy_counter_is_caught() {
    loom::model(|| {
        let c = Arc::new(AtomicU64::new(0));
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let c = c.clone();
                thread::spawn(move || {
                    let v = c.load(Ordering::Relaxed);
                    c.store(v + 1, Ordering::Relaxed);
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(c.load(Ordering::Relaxed), 2, "lost update");
    });
}
