//! Runs the real `hotmeter-demo` binary on an ephemeral loopback port,
//! scrapes `/metrics` over HTTP while it runs, and checks every metric the
//! streaming issue names, with plausible values; then checks the clean stop.

mod common;

use std::collections::HashMap;
use std::process::Command;

use common::Demo;
use hotmeter_testkit::{free_port, http};

const DEMO: &str = common::DEMO;

fn scrape(addr: &str) -> String {
    let r = http::get(addr, "/metrics").expect("GET /metrics from the demo's exporter");
    assert_eq!((r.version.as_str(), r.status), ("HTTP/1.1", 200), "{r:?}");
    assert!(r.content_type.contains("text/plain; version=0.0.4"), "{r:?}");
    assert!(!r.chunked, "{r:?}");
    r.body
}

/// `name{labels}` → value, for every sample line.
fn samples(body: &str) -> HashMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("sample line");
            (series.to_owned(), value.parse::<f64>().unwrap_or_else(|_| panic!("value in {l:?}")))
        })
        .collect()
}

/// Sum of every series of `name` (exact name, any labels).
fn sum(samples: &HashMap<String, f64>, name: &str) -> f64 {
    samples.iter().filter(|(k, _)| k.as_str() == name || k.starts_with(&format!("{name}{{"))).map(|(_, v)| v).sum()
}

fn get(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples.get(series).unwrap_or_else(|| panic!("missing series {series}"))
}

