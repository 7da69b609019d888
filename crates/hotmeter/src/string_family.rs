//! String-label families: [`StringFamily`], series keyed by runtime label
//! values, kept in a [`StringIndex`] with a cardinality limit and one
//! overflow series.
//!
//! Owns: the overflow series and its count, the family's label names and
//! series constructor, and walking its series for scrapes. Must not: take a
//! lock or allocate on the hit path (the index's contract), or lose an
//! increment: a lookup the index refuses goes to the overflow series and is
//! counted.

use std::any::Any;

use crate::collect::Collect;
use crate::desc::Desc;
use crate::error::LabelCountError;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::index::StringIndex;
use crate::render::write_sample_prefix;
use crate::sync::{Arc, AtomicU64, Mutex, Ordering, lock};
use crate::value::{
    CounterRun, KeySource, LabelValues, Labels, Metric, PrefixSpan as Span, Scratch, Value, Visitor, planned_labels,
};

/// Label value of the series that collects label sets beyond a
/// [`StringFamily`]'s cardinality limit (every label gets this value).
pub const OVERFLOW_LABEL_VALUE: &str = "__overflow__";

/// The default cardinality limit of a [`StringFamily`].
pub const DEFAULT_CARDINALITY_LIMIT: usize = 2000;

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
/// # Lifecycle of a series
/// - **Birth**: the first lookup of a label set makes its series
///   (`make()`: value zero, a new created timestamp).
/// - **Death**: [`remove`](Self::remove), [`remove_matching`](Self::remove_matching),
///   [`retain`](Self::retain), [`clear`](Self::clear), or idle expiry. The
///   series stops being exported at the next scrape and frees its place
///   under the limit at once. A handle kept from [`get`](Self::get) across
///   an explicit removal keeps its own series (never another label set's),
///   which is no longer exported: look the label set up again after
///   removing it.
/// - **Idle expiry** (opt-in: [`StringFamilyBuilder::idle_timeout`]): a
///   scrape that finds a series' value unchanged for the timeout (a
///   counter's total, a histogram's or summary's count: values that move
///   with every record) exports it one last time and removes it. A gauge
///   goes up and down, so it counts as idle only while it reads zero (a
///   gauge reborn from zero then loses nothing); remove a gauge that holds
///   another level yourself. No update is lost to it: an
///   update that raced the expiry either was in that last export, or
///   brings the series back with its value (the expiry is undone), and a
///   lookup of the label set while the expiry settles cancels it. A series
///   whose handle you keep from [`get`](Self::get) (or a clone of it) is
///   not expired while that handle lives, so nothing the handle records is
///   lost: the expiry waits until every such handle is dropped. One
///   narrow case: a handle taken in the instant a scrape expires its series
///   brings the series back when that expiry settles (the next scrape, or
///   later while a thread somewhere holds an epoch pin, such as a
///   [`pinned`](Self::pinned) scope); until then the series is missing from
///   scrapes, and a remote_write push marks it stale, then sends it again
///   with everything recorded. Metric types of your own count their
///   handles only if they implement
///   [`Metric::handles`](crate::expose::Metric::handles). Choose a
///   timeout longer than every scraper's interval, so each sees the last
///   value.
/// - **Rebirth**: a label set that comes back after its series died gets a
///   new series, from zero with a new created timestamp, so `rate()` and
///   `increase()` see a reset, not a jump.
/// - **Memory**: with [`StringFamilyBuilder::reclaim_memory`] (implied by an
///   idle timeout) a dead series' memory is freed once no lookup can still
///   be reading it (`crossbeam-epoch`), so memory follows the live series
///   however many label sets come and go. Without it, lookups pin nothing
///   and dead series are kept until the family drops: such a family holds
///   at most twice its limit of series over its life, and label sets beyond
///   that go to the overflow series. In a family that reclaims, the
///   closures given to [`with`](Self::with) and the series constructor run
///   with the epoch pinned: one that blocks holds back the freeing of every
///   reclaiming family in the process (`crossbeam-epoch`'s collector is
///   global), so keep them short, and never call this family from the
///   constructor.
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
            .field("limit", &self.limit())
            .finish_non_exhaustive()
    }
}

/// Lookups in a [`StringFamily`] that share one epoch pin: see
/// [`StringFamily::pinned`]. Not `Send`: the pin is its thread's.
#[must_use]
pub struct Pinned<'a, M: Metric> {
    family: &'a StringFamily<M>,
    scope: crate::index::PinScope,
}

impl<M: Metric> Pinned<'_, M> {
    /// [`StringFamily::with`], under this scope's pin.
    #[inline]
    pub fn with<R>(&self, values: &[&str], f: impl FnOnce(&M) -> R) -> Result<R, LabelCountError> {
        let hash = StringIndex::<M>::hash(values);
        match self.family.inner.series.with_live_in(&self.scope, hash, values, f)? {
            Ok(r) => Ok(r),
            Err(f) => Ok(self.family.with_cold(values, f)),
        }
    }
}

impl<M: Metric> std::fmt::Debug for Pinned<'_, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pinned").field("label_names", &self.family.inner.label_names).finish()
    }
}

/// Builds a [`StringFamily`]: see [`StringFamily::builder`].
#[must_use]
pub struct StringFamilyBuilder<M: Metric> {
    label_names: Box<[Box<str>]>,
    make: Box<dyn Fn() -> M + Send + Sync>,
    limit: usize,
    idle_timeout: Option<Duration>,
    reclaim: bool,
}

impl<M: Metric> std::fmt::Debug for StringFamilyBuilder<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StringFamilyBuilder")
            .field("labels", &self.label_names)
            .field("limit", &self.limit)
            .field("idle_timeout", &self.idle_timeout)
            .field("reclaim", &self.reclaim)
            .finish_non_exhaustive()
    }
}

impl<M: Metric> StringFamilyBuilder<M> {
    /// The cardinality limit: live series at most (clamped to `1..=2^24`;
    /// default [`DEFAULT_CARDINALITY_LIMIT`]).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Series whose value did not change for `timeout` expire: the first
    /// scrape (of any registry the family is in, or
    /// [`StringFamily::expire_idle`]) that finds them idle that long
    /// exports them one last time and removes them. Implies
    /// [`reclaim_memory`](Self::reclaim_memory). See the lifecycle on
    /// [`StringFamily`]. `None` (the default): series never expire.
    pub fn idle_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.idle_timeout = timeout.into();
        self
    }

    /// Removed and expired series give their memory back (through
    /// `crossbeam-epoch`), so a family can see any number of label sets
    /// over its life. The price: every lookup by label values pins the
    /// epoch (a few nanoseconds; recording through a kept handle costs
    /// nothing more). Without it, removed series are kept until the family
    /// drops and a family holds at most twice its limit of series over its
    /// life.
    pub fn reclaim_memory(mut self) -> Self {
        self.reclaim = true;
        self
    }

    /// The family.
    pub fn build(self) -> StringFamily<M> {
        let reclaim = self.reclaim || self.idle_timeout.is_some();
        let arity = self.label_names.len();
        let series = if reclaim {
            StringIndex::reclaiming_with_limit(arity, self.limit)
        } else {
            StringIndex::with_limit(arity, self.limit)
        };
        let overflow = (self.make)();
        let label_names = self.label_names.clone();
        StringFamily {
            inner: Arc::new(Inner {
                label_names: self.label_names,
                make: self.make,
                series,
                overflow,
                overflowed: AtomicU64::new(0),
                idle_timeout: self.idle_timeout,
                sweep_desc: Desc::new(
                    "hotmeter_expire_idle".to_owned(),
                    String::new(),
                    None,
                    M::TYPE,
                    Vec::new(),
                    label_names.iter().map(|n| n.to_string()).collect(),
                ),
                plan: Mutex::new(ScrapePlan::new()),
            }),
        }
    }
}

