//! What the running demo prints: the live status line, the periodic
//! migration decision, and the summary with its accounting check.
//!
//! Owns: reading registry snapshots into lines for people, feeding the
//! decision's write window and asking `decision` for one every
//! `--decide-every`, and stopping cleanly when stdout goes away. Must not:
//! keep counts of its own (every figure comes from a snapshot).

use std::io::IsTerminal;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hotmeter_checkpoint::CheckpointStore;
use hotmeter_checkpoint::decision::{DecisionLog, Verdict, WriteWindow};
use hotmeter_streaming::ShutdownReport;

use crate::cli::Options;
use crate::decision::{DECISION_WINDOW, PostgresInputs, decide_in_process, decide_postgres_in_process};
use crate::migrate::Parts;
use crate::outcome::{Failed, Mode, RunSummary, context};
use crate::pipeline::Pipeline;
use crate::status::{self, Tally, Window, say};
use crate::traffic::Traffic;

/// Status: one line per second from registry snapshots (in
/// [`Mode::Serve`]), the SLO tracker fed from the same snapshots, and a
/// migration decision every `--decide-every`; returns when stopped (or when
/// stdout is gone), with the connection pool's average busy share over the
/// run (None: the store has no pool).
pub(crate) fn report_until_stopped(
    o: &Options,
    mode: Mode,
    p: &Pipeline,
    decisions: Option<&(DecisionLog, Duration)>,
    stop: &AtomicBool,
    started: Instant,
) -> Option<f64> {
    let deadline = o.duration.map(|d| started + d);
    let stopped = || stop.load(Ordering::Acquire) || deadline.is_some_and(|d| Instant::now() >= d);
    let tty = mode == Mode::Serve && std::io::stdout().is_terminal();
    let mut before = Tally::read(&p.registry.snapshot(), &p.names);
    let mut last = Instant::now();
    let mut window = WriteWindow::new(DECISION_WINDOW.as_secs() as usize + 2);
    window.push(last, before.writes_ok, before.writes_err);
    let mut next_decision = decisions.map(|(_, every)| started + *every);
    // Since the last decision: the write latencies and the pool's use.
    let mut at_last_decision = before.clone();
    let mut pool_busy = (0.0, 0u32);
    let mut run_pool_busy = (0.0, 0u32);
    // A migration's switch starts the window afresh: the new store is
    // judged by its own writes, not by the old one's errors.
    let mut backend_in_force = p.store.inner().inner().backend();
    loop {
        let next = last + Duration::from_secs(1);
        while Instant::now() < next && !stopped() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let now_t = Instant::now();
        let snap = p.registry.snapshot();
        let now = Tally::read(&snap, &p.names);
        let backend = p.store.inner().inner().backend();
        if backend != backend_in_force {
            backend_in_force = backend;
            window = WriteWindow::new(DECISION_WINDOW.as_secs() as usize + 2);
            at_last_decision = now.clone();
            pool_busy = (0.0, 0);
        }
        window.push(now_t, now.writes_ok, now.writes_err);
        if let Some((busy, size)) = p.store.pool_usage() {
            let share = f64::from(busy) / f64::from(size.max(1));
            pool_busy = (pool_busy.0 + share, pool_busy.1 + 1);
            run_pool_busy = (run_pool_busy.0 + share, run_pool_busy.1 + 1);
        }
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
            let backend = p.store.inner().inner();
            let (line, verdict) = if backend.backend() == "postgres" {
                let inputs = PostgresInputs {
                    p99_write_seconds: Window::between(&at_last_decision, &now, now_t - last).p99_write,
                    pool_busy_fraction: if pool_busy.1 == 0 { 0.0 } else { pool_busy.0 / f64::from(pool_busy.1) },
                };
                (decide_postgres_in_process(&window, inputs, &o.scale_thresholds, log, &p.latest_decision), None)
            } else {
                decide_in_process(&window, o, p.store.inner().file_size_bytes().unwrap_or(0), log, &p.latest_decision)
            };
            at_last_decision = now.clone();
            pool_busy = (0.0, 0);
            if !say(format_args!("{}{line}\n", if tty { "\r" } else { "" })) {
                break;
            }
            if o.migrate_on_decision && verdict == Some(Verdict::MigrateNow) {
                let parts = Parts {
                    store: p.store.clone(),
                    registry: p.registry.clone(),
                    store_info: p.store_info.clone(),
                    decision_log: o.decision_log.clone(),
                };
                if let Some(started) = p.migration.start(parts) {
                    say(format_args!("{started}\n"));
                }
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
    (run_pool_busy.1 > 0).then(|| run_pool_busy.0 / f64::from(run_pool_busy.1))
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
    pool_busy: Option<f64>,
) -> Result<RunSummary, Failed> {
    let elapsed = started.elapsed();
    let end = Tally::read(&p.registry.snapshot(), &p.names);
    let rows = context(p.store.inner().inner().rows_written(), || "cannot count checkpoints".into())?;
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
        if o.tenant_churn.is_some() || o.idle_timeout.is_some() {
            let (live, retired) = p.pool.memory_spaces();
            let c = *traffic.churn.lock().unwrap_or_else(PoisonError::into_inner);
            say(format_args!(
                "  memory spaces {live} live, {retired} retired (in /metrics until their linger ends), {} removed; \
                 churn: {} appeared, {} fell silent, {} came back after retirement, {} refused\n",
                p.pool.memory_spaces_removed(),
                c.appeared,
                c.silenced,
                c.brought_back,
                c.refused
            ));
        }
        say(format_args!(
            "  checkpoints   {} written, {} failed ({:.2}% errors), {:.1} writes/s, {rows} new rows{}\n",
            end.writes_ok,
            end.writes_err,
            whole.error_percent,
            whole.writes_per_sec,
            match (&o.migrate_to, p.store.inner().inner().backend()) {
                (Some(to), "postgres") => format!(" in {} and {to}", o.store),
                _ => format!(" in {}", p.store.inner().inner().describe()),
            }
        ));
        let size = match p.store.inner().file_size_bytes() {
            Some(_) => format!("; database {:.1} KiB", end.file_size as f64 / 1024.0),
            None => String::new(),
        };
        say(format_args!("  write latency p50 {}, p99 {}{size}\n", ms(0.5), ms(0.99)));
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
        p99_write: end.write_quantile(0.99),
        pool_busy,
        writes_ok: end.writes_ok,
        writes_err: end.writes_err,
        elapsed,
        file_size: p.store.inner().file_size_bytes().unwrap_or(0),
    })
}
