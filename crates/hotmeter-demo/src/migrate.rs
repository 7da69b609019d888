//! Moving the demo's checkpoints from SQLite to PostgreSQL: the `migrate`
//! command (a copy that can be killed and run again) and the running
//! demo's `--migrate-on-decision` (copy while writing, then switch).
//!
//! Owns: running a [`Migration`] for people: progress lines, the decision
//! log's action entries, the `/migration` status and the store-info
//! metric's switch. Must not: copy, verify or switch rows itself
//! (`hotmeter-checkpoint` does), or start a migration the options did not
//! ask for.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hotmeter::{IntGauge, Registry, StringFamily};
use hotmeter_checkpoint::decision::{DecisionLog, rfc3339};
use hotmeter_checkpoint::{Cutover, DEFAULT_BATCH_ROWS, Migration, PostgresStore};
use serde_json::json;

use crate::cli::MigrateOptions;
use crate::handler::Store;
use crate::outcome::{Failed, context};
use crate::status::say;
use crate::store::StoreSpec;

/// `hotmeter-demo migrate`: copies everything the file holds now,
/// verifies it, and says what is left to do.
pub(crate) fn standalone(o: &MigrateOptions) -> Result<(), Failed> {
    let StoreSpec::Postgres(url) = &o.to else {
        return Err(Failed { what: "--to must be a PostgreSQL store".into(), source: o.to.to_string().into() });
    };
    let registry = Registry::new();
    let target = context(PostgresStore::connect(url), || format!("cannot open {}", o.to))?;
    let migration = context(Migration::open(&o.from, target), || format!("cannot migrate {}", o.from.display()))?;
    let migration = context(migration.batch_rows(o.batch_rows).with_metrics(&registry), || {
        "cannot register the migration's metrics".into()
    })?;
    let server = match o.listen {
        Some(addr) => {
            let server = context(hotmeter_exporter::Exporter::new(registry.clone()).listen(addr).start(), || {
                format!("cannot serve metrics on {addr}")
            })?;
            say(format_args!("serving the migration's progress on http://{}/metrics\n", server.local_addr()));
            Some(server)
        }
        None => None,
    };
    say(format_args!(
        "migrating {} (store {}) to {}, {} rows per transaction\n",
        o.from.display(),
        migration.source_id(),
        o.to,
        o.batch_rows
    ));
    let started = Instant::now();
    let mut shown = started;
    let mut copied = 0;
    let progress = |copied: u64, remaining: u64| {
        let secs = started.elapsed().as_secs_f64();
        say(format_args!(
            "[{secs:5.0}s] copied {copied} rows, {remaining} remaining, {:.0} rows/s\n",
            copied as f64 / secs.max(1e-9)
        ));
    };
    let result = migration.copy_all(|p| {
        copied += p.copied;
        if shown.elapsed() >= Duration::from_secs(1) {
            shown = Instant::now();
            progress(copied, p.remaining);
        }
    });
    context(result, || format!("the copy stopped after {copied} rows (run again: it resumes)"))?;
    progress(copied, 0);
    let v = context(migration.verify(), || "cannot verify the copy".into())?;
    if let Some(server) = server {
        server.shutdown();
    }
    if !v.is_exact() {
        return Err(Failed { what: "the copy differs from its source".into(), source: v.to_string().into() });
    }
    say(format_args!("verified: {v}\n"));
    say(format_args!(
        "done in {:.1} s: every checkpoint the file held is in PostgreSQL once. Writers still on the file? \
         Stop them, run this again (it copies only what came since), then start them with --store {}\n",
        started.elapsed().as_secs_f64(),
        o.to
    ));
    Ok(())
}

/// The running demo's migration, started by a MIGRATE NOW verdict.
#[derive(Debug, Default)]
pub(crate) struct LiveMigration {
    state: Mutex<State>,
    /// Asks a running copy to stop between batches (the run is ending).
    stop: Arc<AtomicBool>,
    /// The latest status as JSON, for `/migration`.
    pub(crate) status: Arc<Mutex<Option<String>>>,
}

#[derive(Debug, Default)]
enum State {
    /// None yet, or the last one failed or was stopped (the next resumes).
    #[default]
    Idle,
    /// Copying or cutting over; the thread says whether it switched.
    Running(JoinHandle<bool>),
    /// The writers are on PostgreSQL.
    Done,
}

/// What the migration thread works with.
pub(crate) struct Parts {
    pub(crate) store: Store,
    pub(crate) registry: Registry,
    pub(crate) store_info: StringFamily<IntGauge>,
    pub(crate) decision_log: PathBuf,
}

