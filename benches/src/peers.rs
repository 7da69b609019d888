//! One labeled family built the same way in hotmeter and in every peer, so
//! the render, memory and growth benchmarks share one definition of "the
//! same workload".
//!
//! Owns: the workload shapes ([`Shape`]), the implementations compared
//! ([`Lib`]), and building one populated family per (library, kind, shape,
//! size) behind [`Render`]. Must not: time anything (the bench targets do),
//! or favour one library: every one gets the same label values, the same
//! values, and its own idiomatic text encoder.

use measured::metric::MetricFamilyEncoding;
use measured::metric::name::MetricName;

/// Prometheus' default bucket bounds, used by every histogram here.
pub const BUCKETS: [f64; 11] = hotmeter::DEFAULT_BUCKETS;

/// Observations per histogram series.
pub const OBS_PER_SERIES: usize = 5;

/// What each series' label set looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// One label with short values: `id="0"` .. `id="99999"`.
    Short,
    /// One label with longer values: `memory_space="tenant-00042"`.
    Long,
    /// Three labels: `memory_space="tenant-00042",priority="high",status="ok"`.
    Three,
}

impl Shape {
    /// Every shape, in table order.
    pub const ALL: [Shape; 3] = [Shape::Short, Shape::Long, Shape::Three];

    /// The name used in benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Short => "short_id",
            Shape::Long => "long_memory_space",
            Shape::Three => "three_labels",
        }
    }

    /// The label names.
    pub fn label_names(self) -> &'static [&'static str] {
        match self {
            Shape::Short => &["id"],
            Shape::Long => &["memory_space"],
            Shape::Three => &["memory_space", "priority", "status"],
        }
    }

    /// The label values of series `i` (distinct for every `i`).
    pub fn values(self, i: usize) -> Vec<String> {
        match self {
            Shape::Short => vec![i.to_string()],
            Shape::Long => vec![format!("tenant-{i:05}")],
            Shape::Three => vec![
                format!("tenant-{:05}", i / 6),
                ["high", "normal", "low"][i % 3].to_owned(),
                ["ok", "error"][(i / 3) % 2].to_owned(),
            ],
        }
    }
}

/// Counter or histogram series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A counter family (`u64` values).
    Counter,
    /// A histogram family, [`BUCKETS`], [`OBS_PER_SERIES`] observations each.
    Histogram,
}

impl Kind {
    /// The family name every library registers.
    pub fn family_name(self) -> &'static str {
        match self {
            Kind::Counter => "observations_total",
            Kind::Histogram => "latency_seconds",
        }
    }

    /// Exposition lines per series (12 buckets, sum and count).
    pub fn lines_per_series(self) -> usize {
        match self {
            Kind::Counter => 1,
            Kind::Histogram => 14,
        }
    }
}

/// The implementations compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lib {
    /// hotmeter, `StringFamily<Counter>` / `StringFamily<Histogram>`.
    Hotmeter,
    /// tikv `prometheus`, `IntCounterVec` / `HistogramVec`.
    Prometheus,
    /// `prometheus-client`, `Family<Vec<(String, String)>, _>`.
    PrometheusClient,
    /// `metrics` through the `metrics-exporter-prometheus` recorder.
    MetricsExporterPrometheus,
    /// `measured`, `CounterVec` / `HistogramVec` over a lasso label set.
    Measured,
    /// `fast-telemetry`, `DynamicCounter` / `DynamicHistogram`, 4 shards.
    FastTelemetry,
    /// `fastmetrics`, `Family<_, Counter>` / `Family<_, Histogram>`.
    Fastmetrics,
}

impl Lib {
    /// Every implementation, hotmeter first.
    pub const ALL: [Lib; 7] = [
        Lib::Hotmeter,
        Lib::Prometheus,
        Lib::PrometheusClient,
        Lib::MetricsExporterPrometheus,
        Lib::Measured,
        Lib::FastTelemetry,
        Lib::Fastmetrics,
    ];

