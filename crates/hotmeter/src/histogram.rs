//! Histograms with fixed buckets: [`Histogram`], [`Buckets`], [`HistogramTimer`].
//!
//! Owns: bucket layouts and their validation, the sharded hot/cold cells,
//! and the consistent snapshot. Must not: allocate, lock or make a syscall
//! when recording, nor ever make a writer wait for a reader.
//!
//! # The consistency protocol
//! Every thread slot below [`exclusive_shard_count`] owns a shard that no
//! other thread writes; threads with higher slots share one extra shard. A
//! shard holds one control word and two halves, *hot* and *cold*, each with
//! a sum and one count per bucket (the `+Inf` bucket included). The control
//! word's top bit names the hot half; its low 63 bits count observations
//! *started*. A half's count is the sum of its buckets: there is no separate
//! count cell.
//!
//! A writer:
//! 1. `fetch_add(1)` on the control word: learns the hot half, counts itself
//!    as started (the only atomic read-modify-write on an owned shard);
//! 2. adds the value to that half's sum;
//! 3. adds one to its bucket in that half, with `Release`: the completion
//!    mark, which publishes the sum of step 2.
//!
//! On an owned shard steps 2 and 3 are a plain load and store (one writer,
//! no lock prefix); on the shared shard they are a compare-and-swap and a
//! `fetch_add`.
//!
//! A reader (one at a time per histogram, serialised by a mutex writers
//! never touch) never writes a data cell. It keeps, per shard and half, the
//! values it last read. Per shard it:
//! 1. flips the hot bit with `fetch_add(1 << 63)`, learning `n`, the number
//!    of observations ever started on the shard; new writers now go to the
//!    other half;
//! 2. knows the other half has not changed since it last read it (it was
//!    cold all along), so the now-cold half must reach `n` minus that
//!    half's count; it re-reads the cold half's buckets until they do
//!    (every writer that started before the flip has finished: nanoseconds,
//!    unless a writer was descheduled mid-observation);
//! 3. reads the cold half's sum and stores both halves' values.
//!
//! The snapshot adds up both halves of every shard: on each shard, exactly
//! the observations started before its flip. Hence its count always equals
//! the sum of its bucket counts and its sum belongs to exactly those
//! observations. Shards are flipped one after another, so the merge is a
//! consistent set of observations, not one instant in time.
//!
//! [`exclusive_shard_count`]: crate::sync::exclusive_shard_count

use std::time::{Duration, Instant};

use crate::error::BucketError;
use crate::sync::{Arc, AtomicU64, CachePadded, Mutex, Ordering, exclusive_shard_count, lock, spin_loop, thread_slot};

/// Prometheus' default buckets, in seconds: 5 ms to 10 s.
pub const DEFAULT_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Above this many bounds, bucket search is binary instead of linear.
const LINEAR_SEARCH_MAX: usize = 16;

/// Validated histogram bucket upper bounds: non-empty, finite, strictly
/// increasing. `+Inf` is implicit and never listed.
///
/// # Examples
/// ```
/// use hotmeter::Buckets;
/// assert_eq!(Buckets::linear(1.0, 1.0, 3)?.bounds(), &[1.0, 2.0, 3.0]);
/// assert_eq!(Buckets::exponential(0.001, 10.0, 3)?.bounds(), &[0.001, 0.01, 0.1]);
/// assert!(Buckets::new([1.0, 1.0]).is_err());
/// # Ok::<(), hotmeter::BucketError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Buckets {
    bounds: Arc<[f64]>,
}

impl Buckets {
    /// Checks and takes the given upper bounds.
    pub fn new(bounds: impl AsRef<[f64]>) -> Result<Self, BucketError> {
        let bounds = bounds.as_ref();
        if bounds.is_empty() {
            return Err(BucketError::Empty);
        }
        for (index, &value) in bounds.iter().enumerate() {
            if !value.is_finite() {
                return Err(BucketError::NotFinite { index, value });
            }
            if index > 0 && value <= bounds[index - 1] {
                return Err(BucketError::NotIncreasing { index, previous: bounds[index - 1], value });
            }
        }
        Ok(Self { bounds: bounds.iter().copied().collect() })
    }

    /// `count` bounds starting at `start`, `width` apart.
    pub fn linear(start: f64, width: f64, count: usize) -> Result<Self, BucketError> {
        if !(width > 0.0 && width.is_finite()) {
            return Err(BucketError::BadLayout { parameter: "width", value: width });
        }
        if count == 0 {
            return Err(BucketError::Empty);
        }
        Self::new((0..count).map(|i| start + width * i as f64).collect::<Vec<_>>())
    }