impl LiveMigration {
    /// Starts the migration unless one ran to its end or is running (a
    /// failed one starts again: it resumes). Returns a line for the
    /// terminal when it started one.
    pub(crate) fn start(&self, parts: Parts) -> Option<String> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match std::mem::take(&mut *state) {
            State::Running(thread) if !thread.is_finished() => {
                *state = State::Running(thread);
                return None;
            }
            State::Running(thread) => {
                if thread.join().unwrap_or(false) {
                    *state = State::Done;
                    return None;
                }
            }
            State::Done => {
                *state = State::Done;
                return None;
            }
            State::Idle => {}
        }
        let backend = parts.store.inner().inner();
        let (Some(from), Some((to, _))) = (backend.sqlite_path(), backend.postgres()) else { return None };
        if backend.backend() != "sqlite" {
            return None;
        }
        let line = format!("migration: MIGRATE NOW acted on: copying {} to {to} while writing on", from.display());
        let (stop, status) = (self.stop.clone(), self.status.clone());
        let thread = std::thread::Builder::new()
            .name("migration".into())
            .spawn(move || run_live(&parts, &stop, &status))
            .ok()?;
        *state = State::Running(thread);
        Some(line)
    }

    /// Records that the file was migrated by an earlier run (its seal): the
    /// status shows it done, and the decision log says this run found it so.
    pub(crate) fn already_done(&self, from: &std::path::Path, seal: &str, decision_log: &std::path::Path) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = State::Done;
        let details = json!({ "from": from.display().to_string(), "sealed": seal });
        let mut shown = details.clone();
        shown["outcome"] = json!("done");
        shown["note"] = json!("migrated in an earlier run; the file is sealed");
        *self.status.lock().unwrap_or_else(PoisonError::into_inner) = Some(shown.to_string());
        if let Err(e) =
            DecisionLog::open(decision_log).and_then(|log| log.append_action("migrate", "found_done", details))
        {
            say(format_args!("migration: not logged: {e}\n"));
        }
    }

    /// Stops a copy under way (between batches) and waits for it.
    pub(crate) fn finish(&self) {
        self.stop.store(true, Ordering::Release);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let State::Running(thread) = std::mem::take(&mut *state) {
            *state = if thread.join().unwrap_or(false) { State::Done } else { State::Idle };
        }
    }
}

/// The migration thread: copy while the pipeline writes, switch, log.
/// Returns whether the writers are on PostgreSQL at the end.
fn run_live(parts: &Parts, stop: &AtomicBool, status: &Mutex<Option<String>>) -> bool {
    let backend = parts.store.inner().inner();
    let (Some(from), Some((to, target))) = (backend.sqlite_path(), backend.postgres()) else { return false };
    let (from_text, to_text) = (from.display().to_string(), to.to_string());
    let log = DecisionLog::open(&parts.decision_log).ok();
    let record = |outcome: &str, details: serde_json::Value| {
        let mut all = json!({ "from": from_text, "to": to_text });
        if let (Some(all), Some(more)) = (all.as_object_mut(), details.as_object()) {
            all.extend(more.clone());
        }
        let mut shown = all.clone();
        shown["outcome"] = json!(outcome);
        shown["timestamp"] = json!(rfc3339(std::time::SystemTime::now()));
        *status.lock().unwrap_or_else(PoisonError::into_inner) = Some(shown.to_string());
        // Progress goes to /migration and the metrics; the log keeps the
        // action's start and end.
        if outcome != "copying"
            && let Some(log) = &log
            && let Err(e) = log.append_action("migrate", outcome, all)
        {
            say(format_args!("migration: not logged: {e}\n"));
        }
    };
    record("started", json!({}));
    let started = Instant::now();
    let result = (|| -> Result<Option<Cutover>, Box<dyn std::error::Error + Send + Sync>> {
        let migration = Migration::open(from, target.clone())?.with_metrics(&parts.registry)?;
        let mut copied = 0;
        loop {
            if stop.load(Ordering::Acquire) {
                return Ok(None);
            }
            let p = migration.copy_batch()?;
            copied += p.copied;
            record("copying", json!({ "rows_copied": copied, "rows_remaining": p.remaining }));
            // Close enough: the cut-over holds the writers for the rest.
            if p.remaining < DEFAULT_BATCH_ROWS as u64 {
                break;
            }
        }
        Ok(Some(backend.cutover().cut_over(&migration)?))
    })();
    match result {
        Ok(None) => {
            record("interrupted", json!({ "duration_seconds": started.elapsed().as_secs_f64() }));
            say(format_args!("migration: interrupted by the end of the run; it resumes next time\n"));
            false
        }
        Ok(Some(cut)) => {
            // The injected faults stood for the single file's contention.
            let _ = parts.store.inner().set_rate(0.0);
            parts.store_info.remove(&["sqlite"]).ok();
            parts.store_info.with(&["postgres"], |g| g.set(1)).ok();
            let v = &cut.verification;
            record(
                "done",
                json!({
                    "rows": v.source_rows,
                    "sha256": v.source_checksum,
                    "pause_ms": cut.pause.as_secs_f64() * 1e3,
                    "rows_copied_in_pause": cut.copied_during_pause,
                    "duration_seconds": started.elapsed().as_secs_f64(),
                }),
            );
            say(format_args!(
                "migration: done: {} rows verified (sha256 {}), writers held {:.1} ms; checkpoints now go to {to_text}\n",
                v.source_rows,
                &v.source_checksum[..16],
                cut.pause.as_secs_f64() * 1e3
            ));
            true
        }
        Err(e) => {
            let mut why = e.to_string();
            let mut source = e.source();
            while let Some(s) = source {
                why.push_str(&format!(": {s}"));
                source = s.source();
            }
            record("failed", json!({ "error": why, "duration_seconds": started.elapsed().as_secs_f64() }));
            say(format_args!("migration: failed ({why}); still writing to SQLite, the next MIGRATE NOW resumes it\n"));
            false
        }
    }
}
