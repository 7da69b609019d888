//! Counters with exemplars: [`TracedCounter`], a [`Counter`] whose
//! increments can carry a trace id.
//!
//! Owns: the counter's one exemplar slot. Must not: make a plain increment
//! cost more than a [`Counter`]'s, or wait for a scrape (an exemplar is
//! skipped while a scrape reads the slot).

use crate::counter::Counter;
use crate::sync::Arc;

/// A [`Counter`] whose increments can carry a trace id: the latest one is
/// kept as the counter's exemplar and emitted in OpenMetrics output
/// (`name_total 42 # {trace_id="..."} 1 1764064800.123`).
///
/// Monotonically increasing, never reset. Plain increments cost what a
/// [`Counter`]'s do; an increment with an exemplar adds a clock read and an
/// uncontended `try_lock` (skipped, never waited for, while a scrape reads
/// the slot).
///
/// # Examples
/// ```
/// let errors = hotmeter::TracedCounter::new();
/// errors.inc();
/// errors.inc_with_exemplar(1, &hotmeter::TraceId::new("4bf92f3577b34da6")?);
/// assert_eq!(errors.get(), 2);
/// assert_eq!(errors.exemplar().unwrap().trace_id.as_str(), "4bf92f3577b34da6");
/// # Ok::<(), hotmeter::TraceIdError>(())
/// ```
#[derive(Clone, Debug)]
pub struct TracedCounter {
    counter: Counter,
    exemplar: Arc<crate::exemplar::ExemplarSlots>,
}

impl TracedCounter {
    /// Handles sharing this series' value, this one included
    /// ([`Metric::handles`](crate::expose::Metric::handles)).
    pub(crate) fn handles(&self) -> usize {
        self.counter.handles()
    }
}

impl TracedCounter {
    /// A new counter at zero, with no exemplar.
    pub fn new() -> Self {
        TracedCounter { counter: Counter::new(), exemplar: Arc::new(crate::exemplar::ExemplarSlots::new(1)) }
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.counter.inc();
    }

    /// Adds `n`.
    #[inline]
    pub fn inc_by(&self, n: u64) {
        self.counter.inc_by(n);
    }

    /// Adds `n` and keeps `trace` as the exemplar (value `n`, now).
    pub fn inc_with_exemplar(&self, n: u64, trace: &crate::TraceId) {
        self.counter.inc_by(n);
        self.exemplar.offer(
            0,
            crate::Exemplar { trace_id: *trace, value: n as f64, timestamp: crate::exemplar::now_unix_seconds() },
        );
    }

    /// The total.
    pub fn created_unix_nanos(&self) -> u64 {
        self.counter.created_unix_nanos()
    }

    /// The current total.
    pub fn get(&self) -> u64 {
        self.counter.get()
    }

    /// The latest exemplar, if any.
    pub fn exemplar(&self) -> Option<crate::Exemplar> {
        let mut one = Vec::with_capacity(1);
        self.exemplar.read_into(&mut one);
        one.first().copied().flatten()
    }
}

impl Default for TracedCounter {
    fn default() -> Self {
        Self::new()
    }
}
