//! Histograms with fixed buckets: [`Histogram`], [`Buckets`], [`HistogramTimer`].
//!
//! Owns: bucket layouts and their validation, the sharded hot/cold cells,
//! and the consistent snapshot. Must not: allocate (but for the shard a
//! thread's first observation on a histogram makes, a cold path), lock or
//! make a syscall when recording, nor ever make a writer wait for a reader.
//!
//! The consistency protocol is documented on [`Histogram`] itself, where
//! rustdoc shows it.

use std::time::{Duration, Instant};

use crate::exemplar::{Exemplar, ExemplarSlots, TraceId, now_unix_seconds};

use crate::error::BucketError;
use crate::gauge::add_f64;
use crate::sync::{
    Arc, AtomicU64, CachePadded, Mutex, OnceLock, Ordering, exclusive_shard_count, fence, lock, spin_loop, thread_slot,
    thread_slot_or_max,
};

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
    /// [`DEFAULT_BUCKETS`], one shared allocation for every histogram.
    fn default() -> Self {
        static DEFAULT: crate::sync::StaticOnceLock<Arc<[f64]>> = crate::sync::StaticOnceLock::new();
        Self { bounds: DEFAULT.get_or_init(|| DEFAULT_BUCKETS.iter().copied().collect()).clone() }
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

/// Words per cache-padded chunk of bucket counts.
const CHUNK: usize = 16;
const HOT_BIT: u64 = 1 << 63;
const COUNT_MASK: u64 = HOT_BIT - 1;

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
/// # Consistency: how snapshots stay exact without stopping writers
/// Every thread slot below an exclusive shard count (16 or more, from the
/// number of CPUs) owns a shard that no
/// other thread writes; threads with higher slots share one extra shard. An
/// owned shard is made by its thread's first observation (the one
/// allocation recording ever makes, once per thread and histogram; the
/// shared shard likewise by its first writer), so a series written by two
/// threads holds those two shards and the reader's memory of them, not
/// seventeen. A
/// shard holds a control word, one sequence word per half, and two halves,
/// *hot* and *cold*, each with a sum and one count per bucket (the `+Inf`
/// bucket included). The control word's top bit names the hot half; on the
/// shared shard its low 63 bits count observations *started*. A half's
/// count is the sum of its buckets: there is no separate count cell.
///
/// A writer on its **own shard** uses no atomic read-modify-write at all:
/// it loads the hot bit, makes the half's sequence word odd, adds to the sum
/// and the bucket with plain loads and stores (it is the only writer), and
/// makes the sequence even again with `Release` (a seqlock write).
///
/// A writer on the **shared shard** does, as client_golang does, a
/// `fetch_add(1)` on the control word (learns the hot half, counts itself as
/// started), a compare-and-swap on the sum, and a `Release` `fetch_add` on
/// its bucket: the completion mark.
///
/// A reader (one at a time per histogram, serialised by a mutex writers
/// never touch) never writes a data cell. It remembers, per shard and half,
/// the values it last read. Per shard it flips the hot bit, then reads the
/// now-cold half:
/// - own shard: a seqlock read (retry while the sequence is odd or changed).
///   The writer switches halves at its next observation, so the cold half
///   settles at once. Before flipping, the reader also checks the sequence
///   of the half that has been cold since the last snapshot: an owner that
///   loaded the hot bit just before that flip may have finished into it
///   afterwards, and then the half is read again;
/// - shared shard: the other half has not changed since it was last read
///   (it was cold all along), so the cold half must reach the started count
///   minus that half's count; the reader re-reads its buckets until it does
///   (every writer that started before the flip has finished).
///
/// The snapshot adds up the remembered halves of every shard, each read
/// consistently, so its count always equals the sum of its bucket counts and
/// its sum belongs to exactly those observations. Every observation whose
/// `observe` returned before a snapshot began is in that snapshot; one that
/// runs concurrently is in it or in the next. Shards are flipped one after
/// another, so the merge is a consistent set of observations, not one
/// instant in time.
///
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

impl Histogram {
    /// Handles sharing this series' value, this one included
    /// ([`Metric::handles`](crate::expose::Metric::handles)).
    pub(crate) fn handles(&self) -> usize {
        crate::sync::handle_count(&self.core)
    }
}

/// One shard: its control words on one cache line, its bucket counts on
/// lines of their own.
#[derive(Debug)]
struct Shard {
    /// Top bit: the hot half. Shared shard only: low bits count started
    /// observations.
    control: AtomicU64,
    /// Owned shards: per half, a seqlock sequence (odd while writing).
    seq: [AtomicU64; 2],
    /// NaN observations dropped.
    nan: AtomicU64,
    /// Per half, the sum's `f64` bits.
    sum: [AtomicU64; 2],
    /// Per half, one count per bucket: `[half * buckets + bucket]`, in
    /// cache-padded chunks.
    counts: Box<[CachePadded<[AtomicU64; CHUNK]>]>,
}

impl Shard {
    fn new(buckets: usize) -> CachePadded<Self> {
        let chunks = (2 * buckets).div_ceil(CHUNK);
        CachePadded::new(Self {
            control: AtomicU64::new(0),
            seq: [AtomicU64::new(0), AtomicU64::new(0)],
            nan: AtomicU64::new(0),
            sum: [AtomicU64::new(0f64.to_bits()), AtomicU64::new(0f64.to_bits())],
            counts: (0..chunks).map(|_| CachePadded::new(std::array::from_fn(|_| AtomicU64::new(0)))).collect(),
        })
    }

    #[inline]
    fn count(&self, i: usize) -> &AtomicU64 {
        &self.counts[i / CHUNK][i % CHUNK]
    }
}

#[derive(Debug)]
struct Core {
    bounds: Buckets,
    /// Bucket counts per half, including `+Inf`.
    buckets: usize,
    /// Shard `i` is written only by the thread holding slot `i`, and made
    /// by that thread at its first observation: a series pays for the
    /// shards of the threads that write it, not for every slot.
    owned: Box<[OnceLock<Box<CachePadded<Shard>>>]>,
    /// Written by every thread whose slot is beyond `owned`.
    /// Made by its first writer, as the owned ones are.
    shared: OnceLock<Box<CachePadded<Shard>>>,
    /// Bit `i` set once owned shard `i` has been written: a snapshot reads
    /// only those (a histogram is usually written by a few threads).
    active: AtomicU64,
    /// The reader's memory of every half; the mutex serialises readers and
    /// is never touched by writers.
    reader: Mutex<ReaderCache>,
    /// One exemplar per bucket, created by the first exemplar recorded:
    /// histograms that never get one pay nothing.
    exemplars: crate::sync::OnceLock<ExemplarSlots>,
    /// When it was made, in nanoseconds since the Unix epoch.
    created: u64,
}

/// Per shard and half, the bucket counts and sum as last read. Shards have
/// places in the order the reader first meets them (the shared one at 0),
/// so the memory holds the shards that were written, whichever slots they
/// belong to. A half is read only when it is cold, and does not
/// change while it stays cold (but for a late owner, which the sequence
/// check catches), so these are exact until it turns hot again.
#[derive(Debug)]
struct ReaderCache {
    /// Per owned shard, its place in the vectors below (0: none yet).
    place: Box<[u16]>,
    /// `[(shard * 2 + half) * buckets + bucket]`.
    counts: Vec<u64>,
    /// `[shard * 2 + half]`.
    sums: Vec<f64>,
    /// `[shard * 2 + half]`: an owned half's sequence when last read.
    seqs: Vec<u64>,
    /// Per bucket, the sum of `counts` over every shard and half.
    totals: Vec<u64>,
}

impl Histogram {
    /// A histogram with the given buckets.
    pub fn new(buckets: Buckets) -> Self {
        let owned = exclusive_shard_count();
        let nb = buckets.bounds.len() + 1;
        let reader = ReaderCache {
            place: vec![0; owned].into_boxed_slice(),
            counts: vec![0; 2 * nb],
            sums: vec![0.0; 2],
            seqs: vec![0; 2],
            totals: vec![0; nb],
        };
        Self {
            core: Arc::new(Core {
                bounds: buckets,
                buckets: nb,
                owned: (0..owned).map(|_| OnceLock::new()).collect(),
                shared: OnceLock::new(),
                active: AtomicU64::new(0),
                reader: Mutex::new(reader),
                exemplars: crate::sync::OnceLock::new(),
                created: crate::exemplar::unix_nanos_now(),
            }),
        }
    }

    /// A histogram with [`DEFAULT_BUCKETS`].
    pub fn with_default_buckets() -> Self {
        Self::new(Buckets::default())
    }

    /// The bucket layout.
    pub fn buckets(&self) -> &Buckets {
        &self.core.bounds
    }

    /// When it was made, in nanoseconds since the Unix epoch.
    pub fn created_unix_nanos(&self) -> u64 {
        self.core.created
    }

    /// Records one observation.
    // Always inlined: the owned path is a few dozen instructions, and a call
    // with its register saves costs as much again; the cold paths are
    // separate functions.
    #[inline(always)]
    pub fn observe(&self, v: f64) {
        let core = &*self.core;
        // No slot yet reads as out of range, and a slot whose shard is not
        // made yet as missing: the cold path assigns one, or makes it.
        let slot = thread_slot_or_max();
        let Some(shard) = core.owned.get(slot).and_then(OnceLock::get) else {
            return self.observe_cold(v);
        };
        self.observe_owned(slot, shard, v);
    }

    #[inline(always)]
    fn observe_owned(&self, slot: usize, shard: &Shard, v: f64) {
        let core = &*self.core;
        if v.is_nan() {
            self.activate(slot);
            return reject_nan(&shard.nan, true);
        }
        let bucket = bucket_index(&core.bounds.bounds, v);
        // This thread is the shard's only writer: plain loads and stores
        // cannot lose an update, and a seqlock write lets the reader see it
        // whole. Relaxed hot-bit load: a stale bit only means this
        // observation lands in the half being read, which the reader's
        // sequence check picks up (see the module docs).
        let h = (shard.control.load(Ordering::Relaxed) >> 63) as usize;
        let seq = &shard.seq[h];
        let s = seq.load(Ordering::Relaxed);
        if s == 0 {
            // This half's first write: make sure snapshots read this shard
            // (once per half; the check reuses the value just loaded).
            self.activate(slot);
        }
        seq.store(s.wrapping_add(1), Ordering::Relaxed);
        // Release fence: the odd sequence is visible before any data store
        // below (a compiler barrier only, on x86).
        fence(Ordering::Release);
        let sum = &shard.sum[h];
        sum.store((f64::from_bits(sum.load(Ordering::Relaxed)) + v).to_bits(), Ordering::Relaxed);
        let count = shard.count(h * core.buckets + bucket);
        count.store(count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        // Release: publishes the data stores with the even sequence.
        seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// First observation on this thread (or its slot's first on this
    /// histogram: the shard is made here, by the slot's only writer), or a
    /// slot beyond the owned shards.
    #[cold]
    #[inline(never)]
    fn observe_cold(&self, v: f64) {
        let core = &*self.core;
        let slot = thread_slot();
        match core.owned.get(slot) {
            Some(cell) => self.observe_owned(slot, cell.get_or_init(|| Box::new(Shard::new(core.buckets))), v),
            None => self.observe_shared(v),
        }
    }

    /// Marks owned shard `slot` as written, before its first write.
    #[cold]
    #[inline(never)]
    fn activate(&self, slot: usize) {
        // Release: a snapshot that sees the bit reads the shard from here on;
        // the writes that follow are published by the seqlock as usual.
        self.core.active.fetch_or(1 << slot, Ordering::Release);
    }

    /// The shared shard: several writers, so atomic read-modify-writes.
    fn observe_shared(&self, v: f64) {
        let core = &*self.core;
        let shard = core.shared.get_or_init(|| Box::new(Shard::new(core.buckets)));
        if v.is_nan() {
            return reject_nan(&shard.nan, false);
        }
        let bucket = bucket_index(&core.bounds.bounds, v);
        // Relaxed: the reader writes no data cell this writer needs to see;
        // the read-modify-write orders us against the reader's flip.
        let started = shard.control.fetch_add(1, Ordering::Relaxed);
        let h = (started >> 63) as usize;
        add_f64(&shard.sum[h], v);
        // Release: the completion mark; publishes the sum above.
        shard.count(h * core.buckets + bucket).fetch_add(1, Ordering::Release);
    }

    /// Records one observation and keeps `trace` as its bucket's exemplar
    /// (newest wins; emitted in OpenMetrics output). The observation is
    /// recorded exactly as [`observe`](Self::observe) records it; the
    /// exemplar costs a clock read and an uncontended `try_lock`, and is
    /// skipped, never waited for, while a scrape reads that bucket's slot.
    /// NaN is not recorded and gets no exemplar.
    ///
    /// ```
    /// let h = hotmeter::Histogram::new(hotmeter::Buckets::new([0.1, 1.0])?);
    /// let trace = hotmeter::TraceId::new("4bf92f3577b34da6")?;
    /// h.observe_with_exemplar(0.5, &trace);
    /// let e = h.exemplars()[1].expect("the (0.1, 1] bucket has one");
    /// assert_eq!((e.trace_id.as_str(), e.value), ("4bf92f3577b34da6", 0.5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn observe_with_exemplar(&self, v: f64, trace: &TraceId) {
        self.observe(v);
        if v.is_nan() {
            return;
        }
        let core = &*self.core;
        let slots = core.exemplars.get_or_init(|| ExemplarSlots::new(core.buckets));
        slots.offer(
            bucket_index(&core.bounds.bounds, v),
            Exemplar { trace_id: *trace, value: v, timestamp: now_unix_seconds() },
        );
    }

    /// The current exemplar of each bucket (`+Inf` last); empty if none was
    /// ever recorded.
    pub fn exemplars(&self) -> Vec<Option<Exemplar>> {
        let mut out = Vec::new();
        self.exemplars_into(&mut out);
        out
    }

    pub(crate) fn exemplars_into(&self, out: &mut Vec<Option<Exemplar>>) {
        match self.core.exemplars.get() {
            Some(slots) => slots.read_into(out),
            None => out.clear(),
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
        let nb = core.buckets;
        counts.clear();
        counts.resize(nb, 0);
        let mut nan = 0u64;
        let mut cache = lock(&core.reader);
        let cache = &mut *cache;
        // Acquire: pairs with `activate`.
        let mut active = core.active.load(Ordering::Acquire);
        while active != 0 {
            let i = active.trailing_zeros() as usize;
            active &= active - 1;
            // Made before its bit was set (the Acquire above pairs with
            // `activate`'s Release, after the shard's `get_or_init`).
            let Some(shard) = core.owned.get(i).and_then(OnceLock::get) else { continue };
            // Its place in the reader's memory.
            let i = cache.place_of(nb, i);
            nan = nan.wrapping_add(shard.nan.load(Ordering::Relaxed));
            // Unchanged since both halves were last read (both sequences as
            // remembered; a writer mid-observation has an odd one): the
            // remembered values are the shard's state, no flip needed.
            // Untouched shards cost two loads.
            if shard.seq[0].load(Ordering::Acquire) == cache.seqs[i * 2]
                && shard.seq[1].load(Ordering::Acquire) == cache.seqs[i * 2 + 1]
            {
                continue;
            }
            // Only readers flip, and we hold the reader lock: exact.
            let waiting = 1 - (shard.control.load(Ordering::Relaxed) >> 63) as usize;
            if shard.seq[waiting].load(Ordering::Acquire) != cache.seqs[i * 2 + waiting] {
                // A late owner finished into the half that was cold.
                cache.read_owned(shard, nb, i, waiting);
            }
            let before = shard.control.fetch_add(HOT_BIT, Ordering::AcqRel);
            cache.read_owned(shard, nb, i, (before >> 63) as usize);
        }
        // Not made yet: no observation has started on it.
        if let Some(shard) = core.shared.get() {
            let i = 0;
            nan = nan.wrapping_add(shard.nan.load(Ordering::Relaxed));
            // Unchanged when no observation started since both halves were read.
            let started = shard.control.load(Ordering::Acquire) & COUNT_MASK;
            let seen = cache.counts[i * 2 * nb..(i + 1) * 2 * nb].iter().fold(0u64, |a, &c| a.wrapping_add(c));
            if started != seen {
                let before = shard.control.fetch_add(HOT_BIT, Ordering::AcqRel);
                cache.read_shared(shard, nb, i, before);
            }
        }
        counts.copy_from_slice(&cache.totals);
        (cache.sums.iter().sum(), nan)
    }
}

#[cold]
#[inline(never)]
fn reject_nan(cell: &AtomicU64, owned: bool) {
    if owned {
        cell.store(cell.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    } else {
        cell.fetch_add(1, Ordering::Relaxed);
    }
}

impl ReaderCache {
    /// Owned shard `slot`'s place, given the next one (and exactly the
    /// room for it) when the reader first meets it: its counts, sums and
    /// sequences start at zero, as a new shard's do.
    fn place_of(&mut self, nb: usize, slot: usize) -> usize {
        let place = usize::from(self.place[slot]);
        if place != 0 {
            return place;
        }
        let place = self.seqs.len() / 2;
        // At most 64 owned shards (the `active` bits) and the shared one.
        self.place[slot] = place as u16;
        self.counts.reserve_exact(2 * nb);
        self.counts.resize((place + 1) * 2 * nb, 0);
        self.sums.reserve_exact(2);
        self.sums.resize((place + 1) * 2, 0.0);
        self.seqs.reserve_exact(2);
        self.seqs.resize((place + 1) * 2, 0);
        place
    }

    /// Seqlock read of half `h` of owned shard number `i` into the cache.
    fn read_owned(&mut self, shard: &Shard, nb: usize, i: usize, h: usize) {
        self.untally(nb, i, h);
        self.read_owned_half(shard, nb, i, h);
        self.tally(nb, i, h);
    }

    fn read_owned_half(&mut self, shard: &Shard, nb: usize, i: usize, h: usize) {
        let seq = &shard.seq[h];
        let counts = &mut self.counts[(i * 2 + h) * nb..][..nb];
        let mut spins = 0u32;
        loop {
            // Acquire: pairs with the writer's Release of an even sequence.
            let s0 = seq.load(Ordering::Acquire);
            if s0 & 1 == 0 {
                for (b, c) in counts.iter_mut().enumerate() {
                    *c = shard.count(h * nb + b).load(Ordering::Relaxed);
                }
                let sum = shard.sum[h].load(Ordering::Relaxed);
                // Acquire fence: the data loads above happen before the re-check.
                fence(Ordering::Acquire);
                if seq.load(Ordering::Relaxed) == s0 {
                    self.sums[i * 2 + h] = f64::from_bits(sum);
                    self.seqs[i * 2 + h] = s0;
                    return;
                }
            }
            backoff(&mut spins);
        }
    }

    /// Reads the now-cold half of the shared shard (number `i`), given the
    /// control word `before` the flip: once its buckets add up to the
    /// started count minus the other half's (unchanged since it was last
    /// read), every writer counted as started has finished.
    fn read_shared(&mut self, shard: &Shard, nb: usize, i: usize, before: u64) {
        let h = (before >> 63) as usize;
        self.untally(nb, i, h);
        self.read_shared_half(shard, nb, i, before);
        self.tally(nb, i, h);
    }

    /// Removes half `h` of shard `i` from the totals (before re-reading it).
    fn untally(&mut self, nb: usize, i: usize, h: usize) {
        for (t, &c) in self.totals.iter_mut().zip(&self.counts[(i * 2 + h) * nb..][..nb]) {
            *t = t.wrapping_sub(c);
        }
    }

    /// Adds half `h` of shard `i` to the totals (after reading it).
    fn tally(&mut self, nb: usize, i: usize, h: usize) {
        for (t, &c) in self.totals.iter_mut().zip(&self.counts[(i * 2 + h) * nb..][..nb]) {
            *t = t.wrapping_add(c);
        }
    }

    fn read_shared_half(&mut self, shard: &Shard, nb: usize, i: usize, before: u64) {
        let h = (before >> 63) as usize;
        let other = (i * 2 + 1 - h) * nb;
        let other_count = self.counts[other..other + nb].iter().fold(0u64, |a, &c| a.wrapping_add(c));
        let expected = (before & COUNT_MASK).wrapping_sub(other_count);
        let counts = &mut self.counts[(i * 2 + h) * nb..][..nb];
        let mut spins = 0u32;
        loop {
            // Acquire: pairs with each writer's Release completion mark, so
            // the sum read below includes every finished writer.
            let mut done = 0u64;
            for (b, c) in counts.iter_mut().enumerate() {
                *c = shard.count(h * nb + b).load(Ordering::Acquire);
                done = done.wrapping_add(*c);
            }
            // Counts only grow, so equal totals mean every bucket is final.
            if done == expected {
                self.sums[i * 2 + h] = f64::from_bits(shard.sum[h].load(Ordering::Relaxed));
                return;
            }
            backoff(&mut spins);
        }
    }
}

/// Spin briefly, then yield: a writer descheduled mid-observation needs the
/// CPU to finish. Shared with the native histogram's reader.
pub(crate) fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        spin_loop();
    } else {
        #[cfg(not(hotmeter_loom))]
        std::thread::yield_now();
        #[cfg(hotmeter_loom)]
        spin_loop();
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

/// Estimates the `q`-quantile from finite bucket `bounds` and per-bucket
/// (not cumulative) `counts` whose last entry is the `+Inf` bucket, by linear
/// interpolation inside the bucket, as PromQL's `histogram_quantile` does.
/// `None` with no observations or a NaN `q`; the highest finite bound when
/// the quantile falls in `+Inf`.
///
/// ```
/// assert_eq!(hotmeter::expose::histogram_quantile(&[1.0, 2.0], &[0, 10, 0], 0.5), Some(1.5));
/// ```
pub fn histogram_quantile(bounds: &[f64], counts: &[u64], q: f64) -> Option<f64> {
    quantile_from_buckets(bounds, counts, q)
}

/// The upper bound of the classic bucket that holds the `q`-quantile of
/// per-bucket `counts` (`+Inf` last): all a classic histogram knows of it,
/// "at most this". Where [`histogram_quantile`] interpolates inside the
/// bucket (Prometheus' `histogram_quantile`), which makes up a value: one
/// observation in `(0, 1]` reads P50 0.5 and P99 0.99. In the `+Inf`
/// bucket, the largest finite bound, as Prometheus answers (the quantile is
/// then at least that). `None` without observations.
///
/// # Examples
/// ```
/// let bounds = [1.0, 10.0];
/// // One observation in (0, 1]: interpolation says 0.5, the bound says at most 1.
/// assert_eq!(hotmeter::expose::histogram_quantile(&bounds, &[1, 0, 0], 0.5), Some(0.5));
/// assert_eq!(hotmeter::expose::histogram_quantile_bound(&bounds, &[1, 0, 0], 0.5), Some(1.0));
/// ```
pub fn histogram_quantile_bound(bounds: &[f64], counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 || q.is_nan() {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut seen = 0u64;
    for (i, &c) in counts.iter().enumerate() {
        if c > 0 && (seen + c) as f64 >= rank {
            return bounds.get(i).or(bounds.last()).copied();
        }
        seen += c;
    }
    bounds.last().copied()
}

fn quantile_from_buckets(bounds: &[f64], counts: &[u64], q: f64) -> Option<f64> {
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

    /// Owned shards made so far.
    fn shards_made(h: &Histogram) -> usize {
        h.core.owned.iter().filter(|cell| cell.get().is_some()).count()
    }

    /// More writers alive at once than there are owned shards, so some
    /// write the shared shard while others write their own: every
    /// snapshot between rounds is exact, bucket by bucket (the reader keeps
    /// each shard's memory apart, whatever order it meets them in).
    #[test]
    fn snapshots_stay_exact_with_owned_and_shared_writers() {
        let h = Histogram::new(Buckets::new([1.0, 2.0]).unwrap());
        let threads = h.core.owned.len() + 4;
        for round in 1..=3u64 {
            // A thread takes its slot at its first observation and gives it
            // back when it exits: every writer of the round stays until all
            // have observed, so they hold distinct slots at once.
            let observed = crate::sync::AtomicUsize::new(0);
            std::thread::scope(|s| {
                for t in 0..threads {
                    let (h, observed) = (&h, &observed);
                    s.spawn(move || {
                        h.observe((t % 3) as f64 + 0.5);
                        observed.fetch_add(1, Ordering::SeqCst);
                        while observed.load(Ordering::SeqCst) < threads {
                            std::thread::yield_now();
                        }
                    });
                }
            });
            let per_bucket = |b: usize| round * (0..threads).filter(|t| t % 3 == b).count() as u64;
            let snap = h.snapshot();
            assert_eq!(snap.counts(), &[per_bucket(0), per_bucket(1), per_bucket(2)][..], "round {round}");
        }
        // A round's writers held distinct slots at once, so at least four
        // were beyond the owned shards: the shared shard was written.
        assert!(h.core.shared.get().is_some(), "no writer reached the shared shard");
    }

    /// A histogram makes the shards of the threads that write it, at their
    /// first observation, and no other; the snapshot adds them all up.
    #[test]
    fn shards_are_made_by_the_threads_that_write() {
        let h = Histogram::new(Buckets::new([1.0]).unwrap());
        assert_eq!(shards_made(&h), 0, "none up front");
        h.observe(0.5);
        let own = usize::from(thread_slot() < h.core.owned.len());
        assert_eq!(shards_made(&h), own);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| (0..100).for_each(|_| h.observe(2.0)));
            }
        });
        assert!(shards_made(&h) <= own + 2, "{} shards for three writers", shards_made(&h));
        let places = lock(&h.core.reader).seqs.len() / 2;
        assert!(places <= shards_made(&h) + 1, "the reader holds {places} shards' memory for {} made", shards_made(&h));
        let snap = h.snapshot();
        assert_eq!((snap.counts(), snap.sum()), (&[1, 200][..], 400.5));
    }

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
