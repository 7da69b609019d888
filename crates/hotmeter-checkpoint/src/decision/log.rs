//! The decision log: one JSON line per decision, appended so history can be
//! audited.
//!
//! Owns: the log file, its entry format and fencing off a line a crash cut
//! short. Must not: rewrite or drop an entry, or let two writers' entries
//! interleave.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::{Decision, MigrationMetrics, MigrationThresholds, ScaleDecision, ScaleMetrics, ScaleThresholds};

/// Why the log could not be written.
#[derive(Debug)]
#[non_exhaustive]
pub enum LogError {
    /// Opening, writing or syncing the file failed.
    Io {
        /// The log file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl std::fmt::Display for LogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogError::Io { path, .. } => write!(f, "cannot append to decision log {}", path.display()),
        }
    }
}

impl std::error::Error for LogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LogError::Io { source, .. } => Some(source),
        }
    }
}

/// `2026-11-25T10:50:03.123Z` (UTC) for a system time; times before the
/// Unix epoch read as the epoch.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t.max(UNIX_EPOCH)).to_string()
}

/// An append-only JSON-lines file of decisions.
///
/// Each entry is written with one `write` call on a file opened for
/// appending, then flushed and synced, so entries from several writers
/// never interleave and an acknowledged entry survives a crash. If a crash
/// ever cut a line short, the next open ends it with a newline first, so
/// every later entry is still a whole line and a reader skips only the
/// damaged one.
#[derive(Debug)]
pub struct DecisionLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl DecisionLog {
    /// Opens (creating if needed) the log at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LogError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| LogError::Io { path: path.clone(), source };
        let mut file = OpenOptions::new().create(true).append(true).read(true).open(&path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1)).map_err(io)?;
            file.read_exact(&mut last).map_err(io)?;
            if last[0] != b'\n' {
                file.write_all(b"\n").map_err(io)?;
                file.sync_data().map_err(io)?;
            }
        }
        Ok(DecisionLog { file: Mutex::new(file), path })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry: timestamp, source, inputs, thresholds, verdict,
    /// reasons and justification.
    pub fn append(
        &self,
        source: &str,
        metrics: &MigrationMetrics,
        thresholds: &MigrationThresholds,
        decision: &Decision,
    ) -> Result<(), LogError> {
        let entry = json!({
            "timestamp": rfc3339(SystemTime::now()),
            "source": source,
            "inputs": {
                "measured_at": rfc3339(metrics.timestamp),
                "error_rate_percent": metrics.error_rate_percent,
                "writes_per_second": metrics.writes_per_second,
                "deployment": metrics.deployment.as_str(),
                "file_size_bytes": metrics.file_size_bytes,
            },
            "thresholds": {
                "error_rate_percent": thresholds.error_rate_percent(),
                "migrate_writes_per_second": thresholds.migrate_writes_per_second(),
                "plan_writes_per_second": thresholds.plan_writes_per_second(),
                "plan_file_size_bytes": thresholds.plan_file_size_bytes(),
            },
            "verdict": decision.verdict.to_string(),
            "reasons": decision.reasons.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "justification": decision.justification,
        });
        self.write(&entry)
    }

    /// Appends one PostgreSQL decision ([`should_scale_out`](super::should_scale_out)),
    /// in the same shape as [`append`](Self::append) plus `"store":
    /// "postgres"`.
    pub fn append_scale(
        &self,
        source: &str,
        metrics: &ScaleMetrics,
        thresholds: &ScaleThresholds,
        decision: &ScaleDecision,
    ) -> Result<(), LogError> {
        self.write(&json!({
            "timestamp": rfc3339(SystemTime::now()),
            "source": source,
            "store": "postgres",
            "inputs": {
                "measured_at": rfc3339(metrics.timestamp),
                "error_rate_percent": metrics.error_rate_percent,
                "writes_per_second": metrics.writes_per_second,
                "p99_write_seconds": metrics.p99_write_seconds,
                "pool_busy_fraction": metrics.pool_busy_fraction,
            },
            "thresholds": thresholds.to_json(),
            "verdict": decision.verdict.to_string(),
            "reasons": decision.reasons.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "justification": decision.justification,
        }))
    }

    /// Appends what was done about a verdict: `action` (e.g. `migrate`),
    /// its `outcome` (`started`, `done`, `failed`) and `details` (an
    /// object: from, to, rows, checksum, error...), with a timestamp, so
    /// the log shows each action next to the verdicts that led to it.
    pub fn append_action(&self, action: &str, outcome: &str, details: serde_json::Value) -> Result<(), LogError> {
        self.write(&json!({
            "timestamp": rfc3339(SystemTime::now()),
            "action": action,
            "outcome": outcome,
            "details": details,
        }))
    }

    fn write(&self, entry: &serde_json::Value) -> Result<(), LogError> {
        let mut line = entry.to_string();
        line.push('\n');
        let io = |source| LogError::Io { path: self.path.clone(), source };
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        file.write_all(line.as_bytes()).map_err(io)?;
        file.flush().map_err(io)?;
        file.sync_data().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{Deployment, should_migrate};

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + std::time::Duration::from_millis(1_795_609_803_123);
        assert_eq!(rfc3339(t), "2026-11-25T12:30:03.123Z");
        let leap = UNIX_EPOCH + std::time::Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn entries_are_whole_json_lines_and_a_torn_line_is_fenced_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.jsonl");
        let m = MigrationMetrics::new(2.1, 87.0, Deployment::SingleServer, 10_000_000).unwrap();
        let t = MigrationThresholds::default();
        let d = should_migrate(&m, &t);
        DecisionLog::open(&path).unwrap().append("in-process", &m, &t, &d).unwrap();
        // A crash mid-write leaves a partial line...
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"timestamp\":\"20").unwrap();
        // ...which the next open terminates before appending.
        DecisionLog::open(&path).unwrap().append("prometheus", &m, &t, &d).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["verdict"], "MIGRATE NOW");
        assert_eq!(first["reasons"][0], "MIGRATE NOW - Write errors >1%");
        assert_eq!(first["inputs"]["writes_per_second"], 87.0);
        assert_eq!(first["thresholds"]["plan_writes_per_second"], 80.0);
        assert!(serde_json::from_str::<serde_json::Value>(lines[1]).is_err(), "the torn line stays torn");
        let third: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
        assert_eq!(third["source"], "prometheus");
        assert!(text.ends_with('\n'));
    }
}