struct Inner<M: Metric> {
    label_names: Box<[Box<str>]>,
    make: Box<dyn Fn() -> M + Send + Sync>,
    series: StringIndex<M>,
    overflow: M,
    overflowed: AtomicU64,
    /// Series whose value did not change for this long expire at the next
    /// scrape (`None`: never).
    idle_timeout: Option<Duration>,
    /// What [`StringFamily::expire_idle`] walks the plan with, when no
    /// registry's description is at hand.
    sweep_desc: Desc,
    /// What scrapes walk; only scrapes lock it.
    plan: Mutex<ScrapePlan<M>>,
}

/// The live series in label-value order, laid out for a scrape to stream
/// through: every sample prefix (`name{labels} `) in one buffer, a handle
/// to each series' metric and a copy of its key beside it. Rebuilt when the
/// set of live series or the registration changes, reusing the prefixes it
/// already has; a scrape of an unchanged family reads memory in order and
/// renders nothing but the values.
struct ScrapePlan<M> {
    /// The index version the plan was built from (`None`: never built).
    version: Option<u64>,
    /// The registration ([`Desc`]'s `id`) the prefixes were rendered for.
    desc_id: u64,
    /// Per series, its index entry's id (a key that comes back is a new id).
    ids: Vec<u64>,
    metrics: Vec<M>,
    prefixes: Vec<u8>,
    /// Per series: where its prefix ends in `prefixes`, and where its label
    /// set starts and ends within the prefix.
    spans: Vec<Span>,
    keys: PlanKeys,
    /// Per series, with an idle timeout: the fingerprint of its value at
    /// the last scrape and when that last changed (nanoseconds since
    /// `born`: integers, so a scrape that expires nothing costs a compare
    /// and a subtraction per series).
    idle: Vec<(u64, u64)>,
    /// Text bytes the series took at the last scrape, by the estimate of
    /// each line's size: the next scrape's size hint for kinds of several
    /// lines (0: not scraped yet).
    text_estimate: usize,
    /// When the plan was made: the origin of `idle`'s times.
    born: Instant,
    /// Scratch: old id to old position, while rebuilding.
    old_at: HashMap<u64, usize, foldhash::fast::FixedState>,
}

/// A copy of each planned series' key, so encoders can ask for label values
/// without reading the index (whose entries may be freed once removed).
#[derive(Default)]
struct PlanKeys {
    text: String,
    ends: Vec<u32>,
    /// Per series: where its key starts in `text` and its ends in `ends`.
    at: Vec<(usize, usize)>,
}

impl PlanKeys {
    fn push(&mut self, key: &str, ends: &[u32]) {
        self.at.push((self.text.len(), self.ends.len()));
        self.text.push_str(key);
        self.ends.extend_from_slice(ends);
    }

    fn get(&self, i: usize) -> Option<(&str, &[u32])> {
        let &(text_start, ends_start) = self.at.get(i)?;
        let (text_end, ends_end) = self.at.get(i + 1).copied().unwrap_or((self.text.len(), self.ends.len()));
        Some((self.text.get(text_start..text_end)?, self.ends.get(ends_start..ends_end)?))
    }

    /// Key `i` as label values.
    fn values(&self, i: usize) -> Vec<&str> {
        let Some((key, ends)) = self.get(i) else { return Vec::new() };
        let mut out = Vec::with_capacity(ends.len() + 1);
        let mut start = 0usize;
        for &end in ends.iter().chain(std::iter::once(&(key.len() as u32))) {
            out.push(key.get(start..end as usize).unwrap_or(""));
            start = end as usize;
        }
        out
    }
}

impl KeySource for PlanKeys {
    fn key(&self, at: u32) -> Option<(&str, &[u32])> {
        self.get(at as usize)
    }
}

/// A number that changes whenever a series records, for the kinds whose
/// value only grows (a counter's total, a histogram's or summary's count):
/// idle expiry compares it across scrapes, and settles a raced expiry by
/// it. A gauge goes up and down, so an unchanged value does not mean that
/// nothing recorded, and a gauge reborn from zero would lose its level: a
/// gauge is idle only while it reads zero (`None` otherwise: never idle).
fn fingerprint(value: &Value<'_>) -> Option<u64> {
    match *value {
        Value::Counter(total) | Value::TracedCounter { total, .. } => Some(total),
        Value::FloatCounter(v) => Some(v.to_bits()),
        Value::Gauge(v) => (v == 0.0).then_some(0),
        Value::IntGauge(v) => (v == 0).then_some(0),
        Value::Histogram { count, .. } | Value::Summary { count, .. } => Some(count),
        Value::NativeHistogram { native, .. } => Some(native.count),
    }
}

/// Whether a planned series has a handle beyond the family's own two (its
/// index entry's and the plan's): one kept from [`StringFamily::get`] (or
/// being taken now), which keeps the series from expiring.
fn kept<M: Metric>(metric: &M) -> bool {
    metric.handles() > 2
}

/// What `settle_expired` compares: a value with no fingerprint never
/// matches one that had one.
fn settle_fingerprint(value: &Value<'_>) -> u64 {
    fingerprint(value).unwrap_or(u64::MAX)
}

/// What a rebuild of the plan takes over from the old one.
struct OldPlan<M> {
    /// Whether its prefixes were rendered for the same registration.
    same_desc: bool,
    metrics: std::iter::Enumerate<std::vec::IntoIter<M>>,
    prefixes: Vec<u8>,
    spans: Vec<Span>,
    keys: PlanKeys,
    idle: Vec<(u64, u64)>,
}

impl<M: Metric> ScrapePlan<M> {
    fn new() -> Self {
        Self {
            version: None,
            desc_id: 0,
            ids: Vec::new(),
            metrics: Vec::new(),
            prefixes: Vec::new(),
            spans: Vec::new(),
            keys: PlanKeys::default(),
            idle: Vec::new(),
            text_estimate: 0,
            born: Instant::now(),
            old_at: HashMap::default(),
        }
    }

