//! # hotmeter
//!
//! Lock-free, in-process telemetry for high-throughput workers: counters,
//! gauges, histograms and summaries, alone or in labeled families, recorded
//! in a few nanoseconds without locks, allocation or syscalls, and read by
//! scrapes that never block the workers.
//!
//! The crate root holds what a program records into and reads back:
//!
//! | type | what it is |
//! |---|---|
//! | [`Counter`] | monotonic `u64`, sharded across cache lines (the default) |
//! | [`SingleCounter`] | monotonic `u64` in one cell, for large, quiet families |
//! | [`FloatCounter`] | monotonic `f64` (CPU seconds), for one writer |
//! | [`TracedCounter`] | a counter whose increments can carry an exemplar |
//! | [`Gauge`], [`IntGauge`] | values that go up and down (`f64`, `i64`) |
//! | [`Histogram`], [`Buckets`] | fixed-bucket distributions with consistent snapshots |
//! | [`NativeHistogram`], [`NativeOpts`] | sparse exponential (native) histograms |
//! | [`Summary`], [`SummaryOpts`] | sliding-window quantiles (P50…P99.9), HDR-backed |
//! | [`Exemplar`], [`TraceId`] | a trace id attached to an observation |
//! | [`Family`], [`LabelSet`], [`label_enum!`] | typed labels: a lookup is an array index |
//! | [`StringFamily`] | runtime string labels with a cardinality cap and overflow series |
//! | [`Registry`], [`RegistryBuilder`], [`Opts`], [`Unit`], [`NameValidation`] | names, help, units, validation, collect-on-scrape callbacks |
//! | [`Instrumented`], [`Outcome`], [`Call`] | one-line instrumentation of a sync or async function |
//! | [`RegistrySnapshot`], [`OwnedValue`], [`HistogramSnapshot`], [`NativeSnapshot`] | owned copies of a scrape or an instrument, for tests, JSON and people |
//! | [`RegistryError`], [`BucketError`], [`SummaryError`], [`LabelCountError`], [`NameError`], … | typed errors at every edge |
//!
//! The building blocks live in modules of their own:
//!
//! | module | what it holds |
//! |---|---|
//! | [`expose`] | the read side encoders use: [`Visitor`](expose::Visitor), [`Value`](expose::Value), [`Labels`](expose::Labels), [`Desc`](expose::Desc), [`Scratch`](expose::Scratch), the byte-level render helpers and [`EscapingScheme`](expose::EscapingScheme) |
//! | [`native`] | native-histogram bucket math and [`NativeBuckets`](native::NativeBuckets), the one owned form of a native histogram's buckets (`add`, `since`, `quantile`) |
//! | [`name`] | the one validator for metric and label names, and the namespace rule ([`full_name`](name::full_name)) |
//! | [`index`] | [`StringIndex`](index::StringIndex), the lock-free map under [`StringFamily`], for caches of your own |
//!
//! ## Quick start
//! ```
//! use hotmeter::{Buckets, Counter, Family, Registry, OwnedValue};
//!
//! hotmeter::label_enum! {
//!     /// Outcome of a checkpoint write.
//!     pub enum Status: "status" { Success = "success", Error = "error" }
//! }
//!
//! let registry = Registry::new();
//! let writes: Family<Status, Counter> =
//!     registry.typed_family("checkpoint_writes_total", "Checkpoint writes by outcome.", Counter::new)?;
//! let latency = registry.histogram(
//!     "checkpoint_write_duration_seconds",
//!     "Time to write one checkpoint.",
//!     Buckets::new([0.001, 0.01, 0.1])?,
//! )?;
//!
//! // The hot path: an array index and one relaxed atomic add.
//! writes.get(Status::Success).inc();
//! latency.observe(0.004);
//!
//! let snap = registry.snapshot();
//! assert_eq!(snap.value("checkpoint_writes_total", &["success"]), Some(&OwnedValue::Counter(1)));
//! assert_eq!(snap.value("checkpoint_writes_total", &["error"]), Some(&OwnedValue::Counter(0)));
//! assert_eq!(
//!     snap.value("checkpoint_write_duration_seconds", &[]),
//!     Some(&OwnedValue::Histogram { bounds: vec![0.001, 0.01, 0.1], counts: vec![0, 1, 0, 0], sum: 0.004, count: 1 })
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//! The Prometheus text and OpenMetrics encoders and the HTTP server live in
//! the `hotmeter-exporter` crate, which reads a registry through
//! [`Registry::collect`].
//!
//! ## Guarantees
//! - Recording methods return `()`, never fail, and never allocate, lock or
//!   make a syscall ([`Summary`] locks only its own thread slot's shard and
//!   reads the monotonic clock; the first use of a new label set in a
//!   [`StringFamily`] takes its documented cold path, a mutex and one
//!   allocation).
//! - A [`Histogram`] snapshot's count equals the sum of its buckets and its
//!   sum belongs to exactly those observations (see the `histogram` module).
//! - Bad input at the edges is a typed error: [`RegistryError`],
//!   [`BucketError`], [`SummaryError`], [`LabelCountError`].
//!
//! ## Features
//! - `loom`: only for the loom models, together with
//!   `RUSTFLAGS="--cfg hotmeter_loom --cfg crossbeam_loom"`; swaps every atomic for loom's.
//!   Never enable it in a normal build.

