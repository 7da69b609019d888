//! What the push tests share: child processes killed on drop, free
//! loopback ports, the one HTTP client (ureq) for GETs and PromQL queries,
//! starting Debian's `prometheus` (as a remote-write receiver) and
//! `prometheus-pushgateway`, and a scripted loopback receiver.
//!
//! Owns: process lifetimes and loopback addresses of the tests. Must not:
//! pass when a binary is missing: the test fails and names the package
//! (the test command installs them).

// Each test binary includes this module and uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Child processes, killed (and reaped) on drop, including on panic.
#[derive(Default)]
pub(crate) struct Procs(pub(crate) Vec<(String, Child)>);

impl Procs {
    pub(crate) fn spawn(&mut self, name: &str, cmd: &mut Command) {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        self.0.push((name.to_owned(), child));
    }

    /// Kills the process started as `name`.
    pub(crate) fn kill(&mut self, name: &str) {
        let i = self.0.iter().position(|(n, _)| n == name).unwrap_or_else(|| panic!("no process {name}"));
        let (_, mut child) = self.0.remove(i);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Fails (never skips) when `bin` is missing.
pub(crate) fn require(bin: &str, package: &str) {
    let found = Command::new(bin).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    assert!(found, "`{bin}` not found: install Debian's {package} (bash ci/test.sh does)");
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `GET http://{addr}{path}?{query}`: (status, body); any status is an
/// answer, a failure to talk HTTP is `None`.
pub(crate) fn get(addr: &str, path: &str, query: &[(&str, &str)]) -> Option<(u16, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.get(format!("http://{addr}{path}"));
    for (k, v) in query {
        request = request.query(k, v);
    }
    let mut response = request.call().ok()?;
    let status = response.status().as_u16();
    let body = response.body_mut().with_config().limit(64 << 20).read_to_string().ok()?;
    Some((status, body))
}

/// Polls `check` every 200 ms until it returns `Some`, or panics after `limit`.
pub(crate) fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// An instant PromQL query: the result vector.
pub(crate) fn query(prom: &str, q: &str) -> Vec<Value> {
    let (status, body) = get(prom, "/api/v1/query", &[("query", q)]).expect("query Prometheus");
    assert_eq!(status, 200, "query {q}: {body}");
    let v: Value = serde_json::from_str(&body).expect("JSON from Prometheus");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// The value of a query that returns one series.
pub(crate) fn scalar(prom: &str, q: &str) -> Option<f64> {
    query(prom, q).first().and_then(|s| s["value"][1].as_str()).and_then(|v| v.parse().ok())
}

/// Starts Debian's Prometheus as a remote-write receiver (no scrape
/// targets) on `addr`, with its data in `dir`; waits until ready.
pub(crate) fn start_receiver(procs: &mut Procs, name: &str, dir: &Path, addr: &str) {
    start_receiver_with(procs, name, dir, addr, &[]);
}

/// [`start_receiver`] with `extra` flags (`--enable-feature=...`).
pub(crate) fn start_receiver_with(procs: &mut Procs, name: &str, dir: &Path, addr: &str, extra: &[&str]) {
    require("prometheus", "prometheus");
    let config = dir.join("receiver.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1m\n").unwrap();
    procs.spawn(
        name,
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg("--web.enable-remote-write-receiver")
            .args(extra)
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::options().create(true).append(true).open(dir.join("prometheus.log")).unwrap()),
    );
    wait_for(&format!("{name} ready"), Duration::from_secs(60), || {
        get(addr, "/-/ready", &[]).filter(|(s, _)| *s == 200).map(|_| ())
    });
}

/// One request the scripted receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) at: Instant,
    pub(crate) method: String,
    pub(crate) path: String,
    /// Header names lowercased.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Received {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A loopback HTTP receiver that answers the n-th request with
/// `script[n]` (the last entry repeats): (status, extra header lines).
pub(crate) fn scripted_receiver(script: Vec<(u16, &'static str)>) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let got = Arc::new(Mutex::new(Vec::new()));
    let store = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut reader = BufReader::new(conn);
            // Keep-alive: serve requests on this connection until it closes.
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).map_or(true, |n| n == 0) {
                    break;
                }
                let mut parts = line.split_whitespace();
                let (method, path) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).map_or(true, |n| n == 0) || h == "\r\n" {
                        break;
                    }
                    if let Some((n, v)) = h.split_once(':') {
                        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
                    }
                }
                let length = headers
                    .iter()
                    .find(|(n, _)| n == "content-length")
                    .and_then(|(_, v)| v.parse::<usize>().ok())
                    .unwrap_or(0);
                let mut body = vec![0; length.min(16 << 20)];
                if reader.read_exact(&mut body).is_err() {
                    break;
                }
                let n = {
                    let mut g = store.lock().unwrap();
                    g.push(Received { at: Instant::now(), method, path, headers, body });
                    g.len() - 1
                };
                let (status, extra) = script[n.min(script.len() - 1)];
                let reply = format!("HTTP/1.1 {status} X\r\n{extra}Content-Length: 2\r\n\r\nno");
                if reader.get_mut().write_all(reply.as_bytes()).is_err() {
                    break;
                }
            }
        }
    });
    (addr, got)
}
