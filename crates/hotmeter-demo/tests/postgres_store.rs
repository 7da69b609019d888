//! The demo on PostgreSQL (issue #25): `--store postgres://...` into a
//! throwaway cluster of the test's own; every acknowledged checkpoint is a
//! row, the same metrics as on SQLite with `checkpoint_store_info` saying
//! which database, and a URL's password never printed.

mod common;

use common::{Demo, summary_writes};
use hotmeter_testkit::{Postgres, http};

#[test]
fn the_demo_writes_its_checkpoints_to_postgres() {
    let pg = Postgres::start();
    let url = pg.url();
    let mut demo = Demo::start_with_store(&[
        "--duration",
        "4",
        "--rate",
        "200",
        "--error-rate",
        "0.05",
        "--decide-every",
        "0",
        "--store",
        &url,
    ]);
    let addr = demo.addr();
    let started = demo.wait_for("checkpoints in");
    assert!(started.contains(&url), "{started}");
    demo.wait_for("[    2s]");
    let body = http::get(&addr, "/metrics").unwrap().body;
    assert!(body.contains("checkpoint_store_info{backend=\"postgres\"} 1"), "{body}");
    assert!(body.contains("checkpoint_writes_total{status=\"success\"}"), "the same names as on SQLite");
    assert!(demo.wait().success(), "{}", demo.seen().join("\n"));
    let lines = demo.seen().join("\n");
    // The demo itself fails when the new rows are not its successful writes.
    assert!(lines.contains("all accounted for"), "{lines}");
    let rows: u64 = pg.psql("SELECT COUNT(*) FROM checkpoints").trim().parse().unwrap();
    let written: u64 = lines
        .lines()
        .find(|l| l.trim_start().starts_with("checkpoints") && l.contains(" written, "))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or_else(|| panic!("no summary: {lines}"));
    assert!(written > 0 && summary_writes(&lines).unwrap() > written, "errors injected too: {lines}");
    assert_eq!(rows, written, "every acknowledged checkpoint is a row, once");
}

#[test]
fn a_password_in_the_store_url_is_never_printed() {
    // Nothing listens: the demo fails to open the store, naming it.
    let closed = hotmeter_testkit::ClosedPort::new();
    let url = format!("postgres://app:s3cret@{}/ckpt?connect_timeout=2", closed.addr());
    let out = std::process::Command::new(common::DEMO)
        .args(["--duration", "1", "--listen", "127.0.0.1:0", "--store", &url])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(all.contains("cannot open postgres://app:***@"), "{all}");
    assert!(!all.contains("s3cret"), "{all}");
    // A password holding `?` (the client reads the user part to the `@`),
    // through --store, --migrate-to and migrate --to alike.
    let url = format!("postgres://app:s3c?ret@{}/ckpt?connect_timeout=2", closed.addr());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("d.db");
    let from = format!("sqlite:{}", db.display());
    for args in [
        vec!["--duration", "1", "--listen", "127.0.0.1:0", "--store", &url],
        vec!["--duration", "1", "--listen", "127.0.0.1:0", "--db", db.to_str().unwrap(), "--migrate-to", &url],
        vec!["migrate", "--from", &from, "--to", &url],
    ] {
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch("CREATE TABLE IF NOT EXISTS checkpoints (checkpoint_id INTEGER PRIMARY KEY)")
            .unwrap();
        let out = std::process::Command::new(common::DEMO).args(&args).output().unwrap();
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success() && all.contains("app:***@"), "{args:?}: {all}");
        assert!(!all.contains("s3c"), "{args:?}: {all}");
    }
    // A refused spec is named without its value.
    let out = std::process::Command::new(common::DEMO)
        .args(["--duration", "1", "--listen", "127.0.0.1:0", "--store", "postgress://app:s3cret@db/x"])
        .output()
        .unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success() && all.contains("--store"), "{all}");
    assert!(!all.contains("s3cret"), "{all}");
}

