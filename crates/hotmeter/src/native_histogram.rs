//! Native (sparse exponential) histograms: [`NativeHistogram`],
//! [`NativeOpts`], [`NativeSnapshot`]. The bucket arithmetic they share with
//! encoders and readers (keys, bounds, merging down, spans, quantiles) is
//! [`crate::native`]'s.
//!
//! Owns: the sharded hot/cold storage of the metric, the fast bucket key
//! writers compute (a table lookup checked against `native`'s reference
//! key), and its consistent snapshot. Must not: allocate, lock or make a
//! syscall when recording into a bucket range already used, nor ever make a
//! writer wait for a reader.
//!
//! # How it records
//! Writers always record at the *storage schema* (the configured schema, or
//! 0 for negative ones); the resolution Prometheus sees is decided when a
//! snapshot is read: buckets are merged down one schema at a time (exact:
//! every coarser bound is also a finer one) until at most
//! [`NativeOpts::max_buckets`] are populated. Counts only grow, so the
//! populated set only grows and the schema a scrape reports never goes back
//! up: the same buckets `client_golang` would report after reducing its
//! resolution, without a writer ever doing the reduction.
//!
//! Per shard and sign, buckets live in blocks of one power of two each
//! (`2^storage_schema` counts per half), found through a small
//! direct-mapped table of powers of two ([`OCTAVE_SLOTS`] of them, any run
//! of that many consecutive powers of two never collides). A block is
//! allocated at the first observation in its power of two; after that,
//! recording there allocates nothing. Observations in a shard that would
//! need more powers of two than the table holds (values spanning more than
//! a factor 2^64 in one thread) go to a fixed array at schema -4 instead,
//! and the snapshot then reports schema -4: coarser, never lost.
//!
//! Shards and the consistency protocol are the classic [`Histogram`]'s
//! (see its docs): a thread that owns a shard writes with a seqlock and
//! plain stores, threads beyond the owned shards share one shard with
//! read-modify-writes, and a reader flips each shard's hot half and reads
//! the cold one, so a snapshot's count is exactly its zero bucket plus all
//! its buckets and its sum belongs to exactly those observations.
//!
//! [`Histogram`]: crate::Histogram

use crate::desc::MetricType;
use crate::error::BucketError;
use crate::exemplar::{Exemplar, ExemplarSlots, TraceId, now_unix_seconds};
use crate::gauge::add_f64;
use crate::histogram::{Buckets, backoff, bucket_index};
use crate::native::{
    DEFAULT_ZERO_THRESHOLD, MANTISSA_BITS, MAX_SCHEMA, MIN_SCHEMA, NativeBuckets, NativeBucketsRef, bucket_key,
    bucket_upper, coarser_key, first_bounds, fraction_bounds, merge_down,
};
use crate::sync::{
    Arc, AtomicU64, CachePadded, Mutex, OnceLock, Ordering, exclusive_shard_count, fence, lock, thread_slot,
    thread_slot_or_max,
};
use crate::value::{Metric, Scratch, Value};

/// Slots of a sign's power-of-two table per shard (1 under loom, so a
/// two-observation model reaches the schema -4 fallback).
#[cfg(not(hotmeter_loom))]
const OCTAVE_SLOTS: usize = 64;
/// Slots of a sign's power-of-two table per shard (1 under loom, so a
/// two-observation model reaches the schema -4 fallback).
#[cfg(hotmeter_loom)]
const OCTAVE_SLOTS: usize = 1;

/// Added to a power of two's exponent to make a table key (0 = free).
const OCTAVE_BIAS: i32 = 4096;
/// Keys at schema -4 of every finite `|v|` lie in `-68..=65`.
const COARSE_BIAS: i32 = 70;
const COARSE_KEYS: usize = 140;
const HOT_BIT: u64 = 1 << 63;
const COUNT_MASK: u64 = HOT_BIT - 1;

/// How a [`NativeHistogram`] buckets its observations.
///
/// ```
/// let opts = hotmeter::NativeOpts::new().schema(3)?.max_buckets(100)?;
/// assert_eq!(opts.get_schema(), 3);
/// assert!(hotmeter::NativeOpts::new().schema(9).is_err());
/// # Ok::<(), hotmeter::BucketError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct NativeOpts {
    schema: i8,
    zero_threshold: f64,
    max_buckets: usize,
    classic: Option<Buckets>,
}

impl Default for NativeOpts {
    fn default() -> Self {
        Self::new()
    }
}

impl NativeOpts {
    /// Schema 3 (each bucket about 9% wide, as `client_golang`'s factor
    /// 1.1), zero threshold 2^-128, at most 160 buckets, no classic buckets.
    pub fn new() -> Self {
        Self { schema: 3, zero_threshold: DEFAULT_ZERO_THRESHOLD, max_buckets: 160, classic: None }
    }

    /// The starting resolution, -4 to 8: `2^schema` buckets per power of
    /// two (for negative schemas, one bucket per `2^-schema` powers).
    pub fn schema(mut self, schema: i8) -> Result<Self, BucketError> {
        if !(MIN_SCHEMA..=MAX_SCHEMA).contains(&schema) {
            return Err(BucketError::BadLayout { parameter: "schema", value: f64::from(schema) });
        }
        self.schema = schema;
        Ok(self)
    }

