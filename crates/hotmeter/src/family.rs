//! Labeled metric families: [`Family`] (typed labels, an array index) and
//! [`StringFamily`] (runtime string values, a read-optimised map).
//!
//! Owns: series storage per label set, the cardinality cap with its
//! overflow series, removal, and label-value ordering for scrapes. Must not:
//! take a lock or allocate on the hit path; only the first insertion of a
//! label set (`#[cold]`) locks and allocates.

use std::any::Any;
use std::hash::BuildHasher;
use std::marker::PhantomData;

use crate::error::LabelCountError;
use crate::labels::LabelSet;
use crate::snapshot::{Desc, LabelValues, Labels, Metric, RenderCache, Scratch, Visitor};

use crate::sync::{Arc, AtomicBool, AtomicU64, AtomicUsize, Mutex, OnceLock, Ordering, lock};

/// Label value of the series that collects label sets beyond a
/// [`StringFamily`]'s cardinality limit (every label gets this value).
pub const OVERFLOW_LABEL_VALUE: &str = "__overflow__";

/// The default cardinality limit of a [`StringFamily`].
pub const DEFAULT_CARDINALITY_LIMIT: usize = 2000;

/// Something the registry can walk during a scrape. Object safe. `pub` only
/// so the sealed `Registrable` can name it; the module is private.
#[allow(unreachable_pub)]
pub trait Collect: Send + Sync + 'static {
    fn collect(&self, desc: &Desc, scratch: &mut Scratch, visitor: &mut dyn Visitor);
    fn as_any(&self) -> &dyn Any;
    fn type_name(&self) -> &'static str;
    /// Overflow count, for string families.
    fn overflowed(&self) -> Option<u64> {
        None
    }
}

/// A single metric is a family with one unlabeled series.
impl<M: Metric> Collect for M {
    fn collect(&self, desc: &Desc, scratch: &mut Scratch, visitor: &mut dyn Visitor) {
        let value = self.sample(scratch);
        visitor.sample(&Labels { desc, values: LabelValues::None, rendered: None }, &value);
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<Self>()
    }
}

/// A family of series keyed by a typed [`LabelSet`]: one series per
/// possible label value, created up front, found by array index.
///
/// Every series is exported, zeros included, so a rate over any label value
/// is always defined.
///
/// # Examples
/// ```
/// hotmeter::label_enum! {
///     /// Outcome.
///     pub enum Status: "status" { Success = "success", Error = "error" }
/// }
/// let writes: hotmeter::Family<Status, hotmeter::Counter> = hotmeter::Family::new(hotmeter::Counter::new);
/// writes.get(Status::Success).inc();
/// writes.get(Status::Error).inc_by(2);
/// assert_eq!(writes.get(Status::Error).get(), 2);
/// ```
#[must_use]
pub struct Family<L: LabelSet, M: Metric> {
    series: Arc<[M]>,
    /// Series indices sorted by label values, for deterministic scrapes.
    order: Arc<[u32]>,
    /// Per series, its label set rendered for scrapes.
    rendered: Arc<[RenderCache]>,
    _labels: PhantomData<fn(L)>,
}

impl<L: LabelSet, M: Metric> Clone for Family<L, M> {
    fn clone(&self) -> Self {
        Self {
            series: self.series.clone(),
            order: self.order.clone(),
            rendered: self.rendered.clone(),
            _labels: PhantomData,
        }
    }
}

impl<L: LabelSet, M: Metric> std::fmt::Debug for Family<L, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Family").field("cardinality", &L::CARDINALITY).finish_non_exhaustive()
    }
}