    /// Moves the plan's contents aside for a rebuild.
    fn take(&mut self, same_desc: bool) -> OldPlan<M> {
        self.old_at.clear();
        self.old_at.extend(self.ids.iter().enumerate().map(|(i, &id)| (id, i)));
        self.ids.clear();
        let mut keys = PlanKeys::default();
        std::mem::swap(&mut keys, &mut self.keys);
        OldPlan {
            same_desc,
            metrics: std::mem::take(&mut self.metrics).into_iter().enumerate(),
            prefixes: std::mem::take(&mut self.prefixes),
            spans: std::mem::take(&mut self.spans),
            keys,
            idle: std::mem::take(&mut self.idle),
        }
    }

    /// Brings the plan up to date with the index and `desc`.
    ///
    /// A series the old plan already had (same entry id) keeps its key
    /// copy, idle time and handle, moved over (live entries keep their
    /// relative order), and its prefix when the registration is the same:
    /// no handle cloned or dropped for it, so a scrape after one insert into
    /// a large family costs a pass over the plan, not a re-render of every
    /// series.
    fn refresh(&mut self, desc: &Desc, index: &StringIndex<M>, scratch: &mut Vec<usize>, now: Option<u64>) {
        let same_desc = self.desc_id == desc.id && self.version.is_some();
        let seen = if same_desc { self.version } else { None };
        let mut old: Option<OldPlan<M>> = None;
        let version = index.walk_live_since(seen, scratch, |entry| {
            let old = old.get_or_insert_with(|| self.take(same_desc));
            let id = entry.id();
            let at = self.old_at.get(&id).copied();
            // In plan order; a series still live is found at a later
            // position than the previous one still live, so one forward
            // pass hands each its old handle (and drops those of removed
            // series).
            let kept = at.and_then(|i| old.metrics.by_ref().find(|&(j, _)| j >= i).filter(|&(j, _)| j == i));
            let (labels_start, labels_end, metric, idle) = match (at, kept) {
                (Some(i), Some((_, metric))) if old.same_desc => {
                    let start = if i == 0 { 0 } else { old.spans[i - 1].end };
                    self.prefixes.extend_from_slice(&old.prefixes[start..old.spans[i].end]);
                    let (key, ends) = old.keys.get(i).unwrap_or(("", &[]));
                    self.keys.push(key, ends);
                    (old.spans[i].labels_start, old.spans[i].labels_end, metric, old.idle.get(i).copied())
                }
                (Some(i), Some((_, metric))) => {
                    let (key, ends) = entry.joined_key();
                    let (start, end) = write_sample_prefix(&mut self.prefixes, desc, LabelValues::Joined { key, ends });
                    self.keys.push(key, ends);
                    (start, end, metric, old.idle.get(i).copied())
                }
                _ => {
                    let (key, ends) = entry.joined_key();
                    let (start, end) = write_sample_prefix(&mut self.prefixes, desc, LabelValues::Joined { key, ends });
                    self.keys.push(key, ends);
                    (start, end, entry.value().clone(), None)
                }
            };
            self.spans.push(Span { end: self.prefixes.len(), labels_start, labels_end });
            self.ids.push(id);
            self.metrics.push(metric);
            if let Some(now) = now {
                // A series new to the plan has no fingerprint yet: the
                // first scrape sets it, and its idle time starts then.
                self.idle.push(idle.unwrap_or((u64::MAX, now)));
            }
        });
        let Some(version) = version else { return };
        if old.is_none() {
            // No live series at all.
            drop(self.take(false));
        }
        self.version = Some(version);
        self.desc_id = desc.id;
    }
}