    /// The name used in benchmark ids and tables.
    pub fn name(self) -> &'static str {
        match self {
            Lib::Hotmeter => "hotmeter",
            Lib::Prometheus => "prometheus",
            Lib::PrometheusClient => "prometheus_client",
            Lib::MetricsExporterPrometheus => "metrics_exporter_prometheus",
            Lib::Measured => "measured",
            Lib::FastTelemetry => "fast_telemetry",
            Lib::Fastmetrics => "fastmetrics",
        }
    }

    /// The library named `name` (as [`name`](Self::name) spells it).
    pub fn from_name(name: &str) -> Option<Lib> {
        Lib::ALL.into_iter().find(|l| l.name() == name)
    }
}

/// The counter value of series `i` (distinct, several digits).
pub fn value(i: usize) -> u64 {
    (i as u64 * 7919) % 100_000
}

/// Observation `k` of histogram series `i`, spread over the buckets.
pub fn obs(i: usize, k: usize) -> f64 {
    ((i * 31 + k * 17) % 1000) as f64 / 200.0
}

/// A populated family that renders itself to Prometheus text.
pub trait Render {
    /// Renders into a buffer made for this scrape (and dropped after it), as
    /// a simple scrape handler does; returns the byte count.
    fn render_fresh(&mut self) -> usize;
    /// Renders into a buffer kept between scrapes (cleared first), for the
    /// libraries whose API can reuse one; the others make a fresh one.
    fn render_reused(&mut self) -> usize;
    /// The rendered text, for checking it before timing.
    fn text(&mut self) -> Vec<u8>;
    /// Renders the Prometheus protobuf format (length-delimited
    /// `io.prometheus.client.MetricFamily`) into `out`, cleared first, with
    /// the library's own encoder; `false` for a library without one.
    fn render_protobuf(&mut self, out: &mut Vec<u8>) -> bool {
        let _ = out;
        false
    }
}

/// Checks that a protobuf rendering decodes (with prost types of
/// `metrics.proto` that are no library's under test) and holds the `n`
/// series of `kind` (those carrying the shape's first label), each with its
/// value or its buckets, or the comparison would be void.
pub fn assert_complete_protobuf(lib: &str, bytes: &[u8], kind: Kind, shape: Shape, n: usize) {
    let families = hotmeter_testkit::client_model::decode_delimited(bytes)
        .unwrap_or_else(|e| panic!("{lib}: protobuf does not decode: {e}"));
    let label = shape.label_names()[0];
    let mut found = 0;
    let series = families.iter().flat_map(|f| &f.metric);
    for m in series.filter(|m| m.label.iter().any(|l| l.name.as_deref() == Some(label))) {
        match kind {
            Kind::Counter => {
                if let Some(c) = &m.counter {
                    // A zero may be left out (proto3-style encoders do).
                    let got = c.value.unwrap_or(0.0);
                    if shape == Shape::Short {
                        let id = m.label.iter().find_map(|l| l.value.as_deref()?.parse::<usize>().ok());
                        let id = id.unwrap_or_else(|| panic!("{lib}: no id"));
                        assert_eq!(got, value(id) as f64, "{lib}: value of id={id}");
                    }
                    found += 1;
                }
            }
            Kind::Histogram => {
                if let Some(h) = &m.histogram {
                    assert_eq!(h.sample_count, Some(OBS_PER_SERIES as u64), "{lib}: histogram count");
                    assert!(h.bucket.len() >= BUCKETS.len(), "{lib}: {} buckets", h.bucket.len());
                    found += 1;
                }
            }
        }
    }
    assert_eq!(found, n, "{lib} rendered {found} series in protobuf, expected {n}");
}

/// Builds `lib`'s family of `n` series of `kind` in `shape`, every series
/// recorded into.
pub fn build(lib: Lib, kind: Kind, shape: Shape, n: usize) -> Box<dyn Render> {
    match lib {
        Lib::Hotmeter => Box::new(HotmeterFamily::new(kind, shape, n)),
        Lib::Prometheus => Box::new(PrometheusFamily::new(kind, shape, n)),
        Lib::PrometheusClient => Box::new(PrometheusClientFamily::new(kind, shape, n)),
        Lib::MetricsExporterPrometheus => Box::new(MetricsFamily::new(kind, shape, n)),
        Lib::Measured => measured_family(kind, shape, n),
        Lib::FastTelemetry => Box::new(FastTelemetryFamily::new(kind, shape, n)),
        Lib::Fastmetrics => fastmetrics_family(kind, shape, n),
    }
}