impl<L: LabelSet, M: Metric> Family<L, M> {
    /// Creates every series with `make`.
    pub fn new(make: impl FnMut() -> M) -> Self {
        let mut make = make;
        let series: Arc<[M]> = (0..L::CARDINALITY).map(|_| make()).collect();
        let mut order: Vec<u32> = (0..L::CARDINALITY as u32).collect();
        order.sort_by(|&a, &b| {
            (0..L::LABELS)
                .map(|l| L::label_value(a as usize, l).cmp(L::label_value(b as usize, l)))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let rendered = (0..L::CARDINALITY).map(|_| RenderCache::default()).collect();
        Self { series, order: order.into(), rendered, _labels: PhantomData }
    }

    /// The series for `labels`: an array index.
    #[inline]
    pub fn get(&self, labels: L) -> &M {
        &self.series[labels.index()]
    }

    pub(crate) fn get_by_index(&self, i: usize) -> &M {
        &self.series[i]
    }

    /// The label names, in declaration order.
    pub fn label_names() -> Vec<&'static str> {
        (0..L::LABELS).map(L::label_name).collect()
    }
}

impl<L: LabelSet, M: Metric> Collect for Family<L, M> {
    fn collect(&self, desc: &Desc, scratch: &mut Scratch, visitor: &mut dyn Visitor) {
        for &i in self.order.iter() {
            let values = LabelValues::Typed { index: i as usize, value: L::label_value };
            let rendered = self.rendered[i as usize].get(desc, values);
            let labels = Labels { desc, values, rendered };
            let value = self.series[i as usize].sample(scratch);
            visitor.sample(&labels, &value);
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<Self>()
    }
}

/// A family of series keyed by runtime string label values.
///
/// The hit path hashes the values (foldhash), probes an open-addressing
/// index of atomic words, and compares the values: no lock, no allocation,
/// no reference-count traffic. The first use of a label set takes the
/// `#[cold]` slow path: a mutex that only inserts contend on, the
/// cardinality check, and the insert. Beyond the limit (default
/// [`DEFAULT_CARDINALITY_LIMIT`] live series) new label sets share one
/// overflow series whose labels are all [`OVERFLOW_LABEL_VALUE`], and each
/// routed lookup is counted ([`overflowed`](Self::overflowed); a registry
/// also exports it as `hotmeter_label_overflow_total{metric="..."}`):
/// memory stays bounded and nothing is lost silently.
///
/// Label values are taken as given: quotes, backslashes, newlines and any
/// UTF-8 are fine (encoders escape them). Keep the handle from
/// [`get`](Self::get) to skip the lookup on later calls.
///
/// [`remove`](Self::remove) and [`clear`](Self::clear) stop exporting
/// series (stale series) and free their place under the limit. Their memory
/// stays with the family (readers may be looking at it, and nothing here
/// waits for them), so a family remembers at most twice its limit of
/// distinct label sets over its lifetime; label sets beyond that go to the
/// overflow series too. A removed label set that comes back resumes its
/// series, value included.
///
/// # Examples
/// ```
/// let by_space = hotmeter::StringFamily::new(&["memory_space"], hotmeter::Counter::new);
/// by_space.with(&["tenant-a"], |c| c.inc())?;
/// let b = by_space.get(&["tenant-b"])?; // keep the handle on hot loops
/// b.inc_by(2);
/// assert_eq!(by_space.get(&["tenant-b"])?.get(), 2);
/// assert!(by_space.with(&["x", "y"], |c| c.inc()).is_err()); // wrong count
/// # Ok::<(), hotmeter::LabelCountError>(())
/// ```
#[must_use]
pub struct StringFamily<M: Metric> {
    inner: Arc<Inner<M>>,
}

impl<M: Metric> Clone for StringFamily<M> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

impl<M: Metric> std::fmt::Debug for StringFamily<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StringFamily")
            .field("labels", &self.inner.label_names)
            .field("len", &self.len())
            .field("limit", &self.inner.limit)
            .finish_non_exhaustive()
    }
}

/// Slots in the first storage segment; segment `k` holds `SEGMENT0 << k`.
const SEGMENT0: usize = 16;
/// Buckets in the first index generation; generation `k` has `INDEX0 << k`.
const INDEX0: usize = 32;
/// Enough segments and generations for any limit up to 2^26.
const LEVELS: usize = 28;

