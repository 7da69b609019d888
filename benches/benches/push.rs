//! Pushing beside scraping, on one registry: encoding + snappy-compressing
//! a remote_write request of 1,000 and 10,000 counter series
//! (`{memory_space="tenant-NNNNN"}`, distinct values, `job`/`instance`
//! external labels), set beside one Prometheus text scrape of the same
//! registry; and recording a counter alone versus while another thread
//! pushes in a loop; and encoding the same registry as one OTLP export
//! (protobuf, uncompressed, as OTLP/HTTP sends it by default), cumulative
//! and delta, and recording while another thread exports OTLP in a loop.
//! Throughput is series per second.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hotmeter::{Counter, Registry};
use hotmeter_push::{OtlpEncoder, RemoteWriteEncoder, Temporality};

fn registry(n: usize) -> Registry {
    let r = Registry::new();
    let fam = r
        .register(
            ("observations_total", "Observations."),
            hotmeter::StringFamily::with_limit(&["memory_space"], n + 1, Counter::new),
        )
        .unwrap();
    for i in 0..n {
        fam.with(&[format!("tenant-{i:05}").as_str()], |c| c.inc_by((i as u64 * 7919) % 100_000)).unwrap();
    }
    r
}

fn push_vs_scrape(c: &mut Criterion) {
    let mut g = c.benchmark_group("push");
    for n in [1_000usize, 10_000] {
        let r = registry(n);
        let mut encoder = RemoteWriteEncoder::new([("job", "bench"), ("instance", "127.0.0.1:9898")]).unwrap();
        let first = encoder.encode(&r, 1).unwrap();
        // One extra series: the registry's own overflow counter.
        assert!(first.samples as usize > n, "{} samples for {n} series", first.samples);
        let mut text = Vec::new();
        hotmeter_exporter::encode_text(&r, &mut text);
        eprintln!(
            "push/{n}: {} bytes snappy ({} protobuf), text scrape {} bytes",
            first.body.len(),
            first.uncompressed_len,
            text.len()
        );
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("remote_write_encode_compress/{n}"), |b| {
            b.iter(|| black_box(encoder.encode(&r, 1).unwrap().body.len()))
        });
        for (name, temporality) in [("cumulative", Temporality::Cumulative), ("delta", Temporality::Delta)] {
            let mut otlp = OtlpEncoder::new("bench").unwrap().temporality(temporality);
            let body = otlp.encode(&r, 1).body.len();
            eprintln!("push/{n}: OTLP {name} {body} bytes");
            g.bench_function(format!("otlp_encode_{name}/{n}"), |b| {
                b.iter(|| black_box(otlp.encode(&r, 1).body.len()))
            });
        }
        let mut buf = Vec::with_capacity(text.len());
        g.bench_function(format!("text_scrape/{n}"), |b| {
            b.iter(|| {
                buf.clear();
                hotmeter_exporter::encode_text(&r, &mut buf);
                black_box(buf.len())
            })
        });
    }
    g.finish();
}

fn record_while_pushing(c: &mut Criterion) {
    let r = registry(1_000);
    let hot = r.counter("hot_total", "The recorded counter.").unwrap();
    let mut g = c.benchmark_group("record_while_pushing");
    g.bench_function("counter_inc/alone", |b| b.iter(|| hot.inc()));
    let pushing = AtomicBool::new(true);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut encoder = RemoteWriteEncoder::new([("job", "bench")]).unwrap();
            while pushing.load(Ordering::Relaxed) {
                black_box(encoder.encode(&r, 1).unwrap().body.len());
            }
        });
        g.bench_function("counter_inc/while_pushing_1000_series", |b| b.iter(|| hot.inc()));
        pushing.store(false, Ordering::Relaxed);
    });
    let exporting = AtomicBool::new(true);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut encoder = OtlpEncoder::new("bench").unwrap();
            while exporting.load(Ordering::Relaxed) {
                black_box(encoder.encode(&r, 1).body.len());
            }
        });
        g.bench_function("counter_inc/while_exporting_otlp_1000_series", |b| b.iter(|| hot.inc()));
        exporting.store(false, Ordering::Relaxed);
    });
    g.finish();
}

criterion_group!(benches, push_vs_scrape, record_while_pushing);
criterion_main!(benches);
