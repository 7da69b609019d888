//! Migration inputs from a Prometheus server, through its HTTP query API.
//!
//! Owns: the three PromQL queries (built from the metric constants in
//! [`crate::metrics`] and the namespace rule of [`hotmeter::name::full_name`]) and
//! reading their answers. Must not: read a missing, failed or NaN answer as
//! "sufficient" — each is a typed [`SourceError`] — or speak HTTP itself
//! (`ureq` does).

use std::time::{Duration, SystemTime};

use hotmeter::name::full_name;
use serde_json::Value;

use super::{Deployment, InvalidInput, MigrationMetrics, ScaleMetrics};
use crate::metrics::{
    CHECKPOINT_FILE_SIZE, CHECKPOINT_POOL_CONNECTIONS, CHECKPOINT_WRITE_DURATION, CHECKPOINT_WRITES, WriteStatus,
};

/// Why Prometheus could not supply the inputs. Never read as "sufficient".
#[derive(Debug)]
#[non_exhaustive]
pub enum SourceError {
    /// The URL is not `http://host:port[/path]`.
    InvalidUrl {
        /// The URL given.
        url: String,
    },
    /// Connecting or talking to the server failed (down, refused, reset).
    Unreachable {
        /// The server address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The server did not answer within the timeout.
    Timeout {
        /// The server address.
        addr: String,
        /// The timeout.
        after: Duration,
    },
    /// An HTTP status other than 200.
    Http {
        /// The query.
        query: String,
        /// The status code.
        status: u16,
    },
    /// The answer was not the API's JSON, or Prometheus reported an error.
    BadResponse {
        /// The query.
        query: String,
        /// What Prometheus said, or what was wrong with the answer.
        detail: String,
    },
    /// The query returned no samples: the target is not scraped, or the
    /// metric has no data in the window.
    NoData {
        /// The query.
        query: String,
    },
    /// A value Prometheus returned is not a valid input (NaN, negative...).
    Invalid(InvalidInput),
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceError::InvalidUrl { url } => write!(f, "invalid Prometheus URL {url:?}: expected http://host:port"),
            SourceError::Unreachable { addr, .. } => write!(f, "cannot reach Prometheus at {addr}"),
            SourceError::Timeout { addr, after } => write!(f, "Prometheus at {addr} did not answer within {after:?}"),
            SourceError::Http { query, status } => write!(f, "Prometheus answered HTTP {status} to {query}"),
            SourceError::BadResponse { query, detail } => write!(f, "unusable answer to {query}: {detail}"),
            SourceError::NoData { query } => {
                write!(f, "Prometheus has no data for {query} (is the service scraped, and has it written anything?)")
            }
            SourceError::Invalid(e) => write!(f, "Prometheus returned an unusable value: {e}"),
        }
    }
}

impl std::error::Error for SourceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SourceError::Unreachable { source, .. } => Some(source),
            SourceError::Invalid(e) => Some(e),
            _ => None,
        }
    }
}

/// Reads write rate, error percentage and file size from Prometheus:
/// `sum(rate(checkpoint_writes_total[W]))`, the error share of it, and
/// `max(checkpoint_store_file_size_bytes)`.
#[derive(Debug, Clone)]
pub struct PrometheusSource {
    host: String,
    path_prefix: String,
    timeout: Duration,
    window: String,
    namespace: Option<String>,
}

impl PrometheusSource {
    /// A source for the server at `url` (`http://127.0.0.1:9090`), with a
    /// 5 s timeout, a `5m` rate window and unprefixed metric names.
    pub fn new(url: &str) -> Result<Self, SourceError> {
        let bad = || SourceError::InvalidUrl { url: url.to_owned() };
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
        if host.is_empty() || !host.contains(':') {
            return Err(bad());
        }
        let path_prefix = if path.is_empty() { String::new() } else { format!("/{}", path.trim_end_matches('/')) };
        Ok(PrometheusSource {
            host: host.to_owned(),
            path_prefix,
            timeout: Duration::from_secs(5),
            window: "5m".into(),
            namespace: None,
        })
    }

    /// How long to wait for each answer.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The rate window, a PromQL duration such as `5m` or `30s`.
    pub fn window(mut self, window: &str) -> Self {
        self.window = window.to_owned();
        self
    }

