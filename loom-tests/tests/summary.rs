//! Summary shards and the reader's swap-out: a read racing a write loses
//! nothing, counts nothing twice, and a second read sees the same window.
#![cfg(hotmeter_loom)]

use loom::thread;

#[test]
fn a_read_racing_writes_loses_and_doubles_nothing() {
    loom::model(|| {
        let s = hotmeter::Summary::new(hotmeter::SummaryOpts::default()).unwrap();
        let w = s.clone();
        let writer = thread::spawn(move || {
            w.observe(1.0);
            w.observe(3.0);
        });
        // Mid-write: a prefix of the writes, never more.
        let mid = s.quantile(1.0);
        assert!(mid.is_none() || (mid.unwrap() - 1.0).abs() < 0.02 || (mid.unwrap() - 3.0).abs() < 0.04, "{mid:?}");
        writer.join().unwrap();
        s.observe(2.0);
        for _ in 0..2 {
            // 1, 2, 3: min 1, median 2, max 3, whichever read moved what.
            let (lo, med, hi) = (s.quantile(0.0).unwrap(), s.quantile(0.5).unwrap(), s.quantile(1.0).unwrap());
            assert!((lo - 1.0).abs() < 0.02 && (med - 2.0).abs() < 0.03 && (hi - 3.0).abs() < 0.04, "{lo} {med} {hi}");
        }
        assert_eq!(s.count(), 3);
        assert_eq!(s.sum(), 6.0);
    });
}
