//! Monotonic counters: [`Counter`] (sharded, the default) and
//! [`SingleCounter`] (one cell).
//!
//! Owns: the counter cells and their read (sum of shards). Must not:
//! allocate, lock or make a syscall when recording.

use crate::sync::{Arc, AtomicU64, CachePadded, Ordering, shard_count, thread_slot};

/// A monotonically increasing `u64` counter, sharded across cache lines.
///
/// Only goes up; never resets. It has no unit of its own: name it for what
/// it counts, in base units, with the `_total` suffix
/// (`checkpoint_writes_total`).
///
/// Each thread adds to the shard chosen by its thread slot, so two threads
/// hammering one counter do not bounce one cache line between cores; a read
/// sums the shards. This is the default counter because contention, not
/// memory, is what slows the workers we measure. It costs
/// `shards x 128` bytes (shards: the next power of two at or above twice the
/// core count, at most 64); where many series each see little traffic and
/// memory matters, use [`SingleCounter`].
///
/// Cloning is cheap and yields a handle to the same counter.
///
/// # Examples
/// ```
/// let requests = hotmeter::Counter::new();
/// requests.inc();
/// requests.inc_by(41);
/// assert_eq!(requests.get(), 42);
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Counter {
    shards: Arc<[CachePadded<AtomicU64>]>,
}

impl Counter {
    /// A new counter at zero.
    pub fn new() -> Self {
        let n = shard_count();
        Self { shards: (0..n).map(|_| CachePadded(AtomicU64::new(0))).collect() }
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.inc_by(1);
    }

    /// Adds `n`.
    #[inline]
    pub fn inc_by(&self, n: u64) {
        // The length is a power of two, so the mask keeps the index in range.
        let i = thread_slot() & (self.shards.len() - 1);
        // Relaxed: a counter publishes no other data; readers only need the
        // eventual sum.
        self.shards[i].fetch_add(n, Ordering::Relaxed);
    }

    /// The current total (sum of all shards).
    ///
    /// Increments that happen during the read may or may not be included;
    /// the result never goes down between two reads from one thread.
    pub fn get(&self) -> u64 {
        self.shards.iter().fold(0u64, |acc, s| acc.wrapping_add(s.load(Ordering::Relaxed)))
    }

    /// Number of shards (for tests and sizing).
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }
}

impl Default for Counter {
    fn default() -> Self {
        Self::new()
    }
}

/// A monotonically increasing `u64` counter in a single atomic cell.
///
/// Only goes up; never resets. Same contract as [`Counter`], 8 bytes plus the
/// handle instead of one cache line per shard: the right choice for large
/// label families whose series each see light, uncontended traffic.
///
/// # Examples
/// ```
/// let errors = hotmeter::SingleCounter::new();
/// errors.inc();
/// assert_eq!(errors.get(), 1);
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct SingleCounter {
    cell: Arc<AtomicU64>,
}

impl SingleCounter {
    /// A new counter at zero.
    pub fn new() -> Self {
        Self { cell: Arc::new(AtomicU64::new(0)) }
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.inc_by(1);
    }

    /// Adds `n`.
    #[inline]
    pub fn inc_by(&self, n: u64) {
        // Relaxed: publishes nothing but itself.
        self.cell.fetch_add(n, Ordering::Relaxed);
    }

    /// The current total.
    pub fn get(&self) -> u64 {
        self.cell.load(Ordering::Relaxed)
    }
}

/// A monotonically increasing `f64` counter, for accumulated amounts that
/// are not whole numbers (CPU seconds, bytes as reported in fractions).
///
/// Only goes up; never resets. Negative, NaN and infinite increments are
/// ignored (a counter must stay finite and monotonic). One cell, updated
/// with a compare-and-swap loop: meant for values refreshed by one writer,
/// such as a collect-on-scrape callback, not for contended hot paths.
///
/// # Examples
/// ```
/// let cpu = hotmeter::FloatCounter::new();
/// cpu.inc_by(0.25);
/// cpu.inc_by(-1.0); // ignored
/// assert_eq!(cpu.get(), 0.25);
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct FloatCounter {
    bits: Arc<AtomicU64>,
}

