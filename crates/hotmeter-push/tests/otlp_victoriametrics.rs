//! OTLP bodies into a real receiver: Debian 13's VictoriaMetrics (1.112),
//! which the test command fetches and unpacks (`HOTMETER_VICTORIA_METRICS`),
//! takes OTLP/HTTP protobuf at `/opentelemetry/v1/metrics`. Its
//! Prometheus-compatible API then answers with exactly what hotmeter's own
//! snapshot holds: counters, gauges, classic histograms, exponential ones
//! (stored as `_count`, `_sum` and `_bucket{vmrange="lo...hi"}`), the
//! resource attributes as labels, and a restarted process (a new start
//! time) read as a reset by `increase()`.

use std::time::Duration;

use hotmeter::{Buckets, NativeOpts, OwnedValue, Registry};
use hotmeter_push::OtlpEncoder;
use hotmeter_testkit::VictoriaMetrics;
use hotmeter_testkit::promql;
use serde_json::Value;

fn now_nanos() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// POSTs one body as an OTLP/HTTP exporter does.
fn post(vm: &VictoriaMetrics, body: &[u8]) {
    let url = format!("http://{}/opentelemetry/v1/metrics", vm.addr());
    let response =
        ureq::post(&url).header("Content-Type", "application/x-protobuf").send(body).expect("POST to VictoriaMetrics");
    assert!(response.status().is_success(), "VictoriaMetrics answered {}", response.status());
}

/// The query's series once it returns `n` of them (VictoriaMetrics makes
/// a sample queryable within a moment of storing it).
fn series(vm: &VictoriaMetrics, q: &str, n: usize) -> Vec<Value> {
    hotmeter_testkit::wait_for(&format!("{n} series for {q}"), Duration::from_secs(30), || {
        let found = promql::query(vm.addr(), q);
        (found.len() == n).then_some(found)
    })
}

fn value(s: &Value) -> f64 {
    s["value"][1].as_str().unwrap().parse().unwrap()
}

/// The labels every series of one encoder carries besides its own.
fn resource_labels_of(s: &Value) -> (String, String, String) {
    let m = &s["metric"];
    let text = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
    (text("service.name"), text("service.instance.id"), text("deployment.environment.name"))
}

