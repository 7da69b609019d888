//! Wiring the pipeline: the registry, the pool, the checkpoint store, the
//! SLOs and traces, the exporter, the remote_write client, and the two load threads that drive it
//! (the paced generator and the recall queries).
//!
//! Owns: building the pipeline from the options and running its load.
//! Must not: decide exit codes or the order of a run's steps (`main` does),
//! or print beyond the exporter's start-up lines.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hotmeter::Registry;
use hotmeter_checkpoint::{FaultInjectingStore, MonitoredStore};
use hotmeter_slo::{Slo, SloTracker, TraceTracker};
use hotmeter_streaming::{MemorySpace, PoolConfig, Priority, RecallIndex, WorkerPool};

use crate::cli::Options;
use crate::decision::DECISION_WINDOW;
use crate::handler::{DemoHandler, STAGES, Store, trace_id};
use crate::migrate::LiveMigration;
use crate::outcome::{Failed, context};
use crate::slos;
use crate::status::{Names, say};
use crate::store::{Backend, StoreSpec};
use crate::tenants::Tenants;
use crate::traffic::{Rng, SPACES, Traffic};

/// Everything a run builds before traffic starts: the registry and what
/// records into it.
pub(crate) struct Pipeline {
    pub(crate) registry: Registry,
    pub(crate) store: Store,
    /// `checkpoint_store_info{backend}`: switched by a migration.
    pub(crate) store_info: hotmeter::StringFamily<hotmeter::IntGauge>,
    /// The migration `--migrate-on-decision` starts.
    pub(crate) migration: LiveMigration,
    pub(crate) recall: Arc<RecallIndex>,
    pub(crate) traces: Arc<TraceTracker>,
    pub(crate) slo_defs: Vec<Slo>,
    pub(crate) slo_tracker: Arc<Mutex<SloTracker>>,
    pub(crate) pool: WorkerPool,
    pub(crate) spaces: Vec<MemorySpace>,
    /// Each space's share of the generated traffic (weights, same order).
    pub(crate) weights: Vec<u64>,
    /// The latest periodic migration decision as JSON (served at `/decision`).
    pub(crate) latest_decision: Arc<Mutex<Option<String>>>,
    pub(crate) names: Names,
}

/// The registry (namespaced, with process metrics), the monitored checkpoint
/// store, recall index, trace tracker, SLO tracker, and the started pool with
/// its memory spaces.
pub(crate) fn build_pipeline(o: &Options) -> Result<Pipeline, Failed> {
    let mut builder = Registry::builder();
    if let Some(ns) = &o.namespace {
        builder = builder.namespace(ns.clone());
    }
    let registry = context(builder.build(), || "cannot build the registry".into())?;
    context(hotmeter_exporter::register_process_metrics(&registry), || "cannot register process metrics".into())?;

    let backend = context(Backend::open(&o.store, o.sync, o.migrate_to.as_ref(), o.writer_id.as_deref()), || {
        format!("cannot open {}", o.store)
    })?;
    let info = context(
        registry.labeled_family(
            hotmeter_checkpoint::metrics::CHECKPOINT_STORE_INFO,
            "The database behind the checkpoint store (1).",
            &["backend"],
            hotmeter::IntGauge::new,
        ),
        || "cannot register the store's info metric".into(),
    )?;
    context(info.with(&[backend.backend()], |g| g.set(1)), || "cannot set the store's info metric".into())?;
    let migration = LiveMigration::default();
    if let (Some(seal), StoreSpec::Sqlite(path)) = (backend.sealed(), &o.store) {
        // A migration finished in an earlier run (perhaps killed before it
        // could log that): say so where its outcome is looked for.
        say(format_args!("{} was migrated to {seal}: writing there\n", path.display()));
        migration.already_done(path, seal, &o.decision_log);
    }
    let faulty = context(FaultInjectingStore::new(backend, o.error_rate, 0x5eed), || "bad --error-rate".into())?;
    let store = context(MonitoredStore::new(faulty, &registry), || "cannot register checkpoint metrics".into())?;
    let recall = Arc::new(RecallIndex::new(10_000));
    let traces = Arc::new(context(TraceTracker::new(&registry, &STAGES, Duration::from_secs(60), 100_000), || {
        "cannot register trace metrics".into()
    })?);
    let handler = Arc::new(DemoHandler { store: store.clone(), recall: recall.clone(), traces: traces.clone() });
    let slo_defs = slos::definitions();
    let slo_tracker = Arc::new(Mutex::new(context(SloTracker::new(slo_defs.clone(), o.namespace.as_deref()), || {
        "invalid SLO definitions".into()
    })?));
    let config = PoolConfig {
        workers: o.workers,
        space_idle_timeout: o.idle_timeout,
        retired_linger: o.retired_linger,
        // Churn keeps retired spaces in /metrics for --retired-linger (and
        // --idle-timeout) after their traffic stops: room for them all.
        max_memory_spaces: if o.tenant_churn.is_some() { 4096 } else { PoolConfig::default().max_memory_spaces },
        ..PoolConfig::default()
    };
    let pool = context(WorkerPool::start(config, &registry, handler), || "cannot start the worker pool".into())?;
    // Built-in spaces keep their weights; each --memory-space gets a tenth
    // of the busiest one's.
    let weighted: Vec<(&str, u64)> =
        SPACES.iter().copied().chain(o.extra_spaces.iter().map(|s| (s.as_str(), SPACES[0].1 / 10))).collect();
    let spaces = weighted
        .iter()
        .map(|(name, _)| pool.memory_space(name))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failed { what: "cannot add memory spaces".into(), source: e.into() })?;
    let weights = weighted.iter().map(|&(_, w)| w).collect();
    Ok(Pipeline {
        registry,
        store,
        store_info: info,
        migration,
        recall,
        traces,
        slo_defs,
        slo_tracker,
        pool,
        spaces,
        weights,
        latest_decision: Arc::new(Mutex::new(None)),
        names: Names::new(o.namespace.as_deref()),
    })
}