#[test]
fn the_demo_serves_every_streaming_metric_with_plausible_values() {
    let mut demo = Demo::start(&["--duration", "5", "--rate", "200", "--error-rate", "0.05", "--workers", "3"]);
    let addr = demo.addr();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    // Let a few status lines go by, so utilisation windows have closed.
    demo.wait_for("[    2s]");
    let body = scrape(&addr);
    let s = samples(&body);

    // Every metric the issue names is there, with its labels.
    for name in [
        "streaming_observations_total",
        "streaming_observations_rejected_total",
        "streaming_backpressure_activations_total",
        "streaming_batches_processed_total",
        "streaming_batch_failures_total",
        "streaming_work_stolen_total",
        "streaming_queue_depth",
        "streaming_worker_utilization",
        "streaming_active_sessions",
        "streaming_backpressure_state",
        "streaming_queue_memory_bytes",
        "streaming_observation_latency_seconds",
        "streaming_recall_latency_seconds",
        "streaming_batch_size",
        "streaming_queue_wait_time_seconds",
        "streaming_removed_space_uses_total",
        "checkpoint_writes_total",
        "checkpoint_write_duration_seconds",
        "checkpoint_store_file_size_bytes",
    ] {
        assert!(body.contains(&format!("# TYPE {name} ")), "no {name} in:\n{body}");
    }

    // Plausible values: traffic flowed, about 5% of writes failed, and the
    // gauges are in range.
    let accepted = sum(&s, "streaming_observations_total");
    assert!(accepted > 100.0, "accepted {accepted}");
    for space in ["tenant-a", "tenant-b", "tenant-c"] {
        assert!(
            get(&s, &format!("streaming_observations_total{{memory_space=\"{space}\",priority=\"normal\"}}")) > 0.0
        );
        let state = get(&s, &format!("streaming_backpressure_state{{memory_space=\"{space}\"}}"));
        assert!((0.0..=3.0).contains(&state));
        assert!(get(&s, &format!("streaming_observation_latency_seconds_count{{memory_space=\"{space}\"}}")) > 0.0);
        assert!(get(&s, &format!("streaming_recall_latency_seconds_count{{memory_space=\"{space}\"}}")) > 0.0);
    }
    let ok = get(&s, "checkpoint_writes_total{status=\"success\"}");
    let err = get(&s, "checkpoint_writes_total{status=\"error\"}");
    let ratio = err / (ok + err);
    assert!(ok > 100.0 && (0.005..0.15).contains(&ratio), "ok {ok}, err {err}");
    // Every write is timed, failed ones too. The pipeline runs during the
    // scrape, which reads the duration family before `checkpoint_writes_total`:
    // writes that finish in between are in one and not the other, so the two
    // agree to within a few writes here (exactly when the store is quiet:
    // `hotmeter-checkpoint`'s tests).
    let timed = get(&s, "checkpoint_write_duration_seconds_count");
    assert!((timed - (ok + err)).abs() <= 5.0, "timed {timed}, written {}", ok + err);
    for le in ["0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "+Inf"] {
        get(&s, &format!("checkpoint_write_duration_seconds_bucket{{le=\"{le}\"}}"));
    }
    assert!(get(&s, "checkpoint_store_file_size_bytes") > 0.0);
    assert_eq!(get(&s, "streaming_active_sessions"), 3.0);
    assert!(get(&s, "streaming_queue_memory_bytes") >= 0.0);
    for p in ["high", "normal", "low"] {
        let depth = get(&s, &format!("streaming_queue_depth{{priority=\"{p}\"}}"));
        assert!((0.0..=4096.0).contains(&depth));
        assert!(get(&s, &format!("streaming_queue_capacity{{priority=\"{p}\"}}")) > 0.0);
        assert!(get(&s, &format!("streaming_queue_wait_time_seconds_count{{priority=\"{p}\"}}")) > 0.0);
    }
    let batches = sum(&s, "streaming_batches_processed_total");
    assert!(batches > 0.0);
    assert_eq!(sum(&s, "streaming_batch_size_count"), batches);
    // Every failed checkpoint write failed its batch, and nothing else did.
    assert_eq!(sum(&s, "streaming_batch_failures_total"), err);
    for w in ["0", "1", "2"] {
        let u = get(&s, &format!("streaming_worker_utilization{{worker_id=\"{w}\"}}"));
        assert!((0.0..=100.0).contains(&u), "worker {w} utilisation {u}");
        assert_eq!(get(&s, &format!("streaming_worker_up{{worker_id=\"{w}\"}}")), 1.0);
    }
    assert!(sum(&s, "streaming_work_stolen_total") >= 0.0);
    assert!(sum(&s, "streaming_backpressure_activations_total") >= 0.0);

    // promtool accepts the exposition with zero findings, lints included.
    match hotmeter_exporter::promtool::check_metrics(body.as_bytes()) {
        Ok(()) => {}
        Err(hotmeter_exporter::promtool::PromtoolError::NotInstalled)
            if std::env::var_os("HOTMETER_SKIP_PROMTOOL").is_some() => {}
        Err(e) => panic!("promtool check metrics found problems in the demo's /metrics: {e}"),
    }

    // The demo stops by itself, drains, and accounts for everything.
    let status = demo.wait();
    assert!(status.success(), "exit {status}; output:\n{}", demo.seen().join("\n"));
    let out = demo.seen().join("\n");
    assert!(out.contains("all accounted for"), "{out}");
    let status_lines = demo.seen().iter().filter(|l| l.contains("writes/s") && l.starts_with('[')).count();
    assert!(status_lines >= 4, "one status line per second:\n{out}");
}

#[test]
fn a_namespace_prefixes_every_pipeline_metric() {
    let mut demo = Demo::start(&["--duration", "2", "--namespace", "engram"]);
    let addr = demo.addr();
    demo.wait_for("[    1s]");
    let body = scrape(&addr);
    assert!(body.contains("# TYPE engram_streaming_observations_total counter"), "{body}");
    assert!(body.contains("# TYPE engram_checkpoint_writes_total counter"), "{body}");
    assert!(!body.contains("\nstreaming_"), "an unprefixed pipeline metric:\n{body}");
    assert!(demo.wait().success());
}

