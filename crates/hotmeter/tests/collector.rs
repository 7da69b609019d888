//! Issue 22, item 4: a public collector trait (families computed at scrape
//! time, with labels) and callbacks that can be removed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hotmeter::expose::MetricType;
use hotmeter::{CollectError, Collector, CollectorSeries, LabelCountError, OwnedValue, Registry, RegistryError};

/// A pool whose sizes change between scrapes.
struct Pool {
    scrapes: AtomicU64,
}

impl Collector for Pool {
    fn collect(&self, out: &mut CollectorSeries<'_>) {
        let n = self.scrapes.fetch_add(1, Ordering::Relaxed) + 1;
        out.int_gauge(&["idle"], 10 - n as i64).unwrap();
        out.int_gauge(&["busy"], n as i64).unwrap();
    }
}

#[test]
fn a_collector_is_read_at_every_scrape_and_removed_by_name() {
    let registry = Registry::new();
    let pool = Pool { scrapes: AtomicU64::new(0) };
    registry
        .register_collector(("pool_connections", "Connections by state."), MetricType::Gauge, &["state"], pool)
        .unwrap();
    for n in 1..=3 {
        let snap = registry.snapshot();
        assert_eq!(snap.value("pool_connections", &["busy"]), Some(&OwnedValue::IntGauge(n)));
        assert_eq!(snap.value("pool_connections", &["idle"]), Some(&OwnedValue::IntGauge(10 - n)));
    }
    assert!(registry.unregister("pool_connections"));
    assert!(registry.snapshot().family("pool_connections").is_none());
}

#[test]
fn a_collector_name_is_checked_like_any_other() {
    let registry = Registry::new();
    let _jobs = registry.counter("jobs_total", "Jobs.").unwrap();
    struct Nothing;
    impl Collector for Nothing {
        fn collect(&self, _: &mut CollectorSeries<'_>) {}
    }
    let err = registry.register_collector(("jobs_total", "Jobs."), MetricType::Counter, &[], Nothing).unwrap_err();
    assert!(err.to_string().contains("handle type Counter, not Collector"), "{err}");
    let err = registry.register_collector(("bad-name", "x"), MetricType::Gauge, &[], Nothing).unwrap_err();
    assert!(matches!(err, RegistryError::InvalidName(_)), "{err:?}");
    let err = registry.register_collector(("lat_seconds", "x"), MetricType::Histogram, &["le"], Nothing).unwrap_err();
    assert!(matches!(err, RegistryError::InvalidName(_)), "reserved label: {err:?}");
    // Another collector under a registered collector's name is a conflict.
    registry.register_collector(("up", "Up."), MetricType::Gauge, &[], Nothing).unwrap();
    let err = registry.register_collector(("up", "Up."), MetricType::Gauge, &[], Nothing).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"metric "up" is registered with a collector, not a second one (a name takes one collector; unregister the first)"#
    );
    assert!(registry.unregister("up"));
    registry.register_collector(("up", "Up."), MetricType::Gauge, &[], Nothing).unwrap();
}

/// Every series a collector writes is checked; a refused one is not
/// written, the error says why, and the rest of the scrape goes on.
#[test]
fn bad_series_are_refused_with_the_reason() {
    struct Careless(Arc<std::sync::Mutex<Vec<CollectError>>>);
    impl Collector for Careless {
        fn collect(&self, out: &mut CollectorSeries<'_>) {
            let mut errors = self.0.lock().unwrap();
            let mut keep = |r: Result<(), CollectError>| {
                if let Err(e) = r {
                    errors.push(e);
                }
            };
            keep(out.histogram(&["a"], &[0.1, 1.0], &[1, 2, 3], 2.5));
            keep(out.histogram(&["a"], &[0.1, 1.0], &[1, 2, 3], 2.5)); // twice
            keep(out.histogram(&["b", "c"], &[0.1], &[1, 2], 1.0)); // two values, one label
            keep(out.gauge(&["d"], 1.0)); // a gauge in a histogram family
            keep(out.histogram(&["e"], &[1.0, 0.1], &[1, 2, 3], 1.0)); // bounds out of order
            keep(out.histogram(&["f"], &[0.1], &[1], 1.0)); // no +Inf count
            keep(out.histogram(&["g"], &[f64::NAN], &[1, 1], 1.0));
        }
    }
    let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
    let registry = Registry::new();
    registry
        .register_collector(("op_seconds", "Ops."), MetricType::Histogram, &["op"], Careless(errors.clone()))
        .unwrap();
    let snap = registry.snapshot();
    let family = snap.family("op_seconds").unwrap();
    assert_eq!(family.series.len(), 1, "only the first series is written");
    match &family.series[0].value {
        OwnedValue::Histogram { count, sum, .. } => assert_eq!((*count, *sum), (6, 2.5)),
        other => panic!("{other:?}"),
    }
    let errors = errors.lock().unwrap();
    assert_eq!(errors[0], CollectError::Duplicate { label_values: vec!["a".into()] });
    assert_eq!(errors[1], CollectError::LabelCount(LabelCountError { expected: 1, got: 2 }));
    assert_eq!(errors[2], CollectError::WrongType { family: MetricType::Histogram, value: MetricType::Gauge });
    assert!(matches!(errors[3], CollectError::InvalidHistogram { .. }), "{:?}", errors[3]);
    assert!(matches!(errors[4], CollectError::InvalidHistogram { .. }), "{:?}", errors[4]);
    assert!(matches!(errors[5], CollectError::InvalidHistogram { .. }), "{:?}", errors[5]);
    assert_eq!(errors.len(), 6);
    assert_eq!(errors[2].to_string(), "a gauge value in a histogram family");
}

