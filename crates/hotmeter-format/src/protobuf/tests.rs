//! The encoder judged by a decoder that is not ours: prost's derive on the
//! checked-in `metrics.proto` types (`hotmeter_testkit::client_model`).

use std::sync::Arc;

use hotmeter::expose::{Metric, Scratch, Value};
use hotmeter::native::NativeBucketsRef;
use hotmeter::{Buckets, Opts, OwnedValue, Registry, StringFamily, Summary, SummaryOpts, TraceId, Unit};
use proptest::prelude::*;

use super::*;
use hotmeter_testkit::client_model::{self as pb, MetricFamily};

fn encode(registry: &Registry) -> Vec<MetricFamily> {
    let mut out = Vec::new();
    encode_protobuf(registry, &mut out);
    pb::decode_delimited(&out).expect("decodes")
}

fn labels(m: &pb::Metric) -> Vec<(&str, &str)> {
    m.label.iter().map(|l| (l.name.as_deref().unwrap_or("?"), l.value.as_deref().unwrap_or("?"))).collect()
}

/// A native histogram with fixed contents, standing in for the core's
/// metric (written elsewhere) so every field can be chosen.
#[derive(Clone, Debug)]
struct FixedNative(Arc<NativeData>);

#[derive(Debug, Clone)]
struct NativeData {
    schema: i8,
    zero_threshold: f64,
    zero_count: u64,
    sum: f64,
    positive: Vec<(i32, u64)>,
    negative: Vec<(i32, u64)>,
    bounds: Vec<f64>,
    counts: Vec<u64>,
}

impl Metric for FixedNative {
    const TYPE: MetricType = MetricType::Histogram;
    fn sample<'a>(&'a self, _: &'a mut Scratch) -> Value<'a> {
        let d = &*self.0;
        let count = d.zero_count + d.positive.iter().chain(&d.negative).map(|b| b.1).sum::<u64>();
        Value::NativeHistogram {
            native: NativeBucketsRef {
                schema: d.schema,
                zero_threshold: d.zero_threshold,
                zero_count: d.zero_count,
                count,
                sum: d.sum,
                positive: &d.positive,
                negative: &d.negative,
            },
            bounds: &d.bounds,
            counts: &d.counts,
            exemplars: &[],
        }
    }
}

/// The populated buckets that spans and deltas describe (bridged empty
/// buckets dropped).
fn buckets_of(spans: &[pb::BucketSpan], deltas: &[i64]) -> Vec<(i32, u64)> {
    let mut out = Vec::new();
    let (mut key, mut count, mut d) = (0i32, 0i64, deltas.iter());
    for (i, s) in spans.iter().enumerate() {
        let offset = s.offset.expect("offset sent");
        key = if i == 0 { offset } else { key + 1 + offset };
        for j in 0..s.length.expect("length sent") {
            if j > 0 {
                key += 1;
            }
            count += d.next().expect("a delta per bucket");
            assert!(count >= 0, "negative bucket count");
            if count > 0 {
                out.push((key, count as u64));
            }
        }
    }
    assert!(d.next().is_none(), "more deltas than buckets");
    out
}