#[test]
fn bad_options_exit_non_zero_with_a_message_and_help_lists_defaults() {
    for args in [&["--rate", "0"][..], &["--workers", "x"], &["--error-rate", "2"], &["--bogus"], &["--listen"]] {
        let out = Command::new(DEMO).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("hotmeter-demo: ") && err.contains("--help"), "{args:?}: {err}");
    }
    let out = Command::new(DEMO).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for option in ["--rate", "--workers", "--duration", "--db", "--error-rate", "--listen", "--namespace", "--sync"] {
        let line = help.lines().find(|l| l.trim_start().starts_with(option)).unwrap_or_else(|| panic!("{option}"));
        assert!(line.contains("default"), "{option} has no default in: {line}");
    }
    // An address already in use is a clear runtime error, not a panic.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(DEMO)
        .args(["--duration", "1", "--db", dir.path().join("x.db").to_str().unwrap()])
        .arg("--listen")
        .arg(taken.local_addr().unwrap().to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot serve metrics"));
}

#[test]
fn decide_in_process_with_two_percent_errors_says_migrate_now_and_logs_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.jsonl");
    let out = Command::new(DEMO)
        .args(["decide", "--rate", "500", "--error-rate", "0.02", "--window", "5"])
        .arg("--db")
        .arg(dir.path().join("d.db"))
        .arg("--decision-log")
        .arg(&log)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let inputs = stdout.lines().find(|l| l.starts_with("Error rate: ")).expect("the inputs line");
    assert!(
        inputs.contains("Throughput: ") && inputs.contains("writes/sec") && inputs.contains("File size: "),
        "{inputs}"
    );
    assert!(stdout.contains("Decision: MIGRATE NOW"), "{stdout}");
    assert!(stdout.contains("MIGRATE NOW - Write errors >1%"), "{stdout}");
    assert!(stdout.contains("Justification: "), "{stdout}");
    let entry: serde_json::Value = serde_json::from_str(std::fs::read_to_string(&log).unwrap().trim()).unwrap();
    assert_eq!(entry["source"], "in-process");
    assert_eq!(entry["verdict"], "MIGRATE NOW");
    let pct = entry["inputs"]["error_rate_percent"].as_f64().unwrap();
    assert!((1.0..3.0).contains(&pct), "measured {pct}% with 2% injected");

    // A Prometheus that is down is an error, exit 1, nothing logged.
    let port = free_port();
    let out = Command::new(DEMO)
        .args(["decide", "--source", "prometheus", "--prometheus", &format!("http://127.0.0.1:{port}")])
        .arg("--decision-log")
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach Prometheus"));
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1);
}

#[test]
fn slos_are_served_and_failed_checkpoints_leave_incomplete_traces() {
    let mut demo = Demo::start(&["--duration", "3", "--rate", "200", "--error-rate", "0.5", "--decide-every", "0"]);
    let addr = demo.addr();
    demo.wait_for("[    2s]");
    let line = demo.seen().last().unwrap().clone();
    assert!(line.contains("| SLOs ") && line.contains(" met"), "{line}");

    // GET /slos: the report as JSON, from the same counters.
    let r = http::get(&addr, "/slos").expect("GET /slos");
    assert!(r.status == 200 && r.content_type.contains("application/json"), "{r:?}");
    let report: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(report["total"], 3);
    assert_eq!(report["met"].as_u64().unwrap() + report["violated"].as_u64().unwrap(), 3);
    let slos = report["slos"].as_array().unwrap();
    let availability = slos.iter().find(|s| s["name"] == "checkpoint-availability").unwrap();
    // Half the writes fail: far below 99.5%, budget overspent.
    assert_eq!(availability["met"], false, "{availability}");
    assert!(availability["sli"].as_f64().unwrap() < 0.8);
    assert!(availability["error_budget_remaining"].as_f64().unwrap() < 0.0);
    assert!(slos.iter().all(|s| s["events"].as_f64().unwrap() > 0.0), "{slos:?}");

    // Traces: only the checkpoint stage goes missing.
    let s = samples(&scrape(&addr));
    assert!(get(&s, "trace_incomplete_total{missing_stage=\"checkpoint_write\"}") > 0.0);
    for stage in ["generate", "enqueue", "process"] {
        assert_eq!(get(&s, &format!("trace_incomplete_total{{missing_stage=\"{stage}\"}}")), 0.0, "{stage}");
    }
    assert!(demo.wait().success());
}

