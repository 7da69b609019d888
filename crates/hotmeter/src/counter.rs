//! Monotonic counters: [`Counter`] (sharded, the default) and
//! [`SingleCounter`] (one cell).
//!
//! Owns: the counter cells and their read (sum of shards). Must not:
//! allocate, lock or make a syscall when recording.

use crate::exemplar::unix_nanos_now;
use crate::sync::{
    Arc, AtomicU32, AtomicU64, CachePadded, OnceLock, Ordering, shard_count, thread_slot, thread_slot_or_max,
};

/// A monotonically increasing `u64` counter that shards itself across
/// cache lines once it sees contention.
///
/// Only goes up; never resets. It has no unit of its own: name it for what
/// it counts, in base units, with the `_total` suffix
/// (`checkpoint_writes_total`).
///
/// It starts as one cell. The thread whose compare-and-swap last succeeded
/// on it (its owner, a hint kept beside the cell) adds with one plain
/// `fetch_add`, the cost of a bare atomic; any other thread adds with a
/// compare-and-swap and, if that succeeds, becomes the owner, so a counter
/// handed from thread to thread stays one cell. The first time that
/// compare-and-swap fails (another thread added in between, so the counter
/// is contended) it grows shards: one cache-padded cell per thread
/// slot (the next power of two at or above twice the core count, at most
/// 64), and from then on each thread adds to its own shard, so threads
/// hammering one counter do not bounce one cache line between cores. A read
/// adds the first cell and the shards. So a counter that only one thread
/// writes at a time (most series of a large label family) costs a few
/// dozen bytes, and one that is contended costs `shards x 128` bytes; the
/// choice is made by the traffic, not guessed up front (the idea of Java's
/// `LongAdder`). [`SingleCounter`] never shards.
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
    cells: Arc<Cells>,
}

impl Counter {
    /// Handles sharing this series' value, this one included
    /// ([`Metric::handles`](crate::expose::Metric::handles)).
    pub(crate) fn handles(&self) -> usize {
        crate::sync::handle_count(&self.cells)
    }
}

/// No thread owns the first cell yet: a value no thread slot truncates to
/// (slots are dense from 0; "none yet" and "given back" truncate to
/// `u32::MAX`).
const NO_OWNER: u32 = u32::MAX - 1;

/// A contended counter's cells, one per thread slot (a power of two).
type Shards = Box<[CachePadded<AtomicU64>]>;

/// A counter's first cell and, once it has been contended, its shards.
#[derive(Debug)]
struct Cells {
    first: AtomicU64,
    /// The thread slot (truncated to 32 bits) of the thread whose exchange
    /// last succeeded on `first`, or [`NO_OWNER`]: a hint, never a lock.
    owner: AtomicU32,
    /// Boxed twice: a thin pointer keeps the cells at 40 bytes with the
    /// owner hint (the slice's own fat pointer would take 48); the extra
    /// load is paid only by contended counters.
    shards: OnceLock<Box<Shards>>,
    /// When the counter was made, in nanoseconds since the Unix epoch.
    created: u64,
}

impl Counter {
    /// A new counter at zero, not yet sharded, created now.
    pub fn new() -> Self {
        Self {
            cells: Arc::new(Cells {
                first: AtomicU64::new(0),
                owner: AtomicU32::new(NO_OWNER),
                shards: OnceLock::new(),
                created: unix_nanos_now(),
            }),
        }
    }

    /// When it was made, in nanoseconds since the Unix epoch (OpenMetrics'
    /// `_created`, protobuf's `created_timestamp`).
    pub fn created_unix_nanos(&self) -> u64 {
        self.cells.created
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.inc_by(1);
    }

    /// Adds `n`.
    #[inline]
    pub fn inc_by(&self, n: u64) {
        let cells = &*self.cells;
        if let Some(shards) = cells.shards.get() {
            return add_to_shard(shards, n);
        }
        // The thread that last added through the exchange adds with one
        // `fetch_add`; any other thread goes through the exchange, whose
        // failure is what detects contention. Truncation to 32 bits is
        // harmless: only slots below NO_OWNER are ever stored, so "no slot
        // yet" and "slot given back" (both `u32::MAX` here) never match.
        // Relaxed: a counter publishes no other data; readers only need the
        // eventual sum, and the owner is a hint (a stale one only sends this
        // increment through the exchange, or lets it skip one).
        if cells.owner.load(Ordering::Relaxed) == thread_slot_or_max() as u32 {
            cells.first.fetch_add(n, Ordering::Relaxed);
        } else {
            self.inc_unowned(n);
        }
    }