/// Checks that `text` holds every one of the `n` series' lines (lines
/// carrying the shape's first label), or the comparison would be void.
pub fn assert_complete(lib: &str, text: &[u8], kind: Kind, shape: Shape, n: usize) {
    let needle = format!("{}=\"", shape.label_names()[0]);
    let needle = needle.as_bytes();
    let found = text.split(|&b| b == b'\n').filter(|l| l.windows(needle.len()).any(|w| w == needle)).count();
    let want = n * kind.lines_per_series();
    assert!(found >= want, "{lib} rendered {found} series lines, expected {want}");
}

/// The hand-written floor: each series' `name{labels} ` prefix held in one
/// buffer, then a copy plus an integer format per series. Counters only.
#[derive(Debug)]
pub struct Floor {
    prefixes: Vec<u8>,
    ends: Vec<usize>,
    values: Vec<u64>,
    buf: Vec<u8>,
}

impl Floor {
    /// The floor for a counter family of `n` series in `shape`.
    pub fn new(shape: Shape, n: usize) -> Self {
        let mut prefixes = Vec::new();
        let mut ends = Vec::with_capacity(n);
        for i in 0..n {
            prefixes.extend_from_slice(Kind::Counter.family_name().as_bytes());
            for (j, (name, v)) in shape.label_names().iter().zip(shape.values(i)).enumerate() {
                prefixes.push(if j == 0 { b'{' } else { b',' });
                prefixes.extend_from_slice(name.as_bytes());
                prefixes.extend_from_slice(b"=\"");
                prefixes.extend_from_slice(v.as_bytes());
                prefixes.push(b'"');
            }
            prefixes.extend_from_slice(b"} ");
            ends.push(prefixes.len());
        }
        Self { prefixes, ends, values: (0..n).map(value).collect(), buf: Vec::new() }
    }

    fn render_into(&self, out: &mut Vec<u8>) {
        let mut start = 0;
        for (&end, &v) in self.ends.iter().zip(&self.values) {
            out.extend_from_slice(&self.prefixes[start..end]);
            out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
            out.push(b'\n');
            start = end;
        }
    }
}

impl Render for Floor {
    fn render_fresh(&mut self) -> usize {
        let mut out = Vec::new();
        self.render_into(&mut out);
        out.len()
    }
    fn render_reused(&mut self) -> usize {
        let mut out = std::mem::take(&mut self.buf);
        out.clear();
        self.render_into(&mut out);
        let n = out.len();
        self.buf = out;
        n
    }
    fn text(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.render_into(&mut out);
        out
    }
}

struct HotmeterFamily {
    registry: hotmeter::Registry,
    buf: Vec<u8>,
}

impl HotmeterFamily {
    fn new(kind: Kind, shape: Shape, n: usize) -> Self {
        let registry = hotmeter::Registry::new();
        let names = shape.label_names();
        let help = (kind.family_name(), "Help.");
        match kind {
            Kind::Counter => {
                let fam = registry
                    .register(help, hotmeter::StringFamily::with_limit(names, n, hotmeter::Counter::new))
                    .expect("registers");
                for i in 0..n {
                    let v = shape.values(i);
                    let v: Vec<&str> = v.iter().map(String::as_str).collect();
                    fam.with(&v, |c| c.inc_by(value(i))).expect("label count");
                }
            }
            Kind::Histogram => {
                let fam = registry
                    .register(
                        help,
                        hotmeter::StringFamily::with_limit(names, n, hotmeter::Histogram::with_default_buckets),
                    )
                    .expect("registers");
                for i in 0..n {
                    let v = shape.values(i);
                    let v: Vec<&str> = v.iter().map(String::as_str).collect();
                    let h = fam.get(&v).expect("label count");
                    for k in 0..OBS_PER_SERIES {
                        h.observe(obs(i, k));
                    }
                }
            }
        }
        Self { registry, buf: Vec::new() }
    }
}

