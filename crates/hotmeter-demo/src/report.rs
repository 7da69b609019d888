//! What the running demo prints: the live status line, the periodic
//! migration decision, and the summary with its accounting check.
//!
//! Owns: reading registry snapshots into lines for people, and stopping
//! cleanly when stdout goes away. Must not: keep counts of its own (every
//! figure comes from a snapshot).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use hotmeter_checkpoint::CheckpointStore;
use hotmeter_checkpoint::decision::{DecisionLog, WriteWindow};
use hotmeter_streaming::ShutdownReport;

use crate::cli::Options;
use crate::outcome::{Failed, Mode, RunSummary, context};
use crate::pipeline::Pipeline;
use crate::status::{self, Tally, Window, say};
use crate::traffic::Traffic;

/// Status: one line per second from registry snapshots (in
/// [`Mode::Serve`]), the SLO tracker fed from the same snapshots, and a
/// migration decision every `--decide-every`; returns when stopped (or when
/// stdout is gone).
pub(crate) fn report_until_stopped(
    o: &Options,
    mode: Mode,
    p: &Pipeline,
    decisions: Option<&(DecisionLog, Duration)>,
    stop: &AtomicBool,
    started: Instant,
) {
    let deadline = o.duration.map(|d| started + d);
    let stopped = || stop.load(Ordering::Acquire) || deadline.is_some_and(|d| Instant::now() >= d);
    let tty = mode == Mode::Serve && std::io::stdout().is_terminal();
    let mut before = Tally::read(&p.registry.snapshot(), &p.names);
    let mut last = Instant::now();
    let mut window = WriteWindow::new(DECISION_WINDOW.as_secs() as usize + 2);
    window.push(last, before.writes_ok, before.writes_err);
    let mut next_decision = decisions.map(|(_, every)| started + *every);
    loop {
        let next = last + Duration::from_secs(1);
        while Instant::now() < next && !stopped() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let now_t = Instant::now();
        let snap = p.registry.snapshot();
        let now = Tally::read(&snap, &p.names);
        window.push(now_t, now.writes_ok, now.writes_err);
        let slo_report = {
            let mut tracker = p.slo_tracker.lock().unwrap_or_else(PoisonError::into_inner);
            tracker.record(now_t, &snap);
            tracker.report()
        };
        if mode == Mode::Serve {
            let w = Window::between(&before, &now, now_t - last);
            let text = format!(
                "{} | SLOs {}/{} met",
                status::line(started.elapsed(), &w, &now),
                slo_report.met(),
                slo_report.total()
            );
            let shown = if tty { say(format_args!("\r{text}")) } else { say(format_args!("{text}\n")) };
            if !shown {
                break;
            }
        }
        if let (Some((log, every)), Some(due)) = (decisions, next_decision)
            && now_t >= due
        {
            next_decision = Some(due + *every);
            let line =
                decide_in_process(&window, o, p.store.inner().file_size_bytes().unwrap_or(0), log, &p.latest_decision);
            if !say(format_args!("{}{line}\n", if tty { "\r" } else { "" })) {
                break;
            }
        }
        before = now;
        last = now_t;
        if stopped() {
            break;
        }
    }
    if tty {
        say(format_args!("\n"));
    }
    if mode == Mode::Serve {
        say(format_args!("stopping: submission stopped, draining queued work...\n"));
    }
}

/// After the drain: prints the summary (in [`Mode::Serve`]) and checks that
/// every observation and every successful write is accounted for.
pub(crate) fn summarize(
    o: &Options,
    mode: Mode,
    p: &Pipeline,
    report: &ShutdownReport,
    traffic: &Traffic,
    started: Instant,
) -> Result<RunSummary, Failed> {
    let elapsed = started.elapsed();
    let end = Tally::read(&p.registry.snapshot(), &p.names);
    let rows = context(p.store.inner().inner().count(), || "cannot count checkpoints".into())? - p.rows_before;
    let submitted = traffic.submitted.load(Ordering::Relaxed);
    let rejected = traffic.rejected.load(Ordering::Relaxed);
    if mode == Mode::Serve {
        let whole = Window::between(&Tally::default(), &end, elapsed);
        let ms = |q| end.write_quantile(q).map_or("-".to_owned(), |s| format!("{:.2} ms", s * 1e3));
        say(format_args!("summary after {:.1} s:\n", elapsed.as_secs_f64()));
        say(format_args!(
            "  observations  submitted {submitted}, processed {}, rejected {rejected} -> {}\n",
            report.processed,
            if report.processed + rejected == submitted { "all accounted for" } else { "MISMATCH" }
        ));
        say(format_args!("  batches       {} ({} failed)\n", report.batches, report.failed_batches));
        say(format_args!(
            "  checkpoints   {} written, {} failed ({:.2}% errors), {:.1} writes/s, {rows} new rows in {}\n",
            end.writes_ok,
            end.writes_err,
            whole.error_percent,
            whole.writes_per_sec,
            o.db.display()
        ));
        say(format_args!(
            "  write latency p50 {}, p99 {}; database {:.1} KiB\n",
            ms(0.5),
            ms(0.99),
            end.file_size as f64 / 1024.0
        ));
    }
    if report.processed + rejected != submitted || rows != end.writes_ok {
        return Err(Failed {
            what: "accounting mismatch".into(),
            source: format!(
                "processed {} + rejected {rejected} vs submitted {submitted}; rows {rows} vs successful writes {}",
                report.processed, end.writes_ok
            )
            .into(),
        });
    }
    Ok(RunSummary {
        writes_ok: end.writes_ok,
        writes_err: end.writes_err,
        elapsed,
        file_size: p.store.inner().file_size_bytes().unwrap_or(0),
    })
}

/// How far back the running demo's periodic decisions look.
pub(crate) const DECISION_WINDOW: Duration = Duration::from_secs(300);

/// One periodic decision from the in-process window: logged, kept in
/// `latest` as JSON (for `/decision` and the dashboard), and returned as a
/// line for the terminal.
pub(crate) fn decide_in_process(
    window: &WriteWindow,
    o: &Options,
    file_size: u64,
    log: &DecisionLog,
    latest: &Mutex<Option<String>>,
) -> String {
    use hotmeter_checkpoint::decision::{MigrationMetrics, should_migrate};
    let Some((wps, pct)) = window.rates(DECISION_WINDOW) else {
        return "decision: not enough data yet".to_owned();
    };
    let metrics = match MigrationMetrics::new(pct, wps, o.deployment, file_size) {
        Ok(m) => m,
        Err(e) => return format!("decision: skipped ({e})"),
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
    format!(
        "decision: {} ({:.1} writes/s, {:.2}% errors{}){logged}",
        d.verdict,
        wps,
        pct,
        if why.is_empty() { String::new() } else { format!("; {why}") }
    )
}
