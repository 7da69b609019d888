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
//! (`hotmeter-slo`) and the exporter together, and the run's steps. Must
//! not: keep counts of its own beyond submitted/rejected (what it prints
//! comes from registry snapshots) or lose an observation unaccounted.

mod cli;
mod slos;
mod status;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hotmeter::{Registry, TraceId};
use hotmeter_checkpoint::decision::{DecisionLog, WriteWindow};
use hotmeter_checkpoint::{CheckpointStore, FaultInjectingStore, MonitoredStore, SqliteStore};
use hotmeter_slo::{Slo, SloTracker, TraceTracker};
use hotmeter_streaming::{
    BatchContext, BatchFailure, BatchHandler, FailureKind, MemorySpace, Observation, PoolConfig, Priority, RecallIndex,
    Shutdown, ShutdownReport, WorkerPool,
};

use crate::cli::{Command, Options};
use crate::status::{Names, Tally, Window};

type Store = MonitoredStore<FaultInjectingStore<SqliteStore>>;

/// Stores each observation in the recall index, then writes one checkpoint
/// of the worker's progress per batch.
#[derive(Debug)]
struct DemoHandler {
    store: Store,
    recall: Arc<RecallIndex>,
    traces: Arc<TraceTracker>,
}

/// The pipeline's stages, as the trace tracker knows them.
const STAGES: [&str; 4] = ["generate", "enqueue", "process", "checkpoint_write"];
/// One observation in this many is traced (its key is a multiple of it).
const TRACE_EVERY: u64 = 10;

fn trace_id(key: u64) -> Option<String> {
    key.is_multiple_of(TRACE_EVERY).then(|| format!("{key:016x}"))
}

impl BatchHandler for DemoHandler {
    fn handle(&self, ctx: &BatchContext, batch: &[Observation]) -> Result<(), BatchFailure> {
        for o in batch {
            self.recall.insert(o);
            if let Some(id) = trace_id(o.key) {
                let _ = self.traces.record(&id, "process");
            }
        }
        let result = self.write_checkpoint(ctx, batch);
        // A trace ends here: complete, or counted with its missing stages
        // (a failed checkpoint write leaves `checkpoint_write` missing).
        for o in batch {
            if let Some(id) = trace_id(o.key) {
                if result.is_ok() {
                    let _ = self.traces.record(&id, "checkpoint_write");
                }
                let _ = self.traces.validate(&id, &STAGES);
            }
        }
        result
    }
}

impl DemoHandler {
    fn write_checkpoint(&self, ctx: &BatchContext, batch: &[Observation]) -> Result<(), BatchFailure> {
        let last = batch.last().map_or(0, |o| o.key);
        let state = format!(
            "{{\"worker\":{},\"batch\":{},\"observations\":{},\"last_key\":{last}}}",
            ctx.worker_id,
            ctx.batch_seq,
            batch.len()
        );
        // The batch's first traced observation lends its trace to the write's
        // latency, as an exemplar: a slow write bucket links to a trace.
        let trace = batch.iter().find_map(|o| trace_id(o.key)).and_then(|id| TraceId::new(&id).ok());
        self.store
            .put_traced(&format!("worker-{}", ctx.worker_id), state.as_bytes(), trace.as_ref())
            .map(drop)
            .map_err(|e| BatchFailure::new(FailureKind::Checkpoint, e))
    }
}

/// xorshift64*: a small, fast, seeded generator for synthetic traffic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in 0..n.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const SPACES: [(&str, u64); 3] = [("tenant-a", 50), ("tenant-b", 30), ("tenant-c", 20)];

#[derive(Debug, Default)]
struct Traffic {
    submitted: AtomicU64,
    rejected: AtomicU64,
}