    /// Adds `n` with a compare-and-swap on the first cell, taking the owner
    /// hint if it succeeds; a failed exchange means another thread added in
    /// between: the counter is contended, so it shards.
    #[inline(never)]
    fn inc_unowned(&self, n: u64) {
        let cells = &*self.cells;
        let me = thread_slot();
        let cur = cells.first.load(Ordering::Relaxed);
        if cells.first.compare_exchange(cur, cur.wrapping_add(n), Ordering::Relaxed, Ordering::Relaxed).is_err() {
            self.inc_contended(n);
        } else if let Some(owner) = u32::try_from(me).ok().filter(|&slot| slot < NO_OWNER) {
            // Only a real slot becomes the owner: a thread that gave its
            // slot back (a thread-local destructor recording at exit)
            // reads as `u32::MAX`, as every thread with no slot yet does,
            // and would let them all add without the exchange.
            cells.owner.store(owner, Ordering::Relaxed);
        }
    }

    /// Grows the shards (once per counter) and adds `n` to this thread's.
    #[cold]
    #[inline(never)]
    fn inc_contended(&self, n: u64) {
        let shards = self
            .cells
            .shards
            .get_or_init(|| Box::new((0..shard_count()).map(|_| CachePadded::new(AtomicU64::new(0))).collect()));
        add_to_shard(shards, n);
    }

    /// The current total (the first cell plus every shard).
    ///
    /// Increments that happen during the read may or may not be included;
    /// the result never goes down between two reads from one thread.
    pub fn get(&self) -> u64 {
        let cells = &*self.cells;
        let first = cells.first.load(Ordering::Relaxed);
        cells
            .shards
            .get()
            .map_or(first, |shards| shards.iter().fold(first, |acc, s| acc.wrapping_add(s.load(Ordering::Relaxed))))
    }

    /// Number of shards: 0 until the counter has been contended, then a
    /// power of two (for tests and sizing).
    pub fn shard_count(&self) -> usize {
        self.cells.shards.get().map_or(0, |s| s.len())
    }
}

/// Adds `n` to the calling thread's shard.
#[inline]
fn add_to_shard(shards: &[CachePadded<AtomicU64>], n: u64) {
    // The length is a power of two, so the mask keeps the index in range.
    let i = thread_slot() & (shards.len() - 1);
    // Relaxed: as for the first cell.
    shards[i].fetch_add(n, Ordering::Relaxed);
}

impl Default for Counter {
    fn default() -> Self {
        Self::new()
    }
}

/// A monotonically increasing `u64` counter in a single atomic cell.
///
/// Only goes up; never resets. Same contract as [`Counter`], one cell that
/// never shards: always a `fetch_add`, with no owner hint to check,
/// for series that are known never to be contended, or where contended
/// traffic should stay in 8 bytes whatever it costs.
///
/// # Examples
/// ```
/// let errors = hotmeter::SingleCounter::new();
/// errors.inc();
/// assert_eq!(errors.get(), 1);
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct SingleCounter {
    cell: Arc<CreatedCell>,
}

impl SingleCounter {
    /// Handles sharing this series' value, this one included
    /// ([`Metric::handles`](crate::expose::Metric::handles)).
    pub(crate) fn handles(&self) -> usize {
        crate::sync::handle_count(&self.cell)
    }
}

/// One atomic cell and when it was made (nanoseconds since the Unix epoch).
#[derive(Debug)]
struct CreatedCell {
    value: AtomicU64,
    created: u64,
}

impl CreatedCell {
    fn new(value: u64) -> Arc<Self> {
        Arc::new(Self { value: AtomicU64::new(value), created: unix_nanos_now() })
    }
}

impl Default for SingleCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl SingleCounter {
    /// A new counter at zero, created now.
    pub fn new() -> Self {
        Self { cell: CreatedCell::new(0) }
    }

    /// When it was made, in nanoseconds since the Unix epoch.
    pub fn created_unix_nanos(&self) -> u64 {
        self.cell.created
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
        self.cell.value.fetch_add(n, Ordering::Relaxed);
    }