/// Notes series `i`'s fingerprint at `now` in `idle`; true when it has not
/// changed for `timeout` (both in nanoseconds). A series without one (a
/// gauge away from zero) is never idle.
#[inline]
fn idle_for(idle: &mut [(u64, u64)], i: usize, fingerprint: Option<u64>, now: u64, timeout: u64) -> bool {
    let Some(idle) = idle.get_mut(i) else { return false };
    match fingerprint {
        Some(f) if f == idle.0 => now.saturating_sub(idle.1) >= timeout,
        Some(f) => {
            *idle = (f, now);
            false
        }
        None => {
            *idle = (u64::MAX, now);
            false
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
        Self::builder(label_names, make).limit(limit).build()
    }

    /// A builder for a family whose series come and go: a cardinality
    /// limit, an [idle timeout](StringFamilyBuilder::idle_timeout), and
    /// [reclaimed memory](StringFamilyBuilder::reclaim_memory).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let by_tenant = hotmeter::StringFamily::builder(&["tenant"], hotmeter::Counter::new)
    ///     .limit(10_000)
    ///     .idle_timeout(Duration::from_secs(600))
    ///     .build();
    /// by_tenant.with(&["t1"], |c| c.inc())?;
    /// assert_eq!(by_tenant.idle_timeout(), Some(Duration::from_secs(600)));
    /// # Ok::<(), hotmeter::LabelCountError>(())
    /// ```
    pub fn builder(label_names: &[&str], make: impl Fn() -> M + Send + Sync + 'static) -> StringFamilyBuilder<M> {
        StringFamilyBuilder {
            label_names: label_names.iter().map(|&n| Box::from(n)).collect(),
            make: Box::new(make),
            limit: DEFAULT_CARDINALITY_LIMIT,
            idle_timeout: None,
            reclaim: false,
        }
    }

    /// The idle timeout, if series expire.
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.inner.idle_timeout
    }

    /// Whether removed and expired series give their memory back (see
    /// [`StringFamilyBuilder::reclaim_memory`]).
    pub fn reclaims_memory(&self) -> bool {
        self.inner.series.reclaiming()
    }

    /// Runs `f` on the series for `values` (created on first use).
    ///
    /// A label set whose every value is [`OVERFLOW_LABEL_VALUE`] is the
    /// overflow series' own: it is routed there and counted as overflow,
    /// never created as a second series with the same labels.
    #[inline]
    pub fn with<R>(&self, values: &[&str], f: impl FnOnce(&M) -> R) -> Result<R, LabelCountError> {
        let hash = StringIndex::<M>::hash(values);
        match self.inner.series.with_live(hash, values, f)? {
            Ok(r) => Ok(r),
            Err(f) => Ok(self.with_cold(values, f)),
        }
    }

    /// A miss: create the series, or route to the overflow series.
    #[cold]
    #[inline(never)]
    fn with_cold<R>(&self, values: &[&str], f: impl FnOnce(&M) -> R) -> R {
        let mut f = Some(f);
        let hit = self.find_or_make(values, |s| f.take().map(|f| f(s)));
        match (hit, f) {
            (Ok(Some(Some(r))), _) => r,
            (_, Some(f)) => self.route_to_overflow(f),
            (_, None) => unreachable!("f is taken only by a hit"),
        }
    }

    /// Lookups that share one epoch pin, for a batch of them on this
    /// thread: in a family that reclaims memory each
    /// [`with`](Self::with) pins the epoch for itself, a `SeqCst` fence
    /// that costs more than the rest of a lookup among a few series;
    /// [`Pinned::with`] pins nothing, so it costs what a lookup in a family
    /// that does not reclaim does. While the scope lives, memory of removed
    /// and expired series in every reclaiming family of the process waits
    /// to be freed (and expiries wait to settle): hold it for one batch
    /// (a request, a loop over a buffer), never across a blocking call or
    /// an idle period.
    ///
    /// ```
    /// let jobs = hotmeter::StringFamily::builder(&["tenant"], hotmeter::Counter::new)
    ///     .idle_timeout(std::time::Duration::from_secs(600))
    ///     .build();
    /// let batch = ["t1", "t2", "t1"];
    /// let lookups = jobs.pinned();
    /// for tenant in batch {
    ///     lookups.with(&[tenant], |c| c.inc())?;
    /// }
    /// drop(lookups);
    /// assert_eq!(jobs.get(&["t1"])?.get(), 2);
    /// # Ok::<(), hotmeter::LabelCountError>(())
    /// ```
    pub fn pinned(&self) -> Pinned<'_, M> {
        Pinned { family: self, scope: crate::index::PinScope::new() }
    }

    /// A handle to the series for `values` (created on first use), to keep
    /// and record on without further lookups.
    pub fn get(&self, values: &[&str]) -> Result<M, LabelCountError> {
        self.with(values, M::clone)
    }

    /// As [`with`](Self::with), but a label set that would go to the
    /// overflow series gives `Ok(None)` instead (and is not counted as
    /// overflow): for callers that keep their own fallback.
    #[inline]
    pub fn with_within_limit<R>(&self, values: &[&str], f: impl FnOnce(&M) -> R) -> Result<Option<R>, LabelCountError> {
        self.find_or_make(values, f)
    }

    /// The index lookup both entry points share: a hit, or a new series
    /// unless the index is full or the label set is the overflow series'.
    #[inline(always)]
    fn find_or_make<R>(&self, values: &[&str], f: impl FnOnce(&M) -> R) -> Result<Option<R>, LabelCountError> {
        let inner = &*self.inner;
        inner.series.get_or_try_insert_with(
            StringIndex::<M>::hash(values),
            values,
            || {
                let reserved = !values.is_empty() && values.iter().all(|&v| v == OVERFLOW_LABEL_VALUE);
                (!reserved).then(|| (inner.make)())
            },
            f,
        )
    }

    fn route_to_overflow<R>(&self, f: impl FnOnce(&M) -> R) -> R {
        self.inner.overflowed.fetch_add(1, Ordering::Relaxed);
        f(&self.inner.overflow)
    }

    /// Stops exporting the series for `values`; returns whether it was live.
    /// The wrong number of values is the same [`LabelCountError`] as for
    /// [`StringFamily::with`].
    pub fn remove(&self, values: &[&str]) -> Result<bool, LabelCountError> {
        self.inner.series.remove(StringIndex::<M>::hash(values), values)
    }

    /// Stops exporting every series `keep` rejects, and returns how many
    /// stopped. `keep` sees each live series' label values in the order of
    /// [`label_names`](Self::label_names) (the overflow series is not
    /// offered), every one before any is removed: a `keep` that panics
    /// removes nothing. While it runs, new series wait to be added and
    /// scrapes of the registry wait (recording into live series never
    /// waits), so it must neither use this family nor scrape the registry.
    ///
    /// # Examples
    /// ```
    /// let registry = hotmeter::Registry::new();
    /// let jobs = registry.labeled_family("jobs_total", "Jobs.", &["tenant", "kind"], hotmeter::Counter::new)?;
    /// for (tenant, kind) in [("t1", "a"), ("t1", "b"), ("t2", "a")] {
    ///     jobs.with(&[tenant, kind], |c| c.inc())?;
    /// }
    /// assert_eq!(jobs.retain(|values| values[1] != "b"), 1);
    /// assert_eq!(jobs.remove_matching(&[("tenant", "t1")])?, 1);
    /// assert_eq!(jobs.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn retain(&self, keep: impl FnMut(&[&str]) -> bool) -> usize {
        self.inner.series.retain(keep)
    }

    /// Stops exporting every series whose labels include each of
    /// `matching`'s `(name, value)` pairs, whatever its other labels
    /// (`&[("tenant", "t1")]`: every series of tenant t1), and returns how
    /// many stopped. An empty list matches every series; one name given
    /// twice with two values matches none. A name the family does not have
    /// is an error, and nothing is removed.
    pub fn remove_matching(&self, matching: &[(&str, &str)]) -> Result<usize, crate::UnknownLabelError> {
        let names = &self.inner.label_names;
        let mut wanted = Vec::with_capacity(matching.len());
        for &(name, value) in matching {
            let Some(i) = names.iter().position(|n| &**n == name) else {
                return Err(crate::UnknownLabelError {
                    name: name.to_owned(),
                    label_names: names.iter().map(|n| n.to_string()).collect(),
                });
            };
            wanted.push((i, value));
        }
        Ok(self.retain(|values| !wanted.iter().all(|&(i, v)| values.get(i) == Some(&v))))
    }

    /// Expires the planned series at positions `idle` (just exported);
    /// returns how many expired.
    fn expire(&self, plan: &ScrapePlan<M>, idle: &[usize]) -> usize {
        if idle.is_empty() {
            return 0;
        }
        let values: Vec<Vec<&str>> = idle.iter().map(|&i| plan.keys.values(i)).collect();
        let batch: Vec<crate::index::Expiry<'_>> = idle
            .iter()
            .zip(&values)
            .filter_map(|(&i, values)| {
                Some(crate::index::Expiry {
                    hash: StringIndex::<M>::hash(values),
                    values,
                    id: *plan.ids.get(i)?,
                    fingerprint: plan.idle.get(i)?.0,
                })
            })
            .collect();
        self.inner.series.expire_all(&batch)
    }

    /// Runs idle expiry now, as a scrape would (without exporting
    /// anything), and returns how many series expired: for a family no
    /// registry scrapes. A family that is scraped needs no call. Series
    /// expire only after two calls at least `idle_timeout` apart saw the
    /// same value. Does nothing without an idle timeout.
    pub fn expire_idle(&self) -> usize {
        struct Discard;
        impl Visitor for Discard {
            fn family(&mut self, _: &Desc) {}
            fn sample(&mut self, _: &Labels<'_>, _: &Value<'_>) {}
            fn counters(&mut self, _: &CounterRun<'_>) {}
        }
        if self.inner.idle_timeout.is_none() {
            return 0;
        }
        self.collect_and_expire(&self.inner.sweep_desc, &mut Scratch::default(), &mut Discard)
    }

    /// Stops exporting every series (the overflow count is kept: it is a
    /// counter).
    pub fn clear(&self) {
        self.inner.series.clear();
    }

    /// Number of live series (the overflow series not included).
    pub fn len(&self) -> usize {
        self.inner.series.len()
    }

    /// True with no live series.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cardinality limit.
    pub fn limit(&self) -> usize {
        self.inner.series.limit()
    }

    /// Lookups routed to the overflow series since creation.
    pub fn overflowed(&self) -> u64 {
        self.inner.overflowed.load(Ordering::Relaxed)
    }

    /// The label names, in declaration order.
    pub fn label_names(&self) -> Vec<&str> {
        self.inner.label_names.iter().map(|n| &**n).collect()
    }

    /// The overflow series, once any lookup went there.
    fn collect_overflow(&self, desc: &Desc, scratch: &mut Scratch, visitor: &mut dyn Visitor) {
        if self.overflowed() > 0 {
            let overflow = &self.inner.overflow;
            let labels = Labels {
                desc,
                values: LabelValues::Same(OVERFLOW_LABEL_VALUE),
                rendered: None,
                created: overflow.created_unix_nanos(),
            };
            let value = overflow.sample(scratch);
            visitor.sample(&labels, &value);
        }
    }

    pub(crate) fn overflow_series(&self) -> &M {
        &self.inner.overflow
    }

    /// Whether two handles are the same family.
    pub fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl<M: Metric> Collect for StringFamily<M> {
    fn collect(&self, desc: &Desc, scratch: &mut Scratch, visitor: &mut dyn Visitor) {
        self.collect_and_expire(desc, scratch, visitor);
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<Self>()
    }
    fn handle_name(&self) -> String {
        format!("StringFamily<{}>", M::handle_name())
    }
    fn overflowed(&self) -> Option<u64> {
        Some(StringFamily::overflowed(self))
    }
}

impl<M: Metric> StringFamily<M> {
    /// A scrape: every live series to `visitor`, then idle expiry; returns
    /// how many series expired.
    fn collect_and_expire(&self, desc: &Desc, scratch: &mut Scratch, visitor: &mut dyn Visitor) -> usize {
        let inner = &*self.inner;
        // Scrapes of one family take turns on its plan; recording threads
        // never touch it, and inserts only wait for the short copy of the
        // live list inside `refresh`.
        let mut plan_guard = lock(&inner.plan);
        // (timeout, now), in nanoseconds since the plan was made.
        let expiry = inner.idle_timeout.map(|timeout| {
            let now = plan_guard.born.elapsed().as_nanos();
            (u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX), u64::try_from(now).unwrap_or(u64::MAX))
        });
        let mut order = std::mem::take(&mut scratch.order);
        let now = expiry.map(|(_, now)| now);
        plan_guard.refresh(desc, &inner.series, &mut order, now);
        if expiry.is_some() {
            // Expired series no reader can still hold are freed, unless an
            // update raced the expiry or a handle to them is kept: those
            // come back, and into this scrape. The plan was just brought up
            // to date, so it holds no handle of an expired series, and one
            // beyond the series' own is a handle kept from `get`.
            let settled =
                inner.series.settle_expired(|m, at| m.handles() <= 1 && settle_fingerprint(&m.sample(scratch)) == at);
            if settled.revived > 0 {
                plan_guard.refresh(desc, &inner.series, &mut order, now);
            }
        }
        scratch.order = order;
        let plan = &mut *plan_guard;
        // Positions of series idle for the timeout (found rarely: no
        // allocation until one is).
        let mut idle: Vec<usize> = Vec::new();
        // Plain counters go over as one run: their values read in one
        // tight loop, then handed to the visitor with the prefixes.
        if matches!(M::TYPE, crate::metric_type::MetricType::Counter) {
            let mut values = std::mem::take(&mut scratch.values);
            let mut created = std::mem::take(&mut scratch.created);
            values.clear();
            created.clear();
            let reads_created = visitor.reads_created();
            for metric in &plan.metrics {
                match metric.sample(scratch) {
                    Value::Counter(v) => {
                        values.push(v);
                        if reads_created {
                            // On the line the value was just read from.
                            created.push(metric.created_unix_nanos().unwrap_or(0));
                        }
                    }
                    _ => break,
                }
            }
            if values.len() == plan.metrics.len() {
                if let Some((timeout, now)) = expiry {
                    for (i, &v) in values.iter().enumerate() {
                        if idle_for(&mut plan.idle, i, Some(v), now, timeout) && !kept(&plan.metrics[i]) {
                            idle.push(i);
                        }
                    }
                }
                visitor.counters(&CounterRun {
                    desc,
                    prefixes: &plan.prefixes,
                    spans: &plan.spans,
                    values: &values,
                    created: &created,
                    source: &plan.keys,
                });
                scratch.values = values;
                scratch.created = created;
                let expired = self.expire(plan, &idle);
                drop(plan_guard);
                self.collect_overflow(desc, scratch, visitor);
                return expired;
            }
            scratch.values = values;
            scratch.created = created;
        }
        // Room for this scrape's text, reserved once rather than grown by
        // doubling through a large family: for one-line kinds the plan's
        // prefixes and a value each; for the others what the last scrape's
        // series took (series may differ in lines, so one series says
        // nothing of the rest), none on a family's first scrape.
        if matches!(M::TYPE, crate::metric_type::MetricType::Gauge) {
            visitor.size_hint(plan.prefixes.len() + plan.spans.len() * 22);
        } else if plan.text_estimate > 0 {
            visitor.size_hint(plan.text_estimate);
        }
        let mut text_estimate = 0usize;
        let mut prefix_start = 0usize;
        for (i, metric) in plan.metrics.iter().enumerate() {
            let value = metric.sample(scratch);
            // Per line: the series' prefix, a suffix and bound (`_bucket`,
            // `,le="0.005"`) and a value (at most 20 digits, 24 for a
            // float), newline.
            let prefix_end = plan.spans.get(i).map_or(prefix_start, |s| s.end);
            text_estimate = text_estimate
                .saturating_add(value.text_lines().saturating_mul(prefix_end.saturating_sub(prefix_start) + 40));
            prefix_start = prefix_end;
            if let Some((timeout, now)) = expiry
                && idle_for(&mut plan.idle, i, fingerprint(&value), now, timeout)
                && !kept(metric)
            {
                idle.push(i);
            }
            let labels = planned_labels(desc, &plan.prefixes, &plan.spans, i, &plan.keys, metric.created_unix_nanos());
            visitor.sample(&labels, &value);
        }
        plan.text_estimate = text_estimate;
        let expired = self.expire(plan, &idle);
        drop(plan_guard);
        self.collect_overflow(desc, scratch, visitor);
        expired
    }
}