    /// The coarsest schema whose bucket growth factor (`2^(2^-schema)`) is
    /// at most `factor` (schema 8 below its factor), as `client_golang`'s
    /// `NativeHistogramBucketFactor`.
    pub fn bucket_factor(self, factor: f64) -> Result<Self, BucketError> {
        if !(factor > 1.0 && factor.is_finite()) {
            return Err(BucketError::BadLayout { parameter: "bucket_factor", value: factor });
        }
        let schema = (MIN_SCHEMA..=MAX_SCHEMA).find(|&s| bucket_upper(1, s) <= factor).unwrap_or(MAX_SCHEMA);
        self.schema(schema)
    }

    /// Observations with `|v|` at or below this go to the zero bucket
    /// (finite, not negative).
    pub fn zero_threshold(mut self, threshold: f64) -> Result<Self, BucketError> {
        if !(threshold >= 0.0 && threshold.is_finite()) {
            return Err(BucketError::BadLayout { parameter: "zero_threshold", value: threshold });
        }
        self.zero_threshold = threshold;
        Ok(self)
    }

    /// At most this many populated buckets (positive and negative
    /// together); beyond it, snapshots halve the resolution until it holds
    /// (down to schema -4). At least 1.
    pub fn max_buckets(mut self, max: usize) -> Result<Self, BucketError> {
        if max == 0 {
            return Err(BucketError::BadLayout { parameter: "max_buckets", value: 0.0 });
        }
        self.max_buckets = max;
        Ok(self)
    }

    /// Also keeps these classic buckets, updated by the same observations,
    /// for scrapers without native-histogram support.
    pub fn classic(mut self, buckets: Buckets) -> Self {
        self.classic = Some(buckets);
        self
    }

    /// The configured starting schema.
    pub fn get_schema(&self) -> i8 {
        self.schema
    }
}

/// A histogram with sparse exponential buckets: Prometheus' native
/// histogram (ingested over protobuf, with `--enable-feature=native-histograms`).
///
/// Recording is lock-free and allocation-free once the power of two an
/// observation falls in has been used by its thread; negative values and
/// `-Inf` go to negative buckets, `±Inf` to the bucket after `±f64::MAX`'s
/// (as in `client_golang`), and
/// NaN is not recorded but counted ([`NativeSnapshot::nan_dropped`]). The
/// module docs say how resolution is reduced and how snapshots stay exact.
///
/// # Examples
/// ```
/// let h = hotmeter::NativeHistogram::new(hotmeter::NativeOpts::new().schema(0)?);
/// h.observe(1.5); // bucket 1: (1, 2]
/// h.observe(3.0); // bucket 2: (2, 4]
/// h.observe(0.0); // the zero bucket
/// let s = h.snapshot().native;
/// assert_eq!((s.schema, s.count, s.zero_count), (0, 3, 1));
/// assert_eq!(s.positive, vec![(1, 1), (2, 1)]);
/// assert_eq!(s.sum, 4.5);
/// # Ok::<(), hotmeter::BucketError>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct NativeHistogram {
    core: Arc<NativeCore>,
}

impl NativeHistogram {
    /// Handles sharing this series' value, this one included
    /// ([`Metric::handles`](crate::expose::Metric::handles)).
    pub(crate) fn handles(&self) -> usize {
        crate::sync::handle_count(&self.core)
    }
}

#[derive(Debug)]
struct NativeCore {
    opts: NativeOpts,
    /// `max(schema, 0)`: what writers record at.
    storage_schema: i8,
    /// `2^storage_schema`: counts per block and half.
    per_block: usize,
    /// For positive storage schemas, per top-mantissa interval, the first
    /// bucket that may hold it ([`first_bounds`]).
    first_bounds: &'static [u16],
    /// For positive storage schemas, the fractions that end each bucket
    /// within a power of two.
    fractions: &'static [f64],
    /// Classic bucket counts per half (with `+Inf`), or 0.
    classic_buckets: usize,
    /// Shard `i` is written only by the thread holding slot `i`; made at
    /// that thread's first observation.
    owned: Box<[OnceLock<Box<CachePadded<Shard>>>]>,
    /// Written by every thread whose slot is beyond `owned`.
    shared: OnceLock<Box<CachePadded<Shard>>>,
    /// Serialises readers; writers never touch it.
    reader: Mutex<ReaderCache>,
    /// One exemplar per classic bucket, made by the first exemplar offered
    /// (only with classic buckets).
    exemplars: OnceLock<ExemplarSlots>,
    /// When it was made, in nanoseconds since the Unix epoch.
    created: u64,
}

/// One sign's buckets in one shard.
#[derive(Debug)]
struct Side {
    /// Per slot: `exponent + OCTAVE_BIAS` of the power of two it holds, or 0.
    keys: [AtomicU64; OCTAVE_SLOTS],
    /// Per slot, `2 * per_block` counts: `[half * per_block + offset]`.
    blocks: [OnceLock<Box<[AtomicU64]>>; OCTAVE_SLOTS],
    /// Schema -4 counts, `[half * COARSE_KEYS + key + COARSE_BIAS]`, for
    /// powers of two the table has no room for.
    coarse: OnceLock<Box<[AtomicU64]>>,
}

