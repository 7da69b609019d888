//! The observation queue: three bounded lock-free priority lanes.
//!
//! Owns: the lanes (crossbeam `ArrayQueue`s), the enqueue decision (accept,
//! or reject with a typed reason and hand the observation back), the
//! published backpressure state, and the shutdown gate. Must not: block a
//! submitter (the gate's per-thread-shard read lock is only ever contended
//! by `close`, once) or drop an observation it did not hand back.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock};

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use crossbeam_utils::sync::Unparker;
use hotmeter::{Counter, LabelSet};

use crate::labels::{BackpressureState, Priority, RejectReason, SpaceOperation};
use crate::observation::{Entered, MemorySpace, Observation};

/// An observation the queue refused, handed back with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct EnqueueError {
    reason: RejectReason,
    observation: Observation,
}

impl EnqueueError {
    /// Why it was refused.
    pub fn reason(&self) -> RejectReason {
        self.reason
    }

    /// The refused observation.
    pub fn observation(&self) -> &Observation {
        &self.observation
    }

    /// Takes the refused observation back, to retry or store elsewhere.
    pub fn into_observation(self) -> Observation {
        self.observation
    }
}

impl fmt::Display for EnqueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.observation;
        let why = match self.reason {
            RejectReason::QueueFull => "its priority lane is full",
            RejectReason::Backpressure => "backpressure is shedding this priority",
            RejectReason::Invalid => "its payload exceeds the configured maximum",
            RejectReason::Shutdown => "the pool is shutting down",
            RejectReason::Retired => "its memory space was retired",
        };
        write!(
            f,
            "observation {} for memory space {:?} at priority {} rejected ({}): {why}",
            o.key,
            o.space.name(),
            o.priority.as_str(),
            self.reason.as_str()
        )
    }
}

impl std::error::Error for EnqueueError {}

/// Sizes of the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Capacity of the `high` lane (default 1,024).
    pub high: usize,
    /// Capacity of the `normal` lane (default 4,096).
    pub normal: usize,
    /// Capacity of the `low` lane (default 2,048).
    pub low: usize,
    /// Largest payload accepted, in bytes (default 64 KiB); larger ones are
    /// rejected as `invalid`.
    pub max_payload_bytes: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig { high: 1024, normal: 4096, low: 2048, max_payload_bytes: 64 * 1024 }
    }
}

impl QueueConfig {
    /// Capacity of one lane.
    pub fn capacity(&self, p: Priority) -> usize {
        match p {
            Priority::High => self.high,
            Priority::Normal => self.normal,
            Priority::Low => self.low,
        }
    }

    /// Capacity of all lanes together.
    pub fn total_capacity(&self) -> usize {
        self.high + self.normal + self.low
    }
}

/// Shards of the shutdown gate: one per thread slot, cache padded.
const GATE_SHARDS: usize = 16;

fn gate_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % GATE_SHARDS;
    }
    SHARD.with(|s| *s)
}

/// Three bounded lock-free lanes of [`Observation`]s. Created by a
/// [`WorkerPool`](crate::WorkerPool), which submits through it and reads
/// it from its workers; see [`WorkerPool::queue`](crate::WorkerPool::queue).
#[derive(Debug)]
pub struct ObservationQueue {
    lanes: [ArrayQueue<Observation>; 3],
    config: QueueConfig,
    state: AtomicU8,
    /// `true` once closed. A submitter holds its shard's read lock from the
    /// check to the push, so after `close` has taken every write lock no
    /// push can land unseen.
    gate: Box<[CachePadded<RwLock<bool>>]>,
    /// Set once `close` has shut every shard of the gate.
    closed: AtomicBool,
    bytes_in: Counter,
    bytes_out: Counter,
    idle: AtomicUsize,
    wake_next: AtomicUsize,
    unparkers: Vec<Unparker>,
}

impl ObservationQueue {
    pub(crate) fn new(config: QueueConfig, unparkers: Vec<Unparker>) -> Self {
        ObservationQueue {
            lanes: [
                ArrayQueue::new(config.high.max(1)),
                ArrayQueue::new(config.normal.max(1)),
                ArrayQueue::new(config.low.max(1)),
            ],
            config,
            state: AtomicU8::new(BackpressureState::Normal.value()),
            gate: (0..GATE_SHARDS).map(|_| CachePadded::new(RwLock::new(false))).collect(),
            closed: AtomicBool::new(false),
            bytes_in: Counter::new(),
            bytes_out: Counter::new(),
            idle: AtomicUsize::new(0),
            wake_next: AtomicUsize::new(0),
            unparkers,
        }
    }

