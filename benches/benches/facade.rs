//! The `metrics` facade with hotmeter installed versus with
//! `metrics-exporter-prometheus` installed: the same macro call sites, each
//! recorder set as the thread's local recorder around the call (so both pay
//! the same facade dispatch).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hotmeter_benches::latency;

fn facade(c: &mut Criterion) {
    let hm = hotmeter_metrics::HotmeterRecorder::new(hotmeter::Registry::new());
    let mx = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&hotmeter::DEFAULT_BUCKETS)
        .unwrap()
        .build_recorder();

    let mut g = c.benchmark_group("facade/counter_macro_with_label/1thread");
    g.bench_function("hotmeter_metrics", |b| {
        metrics::with_local_recorder(&hm, || {
            b.iter(|| metrics::counter!("requests_total", "status" => "ok").increment(1))
        })
    });
    g.bench_function("metrics_exporter_prometheus", |b| {
        metrics::with_local_recorder(&mx, || {
            b.iter(|| metrics::counter!("requests_total", "status" => "ok").increment(1))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("facade/histogram_macro_record/1thread");
    let mut i = 0u64;
    let mut next = move || {
        i = i.wrapping_add(1);
        latency(black_box(i))
    };
    g.bench_function("hotmeter_metrics", |b| {
        metrics::with_local_recorder(&hm, || {
            b.iter(|| metrics::histogram!("request_duration_seconds", "status" => "ok").record(next()))
        })
    });
    g.bench_function("metrics_exporter_prometheus", |b| {
        metrics::with_local_recorder(&mx, || {
            b.iter(|| metrics::histogram!("request_duration_seconds", "status" => "ok").record(next()))
        })
    });
    g.finish();
}

/// A function instrumented in one line versus its hand-instrumented twin
/// (the same typed-label counter and histogram, written out).
fn instrument(c: &mut Criterion) {
    let registry = hotmeter::Registry::new();
    let auto = hotmeter::Instrumented::register(&registry, "auto", "Auto.").unwrap();
    let calls: hotmeter::Family<hotmeter::Outcome, hotmeter::Counter> =
        registry.family(("hand_calls_total", "Hand."), hotmeter::Counter::new).unwrap();
    let latency = registry.histogram("hand_duration_seconds", "Hand.", hotmeter::Buckets::default()).unwrap();
    let body = |i: u64| if i.is_multiple_of(16) { Err(i) } else { Ok(i) };
    let mut g = c.benchmark_group("instrument/sync_result/1thread");
    let mut i = 0u64;
    g.bench_function("hand_instrumented", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let start = std::time::Instant::now();
            let r = body(black_box(i));
            latency.observe_duration(start.elapsed());
            calls.get(if r.is_ok() { hotmeter::Outcome::Success } else { hotmeter::Outcome::Error }).inc();
            r
        })
    });
    g.bench_function("hotmeter_instrumented", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            auto.run(|| body(black_box(i)))
        })
    });
    g.finish();
}

criterion_group!(benches, facade, instrument);
criterion_main!(benches);
