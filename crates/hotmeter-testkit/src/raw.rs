//! Raw bytes over a loopback `TcpStream`, for tests of hotmeter's own
//! server that check its answer byte for byte (status line, every header,
//! an undecoded gzip body) or send what an HTTP client would not.
//!
//! Owns: one request written, one response read until the server closes,
//! every step bounded by a timeout. Must not: be used for ordinary HTTP
//! against a receiver (that is [`http`](crate::http)).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// One parsed response.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Every header as sent (names as the server spelled them).
    pub headers: Vec<(String, String)>,
    /// The body, undecoded.
    pub body: Vec<u8>,
}

impl Reply {
    /// The value of the header `name` (any case), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends raw bytes and reads until the server closes, all within `limit`
/// (connect, send and read together); parses one response. An empty or
/// headless answer (a connection closed or reset without a response) is an
/// error, not a panic, so callers can count failures.
pub fn try_exchange(addr: SocketAddr, request: &[u8], limit: Duration) -> io::Result<Reply> {
    let started = Instant::now();
    let remaining = || limit.checked_sub(started.elapsed()).filter(|d| !d.is_zero());
    let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "no complete response in time");
    let mut s = TcpStream::connect_timeout(&addr, limit)?;
    s.set_write_timeout(Some(remaining().ok_or_else(timed_out)?))?;
    s.write_all(request)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        s.set_read_timeout(Some(remaining().ok_or_else(timed_out)?))?;
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(timed_out());
            }
            Err(e) => return Err(e),
        }
    }
    let Some(split) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("no response head in {} bytes", buf.len())));
    };
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("bad status line in {head:?}")))?;
    let headers =
        lines.filter_map(|l| l.split_once(':').map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))).collect();
    Ok(Reply { status, headers, body: buf[split + 4..].to_vec() })
}

/// [`try_exchange`] with a 10 s limit that panics on failure: for tests
/// where any failure is the test failing.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> Reply {
    try_exchange(addr, request, Duration::from_secs(10)).expect("a response")
}

/// The bytes of a plain `GET` that asks the server to close afterwards,
/// with `extra` header lines (each ending in `\r\n`).
pub fn get_request(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n").into_bytes()
}

/// [`exchange`] of a [`get_request`].
pub fn get(addr: SocketAddr, path: &str, extra: &str) -> Reply {
    exchange(addr, &get_request(path, extra))
}