impl Render for HotmeterFamily {
    fn render_fresh(&mut self) -> usize {
        let mut out = Vec::new();
        hotmeter_exporter::encode_text(&self.registry, &mut out);
        out.len()
    }
    fn render_reused(&mut self) -> usize {
        self.buf.clear();
        hotmeter_exporter::encode_text(&self.registry, &mut self.buf);
        self.buf.len()
    }
    fn text(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        hotmeter_exporter::encode_text(&self.registry, &mut out);
        out
    }
    fn render_protobuf(&mut self, out: &mut Vec<u8>) -> bool {
        out.clear();
        hotmeter_exporter::encode_protobuf(&self.registry, out);
        true
    }
}

struct PrometheusFamily {
    registry: prometheus::Registry,
    buf: Vec<u8>,
}

impl PrometheusFamily {
    fn new(kind: Kind, shape: Shape, n: usize) -> Self {
        let registry = prometheus::Registry::new();
        let names = shape.label_names();
        match kind {
            Kind::Counter => {
                let cv = prometheus::IntCounterVec::new(prometheus::Opts::new(kind.family_name(), "Help."), names)
                    .expect("valid");
                registry.register(Box::new(cv.clone())).expect("registers");
                for i in 0..n {
                    let v = shape.values(i);
                    let v: Vec<&str> = v.iter().map(String::as_str).collect();
                    cv.with_label_values(&v).inc_by(value(i));
                }
            }
            Kind::Histogram => {
                let hv = prometheus::HistogramVec::new(
                    prometheus::HistogramOpts::new(kind.family_name(), "Help.").buckets(BUCKETS.to_vec()),
                    names,
                )
                .expect("valid");
                registry.register(Box::new(hv.clone())).expect("registers");
                for i in 0..n {
                    let v = shape.values(i);
                    let v: Vec<&str> = v.iter().map(String::as_str).collect();
                    let h = hv.with_label_values(&v);
                    for k in 0..OBS_PER_SERIES {
                        h.observe(obs(i, k));
                    }
                }
            }
        }
        Self { registry, buf: Vec::new() }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &self.registry.gather(), out).expect("encodes");
    }
}

impl Render for PrometheusFamily {
    fn render_fresh(&mut self) -> usize {
        let mut out = Vec::new();
        self.encode(&mut out);
        out.len()
    }
    fn render_reused(&mut self) -> usize {
        let mut out = std::mem::take(&mut self.buf);
        out.clear();
        self.encode(&mut out);
        let n = out.len();
        self.buf = out;
        n
    }
    fn text(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
    fn render_protobuf(&mut self, out: &mut Vec<u8>) -> bool {
        out.clear();
        prometheus::Encoder::encode(&prometheus::ProtobufEncoder::new(), &self.registry.gather(), out)
            .expect("encodes");
        true
    }
}

type PcLabels = Vec<(String, String)>;

struct PrometheusClientFamily {
    registry: prometheus_client::registry::Registry,
    buf: String,
}

impl PrometheusClientFamily {
    fn new(kind: Kind, shape: Shape, n: usize) -> Self {
        let mut registry = prometheus_client::registry::Registry::default();
        let labels = |i: usize| -> PcLabels {
            shape.label_names().iter().map(|n| (*n).to_owned()).zip(shape.values(i)).collect()
        };
        match kind {
            Kind::Counter => {
                let f = prometheus_client::metrics::family::Family::<
                    PcLabels,
                    prometheus_client::metrics::counter::Counter,
                >::default();
                // The client appends `_total` to counters itself.
                registry.register("observations", "Help.", f.clone());
                for i in 0..n {
                    f.get_or_create(&labels(i)).inc_by(value(i));
                }
            }
            Kind::Histogram => {
                let f = prometheus_client::metrics::family::Family::<
                    PcLabels,
                    prometheus_client::metrics::histogram::Histogram,
                >::new_with_constructor(|| {
                    prometheus_client::metrics::histogram::Histogram::new(BUCKETS)
                });
                registry.register(kind.family_name(), "Help.", f.clone());
                for i in 0..n {
                    let h = f.get_or_create(&labels(i));
                    for k in 0..OBS_PER_SERIES {
                        h.observe(obs(i, k));
                    }
                }
            }
        }
        Self { registry, buf: String::new() }
    }
}

impl Render for PrometheusClientFamily {
    fn render_fresh(&mut self) -> usize {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("encodes");
        out.len()
    }
    fn render_reused(&mut self) -> usize {
        self.buf.clear();
        prometheus_client::encoding::text::encode(&mut self.buf, &self.registry).expect("encodes");
        self.buf.len()
    }
    fn text(&mut self) -> Vec<u8> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("encodes");
        out.into_bytes()
    }
    /// Its encoder builds prost messages, which prost then serialises.
    fn render_protobuf(&mut self, out: &mut Vec<u8>) -> bool {
        out.clear();
        let families = prometheus_client::encoding::prometheus_protobuf::encode(&self.registry).expect("encodes");
        for f in &families {
            prost::Message::encode_length_delimited(f, out).expect("room in a Vec");
        }
        true
    }
}

