//! An instrumented streaming pipeline: where capacity problems show first.
//!
//! `hotmeter-streaming` is the first real customer of the hotmeter core. It
//! records through the same public API any user has, and it instruments the
//! parts of a streaming memory system that hit their ceiling first:
//!
//! | part | type | what it tells you |
//! |---|---|---|
//! | observation queue | [`ObservationQueue`] | depth per priority lane, rejections by reason |
//! | worker pool | [`WorkerPool`], [`BatchHandler`] | batches, failures, work stealing, utilisation, end-to-end latency |
//! | backpressure | [`BackpressureMonitor`], [`BackpressureState`] | state 0-3 with hysteresis, activations, load shedding |
//! | recall | [`RecallIndex`] | read latency against what was stored |
//!
//! Every metric name lives in one place, [`metrics`], with its labels and
//! help text. With a registry namespace (`Registry::builder().namespace("engram")`)
//! the names become `engram_streaming_...`.
//!
//! The checkpoint store and the migration decision live in
//! `hotmeter-checkpoint`; SLOs and trace continuity in `hotmeter-slo`.
//!
//! # Quick start
//! ```
//! use std::sync::Arc;
//! use hotmeter_streaming::{BatchContext, BatchFailure, BatchHandler, Observation, PoolConfig, Priority, WorkerPool};
//!
//! #[derive(Debug)]
//! struct Sum(std::sync::atomic::AtomicU64);
//! impl BatchHandler for Sum {
//!     fn handle(&self, _ctx: &BatchContext, batch: &[Observation]) -> Result<(), BatchFailure> {
//!         for o in batch {
//!             self.0.fetch_add(o.key, std::sync::atomic::Ordering::Relaxed);
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let registry = hotmeter::Registry::new();
//! let handler = Arc::new(Sum(Default::default()));
//! let pool = WorkerPool::start(PoolConfig { workers: 2, ..PoolConfig::default() }, &registry, handler.clone())?;
//! let space = pool.memory_space("tenant-a")?;
//! for key in 1..=100 {
//!     pool.submit(&space, Priority::Normal, key, Vec::new())?;
//! }
//! let report = pool.shutdown(hotmeter_streaming::Shutdown::Drain);
//! assert_eq!(report.processed, 100);
//! assert_eq!(handler.0.load(std::sync::atomic::Ordering::Relaxed), 5050);
//! let snap = registry.snapshot();
//! assert_eq!(
//!     snap.value("streaming_observations_total", &["tenant-a", "normal"]),
//!     Some(&hotmeter::OwnedValue::Counter(100))
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Features
//! None.
#![forbid(unsafe_code)]

mod backpressure;
mod clock;
mod labels;
pub mod metrics;
mod observation;
mod pool;
mod queue;
mod recall;
mod sync;

/// The real memory-space lifecycle word, for the loom models in
/// `loom-tests` (only under `--cfg hotmeter_loom`); not an API.
#[cfg(hotmeter_loom)]
#[doc(hidden)]
pub mod __loom {
    /// [`observation::SpaceLife`](crate::observation), method for method.
    #[derive(Debug, Default)]
    pub struct SpaceLife(crate::observation::SpaceLife);

    #[allow(missing_docs)]
    impl SpaceLife {
        /// `Some(true)` live, `Some(false)` retired, `None` removed.
        pub fn enter(&self) -> Option<bool> {
            match self.0.enter() {
                crate::observation::Entered::Live => Some(true),
                crate::observation::Entered::Retired => Some(false),
                crate::observation::Entered::Removed => None,
            }
        }
        pub fn leave(&self, n: u64) {
            self.0.leave(n);
        }
        pub fn retire(&self) -> bool {
            self.0.retire()
        }
        pub fn revive(&self) -> bool {
            self.0.revive()
        }
        pub fn is_retired(&self) -> bool {
            self.0.is_retired()
        }
        pub fn is_drained(&self) -> bool {
            self.0.is_drained()
        }
        pub fn try_remove(&self) -> bool {
            self.0.try_remove()
        }
    }
}

pub use backpressure::{BackpressureMonitor, BackpressureThresholds, ThresholdError, Transition};
pub use labels::{BackpressureState, FailureKind, Priority, RejectReason, SpaceOperation};
pub use observation::{MAX_SPACE_NAME, MemorySpace, Observation, SpaceError};
pub use pool::{
    BatchContext, BatchFailure, BatchHandler, PoolConfig, PoolError, PoolStats, Session, Shutdown, ShutdownReport,
    WorkerPool,
};
pub use queue::{EnqueueError, ObservationQueue, QueueConfig};
pub use recall::RecallIndex;
