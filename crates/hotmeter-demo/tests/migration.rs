//! Acting on the decision (issue #25): the demo moves its checkpoints from
//! SQLite to PostgreSQL, into a throwaway cluster of the test's own.
//!
//! - `--migrate-on-decision`: injected errors make the verdict MIGRATE NOW,
//!   the running demo copies while it writes, switches, and every
//!   acknowledged checkpoint ends up in PostgreSQL once; progress is
//!   metrics, the decision log records the action after the verdict, and a
//!   restart writes to PostgreSQL (a sealed file is never written again).
//! - `hotmeter-demo migrate`, `kill -9`ed three times at random points
//!   while another demo keeps writing to the file: afterwards PostgreSQL
//!   holds every row the file holds, each once.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{DEMO, Demo};
use hotmeter_testkit::promql::query;
use hotmeter_testkit::{Postgres, http};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// `COUNT`, `SUM(id)` and `SUM(length(state))` of the file's rows: a
/// check of the copy computed apart from the migration's own checksum.
fn sqlite_figures(path: &std::path::Path) -> (i64, i64, i64) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(checkpoint_id), 0), COALESCE(SUM(length(state)), 0) FROM checkpoints",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

/// The same figures of the copies in PostgreSQL, and how many distinct
/// source ids they hold.
fn postgres_figures(pg: &Postgres) -> ((i64, i64, i64), i64) {
    let out = pg.psql(
        "SELECT COUNT(*), COALESCE(SUM(migrated_id), 0), COALESCE(SUM(length(state)), 0), COUNT(DISTINCT migrated_id)
         FROM checkpoints WHERE migrated_from IS NOT NULL",
    );
    let v: Vec<i64> = out.trim().split('|').map(|n| n.parse().unwrap()).collect();
    ((v[0], v[1], v[2]), v[3])
}