struct Inner<M: 'static> {
    label_names: Box<[Box<str>]>,
    make: Box<dyn Fn() -> M + Send + Sync>,
    limit: usize,
    overflow: M,
    overflowed: AtomicU64,
    /// Series storage, never moved or freed while the family lives.
    segments: [OnceLock<Segment<M>>; LEVELS],
    /// Index generations; `current` names the live one. Older ones stay
    /// readable (a reader may still be probing one) and cost at most as much
    /// as the live one, since each doubles.
    generations: [OnceLock<Box<[AtomicU64]>>; LEVELS],
    current: AtomicUsize,
    /// Slot count published to scrapes.
    published: AtomicUsize,
    /// Series not removed.
    live: AtomicUsize,
    /// Serialises inserts, removals and growth; never taken on the hit path.
    writers: Mutex<Writers>,
}

/// One storage segment: slots filled once, in order.
type Segment<M> = Box<[OnceLock<Series<M>>]>;

struct Writers {
    /// Slots used (distinct label sets ever inserted).
    slots: usize,
    /// Slot numbers sorted by label values, for deterministic scrapes.
    sorted: Vec<u32>,
}

struct Series<M> {
    hash: u64,
    /// The label values, concatenated: one allocation to compare against.
    key: Box<str>,
    /// Where each value ends in `key`.
    ends: Box<[u32]>,
    metric: M,
    removed: AtomicBool,
    /// Its label set rendered for scrapes.
    rendered: RenderCache,
}

impl<M> Series<M> {
    fn new(hash: u64, values: &[&str], metric: M) -> Self {
        let key: String = values.concat();
        let ends = values
            .iter()
            .scan(0usize, |end, v| {
                *end += v.len();
                Some(*end as u32)
            })
            .collect();
        Self { hash, key: key.into(), ends, metric, removed: AtomicBool::new(false), rendered: RenderCache::default() }
    }

    /// Whether this series' values are exactly `values`.
    #[inline]
    fn matches(&self, values: &[&str]) -> bool {
        let key = self.key.as_bytes();
        if let [only] = values {
            // One label: equal lengths and bytes say it all.
            return fast_eq(key, only.as_bytes());
        }
        if self.ends.len() != values.len() {
            return false;
        }
        let mut start = 0usize;
        for (v, &end) in values.iter().zip(self.ends.iter()) {
            let end = end as usize;
            if end - start != v.len() || !key.get(start..end).is_some_and(|k| fast_eq(k, v.as_bytes())) {
                return false;
            }
            start = end;
        }
        start == key.len()
    }

    /// Value `i`, or `""` past the end.
    fn value(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends.get(i - 1).map_or(0, |&e| e as usize) };
        let end = self.ends.get(i).map_or(start, |&e| e as usize);
        self.key.get(start..end).unwrap_or("")
    }

    fn cmp_values(&self, query: &[&str]) -> std::cmp::Ordering {
        (0..self.ends.len()).map(|i| self.value(i)).cmp(query.iter().copied())
    }
}

/// Byte equality without a call to `memcmp` for short keys (most label
/// values): two overlapping word compares cover 8 to 16 bytes.
#[inline]
fn fast_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word =
        |s: &[u8], at: usize| s.get(at..at + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()).map(u64::from_ne_bytes);
    match n {
        0..8 => a == b,
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

/// Where slot `i` lives: `(segment, offset)`.
#[inline]
fn slot_position(i: usize) -> (usize, usize) {
    let k = (usize::BITS - 1 - (i / SEGMENT0 + 1).leading_zeros()) as usize;
    (k, i - SEGMENT0 * ((1 << k) - 1))
}

/// An index word: the high 32 bits of the hash, and the slot plus one (0
/// marks an empty bucket).
#[inline]
fn index_word(hash: u64, slot: usize) -> u64 {
    (hash & !0xffff_ffff) | (slot as u64 + 1)
}

#[inline]
fn hash_values(values: &[&str]) -> u64 {
    // Fixed seed: hashes are only compared within this process.
    foldhash::fast::FixedState::with_seed(0x6d65_7465_7268_6f74).hash_one(values)
}

impl<M: 'static> Inner<M> {
    #[inline(always)]
    fn slot(&self, i: usize) -> Option<&Series<M>> {
        let (k, off) = slot_position(i);
        self.segments.get(k)?.get()?.get(off)?.get()
    }

    /// Finds the series for `values` in index generation `g`.
    #[inline(always)]
    fn find(&self, g: usize, hash: u64, values: &[&str]) -> Option<&Series<M>> {
        let index = self.generations.get(g)?.get()?;
        let mask = index.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            // Acquire: pairs with the inserter's Release, so the slot it
            // names is initialised.
            let word = index[i].load(Ordering::Acquire);
            if word == 0 {
                return None;
            }
            if word >> 32 == hash >> 32 {
                let series = self.slot((word & 0xffff_ffff) as usize - 1)?;
                if series.hash == hash && series.matches(values) {
                    return Some(series);
                }
            }
            i = (i + 1) & mask;
        }
    }
}

