//! OTLP bodies decoded by the official decoder: Python's
//! `opentelemetry-proto` package (the test command installs it, pinned),
//! field by field against the registry's own snapshot, for every metric
//! kind, both temporalities. The decoder also checks that it met no field
//! it does not know (a wrong tag or wire type would show as one).

use std::path::Path;
use std::process::Command;

use base64::Engine;
use hotmeter::{Buckets, NativeOpts, OwnedValue, Registry, SummaryOpts, TraceId, TracedCounter};
use hotmeter_push::{OtlpEncoder, Temporality};
use serde_json::Value as Json;

/// Parses the body at argv[1], fails on any unknown field anywhere in it,
/// and prints it as JSON (proto field names; 64-bit integers as strings,
/// bytes as base64, as protobuf's JSON mapping has them).
const DECODE: &str = r#"
import json, sys
from google.protobuf import unknown_fields
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

def check(msg, path):
    unknown = unknown_fields.UnknownFieldSet(msg)
    if len(unknown):
        sys.exit("unknown fields at %s: %s" % (path, [f.field_number for f in unknown]))
    for field, value in msg.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        repeated = getattr(field, "is_repeated", None)
        if repeated is None:
            repeated = field.label == field.LABEL_REPEATED
        if repeated:
            for i, v in enumerate(value):
                check(v, "%s.%s[%d]" % (path, field.name, i))
        else:
            check(value, "%s.%s" % (path, field.name))

req = metrics_service_pb2.ExportMetricsServiceRequest()
req.ParseFromString(open(sys.argv[1], "rb").read())
check(req, "request")
print(json.dumps(MessageToDict(req, preserving_proto_field_name=True)))
"#;

fn decode(body: &[u8], dir: &Path, name: &str) -> Json {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    let out = Command::new("python3").arg("-c").arg(DECODE).arg(&path).output().expect("python3");
    assert!(
        out.status.success(),
        "the decoder failed (is opentelemetry-proto installed? the test command installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the decoder prints JSON")
}

/// A 64-bit integer field as the JSON mapping writes it (a string), 0 when
/// left out (the default).
fn u64_of(v: &Json) -> u64 {
    match v {
        Json::Null => 0,
        Json::String(s) => s.parse().unwrap(),
        Json::Number(n) => n.as_u64().unwrap(),
        other => panic!("not a 64-bit integer: {other}"),
    }
}

fn f64_of(v: &Json) -> f64 {
    match v {
        Json::Null => 0.0,
        Json::Number(n) => n.as_f64().unwrap(),
        Json::String(s) => s.parse().unwrap(),
        other => panic!("not a double: {other}"),
    }
}

fn metric<'a>(request: &'a Json, name: &str) -> &'a Json {
    request["resource_metrics"][0]["scope_metrics"][0]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no metric {name}"))
}

