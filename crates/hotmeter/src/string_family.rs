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
use crate::index::StringIndex;
use crate::render::write_sample_prefix;
use crate::sync::{Arc, AtomicU64, Mutex, Ordering, lock};
use crate::value::{
    CounterRun, LabelValues, Labels, Metric, PrefixSpan as Span, Scratch, Value, Visitor, planned_labels,
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
            .field("limit", &self.limit())
            .finish_non_exhaustive()
    }
}

struct Inner<M: 'static> {
    label_names: Box<[Box<str>]>,
    make: Box<dyn Fn() -> M + Send + Sync>,
    series: StringIndex<M>,
    overflow: M,
    overflowed: AtomicU64,
    /// What scrapes walk; only scrapes lock it.
    plan: Mutex<ScrapePlan<M>>,
}

/// The live series in label-value order, laid out for a scrape to stream
/// through: every sample prefix (`name{labels} `) in one buffer, a handle
/// to each series' metric beside it. Rebuilt when the set of live series
/// or the registration changes, reusing the prefixes it already has; a
/// scrape of an unchanged family reads memory in order and renders nothing
/// but the values.
struct ScrapePlan<M> {
    /// The index version the plan was built from (`None`: never built).
    version: Option<u64>,
    /// The registration ([`Desc`]'s `id`) the prefixes were rendered for.
    desc_id: u64,
    slots: Vec<u32>,
    metrics: Vec<M>,
    prefixes: Vec<u8>,
    /// Per series: where its prefix ends in `prefixes`, and where its label
    /// set starts and ends within the prefix.
    spans: Vec<Span>,
}

impl<M: Metric> ScrapePlan<M> {
    fn new() -> Self {
        Self {
            version: None,
            desc_id: 0,
            slots: Vec::new(),
            metrics: Vec::new(),
            prefixes: Vec::new(),
            spans: Vec::new(),
        }
    }

    /// Brings the plan up to date with the index and `desc`.
    ///
    /// A series the old plan already had keeps its prefix and its handle,
    /// moved over (a slot's key and metric never change, and live slots
    /// keep their relative order): no entry is read, no handle cloned or
    /// dropped for it, so a scrape after one insert into a large family
    /// costs a pass over the plan, not a re-render of every series.
    fn refresh(&mut self, desc: &Desc, index: &StringIndex<M>, order: &mut Vec<u32>) {
        let seen = if self.desc_id == desc.id { self.version } else { None };
        let Some(version) = index.live_sorted_slots_since(seen, order) else { return };
        let reuse = self.desc_id == desc.id && self.version.is_some();
        // Where each slot sits in the old plan.
        let mut old_at: Vec<u32> = Vec::new();
        if reuse {
            let max = self.slots.iter().copied().max().map_or(0, |m| m as usize + 1);
            old_at.resize(max, u32::MAX);
            for (i, &slot) in self.slots.iter().enumerate() {
                old_at[slot as usize] = i as u32;
            }
        }
        let old_prefixes = std::mem::take(&mut self.prefixes);
        let old_spans = std::mem::take(&mut self.spans);
        // In plan order; a series still live is found at a later position
        // than the previous one still live, so one forward pass hands each
        // its old handle (and drops those of removed series).
        let mut old_metrics = std::mem::take(&mut self.metrics).into_iter().enumerate();
        self.slots.clear();
        self.metrics.reserve(order.len());
        self.spans.reserve(order.len());
        self.prefixes.reserve(old_prefixes.len());
        for &slot in order.iter() {
            let old = old_at.get(slot as usize).copied().filter(|&i| i != u32::MAX).map(|i| i as usize);
            let kept = old.and_then(|i| old_metrics.by_ref().find(|&(j, _)| j >= i).filter(|&(j, _)| j == i));
            let (labels_start, labels_end, metric) = match (old, kept) {
                (Some(i), Some((_, metric))) => {
                    let start = if i == 0 { 0 } else { old_spans[i - 1].end };
                    self.prefixes.extend_from_slice(&old_prefixes[start..old_spans[i].end]);
                    (old_spans[i].labels_start, old_spans[i].labels_end, metric)
                }
                _ => {
                    let Some(entry) = index.entry(slot) else { continue };
                    let (key, ends) = entry.joined_key();
                    let (start, end) = write_sample_prefix(&mut self.prefixes, desc, LabelValues::Joined { key, ends });
                    (start, end, entry.value().clone())
                }
            };
            self.spans.push(Span { end: self.prefixes.len(), labels_start, labels_end });
            self.slots.push(slot);
            self.metrics.push(metric);
        }
        self.version = Some(version);
        self.desc_id = desc.id;
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
        Self {
            inner: Arc::new(Inner {
                label_names: label_names.iter().map(|&n| Box::from(n)).collect(),
                make: Box::new(make),
                series: StringIndex::with_limit(label_names.len(), limit),
                overflow,
                overflowed: AtomicU64::new(0),
                plan: Mutex::new(ScrapePlan::new()),
            }),
        }
    }