#[test]
fn slo_rules_file_is_generated_from_the_definitions() {
    let out = Command::new(DEMO).arg("slo-rules").output().unwrap();
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).unwrap();
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../alerts/slo.yml")).unwrap();
    assert!(
        generated == committed,
        "alerts/slo.yml is stale: run `cargo run -p hotmeter-demo -- slo-rules > alerts/slo.yml`"
    );
}

/// `hotmeter-demo | head -1`: once its stdout is closed the demo stops as on
/// Ctrl-C (drains, exits 0) instead of panicking inside its reporter and
/// waiting for ever on its generator threads (found by review).
#[test]
fn a_closed_stdout_stops_the_demo_cleanly() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(DEMO)
        .args(["--duration", "60", "--listen", "127.0.0.1:0", "--decide-every", "0", "--db"])
        .arg(dir.path().join("demo.db"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.starts_with("serving http://"), "{first}");
    // The reader (and with it the pipe) is gone here, as behind `| head -1`.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the demo kept running for 30 s after its stdout closed (asked for 60 s)");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `--tenant-churn` with `--idle-timeout`: memory spaces appear, fall
/// silent, are retired by the pool for idleness, linger with their final
/// values, and leave `/metrics`; the status line and the summary say so,
/// and the accounting still holds.
#[test]
fn churning_memory_spaces_come_and_go_in_metrics() {
    let mut demo = Demo::start(&[
        "--duration",
        "8",
        "--rate",
        "400",
        "--workers",
        "2",
        "--tenant-churn",
        "4",
        "--idle-timeout",
        "0.5s",
        "--retired-linger",
        "1s",
    ]);
    let addr = demo.addr();
    demo.wait_for("[    1s]");
    let churn_names = |body: &str| -> std::collections::BTreeSet<String> {
        body.lines()
            .filter(|l| l.starts_with("streaming_backpressure_state{memory_space=\"churn-"))
            .filter_map(|l| l.split('"').nth(1).map(str::to_owned))
            .collect()
    };
    let mut scrapes = Vec::new();
    let t = std::time::Instant::now();
    while t.elapsed() < std::time::Duration::from_secs(5) {
        scrapes.push(churn_names(&scrape(&addr)));
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let ever: std::collections::BTreeSet<&String> = scrapes.iter().flatten().collect();
    let (first, last) = (&scrapes[0], scrapes.last().unwrap());
    // About 4 appear a second, each in /metrics for about 1 s of traffic,
    // 0.5 s idle and 1 s of linger: 10 to 12 at a time, never all of them.
    assert!(ever.len() >= 15, "{} churning spaces seen: {ever:?}", ever.len());
    assert!(scrapes.iter().all(|s| s.len() <= 20), "{scrapes:?}");
    assert!(first.iter().any(|n| !last.contains(n)), "early spaces left: {first:?} then {last:?}");
    assert!(last.iter().any(|n| !first.contains(n)), "new spaces came: {first:?} then {last:?}");

    let status = demo.wait();
    let out = demo.seen().join("\n");
    assert!(status.success(), "exit {status}; output:\n{out}");
    assert!(out.contains("all accounted for"), "{out}");
    assert!(out.contains("tenant churn: a memory space appears every 0.25 s"), "{out}");
    let spaces_line = demo.seen().iter().find(|l| l.contains("memory spaces ")).unwrap_or_else(|| panic!("{out}"));
    let number_before = |word: &str| -> u64 {
        let (head, _) = spaces_line.split_once(word).unwrap_or_else(|| panic!("{word} in {spaces_line}"));
        head.split_whitespace().last().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{spaces_line}"))
    };
    assert!(number_before(" appeared") >= 25, "{spaces_line}");
    assert!(number_before(" removed") >= 15, "{spaces_line}");
    assert_eq!(number_before(" refused"), 0, "{spaces_line}");
    let status_line = demo.seen().iter().find(|l| l.starts_with("[    3s]")).unwrap_or_else(|| panic!("{out}"));
    assert!(status_line.contains("| spaces "), "{status_line}");
}