    /// The metrics' namespace (`engram` for `engram_checkpoint_writes_total`).
    pub fn namespace(mut self, namespace: Option<&str>) -> Self {
        self.namespace = namespace.map(str::to_owned);
        self
    }

    /// Queries the three inputs now.
    pub fn fetch(&self, deployment: Deployment) -> Result<MigrationMetrics, SourceError> {
        let (ns, w) = (self.namespace.as_deref(), &self.window);
        let writes_total = full_name(ns, CHECKPOINT_WRITES);
        let writes = format!("sum(rate({writes_total}[{w}]))");
        let errors = format!("sum(rate({writes_total}{{status=\"{}\"}}[{w}]))", WriteStatus::Error.as_str());
        let size = format!("max({})", full_name(ns, CHECKPOINT_FILE_SIZE));
        let wps = self.scalar(&writes)?;
        let err = self.scalar(&errors)?;
        let bytes = self.scalar(&size)?;
        let pct = if wps > 0.0 { 100.0 * err / wps } else { 0.0 };
        let mut m = MigrationMetrics::new(pct, wps, deployment, 0).map_err(SourceError::Invalid)?;
        if !(bytes.is_finite() && bytes >= 0.0) {
            return Err(SourceError::Invalid(InvalidInput { field: "file_size_bytes", value: bytes }));
        }
        m.file_size_bytes = bytes as u64;
        m.timestamp = SystemTime::now();
        Ok(m)
    }

    /// Queries the PostgreSQL decision's inputs now: write and error
    /// rates, the p99 write latency from the classic buckets' rates, and
    /// the pool's average busy share over the window (no pool, e.g. a store
    /// still on SQLite, is [`SourceError::NoData`]).
    pub fn fetch_postgres(&self) -> Result<ScaleMetrics, SourceError> {
        let (ns, w) = (self.namespace.as_deref(), &self.window);
        let writes_total = full_name(ns, CHECKPOINT_WRITES);
        let wps = self.scalar(&format!("sum(rate({writes_total}[{w}]))"))?;
        let err =
            self.scalar(&format!("sum(rate({writes_total}{{status=\"{}\"}}[{w}]))", WriteStatus::Error.as_str()))?;
        let buckets = format!("{}_bucket", full_name(ns, CHECKPOINT_WRITE_DURATION));
        let p99 = self.scalar(&format!("histogram_quantile(0.99, sum by (le) (rate({buckets}[{w}])))"))?;
        let pool = full_name(ns, CHECKPOINT_POOL_CONNECTIONS);
        let busy = self.scalar(&format!(
            "sum(avg_over_time({pool}{{state=\"busy\"}}[{w}])) / sum(max_over_time({pool}{{state=\"max\"}}[{w}]) > 0)"
        ))?;
        let pct = if wps > 0.0 { 100.0 * err / wps } else { 0.0 };
        ScaleMetrics::new(pct, wps, p99, busy.clamp(0.0, 1.0)).map_err(SourceError::Invalid)
    }

    /// One instant query that must return exactly one sample.
    fn scalar(&self, query: &str) -> Result<f64, SourceError> {
        let body = self.get("/api/v1/query", query)?;
        let bad = |detail: String| SourceError::BadResponse { query: query.to_owned(), detail };
        let v: Value = serde_json::from_str(&body).map_err(|e| bad(format!("not JSON ({e})")))?;
        if v["status"] != "success" {
            return Err(bad(format!(
                "{}: {}",
                v["errorType"].as_str().unwrap_or("error"),
                v["error"].as_str().unwrap_or("?")
            )));
        }
        let result = v["data"]["result"].as_array().ok_or_else(|| bad("no result vector".into()))?;
        let sample = result.first().ok_or_else(|| SourceError::NoData { query: query.to_owned() })?;
        let text = sample["value"][1].as_str().ok_or_else(|| bad("sample without a value".into()))?;
        let value: f64 = text.parse().map_err(|_| bad(format!("value {text:?} is not a number")))?;
        if value.is_nan() {
            // A ratio or quantile over no data: as good as no data.
            return Err(SourceError::NoData { query: query.to_owned() });
        }
        Ok(value)
    }

