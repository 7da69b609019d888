//! Rendering a registry to Prometheus text, hotmeter beside its peers:
//! 1,000 and 10,000 counter series and 1,000 histogram series (default
//! buckets), each series `{memory_space="tenant-NNNNN"}` with a distinct
//! value. Throughput is each implementation's own output bytes per second.
//! Also: recording cost while another thread scrapes in a loop.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use measured::metric::MetricFamilyEncoding;
use measured::metric::name::MetricName;

const BUCKETS: [f64; 11] = hotmeter::DEFAULT_BUCKETS;

#[derive(measured::LabelGroup)]
#[label(set = SpaceSet)]
struct SpaceGroup<'a> {
    #[label(dynamic_with = measured::lasso::ThreadedRodeo, default)]
    memory_space: &'a str,
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("tenant-{i:05}")).collect()
}

/// Every implementation must really render all `n` series (one line each
/// carrying `memory_space=`), or the comparison is void.
fn assert_series(name: &str, text: &[u8], n: usize, lines_per_series: usize) {
    let found = text.split(|&b| b == b'\n').filter(|l| l.windows(13).any(|w| w == b"memory_space=")).count();
    assert!(found >= n * lines_per_series, "{name} rendered {found} series lines, expected {}", n * lines_per_series);
}

fn value(i: usize) -> u64 {
    (i as u64 * 7919) % 100_000
}

fn obs(i: usize, k: usize) -> f64 {
    ((i * 31 + k * 17) % 1000) as f64 / 200.0
}

/// Per-series observations for the histogram scenario.
const OBS_PER_SERIES: usize = 5;

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// Checks the first render, sets the throughput to its size, and times
/// `render`, which appends to a buffer it is handed cleared each time (for
/// peers that return their own string, it returns that string's length and
/// leaves the buffer alone, so no copy is added to their cost).
fn bench_render(
    g: &mut Group<'_>,
    name: &str,
    n: usize,
    lines: usize,
    first: &[u8],
    mut render: impl FnMut(&mut Vec<u8>) -> usize,
) {
    assert_series(name, first, n, lines);
    g.throughput(Throughput::Bytes(first.len() as u64));
    let mut buf = Vec::new();
    g.bench_function(name, |b| {
        b.iter(|| {
            buf.clear();
            black_box(render(&mut buf))
        })
    });
}

fn hotmeter_text(r: &hotmeter::Registry, out: &mut Vec<u8>) -> usize {
    hotmeter_exporter::encode_text(r, out);
    out.len()
}

fn prometheus_text(r: &prometheus::Registry, out: &mut Vec<u8>) -> usize {
    prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &r.gather(), out).unwrap();
    out.len()
}

fn prometheus_client_text(r: &prometheus_client::registry::Registry, s: &mut String) -> usize {
    s.clear();
    prometheus_client::encoding::text::encode(s, r).unwrap();
    s.len()
}

fn fast_telemetry_text(m: &dyn fast_telemetry::PrometheusExport, name: &str, s: &mut String) -> usize {
    s.clear();
    m.export_prometheus(s, name, "Help.");
    s.len()
}

/// The renders both scenarios share, given each peer's populated registry.
struct Peers {
    hm: hotmeter::Registry,
    pr: prometheus::Registry,
    pc: prometheus_client::registry::Registry,
    mx: metrics_exporter_prometheus::PrometheusHandle,
}

impl Peers {
    fn bench(&self, g: &mut Group<'_>, n: usize, lines: usize) {
        let mut first = Vec::new();
        hotmeter_text(&self.hm, &mut first);
        bench_render(g, "hotmeter", n, lines, &first, |out| hotmeter_text(&self.hm, out));
        first.clear();
        prometheus_text(&self.pr, &mut first);
        bench_render(g, "prometheus", n, lines, &first, |out| prometheus_text(&self.pr, out));
        let mut s = String::new();
        prometheus_client_text(&self.pc, &mut s);
        bench_render(g, "prometheus_client", n, lines, &s.clone().into_bytes(), |_| {
            prometheus_client_text(&self.pc, &mut s)
        });
        bench_render(g, "metrics_exporter_prometheus", n, lines, self.mx.render().as_bytes(), |_| {
            self.mx.render().len()
        });
    }
}