impl<M: Metric> StringFamily<M> {
    /// A family with these label names, the default cardinality limit, and
    /// `make` to create each series. Label names are not validated here; the
    /// registry validates them when the family is registered.
    pub fn new(label_names: &[&str], make: impl Fn() -> M + Send + Sync + 'static) -> Self {
        Self::with_limit(label_names, DEFAULT_CARDINALITY_LIMIT, make)
    }

    /// As [`new`](Self::new) with a cardinality limit (clamped to `1..=2^24`).
    pub fn with_limit(label_names: &[&str], limit: usize, make: impl Fn() -> M + Send + Sync + 'static) -> Self {
        let overflow = make();
        let generations: [OnceLock<Box<[AtomicU64]>>; LEVELS] = std::array::from_fn(|_| OnceLock::new());
        let _ = generations[0].set((0..INDEX0).map(|_| AtomicU64::new(0)).collect());
        Self {
            inner: Arc::new(Inner {
                label_names: label_names.iter().map(|&n| Box::from(n)).collect(),
                make: Box::new(make),
                limit: limit.clamp(1, 1 << 24),
                overflow,
                overflowed: AtomicU64::new(0),
                segments: std::array::from_fn(|_| OnceLock::new()),
                generations,
                current: AtomicUsize::new(0),
                published: AtomicUsize::new(0),
                live: AtomicUsize::new(0),
                writers: Mutex::new(Writers { slots: 0, sorted: Vec::new() }),
            }),
        }
    }

    /// Runs `f` on the series for `values` (created on first use).
    #[inline]
    pub fn with<R>(&self, values: &[&str], f: impl FnOnce(&M) -> R) -> Result<R, LabelCountError> {
        self.check_len(values)?;
        let hash = hash_values(values);
        let inner = &*self.inner;
        // Acquire: the generation it names is initialised.
        if let Some(series) = inner.find(inner.current.load(Ordering::Acquire), hash, values)
            && !series.removed.load(Ordering::Relaxed)
        {
            return Ok(f(&series.metric));
        }
        Ok(match self.miss(hash, values) {
            Some(metric) => f(metric),
            None => self.route_to_overflow(f),
        })
    }

    /// A handle to the series for `values` (created on first use), to keep
    /// and record on without further lookups.
    pub fn get(&self, values: &[&str]) -> Result<M, LabelCountError> {
        self.with(values, M::clone)
    }

    #[inline]
    fn check_len(&self, values: &[&str]) -> Result<(), LabelCountError> {
        let expected = self.inner.label_names.len();
        if values.len() == expected { Ok(()) } else { Err(LabelCountError { expected, got: values.len() }) }
    }

