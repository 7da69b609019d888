//! Recording cost, hotmeter beside its peers: counter inc (1 and 2 threads),
//! gauge set, histogram observe (1 and 2 threads). Groups are named
//! operation/contention; `floor` rows are the bare atomics everything is
//! measured against.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use hotmeter_benches::{contended, install_metrics_recorder, latency};

const DEFAULT_BUCKETS: [f64; 11] = hotmeter::DEFAULT_BUCKETS;

fn counter_inc(c: &mut Criterion) {
    install_metrics_recorder();
    let floor = AtomicU64::new(0);
    let hm = hotmeter::Counter::new();
    let hm_single = hotmeter::SingleCounter::new();
    let mx = metrics::counter!("bench_counter_total");
    let pr = prometheus::IntCounter::new("bench_counter_total", "b").unwrap();
    let pc: prometheus_client::metrics::counter::Counter<u64> = Default::default();
    let me = measured::Counter::new();
    let ft = fast_telemetry::Counter::new(4);
    let fm: fastmetrics::metrics::counter::Counter = Default::default();

    let mut g = c.benchmark_group("counter_inc/1thread");
    g.bench_function("floor_atomic_fetch_add", |b| b.iter(|| floor.fetch_add(1, Ordering::Relaxed)));
    g.bench_function("hotmeter", |b| b.iter(|| hm.inc()));
    g.bench_function("hotmeter_single_cell", |b| b.iter(|| hm_single.inc()));
    g.bench_function("metrics", |b| b.iter(|| mx.increment(1)));
    g.bench_function("prometheus", |b| b.iter(|| pr.inc()));
    g.bench_function("prometheus_client", |b| b.iter(|| pc.inc()));
    g.bench_function("measured", |b| b.iter(|| me.inc()));
    g.bench_function("fast_telemetry", |b| b.iter(|| ft.inc()));
    g.bench_function("fastmetrics", |b| b.iter(|| fm.inc()));
    g.finish();

    let mut g = c.benchmark_group("counter_inc/2threads");
    g.bench_function("floor_atomic_fetch_add", |b| {
        b.iter_custom(|n| {
            contended(2, n, |_| {
                black_box(floor.fetch_add(1, Ordering::Relaxed));
            })
        })
    });
    g.bench_function("hotmeter", |b| b.iter_custom(|n| contended(2, n, |_| hm.inc())));
    g.bench_function("hotmeter_single_cell", |b| b.iter_custom(|n| contended(2, n, |_| hm_single.inc())));
    g.bench_function("metrics", |b| b.iter_custom(|n| contended(2, n, |_| mx.increment(1))));
    g.bench_function("prometheus", |b| b.iter_custom(|n| contended(2, n, |_| pr.inc())));
    g.bench_function("prometheus_client", |b| {
        b.iter_custom(|n| {
            contended(2, n, |_| {
                black_box(pc.inc());
            })
        })
    });
    g.bench_function("measured", |b| b.iter_custom(|n| contended(2, n, |_| me.inc())));
    g.bench_function("fast_telemetry", |b| b.iter_custom(|n| contended(2, n, |_| ft.inc())));
    g.bench_function("fastmetrics", |b| b.iter_custom(|n| contended(2, n, |_| fm.inc())));
    g.finish();
}

