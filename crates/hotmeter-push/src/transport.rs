//! One HTTP attempt and what to do after it: URL checks, the shared
//! `ureq` agent, the classification of an answer (done, retry, give up),
//! `Retry-After`, and exponential backoff with jitter.
//!
//! Owns: how an answer is classified (transport failures are always
//! retried; which statuses are is the caller's rule: [`retried_status`]
//! for remote_write and the Pushgateway, OTLP's own for OTLP) and how long
//! to wait. Must not: hold a lock while a
//! request is on the wire, or read a registry.

use std::time::{Duration, SystemTime};

use crate::error::{ConfigError, SendError};

/// The `User-Agent` every request carries: `hotmeter-push/<version>`.
pub const USER_AGENT: &str = concat!("hotmeter-push/", env!("CARGO_PKG_VERSION"));

/// Checks that `url` is `http(s)://host...` and that TLS is available for
/// `https`; returns it normalised for requests.
pub(crate) fn check_url(url: &str) -> Result<ureq::http::Uri, ConfigError> {
    let uri: ureq::http::Uri = url.parse().map_err(|source| ConfigError::InvalidUrl { url: url.to_owned(), source })?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http"), Some(h)) if !h.is_empty() => Ok(uri),
        (Some("https"), Some(h)) if !h.is_empty() => {
            if cfg!(feature = "rustls") {
                Ok(uri)
            } else {
                Err(ConfigError::TlsDisabled { url: url.to_owned() })
            }
        }
        _ => Err(ConfigError::UnsupportedUrl { url: url.to_owned() }),
    }
}

/// An agent that hands every status back (classification is ours), with a
/// per-request timeout.
pub(crate) fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .user_agent(USER_AGENT)
        .build()
        .into()
}

/// What one attempt came to.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// 2xx, with what the receiver answered (empty when over 1 MiB).
    Done(Vec<u8>),
    /// A status the caller's rule retries, or a transport failure: try
    /// again after at least `after`
    /// (the receiver's `Retry-After`, when it sent one).
    Retry { after: Option<Duration>, error: SendError },
    /// Any other status: never retried.
    Fail(SendError),
    /// Refused because the request holds native histograms and the
    /// receiver has them turned off (Prometheus without the feature answers
    /// 500 "native histograms are disabled"): retrying the same body never
    /// helps; sending classic series does. A [`SendError::Rejected`].
    RefusesNative(SendError),
}

/// Whether a refusal's text says the receiver does not take native
/// histograms (Prometheus: "native histograms are disabled"; Mimir and
/// others word it alike).
pub(crate) fn refuses_native_histograms(body: &str) -> bool {
    let body = body.to_ascii_lowercase();
    body.contains("native histogram")
        && ["disabled", "not enabled", "not supported", "unsupported"].iter().any(|w| body.contains(w))
}

/// Prometheus' rule (remote_write 1.0, the Pushgateway): 5xx and 429 are
/// retried, any other status is not.
pub(crate) fn retried_status(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

/// Sends one request and classifies the answer: 2xx done, a status
/// `retried` says yes to retried, any other refused. `timeout` bounds the
/// whole exchange (connect, send, answer).
pub(crate) fn attempt(
    agent: &ureq::Agent,
    method: ureq::http::Method,
    uri: &ureq::http::Uri,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
    retried: fn(u16) -> bool,
) -> Attempt {
    let mut builder = ureq::http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = match builder.body(body) {
        Ok(r) => r,
        // Headers are ours and constant; a URI was checked. Still no panic.
        Err(e) => return Attempt::Fail(SendError::Transport { attempts: 1, source: ureq::Error::Http(e) }),
    };
    let request = agent.configure_request(request).timeout_global(Some(timeout.max(Duration::from_millis(1)))).build();
    match agent.run(request) {
        Ok(mut response) => {
            let status = response.status().as_u16();
            if (200..300).contains(&status) {
                // Read (drained, so the connection can be reused): OTLP's
                // answer may say some points were refused. At most 1 MiB
                // (a longer answer is read as an empty one).
                return Attempt::Done(
                    response.body_mut().with_config().limit(1 << 20).read_to_vec().unwrap_or_default(),
                );
            }
            let after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(retry_after);
            let text = response.body_mut().with_config().limit(1 << 10).read_to_vec().unwrap_or_default();
            let body = String::from_utf8_lossy(&text).trim().to_owned();
            if refuses_native_histograms(&body) {
                Attempt::RefusesNative(SendError::Rejected { status, body })
            } else if retried(status) {
                Attempt::Retry { after, error: SendError::Unavailable { status, attempts: 1 } }
            } else {
                Attempt::Fail(SendError::Rejected { status, body })
            }
        }
        Err(source) => Attempt::Retry { after: None, error: SendError::Transport { attempts: 1, source } },
    }
}

/// `Retry-After`: delta-seconds or an HTTP date (RFC 9110 §10.2.3);
/// anything else is ignored.
pub(crate) fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs.min(3600)));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO).min(Duration::from_secs(3600)))
}