    /// Finds or inserts the series for `values` under the writers' lock;
    /// `None` when it would exceed the limit (the caller routes to the
    /// overflow series or not).
    #[cold]
    #[inline(never)]
    fn miss(&self, hash: u64, values: &[&str]) -> Option<&M> {
        let inner = &*self.inner;
        // Full already: no lock needed to know the answer, but only after
        // looking the label set up again. Our lock-free lookup may have
        // missed just before another thread inserted (or revived) this very
        // label set and so filled the family; that series is ours, not the
        // overflow's. Acquire pairs with the Release increment of `live` by
        // that writer (writers are serialised by the lock, so every earlier
        // insert or revival happens-before the count we read): the index
        // word and the `removed` flag it wrote are visible to this lookup.
        if inner.live.load(Ordering::Acquire) >= inner.limit {
            return inner
                .find(inner.current.load(Ordering::Acquire), hash, values)
                .filter(|series| !series.removed.load(Ordering::Relaxed))
                .map(|series| &series.metric);
        }
        let mut w = lock(&inner.writers);
        // Another thread may have inserted it (or a newer generation may
        // hold it) while we waited.
        if let Some(series) = inner.find(inner.current.load(Ordering::Relaxed), hash, values) {
            if series.removed.load(Ordering::Relaxed) {
                if inner.live.load(Ordering::Relaxed) >= inner.limit {
                    return None;
                }
                series.removed.store(false, Ordering::Relaxed);
                // Release: publishes the revival to the unlocked full check.
                inner.live.fetch_add(1, Ordering::Release);
            }
            return Some(&series.metric);
        }
        if inner.live.load(Ordering::Relaxed) >= inner.limit || w.slots >= 2 * inner.limit {
            return None;
        }
        let slot = w.slots;
        let (k, off) = slot_position(slot);
        let segment = inner.segments[k].get_or_init(|| (0..SEGMENT0 << k).map(|_| OnceLock::new()).collect());
        let series = Series::new(hash, values, (inner.make)());
        let _ = segment[off].set(series);
        w.slots += 1;
        self.publish(&mut w, slot, hash);
        // Release: publishes the new index word to the unlocked full check.
        inner.live.fetch_add(1, Ordering::Release);
        let at = w.sorted.partition_point(|&j| inner.slot(j as usize).is_some_and(|s| s.cmp_values(values).is_lt()));
        w.sorted.insert(at, slot as u32);
        // Release: scrapes that see the count see the slot.
        inner.published.store(w.slots, Ordering::Release);
        drop(w);
        inner.slot(slot).map(|series| &series.metric)
    }

    /// As [`with`](Self::with), but a label set that would go to the
    /// overflow series gives `Ok(None)` instead (and is not counted as
    /// overflow): for callers that keep their own fallback, such as caches.
    #[inline]
    pub fn with_within_limit<R>(&self, values: &[&str], f: impl FnOnce(&M) -> R) -> Result<Option<R>, LabelCountError> {
        self.with_hash_within_limit(hash_values(values), values, f)
    }

    /// As [`with_within_limit`](Self::with_within_limit) with a hash the
    /// caller already has (e.g. a `metrics::Key`'s). Every call on one
    /// family must use the same function of the values, and never mix with
    /// the other methods, whose hash differs; values are still compared
    /// exactly, so collisions cost time, never correctness.
    #[inline]
    pub fn with_hash_within_limit<R>(
        &self,
        hash: u64,
        values: &[&str],
        f: impl FnOnce(&M) -> R,
    ) -> Result<Option<R>, LabelCountError> {
        self.check_len(values)?;
        let inner = &*self.inner;
        if let Some(series) = inner.find(inner.current.load(Ordering::Acquire), hash, values)
            && !series.removed.load(Ordering::Relaxed)
        {
            return Ok(Some(f(&series.metric)));
        }
        Ok(self.miss(hash, values).map(f))
    }

    /// Adds `slot` to the live index, growing it into the next generation
    /// first if it would pass half full.
    fn publish(&self, w: &mut Writers, slot: usize, hash: u64) {
        let inner = &*self.inner;
        let mut g = inner.current.load(Ordering::Relaxed);
        let capacity = INDEX0 << g;
        if w.slots * 2 > capacity && g + 1 < LEVELS {
            g += 1;
            let index: Box<[AtomicU64]> = (0..INDEX0 << g).map(|_| AtomicU64::new(0)).collect();
            for s in 0..slot {
                if let Some(series) = inner.slot(s) {
                    insert_word(&index, series.hash, s);
                }
            }
            let _ = inner.generations[g].set(index);
            // Release: readers that see the new number see the filled index.
            inner.current.store(g, Ordering::Release);
        }
        if let Some(index) = inner.generations[g].get() {
            insert_word(index, hash, slot);
        }
    }

