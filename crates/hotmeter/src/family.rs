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

use hashbrown::HashTable;

use crate::error::LabelCountError;
use crate::labels::LabelSet;
use crate::snapshot::{Desc, LabelValues, Labels, Metric, Scratch, Visitor};
use crate::sync::{Arc, ArcCell, AtomicU64, Mutex, Ordering, lock};

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
        visitor.sample(&Labels { desc, values: LabelValues::None }, &value);
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
    _labels: PhantomData<fn(L)>,
}

impl<L: LabelSet, M: Metric> Clone for Family<L, M> {
    fn clone(&self) -> Self {
        Self { series: self.series.clone(), order: self.order.clone(), _labels: PhantomData }
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
        Self { series, order: order.into(), _labels: PhantomData }
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
            let labels = Labels { desc, values: LabelValues::Typed { index: i as usize, value: L::label_value } };
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
/// The hit path hashes the values (foldhash), loads the current index
/// without a lock, and finds the series; it allocates nothing. The first use
/// of a label set takes the `#[cold]` slow path: a mutex that only inserts
/// contend on, a copy-on-write of the index, and the cardinality check.
/// Beyond the limit (default [`DEFAULT_CARDINALITY_LIMIT`]) new label sets
/// share one overflow series whose labels are all
/// [`OVERFLOW_LABEL_VALUE`], and each routed lookup is counted
/// ([`overflowed`](Self::overflowed); a registry also exports it as
/// `hotmeter_label_overflow_total{metric="..."}`): memory stays bounded and
/// nothing is lost silently.
///
/// Label values are taken as given: quotes, backslashes, newlines and any
/// UTF-8 are fine (encoders escape them). Keep the handle from
/// [`get`](Self::get) to skip the lookup on later calls.
///
/// A handle kept after [`remove`](Self::remove) or [`clear`](Self::clear)
/// still works but is no longer exported; a later lookup of the same values
/// creates a fresh series.
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

struct Inner<M> {
    label_names: Box<[Box<str>]>,
    index: ArcCell<Index<M>>,
    /// Serialises inserts and removals; never taken on the hit path.
    writers: Mutex<()>,
    make: Box<dyn Fn() -> M + Send + Sync>,
    limit: usize,
    overflow: M,
    overflowed: AtomicU64,
}

struct Series<M> {
    hash: u64,
    values: Box<[Box<str>]>,
    metric: M,
}

/// An immutable index, replaced whole on insert (copy-on-write).
struct Index<M> {
    table: HashTable<u32>,
    series: Vec<Arc<Series<M>>>,
    /// Positions in `series` sorted by label values.
    sorted: Vec<u32>,
}

impl<M> Index<M> {
    fn empty() -> Self {
        Self { table: HashTable::new(), series: Vec::new(), sorted: Vec::new() }
    }

    #[inline]
    fn find(&self, hash: u64, values: &[&str]) -> Option<&Arc<Series<M>>> {
        self.table
            .find(hash, |&i| {
                let s = &self.series[i as usize].values;
                s.len() == values.len() && s.iter().zip(values).all(|(a, b)| **a == **b)
            })
            .map(|&i| &self.series[i as usize])
    }

    /// A new index with exactly `series` (in this order).
    fn build(series: Vec<Arc<Series<M>>>) -> Self {
        let mut table = HashTable::with_capacity(series.len());
        for (i, s) in series.iter().enumerate() {
            table.insert_unique(s.hash, i as u32, |&j| series[j as usize].hash);
        }
        let mut sorted: Vec<u32> = (0..series.len() as u32).collect();
        sorted.sort_by(|&a, &b| series[a as usize].values.cmp(&series[b as usize].values));
        Self { table, series, sorted }
    }
}

#[inline]
fn hash_values(values: &[&str]) -> u64 {
    // Fixed seed: hashes are only compared within this process.
    foldhash::fast::FixedState::with_seed(0x6d65_7465_7268_6f74).hash_one(values)
}

impl<M: Metric> StringFamily<M> {
    /// A family with these label names, the default cardinality limit, and
    /// `make` to create each series. Label names are not validated here; the
    /// registry validates them when the family is registered.
    pub fn new(label_names: &[&str], make: impl Fn() -> M + Send + Sync + 'static) -> Self {
        Self::with_limit(label_names, DEFAULT_CARDINALITY_LIMIT, make)
    }

    /// As [`new`](Self::new) with a cardinality limit (at least 1).
    pub fn with_limit(label_names: &[&str], limit: usize, make: impl Fn() -> M + Send + Sync + 'static) -> Self {
        let overflow = make();
        Self {
            inner: Arc::new(Inner {
                label_names: label_names.iter().map(|&n| Box::from(n)).collect(),
                index: ArcCell::new(Arc::new(Index::empty())),
                writers: Mutex::new(()),
                make: Box::new(make),
                limit: limit.max(1),
                overflow,
                overflowed: AtomicU64::new(0),
            }),
        }
    }

    /// Runs `f` on the series for `values` (created on first use).
    #[inline]
    pub fn with<R>(&self, values: &[&str], f: impl FnOnce(&M) -> R) -> Result<R, LabelCountError> {
        self.check_len(values)?;
        let hash = hash_values(values);
        let index = self.inner.index.load();
        if let Some(series) = index.find(hash, values) {
            return Ok(f(&series.metric));
        }
        drop(index);
        Ok(self.miss(hash, values, f))
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

    #[cold]
    #[inline(never)]
    fn miss<R>(&self, hash: u64, values: &[&str], f: impl FnOnce(&M) -> R) -> R {
        let inner = &*self.inner;
        // Full already: no lock needed to know the answer.
        if inner.index.load().series.len() >= inner.limit {
            return self.route_to_overflow(f);
        }
        let _w = lock(&inner.writers);
        let current = inner.index.load_full();
        // Another thread may have inserted it while we waited.
        if let Some(series) = current.find(hash, values) {
            return f(&series.metric);
        }
        if current.series.len() >= inner.limit {
            drop(_w);
            return self.route_to_overflow(f);
        }
        let new =
            Arc::new(Series { hash, values: values.iter().map(|&v| Box::from(v)).collect(), metric: (inner.make)() });
        let mut series = current.series.clone();
        series.push(new.clone());
        inner.index.store(Arc::new(Index::build(series)));
        f(&new.metric)
    }

    fn route_to_overflow<R>(&self, f: impl FnOnce(&M) -> R) -> R {
        self.inner.overflowed.fetch_add(1, Ordering::Relaxed);
        f(&self.inner.overflow)
    }

    /// Removes the series for `values`; returns whether it existed.
    pub fn remove(&self, values: &[&str]) -> bool {
        if self.check_len(values).is_err() {
            return false;
        }
        let hash = hash_values(values);
        let _w = lock(&self.inner.writers);
        let current = self.inner.index.load_full();
        let Some(found) = current.find(hash, values) else { return false };
        let series = current.series.iter().filter(|s| !Arc::ptr_eq(s, found)).cloned().collect();
        self.inner.index.store(Arc::new(Index::build(series)));
        true
    }

    /// Removes every series (the overflow count is kept: it is a counter).
    pub fn clear(&self) {
        let _w = lock(&self.inner.writers);
        self.inner.index.store(Arc::new(Index::empty()));
    }

    /// Number of series (the overflow series not included).
    pub fn len(&self) -> usize {
        self.inner.index.load().series.len()
    }

    /// True with no series.
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

impl<M: Metric> Collect for StringFamily<M> {
    fn collect(&self, desc: &Desc, scratch: &mut Scratch, visitor: &mut dyn Visitor) {
        let index = self.inner.index.load_full();
        for &i in &index.sorted {
            let s = &index.series[i as usize];
            let labels = Labels { desc, values: LabelValues::Strings(&s.values) };
            let value = s.metric.sample(scratch);
            visitor.sample(&labels, &value);
        }
        if self.overflowed() > 0 {
            let labels = Labels { desc, values: LabelValues::Same(OVERFLOW_LABEL_VALUE) };
            let value = self.inner.overflow.sample(scratch);
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
    fn wrong_label_count_is_an_error() {
        let f = StringFamily::new(&["a"], Counter::new);
        assert_eq!(f.get(&[]).unwrap_err(), LabelCountError { expected: 1, got: 0 });
        assert!(!f.remove(&["a", "b"]));
    }
}