#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

mod collect;
mod collector;
mod counter;
mod desc;
mod error;
mod escape;
mod exemplar;
pub mod expose;
mod family;
mod gauge;
mod histogram;
pub mod index;
mod instrument;
mod labels;
mod metric_type;
pub mod name;
pub mod native;
mod native_histogram;
mod registry;
mod render;
mod snapshot;
mod string_family;
mod summary;
mod sync;
mod traced_counter;
mod value;

pub use collector::{CollectError, Collector, CollectorSeries};
pub use counter::{Counter, FloatCounter, SingleCounter};
pub use desc::Unit;
pub use error::{
    BucketError, LabelCountError, NameError, NameErrorReason, RegistryError, ShapeDifference, UnknownLabelError,
};
pub use escape::{NameKind, NameValidation};
pub use exemplar::{Exemplar, TraceId, TraceIdError};
pub use family::Family;
pub use gauge::{Gauge, IntGauge};
pub use histogram::{Buckets, DEFAULT_BUCKETS, Histogram, HistogramSnapshot, HistogramTimer};
pub use instrument::{Call, Instrumented, Outcome};
pub use labels::LabelSet;
pub use native_histogram::{NativeHistogram, NativeOpts, NativeSnapshot};
pub use registry::{CallbackId, OVERFLOW_METRIC, Opts, Registry, RegistryBuilder, SummaryOrRegistryError};
pub use snapshot::{FamilySnapshot, OwnedValue, RegistrySnapshot, SeriesSnapshot};
pub use string_family::{DEFAULT_CARDINALITY_LIMIT, OVERFLOW_LABEL_VALUE, Pinned, StringFamily, StringFamilyBuilder};
pub use summary::{Summary, SummaryError, SummaryOpts};
pub use traced_counter::TracedCounter;

/// Hooks for the loom models only (`--cfg hotmeter_loom` builds): not API.
#[cfg(hotmeter_loom)]
#[doc(hidden)]
pub mod __loom {
    /// Takes the protocol violation the real code noted since the last
    /// call, if any.
    pub fn take_violation() -> Option<&'static str> {
        crate::sync::take_model_violation()
    }

    /// The real thread-slot allocator, on an instance of the model's own.
    #[derive(Default)]
    pub struct SlotAllocator(Option<crate::sync::SlotAllocator>);

    impl std::fmt::Debug for SlotAllocator {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("SlotAllocator")
        }
    }

    impl SlotAllocator {
        /// A fresh allocator (create it inside the model).
        pub fn new() -> Self {
            Self(Some(crate::sync::SlotAllocator::new()))
        }
        /// What a thread's first recording does.
        pub fn acquire(&self) -> usize {
            self.0.as_ref().map_or(usize::MAX, crate::sync::SlotAllocator::acquire)
        }
        /// What a thread's exit does.
        pub fn release(&self, slot: usize) {
            if let Some(a) = &self.0 {
                a.release(slot);
            }
        }
    }
}