    fn route_to_overflow<R>(&self, f: impl FnOnce(&M) -> R) -> R {
        self.inner.overflowed.fetch_add(1, Ordering::Relaxed);
        f(&self.inner.overflow)
    }

    /// Stops exporting the series for `values`; returns whether it was live.
    pub fn remove(&self, values: &[&str]) -> bool {
        if self.check_len(values).is_err() {
            return false;
        }
        let inner = &*self.inner;
        let _w = lock(&inner.writers);
        match inner.find(inner.current.load(Ordering::Relaxed), hash_values(values), values) {
            Some(series) if !series.removed.load(Ordering::Relaxed) => {
                series.removed.store(true, Ordering::Relaxed);
                inner.live.fetch_sub(1, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    /// Stops exporting every series (the overflow count is kept: it is a
    /// counter).
    pub fn clear(&self) {
        let inner = &*self.inner;
        let w = lock(&inner.writers);
        for s in 0..w.slots {
            if let Some(series) = inner.slot(s) {
                series.removed.store(true, Ordering::Relaxed);
            }
        }
        inner.live.store(0, Ordering::Relaxed);
    }

    /// Number of live series (the overflow series not included).
    pub fn len(&self) -> usize {
        self.inner.live.load(Ordering::Relaxed)
    }

    /// True with no live series.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cardinality limit.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// Lookups routed to the overflow series since creation.
    pub fn overflowed(&self) -> u64 {
        self.inner.overflowed.load(Ordering::Relaxed)
    }

    /// The label names, in declaration order.
    pub fn label_names(&self) -> Vec<&str> {
        self.inner.label_names.iter().map(|n| &**n).collect()
    }

    pub(crate) fn overflow_series(&self) -> &M {
        &self.inner.overflow
    }

    /// Whether two handles are the same family.
    pub fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

/// Inserts an index word with linear probing (the caller holds the writers'
/// lock and keeps the index at most half full).
fn insert_word(index: &[AtomicU64], hash: u64, slot: usize) {
    let mask = index.len() - 1;
    let mut i = hash as usize & mask;
    while index[i].load(Ordering::Relaxed) != 0 {
        i = (i + 1) & mask;
    }
    // Release: publishes the slot's series to readers that see this word.
    index[i].store(index_word(hash, slot), Ordering::Release);
}

impl<M: Metric> Collect for StringFamily<M> {
    fn collect(&self, desc: &Desc, scratch: &mut Scratch, visitor: &mut dyn Visitor) {
        let inner = &*self.inner;
        // Copy the order out so inserts never wait for a scrape's sampling.
        let mut order = std::mem::take(&mut scratch.order);
        order.clear();
        order.extend_from_slice(&lock(&inner.writers).sorted);
        for &i in &order {
            let Some(s) = inner.slot(i as usize) else { continue };
            if s.removed.load(Ordering::Relaxed) {
                continue;
            }
            let values = LabelValues::Joined { key: &s.key, ends: &s.ends };
            let labels = Labels { desc, values, rendered: s.rendered.get(desc, values) };
            let value = s.metric.sample(scratch);
            visitor.sample(&labels, &value);
        }
        scratch.order = order;
        if self.overflowed() > 0 {
            let labels = Labels { desc, values: LabelValues::Same(OVERFLOW_LABEL_VALUE), rendered: None };
            let value = inner.overflow.sample(scratch);
            visitor.sample(&labels, &value);
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<Self>()
    }
    fn overflowed(&self) -> Option<u64> {
        Some(StringFamily::overflowed(self))
    }
}

#[cfg(all(test, not(hotmeter_loom)))]
mod tests {
    use super::*;
    use crate::{Counter, SingleCounter};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn matching_is_exact_equality(
            stored in proptest::collection::vec("[ab\\\\\"\n]{0,20}", 1..4),
            query in proptest::collection::vec("[ab\\\\\"\n]{0,20}", 1..4),
        ) {
            let q: Vec<&str> = query.iter().map(String::as_str).collect();
            let st: Vec<&str> = stored.iter().map(String::as_str).collect();
            let series = Series::new(0, &st, ());
            prop_assert_eq!(series.matches(&q), stored == query);
            prop_assert!(series.matches(&st));
            for (i, v) in st.iter().enumerate() {
                prop_assert_eq!(series.value(i), *v);
            }
        }
    }

    #[test]
    fn same_values_same_series() {
        let f = StringFamily::new(&["a", "b"], SingleCounter::new);
        f.with(&["x", "y"], |c| c.inc()).unwrap();
        f.with(&["x", "y"], |c| c.inc()).unwrap();
        f.with(&["x", "z"], |c| c.inc()).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f.get(&["x", "y"]).unwrap().get(), 2);
        // Values are compared whole, not concatenated.
        f.with(&["xy", ""], |c| c.inc()).unwrap();
        assert_eq!(f.len(), 3);
    }

    #[test]
    fn overflow_is_bounded_and_counted() {
        let f = StringFamily::with_limit(&["id"], 3, Counter::new);
        for i in 0..10 {
            f.with(&[&i.to_string()], |c| c.inc()).unwrap();
        }
        assert_eq!(f.len(), 3);
        assert_eq!(f.overflowed(), 7);
        assert_eq!(f.inner.overflow.get(), 7);
        // Existing series still resolve to themselves.
        f.with(&["1"], |c| c.inc()).unwrap();
        assert_eq!(f.get(&["1"]).unwrap().get(), 2);
        // Removing makes room again.
        assert!(f.remove(&["0"]));
        assert!(!f.remove(&["0"]));
        f.with(&["new"], |c| c.inc()).unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(f.overflowed(), 7);
        f.clear();
        assert!(f.is_empty());
    }

    #[test]
    fn slot_positions_tile_the_segments() {
        let mut expected = (0, 0);
        for i in 0..10_000 {
            assert_eq!(slot_position(i), expected, "slot {i}");
            expected.1 += 1;
            if expected.1 == SEGMENT0 << expected.0 {
                expected = (expected.0 + 1, 0);
            }
        }
    }

    #[test]
    fn index_grows_through_generations() {
        let f = StringFamily::with_limit(&["id"], 5000, SingleCounter::new);
        for i in 0..3000 {
            f.with(&[&format!("id-{i}")], |c| c.inc_by(i)).unwrap();
        }
        assert_eq!(f.len(), 3000);
        assert!(f.inner.current.load(Ordering::Relaxed) >= 7, "3000 entries need 8192 buckets");
        for i in 0..3000 {
            assert_eq!(f.get(&[&format!("id-{i}")]).unwrap().get(), i);
        }
        assert_eq!(f.overflowed(), 0);
    }

    #[test]
    fn removed_series_resume_and_distinct_sets_are_capped() {
        let f = StringFamily::with_limit(&["id"], 2, SingleCounter::new);
        f.with(&["a"], |c| c.inc_by(5)).unwrap();
        assert!(f.remove(&["a"]));
        assert_eq!(f.len(), 0);
        f.with(&["a"], |c| c.inc()).unwrap();
        assert_eq!(f.get(&["a"]).unwrap().get(), 6, "a returning label set resumes its series");
        // Churn through distinct label sets: at most 2 x limit are remembered.
        for i in 0..10 {
            let id = format!("churn-{i}");
            f.with(&[&id], |c| c.inc()).unwrap();
            f.remove(&[&id]);
        }
        assert_eq!(f.inner.writers.lock().unwrap().slots, 4);
        assert_eq!(f.overflowed(), 7);
    }

    #[test]
    fn wrong_label_count_is_an_error() {
        let f = StringFamily::new(&["a"], Counter::new);
        assert_eq!(f.get(&[]).unwrap_err(), LabelCountError { expected: 1, got: 0 });
        assert!(!f.remove(&["a", "b"]));
    }
}