fn counters(c: &mut Criterion, n: usize) {
    let spaces = names(n);
    let lines = 1;
    let mut g = c.benchmark_group(format!("render_text/counters/{n}_series"));

    let hm = hotmeter::Registry::new();
    let fam = hm
        .register(
            ("observations_total", "Observations."),
            hotmeter::StringFamily::with_limit(&["memory_space"], n, hotmeter::SingleCounter::new),
        )
        .unwrap();
    let pr = prometheus::Registry::new();
    let cv =
        prometheus::IntCounterVec::new(prometheus::Opts::new("observations_total", "Observations."), &["memory_space"])
            .unwrap();
    pr.register(Box::new(cv.clone())).unwrap();
    let mut pc = prometheus_client::registry::Registry::default();
    let pf = prometheus_client::metrics::family::Family::<
        Vec<(String, String)>,
        prometheus_client::metrics::counter::Counter,
    >::default();
    pc.register("observations", "Observations.", pf.clone());
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let me = measured::CounterVec::with_label_set(SpaceSet::new());
    // Its default cap is 2,000 series: raise it, or 10,000 would not render.
    let ft = fast_telemetry::DynamicCounter::with_max_series(4, n);
    for (i, s) in spaces.iter().enumerate() {
        fam.with(&[s], |c| c.inc_by(value(i))).unwrap();
        cv.with_label_values(&[s]).inc_by(value(i));
        pf.get_or_create(&vec![("memory_space".to_owned(), s.clone())]).inc_by(value(i));
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("observations_total", "memory_space" => s.clone()).increment(value(i))
        });
        me.inc_by(SpaceGroup { memory_space: s }, value(i));
        ft.add(&[("memory_space", s)], value(i) as isize);
    }
    Peers { hm, pr, pc, mx: recorder.handle() }.bench(&mut g, n, lines);

    let render_measured = || {
        let mut enc = measured::text::BufferedTextEncoder::new();
        me.collect_family_into(MetricName::from_str("observations_total"), &mut enc).unwrap();
        enc.finish()
    };
    bench_render(&mut g, "measured", n, lines, &render_measured(), |_| render_measured().len());
    let mut fs = String::new();
    fast_telemetry_text(&ft, "observations_total", &mut fs);
    bench_render(&mut g, "fast_telemetry", n, lines, &fs.clone().into_bytes(), |_| {
        fast_telemetry_text(&ft, "observations_total", &mut fs)
    });
    g.finish();
}