struct MetricsFamily {
    handle: metrics_exporter_prometheus::PrometheusHandle,
}

impl MetricsFamily {
    fn new(kind: Kind, shape: Shape, n: usize) -> Self {
        let recorder = match kind {
            Kind::Counter => metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder(),
            Kind::Histogram => metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(&BUCKETS)
                .expect("valid buckets")
                .build_recorder(),
        };
        for i in 0..n {
            let labels: Vec<metrics::Label> = shape
                .label_names()
                .iter()
                .zip(shape.values(i))
                .map(|(name, v)| metrics::Label::new(*name, v))
                .collect();
            metrics::with_local_recorder(&recorder, || match kind {
                Kind::Counter => metrics::counter!("observations_total", labels).increment(value(i)),
                Kind::Histogram => {
                    let h = metrics::histogram!("latency_seconds", labels);
                    for k in 0..OBS_PER_SERIES {
                        h.record(obs(i, k));
                    }
                }
            });
        }
        Self { handle: recorder.handle() }
    }
}

impl Render for MetricsFamily {
    /// Its API returns a new `String` per render: there is no buffer to reuse.
    fn render_fresh(&mut self) -> usize {
        self.handle.render().len()
    }
    fn render_reused(&mut self) -> usize {
        self.handle.render().len()
    }
    fn text(&mut self) -> Vec<u8> {
        self.handle.render().into_bytes()
    }
}

/// measured's label groups are types: one per shape.
mod measured_labels {
    #![allow(missing_docs, missing_debug_implementations, unreachable_pub)]
    #[derive(measured::LabelGroup)]
    #[label(set = ShortSet)]
    pub struct Short<'a> {
        #[label(dynamic_with = measured::lasso::ThreadedRodeo, default)]
        pub id: &'a str,
    }
    #[derive(measured::LabelGroup)]
    #[label(set = LongSet)]
    pub struct Long<'a> {
        #[label(dynamic_with = measured::lasso::ThreadedRodeo, default)]
        pub memory_space: &'a str,
    }
    #[derive(measured::LabelGroup)]
    #[label(set = ThreeSet)]
    pub struct Three<'a> {
        #[label(dynamic_with = measured::lasso::ThreadedRodeo, default)]
        pub memory_space: &'a str,
        #[label(dynamic_with = measured::lasso::ThreadedRodeo, default)]
        pub priority: &'a str,
        #[label(dynamic_with = measured::lasso::ThreadedRodeo, default)]
        pub status: &'a str,
    }
}

/// A measured family of any label set: rendering goes through its
/// `collect_family_into`, into a fresh or a kept encoder.
struct MeasuredFamily<F> {
    family: F,
    name: &'static str,
    encoder: measured::text::BufferedTextEncoder,
}

impl<F: MetricFamilyEncoding<measured::text::BufferedTextEncoder>> Render for MeasuredFamily<F> {
    fn render_fresh(&mut self) -> usize {
        let mut enc = measured::text::BufferedTextEncoder::new();
        self.family.collect_family_into(MetricName::from_str(self.name), &mut enc).expect("encodes");
        enc.finish().len()
    }
    fn render_reused(&mut self) -> usize {
        self.family.collect_family_into(MetricName::from_str(self.name), &mut self.encoder).expect("encodes");
        self.encoder.finish().len()
    }
    fn text(&mut self) -> Vec<u8> {
        let mut enc = measured::text::BufferedTextEncoder::new();
        self.family.collect_family_into(MetricName::from_str(self.name), &mut enc).expect("encodes");
        enc.finish().to_vec()
    }
}

