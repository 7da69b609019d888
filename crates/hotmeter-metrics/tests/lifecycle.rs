//! Facade series that come and go: idle expiry by kind, a handle kept
//! across an expiry, removal by label, and a handle cache that keeps
//! caching while keys churn.

use std::time::Duration;

use hotmeter::{OwnedValue, Registry};
use hotmeter_metrics::{HotmeterRecorder, MetricKindMask};

fn scrape(registry: &Registry) -> String {
    let mut out = Vec::new();
    hotmeter_exporter::encode_text(registry, &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn idle_facade_series_expire_by_kind_and_come_back_from_zero() {
    let registry = Registry::new();
    let timeout = Duration::from_millis(40);
    let recorder = HotmeterRecorder::builder(registry.clone())
        .idle_timeout(MetricKindMask::COUNTER | MetricKindMask::HISTOGRAM, Some(timeout))
        .build();
    let kept = metrics::with_local_recorder(&recorder, || {
        metrics::counter!("jobs_total", "tenant" => "t1").increment(3);
        metrics::counter!("jobs_total", "tenant" => "t2").increment(1);
        metrics::gauge!("depth", "tenant" => "t1").set(2.0);
        metrics::histogram!("wait_seconds", "tenant" => "t1").record(0.1);
        metrics::counter!("jobs_total", "tenant" => "t1")
    });
    let first = scrape(&registry);
    assert!(first.contains("jobs_total{tenant=\"t1\"} 3"), "{first}");
    std::thread::sleep(timeout * 2);
    metrics::with_local_recorder(&recorder, || metrics::counter!("jobs_total", "tenant" => "t2").increment(1));
    let last = scrape(&registry);
    assert!(last.contains("jobs_total{tenant=\"t1\"} 3"), "the expiring scrape exports it once more: {last}");
    let after = scrape(&registry);
    assert!(!after.contains("tenant=\"t1\"} 3"), "t1's counter expired: {after}");
    assert!(after.contains("jobs_total{tenant=\"t2\"} 2"), "t2 was busy: {after}");
    assert!(after.contains("depth{tenant=\"t1\"} 2"), "gauges were not asked to expire: {after}");
    assert!(!after.contains("wait_seconds_count{tenant=\"t1\"}"), "histograms were: {after}");
    // A handle kept across the expiry records into the live series: a new
    // one, from zero.
    kept.increment(5);
    let snap = registry.snapshot();
    assert_eq!(snap.value("jobs_total", &["t1"]), Some(&OwnedValue::Counter(5)));
}

#[test]
fn remove_matching_takes_series_out_and_call_sites_start_again() {
    let registry = Registry::new();
    let recorder = HotmeterRecorder::new(registry.clone());
    metrics::with_local_recorder(&recorder, || {
        for tenant in ["t1", "t2"] {
            for kind in ["a", "b"] {
                metrics::counter!("jobs_total", "tenant" => tenant, "kind" => kind).increment(2);
            }
        }
        metrics::gauge!("depth", "tenant" => "t1").set(1.0);
    });
    assert_eq!(recorder.remove_matching("jobs_total", &[("tenant", "t1")]), Ok(2));
    let err = recorder.remove_matching("jobs_total", &[("region", "eu")]).unwrap_err();
    assert_eq!((err.name.as_str(), err.label_names.len()), ("region", 2));
    assert_eq!(recorder.remove_matching("nothing_here", &[]), Ok(0));
    let text = scrape(&registry);
    assert!(!text.contains("tenant=\"t1\",kind") && !text.contains("kind=\"a\",tenant=\"t1\""), "{text}");
    // A call site of a removed label set starts a new series (the cached
    // handle was forgotten), from zero.
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!("jobs_total", "tenant" => "t1", "kind" => "a").increment(1);
    });
    let snap = registry.snapshot();
    assert_eq!(snap.value("jobs_total", &["a", "t1"]), Some(&OwnedValue::Counter(1)));
    assert_eq!(snap.value("jobs_total", &["a", "t2"]), Some(&OwnedValue::Counter(2)));
}

/// Keys that come and go far beyond the cache's limit: with expiry the
/// cache reclaims and keeps caching, and every record is exported.
#[test]
fn churning_keys_keep_the_cache_working_and_lose_nothing() {
    let registry = Registry::new();
    let recorder = HotmeterRecorder::builder(registry.clone())
        .cardinality_limit(50)
        .idle_timeout(MetricKindMask::ALL, Some(Duration::from_secs(3600)))
        .build();
    metrics::with_local_recorder(&recorder, || {
        for round in 0..40 {
            for i in 0..40 {
                let id = format!("r{round}-{i}");
                metrics::counter!("work_total", "id" => id.clone()).increment(1);
                metrics::counter!("work_total", "id" => id).increment(1);
            }
            let snap = registry.snapshot();
            let series = &snap.family("work_total").unwrap().series;
            let exported: u64 = series.iter().map(|s| if let OwnedValue::Counter(v) = s.value { v } else { 0 }).sum();
            assert_eq!((series.len(), exported), (40, 80), "round {round}: every record exported");
            assert_eq!(recorder.remove_matching("work_total", &[]).unwrap(), 40, "round {round}");
        }
    });
    let overflowed = registry.snapshot().value("hotmeter_label_overflow_total", &["work_total"]).cloned();
    assert!(matches!(overflowed, None | Some(OwnedValue::Counter(0))), "nothing overflowed: {overflowed:?}");
}