#[derive(Debug)]
struct Shard {
    /// Top bit: the hot half. Shared shard only: low bits count started
    /// observations.
    control: AtomicU64,
    /// Owned shards: per half, a seqlock sequence (odd while writing).
    seq: [AtomicU64; 2],
    nan: AtomicU64,
    /// Per half, the sum's `f64` bits.
    sum: [AtomicU64; 2],
    /// Per half, the zero bucket.
    zero: [AtomicU64; 2],
    positive: Side,
    negative: Side,
    /// Classic counts `[half * classic_buckets + bucket]` (empty if none).
    classic: Box<[AtomicU64]>,
}

/// Where one observation is counted: cell `half * stride + index` of `cells`.
struct Target<'a> {
    cells: &'a [AtomicU64],
    index: usize,
    stride: usize,
}

fn zeroed(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

impl Side {
    fn new() -> Self {
        Self {
            keys: std::array::from_fn(|_| AtomicU64::new(0)),
            blocks: std::array::from_fn(|_| OnceLock::new()),
            coarse: OnceLock::new(),
        }
    }

    /// The block of power of two `octave`, claiming a slot for it if need
    /// be; `None` when the table is full of others. The fast path is the
    /// block already in its home slot (any run of [`OCTAVE_SLOTS`]
    /// consecutive powers of two has a slot each).
    #[inline]
    fn block(&self, octave: i32, per_block: usize) -> Option<&[AtomicU64]> {
        let want = (octave + OCTAVE_BIAS) as u64;
        // The slot count is a power of two: the mask is `rem_euclid`.
        let home = (octave as u32 as usize) & (OCTAVE_SLOTS - 1);
        // Acquire: pairs with the claim, so the block is looked up after
        // the key that names it.
        if self.keys[home].load(Ordering::Acquire) == want
            && let Some(block) = self.blocks[home].get()
        {
            return Some(block);
        }
        self.block_slow(home, want, per_block)
    }

    /// Probes from `home` for the slot keyed `want`, claiming a free one
    /// and allocating its block at first use.
    #[cold]
    #[inline(never)]
    fn block_slow(&self, home: usize, want: u64, per_block: usize) -> Option<&[AtomicU64]> {
        for probe in 0..OCTAVE_SLOTS {
            let i = (home + probe) % OCTAVE_SLOTS;
            let k = self.keys[i].load(Ordering::Acquire);
            if k == want {
                return Some(self.blocks[i].get_or_init(|| zeroed(2 * per_block)));
            }
            if k == 0 {
                match self.keys[i].compare_exchange(0, want, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => return Some(self.blocks[i].get_or_init(|| zeroed(2 * per_block))),
                    Err(now) if now == want => {
                        return Some(self.blocks[i].get_or_init(|| zeroed(2 * per_block)));
                    }
                    Err(_) => {}
                }
            }
        }
        None
    }

    fn coarse(&self) -> &[AtomicU64] {
        self.coarse.get_or_init(|| zeroed(2 * COARSE_KEYS))
    }
}

impl Shard {
    fn new(classic_buckets: usize) -> Box<CachePadded<Self>> {
        Box::new(CachePadded::new(Self {
            control: AtomicU64::new(0),
            seq: [AtomicU64::new(0), AtomicU64::new(0)],
            nan: AtomicU64::new(0),
            sum: [AtomicU64::new(0f64.to_bits()), AtomicU64::new(0f64.to_bits())],
            zero: [AtomicU64::new(0), AtomicU64::new(0)],
            positive: Side::new(),
            negative: Side::new(),
            classic: zeroed(2 * classic_buckets),
        }))
    }
}

impl NativeHistogram {
    /// A native histogram with these options.
    pub fn new(opts: NativeOpts) -> Self {
        let storage_schema = opts.schema.max(0);
        let classic_buckets = opts.classic.as_ref().map_or(0, |b| b.bounds().len() + 1);
        let owned = exclusive_shard_count();
        Self {
            core: Arc::new(NativeCore {
                storage_schema,
                per_block: 1 << storage_schema,
                fractions: if storage_schema > 0 { fraction_bounds(storage_schema) } else { &[] },
                first_bounds: if storage_schema > 0 { first_bounds(storage_schema) } else { &[] },
                classic_buckets,
                owned: (0..owned).map(|_| OnceLock::new()).collect(),
                shared: OnceLock::new(),
                reader: Mutex::new(ReaderCache { halves: (0..2 * (owned + 1)).map(|_| HalfRead::default()).collect() }),
                exemplars: OnceLock::new(),
                created: crate::exemplar::unix_nanos_now(),
                opts,
            }),
        }
    }

    /// The options it was made with.
    pub fn opts(&self) -> &NativeOpts {
        &self.core.opts
    }

    /// When it was made, in nanoseconds since the Unix epoch.
    pub fn created_unix_nanos(&self) -> u64 {
        self.core.created
    }

    /// Records one observation.
    #[inline]
    pub fn observe(&self, v: f64) {
        let core = &*self.core;
        let slot = thread_slot_or_max();
        if let Some(Some(shard)) = core.owned.get(slot).map(OnceLock::get) {
            return core.observe_owned(shard, v);
        }
        self.observe_cold(v);
    }

    /// First observation on this thread, or a slot beyond the owned shards.
    #[cold]
    #[inline(never)]
    fn observe_cold(&self, v: f64) {
        let core = &*self.core;
        let slot = thread_slot();
        match core.owned.get(slot) {
            Some(cell) => core.observe_owned(cell.get_or_init(|| Shard::new(core.classic_buckets)), v),
            None => core.observe_shared(core.shared.get_or_init(|| Shard::new(core.classic_buckets)), v),
        }
    }

    /// Records one observation and, with classic buckets kept alongside,
    /// keeps `trace` as the exemplar of the classic bucket it falls in
    /// (newest wins), exactly as [`Histogram::observe_with_exemplar`](crate::Histogram::observe_with_exemplar)
    /// does. Without classic buckets only the observation is recorded.
    pub fn observe_with_exemplar(&self, v: f64, trace: &TraceId) {
        self.observe(v);
        let core = &*self.core;
        let (Some(classic), false) = (&core.opts.classic, v.is_nan()) else { return };
        let slots = core.exemplars.get_or_init(|| ExemplarSlots::new(core.classic_buckets));
        slots.offer(
            bucket_index(classic.bounds(), v),
            Exemplar { trace_id: *trace, value: v, timestamp: now_unix_seconds() },
        );
    }

    /// The current exemplar of each classic bucket (`+Inf` last); empty if
    /// none was ever recorded.
    pub fn exemplars(&self) -> Vec<Option<Exemplar>> {
        let mut out = Vec::new();
        self.exemplars_into(&mut out);
        out
    }

    fn exemplars_into(&self, out: &mut Vec<Option<Exemplar>>) {
        match self.core.exemplars.get() {
            Some(slots) => slots.read_into(out),
            None => out.clear(),
        }
    }

    /// Records a duration, in seconds.
    #[inline]
    pub fn observe_duration(&self, d: std::time::Duration) {
        self.observe(d.as_secs_f64());
    }

    /// A consistent snapshot. Never blocks writers.
    pub fn snapshot(&self) -> NativeSnapshot {
        let mut scratch = Scratch::default();
        let (native, counts, nan_dropped, _) = self.read(&mut scratch);
        NativeSnapshot {
            native: native.into(),
            classic_bounds: self.core.opts.classic.as_ref().map(|b| b.bounds().to_vec()).unwrap_or_default(),
            classic_counts: counts.to_vec(),
            nan_dropped,
        }
    }

    /// Reads every shard into `scratch` (native buckets, classic counts).
    /// Returns the buckets, the classic counts and the NaN observations dropped.
    fn read<'a>(&self, scratch: &'a mut Scratch) -> (NativeBucketsRef<'a>, &'a [u64], u64, &'a [Option<Exemplar>]) {
        let core = &*self.core;
        let mut cache = lock(&core.reader);
        let cache = &mut *cache;
        let mut nan = 0u64;
        for (i, cell) in core.owned.iter().enumerate() {
            let Some(shard) = cell.get() else { continue };
            nan = nan.wrapping_add(shard.nan.load(Ordering::Relaxed));
            let (h0, h1) = (cache.halves[2 * i].seq, cache.halves[2 * i + 1].seq);
            // Unchanged since both halves were last read: nothing to do.
            if shard.seq[0].load(Ordering::Acquire) == h0 && shard.seq[1].load(Ordering::Acquire) == h1 {
                continue;
            }
            // Only readers flip, and we hold the reader lock: exact.
            let waiting = 1 - (shard.control.load(Ordering::Relaxed) >> 63) as usize;
            if shard.seq[waiting].load(Ordering::Acquire) != cache.halves[2 * i + waiting].seq {
                // A late owner finished into the half that was cold.
                core.read_owned(shard, &mut cache.halves[2 * i + waiting], waiting);
            }
            let before = shard.control.fetch_add(HOT_BIT, Ordering::AcqRel);
            let h = (before >> 63) as usize;
            core.read_owned(shard, &mut cache.halves[2 * i + h], h);
        }
        let i = core.owned.len();
        if let Some(shard) = core.shared.get() {
            nan = nan.wrapping_add(shard.nan.load(Ordering::Relaxed));
            let started = shard.control.load(Ordering::Acquire) & COUNT_MASK;
            let seen = cache.halves[2 * i].count.wrapping_add(cache.halves[2 * i + 1].count);
            if started != seen {
                let before = shard.control.fetch_add(HOT_BIT, Ordering::AcqRel);
                let h = (before >> 63) as usize;
                let expected = (before & COUNT_MASK).wrapping_sub(cache.halves[2 * i + 1 - h].count);
                core.read_shared(shard, &mut cache.halves[2 * i + h], h, expected);
            }
        }
        let (native, counts, exemplars) = core.merge(&cache.halves, scratch);
        (native, counts, nan, exemplars)
    }
}