    /// `count` bounds starting at `start`, each `factor` times the previous.
    pub fn exponential(start: f64, factor: f64, count: usize) -> Result<Self, BucketError> {
        if start.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) || !start.is_finite() {
            return Err(BucketError::BadLayout { parameter: "start", value: start });
        }
        if !(factor > 1.0 && factor.is_finite()) {
            return Err(BucketError::BadLayout { parameter: "factor", value: factor });
        }
        if count == 0 {
            return Err(BucketError::Empty);
        }
        Self::new((0..count).map(|i| start * factor.powi(i as i32)).collect::<Vec<_>>())
    }

    /// The finite upper bounds, ascending (`+Inf` not listed).
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }
}

impl Default for Buckets {
    /// [`DEFAULT_BUCKETS`].
    fn default() -> Self {
        Self { bounds: DEFAULT_BUCKETS.iter().copied().collect() }
    }
}

/// Index of the bucket for `v`: the first bound `>= v`, or `bounds.len()`
/// (the `+Inf` bucket). `v` must not be NaN.
#[inline]
pub(crate) fn bucket_index(bounds: &[f64], v: f64) -> usize {
    if bounds.len() <= LINEAR_SEARCH_MAX {
        let mut i = 0;
        while i < bounds.len() && v > bounds[i] {
            i += 1;
        }
        i
    } else {
        bounds.partition_point(|&b| b < v)
    }
}

/// Words per cache-padded chunk of cells.
const CHUNK: usize = 16;
const HOT_BIT: u64 = 1 << 63;
const COUNT_MASK: u64 = HOT_BIT - 1;

/// Cell offsets within one shard: `[control][nan][sum0][buckets0…][sum1][buckets1…]`.
const CONTROL: usize = 0;
const NAN: usize = 1;
const HALVES: usize = 2;

/// Samples from a histogram observing a distribution of values, typically
/// latencies in seconds or sizes in bytes.
///
/// Counts, per bucket, the observations at or below its upper bound, plus
/// their count and sum. Counts only go up and never reset; `_sum` goes down
/// only if negative values are observed. Its unit is the one in its name
/// (`_seconds`, `_bytes`); [`start_timer`](Self::start_timer) records
/// seconds.
///
/// Special values:
/// - negative numbers and `-Inf` land in the lowest bucket whose bound is
///   at or above them and reduce the sum, as in every Prometheus client;
/// - `+Inf` lands in the `+Inf` bucket and makes the sum `+Inf`;
/// - NaN is not recorded (it has no bucket, and would make the sum NaN for
///   ever); it is counted instead, see [`HistogramSnapshot::nan_dropped`].
///
/// # Examples
/// ```
/// let h = hotmeter::Histogram::new(hotmeter::Buckets::new([0.1, 1.0])?);
/// h.observe(0.05);
/// h.observe(0.5);
/// h.observe(7.0);
/// let s = h.snapshot();
/// assert_eq!(s.counts(), &[1, 1, 1]); // per bucket: <=0.1, <=1, +Inf
/// assert_eq!(s.cumulative().collect::<Vec<_>>(), vec![1, 2, 3]);
/// assert_eq!((s.count(), s.sum()), (3, 7.55));
/// # Ok::<(), hotmeter::BucketError>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Histogram {
    core: Arc<Core>,
}

#[derive(Debug)]
struct Core {
    bounds: Buckets,
    /// `(exclusive + 1) x stride` cells, in cache-padded chunks.
    cells: Box<[CachePadded<[AtomicU64; CHUNK]>]>,
    /// Cells per shard, a multiple of [`CHUNK`].
    stride: usize,
    /// Shards `0..exclusive` are owned by one thread slot each; shard
    /// `exclusive` is shared by all higher slots.
    exclusive: usize,
    /// The reader's memory of every half; the mutex serialises readers and
    /// is never touched by writers.
    reader: Mutex<ReaderCache>,
}

/// Per shard and half, the bucket counts and sum as last read. A half is
/// read only right after it turns cold, and does not change again until it
/// turns hot at the next flip, so these are exact until then.
#[derive(Debug)]
struct ReaderCache {
    /// `[(shard * 2 + half) * buckets + bucket]`.
    counts: Vec<u64>,
    /// `[shard * 2 + half]`.
    sums: Vec<f64>,
}