fn main() -> ExitCode {
    match cli::parse(std::env::args_os().skip(1)) {
        Ok(Command::SloRules) => {
            print!("{}", hotmeter_slo::prometheus_rules(&slos::definitions(), None, slos::RUNBOOK));
            ExitCode::SUCCESS
        }
        Ok(Command::Run(options)) => report(run(&options, Mode::Serve).map(drop)),
        Ok(Command::Decide(options)) => report(decide(&options)),
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

/// How `run` presents itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The main job: serve metrics, print status lines and a summary.
    Serve,
    /// Measuring for `decide`: no server, no status lines.
    Measure,
}

/// What a run wrote, for `decide`.
#[derive(Debug)]
struct RunSummary {
    writes_ok: u64,
    writes_err: u64,
    elapsed: Duration,
    file_size: u64,
}

/// `hotmeter-demo decide`: measure (in process or from Prometheus), decide,
/// print, log.
fn decide(d: &cli::DecideOptions) -> Result<(), Failed> {
    use hotmeter_checkpoint::decision::{DecisionLog, MigrationMetrics, PrometheusSource, should_migrate};
    let o = &d.run;
    let log = context(DecisionLog::open(&o.decision_log), || "cannot open the decision log".into())?;
    let (source, metrics) = match &d.source {
        cli::Source::InProcess => {
            let run_opts = Options { duration: Some(d.window), ..o.clone() };
            println!(
                "measuring in process for {:.0} s: {} obs/s, {} workers, error injection {}%...",
                d.window.as_secs_f64(),
                o.rate,
                o.workers,
                o.error_rate * 100.0
            );
            let s = run(&run_opts, Mode::Measure)?;
            let total = s.writes_ok + s.writes_err;
            let pct = if total == 0 { 0.0 } else { 100.0 * s.writes_err as f64 / total as f64 };
            let wps = total as f64 / s.elapsed.as_secs_f64().max(1e-9);
            let m =
                context(MigrationMetrics::new(pct, wps, o.deployment, s.file_size), || "invalid measurement".into())?;
            ("in-process", m)
        }
        cli::Source::Prometheus(url) => {
            let src = context(PrometheusSource::new(url), || "bad --prometheus".into())?
                .window(&format!("{}s", d.window.as_secs().max(1)))
                .namespace(o.namespace.as_deref());
            let m = context(src.fetch(o.deployment), || format!("cannot get the decision's inputs from {url}"))?;
            ("prometheus", m)
        }
    };
    let decision = should_migrate(&metrics, &o.thresholds);
    println!("{}", metrics.summary());
    println!("{}", decision.report());
    context(log.append(source, &metrics, &o.thresholds, &decision), || "cannot log the decision".into())?;
    println!("(logged to {})", o.decision_log.display());
    Ok(())
}

/// An error with a line of context for the person running the demo.
#[derive(Debug)]
struct Failed {
    what: String,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)
    }
}

impl std::error::Error for Failed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

