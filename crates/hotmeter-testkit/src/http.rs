//! The one HTTP client of the tests: `GET` over ureq against a loopback
//! server (hotmeter's exporter, the demo, Prometheus, Alertmanager,
//! Pushgateway, Chromium's DevTools), with a timeout.
//!
//! Owns: building the request (query values percent-encoded by ureq, an
//! optional bearer token) and reading the answer. Must not: turn an HTTP
//! status into an error (a 401 or a 500 is an answer the test checks), nor
//! be used where a test sends malformed bytes on purpose (see
//! [`raw`](crate::raw)).

use std::time::Duration;

/// One answer: status, the headers the tests check, and the body.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// `HTTP/1.1`, ...
    pub version: String,
    /// `Content-Type`, lowercased; empty when absent.
    pub content_type: String,
    /// Whether the body came with `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// The body (at most 64 MiB).
    pub body: String,
}

/// `GET http://{addr}{path}`; any status is an answer, only a failure to
/// talk HTTP (refused, reset, 10 s without an answer) is an error.
pub fn get(addr: &str, path: &str) -> Result<Reply, ureq::Error> {
    get_as(addr, path, &[], None)
}

/// [`get`] with a query string: `GET http://{addr}{path}?{query}`.
pub fn get_with(addr: &str, path: &str, query: &[(&str, &str)]) -> Result<Reply, ureq::Error> {
    get_as(addr, path, query, None)
}

/// [`get_with`], sending `Authorization: Bearer {token}` when given.
pub fn get_as(addr: &str, path: &str, query: &[(&str, &str)], token: Option<&str>) -> Result<Reply, ureq::Error> {
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

/// Whether `GET http://{addr}{path}` answers 200 (a readiness probe).
pub fn is_ok(addr: &str, path: &str) -> bool {
    get(addr, path).is_ok_and(|r| r.status == 200)
}
