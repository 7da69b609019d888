//! What the demo's tests share beyond the testkit: the running-demo
//! harness ([`Demo`]) and reading the demo's summary.
//!
//! Owns: starting the real binary on an ephemeral port with its own
//! temporary directory, reading its output, stopping or killing it. Must
//! not: hold helpers any other crate's tests could use (free ports, HTTP,
//! PromQL, process guards, launchers): those live in `hotmeter-testkit`.

// Each test binary includes this module and uses a part of it.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hotmeter_testkit::{ChildGuard, output_lines};

/// The demo binary under test.
pub(crate) const DEMO: &str = env!("CARGO_BIN_EXE_hotmeter-demo");

/// A running demo whose stdout lines arrive on a channel; killed on drop.
/// It listens on an ephemeral loopback port and keeps its database in a
/// temporary directory of its own.
pub(crate) struct Demo {
    /// The demo process, killed (and reaped) on drop.
    process: ChildGuard,
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
        let db = dir.path().join("demo.db");
        let db = db.to_str().expect("a UTF-8 temporary path").to_owned();
        Demo::spawn(dir, &[args, &["--db", &db]].concat())
    }

    /// Starts the demo with `args` (which name its store, `--store`) plus
    /// `--listen 127.0.0.1:0`.
    pub(crate) fn start_with_store(args: &[&str]) -> Demo {
        Demo::spawn(tempfile::tempdir().unwrap(), args)
    }

    fn spawn(dir: tempfile::TempDir, args: &[&str]) -> Demo {
        let mut process = ChildGuard::new();
        let child = process.spawn(
            "hotmeter-demo",
            Command::new(DEMO)
                .args(args)
                .args(["--listen", "127.0.0.1:0"])
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit()),
        );
        let lines = output_lines(child.stdout.take().unwrap());
        Demo { process, lines, seen: Vec::new(), _dir: dir }
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
            if let Some(status) = self.child().try_wait().unwrap() {
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
    fn child(&mut self) -> &mut Child {
        self.process.child("hotmeter-demo")
    }

    /// The database file.
    pub(crate) fn db(&self) -> std::path::PathBuf {
        self._dir.path().join("demo.db")
    }

    /// The process id (e.g. for `kill -TERM`).
    pub(crate) fn pid(&mut self) -> u32 {
        self.child().id()
    }

    /// The lines seen so far.
    pub(crate) fn seen(&self) -> &[String] {
        &self.seen
    }

    /// `kill -9`: no drain, no summary, no destructor runs.
    pub(crate) fn kill9(&mut self) {
        // std's `Child::kill` sends SIGKILL on Unix.
        self.child().kill().expect("SIGKILL the demo");
        let status = self.child().wait().expect("reap the demo");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "the demo died of SIGKILL");
    }
}

/// `checkpoints   N written, M failed` from a demo's summary: N + M.
pub(crate) fn summary_writes(lines: &str) -> Option<u64> {
    let line = lines.lines().find(|l| l.trim_start().starts_with("checkpoints") && l.contains(" written, "))?;
    let mut words = line.split_whitespace();
    let written: u64 = words.nth(1)?.parse().ok()?;
    let failed: u64 = words.nth(1)?.parse().ok()?;
    Some(written + failed)
}
