//! How a run or a decision ends: [`Mode`], [`RunSummary`], the one error
//! type [`Failed`] with [`context`].
//!
//! Owns: the outcome vocabulary every step shares (a leaf: it imports
//! nothing from the rest of the demo). Must not: print or exit.

use std::time::Duration;

/// How `run` presents itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The main job: serve metrics, print status lines and a summary.
    Serve,
    /// Measuring for `decide`: no server, no status lines.
    Measure,
}

/// What a run wrote, for `decide`.
#[derive(Debug)]
pub(crate) struct RunSummary {
    pub(crate) writes_ok: u64,
    pub(crate) writes_err: u64,
    pub(crate) elapsed: Duration,
    pub(crate) file_size: u64,
    /// The p99 write latency over the run, in seconds (None: no writes).
    pub(crate) p99_write: Option<f64>,
    /// The connection pool's average busy share (None: no pool).
    pub(crate) pool_busy: Option<f64>,
}

impl RunSummary {
    /// (writes per second, error percentage) over the whole run.
    pub(crate) fn write_rates(&self) -> (f64, f64) {
        let total = self.writes_ok + self.writes_err;
        let pct = if total == 0 { 0.0 } else { 100.0 * self.writes_err as f64 / total as f64 };
        (total as f64 / self.elapsed.as_secs_f64().max(1e-9), pct)
    }
}

/// An error with a line of context for the person running the demo.
#[derive(Debug)]
pub(crate) struct Failed {
    pub(crate) what: String,
    pub(crate) source: Box<dyn std::error::Error + Send + Sync>,
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

pub(crate) fn context<T, E: Into<Box<dyn std::error::Error + Send + Sync>>>(
    r: Result<T, E>,
    what: impl FnOnce() -> String,
) -> Result<T, Failed> {
    r.map_err(|e| Failed { what: what(), source: e.into() })
}