fn context<T, E: Into<Box<dyn std::error::Error + Send + Sync>>>(
    r: Result<T, E>,
    what: impl FnOnce() -> String,
) -> Result<T, Failed> {
    r.map_err(|e| Failed { what: what(), source: e.into() })
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

/// Everything a run builds before traffic starts: the registry and what
/// records into it.
struct Pipeline {
    registry: Registry,
    store: Store,
    /// Checkpoint rows in the file before this run, to count the new ones.
    rows_before: u64,
    recall: Arc<RecallIndex>,
    traces: Arc<TraceTracker>,
    slo_defs: Vec<Slo>,
    slo_tracker: Arc<Mutex<SloTracker>>,
    pool: WorkerPool,
    spaces: Vec<MemorySpace>,
    names: Names,
}

/// Runs the pipeline until `--duration` or a signal: build, serve (in
/// [`Mode::Serve`]), generate and report, then drain and account.
fn run(o: &Options, mode: Mode) -> Result<RunSummary, Failed> {
    let p = build_pipeline(o)?;
    let server = match mode {
        Mode::Serve => Some(start_exporter(o, &p)?),
        Mode::Measure => None,
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
    std::thread::scope(|s| {
        s.spawn(|| generate(o, &p, &traffic, &generating));
        s.spawn(|| query_recall(&p, &traffic, &generating));
        // Stops the generator and the recall queries however the reporter
        // ends, a panic included, so the scope can always be left.
        let _stop_generating = StopOnDrop(&generating);
        report_until_stopped(o, mode, &p, decisions.as_ref(), &stop, started);
    });

    let report = p.pool.shutdown(Shutdown::Drain);
    let result = summarize(o, mode, &p, &report, &traffic, started);
    if let Some(server) = server {
        server.shutdown();
    }
    result
}

/// The registry (namespaced, with process metrics), the monitored checkpoint
/// store, recall index, trace tracker, SLO tracker, and the started pool with
/// its memory spaces.
fn build_pipeline(o: &Options) -> Result<Pipeline, Failed> {
    let mut builder = Registry::builder();
    if let Some(ns) = &o.namespace {
        builder = builder.namespace(ns.clone());
    }
    let registry = context(builder.build(), || "cannot build the registry".into())?;
    context(hotmeter_exporter::register_process_metrics(&registry), || "cannot register process metrics".into())?;

    let sqlite = context(SqliteStore::open_with(&o.db, o.sync), || format!("cannot open {}", o.db.display()))?;
    let faulty = context(FaultInjectingStore::new(sqlite, o.error_rate, 0x5eed), || "bad --error-rate".into())?;
    let store = context(MonitoredStore::new(faulty, &registry), || "cannot register checkpoint metrics".into())?;
    let rows_before = context(store.inner().inner().count(), || "cannot read the checkpoint table".into())?;
    let recall = Arc::new(RecallIndex::new(10_000));
    let traces = Arc::new(context(TraceTracker::new(&registry, &STAGES, Duration::from_secs(60), 100_000), || {
        "cannot register trace metrics".into()
    })?);
    let handler = Arc::new(DemoHandler { store: store.clone(), recall: recall.clone(), traces: traces.clone() });
    let slo_defs = slos::definitions();
    let slo_tracker = Arc::new(Mutex::new(context(SloTracker::new(slo_defs.clone(), o.namespace.as_deref()), || {
        "invalid SLO definitions".into()
    })?));
    let config = PoolConfig { workers: o.workers, ..PoolConfig::default() };
    let pool = context(WorkerPool::start(config, &registry, handler), || "cannot start the worker pool".into())?;
    let spaces = SPACES
        .iter()
        .map(|(name, _)| pool.memory_space(name))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failed { what: "cannot add memory spaces".into(), source: e.into() })?;
    Ok(Pipeline {
        registry,
        store,
        rows_before,
        recall,
        traces,
        slo_defs,
        slo_tracker,
        pool,
        spaces,
        names: Names::new(o.namespace.as_deref()),
    })
}

/// Serves the registry (and `/slos`) on `--listen`, marks it ready, and
/// prints where and what runs.
fn start_exporter(o: &Options, p: &Pipeline) -> Result<hotmeter_exporter::ThreadedServer, Failed> {
    let (report_slos, slo_defs) = (p.slo_tracker.clone(), p.slo_defs.clone());
    let exporter = hotmeter_exporter::Exporter::new(p.registry.clone()).listen(o.listen).route(
        "/slos",
        "application/json",
        move || report_slos.lock().unwrap_or_else(PoisonError::into_inner).report().to_json(&slo_defs).into_bytes(),
    );
    let server = context(exporter.start(), || {
        format!("cannot serve metrics on {} (pass --listen with another address, e.g. 127.0.0.1:0)", o.listen)
    })?;
    server.set_ready(true);
    say(format_args!("serving http://{}/metrics\n", server.local_addr()));
    say(format_args!(
        "pipeline: {} obs/s over {} memory spaces, {} workers, checkpoints in {} (sync {}), error injection {}%\n",
        o.rate,
        p.spaces.len(),
        o.workers,
        o.db.display(),
        o.sync.as_str(),
        o.error_rate * 100.0
    ));
    match o.duration {
        Some(d) => say(format_args!("running for {:.1} s (Ctrl-C stops early)\n", d.as_secs_f64())),
        None => say(format_args!("running until Ctrl-C\n")),
    };
    Ok(server)
}

/// The generator: paced to `--rate` in 1 ms steps, one session per space,
/// weighted spaces and priorities, every tenth observation traced.
fn generate(o: &Options, p: &Pipeline, traffic: &Traffic, generating: &AtomicBool) {
    let sessions: Vec<_> = p.spaces.iter().map(|sp| p.pool.session(sp)).collect();
    let traces = &p.traces;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut sent = 0u64;
    let begin = Instant::now();
    while generating.load(Ordering::Acquire) {
        let due = (begin.elapsed().as_secs_f64() * o.rate) as u64;
        while sent < due {
            let mut pick = rng.below(100);
            let space = SPACES.iter().position(|&(_, w)| {
                pick < w || {
                    pick -= w;
                    false
                }
            });
            let priority = match rng.below(10) {
                0 => Priority::High,
                1 | 2 => Priority::Low,
                _ => Priority::Normal,
            };
            let payload = vec![b'x'; 32 + rng.below(224) as usize];
            traffic.submitted.fetch_add(1, Ordering::Relaxed);
            let id = trace_id(sent);
            if let Some(id) = &id {
                // Both before submitting: once accepted, a worker may finish
                // (and validate) the trace before `submit` even returns.
                let _ = traces.record(id, "generate");
                let _ = traces.record(id, "enqueue");
            }
            if sessions[space.unwrap_or(0)].submit(priority, sent, payload).is_err() {
                // Counted in streaming_observations_rejected_total by the queue;
                // its trace ends here, without `process` and `checkpoint_write`.
                traffic.rejected.fetch_add(1, Ordering::Relaxed);
                if let Some(id) = &id {
                    let _ = traces.validate(id, &STAGES);
                }
            }
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Recall: 20 queries a second against recently stored keys.
fn query_recall(p: &Pipeline, traffic: &Traffic, generating: &AtomicBool) {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    while generating.load(Ordering::Acquire) {
        let space = &p.spaces[rng.below(p.spaces.len() as u64) as usize];
        let newest = traffic.submitted.load(Ordering::Relaxed);
        let _ = p.recall.recall(space, newest.saturating_sub(rng.below(1000)));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Status: one line per second from registry snapshots (in
/// [`Mode::Serve`]), the SLO tracker fed from the same snapshots, and a
/// migration decision every `--decide-every`; returns when stopped.
/// Clears the flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Writes to stdout, flushed; false once stdout is gone (a closed pipe, as
/// behind `| head`), which ends the run like Ctrl-C instead of a panic.
fn say(text: std::fmt::Arguments<'_>) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_fmt(text).and_then(|()| out.flush()).is_ok()
}

fn report_until_stopped(
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
            let line = decide_in_process(&window, o, p.store.inner().file_size_bytes().unwrap_or(0), log);
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
fn summarize(
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
const DECISION_WINDOW: Duration = Duration::from_secs(300);

/// One periodic decision from the in-process window: logged, and returned
/// as a line for the terminal.
fn decide_in_process(window: &WriteWindow, o: &Options, file_size: u64, log: &DecisionLog) -> String {
    use hotmeter_checkpoint::decision::{MigrationMetrics, should_migrate};
    let Some((wps, pct)) = window.rates(DECISION_WINDOW) else {
        return "decision: not enough data yet".to_owned();
    };
    let metrics = match MigrationMetrics::new(pct, wps, o.deployment, file_size) {
        Ok(m) => m,
        Err(e) => return format!("decision: skipped ({e})"),
    };
    let d = should_migrate(&metrics, &o.thresholds);
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