    /// Runs `f` on the series for `values` (created on first use).
    ///
    /// A label set whose every value is [`OVERFLOW_LABEL_VALUE`] is the
    /// overflow series' own: it is routed there and counted as overflow,
    /// never created as a second series with the same labels.
    #[inline]
    pub fn with<R>(&self, values: &[&str], f: impl FnOnce(&M) -> R) -> Result<R, LabelCountError> {
        let hash = StringIndex::<M>::hash(values);
        if let Some(series) = self.inner.series.find(hash, values)? {
            return Ok(f(series));
        }
        Ok(self.with_cold(values, f))
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
        let inner = &*self.inner;
        // Scrapes of one family take turns on its plan; recording threads
        // never touch it, and inserts only wait for the short copy of the
        // order inside `refresh`.
        let mut plan_guard = lock(&inner.plan);
        let mut order = std::mem::take(&mut scratch.order);
        plan_guard.refresh(desc, &inner.series, &mut order);
        scratch.order = order;
        let plan = &*plan_guard;
        // Plain counters go over as one run: their values read in one
        // tight loop, then handed to the visitor with the prefixes.
        if matches!(M::TYPE, crate::metric_type::MetricType::Counter) {
            let mut values = std::mem::take(&mut scratch.values);
            let mut created = std::mem::take(&mut scratch.created);
            values.clear();
            created.clear();
            for metric in &plan.metrics {
                match metric.sample(scratch) {
                    Value::Counter(v) => {
                        values.push(v);
                        // On the line the value was just read from.
                        created.push(metric.created_unix_nanos().unwrap_or(0));
                    }
                    _ => break,
                }
            }
            if values.len() == plan.metrics.len() {
                visitor.counters(&CounterRun {
                    desc,
                    prefixes: &plan.prefixes,
                    spans: &plan.spans,
                    values: &values,
                    created: &created,
                    source: &inner.series,
                    slots: &plan.slots,
                });
                scratch.values = values;
                scratch.created = created;
                return self.collect_overflow(desc, scratch, visitor);
            }
            scratch.values = values;
            scratch.created = created;
        }
        // One line per series for the one-number kinds: prefix, value
        // (at most 20 digits, or a float), newline.
        if matches!(M::TYPE, crate::metric_type::MetricType::Gauge) {
            visitor.size_hint(plan.prefixes.len() + plan.spans.len() * 22);
        }
        for (i, (metric, &slot)) in plan.metrics.iter().zip(&plan.slots).enumerate() {
            let labels =
                planned_labels(desc, &plan.prefixes, &plan.spans, i, &inner.series, slot, metric.created_unix_nanos());
            let value = metric.sample(scratch);
            visitor.sample(&labels, &value);
        }
        drop(plan_guard);
        self.collect_overflow(desc, scratch, visitor)
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
        f.with(&["a\"\n", "2"], |c| c.inc()).unwrap();
        assert_eq!(scrape(&r).len(), 4);
        assert_eq!(scrape(&r)[1], "t_total{k=\"a\\\"\\n\",j=\"2\"} |{k=\"a\\\"\\n\",j=\"2\"|k=a\"\n,j=2|2");
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
    fn removed_series_resume_and_distinct_sets_are_capped() {
        let f = StringFamily::with_limit(&["id"], 2, SingleCounter::new);
        f.with(&["a"], |c| c.inc_by(5)).unwrap();
        assert_eq!(f.remove(&["a"]), Ok(true));
        assert_eq!(f.len(), 0);
        f.with(&["a"], |c| c.inc()).unwrap();
        assert_eq!(f.get(&["a"]).unwrap().get(), 6, "a returning label set resumes its series");
        // Churn through distinct label sets: at most 2 x limit are remembered.
        for i in 0..10 {
            let id = format!("churn-{i}");
            f.with(&[&id], |c| c.inc()).unwrap();
            f.remove(&[&id]).unwrap();
        }
        assert_eq!(f.inner.series.remembered(), 4);
        assert_eq!(f.overflowed(), 7);
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
