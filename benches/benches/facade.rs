//! The `metrics` facade with hotmeter installed versus with
//! `metrics-exporter-prometheus` installed: the same macro call sites, each
//! recorder set as the thread's local recorder around the call (so both pay
//! the same facade dispatch), beside the facade's own floor: a recorder
//! that does nothing but hand back one cached handle whose methods do
//! nothing, so what it costs is the facade's API itself (the key, an `Arc`
//! clone and drop, a dynamic call).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hotmeter_benches::latency;

/// The facade floor's handle: every call does nothing.
struct Nothing;

impl metrics::CounterFn for Nothing {
    fn increment(&self, value: u64) {
        black_box(value);
    }
    fn absolute(&self, value: u64) {
        black_box(value);
    }
}

impl metrics::GaugeFn for Nothing {
    fn increment(&self, value: f64) {
        black_box(value);
    }
    fn decrement(&self, value: f64) {
        black_box(value);
    }
    fn set(&self, value: f64) {
        black_box(value);
    }
}

impl metrics::HistogramFn for Nothing {
    fn record(&self, value: f64) {
        black_box(value);
    }
}

/// The facade floor: one cached handle, returned for every key.
struct CachedNothing(std::sync::Arc<Nothing>);

impl metrics::Recorder for CachedNothing {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn register_counter(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(self.0.clone())
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::from_arc(self.0.clone())
    }
    fn register_histogram(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::from_arc(self.0.clone())
    }
}

fn facade(c: &mut Criterion) {
    let floor = CachedNothing(std::sync::Arc::new(Nothing));
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
    g.bench_function("floor_facade_cached_noop_handle", |b| {
        metrics::with_local_recorder(&floor, || {
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
    g.bench_function("floor_facade_cached_noop_handle", |b| {
        metrics::with_local_recorder(&floor, || {
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
        registry.typed_family("hand_calls_total", "Hand.", hotmeter::Counter::new).unwrap();
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
