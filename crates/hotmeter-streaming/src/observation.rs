//! Observations, their priority, and memory-space handles.
//!
//! Owns: the unit of work that flows through the queue and the pool, and
//! the validation of memory-space names. Must not: record metrics (the
//! queue and pool do that) or allocate per observation beyond the payload
//! the caller hands in.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::epoch;
use crate::labels::Priority;
use crate::metrics::SpaceMetrics;

/// One unit of incoming work: an event to be indexed or stored, for one
/// memory space, at one priority.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The memory space (tenant) it belongs to.
    pub space: MemorySpace,
    /// Its priority lane.
    pub priority: Priority,
    /// A caller-chosen key (an event id, say).
    pub key: u64,
    /// The caller's bytes; counted in `streaming_queue_memory_bytes` while queued.
    pub payload: Vec<u8>,
    /// When it was submitted, in nanoseconds since the [`clock`](crate::clock) epoch: workers
    /// measure queue wait and latency with one integer subtraction each
    /// instead of two `Instant` subtractions per observation.
    pub(crate) enqueued_ns: u64,
}

impl Observation {
    /// When it was submitted; latency and queue wait are measured from here.
    pub fn enqueued_at(&self) -> Instant {
        epoch() + Duration::from_nanos(self.enqueued_ns)
    }
}

/// A registered memory space: a cheap handle naming a tenant or namespace of
/// stored data. Get one from [`WorkerPool::memory_space`](crate::WorkerPool::memory_space);
/// the number of spaces a pool accepts is bounded, so the label stays bounded.
/// Two handles are equal when they name the same space of the same pool.
#[derive(Clone)]
pub struct MemorySpace {
    pub(crate) inner: Arc<SpaceShared>,
}

#[derive(Debug)]
pub(crate) struct SpaceShared {
    pub(crate) id: u16,
    pub(crate) name: Box<str>,
    pub(crate) metrics: SpaceMetrics,
}

impl MemorySpace {
    /// The space's name, as exported in the `memory_space` label.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Its dense index in its pool (0, 1, ...), in order of registration.
    pub fn index(&self) -> usize {
        usize::from(self.inner.id)
    }

    pub(crate) fn metrics(&self) -> &SpaceMetrics {
        &self.inner.metrics
    }
}

impl PartialEq for MemorySpace {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for MemorySpace {}

impl fmt::Debug for MemorySpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemorySpace({:?})", &*self.inner.name)
    }
}

/// Longest memory-space name accepted, in bytes.
pub const MAX_SPACE_NAME: usize = 128;

/// Why a memory space could not be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpaceError {
    /// Empty, longer than 128 bytes, or containing a control character.
    InvalidName {
        /// The name given.
        name: String,
    },
    /// The pool already has its configured maximum of memory spaces: the
    /// label's cardinality is bounded on purpose.
    TooMany {
        /// The name given.
        name: String,
        /// The configured maximum.
        limit: usize,
    },
}

impl fmt::Display for SpaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpaceError::InvalidName { name } => write!(
                f,
                "invalid memory space name {name:?}: must be 1 to {MAX_SPACE_NAME} bytes with no control characters"
            ),
            SpaceError::TooMany { name, limit } => {
                write!(f, "cannot add memory space {name:?}: the pool already has its limit of {limit} spaces")
            }
        }
    }
}

impl std::error::Error for SpaceError {}

pub(crate) fn validate_space_name(name: &str) -> Result<(), SpaceError> {
    if name.is_empty() || name.len() > MAX_SPACE_NAME || name.chars().any(char::is_control) {
        return Err(SpaceError::InvalidName { name: name.to_owned() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_names_are_validated() {
        assert!(validate_space_name("tenant-a").is_ok());
        assert!(validate_space_name("with \"quotes\" and \\").is_ok());
        for bad in ["", "new\nline", &"x".repeat(MAX_SPACE_NAME + 1)] {
            assert_eq!(validate_space_name(bad), Err(SpaceError::InvalidName { name: bad.to_owned() }));
        }
    }
}
