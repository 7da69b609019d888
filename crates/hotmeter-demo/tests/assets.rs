//! The alert rules, their promtool tests, the runbook and the dashboards
//! hold together: every alert is labelled, annotated, documented and unit
//! tested; every dashboard imports into Grafana. (That every metric they
//! name is emitted is checked against a live scrape in `stack.rs`.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Alert name → the lines of its rule, from a rules file.
fn alerts(rel: &str) -> BTreeMap<String, String> {
    let text = read(rel);
    let mut out = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("- alert:") || t.starts_with("- record:") || t.starts_with("- name:") {
            if let Some((name, body)) = current.take() {
                out.insert(name, body);
            }
            if let Some(name) = t.strip_prefix("- alert:") {
                current = Some((name.trim().to_owned(), String::new()));
            }
        } else if let Some((_, body)) = &mut current {
            body.push_str(line);
            body.push('\n');
        }
    }
    if let Some((name, body)) = current {
        out.insert(name, body);
    }
    out
}

#[test]
fn every_alert_is_labelled_annotated_documented_and_tested() {
    let runbook = read("docs/operations.md");
    let headings: BTreeSet<String> =
        runbook.lines().filter_map(|l| l.strip_prefix("## ")).map(|h| h.trim().to_ascii_lowercase()).collect();
    let mut tested: BTreeMap<String, (usize, usize)> = BTreeMap::new(); // alert -> (firing checks, silent checks)
    for file in ["alerts/tests/checkpoints_test.yml", "alerts/tests/streaming_test.yml", "alerts/tests/slo_test.yml"] {
        let json: String = read(file).lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n");
        let doc: Value = serde_json::from_str(&json).unwrap();
        for test in doc["tests"].as_array().unwrap() {
            for check in test["alert_rule_test"].as_array().unwrap() {
                let entry = tested.entry(check["alertname"].as_str().unwrap().to_owned()).or_default();
                if check["exp_alerts"].as_array().unwrap().is_empty() {
                    entry.1 += 1;
                } else {
                    entry.0 += 1;
                }
            }
        }
    }

    let mut all = BTreeSet::new();
    for file in ["alerts/checkpoints.yml", "alerts/streaming.yml", "alerts/slo.yml"] {
        for (name, body) in alerts(file) {
            for field in ["severity:", "summary:", "description:", "runbook_url:"] {
                assert!(body.contains(field), "{name} in {file} has no {field}");
            }
            assert!(body.contains("{{ $value"), "{name}'s description does not show the value");
            let anchor = format!("operations.md#{}", name.to_ascii_lowercase());
            assert!(body.contains(&anchor), "{name}'s runbook_url does not point at {anchor}");
            assert!(headings.contains(&name.to_ascii_lowercase()), "docs/operations.md has no section for {name}");
            let (firing, silent) = tested.get(&name).copied().unwrap_or_default();
            // trio(): one firing check, a pending check before `for`, just-below and no-traffic cases.
            assert!(firing >= 1 && silent >= 3, "{name}: {firing} firing and {silent} silent promtool checks");
            all.insert(name);
        }
    }
    for required in [
        "HighErrorRate",
        "ApproachingCapacity",
        "CapacityExceeded",
        "HighWriteLatencyP99",
        "StreamingQueueNearCapacity",
        "StreamingQueueAtCapacity",
        "StreamingWorkerDown",
        "StreamingWorkerImbalance",
        "StreamingObservationLatencyHigh",
        "StreamingRecallLatencyHigh",
        "StreamingBackpressureStorm",
        "StreamingBackpressureElevated",
        "StreamingRejectionsHigh",
        "StreamingBatchFailures",
        "StreamingLowThroughput",
        "StreamingExcessiveWorkStealing",
        "CheckpointAvailabilityErrorBudgetFastBurn",
        "CheckpointAvailabilityErrorBudgetSlowBurn",
        "ObservationLatencyErrorBudgetFastBurn",
    ] {
        assert!(all.contains(required), "missing alert {required}");
    }
    let streaming = read("alerts/streaming.yml");
    for record in [
        "streaming:observation_rate:1m",
        "streaming:queue_utilization:ratio",
        "streaming:worker_utilization:avg",
        "streaming:observation_latency:p99",
        "streaming:recall_latency:p99",
    ] {
        assert!(streaming.contains(&format!("- record: {record}")), "missing recording rule {record}");
    }
    assert!(tested.keys().all(|a| all.contains(a)), "a promtool test names an alert that does not exist");
}

fn threshold_values(panel: &Value) -> Vec<f64> {
    panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["value"].as_f64())
        .collect()
}

