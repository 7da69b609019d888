//! The real loop, end to end: the demo with injected write failures, a real
//! Prometheus scraping it and evaluating a test copy of `alerts/*.yml`
//! (only `for:` shortened), a real Alertmanager, and a webhook receiver
//! (the testkit's scripted one). A second demo with no injected failures runs beside it,
//! scraped by a second Prometheus, and must not alert. A third Prometheus,
//! with `--enable-feature=native-histograms`, scrapes the faulty demo over
//! protobuf for the dashboard panels that read native buckets (see
//! [`Needs`]). Everything listens on loopback; every process is killed when
//! the test ends, pass or fail.
//!
//! Needs Debian's `prometheus` and `prometheus-alertmanager` (the test
//! command installs them). Without them this test fails and says so, unless
//! `HOTMETER_SKIP_STACK=1`.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{DEMO, Demo};
use hotmeter_checkpoint::metrics::CHECKPOINT_WRITE_BUCKETS;
use hotmeter_testkit::promql::{query, scalar};
use hotmeter_testkit::receiver::{self, Received};
use hotmeter_testkit::{Alertmanager, Prometheus, http, wait_for, which};
use serde_json::Value;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
/// Injected failure rate (the 2%), and how far the measured rate
/// may stray from it: at ~100 writes/s over >= 30 s the binomial standard
/// deviation is under 0.0026, so 0.01 is about four standard deviations.
const ERROR_RATE: f64 = 0.02;
const ERROR_TOLERANCE: f64 = 0.01;
/// The title suffix that marks a panel reading native-histogram buckets.
const NATIVE_PANEL: &str = "(native histogram)";

/// Starts a demo with `error_rate` injected; returns it and its metrics
/// address once it serves.
fn start_demo(error_rate: f64) -> (Demo, String) {
    let rate = error_rate.to_string();
    let mut demo = Demo::start(&["--rate", "100", "--duration", "10m", "--decide-every", "0", "--error-rate", &rate]);
    let addr = demo.addr();
    (demo, addr)
}

/// The test copy of the rules: identical expressions, `for:` shortened to 5 s.
fn test_rules(dir: &Path) -> Vec<PathBuf> {
    ["checkpoints.yml", "streaming.yml", "slo.yml"]
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(Path::new(ROOT).join("alerts").join(f)).unwrap();
            let short: String = text
                .lines()
                .map(|l| {
                    if l.trim_start().starts_with("for:") {
                        l.split("for:").next().unwrap().to_owned() + "for: 5s"
                    } else {
                        l.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            assert!(short.contains("for: 5s"), "{f} has for: clauses");
            let path = dir.join(f);
            std::fs::write(&path, short).unwrap();
            path
        })
        .collect()
}

/// Which Prometheus a dashboard panel's queries need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Needs {
    /// Series a text scrape carries (counters, gauges, classic `_bucket`s):
    /// the Prometheus without native histograms, as the alert rules need.
    Text,
    /// A native histogram's own buckets (`histogram_quantile` over the bare
    /// histogram name): only a Prometheus with
    /// `--enable-feature=native-histograms` has them, and Debian's 2.42 then
    /// drops that histogram's classic `_bucket` series. Marked by
    /// [`NATIVE_PANEL`] at the end of the panel title.
    Native,
}

/// A Prometheus scraping `target` every second, keeping seven days; with
/// `am`, evaluating `rules` and alerting there; with `native`, ingesting
/// native histograms (over protobuf). Its files are `{name}.*` in `dir`.
fn start_prometheus(
    dir: &Path,
    name: &str,
    target: &str,
    am: Option<&str>,
    rules: &[PathBuf],
    native: bool,
) -> Prometheus {
    let rule_list: Vec<String> = rules.iter().map(|r| format!("  - {}", r.display())).collect();
    let alerting = am.map_or(String::new(), |am| {
        format!(
            "rule_files:\n{}\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{am}']\n",
            rule_list.join("\n")
        )
    });
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  external_labels:\n    stack: {name}\n\
         {alerting}\
         scrape_configs:\n  - job_name: hotmeter-demo\n    static_configs:\n      - targets: ['{target}']\n",
    );
    let prometheus = Prometheus::builder(name)
        .config(config)
        .dir(dir)
        .flag("--storage.tsdb.retention.time=7d")
        .feature("exemplar-storage");
    if native { prometheus.feature("native-histograms") } else { prometheus }.start()
}

