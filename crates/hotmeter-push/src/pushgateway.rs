//! The Pushgateway client for batch jobs: [`Pushgateway`] and
//! [`GroupingKey`].
//!
//! Owns: the grouping-key URL (`/metrics/job/<job>{/<label>/<value>}`,
//! with `@base64` for values that contain `/` or are empty, as the
//! Pushgateway README specifies), the three operations (push = `PUT`
//! replaces the group, push-add = `POST` replaces only the metrics pushed,
//! delete = `DELETE`), and their retries. Must not: run in the
//! background (a batch job calls it and waits), or import the exporter
//! (the body is written by this crate's text encoder).

use std::time::Duration;

use base64::Engine as _;
use hotmeter::Registry;

use crate::error::{ConfigError, SendError};
use crate::transport::{Attempt, Backoff, agent, attempt, check_url, retried_status};
use hotmeter_format::{TEXT_CONTENT_TYPE, encode_text};

/// A Pushgateway at a base URL, e.g. `http://127.0.0.1:9091`.
///
/// ```no_run
/// use hotmeter_push::{GroupingKey, Pushgateway};
/// let registry = hotmeter::Registry::new();
/// let rows = registry.counter("export_rows_total", "Rows exported.")?;
/// rows.inc_by(1_234); // ... the batch job's work ...
/// let gateway = Pushgateway::new("http://127.0.0.1:9091")?;
/// let key = GroupingKey::new("nightly_export")?.label("shard", "3")?;
/// gateway.push(&registry, &key)?; // PUT: the group now holds exactly these metrics
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Pushgateway {
    base: String,
    agent: ureq::Agent,
    timeout: Duration,
    retries: u32,
    backoff: (Duration, Duration),
}

impl Pushgateway {
    /// A client for the Pushgateway at `url` (scheme, host, port, and an
    /// optional path prefix): 10 s per attempt, 3 retries on 5xx, 429 and
    /// transport failures, backoff 100 ms to 2 s.
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        check_url(url)?;
        let timeout = Duration::from_secs(10);
        Ok(Self {
            base: url.trim_end_matches('/').to_owned(),
            agent: agent(timeout),
            timeout,
            retries: 3,
            backoff: (Duration::from_millis(100), Duration::from_secs(2)),
        })
    }

    /// The longest one attempt may take.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Retries after a 5xx, 429 or transport failure (0: none). A
    /// `Retry-After` longer than the [timeout](Self::timeout) ends them
    /// at once with the error.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Backoff between retries, doubling from `min` up to `max`.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff = (min, max.max(min));
        self
    }

    /// `PUT`: the group now holds exactly `registry`'s metrics.
    pub fn push(&self, registry: &Registry, key: &GroupingKey) -> Result<(), SendError> {
        self.send(ureq::http::Method::PUT, key, Some(registry))
    }

    /// `POST`: replaces the metrics of the same names in the group, keeps
    /// the others.
    pub fn push_add(&self, registry: &Registry, key: &GroupingKey) -> Result<(), SendError> {
        self.send(ureq::http::Method::POST, key, Some(registry))
    }

    /// `DELETE`: removes the group.
    pub fn delete(&self, key: &GroupingKey) -> Result<(), SendError> {
        self.send(ureq::http::Method::DELETE, key, None)
    }

    fn send(
        &self,
        method: ureq::http::Method,
        key: &GroupingKey,
        registry: Option<&Registry>,
    ) -> Result<(), SendError> {
        let url = format!("{}{}", self.base, key.path());
        let uri: ureq::http::Uri =
            url.parse().map_err(|_| SendError::Transport { attempts: 0, source: ureq::Error::BadUri(url.clone()) })?;
        let mut body = Vec::new();
        if let Some(r) = registry {
            encode_text(r, &mut body);
        }
        let headers: &[(&str, &str)] = if registry.is_some() { &[("Content-Type", TEXT_CONTENT_TYPE)] } else { &[] };
        let mut backoff = Backoff::new(self.backoff.0, self.backoff.1);
        let mut attempts = 0;
        loop {
            attempts += 1;
            match attempt(&self.agent, method.clone(), &uri, headers, &body, self.timeout, retried_status) {
                Attempt::Done(_) => return Ok(()),
                Attempt::Fail(e) | Attempt::RefusesNative(e) => return Err(e),
                Attempt::Retry { after, error } => {
                    // A Retry-After longer than one attempt may take ends
                    // the retries: a batch job does not sleep for hours.
                    if attempts > self.retries || after.is_some_and(|a| a > self.timeout) {
                        return Err(match error {
                            SendError::Unavailable { status, .. } => SendError::Unavailable { status, attempts },
                            SendError::Transport { source, .. } => SendError::Transport { source, attempts },
                            other => other,
                        });
                    }
                    std::thread::sleep(backoff.next(after));
                }
            }
        }
    }
}