#[test]
fn victoria_metrics_stores_what_the_snapshot_holds() {
    let vm = VictoriaMetrics::start();
    let r = Registry::new();
    let jobs = r.labeled_family("jobs_total", "Jobs run.", &["tenant"], hotmeter::Counter::new).unwrap();
    jobs.with(&["a"], |c| c.inc_by(5)).unwrap();
    jobs.with(&["b"], |c| c.inc_by(12_345_678_901)).unwrap();
    r.gauge("temperature_celsius", "T.").unwrap().set(-21.5);
    let h = r.histogram("latency_seconds", "Latency.", Buckets::new([0.01, 0.1, 1.0]).unwrap()).unwrap();
    for v in [0.005, 0.05, 0.05, 0.5, 5.0] {
        h.observe(v);
    }
    let n = r.native_histogram("rpc_seconds", "RPC.", NativeOpts::new().schema(3).unwrap()).unwrap();
    for v in [0.001, 0.2, 0.2, 0.21, 3.0, 4096.0] {
        n.observe(v);
    }
    let mut enc = OtlpEncoder::new("vm-test").unwrap().attribute("deployment.environment.name", "ci").unwrap();
    let instance = enc.resource().find(|(k, _)| *k == "service.instance.id").unwrap().1.to_owned();
    post(&vm, enc.encode(&r, now_nanos()).body);
    let snap = r.snapshot();

    // Counters: exact, up past 2^32, with the resource attributes as labels.
    let jobs = series(&vm, r#"jobs_total"#, 2);
    for s in &jobs {
        let tenant = s["metric"]["tenant"].as_str().unwrap();
        let Some(OwnedValue::Counter(v)) = snap.value("jobs_total", &[tenant]) else { panic!("{tenant}") };
        assert_eq!(value(s), *v as f64, "{s}");
        assert_eq!(resource_labels_of(s), ("vm-test".to_owned(), instance.clone(), "ci".to_owned()));
    }
    assert_eq!(value(&series(&vm, "temperature_celsius", 1)[0]), -21.5);

    // The classic histogram: every cumulative bucket, count and sum.
    let Some(OwnedValue::Histogram { bounds, counts, sum, count }) = snap.value("latency_seconds", &[]) else {
        panic!()
    };
    let buckets = series(&vm, "latency_seconds_bucket", counts.len());
    let mut cumulative = 0;
    for (i, c) in counts.iter().enumerate() {
        cumulative += c;
        let le = bounds.get(i).map_or("+Inf".to_owned(), |b| b.to_string());
        let s = buckets.iter().find(|s| s["metric"]["le"] == le.as_str()).unwrap_or_else(|| panic!("no le={le}"));
        assert_eq!(value(s), cumulative as f64, "le={le}");
    }
    assert_eq!(value(&series(&vm, "latency_seconds_count", 1)[0]), *count as f64);
    assert_eq!(value(&series(&vm, "latency_seconds_sum", 1)[0]), *sum);

    // The exponential histogram: one `vmrange` series per populated
    // bucket, with its bounds (printed to four digits) and its count.
    let Some(OwnedValue::NativeHistogram { native, .. }) = snap.value("rpc_seconds", &[]) else { panic!() };
    let ranges: Vec<(f64, f64, u64)> = native.ranges().collect();
    let stored = series(&vm, "rpc_seconds_bucket", ranges.len());
    for (lower, upper, c) in &ranges {
        let s = stored
            .iter()
            .find(|s| {
                let (lo, hi) = s["metric"]["vmrange"].as_str().unwrap().split_once("...").unwrap();
                let near = |x: f64, y: f64| (x - y).abs() <= 1e-3 * y.abs();
                near(lo.parse().unwrap(), *lower) && near(hi.parse().unwrap(), *upper)
            })
            .unwrap_or_else(|| panic!("no vmrange for ({lower}, {upper}]: {stored:?}"));
        assert_eq!(value(s), *c as f64, "({lower}, {upper}]");
    }
    assert_eq!(value(&series(&vm, "rpc_seconds_count", 1)[0]), native.count as f64);
    assert_eq!(value(&series(&vm, "rpc_seconds_sum", 1)[0]), native.sum);
    // Its median as VictoriaMetrics estimates it is in the same bucket as
    // hotmeter's own.
    let ours = native.quantile(0.5).unwrap();
    let theirs = promql::scalar(vm.addr(), "histogram_quantile(0.5, rpc_seconds_bucket)").unwrap();
    let (lower, upper, _) = ranges.iter().find(|(lo, hi, _)| *lo < ours && ours <= *hi).unwrap();
    assert!(*lower * 0.999 <= theirs && theirs <= *upper * 1.001, "{theirs} vs ours {ours} in ({lower}, {upper}]");
}

/// A restarted process: the same resource, its counter back from a new
/// start time at a lower value. `increase()` counts the restart as a
/// reset: 100 at the first point, +50, then +3 after the restart (153),
/// where a drop read as a decrease would give 100 + 50 - 147.
#[test]
fn a_restarted_process_is_a_reset_to_increase() {
    let vm = VictoriaMetrics::start();
    // Points a moment after the series' creation (VictoriaMetrics 1.112
    // stores no point whose start time equals its time), read back once
    // they are in the past.
    let at = now_nanos() + 1_000_000_000;
    let first = Registry::new();
    let restarts = first.counter("restarts_total", "Restarts.").unwrap();
    restarts.inc_by(100);
    let mut enc = OtlpEncoder::new("vm-test").unwrap().attribute("service.instance.id", "worker-1").unwrap();
    post(&vm, enc.encode(&first, at).body);
    restarts.inc_by(50);
    post(&vm, enc.encode(&first, at + 1_000_000_000).body);
    // The restart: a new registry, a new encoder, the same resource.
    let second = Registry::new();
    second.counter("restarts_total", "Restarts.").unwrap().inc_by(3);
    let mut enc = OtlpEncoder::new("vm-test").unwrap().attribute("service.instance.id", "worker-1").unwrap();
    post(&vm, enc.encode(&second, at + 2_000_000_000).body);
    std::thread::sleep(Duration::from_nanos((at + 2_000_000_000).saturating_sub(now_nanos()) + 500_000_000));
    let samples = hotmeter_testkit::wait_for("three samples", Duration::from_secs(30), || {
        let found = promql::query(vm.addr(), "restarts_total[10m]");
        (found.len() == 1 && found[0]["values"].as_array().is_some_and(|v| v.len() == 3)).then_some(found)
    });
    let values: Vec<f64> =
        samples[0]["values"].as_array().unwrap().iter().map(|v| v[1].as_str().unwrap().parse().unwrap()).collect();
    assert_eq!(values, [100.0, 150.0, 3.0]);
    assert_eq!(promql::scalar(vm.addr(), "increase(restarts_total[10m])"), Some(153.0));
}