/// Every `expr` of every panel of both dashboards: (file, panel title,
/// expr, which Prometheus it needs).
fn dashboard_exprs() -> Vec<(String, String, String, Needs)> {
    let mut out = Vec::new();
    for file in ["checkpoint-writes.json", "streaming-infrastructure.json"] {
        let text = std::fs::read_to_string(Path::new(ROOT).join("dashboards").join(file)).unwrap();
        let board: Value = serde_json::from_str(&text).unwrap();
        for panel in board["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                // The `instance` variable set to All, as Grafana sends it.
                let expr = target["expr"].as_str().unwrap().replace("$instance", ".*");
                let title = panel["title"].as_str().unwrap().to_owned();
                let needs = if title.ends_with(NATIVE_PANEL) { Needs::Native } else { Needs::Text };
                out.push((file.to_owned(), title, expr, needs));
            }
        }
    }
    out
}

/// Metric names (not recording rules) a PromQL text refers to.
fn metric_names(promql: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = promql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts = |p: &str| {
            promql[i..].starts_with(p)
                && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_' || bytes[i - 1] == b':'))
        };
        if starts("streaming_") || starts("checkpoint_") {
            let end = promql[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .map_or(promql.len(), |e| i + e);
            names.insert(promql[i..end].to_owned());
            i = end;
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn a_failing_write_becomes_a_delivered_alert() {
    if std::env::var_os("HOTMETER_SKIP_STACK").is_some() {
        eprintln!("HOTMETER_SKIP_STACK set: skipping the Prometheus/Alertmanager test");
        return;
    }
    for bin in ["prometheus", "prometheus-alertmanager"] {
        let found = which(bin).is_some();
        assert!(
            found,
            "`{bin}` not found: install Debian's prometheus and prometheus-alertmanager, or set HOTMETER_SKIP_STACK=1"
        );
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (hook, notifications) = receiver::scripted(vec![(200, "")]);
    // The webhook's notifications, as text.
    let notified = || notifications.lock().unwrap().iter().map(Received::text).collect::<Vec<_>>();

    // Alertmanager: loopback only, clustering off, fast grouping.
    let alertmanager = Alertmanager::start(&format!(
        "route:\n  receiver: hook\n  group_by: [alertname, stack]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
         receivers:\n  - name: hook\n    webhook_configs:\n      - url: http://{hook}/hook\n"
    ));
    let am = alertmanager.addr();

    let (_faulty, faulty_demo) = start_demo(ERROR_RATE);
    let (_clean, clean_demo) = start_demo(0.0);
    let rules = test_rules(dir.path());
    let faulty_prometheus = start_prometheus(dir.path(), "faulty", &faulty_demo, Some(am), &rules, false);
    let clean_prometheus = start_prometheus(dir.path(), "clean", &clean_demo, Some(am), &rules, false);
    // Native histograms, same demo as `prom`: no rules (they read `_bucket`s).
    let native_prometheus = start_prometheus(dir.path(), "native", &faulty_demo, None, &[], true);
    let (prom, clean_prom, native_prom) =
        (faulty_prometheus.addr().to_owned(), clean_prometheus.addr().to_owned(), native_prometheus.addr().to_owned());

    // The target is up.
    for p in [&prom, &clean_prom, &native_prom] {
        wait_for("the demo target up", Duration::from_secs(60), || {
            (scalar(p, "up{job=\"hotmeter-demo\"}") == Some(1.0)).then_some(())
        });
    }

    // Every metric any rule or panel names is one the demo really emits.
    let scrape = http::get(&faulty_demo, "/metrics").unwrap().body;
    let emitted: BTreeSet<&str> =
        scrape.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.split(' ').next()).collect();
    let mut referenced = BTreeSet::new();
    for f in ["checkpoints.yml", "streaming.yml", "slo.yml"] {
        referenced.extend(metric_names(&std::fs::read_to_string(Path::new(ROOT).join("alerts").join(f)).unwrap()));
    }
    for (_, _, expr, _) in dashboard_exprs() {
        referenced.extend(metric_names(&expr));
    }
    assert!(referenced.len() >= 15, "found {referenced:?}");
    // A migration's metrics exist once a migration runs: tests/migration.rs
    // checks those names against a migrating demo.
    for name in referenced.iter().filter(|n| !n.starts_with("checkpoint_migration_")) {
        let family = ["_bucket", "_count", "_sum"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        assert!(emitted.contains(family), "{name} is used by a rule or panel but the demo does not emit {family}");
    }

    // HighErrorRate goes pending, then firing (polled every 250 ms: `for` is 5 s).
    let state = |p: &str| -> Option<String> {
        query(p, "ALERTS{alertname=\"HighErrorRate\"}")
            .iter()
            .filter_map(|s| s["metric"]["alertstate"].as_str().map(str::to_owned))
            .max() // "pending" > "firing" alphabetically: prefer reporting pending while both could show
    };
    wait_for("HighErrorRate pending", Duration::from_secs(90), || {
        (state(&prom).as_deref() == Some("pending")).then_some(())
    });
    wait_for("HighErrorRate firing", Duration::from_secs(60), || {
        (state(&prom).as_deref() == Some("firing")).then_some(())
    });
    // ... and Alertmanager delivers it to the webhook.
    let delivered = wait_for("the webhook notified of HighErrorRate", Duration::from_secs(60), || {
        notified().into_iter().find(|b| b.contains("\"HighErrorRate\"") && b.contains("\"faulty\""))
    });
    let delivered: Value = serde_json::from_str(&delivered).unwrap();
    let alert =
        delivered["alerts"].as_array().unwrap().iter().find(|a| a["labels"]["alertname"] == "HighErrorRate").unwrap();
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["labels"]["severity"], "warning");
    assert!(alert["annotations"]["runbook_url"].as_str().unwrap().ends_with("operations.md#higherrorrate"));

    // Let rates settle over >= 20 s of data, then every panel expression
    // returns data on the Prometheus it needs.
    std::thread::sleep(Duration::from_secs(20).saturating_sub(started.elapsed().min(Duration::from_secs(20))));
    let panels = dashboard_exprs();
    assert!(panels.iter().any(|p| p.3 == Needs::Native), "a native-histogram panel");
    for (file, title, expr, needs) in &panels {
        let server = match needs {
            Needs::Text => &prom,
            Needs::Native => &native_prom,
        };
        let hint = match needs {
            Needs::Text => format!(" (a panel reading native buckets must end its title with {NATIVE_PANEL:?})"),
            Needs::Native => " (from the Prometheus with native histograms)".to_owned(),
        };
        wait_for(&format!("data for {file} / {title}: {expr}{hint}"), Duration::from_secs(30), || {
            (!query(server, expr).is_empty()).then_some(())
        });
        if *needs == Needs::Native {
            // The marking matters: a text scrape carries no native buckets.
            assert!(query(&prom, expr).is_empty(), "{title} has data without native histograms: mark it Text");
        }
    }

    // The native P99 panel agrees, loosely, with the classic one on the
    // same demo. They are different estimators: the classic one knows only
    // which of CHECKPOINT_WRITE_BUCKETS holds the 99th percentile and
    // interpolates linearly inside it (from 0 in the first, 1 ms wide), the
    // native one locates it within a schema-3 bucket, a factor 2^(1/8)
    // (about 9%) wide. So the native estimate must lie in the classic
    // bucket that holds the classic estimate, widened by one native bucket
    // each side (a native bucket can straddle a classic bound). Both are
    // evaluated at one instant; their windows (1m, 5m) both reach back to
    // about the start of this steady 100 writes/s run.
    let p99_expr = |title: &str| {
        panels
            .iter()
            .find(|p| p.1 == title && p.2.contains("histogram_quantile(0.99,"))
            .map(|p| p.2.clone())
            .unwrap_or_else(|| panic!("a P99 query in panel {title:?}"))
    };
    let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64() - 1.0;
    let first_at = |prom: &str, q: &str| -> Option<f64> {
        let r = http::get_with(prom, "/api/v1/query", &[("query", q), ("time", &at.to_string())]).ok()?;
        let v: Value = serde_json::from_str(&r.body).ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    };
    let classic_ms = first_at(&prom, &p99_expr("P99 write latency (ms)")).expect("a classic P99");
    let native_ms =
        first_at(&native_prom, &p99_expr(&format!("P99 write latency {NATIVE_PANEL}"))).expect("a native P99");
    let bounds_ms: Vec<f64> = CHECKPOINT_WRITE_BUCKETS.iter().map(|b| b * 1000.0).collect();
    let hi = bounds_ms.iter().copied().find(|&b| b >= classic_ms).unwrap_or(f64::INFINITY);
    let lo = bounds_ms.iter().copied().rfind(|&b| b < classic_ms).unwrap_or(0.0);
    let native_width = 2f64.powf(1.0 / 8.0);
    eprintln!("P99 write latency: classic {classic_ms:.3} ms (bucket ({lo}, {hi}] ms), native {native_ms:.3} ms");
    assert!(
        native_ms.is_finite() && lo / native_width <= native_ms && native_ms <= hi * native_width,
        "native P99 {native_ms} ms outside the classic P99 {classic_ms} ms's bucket ({lo}, {hi}] ms widened by {native_width}"
    );

    // The generated SLO rules evaluate against real data (their `le`
    // strings match the exposition's): every 5m error ratio has a sample,
    // and checkpoint availability reads the injected failure rate.
    for slo in ["checkpoint_availability", "checkpoint_write_latency", "observation_latency"] {
        wait_for(&format!("slo:{slo}:error_ratio:rate5m"), Duration::from_secs(30), || {
            scalar(&prom, &format!("slo:{slo}:error_ratio:rate5m")).filter(|v| v.is_finite())
        });
    }
    let availability_errors = scalar(&prom, "slo:checkpoint_availability:error_ratio:rate5m").unwrap();
    assert!((availability_errors - ERROR_RATE).abs() <= ERROR_TOLERANCE, "{availability_errors}");
    assert!(scalar(&prom, "slo:checkpoint_write_latency:error_ratio:rate5m").unwrap() < 0.5, "writes are fast here");

    // The error-rate query reads the injected rate, within the stated tolerance.
    let err = scalar(
        &prom,
        "sum(rate(checkpoint_writes_total{status=\"error\"}[5m])) / (sum(rate(checkpoint_writes_total[5m])) > 0)",
    )
    .expect("an error ratio");
    assert!((err - ERROR_RATE).abs() <= ERROR_TOLERANCE, "measured error ratio {err}, injected {ERROR_RATE}");

    // The write-rate query agrees with the demo's own count: Prometheus'
    // latest total equals what the demo served at that scrape, so it lies
    // between two direct reads taken around the query.
    let direct = |addr: &str| -> f64 {
        let body = http::get(addr, "/metrics").unwrap().body;
        body.lines()
            .filter(|l| l.starts_with("checkpoint_writes_total{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    let before = direct(&faulty_demo);
    std::thread::sleep(Duration::from_secs(2)); // at least one scrape after `before`
    let scraped = scalar(&prom, "sum(checkpoint_writes_total)").unwrap();
    let after = direct(&faulty_demo);
    assert!(before <= scraped && scraped <= after, "Prometheus total {scraped} outside the demo's [{before}, {after}]");
    // And the rate Prometheus computes matches the demo's own rate over a window.
    let window = 10.0;
    let t0 = direct(&faulty_demo);
    std::thread::sleep(Duration::from_secs_f64(window));
    let own_rate = (direct(&faulty_demo) - t0) / window;
    let prom_rate = scalar(&prom, "sum(rate(checkpoint_writes_total[10s]))").unwrap();
    assert!((prom_rate - own_rate).abs() <= 0.15 * own_rate, "Prometheus {prom_rate}/s vs the demo's {own_rate}/s");

    // With no injected failures, nothing fires: by now the clean stack has
    // evaluated the rules for far longer than `for`.
    assert!(started.elapsed() > Duration::from_secs(20));
    assert_eq!(state(&clean_prom), None, "HighErrorRate must not even be pending without failures");
    assert_eq!(scalar(&clean_prom, "sum(checkpoint_writes_total{status=\"error\"})"), Some(0.0));
    assert!(scalar(&clean_prom, "sum(checkpoint_writes_total)").unwrap() > 100.0, "the clean demo wrote");
    let clean_notified = notified().iter().any(|b| b.contains("\"HighErrorRate\"") && b.contains("\"clean\""));
    assert!(!clean_notified, "the clean stack must not notify HighErrorRate");

    // The migration decision, from Prometheus: the faulty demo must migrate
    // for its write errors; the clean one (100 writes/s) plans a migration
    // for throughput, with no error reason; a metric prefix nobody exports
    // is "no data", an error, never a verdict.
    let decide = |url: &str, extra: &[&str]| {
        let out = Command::new(DEMO)
            .args(["decide", "--source", "prometheus", "--prometheus", &format!("http://{url}"), "--window", "1m"])
            .arg("--decision-log")
            .arg(dir.path().join("decisions.jsonl"))
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = decide(&prom, &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("Decision: MIGRATE NOW") && out.contains("MIGRATE NOW - Write errors >1%"), "{out}");
    let (code, out, err) = decide(&clean_prom, &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(!out.contains("Write errors"), "{out}");
    assert!(out.contains("Error rate: 0.00%"), "{out}");
    let (code, out, err) = decide(&clean_prom, &["--namespace", "nosuch"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("no data"), "{err}");
    let logged = std::fs::read_to_string(dir.path().join("decisions.jsonl")).unwrap();
    assert_eq!(logged.lines().count(), 2, "two decisions logged, the failed one not");
    let first: Value = serde_json::from_str(logged.lines().next().unwrap()).unwrap();
    assert_eq!((first["source"].as_str(), first["verdict"].as_str()), (Some("prometheus"), Some("MIGRATE NOW")));

    // Exemplars: Prometheus scraped OpenMetrics and stored the trace ids the
    // demo attached to checkpoint write latencies.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let exemplars = wait_for("exemplars of checkpoint_write_duration_seconds", Duration::from_secs(30), || {
        let (start, end) = ((now - 600).to_string(), (now + 60).to_string());
        let query = [("query", "checkpoint_write_duration_seconds_bucket"), ("start", &start), ("end", &end)];
        let (status, body) =
            http::get_with(&prom, "/api/v1/query_exemplars", &query).map(|r| (r.status, r.body)).ok()?;
        let v: Value = serde_json::from_str(&body).ok()?;
        let found: Vec<Value> = v["data"]
            .as_array()?
            .iter()
            .flat_map(|series| series["exemplars"].as_array().cloned().unwrap_or_default())
            .collect();
        (status == 200 && !found.is_empty()).then_some(found)
    });
    let trace = exemplars[0]["labels"]["trace_id"].as_str().expect("a trace_id label");
    assert_eq!(trace.len(), 16, "the demo's 16-hex-digit trace ids: {trace}");
    assert!(trace.chars().all(|c| c.is_ascii_hexdigit()), "{trace}");

    // The running Prometheus keeps seven days of history.
    let flags = http::get(&prom, "/api/v1/status/flags").unwrap().body;
    let flags: Value = serde_json::from_str(&flags).unwrap();
    // Prometheus prints durations in its largest whole unit: 7d reads back as 1w.
    let retention = flags["data"]["storage.tsdb.retention.time"].as_str().unwrap_or_default().to_owned();
    assert!(["7d", "1w", "168h"].contains(&retention.as_str()), "retention flag {retention:?}");

    eprintln!("stack test took {:.1} s", started.elapsed().as_secs_f64());
}