impl Core {
    #[inline]
    fn cell(&self, i: usize) -> &AtomicU64 {
        &self.cells[i / CHUNK].0[i % CHUNK]
    }

    /// Bucket cells per half, including `+Inf`.
    #[inline]
    fn buckets_len(&self) -> usize {
        self.bounds.bounds.len() + 1
    }

    /// First cell (the sum) of half `h` of the shard starting at `base`.
    #[inline]
    fn half(&self, base: usize, h: usize) -> usize {
        base + HALVES + h * (1 + self.buckets_len())
    }
}

impl Histogram {
    /// A histogram with the given buckets.
    pub fn new(buckets: Buckets) -> Self {
        let exclusive = exclusive_shard_count();
        let shards = exclusive + 1;
        let nb = buckets.bounds.len() + 1;
        let words = HALVES + 2 * (1 + nb);
        let stride = words.div_ceil(CHUNK) * CHUNK;
        let cells = (0..shards * stride / CHUNK)
            .map(|_| CachePadded(std::array::from_fn(|_| AtomicU64::new(0))))
            .collect();
        let reader = ReaderCache { counts: vec![0; shards * 2 * nb], sums: vec![0.0; shards * 2] };
        let core = Core { bounds: buckets, cells, stride, exclusive, reader: Mutex::new(reader) };
        let zero = 0f64.to_bits();
        for s in 0..shards {
            for h in 0..2 {
                core.cell(core.half(s * stride, h)).store(zero, Ordering::Relaxed);
            }
        }
        Self { core: Arc::new(core) }
    }

    /// A histogram with [`DEFAULT_BUCKETS`].
    pub fn with_default_buckets() -> Self {
        Self::new(Buckets::default())
    }

    /// The bucket layout.
    pub fn buckets(&self) -> &Buckets {
        &self.core.bounds
    }

    /// Records one observation.
    #[inline]
    pub fn observe(&self, v: f64) {
        let core = &*self.core;
        let slot = thread_slot();
        let owned = slot < core.exclusive;
        let base = if owned { slot } else { core.exclusive } * core.stride;
        if v.is_nan() {
            return self.reject_nan(base, owned);
        }
        let bucket = bucket_index(&core.bounds.bounds, v);
        // Relaxed: the reader writes no data cell this writer could need to
        // see; the read-modify-write orders us against the reader's flip.
        let started = core.cell(base + CONTROL).fetch_add(1, Ordering::Relaxed);
        let half = core.half(base, (started >> 63) as usize);
        let (sum, count) = (core.cell(half), core.cell(half + 1 + bucket));
        if owned {
            // This thread is the shard's only writer: a plain load and store
            // cannot lose an update.
            sum.store((f64::from_bits(sum.load(Ordering::Relaxed)) + v).to_bits(), Ordering::Relaxed);
            // Release: the completion mark; publishes the sum above.
            count.store(count.load(Ordering::Relaxed) + 1, Ordering::Release);
        } else {
            add_f64(sum, v);
            // Release: the completion mark; publishes the sum above.
            count.fetch_add(1, Ordering::Release);
        }
    }

