//! Programs that record through the `metrics` macros only: the exact
//! exposition they produce, exactness under threads, and what happens to
//! names Prometheus cannot take.

use hotmeter::{OwnedValue, Registry};
use hotmeter_metrics::HotmeterRecorder;

fn text(registry: &Registry) -> String {
    let mut out = Vec::new();
    hotmeter_exporter::encode_text(registry, &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn macros_only_program_exact_exposition() {
    let registry = Registry::new();
    let recorder = HotmeterRecorder::builder(registry.clone())
        .buckets_for("io_size_bytes", hotmeter::Buckets::new([100.0, 1000.0]).unwrap())
        .build();
    metrics::with_local_recorder(&recorder, || {
        metrics::describe_counter!("requests_total", "Requests served.");
        metrics::describe_histogram!("request_duration_seconds", metrics::Unit::Seconds, "Request time.");
        // Labels from runtime strings, given in two orders at two call sites.
        let method = String::from("GET");
        metrics::counter!("requests_total", "method" => method.clone(), "code" => "200").increment(2);
        metrics::counter!("requests_total", "code" => "200", "method" => method).increment(1);
        metrics::gauge!("queue_depth").set(4.0);
        metrics::gauge!("queue_depth").decrement(1.5);
        metrics::histogram!("request_duration_seconds").record(0.02);
        metrics::histogram!("io_size_bytes").record(512.0);
    });
    let expected = r#"# HELP hotmeter_label_overflow_total Lookups of new label sets routed to a family's overflow series because it reached its cardinality limit.
# TYPE hotmeter_label_overflow_total counter
hotmeter_label_overflow_total{metric="hotmeter_metrics_dropped_total"} 0
hotmeter_label_overflow_total{metric="hotmeter_metrics_sanitized_names_total"} 0
hotmeter_label_overflow_total{metric="io_size_bytes"} 0
hotmeter_label_overflow_total{metric="queue_depth"} 0
hotmeter_label_overflow_total{metric="request_duration_seconds"} 0
hotmeter_label_overflow_total{metric="requests_total"} 0
# HELP hotmeter_metrics_dropped_total Facade records that could not be exported, by reason.
# TYPE hotmeter_metrics_dropped_total counter
# HELP hotmeter_metrics_sanitized_names_total Facade metric or label names rewritten to be valid.
# TYPE hotmeter_metrics_sanitized_names_total counter
# HELP io_size_bytes Recorded through the metrics facade; no description was given.
# TYPE io_size_bytes histogram
io_size_bytes_bucket{le="100.0"} 0
io_size_bytes_bucket{le="1000.0"} 1
io_size_bytes_bucket{le="+Inf"} 1
io_size_bytes_sum 512.0
io_size_bytes_count 1
# HELP queue_depth Recorded through the metrics facade; no description was given.
# TYPE queue_depth gauge
queue_depth 2.5
# HELP request_duration_seconds Request time.
# TYPE request_duration_seconds histogram
request_duration_seconds_bucket{le="0.005"} 0
request_duration_seconds_bucket{le="0.01"} 0
request_duration_seconds_bucket{le="0.025"} 1
request_duration_seconds_bucket{le="0.05"} 1
request_duration_seconds_bucket{le="0.1"} 1
request_duration_seconds_bucket{le="0.25"} 1
request_duration_seconds_bucket{le="0.5"} 1
request_duration_seconds_bucket{le="1.0"} 1
request_duration_seconds_bucket{le="2.5"} 1
request_duration_seconds_bucket{le="5.0"} 1
request_duration_seconds_bucket{le="10.0"} 1
request_duration_seconds_bucket{le="+Inf"} 1
request_duration_seconds_sum 0.02
request_duration_seconds_count 1
# HELP requests_total Requests served.
# TYPE requests_total counter
requests_total{code="200",method="GET"} 3
"#;
    assert_eq!(text(&registry), expected);
    let mut om = Vec::new();
    hotmeter_exporter::encode_openmetrics(&registry, &mut om);
    let om = String::from_utf8(om).unwrap();
    assert!(om.contains("# UNIT request_duration_seconds seconds\n"), "{om}");
    assert!(om.ends_with("requests_total{code=\"200\",method=\"GET\"} 3\n# EOF\n"), "{om}");
}

#[test]
fn no_increment_is_lost_through_the_facade() {
    let registry = Registry::new();
    let recorder = HotmeterRecorder::new(registry.clone());
    std::thread::scope(|s| {
        for t in 0..4 {
            let recorder = &recorder;
            s.spawn(move || {
                metrics::with_local_recorder(recorder, || {
                    let shard = format!("s{}", t % 2);
                    for i in 0..20_000u64 {
                        metrics::counter!("ops_total", "shard" => shard.clone()).increment(1);
                        metrics::histogram!("op_seconds").record((i % 4) as f64 * 0.01);
                    }
                })
            });
        }
    });
    let snap = registry.snapshot();
    assert_eq!(snap.value("ops_total", &["s0"]), Some(&OwnedValue::Counter(40_000)));
    assert_eq!(snap.value("ops_total", &["s1"]), Some(&OwnedValue::Counter(40_000)));
    match snap.value("op_seconds", &[]) {
        Some(OwnedValue::Histogram { count, .. }) => assert_eq!(*count, 80_000),
        other => panic!("{other:?}"),
    }
}

#[test]
fn invalid_names_are_sanitised_and_counted_conflicts_dropped_and_counted() {
    let registry = Registry::new();
    let recorder = HotmeterRecorder::new(registry.clone());
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!("http.requests-total", "status code" => "200").increment(1);
        metrics::counter!("2xx_total").increment(1);
        // Same name, other label names: cannot be exported beside the first.
        metrics::counter!("jobs_total", "a" => "1").increment(1);
        metrics::counter!("jobs_total", "b" => "1").increment(5);
        // Same name as a counter, now as a gauge: a type conflict.
        metrics::gauge!("jobs_total").set(1.0);
    });
    let snap = registry.snapshot();
    assert_eq!(snap.value("http_requests_total", &["200"]), Some(&OwnedValue::Counter(1)));
    assert_eq!(snap.family("http_requests_total").unwrap().desc.label_names, vec!["status_code".to_owned()]);
    assert_eq!(snap.value("_2xx_total", &[]), Some(&OwnedValue::Counter(1)));
    assert_eq!(snap.value("hotmeter_metrics_sanitized_names_total", &["metric"]), Some(&OwnedValue::Counter(2)));
    assert_eq!(snap.value("hotmeter_metrics_sanitized_names_total", &["label"]), Some(&OwnedValue::Counter(1)));
    assert_eq!(snap.value("jobs_total", &["1"]), Some(&OwnedValue::Counter(1)));
    assert_eq!(snap.value("hotmeter_metrics_dropped_total", &["conflict"]), Some(&OwnedValue::Counter(2)));
}