/// Serves the registry, the dashboard, `/slos` and `/decision` on
/// `--listen` (behind a bearer token with `--bearer-token-file`), marks it
/// ready, and prints where and what runs.
pub(crate) fn start_exporter(o: &Options, p: &Pipeline) -> Result<hotmeter_exporter::ThreadedServerHandle, Failed> {
    let (report_slos, slo_defs) = (p.slo_tracker.clone(), p.slo_defs.clone());
    let latest = p.latest_decision.clone();
    let none_yet = match o.decide_every {
        Some(every) => format!(
            "no decision yet: one is made every {} s from the last {} s of writes",
            every.as_secs_f64(),
            DECISION_WINDOW.as_secs()
        ),
        None => "periodic decisions are off (--decide-every 0)".to_owned(),
    };
    let mut exporter = hotmeter_exporter::Exporter::new(p.registry.clone())
        .listen(o.listen)
        .dashboard_source("Service-level objectives", "/slos", move || {
            report_slos.lock().unwrap_or_else(PoisonError::into_inner).report().to_json(&slo_defs).into_bytes()
        })
        .dashboard_source("Migration decision", "/decision", move || {
            match &*latest.lock().unwrap_or_else(PoisonError::into_inner) {
                Some(json) => json.clone().into_bytes(),
                None => serde_json::json!({ "verdict": null, "note": none_yet }).to_string().into_bytes(),
            }
        });
    if o.migrate_to.is_some() {
        let status = p.migration.status.clone();
        let idle = if o.migrate_on_decision {
            "no migration yet: one starts when a periodic decision says MIGRATE NOW"
        } else {
            "--migrate-on-decision is off: run `hotmeter-demo migrate` to copy, or restart with it"
        };
        exporter = exporter.dashboard_source("Checkpoint migration", "/migration", move || {
            match &*status.lock().unwrap_or_else(PoisonError::into_inner) {
                Some(json) => json.clone().into_bytes(),
                None => serde_json::json!({ "outcome": null, "note": idle }).to_string().into_bytes(),
            }
        });
    }
    if let Some(path) = &o.bearer_token_file {
        let token = context(std::fs::read_to_string(path), || format!("cannot read {}", path.display()))?;
        let token = token.trim();
        if token.is_empty() {
            return Err(Failed { what: format!("{} holds no token", path.display()), source: "empty file".into() });
        }
        exporter = exporter.auth(hotmeter_exporter::Auth::Bearer(token.to_owned()));
    }
    let server = context(exporter.start(), || {
        format!("cannot serve metrics on {} (pass --listen with another address, e.g. 127.0.0.1:0)", o.listen)
    })?;
    server.set_ready(true);
    say(format_args!("serving http://{}/metrics\n", server.local_addr()));
    say(format_args!("dashboard http://{}/dashboard\n", server.local_addr()));
    say(format_args!(
        "pipeline: {} obs/s over {} memory spaces, {} workers, checkpoints in {} (sync {}), error injection {}%\n",
        o.rate,
        p.spaces.len(),
        o.workers,
        p.store.inner().inner().describe(),
        o.sync.as_str(),
        o.error_rate * 100.0
    ));
    if let Some(rate) = o.tenant_churn {
        say(format_args!(
            "tenant churn: a memory space appears every {:.2} s and falls silent after {:.2} s; {}; retired spaces leave /metrics {:.0} s after their last observation\n",
            1.0 / rate,
            f64::from(crate::tenants::CHURN_LIFE) / rate,
            match o.idle_timeout {
                Some(t) => format!("the pool retires spaces idle for {:.1} s", t.as_secs_f64()),
                None => "silent ones are retired at once".to_owned(),
            },
            o.retired_linger.as_secs_f64()
        ));
    } else if let Some(t) = o.idle_timeout {
        say(format_args!(
            "memory spaces idle for {:.1} s are retired; they leave /metrics {:.0} s after their last observation\n",
            t.as_secs_f64(),
            o.retired_linger.as_secs_f64()
        ));
    }
    match o.duration {
        Some(d) => say(format_args!("running for {:.1} s (Ctrl-C stops early)\n", d.as_secs_f64())),
        None => say(format_args!("running until Ctrl-C\n")),
    };
    Ok(server)
}