    /// `GET <path>?query=<query>` (the client percent-encodes it); the body
    /// of a 200, or of an error answer that carries the API's JSON.
    fn get(&self, path: &str, query: &str) -> Result<String, SourceError> {
        let agent: ureq::Agent =
            ureq::Agent::config_builder().timeout_global(Some(self.timeout)).http_status_as_error(false).build().into();
        let url = format!("http://{}{}{path}", self.host, self.path_prefix);
        let failed = |e: ureq::Error| match e {
            ureq::Error::Timeout(_) => SourceError::Timeout { addr: self.host.clone(), after: self.timeout },
            ureq::Error::Io(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                SourceError::Timeout { addr: self.host.clone(), after: self.timeout }
            }
            e => SourceError::Unreachable { addr: self.host.clone(), source: e.into_io() },
        };
        let mut response =
            agent.get(&url).query("query", query).header("Accept", "application/json").call().map_err(failed)?;
        let status = response.status().as_u16();
        let body =
            response.body_mut().with_config().limit(64 << 20).lossy_utf8(true).read_to_string().map_err(failed)?;
        // The API answers 400/422/503 with a JSON error body worth showing.
        if status != 200 && !body.trim_start().starts_with('{') {
            return Err(SourceError::Http { query: query.to_owned(), status });
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(PrometheusSource::new("http://127.0.0.1:9090").is_ok());
        assert!(PrometheusSource::new("http://127.0.0.1:9090/prom/").is_ok());
        for bad in ["127.0.0.1:9090", "https://x:1", "http://", "http://nohost"] {
            assert!(matches!(PrometheusSource::new(bad), Err(SourceError::InvalidUrl { .. })), "{bad}");
        }
    }

    #[test]
    fn a_server_that_is_down_is_an_error() {
        let src = PrometheusSource::new(&format!("http://{}", hotmeter_testkit::free_addr())).unwrap();
        assert!(matches!(src.fetch(Deployment::SingleServer), Err(SourceError::Unreachable { .. })));
    }

    #[test]
    fn a_server_that_hangs_is_a_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepts (the kernel does) but never answers.
        let src = PrometheusSource::new(&format!("http://{addr}")).unwrap().timeout(Duration::from_millis(200));
        let err = src.fetch(Deployment::SingleServer).unwrap_err();
        assert!(matches!(err, SourceError::Timeout { .. }), "{err:?}");
        drop(listener);
    }

    /// Serves one canned HTTP answer per connection.
    fn canned(answers: Vec<String>) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for (conn, answer) in listener.incoming().zip(answers) {
                let mut conn = conn.unwrap();
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.ends_with(b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = conn.write_all(answer.as_bytes());
            }
        });
        format!("http://{addr}")
    }

    fn ok(value: &str) -> String {
        format!(
            "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{{\"status\":\"success\",\"data\":{{\"resultType\":\"vector\",\"result\":[{{\"metric\":{{}},\"value\":[1.0,\"{value}\"]}}]}}}}"
        )
    }

    #[test]
    fn answers_are_read_and_empty_ones_are_errors() {
        let url = canned(vec![ok("87"), ok("1.827"), ok("10000000")]);
        let m = PrometheusSource::new(&url).unwrap().fetch(Deployment::SingleServer).unwrap();
        assert_eq!(m.writes_per_second, 87.0);
        assert!((m.error_rate_percent - 2.1).abs() < 1e-9);
        assert_eq!(m.file_size_bytes, 10_000_000);

        let empty =
            "HTTP/1.0 200 OK\r\n\r\n{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[]}}"
                .to_owned();
        let url = canned(vec![empty]);
        assert!(matches!(
            PrometheusSource::new(&url).unwrap().fetch(Deployment::SingleServer),
            Err(SourceError::NoData { .. })
        ));

        let error = "HTTP/1.0 400 Bad Request\r\n\r\n{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"parse error\"}".to_owned();
        let url = canned(vec![error]);
        let err = PrometheusSource::new(&url).unwrap().fetch(Deployment::SingleServer).unwrap_err();
        assert!(matches!(&err, SourceError::BadResponse { detail, .. } if detail.contains("parse error")), "{err:?}");

        let url = canned(vec!["HTTP/1.0 503 Service Unavailable\r\n\r\nnot ready".to_owned()]);
        assert!(matches!(
            PrometheusSource::new(&url).unwrap().fetch(Deployment::SingleServer),
            Err(SourceError::Http { status: 503, .. })
        ));
    }
}
