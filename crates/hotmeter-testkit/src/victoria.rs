//! A single-node VictoriaMetrics, the OTLP work's receiver, on a loopback
//! port with its storage in a temporary folder.
//!
//! Owns: finding the binary, its command line, the readiness wait and the
//! process's lifetime. Must not: skip when the binary is missing: it fails
//! saying how to provide it (the test command fetches Debian 13's package
//! and sets `HOTMETER_VICTORIA_METRICS`).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::{ChildGuard, free_addr, http, wait_for, which};

/// The environment variable that names the VictoriaMetrics binary.
pub const VICTORIA_METRICS_ENV: &str = "HOTMETER_VICTORIA_METRICS";

/// A running VictoriaMetrics, killed on drop; its storage removed after.
#[derive(Debug)]
pub struct VictoriaMetrics {
    addr: String,
    _process: ChildGuard,
    _dir: TempDir,
}

impl VictoriaMetrics {
    /// The binary: `$HOTMETER_VICTORIA_METRICS`, else `victoria-metrics`
    /// on `PATH`.
    pub fn binary() -> Option<PathBuf> {
        match std::env::var_os(VICTORIA_METRICS_ENV) {
            Some(path) => Some(PathBuf::from(path)),
            None => which("victoria-metrics"),
        }
    }

    /// Starts it on a free loopback port (`-search.latencyOffset=0s`, so a
    /// sample is queryable as soon as it is stored) and waits (at most
    /// 60 s) until `/health` answers; fails when the binary is missing.
    pub fn start() -> VictoriaMetrics {
        VictoriaMetrics::start_on(&free_addr())
    }

    /// [`start`](Self::start) on `addr` (`127.0.0.1:PORT`): a receiver that
    /// comes up where a client has been sending to while it was down.
    pub fn start_on(addr: &str) -> VictoriaMetrics {
        let addr = addr.to_owned();
        let bin = VictoriaMetrics::binary().unwrap_or_else(|| {
            panic!(
                "VictoriaMetrics not found: set {VICTORIA_METRICS_ENV} to its single-node binary \
                 or put `victoria-metrics` on PATH"
            )
        });
        let dir = tempfile::tempdir().unwrap();
        let mut process = ChildGuard::new();
        process.spawn(
            "victoria-metrics",
            Command::new(&bin)
                .arg(format!("-storageDataPath={}", dir.path().join("data").display()))
                .arg(format!("-httpListenAddr={addr}"))
                .arg("-search.latencyOffset=0s")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.path().join("victoria-metrics.log")).unwrap()),
        );
        let log = dir.path().join("victoria-metrics.log");
        wait_for("VictoriaMetrics healthy", Duration::from_secs(60), || {
            // Exited (its port taken between `free_addr` and its bind, a
            // bad flag): say so with its log, not after the whole wait.
            if let Ok(Some(status)) = process.child("victoria-metrics").try_wait() {
                panic!("VictoriaMetrics exited ({status}): {}", std::fs::read_to_string(&log).unwrap_or_default());
            }
            http::is_ok(&addr, "/health").then_some(())
        });
        VictoriaMetrics { addr, _process: process, _dir: dir }
    }

    /// Its `host:port`; its Prometheus query API is under `/api/v1/`, so
    /// [`promql`](crate::promql) works against it.
    pub fn addr(&self) -> &str {
        &self.addr
    }
}
