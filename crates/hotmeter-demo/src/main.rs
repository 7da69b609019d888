//! `hotmeter-demo`: the main job. A real instrumented pipeline you can run,
//! watch and scrape.
//!
//! ```text
//!  generator ──submit──► ObservationQueue ──► WorkerPool ──► DemoHandler ──► MonitoredStore ──► SQLite file
//!  (--rate, 3 spaces,        (3 lanes,         (--workers,     (recall index,    (--error-rate
//!   3 priorities)             backpressure)     stealing)       1 checkpoint       fault injection)
//!                                                               per batch)
//!  recall thread ──► RecallIndex                      registry ──► exporter on --listen (/metrics)
//!  main thread: one status line per second from registry snapshots; summary at the end
//! ```
//! Run `hotmeter-demo --help` for the options.
//!
//! Owns: wiring the pipeline (`hotmeter-streaming`), the checkpoint store
//! and decision (`hotmeter-checkpoint`), the SLOs and traces
//! (`hotmeter-slo`), the exporter and the remote_write and OTLP clients
//! (`hotmeter-push`) together, and the run's steps. Must
//! not: keep counts of its own beyond submitted/rejected (what it prints
//! comes from registry snapshots) or lose an observation unaccounted.

mod cli;
mod decision;
mod handler;
mod migrate;
mod outcome;
mod pipeline;
mod report;
mod slos;
mod status;
mod store;
mod tenants;
mod traffic;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use hotmeter_checkpoint::decision::DecisionLog;
use hotmeter_streaming::Shutdown;

use crate::cli::{Command, Options};
use crate::outcome::{Failed, Mode, RunSummary, context};
use crate::pipeline::{Pushers, build_pipeline, generate, query_recall, start_exporter, start_push};
use crate::report::{report_until_stopped, summarize};
use crate::status::say;
use crate::traffic::Traffic;

fn main() -> ExitCode {
    match cli::parse(std::env::args_os().skip(1)) {
        Ok(Command::SloRules) => {
            say(format_args!("{}", hotmeter_slo::prometheus_rules(&slos::definitions(), None, slos::RUNBOOK)));
            ExitCode::SUCCESS
        }
        Ok(Command::Run(options)) => report(run(&options, Mode::Serve).map(drop)),
        Ok(Command::Decide(options)) => report(decide(&options)),
        Ok(Command::Migrate(options)) => report(migrate::standalone(&options)),
        // --help: clap's text on stdout, exit 0.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        Err(e) => {
            let msg = e.render().to_string();
            eprint!("hotmeter-demo: {}", msg.strip_prefix("error: ").unwrap_or(&msg));
            ExitCode::from(2)
        }
    }
}

