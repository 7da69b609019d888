//! What the demo's tests share: the one HTTP client (GET over ureq) and the
//! running-demo harness ([`Demo`]).
//!
//! Owns: fetching a path from a loopback server (the demo's exporter,
//! Prometheus, Alertmanager) with a timeout, query values percent-encoded
//! by the client; starting the real binary on an ephemeral port with its own
//! temporary directory, reading its output, stopping or killing it. Must
//! not: be used where a test sends malformed bytes on purpose — those keep
//! a raw socket.

// Each test binary includes this module and uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The demo binary under test.
pub(crate) const DEMO: &str = env!("CARGO_BIN_EXE_hotmeter-demo");

/// One answer: status, the headers the tests check, and the body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    /// `HTTP/1.1`, ...
    pub(crate) version: String,
    pub(crate) content_type: String,
    /// Whether the body came with `Transfer-Encoding: chunked`.
    pub(crate) chunked: bool,
    pub(crate) body: String,
}

/// `GET http://{addr}{path}?{query}`; any status is an answer, only a
/// failure to talk HTTP (refused, reset, 10 s without an answer) is an error.
pub(crate) fn get_with(addr: &str, path: &str, query: &[(&str, &str)]) -> Result<Reply, ureq::Error> {
    get_as(addr, path, query, None)
}

/// [`get_with`], sending `Authorization: Bearer {token}` when given.
pub(crate) fn get_as(
    addr: &str,
    path: &str,
    query: &[(&str, &str)],
    token: Option<&str>,
) -> Result<Reply, ureq::Error> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.get(format!("http://{addr}{path}"));
    for (k, v) in query {
        request = request.query(k, v);
    }
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let mut response = request.call()?;
    let header = |name: &str| {
        response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase()
    };
    let content_type = header("content-type");
    let chunked = header("transfer-encoding").contains("chunked");
    let version = format!("{:?}", response.version());
    let status = response.status().as_u16();
    let body = response.body_mut().with_config().limit(64 << 20).read_to_string()?;
    Ok(Reply { status, version, content_type, chunked, body })
}

/// [`get_with`] without a query string.
pub(crate) fn get(addr: &str, path: &str) -> Result<Reply, ureq::Error> {
    get_with(addr, path, &[])
}

/// A running demo whose stdout lines arrive on a channel; killed on drop.
/// It listens on an ephemeral loopback port and keeps its database in a
/// temporary directory of its own.
pub(crate) struct Demo {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    /// Removed after `drop` has stopped the process.
    _dir: tempfile::TempDir,
}

impl Demo {
    /// Starts the demo with `args` plus `--listen 127.0.0.1:0 --db <temp>/demo.db`.
    pub(crate) fn start(args: &[&str]) -> Demo {
        Demo::start_in(tempfile::tempdir().unwrap(), args)
    }

    /// As [`start`](Self::start), with the database in `dir` (which the
    /// caller may also name in `args`, e.g. for `--decision-log`).
    pub(crate) fn start_in(dir: tempfile::TempDir, args: &[&str]) -> Demo {
        let mut child = Command::new(DEMO)
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--db"])
            .arg(dir.path().join("demo.db"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start hotmeter-demo");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Demo { child, lines, seen: Vec::new(), _dir: dir }
    }

    /// Waits (at most 60 s) for a line containing `needle`; returns it.
    pub(crate) fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(e) => panic!("no line containing {needle:?} ({e}); saw:\n{}", self.seen.join("\n")),
            }
        }
    }

    pub(crate) fn addr(&mut self) -> String {
        let line = self.wait_for("serving http://");
        line.trim_start_matches("serving http://").trim_end_matches("/metrics").to_owned()
    }

    /// Waits (at most 60 s) for the process to exit; returns its status.
    pub(crate) fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
                    self.seen.push(line);
                }
                return status;
            }
            assert!(Instant::now() < deadline, "demo did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Demo {
    /// The database file.
    pub(crate) fn db(&self) -> std::path::PathBuf {
        self._dir.path().join("demo.db")
    }

    /// The lines seen so far.
    pub(crate) fn seen(&self) -> &[String] {
        &self.seen
    }

    /// `kill -9`: no drain, no summary, no destructor runs.
    pub(crate) fn kill9(&mut self) {
        // std's `Child::kill` sends SIGKILL on Unix.
        self.child.kill().expect("SIGKILL the demo");
        let status = self.child.wait().expect("reap the demo");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "the demo died of SIGKILL");
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Child processes, each in its own process group, sent SIGTERM (the
/// group) on drop, then SIGKILL: a script's children go with it.
#[derive(Default)]
pub(crate) struct Group(Vec<Child>);

impl Group {
    pub(crate) fn spawn(&mut self, cmd: &mut Command) -> &mut Child {
        use std::os::unix::process::CommandExt;
        let child = cmd.process_group(0).spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        self.0.push(child);
        self.0.last_mut().unwrap()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-TERM", "--", &group]).stderr(Stdio::null()).status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
            let _ = child.wait();
        }
    }
}

/// A free loopback port.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls `check` every 250 ms until it returns `Some`, or panics after `limit`.
pub(crate) fn poll<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// An instant PromQL query's result vector.
pub(crate) fn promql(prom: &str, q: &str) -> Vec<serde_json::Value> {
    let r = get_with(prom, "/api/v1/query", &[("query", q)]).expect("query Prometheus");
    assert_eq!(r.status, 200, "query {q}: {}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("JSON from Prometheus");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// The value of a query returning one series.
pub(crate) fn promql_scalar(prom: &str, q: &str) -> Option<f64> {
    promql(prom, q).first().and_then(|s| s["value"][1].as_str()).and_then(|v| v.parse().ok())
}

/// Fails (never skips) when Debian's `prometheus` is missing.
pub(crate) fn require_prometheus() {
    let found = Command::new("prometheus").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    assert!(found.is_ok(), "`prometheus` not found: install Debian's prometheus (bash ci/test.sh does)");
}

/// `checkpoints   N written, M failed` from a demo's summary: N + M.
pub(crate) fn summary_writes(lines: &str) -> Option<u64> {
    let line = lines.lines().find(|l| l.trim_start().starts_with("checkpoints") && l.contains(" written, "))?;
    let mut words = line.split_whitespace();
    let written: u64 = words.nth(1)?.parse().ok()?;
    let failed: u64 = words.nth(1)?.parse().ok()?;
    Some(written + failed)
}