fn attributes(point: &Json) -> Vec<(String, String)> {
    point["attributes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|kv| {
                    (kv["key"].as_str().unwrap().to_owned(), kv["value"]["string_value"].as_str().unwrap().to_owned())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Prometheus' `(index, count)` buckets from an OTLP dense run.
fn sparse(buckets: &Json) -> Vec<(i32, u64)> {
    let offset = buckets["offset"].as_i64().unwrap_or(0) as i32;
    buckets["bucket_counts"]
        .as_array()
        .map(|counts| (0..).zip(counts).map(|(i, c)| (offset + 1 + i, u64_of(c))).filter(|&(_, c)| c > 0).collect())
        .unwrap_or_default()
}

fn registry() -> (Registry, TracedCounter, hotmeter::NativeHistogram) {
    let r = Registry::new();
    let jobs = r.labeled_family("jobs_total", "Jobs run.", &["tenant"], hotmeter::Counter::new).unwrap();
    jobs.with(&["a"], |c| c.inc_by(5)).unwrap();
    jobs.with(&["b \"quoted\"\n"], |c| c.inc()).unwrap();
    let traced = r.register(hotmeter::Opts::new("requests_total", "Requests."), TracedCounter::new()).unwrap();
    traced.inc_with_exemplar(2, &TraceId::new("0af7651916cd43dd8448eb211c80319c").unwrap());
    r.gauge("temperature_celsius", "T.").unwrap().set(21.5);
    r.int_gauge("queue_depth", "D.").unwrap().set(-3);
    let h = r.histogram("latency_seconds", "Latency.", Buckets::new([0.01, 0.1, 1.0]).unwrap()).unwrap();
    for v in [0.005, 0.05, 0.05, 0.5, 5.0] {
        h.observe(v);
    }
    let n = r.native_histogram("rpc_seconds", "RPC.", NativeOpts::new().schema(3).unwrap()).unwrap();
    for v in [-2.0, -0.5, 0.0, 1e-3, 0.2, 0.2, 0.21, 3.0, 4096.0] {
        n.observe(v);
    }
    let s = r.summary("payload_bytes", "Payloads.", SummaryOpts::default()).unwrap();
    for v in [100.0, 200.0, 300.0] {
        s.observe(v);
    }
    (r, traced, n)
}

#[test]
fn the_official_decoder_reads_every_kind_as_the_snapshot_has_it() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _traced, _n) = registry();
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 + 1_000;
    let mut enc = OtlpEncoder::new("decoder-test").unwrap().attribute("service.version", "1.2.3").unwrap();
    let body = enc.encode(&r, t).body.to_vec();
    let json = decode(&body, dir.path(), "cumulative.pb");
    let snap = r.snapshot();

    let rm = &json["resource_metrics"][0];
    let resource = attributes(&rm["resource"]);
    assert_eq!(resource[0], ("service.name".to_owned(), "decoder-test".to_owned()));
    assert_eq!(resource[1].0, "service.instance.id");
    assert_eq!(resource[2], ("service.version".to_owned(), "1.2.3".to_owned()));
    assert_eq!(rm["scope_metrics"][0]["scope"]["name"], "hotmeter");

    // Counters: monotonic cumulative sums, integer points, start before end.
    let jobs = metric(&json, "jobs_total");
    assert_eq!(jobs["description"], "Jobs run.");
    assert_eq!(jobs["sum"]["is_monotonic"], true);
    assert_eq!(jobs["sum"]["aggregation_temporality"], "AGGREGATION_TEMPORALITY_CUMULATIVE");
    let points = jobs["sum"]["data_points"].as_array().unwrap();
    let family = snap.family("jobs_total").unwrap();
    assert_eq!(points.len(), family.series.len());
    for (p, s) in points.iter().zip(&family.series) {
        assert_eq!(attributes(p), s.labels, "labels as attributes, hostile characters as they are");
        let OwnedValue::Counter(v) = s.value else { panic!() };
        assert_eq!(u64_of(&p["as_int"]), v);
        assert_eq!(u64_of(&p["time_unix_nano"]), t);
        let start = u64_of(&p["start_time_unix_nano"]);
        assert!(start > 0 && start < t, "a cumulative sum starts at its series' creation: {start}");
    }

    // The exemplar's trace id: 16 bytes.
    let requests = metric(&json, "requests_total");
    let exemplar = &requests["sum"]["data_points"][0]["exemplars"][0];
    let trace = base64::engine::general_purpose::STANDARD.decode(exemplar["trace_id"].as_str().unwrap()).unwrap();
    assert_eq!(trace, [0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c]);
    assert_eq!(f64_of(&exemplar["as_double"]), 2.0);
    assert!(u64_of(&exemplar["time_unix_nano"]) > 0);

    // Gauges.
    assert_eq!(f64_of(&metric(&json, "temperature_celsius")["gauge"]["data_points"][0]["as_double"]), 21.5);
    assert_eq!(metric(&json, "queue_depth")["gauge"]["data_points"][0]["as_int"], "-3");

    // The classic histogram: every bucket, its bounds, count and sum.
    let lat = &metric(&json, "latency_seconds")["histogram"];
    assert_eq!(lat["aggregation_temporality"], "AGGREGATION_TEMPORALITY_CUMULATIVE");
    let p = &lat["data_points"][0];
    let Some(OwnedValue::Histogram { bounds, counts, sum, count }) = snap.value("latency_seconds", &[]) else {
        panic!()
    };
    let sent_bounds: Vec<f64> = p["explicit_bounds"].as_array().unwrap().iter().map(f64_of).collect();
    let sent_counts: Vec<u64> = p["bucket_counts"].as_array().unwrap().iter().map(u64_of).collect();
    assert_eq!((&sent_bounds, &sent_counts), (bounds, counts));
    assert_eq!((u64_of(&p["count"]), f64_of(&p["sum"])), (*count, *sum));

    // The native histogram as an exponential one: scale, zero bucket,
    // every bucket at its index, both signs.
    let rpc = &metric(&json, "rpc_seconds")["exponential_histogram"];
    assert_eq!(rpc["aggregation_temporality"], "AGGREGATION_TEMPORALITY_CUMULATIVE");
    let p = &rpc["data_points"][0];
    let Some(OwnedValue::NativeHistogram { native, .. }) = snap.value("rpc_seconds", &[]) else { panic!() };
    let view = native.view();
    assert_eq!(p["scale"].as_i64().unwrap(), i64::from(view.schema));
    assert_eq!((u64_of(&p["count"]), f64_of(&p["sum"])), (view.count, view.sum));
    assert_eq!((u64_of(&p["zero_count"]), f64_of(&p["zero_threshold"])), (view.zero_count, view.zero_threshold));
    assert_eq!(sparse(&p["positive"]), view.positive);
    assert_eq!(sparse(&p["negative"]), view.negative);

    // The summary: count, sum and each quantile.
    let p = &metric(&json, "payload_bytes")["summary"]["data_points"][0];
    let Some(OwnedValue::Summary { quantiles, sum, count }) = snap.value("payload_bytes", &[]) else { panic!() };
    assert_eq!((u64_of(&p["count"]), f64_of(&p["sum"])), (*count, *sum));
    let sent: Vec<(f64, f64)> = p["quantile_values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| (f64_of(&q["quantile"]), f64_of(&q["value"])))
        .collect();
    let expected: Vec<(f64, f64)> = quantiles.iter().copied().filter(|(_, v)| !v.is_nan()).collect();
    // The snapshot is a second read of a decaying window: equal to within
    // a rounding, quantile for quantile.
    assert_eq!(sent.len(), expected.len());
    for ((sq, sv), (eq, ev)) in sent.iter().zip(&expected) {
        assert!(sq == eq && (sv - ev).abs() <= 1e-9 * ev.abs(), "quantile {sq}: sent {sv}, snapshot {ev}");
    }
}

#[test]
fn the_official_decoder_reads_delta_points_as_what_each_series_gained() {
    let dir = tempfile::tempdir().unwrap();
    let (r, traced, n) = registry();
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 + 1_000;
    let mut enc = OtlpEncoder::new("decoder-test").unwrap().temporality(Temporality::Delta);
    let _ = enc.encode(&r, t);
    traced.inc_by(3);
    n.observe(0.2);
    let json = decode(enc.encode(&r, t + 5_000_000_000).body, dir.path(), "delta.pb");

    let requests = &metric(&json, "requests_total")["sum"];
    assert_eq!(requests["aggregation_temporality"], "AGGREGATION_TEMPORALITY_DELTA");
    assert_eq!(requests["is_monotonic"], true);
    let p = &requests["data_points"][0];
    assert_eq!((u64_of(&p["as_int"]), u64_of(&p["start_time_unix_nano"])), (3, t), "gained since the export before");
    let jobs = &metric(&json, "jobs_total")["sum"]["data_points"];
    assert!(jobs.as_array().unwrap().iter().all(|p| u64_of(&p["as_int"]) == 0), "nothing new for the jobs");
    let rpc = &metric(&json, "rpc_seconds")["exponential_histogram"];
    assert_eq!(rpc["aggregation_temporality"], "AGGREGATION_TEMPORALITY_DELTA");
    let p = &rpc["data_points"][0];
    assert_eq!((u64_of(&p["count"]), u64_of(&p["start_time_unix_nano"])), (1, t));
    // The sum gained is the difference of two cumulative sums.
    assert!((f64_of(&p["sum"]) - 0.2).abs() < 1e-9, "{}", p["sum"]);
    assert_eq!(sparse(&p["positive"]).iter().map(|&(_, c)| c).sum::<u64>(), 1, "one bucket gained one");
    assert!(sparse(&p["negative"]).is_empty());
    // Gauges are gauges either way.
    assert_eq!(f64_of(&metric(&json, "temperature_celsius")["gauge"]["data_points"][0]["as_double"]), 21.5);
}
