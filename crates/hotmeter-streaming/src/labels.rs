//! The label enums that the pipeline and its metrics share.
//!
//! Owns: [`Priority`], [`RejectReason`], [`SpaceOperation`], [`FailureKind`]
//! and [`BackpressureState`] as values: their label names, label values and the
//! state's numeric encoding. Must not: import anything else from this crate
//! (it is the leaf the queue, the pool, the monitor and the metrics all
//! build on) or decide anything — shedding is the backpressure module's
//! policy, rejection the queue's.

use std::fmt;

hotmeter::label_enum! {
    /// Priority lane of an observation. Workers take `high` first; at the
    /// higher backpressure states `low`, then `normal`, are shed.
    pub enum Priority: "priority" { High = "high", Normal = "normal", Low = "low" }
}

hotmeter::label_enum! {
    /// Why an observation was refused, exported as the `reason` label.
    /// Non-exhaustive: a later version may refuse for a new reason (as
    /// `Retired` was added), so a `match` needs a `_` arm.
    #[non_exhaustive]
    pub enum RejectReason: "reason" {
        /// Its priority lane was full.
        QueueFull = "queue_full",
        /// Shed by backpressure at the Critical or Overloaded state.
        Backpressure = "backpressure",
        /// The observation itself was invalid (payload too large).
        Invalid = "invalid",
        /// The pool is shutting down and accepts nothing new.
        Shutdown = "shutdown",
        /// Its memory space was retired (counted while the space's series
        /// are still exported; see [`MemorySpace`](crate::MemorySpace)).
        Retired = "retired",
    }
}

hotmeter::label_enum! {
    /// What was asked of a memory space through a handle kept after its
    /// series were removed, exported as the `operation` label of
    /// `streaming_removed_space_uses_total`.
    pub enum SpaceOperation: "operation" {
        /// A submission, refused as [`RejectReason::Retired`].
        Submit = "submit",
        /// A recall, answered without timing it into the space's series.
        Recall = "recall",
    }
}

hotmeter::label_enum! {
    /// Why a batch failed, exported as the `error_type` label.
    pub enum FailureKind: "error_type" {
        /// Writing the checkpoint failed.
        Checkpoint = "checkpoint",
        /// Processing the observations failed.
        Processing = "processing",
        /// The handler panicked; the worker caught it and went on.
        Panic = "panic",
    }
}

hotmeter::label_enum! {
    /// Backpressure state, exported as 0 to 3 and as the `level` label.
    pub enum BackpressureState: "level" {
        Normal = "normal",
        Warning = "warning",
        Critical = "critical",
        Overloaded = "overloaded",
    }
}

impl BackpressureState {
    /// 0 (normal) to 3 (overloaded).
    pub const fn value(self) -> u8 {
        self as u8
    }

    /// The state with this value, if there is one.
    pub const fn from_value(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Normal),
            1 => Some(Self::Warning),
            2 => Some(Self::Critical),
            3 => Some(Self::Overloaded),
            _ => None,
        }
    }
}

impl fmt::Display for BackpressureState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