/// A Pushgateway group: the job and further label pairs, which the
/// Pushgateway adds to every metric of the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupingKey {
    job: String,
    labels: Vec<(String, String)>,
}

impl GroupingKey {
    /// The group of `job` (any non-empty text).
    pub fn new(job: impl Into<String>) -> Result<Self, ConfigError> {
        let job = job.into();
        if job.is_empty() {
            return Err(ConfigError::EmptyJob);
        }
        Ok(Self { job, labels: Vec::new() })
    }

    /// Adds a label pair; the value may be any text, empty included.
    pub fn label(mut self, name: impl Into<String>, value: impl Into<String>) -> Result<Self, ConfigError> {
        let name = name.into();
        hotmeter::name::validate_label_name(&name)
            .map_err(|source| ConfigError::InvalidLabelName { name: name.clone(), source })?;
        if name == "job" || self.labels.iter().any(|(n, _)| *n == name) {
            return Err(ConfigError::DuplicateLabel { name });
        }
        self.labels.push((name, value.into()));
        Ok(self)
    }

    /// The URL path: `/metrics/job/<job>/<name>/<value>...`.
    ///
    /// ```
    /// let key = hotmeter_push::GroupingKey::new("backup")?.label("path", "/var/tmp")?.label("empty", "")?;
    /// assert_eq!(key.path(), "/metrics/job/backup/path@base64/L3Zhci90bXA=/empty@base64/=");
    /// # Ok::<(), hotmeter_push::ConfigError>(())
    /// ```
    pub fn path(&self) -> String {
        let mut out = String::from("/metrics");
        segment(&mut out, "job", &self.job);
        for (n, v) in &self.labels {
            segment(&mut out, n, v);
        }
        out
    }
}

/// `/name/value`, or `/name@base64/<url-safe base64>` when the value
/// contains `/` or is empty (then `=`); otherwise percent-encoded.
fn segment(out: &mut String, name: &str, value: &str) {
    out.push('/');
    out.push_str(name);
    if value.is_empty() {
        out.push_str("@base64/=");
    } else if value.contains('/') {
        out.push_str("@base64/");
        out.push_str(&base64::engine::general_purpose::URL_SAFE.encode(value));
    } else {
        out.push('/');
        for b in value.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_keys() {
        let k = GroupingKey::new("a job").unwrap().label("instance", "h:9/x").unwrap().label("q", "ü").unwrap();
        assert_eq!(k.path(), "/metrics/job/a%20job/instance@base64/aDo5L3g=/q/%C3%BC");
        assert_eq!(GroupingKey::new("x/y").unwrap().path(), "/metrics/job@base64/eC95");
        assert!(matches!(GroupingKey::new(""), Err(ConfigError::EmptyJob)));
        let k = GroupingKey::new("j").unwrap();
        assert!(matches!(k.clone().label("job", "x"), Err(ConfigError::DuplicateLabel { .. })));
        assert!(matches!(k.clone().label("bad-name", "x"), Err(ConfigError::InvalidLabelName { .. })));
        let k = k.label("a", "1").unwrap();
        assert!(matches!(k.label("a", "2"), Err(ConfigError::DuplicateLabel { name }) if name == "a"));
    }

    #[test]
    fn bad_urls_are_typed_errors() {
        assert!(matches!(Pushgateway::new("localhost:9091"), Err(ConfigError::UnsupportedUrl { .. })));
        assert!(matches!(Pushgateway::new("http://[::1"), Err(ConfigError::InvalidUrl { .. })));
    }
}