fn measured_family(kind: Kind, shape: Shape, n: usize) -> Box<dyn Render> {
    use measured_labels::*;
    fn boxed<F>(family: F, kind: Kind) -> Box<dyn Render>
    where
        F: MetricFamilyEncoding<measured::text::BufferedTextEncoder> + 'static,
    {
        Box::new(MeasuredFamily {
            family,
            name: kind.family_name(),
            encoder: measured::text::BufferedTextEncoder::new(),
        })
    }
    let thresholds = || measured::metric::histogram::Thresholds::with_buckets(BUCKETS);
    // One arm per (shape, kind): measured's families are typed by label set.
    macro_rules! populate {
        ($set:expr, |$v:ident| $group:expr) => {
            match kind {
                Kind::Counter => {
                    let f = measured::CounterVec::with_label_set($set);
                    for i in 0..n {
                        let $v = shape.values(i);
                        f.inc_by($group, value(i));
                    }
                    boxed(f, kind)
                }
                Kind::Histogram => {
                    let f = measured::HistogramVec::<_, 11>::with_label_set_and_metadata($set, thresholds());
                    for i in 0..n {
                        let $v = shape.values(i);
                        for k in 0..OBS_PER_SERIES {
                            f.observe($group, obs(i, k));
                        }
                    }
                    boxed(f, kind)
                }
            }
        };
    }
    match shape {
        Shape::Short => populate!(ShortSet::new(), |v| Short { id: &v[0] }),
        Shape::Long => populate!(LongSet::new(), |v| Long { memory_space: &v[0] }),
        Shape::Three => populate!(ThreeSet::new(), |v| Three { memory_space: &v[0], priority: &v[1], status: &v[2] }),
    }
}

enum FtMetric {
    Counter(fast_telemetry::DynamicCounter),
    Histogram(fast_telemetry::DynamicHistogram),
}

struct FastTelemetryFamily {
    metric: FtMetric,
    name: &'static str,
    buf: String,
}

impl FastTelemetryFamily {
    fn new(kind: Kind, shape: Shape, n: usize) -> Self {
        let names = shape.label_names();
        let pairs =
            |v: &[String]| -> Vec<(&'static str, String)> { names.iter().copied().zip(v.iter().cloned()).collect() };
        let metric = match kind {
            Kind::Counter => {
                // Its default cap is 2,000 series: raise it to n.
                let c = fast_telemetry::DynamicCounter::with_max_series(4, n);
                for i in 0..n {
                    let p = pairs(&shape.values(i));
                    let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    c.add(&p, value(i) as isize);
                }
                FtMetric::Counter(c)
            }
            Kind::Histogram => {
                // It takes `u64` observations: microseconds.
                let bounds: Vec<u64> = BUCKETS.iter().map(|b| (b * 1e6) as u64).collect();
                let h = fast_telemetry::DynamicHistogram::with_limits(&bounds, 4, n);
                for i in 0..n {
                    let p = pairs(&shape.values(i));
                    let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    for k in 0..OBS_PER_SERIES {
                        h.record(&p, (obs(i, k) * 1e6) as u64);
                    }
                }
                FtMetric::Histogram(h)
            }
        };
        Self { metric, name: kind.family_name(), buf: String::new() }
    }

    fn encode(&self, out: &mut String) {
        use fast_telemetry::PrometheusExport;
        match &self.metric {
            FtMetric::Counter(c) => c.export_prometheus(out, self.name, "Help."),
            FtMetric::Histogram(h) => h.export_prometheus(out, self.name, "Help."),
        }
    }
}

impl Render for FastTelemetryFamily {
    fn render_fresh(&mut self) -> usize {
        let mut out = String::new();
        self.encode(&mut out);
        out.len()
    }
    fn render_reused(&mut self) -> usize {
        let mut out = std::mem::take(&mut self.buf);
        out.clear();
        self.encode(&mut out);
        let n = out.len();
        self.buf = out;
        n
    }
    fn text(&mut self) -> Vec<u8> {
        let mut out = String::new();
        self.encode(&mut out);
        out.into_bytes()
    }
}

/// fastmetrics' label sets are types with a static schema: one per shape
/// (the lookup benchmarks build their keys from `Short`).
pub mod fastmetrics_labels {
    #![allow(missing_docs, missing_debug_implementations)]
    use fastmetrics::encoder::{EncodeLabelSet, LabelSetEncoder};
    use fastmetrics::raw::LabelSetSchema;

