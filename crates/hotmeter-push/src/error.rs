//! Typed errors: [`ConfigError`] (refused before anything is sent),
//! [`EncodeError`] (a body could not be built) and [`SendError`] (a
//! receiver refused, failed or could not be reached).
//!
//! Owns: the error enums and their messages. Must not: carry a cause as a
//! `String` (causes are kept as [`source`](std::error::Error::source)).

use std::fmt;

/// A setting refused when a client is built, naming the bad input.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// The URL does not parse.
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it does not parse.
        source: ureq::http::uri::InvalidUri,
    },
    /// The URL is not `http://host...` or `https://host...`.
    UnsupportedUrl {
        /// The URL as given.
        url: String,
    },
    /// An `https://` URL, but the crate was built without the `rustls`
    /// feature.
    TlsDisabled {
        /// The URL as given.
        url: String,
    },
    /// A label name (external label, grouping key) that Prometheus
    /// cannot take.
    InvalidLabelName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        source: hotmeter::NameError,
    },
    /// An OTLP resource attribute that cannot be sent (an empty key, or
    /// an empty `service.name`).
    InvalidAttribute {
        /// The key as given.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The same label name given twice.
    DuplicateLabel {
        /// The repeated name.
        name: String,
    },
    /// A Pushgateway grouping key needs a non-empty job name.
    EmptyJob,
    /// The queue must hold at least two snapshots (the one being sent and
    /// the newest).
    QueueCapacity {
        /// The capacity asked for.
        capacity: usize,
    },
    /// A zero interval, timeout or backoff, or a backoff minimum above its
    /// maximum.
    Timing {
        /// Which setting.
        setting: &'static str,
    },
    /// The client's own metrics could not be registered (a name collision
    /// in the registry).
    Metrics(hotmeter::RegistryError),
    /// The background threads could not be started.
    Spawn(std::io::Error),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl { url, .. } => write!(f, "invalid URL {url:?}"),
            Self::UnsupportedUrl { url } => write!(f, "URL {url:?} is not http://HOST[:PORT]/... or https://..."),
            Self::TlsDisabled { url } => {
                write!(f, "URL {url:?} needs TLS, but hotmeter-push was built without its `rustls` feature")
            }
            Self::InvalidLabelName { name, .. } => write!(f, "invalid label name {name:?}"),
            Self::DuplicateLabel { name } => write!(f, "label {name:?} given twice"),
            Self::InvalidAttribute { key, reason } => write!(f, "invalid OTLP resource attribute {key:?}: {reason}"),
            Self::EmptyJob => f.write_str("a Pushgateway grouping key needs a non-empty job name"),
            Self::QueueCapacity { capacity } => write!(f, "queue capacity {capacity} is below the minimum of 2"),
            Self::Timing { setting } => write!(f, "invalid {setting}: must be non-zero (and backoff min <= max)"),
            Self::Metrics(_) => f.write_str("cannot register the push client's own metrics"),
            Self::Spawn(_) => f.write_str("cannot start the push threads"),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::InvalidUrl { source, .. } => Some(source),
            Self::InvalidLabelName { source, .. } => Some(source),
            Self::Metrics(e) => Some(e),
            Self::Spawn(e) => Some(e),
            _ => None,
        }
    }
}

/// A request body could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum EncodeError {
    /// Protobuf encoding failed.
    Protobuf(prost::EncodeError),
    /// Snappy compression failed (an input beyond snappy's block size).
    Compress(snap::Error),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protobuf(_) => f.write_str("cannot encode the WriteRequest"),
            Self::Compress(_) => f.write_str("cannot snappy-compress the WriteRequest"),
        }
    }
}

impl std::error::Error for EncodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Protobuf(e) => Some(e),
            Self::Compress(e) => Some(e),
        }
    }
}

/// A push that did not succeed.
#[derive(Debug)]
#[non_exhaustive]
pub enum SendError {
    /// The receiver refused the request with a status that is never
    /// retried (4xx other than 429): the data is dropped.
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The start of the receiver's answer (at most 1 KiB), to say why.
        body: String,
    },
    /// The receiver kept answering 5xx or 429 until the attempts or the
    /// deadline ran out.
    Unavailable {
        /// The last HTTP status.
        status: u16,
        /// Attempts made.
        attempts: u32,
    },
    /// The receiver could not be reached (refused, reset, timed out) until
    /// the attempts or the deadline ran out.
    Transport {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        source: ureq::Error,
    },
    /// The body could not be built.
    Encode(EncodeError),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rejected { status, body } => write!(f, "the receiver refused the push with HTTP {status}: {body}"),
            Self::Unavailable { status, attempts } => {
                write!(f, "the receiver answered HTTP {status} to all {attempts} attempts")
            }
            Self::Transport { attempts, .. } => write!(f, "the receiver could not be reached in {attempts} attempts"),
            Self::Encode(_) => f.write_str("cannot build the push body"),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Transport { source, .. } => Some(source),
            Self::Encode(e) => Some(e),
            _ => None,
        }
    }
}
