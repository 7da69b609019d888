//! The running demo's periodic migration decision: the window it looks
//! back over, and one decision made from the in-process write window.
//!
//! Owns: [`DECISION_WINDOW`], turning the window's rates into a decision,
//! logging it and keeping the latest as JSON (for `/decision` and the
//! dashboard). Must not: sample the registry or decide when (`report`
//! feeds the window and calls this every `--decide-every`), or print.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hotmeter_checkpoint::decision::{
    DecisionLog, ScaleMetrics, ScaleThresholds, Verdict, WriteWindow, should_scale_out,
};

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

/// What the PostgreSQL decision needs beyond the write window: the p99
/// write latency and the pool's average busy share since the last decision.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PostgresInputs {
    pub(crate) p99_write_seconds: Option<f64>,
    pub(crate) pool_busy_fraction: f64,
}

/// One periodic decision once the checkpoints live in PostgreSQL: the
/// same window and log, the scale-out thresholds.
pub(crate) fn decide_postgres_in_process(
    window: &WriteWindow,
    inputs: PostgresInputs,
    thresholds: &ScaleThresholds,
    log: &DecisionLog,
    latest: &Mutex<Option<String>>,
) -> String {
    let Some((wps, pct)) = window.rates(DECISION_WINDOW) else {
        return "decision: not enough data yet".to_owned();
    };
    let Some(p99) = inputs.p99_write_seconds else {
        return "decision: no writes since the last decision".to_owned();
    };
    let metrics = match ScaleMetrics::new(pct, wps, p99, inputs.pool_busy_fraction.clamp(0.0, 1.0)) {
        Ok(m) => m,
        Err(e) => return format!("decision: skipped ({e})"),
    };
    let d = should_scale_out(&metrics, thresholds);
    let json = serde_json::json!({
        "timestamp": hotmeter_checkpoint::decision::rfc3339(std::time::SystemTime::now()),
        "source": "in-process",
        "store": "postgres",
        "window_seconds": DECISION_WINDOW.as_secs(),
        "inputs": {
            "error_rate_percent": metrics.error_rate_percent,
            "writes_per_second": metrics.writes_per_second,
            "p99_write_seconds": metrics.p99_write_seconds,
            "pool_busy_fraction": metrics.pool_busy_fraction,
        },
        "verdict": d.verdict.to_string(),
        "reasons": d.reasons.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "justification": d.justification,
    });
    *latest.lock().unwrap_or_else(PoisonError::into_inner) = Some(json.to_string());
    let logged = match log.append_scale("in-process", &metrics, thresholds, &d) {
        Ok(()) => String::new(),
        Err(e) => format!(" [not logged: {e}]"),
    };
    let why = d.reasons.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
    format!(
        "decision: {} ({:.1} writes/s, {:.2}% errors, p99 write {:.1} ms, pool {:.0}% busy{}){logged}",
        d.verdict,
        wps,
        pct,
        p99 * 1e3,
        metrics.pool_busy_fraction * 100.0,
        if why.is_empty() { String::new() } else { format!("; {why}") }
    )
}