#[test]
fn a_removed_callback_runs_no_more() {
    let registry = Registry::new();
    let runs = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    let id = registry.on_collect({
        let runs = runs.clone();
        move || {
            runs.fetch_add(1, Ordering::Relaxed);
        }
    });
    let kept = registry.on_collect({
        let other = other.clone();
        move || {
            other.fetch_add(1, Ordering::Relaxed);
        }
    });
    assert_ne!(id, kept);
    registry.snapshot();
    assert!(registry.remove_callback(id));
    assert!(!registry.remove_callback(id));
    registry.snapshot();
    registry.snapshot();
    assert_eq!(runs.load(Ordering::Relaxed), 1, "removed after the first scrape");
    assert_eq!(other.load(Ordering::Relaxed), 3, "the other one stays");
}

/// From the review: a collector that panics loses its family's remaining
/// series for that scrape only; the scrape, later scrapes and the other
/// families go on. A callback that panics skips its refresh the same way.
#[test]
fn a_panicking_collector_or_callback_spoils_only_itself() {
    struct PanicsEveryOther(AtomicU64);
    impl Collector for PanicsEveryOther {
        fn collect(&self, out: &mut CollectorSeries<'_>) {
            out.gauge(&["first"], 1.0).unwrap();
            if self.0.fetch_add(1, Ordering::Relaxed).is_multiple_of(2) {
                panic!("a transient failure");
            }
            out.gauge(&["second"], 2.0).unwrap();
        }
    }
    let registry = Registry::new();
    registry
        .register_collector(("pool", "Pool."), MetricType::Gauge, &["part"], PanicsEveryOther(AtomicU64::new(0)))
        .unwrap();
    let jobs = registry.counter("jobs_total", "Jobs.").unwrap();
    jobs.inc();
    registry.on_collect(|| panic!("a callback that fails"));
    let first = registry.snapshot();
    assert_eq!(first.value("pool", &["first"]), Some(&OwnedValue::Gauge(1.0)));
    assert_eq!(first.value("pool", &["second"]), None, "lost after the panic");
    assert_eq!(first.value("jobs_total", &[]), Some(&OwnedValue::Counter(1)), "the other families go on");
    let second = registry.snapshot();
    assert_eq!(second.value("pool", &["second"]), Some(&OwnedValue::Gauge(2.0)), "the next scrape is whole");
}

/// Counter totals that OpenMetrics forbids are refused; label sets that
/// differ only in where one value ends are two label sets.
#[test]
fn counter_totals_are_checked_and_label_sets_told_apart_exactly() {
    struct Values(std::sync::Mutex<Vec<String>>);
    impl Collector for Values {
        fn collect(&self, out: &mut CollectorSeries<'_>) {
            let mut errors = self.0.lock().unwrap();
            errors.clear();
            for v in [f64::NAN, -1.0, f64::INFINITY] {
                if let Err(e) = out.float_counter(&["x", "y"], v) {
                    errors.push(e.to_string());
                }
            }
            out.float_counter(&["ab", "c"], 1.0).unwrap();
            out.float_counter(&["a", "bc"], 2.0).unwrap();
            out.float_counter(&["", "abc"], 3.0).unwrap();
            assert!(matches!(out.float_counter(&["a", "bc"], 4.0), Err(CollectError::Duplicate { .. })));
        }
    }
    let c = Arc::new(Values(std::sync::Mutex::new(Vec::new())));
    struct Shared(Arc<Values>);
    impl Collector for Shared {
        fn collect(&self, out: &mut CollectorSeries<'_>) {
            self.0.collect(out)
        }
    }
    let registry = Registry::new();
    registry.register_collector(("bytes_total", "B."), MetricType::Counter, &["a", "b"], Shared(c.clone())).unwrap();
    for _ in 0..2 {
        let snap = registry.snapshot();
        assert_eq!(snap.family("bytes_total").unwrap().series.len(), 3);
        assert_eq!(snap.value("bytes_total", &["a", "bc"]), Some(&OwnedValue::FloatCounter(2.0)));
        let errors = c.0.lock().unwrap();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].contains("finite and not negative"), "{errors:?}");
    }
}