/// The push clients the demo runs: remote_write, OTLP, both or none.
#[derive(Debug, Default)]
pub(crate) struct Pushers {
    remote_write: Option<hotmeter_push::RemoteWriteHandle>,
    otlp: Option<hotmeter_push::OtlpPushHandle>,
}

impl Pushers {
    /// Shuts both down at once, each within `deadline` (its last snapshot
    /// holds the final counts), and prints what each did.
    pub(crate) fn shutdown(self, deadline: std::time::Duration) {
        let Pushers { remote_write, otlp } = self;
        let (written, exported) = std::thread::scope(|s| {
            let exported = s.spawn(move || otlp.map(|e| e.shutdown(deadline)));
            let written = remote_write.map(|w| w.shutdown(deadline));
            (written, exported.join().unwrap_or(None))
        });
        if let Some(s) = written {
            say(format_args!(
                "remote_write: {} samples in {} snapshots: {} sent, {} failed, {} dropped\n",
                s.samples, s.snapshots, s.sent, s.failed, s.dropped
            ));
        }
        if let Some(s) = exported {
            say(format_args!(
                "otlp: {} data points in {} exports: {} sent, {} failed, {} dropped\n",
                s.samples, s.snapshots, s.sent, s.failed, s.dropped
            ));
        }
    }
}

/// With `--remote-write` and `--otlp`: starts pushing the registry.
/// remote_write's external labels are `job` and `instance`, the latter
/// defaulting to the served address; OTLP's resource is `service.name` =
/// the job and `service.instance.id` = the instance.
pub(crate) fn start_push(o: &Options, p: &Pipeline, served: Option<std::net::SocketAddr>) -> Result<Pushers, Failed> {
    let instance = o.instance.clone().or_else(|| served.map(|a| a.to_string())).unwrap_or_else(|| "demo".into());
    let mut pushers = Pushers::default();
    if let Some(url) = &o.otlp {
        let exporter = hotmeter_push::OtlpPush::new(url.clone())
            .service_name(o.job.clone())
            .attribute("service.instance.id", instance.clone())
            .interval(o.otlp_interval)
            .start(&p.registry);
        pushers.otlp = Some(context(exporter, || format!("cannot export to {url} (--otlp)"))?);
        say(format_args!(
            "exporting OTLP to {url} every {:.1} s as service.name={:?} service.instance.id={instance:?}\n",
            o.otlp_interval.as_secs_f64(),
            o.job
        ));
    }
    let Some(url) = &o.remote_write else { return Ok(pushers) };
    // Classic: the demo's write latency is a native histogram whose alert
    // rules and dashboards read its classic buckets, and the receiver the
    // README starts is a plain Prometheus, which refuses (500) every request
    // holding a native histogram unless started with
    // `--enable-feature=native-histograms`.
    let writer = hotmeter_push::RemoteWrite::new(url.clone())
        .native_histograms(hotmeter_push::NativeHistograms::Classic)
        .interval(o.remote_write_interval)
        .job(o.job.clone())
        .instance(instance.clone())
        .start(&p.registry);
    let writer = context(writer, || format!("cannot push to {url} (--remote-write)"))?;
    say(format_args!(
        "pushing to {url} every {:.1} s as job={:?} instance={instance:?}\n",
        o.remote_write_interval.as_secs_f64(),
        o.job
    ));
    pushers.remote_write = Some(writer);
    Ok(pushers)
}

/// The generator: paced to `--rate` in 1 ms steps, one session per space,
/// weighted spaces (churning ones with `--tenant-churn`) and priorities,
/// every tenth observation traced.
pub(crate) fn generate(o: &Options, p: &Pipeline, traffic: &Traffic, generating: &AtomicBool) {
    let begin = Instant::now();
    let mut tenants = Tenants::new(&p.pool, &p.spaces, &p.weights, o.tenant_churn, o.idle_timeout, begin);
    let traces = &p.traces;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut sent = 0u64;
    while generating.load(Ordering::Acquire) {
        tenants.tick(Instant::now());
        let total_weight = tenants.total_weight();
        let due = (begin.elapsed().as_secs_f64() * o.rate) as u64;
        while sent < due {
            let space = tenants.pick(rng.below(total_weight));
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
            if tenants.submit(space, priority, sent, payload).is_err() {
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
    *traffic.churn.lock().unwrap_or_else(PoisonError::into_inner) = tenants.counts();
}

/// Recall: 20 queries a second against recently stored keys of the fixed
/// spaces (one retired for idleness is looked up again, as the generator
/// does, so recalls never go to a space that left).
pub(crate) fn query_recall(p: &Pipeline, traffic: &Traffic, generating: &AtomicBool) {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut spaces = p.spaces.clone();
    while generating.load(Ordering::Acquire) {
        let space = &mut spaces[rng.below(p.spaces.len() as u64) as usize];
        if space.is_retired()
            && let Ok(again) = p.pool.memory_space(space.name())
        {
            *space = again;
        }
        let newest = traffic.submitted.load(Ordering::Relaxed);
        let _ = p.recall.recall(space, newest.saturating_sub(rng.below(1000)));
        std::thread::sleep(Duration::from_millis(50));
    }
}