impl NativeCore {
    /// Where `v` (not NaN) is counted in `shard`; may allocate its block.
    #[inline]
    fn target<'a>(&self, shard: &'a Shard, v: f64) -> Target<'a> {
        let a = v.abs();
        if a <= self.opts.zero_threshold {
            return Target { cells: &shard.zero, index: 0, stride: 1 };
        }
        let side = if v > 0.0 { &shard.positive } else { &shard.negative };
        let key = self.storage_key(a);
        let s = self.storage_schema as u32;
        let octave = key >> s;
        match side.block(octave, self.per_block) {
            Some(cells) => {
                Target { cells, index: (key & (self.per_block as i32 - 1)) as usize, stride: self.per_block }
            }
            None => self.coarse_target(side, a),
        }
    }

    #[cold]
    #[inline(never)]
    fn coarse_target<'a>(&self, side: &'a Side, a: f64) -> Target<'a> {
        Target { cells: side.coarse(), index: (bucket_key(a, MIN_SCHEMA) + COARSE_BIAS) as usize, stride: COARSE_KEYS }
    }

    /// The key of `a > zero_threshold` at the storage schema.
    #[inline]
    fn storage_key(&self, a: f64) -> i32 {
        let bits = a.to_bits();
        let raw = ((bits >> 52) & 0x7ff) as i32;
        // Schema 0, subnormals and infinities: the general path.
        if self.storage_schema == 0 || raw == 0 || raw == 0x7ff {
            return bucket_key(a, self.storage_schema);
        }
        // `a = frac * 2^exp` with `frac` in [0.5, 1): the same mantissa.
        let frac = f64::from_bits((bits & !(0x7ff << 52)) | (1022u64 << 52));
        let top = ((bits >> (52 - MANTISSA_BITS)) & ((1 << MANTISSA_BITS) - 1)) as usize;
        let j = self.first_bounds[top] as usize;
        // Past the last bound (`j == 2^schema`) the value is in the next
        // power of two's first bucket, which `j` already names.
        let j = j + usize::from(self.fractions.get(j).is_some_and(|&b| b < frac));
        j as i32 + (raw - 1023) * self.per_block as i32
    }

    #[inline]
    fn classic_index(&self, v: f64) -> Option<usize> {
        self.opts.classic.as_ref().map(|b| bucket_index(b.bounds(), v))
    }

    #[inline]
    fn observe_owned(&self, shard: &Shard, v: f64) {
        if v.is_nan() {
            let c = &shard.nan;
            return c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
        // Found (or allocated) before the seqlock write begins, so a reader
        // never waits on an allocation.
        let t = self.target(shard, v);
        let classic = self.classic_index(v);
        // The only writer of this shard: plain loads and stores (see the
        // classic histogram's protocol).
        let h = (shard.control.load(Ordering::Relaxed) >> 63) as usize;
        let seq = &shard.seq[h];
        let s = seq.load(Ordering::Relaxed);
        seq.store(s.wrapping_add(1), Ordering::Relaxed);
        // Release fence: the odd sequence is visible before the data stores.
        fence(Ordering::Release);
        let sum = &shard.sum[h];
        sum.store((f64::from_bits(sum.load(Ordering::Relaxed)) + v).to_bits(), Ordering::Relaxed);
        let cell = &t.cells[h * t.stride + t.index];
        cell.store(cell.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        if let Some(b) = classic {
            let cell = &shard.classic[h * self.classic_buckets + b];
            cell.store(cell.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
        // Release: publishes the data stores with the even sequence.
        seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// The shared shard: several writers, so read-modify-writes.
    fn observe_shared(&self, shard: &Shard, v: f64) {
        if v.is_nan() {
            shard.nan.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let t = self.target(shard, v);
        let classic = self.classic_index(v);
        let started = shard.control.fetch_add(1, Ordering::Relaxed);
        let h = (started >> 63) as usize;
        add_f64(&shard.sum[h], v);
        if let Some(b) = classic {
            shard.classic[h * self.classic_buckets + b].fetch_add(1, Ordering::Relaxed);
        }
        // Release: the completion mark; publishes the sum and classic count.
        t.cells[h * t.stride + t.index].fetch_add(1, Ordering::Release);
    }

    /// Every count of half `h` of `shard` into `out` (cleared first).
    /// `order` is the load ordering of the counts.
    fn read_half(&self, shard: &Shard, h: usize, out: &mut HalfRead, order: Ordering) {
        out.fine.clear();
        out.coarse.clear();
        out.classic.clear();
        let mut total = shard.zero[h].load(order);
        out.zero = total;
        let per = self.per_block;
        for (sign, side) in [(1i32, &shard.positive), (-1, &shard.negative)] {
            for (slot, key) in side.keys.iter().enumerate() {
                let k = key.load(Ordering::Acquire);
                if k == 0 {
                    continue;
                }
                let Some(block) = side.blocks[slot].get() else { continue };
                let octave = k as i32 - OCTAVE_BIAS;
                for (off, cell) in block[h * per..(h + 1) * per].iter().enumerate() {
                    let c = cell.load(order);
                    if c != 0 {
                        total = total.wrapping_add(c);
                        out.fine.push((sign, octave * per as i32 + off as i32, c));
                    }
                }
            }
            if let Some(coarse) = side.coarse.get() {
                for (i, cell) in coarse[h * COARSE_KEYS..(h + 1) * COARSE_KEYS].iter().enumerate() {
                    let c = cell.load(order);
                    if c != 0 {
                        total = total.wrapping_add(c);
                        out.coarse.push((sign, i as i32 - COARSE_BIAS, c));
                    }
                }
            }
        }
        for cell in &shard.classic[h * self.classic_buckets..(h + 1) * self.classic_buckets] {
            out.classic.push(cell.load(Ordering::Relaxed));
        }
        out.count = total;
    }

    /// Seqlock read of half `h` of an owned shard.
    fn read_owned(&self, shard: &Shard, out: &mut HalfRead, h: usize) {
        let seq = &shard.seq[h];
        let mut spins = 0u32;
        loop {
            // Acquire: pairs with the writer's Release of an even sequence.
            let s0 = seq.load(Ordering::Acquire);
            if s0 & 1 == 0 {
                self.read_half(shard, h, out, Ordering::Relaxed);
                let sum = shard.sum[h].load(Ordering::Relaxed);
                // Acquire fence: the data loads above happen before the re-check.
                fence(Ordering::Acquire);
                if seq.load(Ordering::Relaxed) == s0 {
                    out.sum = f64::from_bits(sum);
                    out.seq = s0;
                    return;
                }
            }
            backoff(&mut spins);
        }
    }

    /// Reads the now-cold half `h` of the shared shard until its counts
    /// reach `expected` (every writer counted as started has finished).
    fn read_shared(&self, shard: &Shard, out: &mut HalfRead, h: usize, expected: u64) {
        let mut spins = 0u32;
        loop {
            // Acquire loads: pair with each writer's Release completion mark.
            self.read_half(shard, h, out, Ordering::Acquire);
            // Counts only grow, so equal totals mean every cell is final.
            if out.count == expected {
                out.sum = f64::from_bits(shard.sum[h].load(Ordering::Relaxed));
                return;
            }
            backoff(&mut spins);
        }
    }

    /// Adds up every remembered half into `scratch` and reduces the
    /// resolution until the bucket limit holds.
    fn merge<'a>(
        &self,
        halves: &[HalfRead],
        scratch: &'a mut Scratch,
    ) -> (NativeBucketsRef<'a>, &'a [u64], &'a [Option<Exemplar>]) {
        let Scratch { native_positive: pos, native_negative: neg, counts, exemplars, .. } = scratch;
        pos.clear();
        neg.clear();
        let mut coarse = false;
        let (mut zero, mut count, mut sum) = (0u64, 0u64, 0.0f64);
        for half in halves {
            zero += half.zero;
            count += half.count;
            sum += half.sum;
            coarse |= !half.coarse.is_empty();
            for &(sign, k, c) in &half.fine {
                if sign > 0 { pos.push((k, c)) } else { neg.push((k, c)) }
            }
        }
        let mut schema = self.storage_schema;
        if coarse {
            // Some shard could only count at schema -4: everything goes there.
            let by = (schema - MIN_SCHEMA) as u32;
            for b in [&mut *pos, &mut *neg] {
                for e in b.iter_mut() {
                    e.0 = coarser_key(e.0, by);
                }
            }
            for half in halves {
                for &(sign, k, c) in &half.coarse {
                    if sign > 0 { pos.push((k, c)) } else { neg.push((k, c)) }
                }
            }
            schema = MIN_SCHEMA;
        }
        for b in [&mut *pos, &mut *neg] {
            b.sort_unstable_by_key(|e| e.0);
            dedup_sum(b);
        }
        let target = self.opts.schema.min(schema);
        if target < schema {
            merge_down(pos, (schema - target) as u32);
            merge_down(neg, (schema - target) as u32);
            schema = target;
        }
        while pos.len() + neg.len() > self.opts.max_buckets && schema > MIN_SCHEMA {
            merge_down(pos, 1);
            merge_down(neg, 1);
            schema -= 1;
        }
        // Classic counts, summed over every half.
        counts.clear();
        counts.resize(self.classic_buckets, 0);
        for half in halves {
            for (t, &c) in counts.iter_mut().zip(&half.classic) {
                *t += c;
            }
        }
        let native = NativeBucketsRef {
            schema,
            zero_threshold: self.opts.zero_threshold,
            zero_count: zero,
            count,
            sum,
            positive: pos,
            negative: neg,
        };
        (native, counts, exemplars)
    }
}

/// Sums adjacent entries with equal keys (input sorted by key).
fn dedup_sum(b: &mut Vec<(i32, u64)>) {
    let mut w = 0usize;
    for r in 0..b.len() {
        if w > 0 && b[w - 1].0 == b[r].0 {
            b[w - 1].1 += b[r].1;
        } else {
            b[w] = b[r];
            w += 1;
        }
    }
    b.truncate(w);
}

/// What the reader last read of one half of one shard.
#[derive(Debug, Default)]
struct HalfRead {
    /// `(sign, key at the storage schema, count)`, non-zero counts only.
    fine: Vec<(i32, i32, u64)>,
    /// `(sign, key at schema -4, count)`.
    coarse: Vec<(i32, i32, u64)>,
    classic: Vec<u64>,
    zero: u64,
    /// Zero bucket plus every bucket.
    count: u64,
    sum: f64,
    /// Owned shards: the sequence when read.
    seq: u64,
}

#[derive(Debug)]
struct ReaderCache {
    /// `[shard * 2 + half]`, owned shards then the shared one.
    halves: Vec<HalfRead>,
}

/// A consistent read of a [`NativeHistogram`].
#[derive(Clone, Debug, PartialEq)]
pub struct NativeSnapshot {
    /// The native buckets: schema, zero bucket, count, sum, and every
    /// populated bucket.
    pub native: NativeBuckets,
    /// Classic bounds kept alongside (empty if none).
    pub classic_bounds: Vec<f64>,
    /// Classic per-bucket counts, `+Inf` last (empty if none).
    pub classic_counts: Vec<u64>,
    /// NaN observations not recorded.
    pub nan_dropped: u64,
}

impl NativeSnapshot {
    /// The `q`-quantile as Prometheus estimates it ([`NativeBuckets::quantile`]).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.native.quantile(q)
    }
}

impl Metric for NativeHistogram {
    const TYPE: MetricType = MetricType::Histogram;
    fn sample<'a>(&'a self, scratch: &'a mut Scratch) -> Value<'a> {
        // Exemplars first: each is at least as old as the counts read after it.
        let mut exemplars = std::mem::take(&mut scratch.exemplars);
        self.exemplars_into(&mut exemplars);
        scratch.exemplars = exemplars;
        let (native, counts, _nan, exemplars) = self.read(scratch);
        Value::NativeHistogram {
            native,
            bounds: self.core.opts.classic.as_ref().map_or(&[], |b| b.bounds()),
            counts,
            exemplars,
        }
    }
    fn same_layout(&self, other: &Self) -> bool {
        self.core.opts == other.core.opts
    }
    fn layout(&self) -> String {
        format!("{:?}", self.core.opts)
    }
    fn handles(&self) -> usize {
        self.handles()
    }
    fn created_unix_nanos(&self) -> Option<u64> {
        Some(self.core.created)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recording_key_is_the_reference_key_at_every_bound() {
        // The table-driven key writers use against the binary search over
        // the exact bounds, at each bound, the doubles next to it, and a
        // spread of random doubles, in several powers of two.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for schema in 1..=MAX_SCHEMA {
            let h = NativeHistogram::new(NativeOpts::new().schema(schema).unwrap());
            let core = &*h.core;
            let check = |v: f64| {
                if v.is_finite() && v > 0.0 {
                    assert_eq!(
                        core.storage_key(v),
                        bucket_key(v, schema),
                        "schema {schema}, {v:e} ({:#x})",
                        v.to_bits()
                    );
                }
            };
            for &b in fraction_bounds(schema) {
                for scale in [1.0, 2.0, 1024.0, 1.0 / 4096.0, 2f64.powi(300), 2f64.powi(-1000)] {
                    let v = b * scale;
                    check(v);
                    check(f64::from_bits(v.to_bits() + 1));
                    check(f64::from_bits(v.to_bits() - 1));
                }
            }
            for _ in 0..20_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                check(f64::from_bits(x >> 1));
            }
            check(f64::MAX);
            check(f64::MIN_POSITIVE);
            check(f64::MIN_POSITIVE / 3.0);
        }
    }

    /// Values of every kind: zero bucket, tiny, huge, negative, powers of
    /// two (bucket edges), infinities.
    fn awkward_values(n: usize, seed: u64) -> Vec<f64> {
        let mut x = seed;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..n)
            .map(|i| match i % 9 {
                0 => 0.0,
                1 => -((next() % 1000) as f64) / 7.0,
                2 => f64::from_bits(0x3f50_0000_0000_0000 + (next() % (1 << 40))),
                3 => 2f64.powi((next() % 40) as i32 - 20),
                4 => 1e-3 * (1.0 + (next() % 10_000) as f64),
                5 => (next() % 100) as f64 * 0.25,
                6 => 1.0,
                7 => 30e-6 * (1.0 + (next() % 100) as f64 / 100.0),
                _ => 0.5 + (next() % 1000) as f64 / 1000.0,
            })
            .collect()
    }

    /// The snapshot's buckets are, at the schema it reports, exactly the
    /// keys of the observations; and that schema is the finest at or below
    /// the configured one within the bucket limit.
    fn check_against_reference(opts: &NativeOpts, values: &[f64], snap: &NativeSnapshot) {
        let mut pos = std::collections::BTreeMap::<i32, u64>::new();
        let mut neg = std::collections::BTreeMap::<i32, u64>::new();
        let (mut zero, mut sum) = (0u64, 0.0);
        let keys_at = |schema: i8| {
            let mut p = std::collections::BTreeSet::new();
            let mut n = std::collections::BTreeSet::new();
            for &v in values {
                if v.abs() > opts.zero_threshold {
                    if v > 0.0 {
                        p.insert(bucket_key(v, schema))
                    } else {
                        n.insert(bucket_key(v, schema))
                    };
                }
            }
            p.len() + n.len()
        };
        for &v in values {
            sum += v;
            if v.abs() <= opts.zero_threshold {
                zero += 1;
            } else if v > 0.0 {
                *pos.entry(bucket_key(v, snap.native.schema)).or_default() += 1;
            } else {
                *neg.entry(bucket_key(v, snap.native.schema)).or_default() += 1;
            }
        }
        assert_eq!(snap.native.count, values.len() as u64);
        assert_eq!(snap.native.zero_count, zero);
        assert_eq!(snap.native.positive, pos.into_iter().collect::<Vec<_>>());
        assert_eq!(snap.native.negative, neg.into_iter().collect::<Vec<_>>());
        assert!((snap.native.sum - sum).abs() <= 1e-9 * sum.abs().max(1.0), "{} vs {sum}", snap.native.sum);
        assert!(snap.native.schema <= opts.schema);
        assert!(keys_at(snap.native.schema) <= opts.max_buckets || snap.native.schema == MIN_SCHEMA);
        // A shard that saw more powers of two than its table holds counts at
        // schema -4: allowed only when the values span that many.
        let octaves = |positive: bool| {
            values
                .iter()
                .filter(|v| v.abs() > opts.zero_threshold && (**v > 0.0) == positive)
                .map(|&v| bucket_key(v, 0))
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        };
        let fell_back = octaves(true).max(octaves(false)) > OCTAVE_SLOTS;
        if snap.native.schema < opts.schema && !(fell_back && snap.native.schema == MIN_SCHEMA) {
            assert!(keys_at(snap.native.schema + 1) > opts.max_buckets, "reduced further than the limit needs");
        }
    }

    #[test]
    fn snapshots_match_a_reference_at_every_schema_and_limit() {
        for schema in MIN_SCHEMA..=MAX_SCHEMA {
            for max in [1usize, 5, 40, 160, 10_000] {
                let opts = NativeOpts::new().schema(schema).unwrap().max_buckets(max).unwrap();
                let h = NativeHistogram::new(opts.clone());
                let values = awkward_values(2_000, 0x9e37 + (schema as i64 + 10) as u64 * 31 + max as u64);
                for &v in &values {
                    h.observe(v);
                }
                check_against_reference(&opts, &values, &h.snapshot());
            }
        }
    }

    #[test]
    fn zero_threshold_nan_and_infinities() {
        let h = NativeHistogram::new(NativeOpts::new().schema(0).unwrap().zero_threshold(0.5).unwrap());
        for v in [0.5, -0.5, 0.25, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1.0] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!((s.native.count, s.native.zero_count, s.nan_dropped), (6, 3, 1));
        assert_eq!(s.native.positive, vec![(0, 1), (1025, 1)]);
        assert_eq!(s.native.negative, vec![(1025, 1)]);
        assert!(s.native.sum.is_nan(), "+Inf plus -Inf");
        assert!(NativeOpts::new().zero_threshold(f64::NAN).is_err());
        assert!(NativeOpts::new().zero_threshold(-1.0).is_err());
        assert!(NativeOpts::new().max_buckets(0).is_err());
        assert!(NativeOpts::new().schema(-5).is_err());
        assert_eq!(NativeOpts::new().bucket_factor(1.1).unwrap().get_schema(), 3);
        assert_eq!(NativeOpts::new().bucket_factor(2.0).unwrap().get_schema(), 0);
        assert_eq!(NativeOpts::new().bucket_factor(1e9).unwrap().get_schema(), -4);
    }

    #[test]
    fn more_powers_of_two_than_the_table_holds_fall_back_to_schema_minus_4() {
        let opts = NativeOpts::new().schema(8).unwrap();
        let h = NativeHistogram::new(opts.clone());
        // One value in each of 3 * OCTAVE_SLOTS powers of two.
        let values: Vec<f64> = (0..3 * OCTAVE_SLOTS as i32).map(|e| 1.5 * 2f64.powi(e - 40)).collect();
        for &v in &values {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.native.schema, MIN_SCHEMA);
        check_against_reference(&opts, &values, &s);
    }

    #[test]
    fn classic_buckets_alongside_count_the_same_observations() {
        let h = NativeHistogram::new(NativeOpts::new().classic(Buckets::new([0.001, 0.1]).unwrap()));
        for v in [0.0005, 0.05, 0.05, 3.0] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.classic_bounds, vec![0.001, 0.1]);
        assert_eq!(s.classic_counts, vec![1, 2, 1]);
        assert_eq!(s.native.count, 4);
    }

    #[test]
    fn the_schema_never_goes_back_up() {
        let opts = NativeOpts::new().schema(4).unwrap().max_buckets(8).unwrap();
        let h = NativeHistogram::new(opts);
        let mut last = MAX_SCHEMA;
        for i in 0..200 {
            h.observe(1.0 + i as f64 * 0.37);
            let s = h.snapshot().native.schema;
            assert!(s <= last, "schema went from {last} to {s}");
            last = s;
        }
        assert!(last < 4);
    }

    #[test]
    fn snapshots_under_concurrent_writers_are_consistent_and_lose_nothing() {
        // More threads than owned shards, so the shared shard is written too.
        let threads = crate::sync::exclusive_shard_count() + 4;
        let per_thread = 3_000usize;
        let opts = NativeOpts::new().max_buckets(20).unwrap().classic(Buckets::new([0.01, 1.0]).unwrap());
        let h = NativeHistogram::new(opts.clone());
        let stop = crate::sync::AtomicBool::new(false);
        let all: Vec<Vec<f64>> = (0..threads).map(|t| awkward_values(per_thread, 7 + t as u64)).collect();
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut snapshots = 0u64;
                let mut last_count = 0;
                while !stop.load(Ordering::Relaxed) || snapshots == 0 {
                    let snap = h.snapshot();
                    let buckets: u64 = snap.native.positive.iter().chain(&snap.native.negative).map(|b| b.1).sum();
                    assert_eq!(
                        snap.native.count,
                        snap.native.zero_count + buckets,
                        "count is zero bucket plus buckets"
                    );
                    assert_eq!(snap.classic_counts.iter().sum::<u64>(), snap.native.count, "classic = native");
                    assert!(snap.native.count >= last_count);
                    last_count = snap.native.count;
                    snapshots += 1;
                }
                snapshots
            });
            let writers: Vec<_> = all
                .iter()
                .map(|values| {
                    let h = h.clone();
                    s.spawn(move || {
                        for &v in values {
                            h.observe(v);
                        }
                    })
                })
                .collect();
            for w in writers {
                w.join().unwrap();
            }
            stop.store(true, Ordering::Relaxed);
            assert!(reader.join().unwrap() > 0);
        });
        let values: Vec<f64> = all.concat();
        check_against_reference(&opts, &values, &h.snapshot());
    }
}
