//! The one HTTP client of the demo's tests: GET over ureq.
//!
//! Owns: fetching a path from a loopback server (the demo's exporter,
//! Prometheus, Alertmanager) with a timeout, query values percent-encoded
//! by the client. Must not: be used where a test sends malformed bytes on
//! purpose — those keep a raw socket.

// Each test binary includes this module and uses a part of it.
#![allow(dead_code)]

use std::time::Duration;

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
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.get(format!("http://{addr}{path}"));
    for (k, v) in query {
        request = request.query(k, v);
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