    /// The current total.
    pub fn get(&self) -> u64 {
        self.cell.value.load(Ordering::Relaxed)
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
    bits: Arc<CreatedCell>,
}

impl FloatCounter {
    /// Handles sharing this series' value, this one included
    /// ([`Metric::handles`](crate::expose::Metric::handles)).
    pub(crate) fn handles(&self) -> usize {
        crate::sync::handle_count(&self.bits)
    }
}

impl Default for FloatCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl FloatCounter {
    /// A new counter at `0.0`, created now.
    pub fn new() -> Self {
        Self { bits: CreatedCell::new(0f64.to_bits()) }
    }

    /// When it was made, in nanoseconds since the Unix epoch.
    pub fn created_unix_nanos(&self) -> u64 {
        self.bits.created
    }

    /// Adds `v` if it is finite and not negative. The total saturates at
    /// `f64::MAX` instead of overflowing to infinity.
    pub fn inc_by(&self, v: f64) {
        if !(v.is_finite() && v >= 0.0) {
            return;
        }
        crate::gauge::update_f64(&self.bits.value, |cur| (cur + v).min(f64::MAX));
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
            self.bits.value.fetch_max(total.to_bits(), Ordering::Relaxed);
        }
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.bits.value.load(Ordering::Relaxed))
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
    fn shards_grow_under_contention_only_and_are_a_power_of_two() {
        let c = Counter::new();
        c.inc_by(5);
        assert_eq!(c.shard_count(), 0, "one writer: no shards");
        // Contention, as two threads racing would cause it: the first cell
        // changes between the load and the exchange.
        c.inc_contended(2);
        assert!(c.shard_count().is_power_of_two());
        assert!(c.shard_count() >= 2);
        assert_eq!(c.get(), 7, "the first cell and the shards both count");
        c.inc();
        assert_eq!(c.get(), 8, "later increments go to a shard");
        assert!(std::mem::align_of::<CachePadded<AtomicU64>>() >= 64);
    }

    #[test]
    fn hammered_counter_shards_and_sums_exactly() {
        let c = Counter::new();
        // Bounded: at most 5 s of trying to provoke one failed exchange
        // (found at once when two cores are free; longer on a loaded one).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut total = 0u64;
        while c.shard_count() == 0 && std::time::Instant::now() < deadline {
            std::thread::scope(|scope| {
                for _ in 0..4 {
                    scope.spawn(|| {
                        for _ in 0..1_000_000 {
                            c.inc();
                        }
                    });
                }
            });
            total += 4_000_000;
        }
        assert_eq!(c.get(), total);
        // Four threads adding at once for up to 5 s on 2 cores or more: a
        // counter whose owner adds without an exchange still meets a failed
        // one from the others.
        assert!(c.shard_count() > 0, "contention was never detected");
    }

    #[test]
    fn a_counter_handed_between_threads_stays_one_cell() {
        let c = Counter::new();
        for round in 0..4u64 {
            // One writer at a time, each a new thread: the owner hint moves,
            // through a successful exchange each time, and nothing shards.
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    for _ in 0..1_000 {
                        c.inc();
                    }
                });
            });
            assert_eq!(c.get(), (round + 1) * 1_000);
        }
        c.inc_by(u64::MAX);
        assert_eq!(c.get(), 3_999, "adds wrap, as the exchange's did");
        assert_eq!(c.shard_count(), 0, "no two writers ever raced");
    }

    /// A thread-local destructor that records after the thread gave its
    /// slot back must not become the owner: "no slot" would then match
    /// every fresh thread, and they would all add without the exchange that
    /// detects contention (found in review).
    #[test]
    fn a_thread_recording_at_exit_does_not_take_the_owner_hint() {
        let c = Counter::new();
        let d = c.clone();
        std::thread::spawn(move || {
            // Registered before the slot is assigned, so run after the slot
            // is given back.
            let e = d.clone();
            crate::sync::at_thread_exit(move || e.inc());
            d.inc();
        })
        .join()
        .unwrap();
        assert_eq!(c.get(), 2, "both increments counted");
        assert_ne!(c.cells.owner.load(Ordering::Relaxed), u32::MAX, "a thread with no slot owns the counter");
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn the_cells_stay_forty_bytes() {
        // The first cell, the owner hint, the thin pointer to the shards with
        // its once-state, and the creation time: a counter series' own heap
        // share (with the `Arc`'s counts) is 56 bytes.
        assert_eq!(std::mem::size_of::<Cells>(), 40);
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
