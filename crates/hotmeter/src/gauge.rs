//! Gauges: [`Gauge`] (an `f64`) and [`IntGauge`] (an `i64`).
//!
//! Owns: the gauge cells. `set` is one atomic store; `add` is a
//! compare-and-swap loop on the `f64` bits. Gauges are not sharded:
//! last-writer-wins needs a single cell. Must not: allocate, lock or make a
//! syscall when recording.
//!
//! The `f64` cell is written here on the crate's own atomics rather than
//! taken from `atomic_float`, so the loom models check this exact code
//! (`atomic_float` uses std atomics internally, which loom cannot see).

use crate::sync::{Arc, AtomicI64, AtomicU64, Ordering};

/// A value that goes up and down, stored as `f64`.
///
/// Can be set, raised or lowered; reads the last value. NaN and ±Inf are
/// accepted and exported as Prometheus spells them (`NaN`, `+Inf`, `-Inf`).
/// Its unit is the one in its name (`_bytes`, `_seconds`, `_ratio`).
///
/// # Examples
/// ```
/// let depth = hotmeter::Gauge::new();
/// depth.set(10.0);
/// depth.inc();
/// depth.sub(2.5);
/// assert_eq!(depth.get(), 8.5);
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Gauge {
    bits: Arc<AtomicU64>,
}

impl Gauge {
    /// Handles sharing this series' value, this one included
    /// ([`Metric::handles`](crate::expose::Metric::handles)).
    pub(crate) fn handles(&self) -> usize {
        crate::sync::handle_count(&self.bits)
    }
}

impl Gauge {
    /// A new gauge at `0.0`.
    pub fn new() -> Self {
        Self { bits: Arc::new(AtomicU64::new(0f64.to_bits())) }
    }

    /// Sets the value.
    #[inline]
    pub fn set(&self, v: f64) {
        // Relaxed: the gauge publishes only its own value.
        self.bits.store(v.to_bits(), Ordering::Relaxed);
    }

    /// Adds `delta` (may be negative).
    #[inline]
    pub fn add(&self, delta: f64) {
        add_f64(&self.bits, delta);
    }

    /// Subtracts `delta`.
    #[inline]
    pub fn sub(&self, delta: f64) {
        self.add(-delta);
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1.0);
    }

    /// Subtracts one.
    #[inline]
    pub fn dec(&self) {
        self.add(-1.0);
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.bits.load(Ordering::Relaxed))
    }
}

impl Default for Gauge {
    fn default() -> Self {
        Self::new()
    }
}

/// Adds `delta` to the `f64` stored as bits in `cell`: a compare-and-swap
/// loop, Relaxed (the cell publishes only its own value). The one f64 add
/// of the crate: gauges, histogram sums and float counters use it.
#[inline]
pub(crate) fn add_f64(cell: &AtomicU64, delta: f64) {
    update_f64(cell, |cur| cur + delta);
}

/// Replaces the `f64` in `cell` with `next(current)`, atomically (one
/// compare-and-swap loop): the one place that spells it.
#[inline]
pub(crate) fn update_f64(cell: &AtomicU64, next: impl Fn(f64) -> f64) {
    let mut cur = cell.load(Ordering::Relaxed);
    loop {
        let new = next(f64::from_bits(cur)).to_bits();
        match cell.compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(actual) => cur = actual,
        }
    }
}

/// A value that goes up and down, stored as `i64`.
///
/// Exact for integers (queue depth, active sessions), and `inc`/`dec` are a
/// single atomic add rather than a compare-and-swap loop.
///
/// # Examples
/// ```
/// let sessions = hotmeter::IntGauge::new();
/// sessions.inc();
/// sessions.inc();
/// sessions.dec();
/// assert_eq!(sessions.get(), 1);
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct IntGauge {
    cell: Arc<AtomicI64>,
}

impl IntGauge {
    /// Handles sharing this series' value, this one included
    /// ([`Metric::handles`](crate::expose::Metric::handles)).
    pub(crate) fn handles(&self) -> usize {
        crate::sync::handle_count(&self.cell)
    }
}

impl IntGauge {
    /// A new gauge at 0.
    pub fn new() -> Self {
        Self { cell: Arc::new(AtomicI64::new(0)) }
    }

    /// Sets the value.
    #[inline]
    pub fn set(&self, v: i64) {
        self.cell.store(v, Ordering::Relaxed);
    }

    /// Adds `delta` (may be negative), wrapping on overflow.
    #[inline]
    pub fn add(&self, delta: i64) {
        self.cell.fetch_add(delta, Ordering::Relaxed);
    }

    /// Subtracts `delta`, wrapping on overflow.
    #[inline]
    pub fn sub(&self, delta: i64) {
        self.cell.fetch_sub(delta, Ordering::Relaxed);
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Subtracts one.
    #[inline]
    pub fn dec(&self) {
        self.sub(1);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.cell.load(Ordering::Relaxed)
    }
}

#[cfg(all(test, not(hotmeter_loom)))]
mod tests {
    use super::*;

    #[test]
    fn special_values_round_trip() {
        let g = Gauge::new();
        g.set(f64::NAN);
        assert!(g.get().is_nan());
        g.set(f64::INFINITY);
        assert_eq!(g.get(), f64::INFINITY);
        g.set(f64::NEG_INFINITY);
        assert_eq!(g.get(), f64::NEG_INFINITY);
        g.set(-0.0);
        assert!(g.get().is_sign_negative());
    }

    #[test]
    fn concurrent_adds_are_not_lost() {
        let g = Gauge::new();
        let i = IntGauge::new();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        g.add(0.5);
                        i.inc();
                    }
                });
            }
        });
        assert_eq!(g.get(), 20_000.0);
        assert_eq!(i.get(), 40_000);
    }
}
