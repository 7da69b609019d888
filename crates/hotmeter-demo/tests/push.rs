//! The demo pushed instead of scraped: `--remote-write` into Debian's
//! Prometheus started with `--web.enable-remote-write-receiver` on a
//! loopback port. After the run, the received checkpoint counters equal
//! the demo's own final counts exactly, the write-latency histogram is
//! complete, and the `job`/`instance` external labels are on every series.
//!
//! Needs Debian's `prometheus` (the test command installs it); without it
//! this test fails and says so.

mod common;

use std::time::Duration;

use common::Demo;
use hotmeter_testkit::promql::{query, scalar};
use hotmeter_testkit::{Prometheus, http, wait_for};

#[test]
fn the_demo_pushes_its_final_counts() {
    let receiver = Prometheus::builder("prometheus").remote_write_receiver().start();
    let prom = receiver.addr();

    let url = format!("http://{prom}/api/v1/write");
    let mut demo = Demo::start(&[
        "--rate",
        "100",
        "--duration",
        "4s",
        "--decide-every",
        "0",
        "--remote-write",
        &url,
        "--remote-write-interval",
        "1s",
        "--instance",
        "demo-a",
    ]);
    demo.wait_for("pushing to");
    assert!(demo.wait().success(), "{}", demo.seen().join("\n"));
    let out = demo.seen().join("\n");
    let own = common::summary_writes(&out).unwrap_or_else(|| panic!("no summary in:\n{out}"));
    assert!(own > 100, "the demo wrote: {out}");
    let pushed = out.lines().find(|l| l.starts_with("remote_write:")).unwrap_or_else(|| panic!("{out}"));
    assert!(pushed.contains(" 0 failed, 0 dropped"), "{pushed}");

    let sel = r#"job="hotmeter-demo",instance="demo-a""#;
    let received = wait_for("the pushed checkpoint counts", Duration::from_secs(30), || {
        scalar(prom, &format!("sum(checkpoint_writes_total{{{sel}}})"))
    });
    assert_eq!(received, own as f64, "Prometheus received the demo's final count exactly");
    let count = scalar(prom, &format!("checkpoint_write_duration_seconds_count{{{sel}}}"));
    assert_eq!(count, Some(own as f64), "one latency observation per write");
    // The histogram arrived whole: every bucket, +Inf equal to the count.
    let buckets = query(prom, &format!("checkpoint_write_duration_seconds_bucket{{{sel}}}"));
    assert!(buckets.len() >= 5, "{buckets:?}");
    let inf = buckets.iter().find(|b| b["metric"]["le"] == "+Inf").expect("an le=\"+Inf\" bucket");
    assert_eq!(inf["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()), Some(own as f64));
    assert!(scalar(prom, &format!("sum(checkpoint_write_duration_seconds_sum{{{sel}}})")).unwrap() > 0.0);
    // Each dashboard's `instance` variable, asked of this Prometheus that
    // only receives pushes (no scrape, so no `up`), offers the pushed
    // instance.
    for file in ["checkpoint-writes.json", "streaming-infrastructure.json"] {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../dashboards/").to_owned() + file;
        let d: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let var = d["templating"]["list"].as_array().unwrap().iter().find(|v| v["name"] == "instance").unwrap();
        let q = var["query"]["query"].as_str().unwrap();
        let metric = q
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(", instance)"))
            .unwrap_or_else(|| panic!("{file}: {q}"));
        let r = http::get_with(prom, "/api/v1/label/instance/values", &[("match[]", metric)]).unwrap();
        let values: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(values["data"], serde_json::json!(["demo-a"]), "{file}: {q} offers the pushed instance");
    }
    // Nothing arrived without the external labels.
    assert_eq!(query(prom, r#"{__name__=~"checkpoint_.+", job!="hotmeter-demo"}"#).len(), 0);
    assert_eq!(query(prom, r#"{__name__=~"checkpoint_.+", instance!="demo-a"}"#).len(), 0);
}

/// `--otlp` into VictoriaMetrics' OTLP receiver (Debian 13's, which the
/// test command fetches): the received checkpoint counters equal the demo's
/// own final count exactly, and every series carries the resource
/// (`service.name` = the job, `service.instance.id` = the instance).
#[test]
fn the_demo_exports_its_final_counts_over_otlp() {
    let vm = hotmeter_testkit::VictoriaMetrics::start();
    let url = format!("http://{}/opentelemetry/v1/metrics", vm.addr());
    let mut demo = Demo::start(&[
        "--rate",
        "100",
        "--duration",
        "4s",
        "--decide-every",
        "0",
        "--otlp",
        &url,
        "--otlp-interval",
        "1s",
        "--instance",
        "demo-o",
    ]);
    demo.wait_for("exporting OTLP to");
    assert!(demo.wait().success(), "{}", demo.seen().join("\n"));
    let out = demo.seen().join("\n");
    let own = common::summary_writes(&out).unwrap_or_else(|| panic!("no summary in:\n{out}"));
    assert!(own > 100, "the demo wrote: {out}");
    let exported = out.lines().find(|l| l.starts_with("otlp:")).unwrap_or_else(|| panic!("{out}"));
    assert!(exported.contains(" 0 failed, 0 dropped"), "{exported}");
    let received = wait_for("the exported checkpoint counts", Duration::from_secs(30), || {
        scalar(vm.addr(), "sum(checkpoint_writes_total)").filter(|&v| v == own as f64)
    });
    assert_eq!(received, own as f64, "VictoriaMetrics received the demo's final count exactly");
    let series = query(vm.addr(), "checkpoint_writes_total");
    assert!(!series.is_empty());
    for s in &series {
        assert_eq!(s["metric"]["service.name"], "hotmeter-demo", "{s}");
        assert_eq!(s["metric"]["service.instance.id"], "demo-o", "{s}");
    }
}