    #[cold]
    #[inline(never)]
    fn reject_nan(&self, base: usize, owned: bool) {
        let cell = self.core.cell(base + NAN);
        if owned {
            cell.store(cell.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        } else {
            cell.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records a duration, in seconds.
    #[inline]
    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// Starts a timer that records the elapsed seconds when dropped.
    ///
    /// ```
    /// let h = hotmeter::Histogram::with_default_buckets();
    /// {
    ///     let _t = h.start_timer();
    /// }
    /// assert_eq!(h.snapshot().count(), 1);
    /// ```
    pub fn start_timer(&self) -> HistogramTimer<'_> {
        HistogramTimer { histogram: self, start: Instant::now(), armed: true }
    }

    /// A consistent snapshot: `count() == counts().iter().sum()` and `sum()`
    /// belongs to exactly those observations. Never blocks writers.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut counts = Vec::new();
        let (sum, nan_dropped) = self.snapshot_into(&mut counts);
        HistogramSnapshot { bounds: self.core.bounds.clone(), count: counts.iter().sum(), counts, sum, nan_dropped }
    }

    /// As [`snapshot`](Self::snapshot), writing per-bucket (not cumulative)
    /// counts into `counts` (cleared first; no allocation once it has the
    /// capacity). Returns `(sum, nan_dropped)`.
    pub fn snapshot_into(&self, counts: &mut Vec<u64>) -> (f64, u64) {
        let core = &*self.core;
        let nb = core.buckets_len();
        counts.clear();
        counts.resize(nb, 0);
        let mut nan = 0u64;
        let mut cache = lock(&core.reader);
        let cache = &mut *cache;
        for shard in 0..=core.exclusive {
            let base = shard * core.stride;
            nan = nan.wrapping_add(core.cell(base + NAN).load(Ordering::Relaxed));
            let before = core.cell(base + CONTROL).fetch_add(HOT_BIT, Ordering::AcqRel);
            let started = before & COUNT_MASK;
            let (cold_h, other_h) = ((before >> 63) as usize, 1 - (before >> 63) as usize);
            let other = (shard * 2 + other_h) * nb;
            let other_count = cache.counts[other..other + nb].iter().fold(0u64, |a, &c| a.wrapping_add(c));
            let expected = started.wrapping_sub(other_count);
            let cold = core.half(base, cold_h);
            let mine = (shard * 2 + cold_h) * nb;
            let mut spins = 0u32;
            loop {
                // Acquire: pairs with each writer's Release completion mark,
                // so the sum read below includes every finished writer.
                let mut done = 0u64;
                for (i, c) in cache.counts[mine..mine + nb].iter_mut().enumerate() {
                    *c = core.cell(cold + 1 + i).load(Ordering::Acquire);
                    done = done.wrapping_add(*c);
                }
                // Counts only grow, so equal totals mean every bucket is final.
                if done == expected {
                    break;
                }
                spins += 1;
                if spins < 64 {
                    spin_loop();
                } else {
                    // A writer was descheduled between its start and its
                    // completion mark; let it run.
                    #[cfg(not(hotmeter_loom))]
                    std::thread::yield_now();
                    #[cfg(hotmeter_loom)]
                    spin_loop();
                }
            }
            cache.sums[shard * 2 + cold_h] = f64::from_bits(core.cell(cold).load(Ordering::Relaxed));
        }
        for chunk in cache.counts.chunks_exact(nb) {
            for (total, &c) in counts.iter_mut().zip(chunk) {
                *total = total.wrapping_add(c);
            }
        }
        (cache.sums.iter().sum(), nan)
    }
}

#[inline]
fn add_f64(cell: &AtomicU64, v: f64) {
    let mut cur = cell.load(Ordering::Relaxed);
    loop {
        let new = (f64::from_bits(cur) + v).to_bits();
        match cell.compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(actual) => cur = actual,
        }
    }
}

/// Records the seconds elapsed since its creation into a [`Histogram`] when
/// dropped (or when [`observe`](Self::observe) is called).
#[derive(Debug)]
#[must_use = "the timer records when dropped; dropping it at once records ~0 s"]
pub struct HistogramTimer<'a> {
    histogram: &'a Histogram,
    start: Instant,
    armed: bool,
}

impl HistogramTimer<'_> {
    /// Records now and returns the elapsed time.
    pub fn observe(mut self) -> Duration {
        let d = self.start.elapsed();
        self.histogram.observe_duration(d);
        self.armed = false;
        d
    }

    /// Drops the timer without recording.
    pub fn discard(mut self) {
        self.armed = false;
    }
}

impl Drop for HistogramTimer<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.histogram.observe_duration(self.start.elapsed());
        }
    }
}

/// A consistent read of a [`Histogram`].
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    bounds: Buckets,
    counts: Vec<u64>,
    count: u64,
    sum: f64,
    nan_dropped: u64,
}

impl HistogramSnapshot {
    /// The finite bucket bounds (`+Inf` implicit).
    pub fn bounds(&self) -> &[f64] {
        self.bounds.bounds()
    }
    /// Per-bucket (not cumulative) counts, the last one being `+Inf`.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }
    /// Cumulative counts as Prometheus exports them (`le` buckets).
    pub fn cumulative(&self) -> impl Iterator<Item = u64> + '_ {
        self.counts.iter().scan(0u64, |acc, &c| {
            *acc += c;
            Some(*acc)
        })
    }
    /// Number of observations (equals the sum of [`counts`](Self::counts)).
    pub fn count(&self) -> u64 {
        self.count
    }
    /// Sum of the observed values.
    pub fn sum(&self) -> f64 {
        self.sum
    }
    /// NaN observations that were not recorded.
    pub fn nan_dropped(&self) -> u64 {
        self.nan_dropped
    }
    /// Estimates the `q`-quantile (0..=1) by linear interpolation inside the
    /// bucket, as PromQL's `histogram_quantile` does. `None` with no
    /// observations; the highest finite bound if it falls in `+Inf`.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        quantile_from_buckets(self.bounds(), &self.counts, q)
    }
}