impl Default for FloatCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl FloatCounter {
    /// A new counter at `0.0`.
    pub fn new() -> Self {
        Self { bits: Arc::new(AtomicU64::new(0f64.to_bits())) }
    }

    /// Adds `v` if it is finite and not negative. The total saturates at
    /// `f64::MAX` instead of overflowing to infinity.
    pub fn inc_by(&self, v: f64) {
        if !(v.is_finite() && v >= 0.0) {
            return;
        }
        crate::gauge::update_f64(&self.bits, |cur| (cur + v).min(f64::MAX));
    }

    /// Raises the value to `total` if that is larger (for mirroring a
    /// monotonic total read from elsewhere, such as `/proc`).
    ///
    /// Ignored, like a negative increment: NaN, infinities, negative values
    /// and `-0.0` (a counter never goes down, and it is always finite and
    /// at least `+0.0`).
    ///
    /// ```
    /// let c = hotmeter::FloatCounter::new();
    /// c.set_max(5.0);
    /// c.set_max(-1.0); // ignored
    /// c.set_max(f64::NAN); // ignored
    /// assert_eq!(c.get(), 5.0);
    /// c.set_max(10.0);
    /// assert_eq!(c.get(), 10.0);
    /// ```
    pub fn set_max(&self, total: f64) {
        // The stored value is always finite and >= +0.0, and the IEEE 754
        // bit patterns of finite non-negative doubles order exactly as the
        // values do: one integer `fetch_max` is a float max for them. Any
        // other input (negative, -0.0, NaN, infinite) would compare as a
        // huge integer, so it never reaches the `fetch_max`.
        if total.is_finite() && total > 0.0 {
            self.bits.fetch_max(total.to_bits(), Ordering::Relaxed);
        }
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.bits.load(Ordering::Relaxed))
    }
}

#[cfg(all(test, not(hotmeter_loom)))]
mod tests {
    use super::*;

    #[test]
    fn float_set_max_ignores_negatives_signed_zero_and_non_finite() {
        let c = FloatCounter::new();
        c.set_max(5.0);
        c.set_max(-1.0);
        assert_eq!(c.get(), 5.0, "a negative total is ignored");
        c.set_max(10.0);
        assert_eq!(c.get(), 10.0, "a larger total still raises it after a negative one");
        c.set_max(-0.0);
        assert_eq!(c.get().to_bits(), 10f64.to_bits(), "-0.0 is ignored");
        c.set_max(11.0);
        assert_eq!(c.get(), 11.0);
        for bad in [f64::NAN, -f64::NAN, f64::INFINITY, f64::NEG_INFINITY, f64::MIN] {
            c.set_max(bad);
            assert_eq!(c.get(), 11.0, "{bad} is ignored");
        }
        c.set_max(3.0);
        assert_eq!(c.get(), 11.0, "a smaller total does not lower it");
        let big = FloatCounter::new();
        big.inc_by(f64::MAX);
        big.inc_by(f64::MAX);
        assert_eq!(big.get(), f64::MAX, "saturates, never infinite");
        big.set_max(1.0);
        assert_eq!(big.get(), f64::MAX);
        let fresh = FloatCounter::new();
        fresh.set_max(-0.0);
        assert_eq!(fresh.get().to_bits(), 0f64.to_bits(), "a fresh counter stays at +0.0");
        fresh.set_max(f64::MIN_POSITIVE);
        assert_eq!(fresh.get(), f64::MIN_POSITIVE);
    }

    #[test]
    fn shards_are_a_power_of_two_and_padded() {
        let c = Counter::new();
        assert!(c.shard_count().is_power_of_two());
        assert!(c.shard_count() >= 2);
        assert!(std::mem::align_of::<CachePadded<AtomicU64>>() >= 64);
    }

    #[test]
    fn clones_share_the_value() {
        let a = Counter::new();
        let b = a.clone();
        a.inc();
        b.inc_by(2);
        assert_eq!(a.get(), 3);
        let s = SingleCounter::new();
        s.clone().inc_by(5);
        assert_eq!(s.get(), 5);
    }

    #[test]
    fn threads_sum_exactly() {
        let c = Counter::new();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..10_000 {
                        c.inc();
                    }
                });
            }
        });
        assert_eq!(c.get(), 40_000);
    }
}
