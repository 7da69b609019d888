//! Pushing beside scraping, on one registry: encoding + snappy-compressing
//! a remote_write request of 1,000 and 10,000 counter series
//! (`{memory_space="tenant-NNNNN"}`, distinct values, `job`/`instance`
//! external labels), set beside one Prometheus text scrape of the same
//! registry; and recording a counter alone versus while another thread
//! pushes in a loop; and encoding the same registry as one OTLP export
//! (protobuf, uncompressed, as OTLP/HTTP sends it by default), cumulative
//! and delta (and the gzip of a cumulative body at the fast level, as
//! `OtlpPush::gzip` sends it), and recording while another thread exports
//! OTLP in a loop.
//! Beside hotmeter's OTLP encode, the OpenTelemetry Rust SDK's own OTLP
//! export of the same instrument (a `u64` counter, the same 1,000 or
//! 10,000 attribute values and totals): its `ManualReader` collects, and
//! `opentelemetry-otlp`'s HTTP/protobuf exporter builds and encodes the
//! request and hands it to an HTTP client that answers 200 without
//! sending (no thread, no socket: the SDK's part of an export only).
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

/// The OpenTelemetry SDK's export, as its users set it up.
mod otel {
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Weak};
    use std::task::{Context, Poll, Waker};
    use std::time::Duration;

    use opentelemetry::KeyValue;
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
    use opentelemetry_otlp::{MetricExporter, WithExportConfig, WithHttpConfig};
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::metrics::data::ResourceMetrics;
    use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
    use opentelemetry_sdk::metrics::reader::MetricReader;
    use opentelemetry_sdk::metrics::{
        Instrument, InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Stream, Temporality,
    };

    /// An HTTP client that answers 200 and keeps only the body's length.
    #[derive(Debug, Clone, Default)]
    struct Discard(Arc<AtomicUsize>);

    #[async_trait::async_trait]
    impl HttpClient for Discard {
        async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
            self.0.store(request.body().len(), Ordering::Relaxed);
            Ok(Response::builder().status(200).body(Bytes::new())?)
        }
    }

    /// The manual reader, shared between the provider and the benchmark.
    #[derive(Debug, Clone)]
    struct Shared(Arc<ManualReader>);

    impl MetricReader for Shared {
        fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
            self.0.register_pipeline(pipeline);
        }
        fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
            self.0.collect(rm)
        }
        fn force_flush(&self) -> OTelSdkResult {
            self.0.force_flush()
        }
        fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
            self.0.shutdown_with_timeout(timeout)
        }
        fn temporality(&self, kind: InstrumentKind) -> Temporality {
            self.0.temporality(kind)
        }
    }

    /// Polls a future that never waits (the exporter's, into [`Discard`]).
    fn ready<F: Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::yield_now();
        }
    }

    /// One provider with the counter recorded, its reader and exporter.
    pub(crate) struct SdkExport {
        _provider: SdkMeterProvider,
        reader: Shared,
        exporter: MetricExporter,
        metrics: ResourceMetrics,
        sent: Arc<AtomicUsize>,
    }

    impl SdkExport {
        /// `observations_total{memory_space="tenant-NNNNN"}` for `n` values,
        /// as `super::registry` records them.
        pub(crate) fn new(n: usize) -> Self {
            let reader = Shared(Arc::new(ManualReader::builder().build()));
            // The SDK's default cardinality limit is 2,000: raised, as a
            // user with 10,000 series must.
            let limit = move |_: &Instrument| Stream::builder().with_cardinality_limit(n + 1).build().ok();
            let provider = SdkMeterProvider::builder()
                .with_resource(opentelemetry_sdk::Resource::builder().with_service_name("bench").build())
                .with_reader(reader.clone())
                .with_view(limit)
                .build();
            let counter = provider.meter("bench").u64_counter("observations_total").build();
            for i in 0..n {
                let tenant = KeyValue::new("memory_space", format!("tenant-{i:05}"));
                counter.add((i as u64 * 7919) % 100_000, &[tenant]);
            }
            let client = Discard::default();
            let sent = client.0.clone();
            let exporter = MetricExporter::builder()
                .with_http()
                .with_http_client(client)
                .with_endpoint("http://127.0.0.1:4318/v1/metrics")
                .build()
                .expect("an OTLP/HTTP exporter");
            Self { _provider: provider, reader, exporter, metrics: ResourceMetrics::default(), sent }
        }

        /// Collects and exports once; returns the body's length.
        pub(crate) fn export(&mut self) -> usize {
            self.reader.collect(&mut self.metrics).expect("collected");
            ready(self.exporter.export(&self.metrics)).expect("exported");
            self.sent.load(Ordering::Relaxed)
        }
    }
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
        // Of that, the snappy compression alone (remote_write 1.0 requires
        // it): the same request's protobuf, compressed.
        let raw = prost::Message::encode_to_vec(&encoder.request());
        let mut snappy = snap::raw::Encoder::new();
        let mut compressed = vec![0; snap::raw::max_compress_len(raw.len())];
        g.bench_function(format!("remote_write_snappy_only/{n}"), |b| {
            b.iter(|| black_box(snappy.compress(&raw, &mut compressed).unwrap()))
        });
        for (name, temporality) in [("cumulative", Temporality::Cumulative), ("delta", Temporality::Delta)] {
            let mut otlp = OtlpEncoder::new("bench").unwrap().temporality(temporality);
            let body = otlp.encode(&r, 1).body.len();
            eprintln!("push/{n}: OTLP {name} {body} bytes");
            g.bench_function(format!("otlp_encode_{name}/{n}"), |b| {
                b.iter(|| black_box(otlp.encode(&r, 1).body.len()))
            });
        }
        // `OtlpPush::gzip(true)`: the cumulative body, gzipped at the fast
        // level on the sampling thread.
        let mut otlp = OtlpEncoder::new("bench").unwrap();
        let body = otlp.encode(&r, 1).body.to_vec();
        let gzip = |body: &[u8]| {
            use std::io::Write;
            let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::fast());
            gz.write_all(body).unwrap();
            gz.finish().unwrap()
        };
        eprintln!("push/{n}: OTLP cumulative gzipped {} bytes of {}", gzip(&body).len(), body.len());
        g.bench_function(format!("otlp_gzip_fast/{n}"), |b| b.iter(|| black_box(gzip(&body).len())));
        let mut sdk = otel::SdkExport::new(n);
        eprintln!("push/{n}: OpenTelemetry SDK OTLP {} bytes", sdk.export());
        g.bench_function(format!("otlp_sdk_export/{n}"), |b| b.iter(|| black_box(sdk.export())));
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
