//! The running demo's periodic migration decision: the window it looks
//! back over, and one decision made from the in-process write window.
//!
//! Owns: [`DECISION_WINDOW`], turning the window's rates into a decision,
//! logging it and keeping the latest as JSON (for `/decision` and the
//! dashboard). Must not: sample the registry or decide when (`report`
//! feeds the window and calls this every `--decide-every`), or print.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hotmeter_checkpoint::decision::{DecisionLog, Verdict, WriteWindow};

use crate::cli::Options;

/// How far back the running demo's periodic decisions look.
pub(crate) const DECISION_WINDOW: Duration = Duration::from_secs(300);

/// One periodic decision from the in-process window: logged, kept in
/// `latest` as JSON (for `/decision` and the dashboard), and returned as a
/// line for the terminal with its verdict (None: no decision this time).
pub(crate) fn decide_in_process(
    window: &WriteWindow,
    o: &Options,
    file_size: u64,
    log: &DecisionLog,
    latest: &Mutex<Option<String>>,
) -> (String, Option<Verdict>) {
    use hotmeter_checkpoint::decision::{MigrationMetrics, should_migrate};
    let Some((wps, pct)) = window.rates(DECISION_WINDOW) else {
        return ("decision: not enough data yet".to_owned(), None);
    };
    let metrics = match MigrationMetrics::new(pct, wps, o.deployment, file_size) {
        Ok(m) => m,
        Err(e) => return (format!("decision: skipped ({e})"), None),
    };
    let d = should_migrate(&metrics, &o.thresholds);
    let json = serde_json::json!({
        "timestamp": hotmeter_checkpoint::decision::rfc3339(std::time::SystemTime::now()),
        "source": "in-process",
        "window_seconds": DECISION_WINDOW.as_secs(),
        "inputs": {
            "error_rate_percent": metrics.error_rate_percent,
            "writes_per_second": metrics.writes_per_second,
            "file_size_bytes": metrics.file_size_bytes,
            "deployment": metrics.deployment.as_str(),
        },
        "verdict": d.verdict.to_string(),
        "reasons": d.reasons.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "justification": d.justification,
    });
    *latest.lock().unwrap_or_else(PoisonError::into_inner) = Some(json.to_string());
    let logged = match log.append("in-process", &metrics, &o.thresholds, &d) {
        Ok(()) => String::new(),
        Err(e) => format!(" [not logged: {e}]"),
    };
    let why = d.reasons.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
    let line = format!(
        "decision: {} ({:.1} writes/s, {:.2}% errors{}){logged}",
        d.verdict,
        wps,
        pct,
        if why.is_empty() { String::new() } else { format!("; {why}") }
    );
    (line, Some(d.verdict))
}
