//! One-line instrumentation of a function: calls counted by outcome,
//! latency recorded, the result passed through untouched.
//!
//! Owns: [`Instrumented`] and its outcome label set [`Outcome`]. Records
//! through the same typed-label fast path as hand-written code (a
//! [`Family`] index and a [`Histogram`]), so an instrumented call costs what
//! the hand-written twin costs. Must not: change the function's behaviour,
//! its errors, or its panics.

use std::future::Future;
use std::time::Instant;

use crate::{Buckets, Counter, Family, Histogram, Opts, Registry, RegistryError, Unit};

crate::label_enum! {
    /// How an instrumented call ended.
    pub enum Outcome: "status" {
        /// Returned `Ok` (or a value that is not a `Result`).
        Success = "success",
        /// Returned `Err`.
        Error = "error",
        /// A future dropped before it completed.
        Cancelled = "cancelled",
    }
}

/// Metrics of one instrumented operation: `<name>_calls_total{status}` and
/// `<name>_duration_seconds`.
///
/// # Examples
/// ```
/// let registry = hotmeter::Registry::new();
/// let write = hotmeter::Instrumented::register(&registry, "checkpoint_write", "Checkpoint writes.")?;
/// let r: Result<u32, &str> = write.run(|| Ok(7)); // one line around the body
/// assert_eq!(r, Ok(7));
/// assert_eq!(write.calls(hotmeter::Outcome::Success), 1);
/// # Ok::<(), hotmeter::RegistryError>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Instrumented {
    calls: Family<Outcome, Counter>,
    latency: Histogram,
}

impl Instrumented {
    /// Registers `<name>_calls_total{status}` and
    /// `<name>_duration_seconds` (default buckets) in `registry`.
    pub fn register(registry: &Registry, name: &str, help: &str) -> Result<Self, RegistryError> {
        Self::register_with_buckets(registry, name, help, Buckets::default())
    }

    /// As [`register`](Self::register) with a bucket layout for the latency.
    pub fn register_with_buckets(
        registry: &Registry,
        name: &str,
        help: &str,
        buckets: Buckets,
    ) -> Result<Self, RegistryError> {
        let calls =
            registry.register(Opts::new(format!("{name}_calls_total"), help), crate::Family::new(Counter::new))?;
        let latency = registry.register(
            Opts::new(format!("{name}_duration_seconds"), help).unit(Unit::SECONDS),
            Histogram::new(buckets),
        )?;
        Ok(Self { calls, latency })
    }

    /// Runs `f`, classifying `Ok`/`Err`, and records its duration.
    #[inline]
    pub fn run<T, E>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let call = self.start();
        let result = f();
        call.finish(if result.is_ok() { Outcome::Success } else { Outcome::Error });
        result
    }

    /// Runs `f`, which cannot fail, and records its duration as a success.
    #[inline]
    pub fn run_infallible<T>(&self, f: impl FnOnce() -> T) -> T {
        let call = self.start();
        let value = f();
        call.finish(Outcome::Success);
        value
    }

    /// Awaits `fut`, classifying `Ok`/`Err`; if the returned future is
    /// dropped before `fut` completes, the call counts as
    /// [`Outcome::Cancelled`] (with the time it ran).
    pub async fn run_async<T, E>(&self, fut: impl Future<Output = Result<T, E>>) -> Result<T, E> {
        let call = self.start();
        let result = fut.await;
        call.finish(if result.is_ok() { Outcome::Success } else { Outcome::Error });
        result
    }

    /// Starts a call by hand: the guard records `Cancelled` if dropped
    /// without [`Call::finish`] (also when the body panics).
    #[inline]
    pub fn start(&self) -> Call<'_> {
        Call { metrics: self, start: Instant::now(), done: false }
    }

    /// Calls that ended with `outcome`.
    pub fn calls(&self, outcome: Outcome) -> u64 {
        self.calls.get(outcome).get()
    }

    /// The latency histogram.
    pub fn latency(&self) -> &Histogram {
        &self.latency
    }
}

/// One call in flight; see [`Instrumented::start`].
#[derive(Debug)]
#[must_use = "dropping the call at once records it as cancelled"]
pub struct Call<'a> {
    metrics: &'a Instrumented,
    start: Instant,
    done: bool,
}

impl Call<'_> {
    /// Records the call with its outcome and duration.
    #[inline]
    pub fn finish(mut self, outcome: Outcome) {
        self.record(outcome);
    }

    #[inline]
    fn record(&mut self, outcome: Outcome) {
        self.done = true;
        self.metrics.latency.observe_duration(self.start.elapsed());
        self.metrics.calls.get(outcome).inc();
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.record(Outcome::Cancelled);
        }
    }
}
