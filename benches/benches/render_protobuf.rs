//! Rendering a family to the Prometheus protobuf format (length-delimited
//! `io.prometheus.client.MetricFamily`, issue #14), hotmeter beside every
//! peer with a protobuf encoder of its own:
//!
//! - `prometheus` (tikv), `ProtobufEncoder` over `gather()`;
//! - `prometheus-client`, `prometheus_protobuf::encode` (prost messages)
//!   then prost's `encode_length_delimited`;
//! - `fastmetrics`, `format::protobuf::encode` with the Prometheus profile.
//!
//! Not compared: `metrics-exporter-prometheus` (its `protobuf` feature runs
//! `protoc` at build time, which a fresh machine lacks), `measured` and
//! `fast-telemetry` (no protobuf encoder).
//!
//! Workloads: counters at 1,000 and 10,000 series, histograms (default
//! buckets, 5 observations each) at 1,000, short label values
//! `id="0".."9999"`. Each library renders into one buffer kept between
//! scrapes (cleared first). Group ids read
//! `render_protobuf/<kind>/short_id/<n>_series`. Every implementation's
//! first rendering is decoded with prost types of `metrics.proto` and
//! checked to hold every series before it is timed; throughput is its own
//! output bytes per second.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hotmeter_benches::peers::{self, Kind, Lib, Render, Shape};

fn render_protobuf(c: &mut Criterion) {
    let shape = Shape::Short;
    for (kind, n) in [(Kind::Counter, 1_000), (Kind::Counter, 10_000), (Kind::Histogram, 1_000)] {
        let kind_name = if kind == Kind::Counter { "counters" } else { "histograms" };
        let id = format!("render_protobuf/{kind_name}/{}/{n}_series", shape.name());
        let mut impls: Vec<(&str, Box<dyn Render>, Vec<u8>)> = Vec::new();
        for lib in Lib::ALL {
            let mut imp = peers::build(lib, kind, shape, n);
            let mut buf = Vec::new();
            if imp.render_protobuf(&mut buf) {
                peers::assert_complete_protobuf(lib.name(), &buf, kind, shape, n);
                impls.push((lib.name(), imp, buf));
            }
        }
        let mut g = c.benchmark_group(id.as_str());
        g.sample_size(10);
        for (name, imp, buf) in &mut impls {
            g.throughput(Throughput::Bytes(buf.len() as u64));
            g.bench_function(*name, |b| {
                b.iter(|| {
                    imp.render_protobuf(buf);
                    black_box(buf.len())
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, render_protobuf);
criterion_main!(benches);