fn histograms(c: &mut Criterion, n: usize) {
    let spaces = names(n);
    // 12 buckets, sum and count.
    let lines = 14;
    let mut g = c.benchmark_group(format!("render_text/histograms/{n}_series"));

    let hm = hotmeter::Registry::new();
    let fam = hm
        .register(
            ("latency_seconds", "Latency."),
            hotmeter::StringFamily::with_limit(&["memory_space"], n, hotmeter::Histogram::with_default_buckets),
        )
        .unwrap();
    let pr = prometheus::Registry::new();
    let hv =
        prometheus::HistogramVec::new(prometheus::HistogramOpts::new("latency_seconds", "Latency."), &["memory_space"])
            .unwrap();
    pr.register(Box::new(hv.clone())).unwrap();
    let mut pc = prometheus_client::registry::Registry::default();
    let pf = prometheus_client::metrics::family::Family::<
        Vec<(String, String)>,
        prometheus_client::metrics::histogram::Histogram,
    >::new_with_constructor(|| prometheus_client::metrics::histogram::Histogram::new(BUCKETS));
    pc.register("latency_seconds", "Latency.", pf.clone());
    let recorder =
        metrics_exporter_prometheus::PrometheusBuilder::new().set_buckets(&BUCKETS).unwrap().build_recorder();
    let me = measured::HistogramVec::<SpaceSet, 11>::with_label_set_and_metadata(
        SpaceSet::new(),
        measured::metric::histogram::Thresholds::with_buckets(BUCKETS),
    );
    let ft_bounds: Vec<u64> = BUCKETS.iter().map(|b| (b * 1e6) as u64).collect();
    let ft = fast_telemetry::DynamicHistogram::with_limits(&ft_bounds, 4, n);
    for (i, s) in spaces.iter().enumerate() {
        let prh = hv.with_label_values(&[s]);
        let pch = pf.get_or_create(&vec![("memory_space".to_owned(), s.clone())]);
        let mxh = metrics::with_local_recorder(
            &recorder,
            || metrics::histogram!("latency_seconds", "memory_space" => s.clone()),
        );
        for k in 0..OBS_PER_SERIES {
            let v = obs(i, k);
            fam.with(&[s], |h| h.observe(v)).unwrap();
            prh.observe(v);
            pch.observe(v);
            mxh.record(v);
            me.observe(SpaceGroup { memory_space: s }, v);
            ft.record(&[("memory_space", s)], (v * 1e6) as u64);
        }
    }
    Peers { hm, pr, pc, mx: recorder.handle() }.bench(&mut g, n, lines);

    let render_measured = || {
        let mut enc = measured::text::BufferedTextEncoder::new();
        me.collect_family_into(MetricName::from_str("latency_seconds"), &mut enc).unwrap();
        enc.finish()
    };
    bench_render(&mut g, "measured", n, lines, &render_measured(), |_| render_measured().len());
    let mut fs = String::new();
    fast_telemetry_text(&ft, "latency_us", &mut fs);
    bench_render(&mut g, "fast_telemetry", n, lines, &fs.clone().into_bytes(), |_| {
        fast_telemetry_text(&ft, "latency_us", &mut fs)
    });
    g.finish();
}

fn render(c: &mut Criterion) {
    counters(c, 1_000);
    counters(c, 10_000);
    histograms(c, 1_000);
}

/// Recording on this thread while another thread renders the registry in a
/// loop (the realistic worst case: a scraper with no pause), against the
/// same recording with no scraper.
fn record_during_scrape(c: &mut Criterion) {
    let registry = hotmeter::Registry::new();
    let counter = registry.counter("ops_total", "Ops.").unwrap();
    let hist = registry.histogram("op_seconds", "Op time.", hotmeter::Buckets::default()).unwrap();
    let fam = registry
        .string_family(("by_space_total", "By space."), &["memory_space"], hotmeter::SingleCounter::new)
        .unwrap();
    for s in names(1000) {
        fam.with(&[&s], |c| c.inc()).unwrap();
    }
    let mut i = 0u64;
    let mut op = move || {
        i = i.wrapping_add(1);
        counter.inc();
        hist.observe((black_box(i) & 7) as f64 * 0.01);
    };
    let mut g = c.benchmark_group("record_during_scrape/counter_inc_plus_observe");
    g.bench_function("no_scrape", |b| b.iter(&mut op));
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let scraper = s.spawn(|| {
            let mut buf = Vec::new();
            let mut scrapes = 0u64;
            while !stop.load(Ordering::Relaxed) {
                buf.clear();
                hotmeter_exporter::encode_text(&registry, &mut buf);
                scrapes += 1;
            }
            scrapes
        });
        g.bench_function("scrape_loop_running", |b| b.iter(&mut op));
        stop.store(true, Ordering::Relaxed);
        let scrapes = scraper.join().unwrap_or(0);
        eprintln!("record_during_scrape: the scraper rendered {scrapes} times meanwhile");
    });
    g.finish();
}

criterion_group!(benches, render, record_during_scrape);
criterion_main!(benches);