#[cfg(all(test, not(hotmeter_loom)))]
mod tests {
    use super::*;
    use crate::{Counter, SingleCounter};

    /// Every sample of a registry as `prefix|labels|value` lines: the
    /// rendered prefix, the label values as an encoder that asks for them
    /// sees them, and the value.
    fn scrape(r: &crate::Registry) -> Vec<String> {
        struct V(Vec<String>);
        impl Visitor for V {
            fn family(&mut self, _: &Desc) {}
            fn sample(&mut self, labels: &Labels<'_>, value: &crate::expose::Value<'_>) {
                let prefix = labels.rendered_sample_prefix().map(|p| String::from_utf8_lossy(p).into_owned());
                let set = labels.rendered().map(|p| String::from_utf8_lossy(p).into_owned());
                let values: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v}")).collect();
                let v = match value {
                    crate::expose::Value::Counter(v) => *v,
                    _ => u64::MAX,
                };
                self.0.push(format!(
                    "{}|{}|{}|{v}",
                    prefix.unwrap_or_default(),
                    set.unwrap_or_default(),
                    values.join(",")
                ));
            }
        }
        let mut v = V(Vec::new());
        r.collect(&mut v);
        v.0.retain(|l| l.starts_with("t_total"));
        v.0
    }

    #[test]
    fn scrape_plan_follows_inserts_removals_revivals_and_values() {
        let r = crate::Registry::new();
        let f = r.labeled_family("t_total", "T.", &["k", "j"], Counter::new).unwrap();
        assert!(scrape(&r).is_empty());
        f.with(&["b", "1"], |c| c.inc_by(2)).unwrap();
        f.with(&["a\"\n", "2"], |c| c.inc()).unwrap();
        assert_eq!(
            scrape(&r),
            [
                "t_total{k=\"a\\\"\\n\",j=\"2\"} |{k=\"a\\\"\\n\",j=\"2\"|k=a\"\n,j=2|1",
                "t_total{k=\"b\",j=\"1\"} |{k=\"b\",j=\"1\"|k=b,j=1|2",
            ]
        );
        // Unchanged set, new values: the plan is reused, the values are not.
        f.with(&["b", "1"], |c| c.inc_by(5)).unwrap();
        assert_eq!(scrape(&r)[1], "t_total{k=\"b\",j=\"1\"} |{k=\"b\",j=\"1\"|k=b,j=1|7");
        // A removal, an insert sorting between, a revival.
        assert_eq!(f.remove(&["a\"\n", "2"]), Ok(true));
        f.with(&["c", "3"], |c| c.inc()).unwrap();
        f.with(&["a", "0"], |c| c.inc_by(9)).unwrap();
        assert_eq!(
            scrape(&r),
            [
                "t_total{k=\"a\",j=\"0\"} |{k=\"a\",j=\"0\"|k=a,j=0|9",
                "t_total{k=\"b\",j=\"1\"} |{k=\"b\",j=\"1\"|k=b,j=1|7",
                "t_total{k=\"c\",j=\"3\"} |{k=\"c\",j=\"3\"|k=c,j=3|1",
            ]
        );
        // A removed label set that comes back is a new series.
        f.with(&["a\"\n", "2"], |c| c.inc()).unwrap();
        assert_eq!(scrape(&r).len(), 4);
        assert_eq!(scrape(&r)[1], "t_total{k=\"a\\\"\\n\",j=\"2\"} |{k=\"a\\\"\\n\",j=\"2\"|k=a\"\n,j=2|1");
        f.clear();
        assert!(scrape(&r).is_empty());
    }

    #[test]
    fn scrape_plan_renders_again_for_another_registration() {
        let f = StringFamily::new(&["k"], SingleCounter::new);
        f.with(&["x"], |c| c.inc()).unwrap();
        let a = crate::Registry::builder().const_label("host", "a").build().unwrap();
        let b = crate::Registry::new();
        let _ = a.register(("t_total", "T."), f.clone()).unwrap();
        let _ = b.register(("t_total", "T."), f.clone()).unwrap();
        // Alternate scrapes: each sees its own constant labels, never the other's.
        for _ in 0..2 {
            assert_eq!(scrape(&a), ["t_total{host=\"a\",k=\"x\"} |{host=\"a\",k=\"x\"|host=a,k=x|1"]);
            assert_eq!(scrape(&b), ["t_total{k=\"x\"} |{k=\"x\"|k=x|1"]);
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
        assert_eq!(f.remove(&["0"]), Ok(true));
        assert_eq!(f.remove(&["0"]), Ok(false));
        f.with(&["new"], |c| c.inc()).unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(f.overflowed(), 7);
        f.clear();
        assert!(f.is_empty());
    }

    #[test]
    fn a_returning_series_starts_anew_and_kept_families_cap_distinct_sets() {
        let f = StringFamily::with_limit(&["id"], 2, Counter::new);
        f.with(&["a"], |c| c.inc_by(5)).unwrap();
        let created = f.get(&["a"]).unwrap().created_unix_nanos();
        assert_eq!(f.remove(&["a"]), Ok(true));
        assert_eq!(f.len(), 0);
        std::thread::sleep(std::time::Duration::from_millis(2));
        f.with(&["a"], |c| c.inc()).unwrap();
        let again = f.get(&["a"]).unwrap();
        assert_eq!(again.get(), 1, "a returning label set starts from zero");
        assert!(again.created_unix_nanos() > created, "with a new created timestamp");
        // Without reclamation: at most 2 x limit series over the family's life.
        for i in 0..10 {
            let id = format!("churn-{i}");
            f.with(&[&id], |c| c.inc()).unwrap();
            f.remove(&[&id]).unwrap();
        }
        assert_eq!(f.inner.series.allocated(), 4);
        assert_eq!(f.overflowed(), 8);
    }

    /// The issue's case: a limit of 2, tenants added then removed, many
    /// times over. With reclaimed memory nothing goes to the overflow
    /// series, however many come and go.
    #[test]
    fn a_reclaiming_family_never_goes_blind() {
        let f = StringFamily::builder(&["tenant"], SingleCounter::new).limit(2).reclaim_memory().build();
        assert!(f.reclaims_memory());
        for i in 0..10_000 {
            let t = format!("t{i}");
            f.with(&[&t], |c| c.inc()).unwrap();
            f.with(&[&t], |c| c.inc()).unwrap();
            assert_eq!(f.get(&[&t]).unwrap().get(), 2);
            assert_eq!(f.remove(&[&t]), Ok(true));
        }
        assert_eq!((f.len(), f.overflowed()), (0, 0));
        assert_eq!(f.inner.series.allocated(), 0);
    }

    /// Idle expiry at scrapes: an idle series is exported one last time,
    /// then gone; a busy one stays; a returning one starts from zero.
    #[test]
    fn idle_series_expire_at_scrapes() {
        let r = crate::Registry::new();
        let timeout = std::time::Duration::from_millis(40);
        let f = r
            .register(("t_total", "T."), StringFamily::builder(&["k"], Counter::new).idle_timeout(timeout).build())
            .unwrap();
        f.with(&["idle"], |c| c.inc_by(3)).unwrap();
        f.with(&["busy"], |c| c.inc()).unwrap();
        assert_eq!(scrape(&r).len(), 2);
        std::thread::sleep(timeout * 2);
        f.with(&["busy"], |c| c.inc()).unwrap();
        let last = scrape(&r);
        assert_eq!(last.len(), 2, "the expiring scrape still exports it: {last:?}");
        assert!(last[1].ends_with("|k=idle|3"), "{last:?}");
        assert_eq!(f.len(), 1, "removed after that export");
        let after: Vec<String> = scrape(&r);
        assert_eq!(after.len(), 1, "{after:?}");
        assert!(after[0].contains("k=busy"));
        // Settled (freed) within a few scrapes.
        settle(&r, &f);
        assert_eq!(f.inner.series.allocated(), 1);
        f.with(&["idle"], |c| c.inc()).unwrap();
        assert_eq!(f.get(&["idle"]).unwrap().get(), 1, "it comes back from zero");
        // expire_idle works without a registry's scrape, and a family
        // without a timeout never expires anything.
        std::thread::sleep(timeout * 2);
        assert_eq!(f.expire_idle(), 1, "busy, idle since the scrapes: idle times carry over descriptions");
        assert_eq!(f.len(), 1, "idle, new since the last look, is only noted");
        std::thread::sleep(timeout * 2);
        assert_eq!(f.expire_idle(), 1);
        assert_eq!(f.len(), 0);
        assert_eq!(StringFamily::new(&["k"], Counter::new).expire_idle(), 0);
    }

    /// Scrapes `r` until `f` has no expiry left to settle (other tests'
    /// threads pin the same global epoch: bounded retries).
    fn settle<M: Metric>(r: &crate::Registry, f: &StringFamily<M>) {
        for _ in 0..2_000 {
            scrape(r);
            if f.inner.series.expiring() == 0 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        panic!("expiries did not settle");
    }

    /// A handle kept from `get` keeps its series from expiring, whatever
    /// the kind, so what it records is exported; once every handle is
    /// dropped the series expires as any other.
    #[test]
    fn a_kept_handle_keeps_its_series_from_expiring() {
        fn check<M: Metric>(make: fn() -> M, record: fn(&M)) {
            let r = crate::Registry::new();
            let timeout = std::time::Duration::from_millis(20);
            let f = r.register(("t", "T."), StringFamily::builder(&["k"], make).idle_timeout(timeout).build()).unwrap();
            let kept = f.get(&["kept"]).unwrap();
            record(&kept);
            f.with(&["other"], record).unwrap();
            scrape(&r);
            std::thread::sleep(timeout * 2);
            scrape(&r);
            assert_eq!(f.len(), 1, "{}: the series without a handle expired, the kept one stayed", M::handle_name());
            settle(&r, &f);
            record(&kept);
            let mut total = 0;
            r.snapshot().family("t").unwrap().series.iter().for_each(|s| {
                assert_eq!(s.labels[0].1, "kept");
                total += 1;
            });
            assert_eq!(total, 1);
            drop(kept);
            std::thread::sleep(timeout * 2);
            scrape(&r);
            settle(&r, &f);
            assert_eq!(
                (f.len(), f.inner.series.allocated()),
                (0, 0),
                "{}: expired once its handle dropped",
                M::handle_name()
            );
        }
        check(Counter::new, |c| c.inc());
        check(SingleCounter::new, |c| c.inc());
        check(crate::FloatCounter::new, |c| c.inc_by(0.5));
        check(crate::TracedCounter::new, |c| c.inc());
        check(|| crate::Histogram::new(crate::Buckets::default()), |h| h.observe(0.1));
        check(|| crate::NativeHistogram::new(crate::NativeOpts::default()), |h| h.observe(0.1));
        check(|| crate::Summary::new(crate::SummaryOpts::default()).unwrap(), |s| s.observe(0.1));
    }

    /// Lookups in a pinned scope do what `with` does: hits, new series,
    /// the overflow series beyond the limit (counted), the label-count
    /// error; in families that reclaim or not.
    #[test]
    fn pinned_lookups_are_with_lookups() {
        for reclaim in [false, true] {
            let b = StringFamily::builder(&["k"], Counter::new).limit(2);
            let f = if reclaim { b.reclaim_memory().build() } else { b.build() };
            let p = f.pinned();
            for k in ["a", "b", "a", "c", "d"] {
                p.with(&[k], |c| c.inc()).unwrap();
            }
            assert!(p.with(&["a", "x"], |c| c.inc()).is_err());
            drop(p);
            assert_eq!((f.len(), f.overflowed()), (2, 2), "reclaim {reclaim}");
            assert_eq!((f.get(&["a"]).unwrap().get(), f.get(&["b"]).unwrap().get()), (2, 1));
        }
    }

    /// A handle taken from an entry just before its expiry (its lookup
    /// ran before the entry left the table) brings the series back when
    /// the expiry settles, with what the handle recorded.
    #[test]
    fn a_handle_taken_before_an_expiry_brings_the_series_back() {
        let r = crate::Registry::new();
        let timeout = std::time::Duration::from_millis(20);
        let f = r
            .register(("t_total", "T."), StringFamily::builder(&["k"], Counter::new).idle_timeout(timeout).build())
            .unwrap();
        f.with(&["x"], |c| c.inc()).unwrap();
        scrape(&r);
        std::thread::sleep(timeout * 2);
        scrape(&r);
        assert_eq!(f.len(), 0, "expired, not settled yet");
        // What a lookup that found the entry before it left the table
        // would have cloned.
        let mut handle = None;
        f.inner.series.walk_expiring(|e| handle = Some(e.value().clone()));
        let handle = handle.expect("the expiring entry");
        settle(&r, &f);
        assert_eq!(f.len(), 1, "put back: a handle to it is kept");
        handle.inc();
        let last = scrape(&r);
        assert!(last.len() == 1 && last[0].ends_with("|k=x|2"), "{last:?}");
    }

    /// A registry's default idle timeout reaches the families it makes,
    /// never one built and registered by hand (libraries that keep handles
    /// build theirs so).
    #[test]
    fn a_registry_default_timeout_reaches_only_the_families_it_makes() {
        let timeout = std::time::Duration::from_secs(60);
        let r = crate::Registry::builder().idle_timeout(timeout).build().unwrap();
        let made = r.labeled_family("made_total", "M.", &["k"], Counter::new).unwrap();
        let own = r.register(("own_total", "O."), StringFamily::new(&["k"], Counter::new)).unwrap();
        assert_eq!((made.idle_timeout(), made.reclaims_memory()), (Some(timeout), true));
        assert_eq!((own.idle_timeout(), own.reclaims_memory()), (None, false));
    }

    /// A gauge away from zero never expires (it goes up and down, and a
    /// gauge reborn from zero would lose its level); at zero it does.
    #[test]
    fn only_a_gauge_at_zero_is_idle() {
        let r = crate::Registry::new();
        let timeout = std::time::Duration::from_millis(20);
        let f = r
            .register(
                ("level", "L."),
                StringFamily::builder(&["k"], crate::IntGauge::new).idle_timeout(timeout).build(),
            )
            .unwrap();
        f.with(&["held"], |g| g.set(4)).unwrap();
        f.with(&["zero"], |g| g.set(0)).unwrap();
        r.snapshot();
        std::thread::sleep(timeout * 2);
        r.snapshot();
        assert_eq!(f.len(), 1, "the gauge at zero expired");
        assert_eq!(f.get(&["held"]).unwrap().get(), 4, "the held level stays");
    }

    /// A lookup of an expiring label set takes the series back: value,
    /// created timestamp and all.
    #[test]
    fn a_lookup_while_the_expiry_settles_takes_the_series_back() {
        let r = crate::Registry::new();
        let timeout = std::time::Duration::from_millis(20);
        let f = r
            .register(("t_total", "T."), StringFamily::builder(&["k"], Counter::new).idle_timeout(timeout).build())
            .unwrap();
        f.with(&["x"], |c| c.inc_by(7)).unwrap();
        let created = f.get(&["x"]).unwrap().created_unix_nanos();
        scrape(&r);
        std::thread::sleep(timeout * 2);
        // The expiring scrape; settling runs only at the start of a scrape.
        scrape(&r);
        assert_eq!((f.len(), f.inner.series.expiring()), (0, 1));
        let back = f.get(&["x"]).unwrap();
        assert_eq!((back.get(), back.created_unix_nanos()), (7, created));
        assert_eq!((f.len(), f.inner.series.expiring()), (1, 0));
        assert_eq!(scrape(&r).len(), 1);
    }

    /// `remove_matching` takes every series of one label value whatever
    /// the others, frees their places under the limit, and refuses a
    /// label the family does not have without removing anything; `retain`
    /// sees values in label order and never the overflow series.
    #[test]
    fn partial_removal_by_label_and_by_predicate() {
        let f = StringFamily::with_limit(&["tenant", "kind"], 4, SingleCounter::new);
        for (t, k) in [("t1", "read"), ("t1", "write"), ("t2", "read"), ("t3", "write")] {
            f.with(&[t, k], |c| c.inc()).unwrap();
        }
        f.with(&["t4", "read"], |c| c.inc()).unwrap();
        assert_eq!((f.len(), f.overflowed()), (4, 1), "full: t4 went to overflow");

        let err = f.remove_matching(&[("tenant", "t1"), ("region", "eu")]).unwrap_err();
        assert_eq!(err.name, "region");
        assert_eq!(err.label_names, ["tenant", "kind"]);
        assert!(err.to_string().contains("\"region\""), "{err}");
        assert_eq!(f.len(), 4, "an error removes nothing");

        assert_eq!(f.remove_matching(&[("tenant", "t1")]), Ok(2));
        assert_eq!(f.remove_matching(&[("tenant", "t1")]), Ok(0), "already gone");
        assert_eq!(f.remove_matching(&[("tenant", "t2"), ("kind", "write")]), Ok(0), "both must match");
        assert_eq!(f.len(), 2);
        f.with(&["t4", "read"], |c| c.inc()).unwrap();
        assert_eq!((f.len(), f.overflowed()), (3, 1), "the freed places take new series");

        let mut seen = Vec::new();
        let removed = f.retain(|values| {
            seen.push(values.join("/"));
            values[1] == "read"
        });
        seen.sort();
        assert_eq!(seen, ["t2/read", "t3/write", "t4/read"], "live series only, values in label order");
        assert_eq!(removed, 1);
        assert_eq!(f.len(), 2);
        assert_eq!(f.remove_matching(&[]), Ok(2), "no pairs: every series");
        assert!(f.is_empty());
    }

    /// A predicate that panics removes nothing, and the family goes on.
    #[test]
    fn a_retain_that_panics_removes_nothing() {
        let f = StringFamily::with_limit(&["id"], 4, SingleCounter::new);
        for id in ["a", "b", "c"] {
            f.with(&[id], |c| c.inc()).unwrap();
        }
        let mut calls = 0;
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            f.retain(|_| {
                calls += 1;
                assert!(calls < 3, "the third call panics");
                false
            })
        }));
        assert!(caught.is_err());
        assert_eq!(f.len(), 3, "nothing removed");
        assert_eq!(f.retain(|values| values[0] != "a"), 1, "the lock is usable afterwards");
        f.with(&["d"], |c| c.inc()).unwrap();
        assert_eq!(f.len(), 3);
    }

    #[test]
    fn within_limit_neither_overflows_nor_counts() {
        let f = StringFamily::with_limit(&["id"], 1, SingleCounter::new);
        assert_eq!(f.with_within_limit(&["a"], |c| c.inc()).unwrap(), Some(()));
        assert_eq!(f.with_within_limit(&["b"], |c| c.inc()).unwrap(), None);
        assert_eq!(f.overflowed(), 0);
    }

    #[test]
    fn the_overflow_label_set_is_never_a_second_series() {
        let f = StringFamily::with_limit(&["a", "b"], 5, SingleCounter::new);
        f.with(&[OVERFLOW_LABEL_VALUE, OVERFLOW_LABEL_VALUE], |c| c.inc()).unwrap();
        assert_eq!((f.len(), f.overflowed()), (0, 1), "routed to the overflow series and counted");
        assert_eq!(f.inner.overflow.get(), 1);
        assert_eq!(f.with_within_limit(&[OVERFLOW_LABEL_VALUE, OVERFLOW_LABEL_VALUE], |c| c.inc()).unwrap(), None);
        // One value alone is an ordinary label value.
        f.with(&[OVERFLOW_LABEL_VALUE, "x"], |c| c.inc()).unwrap();
        assert_eq!((f.len(), f.overflowed()), (1, 1));
        // A family without labels has one series, which is no overflow.
        let unlabeled = StringFamily::new(&[], SingleCounter::new);
        unlabeled.with(&[], |c| c.inc()).unwrap();
        assert_eq!((unlabeled.len(), unlabeled.overflowed()), (1, 0));
    }

    #[test]
    fn wrong_label_count_is_an_error() {
        let f = StringFamily::new(&["a"], Counter::new);
        assert_eq!(f.get(&[]).unwrap_err(), LabelCountError { expected: 1, got: 0 });
        assert_eq!(f.remove(&["a", "b"]), Err(LabelCountError { expected: 1, got: 2 }));
    }
}