    macro_rules! label_set {
        ($ty:ident { $($field:ident),+ }) => {
            #[derive(Clone, PartialEq, Eq, Hash)]
            pub struct $ty {
                $(pub $field: String,)+
            }
            impl LabelSetSchema for $ty {
                fn names() -> Option<&'static [&'static str]> {
                    Some(&[$(stringify!($field)),+])
                }
            }
            impl EncodeLabelSet for $ty {
                fn encode(&self, encoder: &mut dyn LabelSetEncoder) -> fastmetrics::error::Result<()> {
                    $(encoder.encode(&(stringify!($field), self.$field.as_str()))?;)+
                    Ok(())
                }
            }
        };
    }
    label_set!(Short { id });
    label_set!(Long { memory_space });
    label_set!(Three { memory_space, priority, status });
}

struct FastmetricsFamily {
    registry: fastmetrics::registry::Registry,
    buf: String,
}

impl Render for FastmetricsFamily {
    fn render_fresh(&mut self) -> usize {
        let mut out = String::new();
        fastmetrics::format::text::encode(
            &mut out,
            &self.registry,
            fastmetrics::format::text::TextProfile::PrometheusV0_0_4,
        )
        .expect("encodes");
        out.len()
    }
    fn render_reused(&mut self) -> usize {
        self.buf.clear();
        fastmetrics::format::text::encode(
            &mut self.buf,
            &self.registry,
            fastmetrics::format::text::TextProfile::PrometheusV0_0_4,
        )
        .expect("encodes");
        self.buf.len()
    }
    fn text(&mut self) -> Vec<u8> {
        let mut out = String::new();
        fastmetrics::format::text::encode(
            &mut out,
            &self.registry,
            fastmetrics::format::text::TextProfile::PrometheusV0_0_4,
        )
        .expect("encodes");
        out.into_bytes()
    }
    fn render_protobuf(&mut self, out: &mut Vec<u8>) -> bool {
        out.clear();
        fastmetrics::format::protobuf::encode(
            out,
            &self.registry,
            fastmetrics::format::protobuf::ProtobufProfile::Prometheus,
        )
        .expect("encodes");
        true
    }
}

fn fastmetrics_family(kind: Kind, shape: Shape, n: usize) -> Box<dyn Render> {
    use fastmetrics::metrics::counter::Counter;
    use fastmetrics::metrics::family::Family;
    use fastmetrics::metrics::histogram::Histogram;
    use fastmetrics_labels::*;
    let mut registry = fastmetrics::registry::Registry::default();
    macro_rules! populate {
        ($ls:ty, $make:expr) => {
            match kind {
                Kind::Counter => {
                    let f = Family::<$ls, Counter>::default();
                    // fastmetrics appends `_total` to counters itself.
                    registry.register("observations", "Help.", f.clone()).expect("registers");
                    for i in 0..n {
                        f.with_or_new(&$make(shape.values(i)), |c| c.inc_by(value(i)));
                    }
                }
                Kind::Histogram => {
                    let f = Family::<$ls, Histogram>::new(|| Histogram::new(BUCKETS));
                    registry.register(kind.family_name(), "Help.", f.clone()).expect("registers");
                    for i in 0..n {
                        f.with_or_new(&$make(shape.values(i)), |h| {
                            for k in 0..OBS_PER_SERIES {
                                h.observe(obs(i, k));
                            }
                        });
                    }
                }
            }
        };
    }
    match shape {
        Shape::Short => populate!(Short, |v: Vec<String>| Short { id: v[0].clone() }),
        Shape::Long => populate!(Long, |v: Vec<String>| Long { memory_space: v[0].clone() }),
        Shape::Three => populate!(Three, |v: Vec<String>| Three {
            memory_space: v[0].clone(),
            priority: v[1].clone(),
            status: v[2].clone(),
        }),
    }
    Box::new(FastmetricsFamily { registry, buf: String::new() })
}