#[test]
fn counters_and_gauges_round_trip() {
    let r = Registry::builder().const_label("zone", "eu\"1\n").build().unwrap();
    let jobs = r.counter("jobs_total", "Jobs run.").unwrap();
    jobs.inc_by(12_345);
    r.register(("ratio_total", ""), hotmeter::FloatCounter::new()).unwrap().inc_by(2.5);
    r.gauge("temperature", "Heat \"now\"\\.").unwrap().set(-3.25);
    r.int_gauge("depth", "Waiting.").unwrap().set(-7);
    let fam = r.labeled_family("per_space_total", "By space.", &["space", "prio"], hotmeter::Counter::new).unwrap();
    fam.with(&["zürich \"q\"\n", "high"], |c| c.inc_by(3)).unwrap();
    fam.with(&["a", ""], |c| c.inc_by(1 << 53)).unwrap();
    let traced = r.register(("traced_total", "Traced."), hotmeter::TracedCounter::new()).unwrap();
    traced.inc_with_exemplar(4, &TraceId::new("4bf92f3577b34da6a3ce929d0e0e4736").unwrap());
    r.register(("untraced_total", "No exemplar yet."), hotmeter::TracedCounter::new()).unwrap().inc();

    let mut f = encode(&r);
    // A string family brings the registry's overflow counter along.
    let overflow = f.remove(1);
    assert_eq!(overflow.name.as_deref(), Some(hotmeter::OVERFLOW_METRIC));
    let names: Vec<_> = f.iter().map(|f| f.name.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        ["depth", "jobs_total", "per_space_total", "ratio_total", "temperature", "traced_total", "untraced_total"]
    );
    let zone = ("zone", "eu\"1\n");

    let depth = &f[0];
    assert_eq!(depth.help.as_deref(), Some("Waiting."));
    assert_eq!(depth.r#type, Some(pb::MetricType::Gauge as i32));
    assert_eq!(depth.unit, None);
    assert_eq!(depth.metric.len(), 1);
    assert_eq!(labels(&depth.metric[0]), [zone]);
    assert_eq!(depth.metric[0].gauge, Some(pb::Gauge { value: Some(-7.0) }));
    assert!(depth.metric[0].counter.is_none() && depth.metric[0].timestamp_ms.is_none());

    let created = jobs.created_unix_nanos();
    let jobs = &f[1];
    assert_eq!(jobs.r#type, Some(pb::MetricType::Counter as i32));
    assert_eq!(jobs.help.as_deref(), Some("Jobs run."));
    let c = jobs.metric[0].counter.as_ref().unwrap();
    // The creation time, exact to the nanosecond.
    let ts = pb::Timestamp { seconds: (created / 1_000_000_000) as i64, nanos: (created % 1_000_000_000) as i32 };
    assert_eq!((c.value, &c.exemplar, &c.created_timestamp), (Some(12_345.0), &None, &Some(ts)));

    let per = &f[2];
    assert_eq!(per.metric.len(), 2);
    // Label-value order, constant labels first.
    assert_eq!(labels(&per.metric[0]), [zone, ("space", "a"), ("prio", "")]);
    assert_eq!(per.metric[0].counter.as_ref().unwrap().value, Some((1u64 << 53) as f64));
    assert_eq!(labels(&per.metric[1]), [zone, ("space", "zürich \"q\"\n"), ("prio", "high")]);
    assert_eq!(per.metric[1].counter.as_ref().unwrap().value, Some(3.0));

    assert_eq!(f[3].help.as_deref(), Some(""));
    assert_eq!(f[3].metric[0].counter.as_ref().unwrap().value, Some(2.5));
    assert_eq!(f[4].help.as_deref(), Some("Heat \"now\"\\."));
    assert_eq!(f[4].metric[0].gauge.as_ref().unwrap().value, Some(-3.25));

    let c = f[5].metric[0].counter.as_ref().unwrap();
    assert_eq!(c.value, Some(4.0));
    let e = c.exemplar.as_ref().expect("exemplar");
    assert_eq!(
        e.label,
        [pb::LabelPair { name: Some("trace_id".into()), value: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()) }]
    );
    assert_eq!(e.value, Some(4.0));
    let want = traced.exemplar().unwrap().timestamp;
    let ts = e.timestamp.as_ref().expect("timestamp");
    let got = ts.seconds as f64 + f64::from(ts.nanos) / 1e9;
    assert!((got - want).abs() <= 0.0005, "{got} vs {want}");
    assert_eq!(ts.nanos % 1_000_000, 0, "milliseconds");
    assert!(ts.seconds > 1_600_000_000);
    let c = f[6].metric[0].counter.as_ref().unwrap();
    assert_eq!((c.value, &c.exemplar), (Some(1.0), &None));
}

#[test]
fn units_only_when_the_name_carries_them() {
    let r = Registry::new();
    let _ = r.register(Opts::new("wait_seconds", "W.").unit(Unit::SECONDS), hotmeter::Gauge::new()).unwrap();
    let _ = r.register(Opts::new("sent_bytes_total", "S.").unit(Unit::BYTES), hotmeter::Counter::new()).unwrap();
    let _ = r.register(Opts::new("odd", "O.").unit(Unit::BYTES), hotmeter::Gauge::new()).unwrap();
    let f = encode(&r);
    let units: Vec<_> = f.iter().map(|f| (f.name.as_deref().unwrap(), f.unit.as_deref())).collect();
    assert_eq!(units, [("odd", None), ("sent_bytes_total", Some("bytes")), ("wait_seconds", Some("seconds"))]);
}

#[test]
fn classic_histograms_and_summaries_round_trip() {
    let r = Registry::new();
    let h = r.histogram("latency_seconds", "Latency.", Buckets::new([0.1, 0.5, 2.0]).unwrap()).unwrap();
    for v in [0.05, 0.3, 0.3, 1.0, 1.5, 1.7, 9.0] {
        h.observe(v);
    }
    let tid = TraceId::new("abc").unwrap();
    h.observe_with_exemplar(0.4, &tid);
    h.observe_with_exemplar(30.0, &tid);
    let quiet = r.histogram("quiet_seconds", "No exemplars.", Buckets::new([1.0]).unwrap()).unwrap();
    quiet.observe(5.0);
    let s = r.summary("size_bytes", "Sizes.", SummaryOpts { quantiles: vec![0.5, 0.9], ..Default::default() }).unwrap();
    for v in 1..=100 {
        s.observe(f64::from(v));
    }
    let _ = r.summary("empty_bytes", "Nothing yet.", SummaryOpts::default()).unwrap();

    let f = encode(&r);
    assert_eq!(f.len(), 4);
    let empty = f[0].metric[0].summary.as_ref().unwrap();
    assert_eq!((empty.sample_count, empty.sample_sum), (Some(0), Some(0.0)));
    assert_eq!(empty.quantile.len(), 4);
    assert!(empty.quantile.iter().all(|q| q.value.unwrap().is_nan()));

    assert_eq!(f[1].r#type, Some(pb::MetricType::Histogram as i32));
    let hist = f[1].metric[0].histogram.as_ref().unwrap();
    assert_eq!(hist.sample_count, Some(9));
    assert_eq!(hist.sample_sum, Some(0.05 + 0.3 + 0.3 + 1.0 + 1.5 + 1.7 + 9.0 + 0.4 + 30.0));
    let b: Vec<_> = hist.bucket.iter().map(|b| (b.upper_bound.unwrap(), b.cumulative_count.unwrap())).collect();
    // Cumulative; the +Inf bucket only because it holds an exemplar.
    assert_eq!(b, [(0.1, 1), (0.5, 4), (2.0, 7), (f64::INFINITY, 9)]);
    let ex: Vec<_> = hist.bucket.iter().map(|b| b.exemplar.as_ref().map(|e| e.value.unwrap())).collect();
    assert_eq!(ex, [None, Some(0.4), None, Some(30.0)]);
    assert_eq!(hist.bucket[1].exemplar.as_ref().unwrap().label[0].value.as_deref(), Some("abc"));
    // Classic only: nothing native.
    assert_eq!((hist.schema, hist.zero_threshold, hist.zero_count), (None, None, None));
    assert!(hist.positive_span.is_empty() && hist.negative_span.is_empty());

    let quiet = f[2].metric[0].histogram.as_ref().unwrap();
    let b: Vec<_> = quiet.bucket.iter().map(|b| (b.upper_bound.unwrap(), b.cumulative_count.unwrap())).collect();
    assert_eq!(b, [(1.0, 0)], "no +Inf bucket without an exemplar");
    assert_eq!(quiet.sample_count, Some(1));

    assert_eq!(f[3].r#type, Some(pb::MetricType::Summary as i32));
    let sum = f[3].metric[0].summary.as_ref().unwrap();
    assert_eq!((sum.sample_count, sum.sample_sum), (Some(100), Some(5050.0)));
    let q: Vec<_> = sum.quantile.iter().map(|q| (q.quantile.unwrap(), q.value.unwrap())).collect();
    assert_eq!(q.len(), 2);
    assert_eq!((q[0].0, q[1].0), (0.5, 0.9));
    assert!((q[0].1 - 50.0).abs() <= 1.0 && (q[1].1 - 90.0).abs() <= 1.0, "{q:?}");
}

fn native(data: NativeData) -> FixedNative {
    FixedNative(Arc::new(data))
}

#[test]
fn native_histograms_round_trip() {
    let r = Registry::new();
    let positive = vec![(-3, 1), (0, 2), (1, 1), (3, 2), (10, 1), (11, 70_000)];
    let negative = vec![(2, 5)];
    r.register(
        ("native_seconds", "Native."),
        native(NativeData {
            schema: 3,
            zero_threshold: hotmeter::native::DEFAULT_ZERO_THRESHOLD,
            zero_count: 4,
            sum: 12.5,
            positive: positive.clone(),
            negative: negative.clone(),
            bounds: vec![],
            counts: vec![],
        }),
    )
    .unwrap();
    r.register(
        ("both_seconds", "Classic alongside."),
        native(NativeData {
            schema: -2,
            zero_threshold: 0.001,
            zero_count: 0,
            sum: 3.0,
            positive: vec![(1, 2)],
            negative: vec![],
            bounds: vec![1.0, 10.0],
            counts: vec![0, 2, 0],
        }),
    )
    .unwrap();
    r.register(
        ("empty_seconds", "No observations, no zero bucket."),
        native(NativeData {
            schema: 0,
            zero_threshold: 0.0,
            zero_count: 0,
            sum: 0.0,
            positive: vec![],
            negative: vec![],
            bounds: vec![],
            counts: vec![],
        }),
    )
    .unwrap();
    r.register(
        ("idle_seconds", "No observations."),
        native(NativeData {
            schema: 8,
            zero_threshold: hotmeter::native::DEFAULT_ZERO_THRESHOLD,
            zero_count: 0,
            sum: 0.0,
            positive: vec![],
            negative: vec![],
            bounds: vec![],
            counts: vec![],
        }),
    )
    .unwrap();
    let f = encode(&r);
    let names: Vec<_> = f.iter().map(|f| f.name.as_deref().unwrap()).collect();
    assert_eq!(names, ["both_seconds", "empty_seconds", "idle_seconds", "native_seconds"]);

    let both = f[0].metric[0].histogram.as_ref().unwrap();
    assert_eq!((both.schema, both.zero_threshold, both.zero_count), (Some(-2), Some(0.001), Some(0)));
    assert_eq!((both.sample_count, both.sample_sum), (Some(2), Some(3.0)));
    let b: Vec<_> = both.bucket.iter().map(|b| (b.upper_bound.unwrap(), b.cumulative_count.unwrap())).collect();
    assert_eq!(b, [(1.0, 0), (10.0, 2)]);
    assert_eq!(buckets_of(&both.positive_span, &both.positive_delta), [(1, 2)]);
    assert!(both.negative_span.is_empty() && both.negative_delta.is_empty());

    let empty = f[1].metric[0].histogram.as_ref().unwrap();
    assert_eq!((empty.schema, empty.zero_threshold, empty.zero_count), (Some(0), Some(0.0), Some(0)));
    assert_eq!(empty.positive_span, [pb::BucketSpan { offset: Some(0), length: Some(0) }], "the no-op span");
    assert!(empty.positive_delta.is_empty() && empty.negative_span.is_empty() && empty.bucket.is_empty());

    let idle = f[2].metric[0].histogram.as_ref().unwrap();
    assert_eq!((idle.schema, idle.zero_threshold), (Some(8), Some(hotmeter::native::DEFAULT_ZERO_THRESHOLD)));
    assert!(idle.positive_span.is_empty(), "a zero threshold already marks it native");

    let h = f[3].metric[0].histogram.as_ref().unwrap();
    assert_eq!(h.schema, Some(3));
    assert_eq!(h.zero_count, Some(4));
    assert_eq!(h.sample_count, Some(4 + 5 + 1 + 2 + 1 + 2 + 1 + 70_000));
    assert_eq!(h.sample_sum, Some(12.5));
    assert!(h.bucket.is_empty());
    // Exactly client_golang's spans: gaps of up to two buckets bridged.
    let spans: Vec<_> = h.positive_span.iter().map(|s| (s.offset.unwrap(), s.length.unwrap())).collect();
    // Keys -3..=3 (-2, -1 and 2 empty), then 10 and 11.
    assert_eq!(spans, [(-3, 7), (6, 2)]);
    assert_eq!(h.positive_delta, [1, -1, 0, 2, -1, -1, 2, -1, 69_999]);
    assert_eq!(buckets_of(&h.positive_span, &h.positive_delta), positive);
    assert_eq!(buckets_of(&h.negative_span, &h.negative_delta), negative);
    assert!(h.positive_count.is_empty() && h.zero_count_float.is_none() && h.sample_count_float.is_none());
}

#[test]
fn long_and_short_series_mix() {
    // Series lengths crossing 127 bytes both ways, and a family past the
    // three bytes its length is first given (2 MiB).
    let r = Registry::new();
    let fam = r.labeled_family("mixed", "M.", &["v"], hotmeter::Gauge::new).unwrap();
    let long = "x".repeat(300);
    for (i, v) in ["a", &long, "b", &long[..130], "c"].into_iter().enumerate() {
        fam.with(&[v], |g| g.set(i as f64)).unwrap();
    }
    let _ = r.gauge("big", &"h".repeat(3 << 20)).unwrap();
    let f = encode(&r);
    assert_eq!(f[0].help.as_ref().map(String::len), Some(3 << 20));
    assert_eq!(f[1].name.as_deref(), Some(hotmeter::OVERFLOW_METRIC));
    let got: Vec<_> =
        f[2].metric.iter().map(|m| (m.label[0].value.clone().unwrap(), m.gauge.as_ref().unwrap().value)).collect();
    let mut want: Vec<_> =
        ["a", &long, "b", &long[..130], "c"].iter().enumerate().map(|(i, v)| (v.to_string(), Some(i as f64))).collect();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want);
}

#[test]
fn empty_registry_is_empty_body() {
    let mut out = Vec::new();
    encode_protobuf(&Registry::new(), &mut out);
    assert!(out.is_empty());
}

/// Compares a decoded scrape with the registry's own snapshot: every
/// family, label and value, doubles bit for bit.
fn assert_same(snapshot: &hotmeter::RegistrySnapshot, decoded: &[MetricFamily]) {
    assert_eq!(snapshot.families.len(), decoded.len());
    for (s, d) in snapshot.families.iter().zip(decoded) {
        assert_eq!(d.name.as_deref(), Some(s.desc.name.as_str()));
        assert_eq!(d.help.as_deref(), Some(s.desc.help.as_str()));
        assert_eq!(d.r#type, Some(type_number(s.desc.kind) as i32));
        assert_eq!(s.series.len(), d.metric.len(), "{}", s.desc.name);
        for (ss, m) in s.series.iter().zip(&d.metric) {
            let want: Vec<_> = ss.labels.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            assert_eq!(labels(m), want);
            let bits = |v: Option<f64>| v.map(f64::to_bits);
            match &ss.value {
                OwnedValue::Counter(v) => {
                    assert_eq!(m.counter.as_ref().unwrap().value, Some(*v as f64));
                }
                OwnedValue::FloatCounter(v) => {
                    assert_eq!(bits(m.counter.as_ref().unwrap().value), Some(v.to_bits()));
                }
                OwnedValue::Gauge(v) => assert_eq!(bits(m.gauge.as_ref().unwrap().value), Some(v.to_bits())),
                OwnedValue::IntGauge(v) => assert_eq!(m.gauge.as_ref().unwrap().value, Some(*v as f64)),
                OwnedValue::Histogram { bounds, counts, sum, count } => {
                    let h = m.histogram.as_ref().unwrap();
                    assert_eq!(h.sample_count, Some(*count));
                    assert_eq!(bits(h.sample_sum), Some(sum.to_bits()));
                    let mut cumulative = 0;
                    for (i, b) in h.bucket.iter().enumerate() {
                        cumulative += counts[i];
                        assert_eq!(b.upper_bound, Some(bounds.get(i).copied().unwrap_or(f64::INFINITY)));
                        assert_eq!(b.cumulative_count, Some(cumulative));
                    }
                    assert!(h.bucket.len() == bounds.len() || h.bucket.len() == bounds.len() + 1);
                }
                OwnedValue::NativeHistogram { native, bounds, counts } => {
                    let hotmeter::native::NativeBuckets {
                        schema,
                        zero_threshold,
                        zero_count,
                        count,
                        sum,
                        positive,
                        negative,
                    } = native;
                    let h = m.histogram.as_ref().unwrap();
                    assert_eq!(h.schema, Some(i32::from(*schema)));
                    assert_eq!(bits(h.zero_threshold), Some(zero_threshold.to_bits()));
                    assert_eq!(h.zero_count, Some(*zero_count));
                    assert_eq!(h.sample_count, Some(*count));
                    assert_eq!(bits(h.sample_sum), Some(sum.to_bits()));
                    assert_eq!(&buckets_of(&h.positive_span, &h.positive_delta), positive);
                    assert_eq!(&buckets_of(&h.negative_span, &h.negative_delta), negative);
                    let b: Vec<_> = h.bucket.iter().map(|b| b.upper_bound.unwrap()).collect();
                    assert_eq!(&b, bounds);
                    let mut cumulative = 0;
                    for (b, c) in h.bucket.iter().zip(counts) {
                        cumulative += c;
                        assert_eq!(b.cumulative_count, Some(cumulative));
                    }
                }
                OwnedValue::Summary { quantiles, sum, count } => {
                    let q = m.summary.as_ref().unwrap();
                    assert_eq!(q.sample_count, Some(*count));
                    assert_eq!(bits(q.sample_sum), Some(sum.to_bits()));
                    let got: Vec<_> = q.quantile.iter().map(|q| (bits(q.quantile), bits(q.value))).collect();
                    let want: Vec<_> = quantiles.iter().map(|(a, b)| (Some(a.to_bits()), Some(b.to_bits()))).collect();
                    assert_eq!(got, want);
                }
            }
        }
    }
}

/// One family of a generated registry.
#[derive(Debug, Clone)]
enum Kind {
    Counter(u64),
    FloatCounter(f64),
    Gauge(f64),
    IntGauge(i64),
    Histogram(Vec<f64>),
    Summary(Vec<f64>),
    Traced(u64),
    Native(NativeData),
}

fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0),
        -1e6..1e6f64,
    ]
}

