//! Gauge read-modify-write: concurrent `add`s through the compare-and-swap
//! loop are never lost; `set` is last-writer-wins.
#![cfg(hotmeter_loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::thread;

#[test]
fn gauge_add_loses_nothing() {
    loom::model(|| {
        let g = hotmeter::Gauge::new();
        let hs: Vec<_> = [1.5, 2.25]
            .into_iter()
            .map(|d| {
                let g = g.clone();
                thread::spawn(move || g.add(d))
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(g.get(), 3.75);
    });
}

#[test]
fn gauge_set_is_one_of_the_writes() {
    loom::model(|| {
        let g = hotmeter::Gauge::new();
        let g1 = g.clone();
        let t = thread::spawn(move || g1.set(1.0));
        g.set(2.0);
        t.join().unwrap();
        let v = g.get();
        assert!(v == 1.0 || v == 2.0, "{v}");
    });
}

#[test]
fn int_gauge_inc_dec() {
    loom::model(|| {
        let g = hotmeter::IntGauge::new();
        let g1 = g.clone();
        let t = thread::spawn(move || g1.inc());
        g.dec();
        g.inc();
        t.join().unwrap();
        assert_eq!(g.get(), 1);
    });
}

/// An f64 add done as load, add, store: loom must find the lost update.
#[test]
#[should_panic(expected = "lost gauge add")]
fn racy_gauge_add_is_caught() {
    loom::model(|| {
        let bits = Arc::new(AtomicU64::new(0f64.to_bits()));
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let bits = bits.clone();
                thread::spawn(move || {
                    let v = f64::from_bits(bits.load(Ordering::Relaxed));
                    bits.store((v + 1.0).to_bits(), Ordering::Relaxed);
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(f64::from_bits(bits.load(Ordering::Relaxed)), 2.0, "lost gauge add");
    });
}
