//! The SLO tracker's native-histogram window is taken series by series:
//! when a series goes away and another comes (label churn, an expired
//! series that comes back), the family's sum can grow in total while a
//! bucket shrinks, which must read neither as a reset of every series nor
//! as lost observations.

use std::time::{Duration, Instant};

use hotmeter::{NativeHistogram, NativeOpts, Registry};
use hotmeter_slo::{Indicator, Slo, SloTracker};

#[test]
fn a_window_across_series_churn_counts_every_new_observation() {
    let r = Registry::new();
    let fam = r
        .labeled_family("write_seconds", "Write latency.", &["shard"], || NativeHistogram::new(NativeOpts::new()))
        .unwrap();
    let slo = Slo {
        name: "write-latency".into(),
        description: "95% of writes within 0.5 s.".into(),
        indicator: Indicator::Latency { histogram: "write_seconds".into(), threshold: 0.5, bounds: vec![0.5] },
        objective: 0.95,
        window: Duration::from_secs(60),
    };
    let mut t = SloTracker::new(vec![slo], None).unwrap();
    let t0 = Instant::now();
    // Before the window: shard a, 100 slow writes.
    fam.with(&["a"], |h| (0..100).for_each(|_| h.observe(2.0))).unwrap();
    t.record(t0, &r.snapshot());
    // Shard a goes away; shard b writes 101 times in the window, 11 of them slow.
    assert_eq!(fam.remove(&["a"]), Ok(true));
    fam.with(&["b"], |h| {
        (0..90).for_each(|_| h.observe(0.05));
        (0..11).for_each(|_| h.observe(2.0));
    })
    .unwrap();
    t.record(t0 + Duration::from_secs(30), &r.snapshot());
    let s = &t.report().slos[0];
    assert_eq!(s.events, 101.0, "{s:?}");
    assert!((s.sli - 90.0 / 101.0).abs() < 1e-9, "SLI {} (truth: 90 good of 101): {s:?}", s.sli);
    assert!(!s.met, "11 of 101 writes slow misses a 95% objective: {s:?}");
}
