//! A tiny loopback HTTP receiver whose answers the test scripts, for
//! clients under test that push (remote_write, Pushgateway) and for
//! webhooks (Alertmanager's notifications).
//!
//! Owns: accepting connections, parsing each request (keep-alive, bodies
//! by `Content-Length`), recording it and answering as scripted. Must
//! not: answer with broken HTTP: receivers that misbehave on purpose
//! are the tests' own.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// When its body had been read.
    pub at: Instant,
    /// `POST`, `PUT`, ...
    pub method: String,
    /// The request target as sent.
    pub path: String,
    /// Header names lowercased, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body (at most 16 MiB).
    pub body: Vec<u8>,
}

impl Received {
    /// The value of the header `name` (lowercase), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Starts a loopback HTTP receiver that answers the n-th request with
/// `script[n]` (the last entry repeats): (status, extra header lines, each
/// ending in `\r\n`). Returns its `host:port` and the requests it got, in
/// order. It serves until the test process ends.
pub fn scripted(script: Vec<(u16, &'static str)>) -> (String, Arc<Mutex<Vec<Received>>>) {
    scripted_with_bodies(script.into_iter().map(|(status, extra)| (status, extra, "no")).collect())
}

/// [`scripted`] with each answer's body too: (status, extra header lines,
/// body).
pub fn scripted_with_bodies(script: Vec<(u16, &'static str, &'static str)>) -> (String, Arc<Mutex<Vec<Received>>>) {
    scripted_after(Duration::ZERO, script)
}

/// [`scripted_with_bodies`] that waits `delay` after reading each request
/// before it answers (a slow receiver).
pub fn scripted_after(
    delay: Duration,
    script: Vec<(u16, &'static str, &'static str)>,
) -> (String, Arc<Mutex<Vec<Received>>>) {
    assert!(!script.is_empty(), "a script of at least one answer");
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
                std::thread::sleep(delay);
                let (status, extra, body) = script[n.min(script.len() - 1)];
                let reply = format!("HTTP/1.1 {status} X\r\n{extra}Content-Length: {}\r\n\r\n{body}", body.len());
                if reader.get_mut().write_all(reply.as_bytes()).is_err() {
                    break;
                }
            }
        }
    });
    (addr, got)
}