fn gauge_set(c: &mut Criterion) {
    install_metrics_recorder();
    let floor = AtomicU64::new(0);
    let hm = hotmeter::Gauge::new();
    let mx = metrics::gauge!("bench_gauge");
    let pr = prometheus::Gauge::new("bench_gauge", "b").unwrap();
    let pc: prometheus_client::metrics::gauge::Gauge<f64, AtomicU64> = Default::default();
    let me = measured::FloatGauge::new();
    let ft = fast_telemetry::GaugeF64::new();

    let mut g = c.benchmark_group("gauge_set/1thread");
    let mut v = 0.0f64;
    let mut next = move || {
        v += 0.5;
        black_box(v)
    };
    g.bench_function("floor_atomic_store", |b| b.iter(|| floor.store(next().to_bits(), Ordering::Relaxed)));
    g.bench_function("hotmeter", |b| b.iter(|| hm.set(next())));
    g.bench_function("metrics", |b| b.iter(|| mx.set(next())));
    g.bench_function("prometheus", |b| b.iter(|| pr.set(next())));
    g.bench_function("prometheus_client", |b| b.iter(|| pc.set(next())));
    g.bench_function("measured", |b| b.iter(|| me.set(next())));
    g.bench_function("fast_telemetry", |b| b.iter(|| ft.set(next())));
    g.finish();
}

/// The floor for a histogram observe: linear bucket search over the same
/// bounds plus one relaxed atomic add. Bounds and buckets are heap slices,
/// as in any histogram whose buckets are chosen at run time (a fixed-size
/// array would let the compiler unroll the search, which no peer can).
struct FloorHistogram {
    bounds: Box<[f64]>,
    buckets: Box<[AtomicU64]>,
}

impl FloorHistogram {
    #[inline]
    fn observe(&self, v: f64) {
        let i = self.bounds.iter().position(|&b| v <= b).unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
    }
}

fn histogram_observe(c: &mut Criterion) {
    install_metrics_recorder();
    let floor =
        FloorHistogram { bounds: Box::new(DEFAULT_BUCKETS), buckets: (0..12).map(|_| AtomicU64::new(0)).collect() };
    let hm = hotmeter::Histogram::with_default_buckets();
    let mx = metrics::histogram!("bench_histogram_seconds");
    let pr = prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("bench_histogram_seconds", "b")).unwrap();
    let pc = prometheus_client::metrics::histogram::Histogram::new(DEFAULT_BUCKETS);
    let me = measured::Histogram::<11>::with_metadata(measured::metric::histogram::Thresholds::with_buckets(
        DEFAULT_BUCKETS,
    ));
    let ft_bounds: Vec<u64> = DEFAULT_BUCKETS.iter().map(|s| (s * 1e6) as u64).collect();
    let ft = fast_telemetry::Histogram::new(&ft_bounds, 4);
    let micros = |i: u64| (latency(i) * 1e6) as u64;

    let mut g = c.benchmark_group("histogram_observe/1thread");
    let mut i = 0u64;
    let mut next = move || {
        i = i.wrapping_add(1);
        black_box(i)
    };
    g.bench_function("floor_search_plus_atomic_add", |b| b.iter(|| floor.observe(latency(next()))));
    g.bench_function("hotmeter", |b| b.iter(|| hm.observe(latency(next()))));
    g.bench_function("metrics", |b| b.iter(|| mx.record(latency(next()))));
    g.bench_function("prometheus", |b| b.iter(|| pr.observe(latency(next()))));
    g.bench_function("prometheus_client", |b| b.iter(|| pc.observe(latency(next()))));
    g.bench_function("measured", |b| b.iter(|| me.observe(latency(next()))));
    g.bench_function("fast_telemetry", |b| b.iter(|| ft.record(micros(next()))));
    g.finish();

    // Exemplars: the same observation carrying a trace id. prometheus-client
    // is the only peer that keeps exemplars on histograms.
    let trace = hotmeter::TraceId::new("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    let pcx = prometheus_client::metrics::exemplar::HistogramWithExemplars::<Vec<(String, String)>>::new(
        hotmeter::DEFAULT_BUCKETS.iter().copied(),
    );
    let pc_label = vec![("trace_id".to_owned(), "4bf92f3577b34da6a3ce929d0e0e4736".to_owned())];
    let mut g = c.benchmark_group("histogram_observe_exemplar/1thread");
    g.bench_function("hotmeter_without_exemplar", |b| b.iter(|| hm.observe(latency(next()))));
    g.bench_function("hotmeter_with_exemplar", |b| b.iter(|| hm.observe_with_exemplar(latency(next()), &trace)));
    g.bench_function("prometheus_client_with_exemplar", |b| {
        b.iter(|| pcx.observe(latency(next()), Some(pc_label.clone()), None))
    });
    g.finish();

    let traced = hotmeter::TracedCounter::new();
    let mut g = c.benchmark_group("counter_inc_exemplar/1thread");
    g.bench_function("hotmeter_without_exemplar", |b| b.iter(|| traced.inc()));
    g.bench_function("hotmeter_with_exemplar", |b| b.iter(|| traced.inc_with_exemplar(1, &trace)));
    g.finish();

    let mut g = c.benchmark_group("histogram_observe/2threads");
    g.bench_function("floor_search_plus_atomic_add", |b| {
        b.iter_custom(|n| contended(2, n, |i| floor.observe(latency(i))))
    });
    g.bench_function("hotmeter", |b| b.iter_custom(|n| contended(2, n, |i| hm.observe(latency(i)))));
    g.bench_function("metrics", |b| b.iter_custom(|n| contended(2, n, |i| mx.record(latency(i)))));
    g.bench_function("prometheus", |b| b.iter_custom(|n| contended(2, n, |i| pr.observe(latency(i)))));
    g.bench_function("prometheus_client", |b| b.iter_custom(|n| contended(2, n, |i| pc.observe(latency(i)))));
    g.bench_function("measured", |b| b.iter_custom(|n| contended(2, n, |i| me.observe(latency(i)))));
    g.bench_function("fast_telemetry", |b| b.iter_custom(|n| contended(2, n, |i| ft.record(micros(i)))));
    g.finish();
}