fn sparse() -> impl Strategy<Value = Vec<(i32, u64)>> {
    proptest::collection::btree_map(-200i32..200, 1u64..1_000_000, 0..12).prop_map(|m| m.into_iter().collect())
}

fn native_data() -> impl Strategy<Value = NativeData> {
    (
        -4i8..=8,
        prop_oneof![Just(0.0), Just(hotmeter::native::DEFAULT_ZERO_THRESHOLD), 0.0..1.0f64],
        0u64..100,
        any_f64(),
        sparse(),
        sparse(),
        proptest::collection::vec(0u64..50, 0..5),
    )
        .prop_map(|(schema, zero_threshold, zero_count, sum, positive, negative, classic)| {
            let bounds: Vec<f64> = (0..classic.len().saturating_sub(1)).map(|i| i as f64 + 0.5).collect();
            let counts = if bounds.is_empty() { Vec::new() } else { classic };
            NativeData { schema, zero_threshold, zero_count, sum, positive, negative, bounds, counts }
        })
}

fn kind() -> impl Strategy<Value = Kind> {
    let obs = || proptest::collection::vec(prop_oneof![-10.0..100.0f64, Just(f64::INFINITY), Just(0.0)], 0..20);
    prop_oneof![
        any::<u64>().prop_map(Kind::Counter),
        any_f64().prop_map(|v| Kind::FloatCounter(v.abs())),
        any_f64().prop_map(Kind::Gauge),
        any::<i64>().prop_map(Kind::IntGauge),
        obs().prop_map(Kind::Histogram),
        proptest::collection::vec(0.0..1000.0f64, 0..20).prop_map(Kind::Summary),
        any::<u64>().prop_map(|v| Kind::Traced(v % (1 << 60))),
        native_data().prop_map(Kind::Native),
    ]
}

fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("\"quoted\"\n\\".to_owned()),
        "[a-z0-9]{1,4}",
        any::<String>(),
        "\\PC{100,200}",
    ]
}

/// A family: kind, help, constant label value, label count and series' values.
type FamilySpec = (Kind, String, Option<String>, usize, Vec<(String, String)>);

fn family_spec() -> impl Strategy<Value = FamilySpec> {
    (
        kind(),
        any::<String>(),
        proptest::option::of(label_value()),
        0usize..=2,
        proptest::collection::vec((label_value(), label_value()), 1..6),
    )
}

/// Registers `kind` under `opts`: one series, or a string family with one
/// series per value pair.
fn register(r: &Registry, opts: Opts, kind: &Kind, arity: usize, values: &[(String, String)]) {
    macro_rules! family {
        ($make:expr, |$m:ident| $record:expr) => {{
            if arity == 0 {
                let $m = r.register(opts, $make).unwrap();
                $record;
            } else {
                let names = &["a", "b"][..arity];
                let fam = r.register(opts, StringFamily::new(names, move || $make)).unwrap();
                for (x, y) in values {
                    let v = [x.as_str(), y.as_str()];
                    fam.with(&v[..arity], |$m| $record).unwrap();
                }
            }
        }};
    }
    match kind.clone() {
        Kind::Counter(v) => family!(hotmeter::Counter::new(), |m| m.inc_by(v)),
        Kind::FloatCounter(v) => family!(hotmeter::FloatCounter::new(), |m| m.inc_by(v)),
        Kind::Gauge(v) => family!(hotmeter::Gauge::new(), |m| m.set(v)),
        Kind::IntGauge(v) => family!(hotmeter::IntGauge::new(), |m| m.set(v)),
        Kind::Histogram(obs) => {
            family!(hotmeter::Histogram::with_default_buckets(), |m| for &o in &obs {
                m.observe(o)
            })
        }
        Kind::Summary(obs) => family!(Summary::new(SummaryOpts::default()).unwrap(), |m| for &o in &obs {
            m.observe(o)
        }),
        Kind::Traced(v) => {
            let id = TraceId::new("t-1").unwrap();
            family!(hotmeter::TracedCounter::new(), |m| m.inc_with_exemplar(v, &id))
        }
        Kind::Native(d) => {
            let d = Arc::new(d);
            family!(FixedNative(d.clone()), |m| assert!(m.0.schema >= hotmeter::native::MIN_SCHEMA))
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_registries_round_trip(families in proptest::collection::vec(family_spec(), 0..6)) {
        let r = Registry::new();
        for (i, (kind, help, constant, arity, values)) in families.iter().enumerate() {
            let mut opts = Opts::new(format!("m{i}"), help.clone());
            if let Some(c) = constant {
                opts = opts.const_label("c", c.clone());
            }
            register(&r, opts, kind, *arity, values);
        }
        let decoded = encode(&r);
        assert_same(&r.snapshot(), &decoded);
        // And the bytes are exactly what prost writes for what it decoded:
        // fields in number order, every length minimal, nothing left over.
        let mut again = Vec::new();
        for f in &decoded {
            prost::Message::encode_length_delimited(f, &mut again).unwrap();
        }
        let mut ours = Vec::new();
        encode_protobuf(&r, &mut ours);
        prop_assert!(ours == again, "{} bytes, prost re-encodes {}", ours.len(), again.len());
    }
}