#[test]
fn dashboards_import_into_grafana() {
    for (file, uid, refresh) in [
        ("dashboards/checkpoint-writes.json", "hotmeter-checkpoint-writes", "5s"),
        ("dashboards/streaming-infrastructure.json", "hotmeter-streaming-infrastructure", "10s"),
        ("dashboards/checkpoint-migration.json", "hotmeter-checkpoint-migration", "5s"),
    ] {
        let d: Value = serde_json::from_str(&read(file)).unwrap();
        assert_eq!(d["uid"], uid, "{file}: stable uid");
        assert!(d["schemaVersion"].as_u64().unwrap() >= 36, "{file}: schemaVersion");
        assert_eq!(d["refresh"], refresh);
        let vars = d["templating"]["list"].as_array().unwrap();
        assert!(
            vars.iter().any(|v| v["type"] == "datasource" && v["query"] == "prometheus" && v["name"] == "datasource"),
            "{file}: a Prometheus datasource variable"
        );
        let instance = vars.iter().find(|v| v["name"] == "instance").unwrap_or_else(|| panic!("{file}: instance"));
        assert_eq!((instance["includeAll"].as_bool(), instance["allValue"].as_str()), (Some(true), Some(".*")));
        for p in d["panels"].as_array().unwrap() {
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"].as_str().unwrap();
                // Every metric selector is filtered by the variable.
                let metrics = expr.matches("streaming_").count() + expr.matches("checkpoint_").count();
                assert!(metrics > 0, "{file}: {expr}");
                assert_eq!(expr.matches(r#"instance=~"$instance""#).count(), metrics, "{file}: {expr}");
            }
        }
        let mut ids = BTreeSet::new();
        let mut cells: Vec<(String, u64, u64, u64, u64)> = Vec::new();
        for p in d["panels"].as_array().unwrap() {
            assert!(ids.insert(p["id"].as_u64().unwrap()), "{file}: duplicate panel id");
            let g = &p["gridPos"];
            let [h, w, x, y] =
                ["h", "w", "x", "y"].map(|k| g[k].as_u64().unwrap_or_else(|| panic!("{file}: gridPos.{k}")));
            assert!(x + w <= 24, "{file}: {} overflows the 24-column grid", p["title"]);
            cells.push((p["title"].as_str().unwrap().to_owned(), x, y, w, h));
            if p["type"] == "row" {
                continue;
            }
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{file}: {} uses the variable", p["title"]);
            let unit = p["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or_default();
            assert!(!unit.is_empty(), "{file}: {} has no unit", p["title"]);
            assert!(!p["targets"].as_array().unwrap().is_empty(), "{file}: {} has no query", p["title"]);
        }
        // No two panels overlap.
        for (i, a) in cells.iter().enumerate() {
            for b in &cells[i + 1..] {
                let overlap = a.1 < b.1 + b.3 && b.1 < a.1 + a.3 && a.2 < b.2 + b.4 && b.2 < a.2 + a.4;
                assert!(!overlap, "{file}: {} overlaps {}", a.0, b.0);
            }
        }
    }
    // The alert thresholds are drawn where the issue asks for them.
    let d: Value = serde_json::from_str(&read("dashboards/checkpoint-writes.json")).unwrap();
    let panel = |title: &str| d["panels"].as_array().unwrap().iter().find(|p| p["title"] == title).cloned().unwrap();
    assert_eq!(threshold_values(&panel("Checkpoint writes/s")), [80.0, 100.0]);
    assert_eq!(threshold_values(&panel("Write error rate %")), [1.0]);
    assert_eq!(threshold_values(&panel("P99 write latency (ms)")), [100.0]);
    assert_eq!(threshold_values(&panel("P99 write latency (native histogram)")), [100.0]);
    for title in
        ["Checkpoint writes/s", "Write error rate %", "P99 write latency (ms)", "P99 write latency (native histogram)"]
    {
        assert_eq!(
            panel(title)["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"],
            "line+area",
            "{title}"
        );
    }
    assert_eq!(panel("Write error rate %")["fieldConfig"]["defaults"]["unit"], "percent");
    assert_eq!(panel("P99 write latency (ms)")["fieldConfig"]["defaults"]["unit"], "ms");
    assert_eq!(panel("P99 write latency (native histogram)")["fieldConfig"]["defaults"]["unit"], "ms");
    assert_eq!(panel("Store file size")["fieldConfig"]["defaults"]["unit"], "bytes");

    let s: Value = serde_json::from_str(&read("dashboards/streaming-infrastructure.json")).unwrap();
    let titles: BTreeSet<&str> = s["panels"].as_array().unwrap().iter().filter_map(|p| p["title"].as_str()).collect();
    for t in [
        "Observations/s",
        "Queue depth",
        "Active sessions",
        "Observation rate by memory space",
        "Queue depth by priority",
        "Worker utilisation",
        "Observation latency (enqueue to processed)",
        "Backpressure events",
        "Backpressure state",
        "Recall latency",
        "Batch processing and work stealing",
        "Batch size distribution",
        "Error rates",
    ] {
        assert!(titles.contains(t), "streaming dashboard lacks {t:?}");
    }
}
