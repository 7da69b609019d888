//! Crash safety of the main job: `kill -9` the demo mid-run, while it writes
//! checkpoints as fast as it can and logs a migration decision every 200 ms.
//! Afterwards the SQLite file opens cleanly and passes `integrity_check`,
//! holds at least every write the last scrape before the kill counted as a
//! success, and the decision log still parses: every whole line is JSON,
//! and a torn last line is fenced off by the next open.

mod common;

use std::time::Duration;

use common::Demo;
use hotmeter_testkit::http;

/// `checkpoint_writes_total{status="success"}` from one scrape.
fn successful_writes(addr: &str) -> u64 {
    let body = http::get(addr, "/metrics").expect("scrape the demo").body;
    let line = body
        .lines()
        .find(|l| l.starts_with("checkpoint_writes_total{") && l.contains("status=\"success\""))
        .unwrap_or_else(|| panic!("no successful-write series in\n{body}"));
    line.rsplit_once(' ').and_then(|(_, v)| v.parse().ok()).unwrap_or_else(|| panic!("value in {line:?}"))
}

#[test]
fn kill_9_mid_run_leaves_a_clean_database_and_a_parseable_decision_log() {
    // Three kills at different moments of the run.
    for (round, run_for) in [(0, 1200u64), (1, 2100), (2, 3300)].into_iter() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("decisions.jsonl");
        let log_arg = log.to_str().unwrap().to_owned();
        let mut demo = Demo::start_in(
            dir,
            &[
                "--rate",
                "400",
                "--workers",
                "4",
                "--duration",
                "60",
                "--decide-every",
                "0.2s",
                "--decision-log",
                &log_arg,
            ],
        );
        let addr = demo.addr();
        std::thread::sleep(Duration::from_millis(run_for));
        let counted = successful_writes(&addr);
        demo.kill9();
        assert!(counted > 0, "round {round}: nothing written in {run_for} ms");

        // The database: opens, is intact, and lost no acknowledged write.
        let db = rusqlite::Connection::open(demo.db()).expect("the database opens after kill -9");
        let check: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok", "round {round}");
        let rows: i64 = db.query_row("SELECT COUNT(*) FROM checkpoints", [], |r| r.get(0)).unwrap();
        let rows = u64::try_from(rows).unwrap();
        assert!(rows >= counted, "round {round}: {rows} rows, but the last scrape counted {counted} successful writes");

        // The decision log: every whole line parses; a torn tail is fenced.
        let text = std::fs::read_to_string(&log).expect("the decision log exists");
        let whole = if text.ends_with('\n') { text.as_str() } else { text.rsplit_once('\n').map_or("", |(w, _)| w) };
        let entries = whole.lines().count();
        assert!(entries >= 1, "round {round}: no decision logged in {run_for} ms:\n{}", demo.seen().join("\n"));
        for line in whole.lines() {
            let entry: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
            assert!(entry["verdict"].is_string(), "{line}");
        }
        let torn = !text.ends_with('\n');
        hotmeter_checkpoint::decision::DecisionLog::open(&log).expect("the log reopens");
        let reopened = std::fs::read_to_string(&log).unwrap();
        assert!(reopened.ends_with('\n'), "a torn last line is terminated on open, so the next entry starts clean");
        assert_eq!(reopened.lines().count(), entries + usize::from(torn));
        eprintln!(
            "round {round}: killed after {run_for} ms; {counted} successful writes scraped, {rows} rows; {entries} decisions{}",
            if torn { " and a torn line, fenced" } else { "" }
        );
    }
}