/// Native (sparse exponential) histograms at schema 3, beside hotmeter's
/// classic histogram on the same values: the goal is within 1.5x of
/// the classic observe, and faster than prometheus-client's native one (the
/// only peer that records native histograms).
fn native_histogram_observe(c: &mut Criterion) {
    let classic = hotmeter::Histogram::with_default_buckets();
    let native = hotmeter::NativeHistogram::new(hotmeter::NativeOpts::new().schema(3).unwrap());
    let both = hotmeter::NativeHistogram::new(hotmeter::NativeOpts::new().classic(hotmeter::Buckets::default()));
    let pc = prometheus_client::metrics::histogram::Histogram::new_native(
        prometheus_client::metrics::histogram::NativeHistogramConfig::with_schema(3),
    );
    let mut i = 0u64;
    let mut next = move || {
        i = i.wrapping_add(1);
        black_box(i)
    };
    let mut g = c.benchmark_group("native_histogram_observe/1thread");
    // `hotmeter` is the native histogram alone; the classic one is the
    // reference the 1.5x goal is measured against.
    g.bench_function("hotmeter_classic_histogram", |b| b.iter(|| classic.observe(latency(next()))));
    g.bench_function("hotmeter", |b| b.iter(|| native.observe(latency(next()))));
    g.bench_function("hotmeter_native_and_classic", |b| b.iter(|| both.observe(latency(next()))));
    g.bench_function("prometheus_client_native", |b| b.iter(|| pc.observe(latency(next()))));
    g.finish();

    let mut g = c.benchmark_group("native_histogram_observe/2threads");
    g.bench_function("hotmeter_classic_histogram", |b| {
        b.iter_custom(|n| contended(2, n, |i| classic.observe(latency(i))))
    });
    g.bench_function("hotmeter", |b| b.iter_custom(|n| contended(2, n, |i| native.observe(latency(i)))));
    g.bench_function("prometheus_client_native", |b| b.iter_custom(|n| contended(2, n, |i| pc.observe(latency(i)))));
    g.finish();
}

criterion_group!(benches, counter_inc, gauge_set, histogram_observe, native_histogram_observe);
criterion_main!(benches);