    /// Offers `obs`; on refusal the observation comes back with the reason,
    /// already counted in `streaming_observations_rejected_total`.
    /// `space` is `obs.space` borrowed from the caller, so its metrics can be
    /// reached after `obs` has moved into a lane (no extra reference count).
    pub(crate) fn push(&self, space: &MemorySpace, obs: Observation) -> Result<(), EnqueueError> {
        debug_assert!(space == &obs.space);
        let priority = obs.priority;
        let bytes = obs.payload.len() as u64;
        // A hold on the space for the observation (a worker gives it back
        // once it recorded it), and the gate's read lock until this
        // submission's outcome is recorded: a retired space's series are
        // removed only with no holds and after a pass through the gate
        // (`barrier`), so never under a record.
        let entered = space.inner.life.enter();
        let closed = self.gate[gate_shard()].read().unwrap_or_else(PoisonError::into_inner);
        let result = {
            if entered != Entered::Live {
                Err((RejectReason::Retired, obs))
            } else if *closed {
                Err((RejectReason::Shutdown, obs))
            } else if obs.payload.len() > self.config.max_payload_bytes {
                Err((RejectReason::Invalid, obs))
            } else if self.state().sheds(priority) {
                Err((RejectReason::Backpressure, obs))
            } else {
                self.lanes[priority.index()].push(obs).map_err(|obs| (RejectReason::QueueFull, obs))
            }
        };
        let m = space.metrics();
        match result {
            Ok(()) => {
                m.accepted(priority);
                drop(closed);
                self.bytes_in.inc_by(bytes);
                self.wake_one();
                Ok(())
            }
            Err((reason, observation)) => {
                // A removed space's series are gone: the refusal is counted
                // in the pool-wide series of uses after removal.
                if entered == Entered::Removed {
                    m.used_after_removal(SpaceOperation::Submit);
                } else {
                    m.rejected(reason);
                }
                drop(closed);
                space.inner.life.leave(1);
                Err(EnqueueError { reason, observation })
            }
        }
    }

    /// Returns once every submission that was inside the gate when it was
    /// called has recorded its outcome (the pool calls it before removing
    /// a drained space's series).
    pub(crate) fn barrier(&self) {
        for shard in self.gate.iter() {
            drop(shard.write().unwrap_or_else(PoisonError::into_inner));
        }
    }

    /// Wakes a parked worker, if any is parked. A wake-up lost to a race
    /// with a worker going idle costs at most the worker's park timeout (1 ms).
    fn wake_one(&self) {
        if self.idle.load(Ordering::Relaxed) > 0 && !self.unparkers.is_empty() {
            let i = self.wake_next.fetch_add(1, Ordering::Relaxed) % self.unparkers.len();
            self.unparkers[i].unpark();
        }
    }

    pub(crate) fn wake_all(&self) {
        self.unparkers.iter().for_each(Unparker::unpark);
    }

    /// Takes the next observation, `high` lane first, then `normal`, then `low`.
    pub(crate) fn pop(&self) -> Option<Observation> {
        let obs = self.lanes.iter().find_map(ArrayQueue::pop)?;
        self.bytes_out.inc_by(obs.payload.len() as u64);
        Some(obs)
    }

    pub(crate) fn idle_workers(&self) -> &AtomicUsize {
        &self.idle
    }

    /// Closes the gate: every later submission is refused as `shutdown`.
    /// Returns once no submission that passed the gate is still pushing.
    pub(crate) fn close(&self) {
        for shard in self.gate.iter() {
            *shard.write().unwrap_or_else(PoisonError::into_inner) = true;
        }
        // Only now: every shard is shut, so no submission can still be
        // pushing (a worker that sees this and an empty queue may stop).
        self.closed.store(true, Ordering::Release);
    }

    /// Whether the pool has closed the queue for shutdown: the gate is
    /// shut on every shard and no submission that passed it is still
    /// pushing, so an empty queue stays empty.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Observations waiting in one lane.
    pub fn len(&self, priority: Priority) -> usize {
        self.lanes[priority.index()].len()
    }

    /// Observations waiting in all lanes.
    pub fn total_len(&self) -> usize {
        self.lanes.iter().map(ArrayQueue::len).sum()
    }

    /// Whether every lane is empty.
    pub fn is_empty(&self) -> bool {
        self.lanes.iter().all(ArrayQueue::is_empty)
    }

    /// The sizes it was built with.
    pub fn config(&self) -> QueueConfig {
        self.config
    }

    /// Queued observations over total capacity, 0 to 1.
    pub fn utilization(&self) -> f64 {
        self.total_len() as f64 / self.config.total_capacity().max(1) as f64
    }

    /// Bytes held by queued observations: slots plus payloads.
    pub fn memory_bytes(&self) -> u64 {
        let payload = self.bytes_in.get().saturating_sub(self.bytes_out.get());
        self.total_len() as u64 * std::mem::size_of::<Observation>() as u64 + payload
    }

    /// The backpressure state submissions are judged by.
    pub fn state(&self) -> BackpressureState {
        BackpressureState::from_value(self.state.load(Ordering::Relaxed)).unwrap_or(BackpressureState::Normal)
    }

    pub(crate) fn set_state(&self, state: BackpressureState) {
        self.state.store(state.value(), Ordering::Relaxed);
    }
}
