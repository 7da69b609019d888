//! Creation times: every counter, histogram and summary keeps the time it
//! was made; a series that comes back after removal keeps its value and so
//! its creation time (it never reset); a new metric gets a new one.

use std::time::{SystemTime, UNIX_EPOCH};

use hotmeter::expose::Metric;
use hotmeter::{Buckets, Counter, NativeHistogram, NativeOpts, StringFamily};

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

#[test]
fn every_kind_that_keeps_one_was_made_now() {
    let before = now();
    let made = [
        Counter::new().created_unix_nanos(),
        hotmeter::SingleCounter::new().created_unix_nanos(),
        hotmeter::FloatCounter::new().created_unix_nanos(),
        hotmeter::TracedCounter::new().created_unix_nanos(),
        hotmeter::Histogram::new(Buckets::new([1.0]).unwrap()).created_unix_nanos(),
        NativeHistogram::new(NativeOpts::new()).created_unix_nanos(),
        hotmeter::Summary::new(hotmeter::SummaryOpts::default()).unwrap().created_unix_nanos(),
    ];
    let after = now();
    for (i, t) in made.into_iter().enumerate() {
        assert!(before <= t && t <= after, "kind {i}: {t} not in [{before}, {after}]");
    }
    assert_eq!(Metric::created_unix_nanos(&hotmeter::Gauge::new()), None, "gauges keep none");
    let c = Counter::new();
    assert_eq!(Metric::created_unix_nanos(&c), Some(c.created_unix_nanos()));
}

#[test]
fn a_series_that_comes_back_after_removal_starts_anew_with_its_own_creation_time() {
    let fam = StringFamily::new(&["k"], Counter::new);
    fam.with(&["a"], |c| c.inc_by(5)).unwrap();
    let first = fam.get(&["a"]).unwrap().created_unix_nanos();
    assert_eq!(fam.remove(&["a"]), Ok(true));
    std::thread::sleep(std::time::Duration::from_millis(2));
    fam.with(&["a"], |c| c.inc()).unwrap();
    let back = fam.get(&["a"]).unwrap();
    assert_eq!(back.get(), 1, "from zero: rate() and increase() see a reset");
    assert!(back.created_unix_nanos() > first, "a new series, made later");
    fam.with(&["b"], |c| c.inc()).unwrap();
    assert!(fam.get(&["b"]).unwrap().created_unix_nanos() > first, "a new series is made later");
}
