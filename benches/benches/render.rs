//! Rendering a family to Prometheus text, hotmeter beside every peer and
//! the hand-written floor, one criterion group per workload (issue #13):
//!
//! - kind: counters, or histograms (default buckets, 5 observations each);
//! - shape: short values `id="0".."99999"`, long ones
//!   `memory_space="tenant-00042"`, or three labels per series;
//! - size: 1,000, 10,000 and 100,000 series;
//! - buffer: a fresh one per scrape (as a simple handler does) or one kept
//!   between scrapes.
//!
//! Group ids read `render_text/<kind>/<shape>/<n>_series/<buffer>`. Every
//! implementation's first render is checked to hold every series before it
//! is timed; throughput is its own output bytes per second. Only the groups
//! a command-line filter can match are built (100,000 histogram series
//! take a while to populate in eight libraries). Also: recording cost while
//! another thread scrapes in a loop.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hotmeter_benches::peers::{self, Floor, Kind, Lib, Render, Shape};

/// The series counts every (kind, shape) is rendered at.
const SIZES: [usize; 3] = [1_000, 10_000, 100_000];

/// Whether a group id can be selected by the filter criterion was given.
/// Flags and their values are skipped; a filter with regex syntax selects
/// everything (criterion still applies it).
fn wanted(id: &str) -> bool {
    const WITH_VALUE: [&str; 12] = [
        "--warm-up-time",
        "--measurement-time",
        "--sample-size",
        "--save-baseline",
        "--baseline",
        "--output-format",
        "--plotting-backend",
        "--profile-time",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--nresamples",
    ];
    let mut filters = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if WITH_VALUE.contains(&a.as_str()) {
            args.next();
        } else if !a.starts_with('-') {
            filters.push(a);
        }
    }
    filters.is_empty()
        || filters.iter().any(|f| {
            f.contains(['^', '$', '(', '|', '[', '*', '+', '?', '\\']) || id.contains(f.as_str()) || f.starts_with(id)
        })
}

fn render(c: &mut Criterion) {
    for kind in [Kind::Counter, Kind::Histogram] {
        for shape in Shape::ALL {
            for n in SIZES {
                let kind_name = if kind == Kind::Counter { "counters" } else { "histograms" };
                let base = format!("render_text/{kind_name}/{}/{n}_series", shape.name());
                let ids = [format!("{base}/fresh"), format!("{base}/reused")];
                if !ids.iter().any(|id| wanted(id)) {
                    continue;
                }
                let mut impls: Vec<(&str, Box<dyn Render>)> =
                    Lib::ALL.iter().map(|&lib| (lib.name(), peers::build(lib, kind, shape, n))).collect();
                if kind == Kind::Counter {
                    impls.push(("floor_prefix_plus_itoa", Box::new(Floor::new(shape, n))));
                }
                for (name, imp) in &mut impls {
                    peers::assert_complete(name, &imp.text(), kind, shape, n);
                }
                for (id, reused) in ids.iter().zip([false, true]) {
                    let mut g = c.benchmark_group(id.as_str());
                    g.sample_size(10);
                    for (name, imp) in &mut impls {
                        g.throughput(Throughput::Bytes(imp.text().len() as u64));
                        g.bench_function(*name, |b| {
                            b.iter(|| black_box(if reused { imp.render_reused() } else { imp.render_fresh() }))
                        });
                    }
                    g.finish();
                }
            }
        }
    }
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("tenant-{i:05}")).collect()
}

/// Recording on this thread while another thread renders the registry in a
/// loop (the realistic worst case: a scraper with no pause), against the
/// same recording with no scraper.
fn record_during_scrape(c: &mut Criterion) {
    let registry = hotmeter::Registry::new();
    let counter = registry.counter("ops_total", "Ops.").unwrap();
    let hist = registry.histogram("op_seconds", "Op time.", hotmeter::Buckets::default()).unwrap();
    let fam = registry
        .labeled_family("by_space_total", "By space.", &["memory_space"], hotmeter::SingleCounter::new)
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