/// A file with history: `rows` checkpoints written before (one
/// transaction), so a copy takes long enough to be cut off mid-way.
fn prefill(db: &std::path::Path, rows: i64) {
    drop(hotmeter_checkpoint::SqliteStore::open(db).unwrap());
    let mut conn = rusqlite::Connection::open(db).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut stmt =
            tx.prepare("INSERT INTO checkpoints (thread_id, created_at_ms, state) VALUES (?1, ?2, ?3)").unwrap();
        for i in 0..rows {
            let state = format!("{{\"worker\":{},\"batch\":{i},\"history\":true}}", i % 4);
            stmt.execute(rusqlite::params![format!("worker-{}", i % 4), 1_700_000_000_000i64 + i, state.as_bytes()])
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

fn metric(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn a_migrate_now_verdict_moves_the_running_demo_to_postgres() {
    let pg = Postgres::start();
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let log = dir.path().join("decisions.jsonl");
    let (db_s, log_s) = (db.to_str().unwrap(), log.to_str().unwrap());
    let args = [
        "--rate",
        "300",
        "--error-rate",
        "0.05",
        "--decide-every",
        "8",
        "--db",
        db_s,
        "--decision-log",
        log_s,
        "--migrate-to",
        &url,
        "--migrate-on-decision",
    ];
    let mut demo = Demo::start_with_store(&[&args[..], &["--duration", "16", "--linger", "60"]].concat());
    let addr = demo.addr();
    // A real Prometheus scrapes it throughout: the migration dashboard's
    // every panel is checked against what it stored.
    let prom = hotmeter_testkit::Prometheus::builder("migration")
        .config(format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: demo\n    static_configs:\n      - targets: ['{addr}']\n"
        ))
        .start();
    let before = http::get(&addr, "/metrics").unwrap().body;
    assert_eq!(metric(&before, "checkpoint_store_info{backend=\"sqlite\"}"), Some(1.0), "{before}");
    let migration = http::get(&addr, "/migration").unwrap().body;
    assert!(migration.contains("MIGRATE NOW"), "not started yet: {migration}");
    demo.wait_for("decision: MIGRATE NOW");
    demo.wait_for("migration: MIGRATE NOW acted on");
    let done = demo.wait_for("migration: done");
    assert!(done.contains("rows verified"), "{done}");

    // The dashboard and /metrics switch over; progress is metrics.
    let body = http::get(&addr, "/metrics").unwrap().body;
    assert_eq!(metric(&body, "checkpoint_store_info{backend=\"postgres\"}"), Some(1.0), "{body}");
    assert!(!body.contains("checkpoint_store_info{backend=\"sqlite\"}"), "{body}");
    assert_eq!(metric(&body, "checkpoint_migration_phase{phase=\"done\"}"), Some(1.0), "{body}");
    assert_eq!(metric(&body, "checkpoint_migration_rows_remaining"), Some(0.0), "{body}");
    let copied = metric(&body, "checkpoint_migration_rows_copied_total").unwrap();
    assert!(copied > 0.0, "{body}");
    assert!(metric(&body, "checkpoint_migration_duration_seconds").unwrap() > 0.0);
    let status: serde_json::Value = serde_json::from_str(&http::get(&addr, "/migration").unwrap().body).unwrap();
    assert_eq!(status["outcome"], "done", "{status}");
    assert_eq!(status["rows"].as_f64(), Some(copied), "{status}");
    assert_eq!(metric(&body, "checkpoint_store_pool_connections{state=\"max\"}"), Some(4.0), "{body}");
    // The next decisions judge PostgreSQL, by its own thresholds and its
    // own writes (the injected SQLite errors stopped with the switch).
    let next = demo.wait_for("decision: POSTGRESQL SUFFICIENT");
    assert!(next.contains("pool") && next.contains("p99 write"), "{next}");
    let sources = http::get(&addr, "/dashboard/sources").unwrap().body;
    assert!(sources.contains("/migration"), "the dashboard shows the migration: {sources}");

    // Every checkpoint_migration_* name the alert rules use is emitted
    // (the stack test checks the others against a demo that does not migrate).
    let rules = std::fs::read_to_string(format!("{ROOT}/alerts/checkpoints.yml")).unwrap();
    let used: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("checkpoint_migration_"))
        .collect();
    assert!(!used.is_empty());
    for name in used {
        assert!(body.contains(&format!("# TYPE {name} ")), "{name} is used by a rule but not emitted");
    }

    // The Grafana dashboard: every panel has data in Prometheus, and the
    // writes-by-backend panel shows the handover from sqlite to postgres.
    let board: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{ROOT}/dashboards/checkpoint-migration.json")).unwrap())
            .unwrap();
    for panel in board["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap().replace("$instance", ".*");
            hotmeter_testkit::wait_for(
                &format!("data for {}: {expr}", panel["title"]),
                Duration::from_secs(30),
                || (!query(prom.addr(), &expr).is_empty()).then_some(()),
            );
        }
    }
    let by_backend = board["panels"][0]["targets"][0]["expr"].as_str().unwrap().replace("$instance", ".*");
    hotmeter_testkit::wait_for("postgres writes in the by-backend panel", Duration::from_secs(30), || {
        let got = query(prom.addr(), &by_backend);
        got.iter().any(|s| s["metric"]["backend"] == "postgres").then_some(())
    });
    // ...after the sqlite one (scraped before the first decision, at 8 s:
    // Prometheus' first scrape comes a few seconds after it is ready).
    let sqlite_before = query(prom.addr(), r#"count_over_time(checkpoint_store_info{backend="sqlite"}[5m])"#);
    assert_eq!(sqlite_before.len(), 1, "{sqlite_before:?}");
    let phase = query(prom.addr(), "count by (phase) (checkpoint_migration_phase == 1)");
    assert_eq!(phase.len(), 1);
    assert_eq!(phase[0]["metric"]["phase"], "done");

    // The run ends with every acknowledged write in one store or the other
    // (the demo checks its rows against its successful writes); SIGTERM
    // ends its linger.
    demo.wait_for("serving the final counts");
    assert!(Command::new("kill").args(["-TERM", &demo.pid().to_string()]).status().unwrap().success());
    assert!(demo.wait().success(), "{}", demo.seen().join("\n"));
    let lines = demo.seen().join("\n");
    assert!(lines.contains("all accounted for"), "{lines}");
    // After the switch, injected errors stopped with SQLite, and writes went on.
    let native: i64 = pg.psql("SELECT COUNT(*) FROM checkpoints WHERE migrated_from IS NULL").trim().parse().unwrap();
    assert!(native > 0, "writes went on in PostgreSQL: {lines}");
    // Every row of the file is in PostgreSQL once, identical by count, ids and bytes.
    let (copies, distinct) = postgres_figures(&pg);
    assert_eq!(copies, sqlite_figures(&db));
    assert_eq!(distinct, copies.0);
    assert_eq!(copies.0 as f64, copied, "the counter counted each copied row once");

    // The decision log: the verdict, then the action and its outcome.
    let entries: Vec<serde_json::Value> =
        std::fs::read_to_string(&log).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let verdict = entries.iter().position(|e| e["verdict"] == "MIGRATE NOW").expect("a verdict");
    let started = entries.iter().position(|e| e["action"] == "migrate" && e["outcome"] == "started").unwrap();
    let finished = entries.iter().position(|e| e["action"] == "migrate" && e["outcome"] == "done").unwrap();
    assert!(verdict < started && started < finished, "{entries:?}");
    let done = &entries[finished]["details"];
    assert_eq!(done["rows"].as_i64(), Some(copies.0), "{done}");
    assert_eq!(done["sha256"].as_str().map(str::len), Some(64), "{done}");
    assert!(done["to"].as_str().unwrap().starts_with("postgres://postgres@127.0.0.1:"), "{done}");
    let scale = entries[finished..].iter().find(|e| e["store"] == "postgres").expect("a PostgreSQL decision");
    let log_len = entries.len();
    assert_eq!(scale["verdict"], "POSTGRESQL SUFFICIENT", "{scale}");
    assert_eq!(scale["thresholds"]["scale_p99_write_seconds"], 0.05, "{scale}");

    // A restart goes straight to PostgreSQL: the file is sealed.
    let mut again = Demo::start_with_store(&[&args[..], &["--duration", "2"]].concat());
    let said = again.wait_for("was migrated to");
    assert!(said.contains("writing there"), "{said}");
    again.wait_for("checkpoints in postgres://");
    assert!(again.wait().success(), "{}", again.seen().join("\n"));
    // ...and the decision log says it found the migration done.
    let text = std::fs::read_to_string(&log).unwrap();
    let found: serde_json::Value = text
        .lines()
        .skip(log_len)
        .find(|l| l.contains("found_done"))
        .map(|l| serde_json::from_str(l).unwrap())
        .expect("found_done logged");
    assert!(found["details"]["sealed"].as_str().unwrap().starts_with("postgres://postgres@127.0.0.1:"), "{found}");
    assert_eq!(sqlite_figures(&db), copies, "nothing new in the file");
    // Without --migrate-to it refuses to write to the file again.
    let out = Command::new(DEMO)
        .args(["--duration", "1", "--listen", "127.0.0.1:0", "--db", db_s, "--decide-every", "0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("was migrated to postgres://"), "{err}");
    // Nor with --migrate-to naming another database than the one it went to.
    pg.psql("CREATE DATABASE other");
    let other = format!("{}/other", url.strip_suffix("/postgres").unwrap());
    let out = Command::new(DEMO)
        .args([
            "--duration",
            "1",
            "--listen",
            "127.0.0.1:0",
            "--db",
            db_s,
            "--decide-every",
            "0",
            "--migrate-to",
            &other,
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(", not to postgres://postgres@127.0.0.1:"), "{err}");
    assert_eq!(sqlite_figures(&db), copies, "nothing new in the file");
}

#[test]
fn migrate_killed_three_times_resumes_and_loses_nothing() {
    let pg = Postgres::start();
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let db_s = db.to_str().unwrap().to_owned();
    prefill(&db, 150_000);
    // The table exists before the first copy, to be counted.
    hotmeter_checkpoint::PostgresStore::connect(&url).unwrap();
    // A demo keeps writing to the file the whole time.
    let mut writer = Demo::start_with_store(&["--rate", "300", "--decide-every", "0", "--db", &db_s]);
    writer.addr();

    let from = format!("sqlite:{db_s}");
    let migrate = || {
        let mut c = Command::new(DEMO);
        c.args(["migrate", "--from", &from, "--to", &url, "--batch", "500"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    };
    let copied = || postgres_figures(&pg).0.0;
    // Random points: a different delay each time, from the clock.
    let mut seed = Instant::now().elapsed().as_nanos() as u64 ^ std::process::id() as u64;
    let mut kills = Vec::new();
    for _ in 0..3 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let delay = Duration::from_millis(300 + (seed >> 33) % 900);
        let before = copied();
        let mut child = migrate().spawn().unwrap();
        std::thread::sleep(delay);
        if let Some(early) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "the copy ended by itself within {delay:?} ({early}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "killed mid-copy ({delay:?})");
        let after = copied();
        kills.push((delay, before, after));
        // Never a row twice, whatever the batch in flight did.
        let (figures, distinct) = postgres_figures(&pg);
        assert_eq!(figures.0, distinct, "after the kill at {delay:?}");
    }
    eprintln!("kills (delay, copies before, copies after): {kills:?}");
    let total = sqlite_figures(&db).0;
    assert!(kills.iter().all(|&(_, before, after)| after >= before && after < total), "{kills:?}");
    assert!(kills.last().unwrap().2 > 0, "the copies made progress: {kills:?}");

    // The writer stops (draining, its own accounting checked), and one last
    // run copies what is left and verifies everything.
    let status = Command::new("kill").args(["-TERM", &writer.pid().to_string()]).status().unwrap();
    assert!(status.success());
    assert!(writer.wait().success(), "{}", writer.seen().join("\n"));
    let out = migrate().output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("verified: source"), "{text}");
    let source = sqlite_figures(&db);
    assert!(source.0 > 150_000, "the writer added rows during the migration");
    let (copies, distinct) = postgres_figures(&pg);
    assert_eq!(copies, source, "every row once, same ids and bytes: {kills:?}");
    assert_eq!(distinct, source.0);
}

/// `kill -9` of the running demo in the middle of its own migration: run
/// again with the same options, it migrates again on the next MIGRATE NOW,
/// resuming the copy, and ends with every row of the file in PostgreSQL
/// once.
#[test]
fn the_running_demo_killed_mid_migration_resumes_it() {
    let pg = Postgres::start();
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    prefill(&db, 300_000);
    let db_s = db.to_str().unwrap();
    let args = [
        "--rate",
        "200",
        "--error-rate",
        "0.05",
        "--decide-every",
        "3",
        "--db",
        db_s,
        "--migrate-to",
        &url,
        "--migrate-on-decision",
    ];
    let mut first = Demo::start_with_store(&[&args[..], &["--duration", "30"]].concat());
    first.wait_for("migration: MIGRATE NOW acted on");
    std::thread::sleep(Duration::from_millis(700));
    first.kill9();
    let (partial, distinct) = postgres_figures(&pg);
    assert_eq!(partial.0, distinct, "no row twice after the kill");
    let total = sqlite_figures(&db).0;
    assert!(partial.0 > 0 && partial.0 < total, "killed mid-copy: {} of {total}", partial.0);
    assert_eq!(hotmeter_checkpoint::migrated_to(&db).unwrap(), None, "not sealed: the writers never switched");

    // As long as the copy takes (up to a minute on a slow machine), then
    // stopped by SIGTERM, draining as Ctrl-C would.
    let mut second = Demo::start_with_store(&[&args[..], &["--duration", "120"]].concat());
    second.wait_for("migration: done");
    assert!(Command::new("kill").args(["-TERM", &second.pid().to_string()]).status().unwrap().success());
    assert!(second.wait().success(), "{}", second.seen().join("\n"));
    let (copies, distinct) = postgres_figures(&pg);
    assert_eq!(copies, sqlite_figures(&db), "every row of the file once: {} before the kill", partial.0);
    assert_eq!(distinct, copies.0);
}