/// `histogram_quantile` over per-bucket counts (last = `+Inf`).
pub(crate) fn quantile_from_buckets(bounds: &[f64], counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 || q.is_nan() {
        return None;
    }
    let q = q.clamp(0.0, 1.0);
    let rank = q * total as f64;
    let mut seen = 0u64;
    for (i, &c) in counts.iter().enumerate() {
        if c > 0 && (seen + c) as f64 >= rank {
            if i == bounds.len() {
                return bounds.last().copied();
            }
            let upper = bounds[i];
            let lower = if i == 0 { upper.min(0.0) } else { bounds[i - 1] };
            let into = (rank - seen as f64) / c as f64;
            return Some(lower + (upper - lower) * into);
        }
        seen += c;
    }
    bounds.last().copied()
}

#[cfg(all(test, not(hotmeter_loom)))]
mod tests {
    use super::*;

    #[test]
    fn bucket_search_linear_and_binary_agree() {
        let small: Vec<f64> = (1..=10).map(f64::from).collect();
        let large: Vec<f64> = (1..=100).map(f64::from).collect();
        for v in [-1.0, 0.5, 1.0, 1.5, 10.0, 10.5, 99.0, 100.0, 1e9, f64::INFINITY, f64::NEG_INFINITY] {
            let lin = small.iter().position(|&b| v <= b).unwrap_or(small.len());
            assert_eq!(bucket_index(&small, v), lin, "small {v}");
            let lin = large.iter().position(|&b| v <= b).unwrap_or(large.len());
            assert_eq!(bucket_index(&large, v), lin, "large {v}");
        }
    }

    #[test]
    fn bucket_validation() {
        assert_eq!(Buckets::new([]), Err(BucketError::Empty));
        assert!(matches!(Buckets::new([1.0, f64::NAN]), Err(BucketError::NotFinite { index: 1, .. })));
        assert!(matches!(Buckets::new([f64::INFINITY]), Err(BucketError::NotFinite { index: 0, .. })));
        assert!(matches!(Buckets::new([2.0, 1.0]), Err(BucketError::NotIncreasing { index: 1, .. })));
        assert!(Buckets::exponential(0.0, 2.0, 3).is_err());
        assert!(Buckets::exponential(1.0, 1.0, 3).is_err());
        assert!(Buckets::linear(0.0, 0.0, 3).is_err());
        assert!(Buckets::linear(0.0, 1.0, 0).is_err());
        assert_eq!(Buckets::default().bounds(), &DEFAULT_BUCKETS);
    }

    #[test]
    fn special_values() {
        let h = Histogram::new(Buckets::new([0.0, 1.0]).unwrap());
        h.observe(-5.0);
        h.observe(f64::NEG_INFINITY);
        h.observe(f64::NAN);
        h.observe(1.0);
        let s = h.snapshot();
        assert_eq!(s.counts(), &[2, 1, 0]);
        assert_eq!(s.sum(), f64::NEG_INFINITY);
        assert_eq!(s.nan_dropped(), 1);
        assert_eq!(s.count(), 3);
        h.observe(f64::INFINITY);
        assert_eq!(h.snapshot().counts(), &[2, 1, 1]);
    }

    #[test]
    fn repeated_snapshots_keep_totals() {
        let h = Histogram::new(Buckets::new([1.0]).unwrap());
        for i in 0..5 {
            h.observe(0.5);
            let s = h.snapshot();
            assert_eq!(s.count(), i + 1);
            assert_eq!(s.sum(), 0.5 * (i + 1) as f64);
        }
    }

    #[test]
    fn quantile_interpolates() {
        let h = Histogram::new(Buckets::new([1.0, 2.0]).unwrap());
        assert_eq!(h.snapshot().quantile(0.5), None);
        for _ in 0..10 {
            h.observe(1.5);
        }
        let q = h.snapshot().quantile(0.5).unwrap();
        assert!((q - 1.5).abs() < 1e-9, "{q}");
    }

    #[test]
    fn timer_records_and_discards() {
        let h = Histogram::with_default_buckets();
        h.start_timer().discard();
        assert_eq!(h.snapshot().count(), 0);
        let d = h.start_timer().observe();
        assert_eq!(h.snapshot().count(), 1);
        assert!(h.snapshot().sum() >= d.as_secs_f64() * 0.999);
    }
}