/// Exponential backoff with jitter: the n-th wait is drawn from
/// `[d/2, d]` where `d = min(max, min * 2^n)`, so clients that failed
/// together do not retry together, and no wait is shorter than half the
/// nominal one.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
    rng: u64,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        // Seeded per client from the clock and an address: jitter, not security.
        let seed = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
            ^ (&min as *const Duration as u64);
        Self { min, max, failures: 0, rng: seed | 1 }
    }

    /// The wait before the next attempt, at least `floor` (a `Retry-After`).
    pub(crate) fn next(&mut self, floor: Option<Duration>) -> Duration {
        let nominal = self.min.saturating_mul(1u32 << self.failures.min(20)).min(self.max);
        self.failures = self.failures.saturating_add(1);
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let fraction = 0.5 + 0.5 * (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        nominal.mul_f64(fraction).max(floor.unwrap_or(Duration::ZERO))
    }

    /// After a success: start again from `min`.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(check_url("http://127.0.0.1:9090/api/v1/write").is_ok());
        assert!(matches!(check_url("not a url"), Err(ConfigError::InvalidUrl { .. })));
        assert!(matches!(check_url("ftp://host/x"), Err(ConfigError::UnsupportedUrl { .. })));
        assert!(matches!(check_url("/api/v1/write"), Err(ConfigError::UnsupportedUrl { .. })));
        assert!(matches!(check_url(""), Err(ConfigError::InvalidUrl { .. } | ConfigError::UnsupportedUrl { .. })));
        let https = check_url("https://mimir.example/api/v1/push");
        if cfg!(feature = "rustls") {
            assert!(https.is_ok());
        } else {
            assert!(matches!(https, Err(ConfigError::TlsDisabled { .. })));
        }
    }

    #[test]
    fn refusals_of_native_histograms_are_told_apart() {
        assert!(refuses_native_histograms("native histograms are disabled"));
        assert!(refuses_native_histograms(
            "err-mimir-native-histogram-ingestion-disabled: Native histogram ingestion is disabled"
        ));
        assert!(!refuses_native_histograms("out of order sample"));
        assert!(!refuses_native_histograms("native histogram has negative count"));
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(retry_after("1"), Some(Duration::from_secs(1)));
        assert_eq!(retry_after(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(retry_after("soon"), None);
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO), "a past date: now");
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        let d = retry_after(&later).unwrap();
        assert!(d > Duration::from_secs(25) && d <= Duration::from_secs(30), "{d:?}");
    }

    #[test]
    fn backoff_doubles_within_jitter_and_honours_a_floor() {
        let (min, max) = (Duration::from_millis(100), Duration::from_millis(1000));
        let mut b = Backoff::new(min, max);
        let mut nominal = min;
        for _ in 0..8 {
            let d = b.next(None);
            assert!(d >= nominal / 2 && d <= nominal, "{d:?} outside [{:?}, {nominal:?}]", nominal / 2);
            nominal = (nominal * 2).min(max);
        }
        assert_eq!(b.next(Some(Duration::from_secs(3))), Duration::from_secs(3));
        b.reset();
        assert!(b.next(None) <= min);
    }
}