#[test]
fn promtool_accepts_facade_output() {
    let registry = Registry::new();
    let recorder = HotmeterRecorder::new(registry.clone());
    metrics::with_local_recorder(&recorder, || {
        metrics::describe_counter!("jobs_total", "Jobs run.");
        metrics::counter!("jobs_total", "queue" => "high \"prio\"\n").increment(3);
        metrics::counter!("http.requests_total", "code" => "200").increment(1);
        metrics::gauge!("queue_depth", "queue" => "low").set(f64::NAN);
        metrics::histogram!("write_seconds").record(0.3);
    });
    let exposition = text(&registry);
    match hotmeter_exporter::promtool::check_metrics(exposition.as_bytes()) {
        Ok(()) => {}
        Err(hotmeter_exporter::promtool::PromtoolError::NotInstalled)
            if std::env::var_os("HOTMETER_SKIP_PROMTOOL").is_some() => {}
        Err(e) => panic!("{e}\n{exposition}"),
    }
}

// Facade names that collide with each other or with the registry's own
// overflow counter: counted, never lost silently (found by review).

/// Facade histogram `lat` and facade counter `lat_count`: the second is
/// refused by the registry; its records must be counted as dropped.
#[test]
fn histogram_and_counter_sample_name_collision_is_counted() {
    let registry = Registry::new();
    let rec = HotmeterRecorder::new(registry.clone());
    metrics::with_local_recorder(&rec, || {
        metrics::histogram!("lat").record(1.0);
        metrics::counter!("lat_count").increment(5);
        metrics::gauge!("lat_sum").set(2.0);
    });
    let t = text(&registry);
    eprintln!("{t}");
    assert!(t.contains("hotmeter_metrics_dropped_total{reason=\"conflict\"}"), "{t}");
}

/// A native gauge named like the overflow counter's OpenMetrics family used
/// to be accepted and then made every facade family (and the facade's own
/// `hotmeter_metrics_dropped_total`) fail to register, uncounted. It is now
/// refused at once, and the facade records as usual.
#[test]
fn a_name_of_the_overflow_counter_cannot_silence_the_facade() {
    let registry = Registry::new();
    assert!(matches!(
        registry.gauge("hotmeter_label_overflow", "Mine."),
        Err(hotmeter::RegistryError::NameCollision { .. })
    ));
    let rec = HotmeterRecorder::new(registry.clone());
    metrics::with_local_recorder(&rec, || {
        metrics::counter!("jobs_total", "status" => "ok").increment(2);
    });
    let t = text(&registry);
    assert!(t.contains("jobs_total{status=\"ok\"} 2"), "facade data lost:\n{t}");
}

/// Issue 22, item 4: reaching a facade-recorded family natively fails with
/// an error that says where it came from, not a private type's name.
#[test]
fn a_native_handle_on_a_facade_family_names_the_facade() {
    let registry = Registry::new();
    let recorder = HotmeterRecorder::new(registry.clone());
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!("jobs_total", "kind" => "a").increment(1);
    });
    let err = registry.labeled_family("jobs_total", "", &["kind"], hotmeter::Counter::new).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("StringFamily<Counter (recorded through the `metrics` facade)>, not StringFamily<Counter>"),
        "{text}"
    );
    assert!(!text.contains("Facade") && !text.contains("::"), "a private type or a module path: {text}");
}
