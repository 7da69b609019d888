//! Observations, their priority, and memory-space handles.
//!
//! Owns: the unit of work that flows through the queue and the pool, and
//! the validation of memory-space names. Must not: record metrics (the
//! queue and pool do that) or allocate per observation beyond the payload
//! the caller hands in.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::clock::epoch;
use crate::labels::Priority;
use crate::metrics::SpaceMetrics;
use crate::sync::AtomicU64;
use crossbeam_utils::CachePadded;

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
/// the number of spaces a pool holds at once is bounded, so the label stays
/// bounded. Two handles are equal when they name the same space of the same
/// pool. A space can be retired
/// ([`WorkerPool::retire_memory_space`](crate::WorkerPool::retire_memory_space),
/// or by [`PoolConfig::space_idle_timeout`](crate::PoolConfig::space_idle_timeout)):
/// submissions to it are then refused as `retired`, and its series leave
/// `/metrics` once its last observation is processed and
/// [`PoolConfig::retired_linger`](crate::PoolConfig::retired_linger) has passed.
#[derive(Clone)]
pub struct MemorySpace {
    pub(crate) inner: Arc<SpaceShared>,
}

#[derive(Debug)]
pub(crate) struct SpaceShared {
    /// Unique in its pool over the pool's life, never reused.
    pub(crate) id: usize,
    pub(crate) name: Box<str>,
    pub(crate) metrics: SpaceMetrics,
    /// On a cache line of its own: submitters and workers write it, and
    /// workers read the handles beside it.
    pub(crate) life: CachePadded<SpaceLife>,
}

/// One word saying whether a memory space is retired or removed and what
/// still holds it, so that its series are removed only when no recording
/// into them can follow.
///
/// Layout: bits 0 to 38 count holds (one per observation queued or in a
/// worker's hands, or refused and not yet recorded), bit 39 is `RETIRED`,
/// bit 40 `REMOVED`, bits 41 to 63 count submissions (wrapping; the monitor
/// reads a change as activity). A submission takes one hold before it
/// looks at the flags, in one atomic add; an accepted observation keeps it
/// until a worker has recorded it, a refused one gives it back once the
/// refusal is recorded. A submission records its outcome inside the
/// queue's gate (a read lock), and the remover passes through the gate
/// (`ObservationQueue::barrier`) after seeing no holds, so an acceptance
/// whose observation a worker already finished is recorded too. Then it
/// sets `REMOVED` only by a compare-and-swap from "retired, no holds":
/// after that every submission sees `REMOVED` and records nothing. The
/// loom models in `loom-tests/tests/space_life.rs` check this.
#[derive(Debug, Default)]
pub(crate) struct SpaceLife(AtomicU64);

const HOLDS: u64 = (1 << 39) - 1;
const RETIRED: u64 = 1 << 39;
const REMOVED: u64 = 1 << 40;
const SUBMISSION: u64 = 1 << 41;

/// What a submission found when it took its holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entered {
    /// Live: record the outcome into the space's series.
    Live,
    /// Retired, series still exported: record the refusal.
    Retired,
    /// Its series were removed: the refusal is counted in the pool-wide
    /// `streaming_removed_space_uses_total{operation="submit"}` instead.
    Removed,
}

impl SpaceLife {
    /// A submission begins: takes a hold and counts it. The caller records
    /// its outcome as [`Entered`] says; the hold stays with an accepted
    /// observation, a refused one gives it back with [`leave`](Self::leave).
    #[inline]
    pub(crate) fn enter(&self) -> Entered {
        // Acquire: pairs with `retire`'s and `try_remove`'s, so a refused
        // submission sees what it was refused by.
        let prev = self.0.fetch_add(1 + SUBMISSION, Ordering::Acquire);
        if prev & REMOVED != 0 {
            Entered::Removed
        } else if prev & RETIRED != 0 {
            Entered::Retired
        } else {
            Entered::Live
        }
    }

    /// Gives `n` holds back. Release: everything recorded into the space's
    /// series before this happens before the remover's compare-and-swap.
    #[inline]
    pub(crate) fn leave(&self, n: u64) {
        let prev = self.0.fetch_sub(n, Ordering::Release);
        debug_assert!(prev & HOLDS >= n, "more holds given back than taken");
    }

    /// Retires the space; `false` if it already was.
    pub(crate) fn retire(&self) -> bool {
        self.0.fetch_or(RETIRED, Ordering::AcqRel) & RETIRED == 0
    }

    /// Undoes a retirement (the caller holds the pool's space list, so the
    /// space cannot be removed meanwhile); `false` if it was not retired.
    pub(crate) fn revive(&self) -> bool {
        debug_assert!(self.0.load(Ordering::Relaxed) & REMOVED == 0, "a removed space is never in the list");
        self.0.fetch_and(!RETIRED, Ordering::AcqRel) & RETIRED != 0
    }

    pub(crate) fn is_retired(&self) -> bool {
        self.0.load(Ordering::Acquire) & RETIRED != 0
    }

    /// Its series were removed (for good: a removed space never comes back).
    pub(crate) fn is_removed(&self) -> bool {
        self.0.load(Ordering::Acquire) & REMOVED != 0
    }

    /// Retired with nothing holding it: its series take no more records
    /// unless it is revived.
    pub(crate) fn is_drained(&self) -> bool {
        self.0.load(Ordering::Acquire) & (RETIRED | REMOVED | HOLDS) == RETIRED
    }

    /// Marks the space removed if it is drained; `true` when it did, and
    /// then the caller removes its series: no submission or worker can
    /// record into them any more.
    pub(crate) fn try_remove(&self) -> bool {
        let mut cur = self.0.load(Ordering::Relaxed);
        while cur & (RETIRED | REMOVED | HOLDS) == RETIRED {
            // Acquire: every record made before a hold was given back
            // (Release) is in the series the caller reads last.
            match self.0.compare_exchange_weak(cur, cur | REMOVED, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
        false
    }

    /// Submissions so far (wrapping at 2^23): compared between two readings,
    /// a change means the space was used.
    pub(crate) fn submissions(&self) -> u64 {
        self.0.load(Ordering::Relaxed) >> 41
    }
}

impl MemorySpace {
    /// The space's name, as exported in the `memory_space` label.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Its number in its pool (0, 1, ...), in order of registration; a
    /// space registered after another was retired gets a new number, never
    /// a retired one's.
    pub fn index(&self) -> usize {
        self.inner.id
    }

    /// Whether it was retired (submissions are refused as `retired`). A
    /// retired space comes back only through
    /// [`WorkerPool::memory_space`](crate::WorkerPool::memory_space), which
    /// revives it while its series are still exported, or else registers
    /// its name anew (from zero).
    pub fn is_retired(&self) -> bool {
        self.inner.life.is_retired()
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
    /// The pool already holds its configured maximum of memory spaces
    /// (retired ones count until their series are removed): the label's
    /// cardinality is bounded on purpose.
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