/// Prints an error with its chain of causes; the exit code says which.
fn report(result: Result<(), Failed>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = format!("hotmeter-demo: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}

/// `hotmeter-demo decide`: measure (in process or from Prometheus), decide,
/// print, log.
fn decide(d: &cli::DecideOptions) -> Result<(), Failed> {
    use hotmeter_checkpoint::decision::{DecisionLog, MigrationMetrics, should_migrate};
    let o = &d.run;
    let log = context(DecisionLog::open(&o.decision_log), || "cannot open the decision log".into())?;
    if o.store.backend() == "postgres" {
        return decide_postgres(d, &log);
    }
    let (source, metrics) = match &d.source {
        cli::Source::InProcess => {
            let s = measure(
                d,
                &format!(": {} obs/s, {} workers, error injection {}%", o.rate, o.workers, o.error_rate * 100.0),
            )?;
            let (wps, pct) = s.write_rates();
            let m =
                context(MigrationMetrics::new(pct, wps, o.deployment, s.file_size), || "invalid measurement".into())?;
            ("in-process", m)
        }
        cli::Source::Prometheus(url) => {
            let m = context(prometheus(d, url)?.fetch(o.deployment), || {
                format!("cannot get the decision's inputs from {url}")
            })?;
            ("prometheus", m)
        }
    };
    let decision = should_migrate(&metrics, &o.thresholds);
    say(format_args!("{}\n{}\n", metrics.summary(), decision.report()));
    context(log.append(source, &metrics, &o.thresholds, &decision), || "cannot log the decision".into())?;
    say(format_args!("(logged to {})\n", o.decision_log.display()));
    Ok(())
}

/// `hotmeter-demo decide --store postgres://...`: the next question, one
/// server or scale out, from the same sources, logged the same way.
fn decide_postgres(d: &cli::DecideOptions, log: &hotmeter_checkpoint::decision::DecisionLog) -> Result<(), Failed> {
    use hotmeter_checkpoint::decision::{ScaleMetrics, should_scale_out};
    let o = &d.run;
    let (source, metrics) = match &d.source {
        cli::Source::InProcess => {
            let s = measure(d, &format!(" on {}: {} obs/s, {} workers", o.store, o.rate, o.workers))?;
            let (wps, pct) = s.write_rates();
            let p99 = s
                .p99_write
                .ok_or_else(|| Failed { what: "no writes to decide from".into(), source: "0 writes".into() })?;
            let m = context(ScaleMetrics::new(pct, wps, p99, s.pool_busy.unwrap_or(0.0).clamp(0.0, 1.0)), || {
                "invalid measurement".into()
            })?;
            ("in-process", m)
        }
        cli::Source::Prometheus(url) => {
            let m = context(prometheus(d, url)?.fetch_postgres(), || {
                format!("cannot get the decision's inputs from {url}")
            })?;
            ("prometheus", m)
        }
    };
    let decision = should_scale_out(&metrics, &o.scale_thresholds);
    say(format_args!("{}\n{}\n", metrics.summary(), decision.report()));
    context(log.append_scale(source, &metrics, &o.scale_thresholds, &decision), || "cannot log the decision".into())?;
    say(format_args!("(logged to {})\n", o.decision_log.display()));
    Ok(())
}

/// `decide`'s in-process source: runs the pipeline for the window, saying
/// so (`what` follows "measuring in process for N s"), and returns what it
/// wrote.
fn measure(d: &cli::DecideOptions, what: &str) -> Result<RunSummary, Failed> {
    say(format_args!("measuring in process for {:.0} s{what}...\n", d.window.as_secs_f64()));
    run(&Options { duration: Some(d.window), ..d.run.clone() }, Mode::Measure)
}

/// `decide`'s Prometheus source: the server, the window and the namespace.
fn prometheus(d: &cli::DecideOptions, url: &str) -> Result<hotmeter_checkpoint::decision::PrometheusSource, Failed> {
    Ok(context(hotmeter_checkpoint::decision::PrometheusSource::new(url), || "bad --prometheus".into())?
        .window(&format!("{}s", d.window.as_secs().max(1)))
        .namespace(d.run.namespace.as_deref()))
}

/// Sets `stop` on Ctrl-C (SIGINT) or SIGTERM.
fn stop_on_signal(stop: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_io().build() else { return };
            rt.block_on(async {
                #[cfg(unix)]
                {
                    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                        Ok(s) => s,
                        Err(_) => return,
                    };
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                #[cfg(not(unix))]
                let _ = tokio::signal::ctrl_c().await;
            });
            stop.store(true, Ordering::Release);
        })
        .expect("spawn the signal thread");
}

/// Runs the pipeline until `--duration` or a signal: build, serve (in
/// [`Mode::Serve`]), generate and report, then drain and account.
fn run(o: &Options, mode: Mode) -> Result<RunSummary, Failed> {
    let p = build_pipeline(o)?;
    let server = match mode {
        Mode::Serve => Some(start_exporter(o, &p)?),
        Mode::Measure => None,
    };
    let pusher = match mode {
        Mode::Serve => start_push(o, &p, server.as_ref().map(|s| s.local_addr()))?,
        Mode::Measure => Pushers::default(),
    };
    let decisions = match (mode, o.decide_every) {
        (Mode::Serve, Some(every)) => Some((
            context(DecisionLog::open(&o.decision_log), || "cannot open the decision log (--decision-log)".into())?,
            every,
        )),
        _ => None,
    };

    let stop = Arc::new(AtomicBool::new(false));
    stop_on_signal(stop.clone());
    let traffic = Traffic::default();
    let started = Instant::now();
    let generating = AtomicBool::new(true);
    let pool_busy = std::thread::scope(|s| {
        s.spawn(|| generate(o, &p, &traffic, &generating));
        s.spawn(|| query_recall(&p, &traffic, &generating));
        // Stops the generator and the recall queries however the reporter
        // ends, a panic included, so the scope can always be left.
        let _stop_generating = StopOnDrop(&generating);
        report_until_stopped(o, mode, &p, decisions.as_ref(), &stop, started)
    });

    let report = p.pool.shutdown(Shutdown::Drain);
    // Nothing writes any more: a copy under way stops between batches.
    p.migration.finish();
    // After the drain: the last snapshot pushed holds the final counts.
    pusher.shutdown(PUSH_FLUSH_DEADLINE);
    let result = summarize(o, mode, &p, &report, &traffic, started, pool_busy);
    if let (Some(linger), Some(server)) = (o.linger, &server) {
        say(format_args!(
            "serving the final counts on http://{}/metrics for {:.0} s\n",
            server.local_addr(),
            linger.as_secs_f64()
        ));
        let until = Instant::now() + linger;
        while Instant::now() < until && !stop.load(Ordering::Acquire) {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    if let Some(server) = server {
        server.shutdown();
    }
    result
}

/// How long a stopping demo may spend sending its last snapshots.
const PUSH_FLUSH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// Clears the flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