/// `decide --store postgres://...` asks the next question: one PostgreSQL
/// server or scale out, from the store's own errors, p99 write latency and
/// pool use, logged as the SQLite decision is.
#[test]
fn decide_on_postgres_names_the_next_step() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.jsonl");
    let out = std::process::Command::new(common::DEMO)
        .args(["decide", "--window", "3", "--rate", "200", "--listen", "127.0.0.1:0", "--store", &pg.url()])
        .arg("--decision-log")
        .arg(&log)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("p99 write:") && text.contains("Pool busy:"), "{text}");
    assert!(text.contains("Decision: POSTGRESQL SUFFICIENT"), "{text}");
    let entry: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&log).unwrap().lines().last().unwrap()).unwrap();
    assert_eq!((entry["store"].as_str(), entry["verdict"].as_str()), (Some("postgres"), Some("POSTGRESQL SUFFICIENT")));
    let p99 = entry["inputs"]["p99_write_seconds"].as_f64().unwrap();
    assert!(p99 > 0.0 && p99 < 0.02, "{entry}");
    let busy = entry["inputs"]["pool_busy_fraction"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&busy), "{entry}");
    // The rows it wrote while measuring are in the database.
    let rows: u64 = pg.psql("SELECT COUNT(*) FROM checkpoints").trim().parse().unwrap();
    assert!(rows > 0);
    // The thresholds are options: any p99 is above a 0 ms planning level.
    let out = std::process::Command::new(common::DEMO)
        .args(["decide", "--window", "2", "--listen", "127.0.0.1:0", "--store", &pg.url(), "--plan-scale-p99-ms", "0"])
        .arg("--decision-log")
        .arg(&log)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Decision: PLAN SCALE-OUT\n  - PLAN SCALE-OUT - p99 write latency >0 ms"), "{text}");
    let entry: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&log).unwrap().lines().last().unwrap()).unwrap();
    assert_eq!(entry["thresholds"]["plan_p99_write_seconds"], 0.0, "{entry}");
}

/// The same question through a real Prometheus that scrapes a demo on
/// PostgreSQL: `decide --source prometheus --store postgres://...` reads
/// the write rates, the p99 from the classic buckets and the pool's use
/// (`checkpoint_store_pool_connections`) from PromQL.
#[test]
fn decide_on_postgres_from_prometheus() {
    let pg = Postgres::start();
    let url = pg.url();
    let mut demo = Demo::start_with_store(&[
        "--duration",
        "8",
        "--linger",
        "60",
        "--rate",
        "200",
        "--decide-every",
        "0",
        "--store",
        &url,
    ]);
    let addr = demo.addr();
    let prom = hotmeter_testkit::Prometheus::builder("pg-decide")
        .config(format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: demo\n    static_configs:\n      - targets: ['{addr}']\n"
        ))
        .start();
    let dir = tempfile::tempdir().unwrap();
    let decide = || {
        std::process::Command::new(common::DEMO)
            .args(["decide", "--source", "prometheus", "--window", "30s", "--store", &url])
            .arg("--prometheus")
            .arg(format!("http://{}", prom.addr()))
            .arg("--decision-log")
            .arg(dir.path().join("decisions.jsonl"))
            .output()
            .unwrap()
    };
    // Once Prometheus holds a few scrapes of writes.
    let out = hotmeter_testkit::wait_for("a decision from Prometheus", std::time::Duration::from_secs(40), || {
        let out = decide();
        out.status.success().then_some(out)
    });
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Decision: POSTGRESQL SUFFICIENT"), "{text}");
    let entry: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(dir.path().join("decisions.jsonl")).unwrap().lines().last().unwrap(),
    )
    .unwrap();
    assert_eq!((entry["source"].as_str(), entry["store"].as_str()), (Some("prometheus"), Some("postgres")));
    let wps = entry["inputs"]["writes_per_second"].as_f64().unwrap();
    assert!(wps > 0.0, "{entry}");
    let p99 = entry["inputs"]["p99_write_seconds"].as_f64().unwrap();
    assert!(p99 > 0.0 && p99 <= 0.1, "{entry}");
    let busy = entry["inputs"]["pool_busy_fraction"].as_f64().unwrap();
    assert!((0.0..0.7).contains(&busy), "{entry}");
    drop(demo);
}
