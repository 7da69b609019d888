//! # hotmeter-metrics
//!
//! A backend for the [`metrics`] facade: every `counter!`, `gauge!` and
//! `histogram!` in a process records into a hotmeter [`Registry`], so the
//! process gets hotmeter's recording speed, its exact exposition and its
//! server without touching a call site.
//!
//! | item | what it is |
//! |---|---|
//! | [`HotmeterRecorder`] | the [`metrics::Recorder`]; [`install`](HotmeterRecorder::install) makes it global |
//! | [`RecorderBuilder`] | histogram bucket layouts by metric name, the per-family cardinality limit, idle expiry by kind ([`MetricKindMask`]) |
//!
//! A facade metric becomes a hotmeter [`StringFamily`] named like the
//! metric, keyed by its labels (sorted by label name, so call sites that
//! list them in another order share series), with the same cardinality cap
//! and overflow series as native families. Counters are sharded
//! [`hotmeter::Counter`]s, gauges [`hotmeter::Gauge`]s, histograms
//! [`hotmeter::Histogram`]s with buckets chosen by name.
//!
//! Names the facade allows but Prometheus does not (`http.requests`,
//! `2xx_total`) are sanitised: every character outside
//! `[a-zA-Z0-9_:]` becomes `_`, and a leading digit gets a `_` in front.
//! Each sanitised name is counted in
//! `hotmeter_metrics_sanitized_names_total{kind="metric"|"label"}`. A name
//! registered again with other label names, or as another type, cannot be
//! exported beside the first: its records go to a detached handle, and each
//! such key is counted once in
//! `hotmeter_metrics_dropped_total{reason="conflict"}`. Nothing panics and
//! nothing is dropped without a count.
//!
//! Series that come and go: [`RecorderBuilder::idle_timeout`] expires idle
//! series of the kinds it names (as `metrics-exporter-prometheus`'s
//! `idle_timeout(MetricKindMask, Option<Duration>)`), with the lifecycle
//! of a native [`StringFamily`]: memory reclaimed, a label set that comes
//! back starts from zero, no record lost to an expiry; and
//! [`HotmeterRecorder::remove_matching`] removes series by label.
//!
//! The facade asks for a handle at every macro call; the recorder answers
//! from a lock-free cache keyed by the call's name and labels, so
//! `counter!("x", "k" => "v").increment(1)` costs a hash, a probe and an
//! `Arc` clone on top of the counter itself.
//!
//! ## Quick start
//! ```
//! let registry = hotmeter::Registry::new();
//! let recorder = hotmeter_metrics::HotmeterRecorder::new(registry.clone());
//! metrics::with_local_recorder(&recorder, || {
//!     metrics::describe_counter!("jobs_total", "Jobs run.");
//!     metrics::counter!("jobs_total", "status" => "ok").increment(2);
//! });
//! let snap = registry.snapshot();
//! assert_eq!(snap.value("jobs_total", &["ok"]), Some(&hotmeter::OwnedValue::Counter(2)));
//! assert_eq!(snap.family("jobs_total").unwrap().desc.help, "Jobs run.");
//! ```
//! One line switches a whole process: `HotmeterRecorder::new(registry).install()?`.
//!
//! ## Features
//! None.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use hotmeter::expose::{Metric, Scratch, Value};
use hotmeter::index::StringIndex;
use hotmeter::{Buckets, Counter, Gauge, Histogram, Registry, SingleCounter, StringFamily};
use metrics::{Key, KeyName, Metadata, SharedString, Unit};

/// Builds a [`HotmeterRecorder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct RecorderBuilder {
    registry: Registry,
    buckets: Vec<(Match, Buckets)>,
    limit: usize,
    idle: IdleTimeouts,
}

/// Which kinds of facade metrics an [`idle timeout`](RecorderBuilder::idle_timeout)
/// applies to (combine with `|`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MetricKindMask(u8);

impl MetricKindMask {
    /// No kind.
    pub const NONE: Self = Self(0);
    /// Counters.
    pub const COUNTER: Self = Self(1);
    /// Gauges.
    pub const GAUGE: Self = Self(2);
    /// Histograms.
    pub const HISTOGRAM: Self = Self(4);
    /// Every kind.
    pub const ALL: Self = Self(7);

    /// Whether every kind in `other` is in `self`.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for MetricKindMask {
    type Output = Self;
    fn bitor(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// The idle timeout of each kind (counter, gauge, histogram).
#[derive(Clone, Copy, Debug, Default)]
struct IdleTimeouts([Option<std::time::Duration>; 3]);

impl IdleTimeouts {
    fn of(&self, kind: MetricKindMask) -> Option<std::time::Duration> {
        match kind {
            MetricKindMask::COUNTER => self.0[0],
            MetricKindMask::GAUGE => self.0[1],
            MetricKindMask::HISTOGRAM => self.0[2],
            _ => None,
        }
    }
}

/// How a bucket layout is chosen for a histogram name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Match {
    Exact(String),
    Prefix(String),
    Suffix(String),
}

impl Match {
    fn matches(&self, name: &str) -> bool {
        match self {
            Self::Exact(s) => name == s,
            Self::Prefix(s) => name.starts_with(s.as_str()),
            Self::Suffix(s) => name.ends_with(s.as_str()),
        }
    }
}

impl RecorderBuilder {
    /// Buckets for the histogram named exactly `name`.
    pub fn buckets_for(mut self, name: impl Into<String>, buckets: Buckets) -> Self {
        self.buckets.push((Match::Exact(name.into()), buckets));
        self
    }

    /// Buckets for histograms whose name starts with `prefix`.
    pub fn buckets_for_prefix(mut self, prefix: impl Into<String>, buckets: Buckets) -> Self {
        self.buckets.push((Match::Prefix(prefix.into()), buckets));
        self
    }

    /// Buckets for histograms whose name ends with `suffix`.
    pub fn buckets_for_suffix(mut self, suffix: impl Into<String>, buckets: Buckets) -> Self {
        self.buckets.push((Match::Suffix(suffix.into()), buckets));
        self
    }

    /// Cardinality limit of each facade metric (default
    /// [`hotmeter::DEFAULT_CARDINALITY_LIMIT`]).
    pub fn cardinality_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Series of the kinds in `mask` expire after `timeout` without a
    /// change (`None`: they never do, the default), and their memory is
    /// reclaimed: the lifecycle of [`hotmeter::StringFamily`], where a
    /// label set that comes back starts from zero. Later calls override
    /// earlier ones for the kinds they name.
    ///
    /// Handles of these kinds are bound to their key, not to a series: each
    /// record looks its series up (lock-free, an epoch pin), so a handle
    /// kept across an expiry records into the series that is live then and
    /// no record is lost to expiry. That costs a lookup per record; kinds
    /// without a timeout keep recording straight into their series.
    ///
    /// # Examples
    /// ```
    /// use hotmeter_metrics::{HotmeterRecorder, MetricKindMask};
    /// use std::time::Duration;
    /// let recorder = HotmeterRecorder::builder(hotmeter::Registry::new())
    ///     .idle_timeout(MetricKindMask::COUNTER | MetricKindMask::GAUGE, Some(Duration::from_secs(300)))
    ///     .build();
    /// # let _ = recorder;
    /// ```
    pub fn idle_timeout(mut self, mask: MetricKindMask, timeout: Option<std::time::Duration>) -> Self {
        for (i, kind) in
            [MetricKindMask::COUNTER, MetricKindMask::GAUGE, MetricKindMask::HISTOGRAM].into_iter().enumerate()
        {
            if mask.contains(kind) {
                self.idle.0[i] = timeout;
            }
        }
        self
    }

    /// The recorder. Rules are tried in the order given (exact first when
    /// several match is the caller's to arrange), then the defaults:
    /// `_seconds` → the Prometheus default buckets, `_bytes` → 64 B × 4ⁿ up
    /// to 16 MiB, anything else → the Prometheus default buckets.
    pub fn build(mut self) -> HotmeterRecorder {
        let bytes = Buckets::exponential(64.0, 4.0, 10).unwrap_or_default();
        self.buckets.push((Match::Suffix("_seconds".into()), Buckets::default()));
        self.buckets.push((Match::Suffix("_bytes".into()), bytes));
        let registry = self.registry;
        let sanitized = registry
            .labeled_family(
                "hotmeter_metrics_sanitized_names_total",
                "Facade metric or label names rewritten to be valid.",
                &["kind"],
                SingleCounter::new,
            )
            .ok();
        let dropped = registry
            .labeled_family(
                "hotmeter_metrics_dropped_total",
                "Facade records that could not be exported, by reason.",
                &["reason"],
                SingleCounter::new,
            )
            .ok();
        HotmeterRecorder {
            inner: Arc::new(Inner {
                registry,
                buckets: self.buckets,
                limit: self.limit,
                idle: self.idle,
                descriptions: Mutex::new(HashMap::new()),
                counters: RwLock::new(HashMap::new()),
                gauges: RwLock::new(HashMap::new()),
                histograms: RwLock::new(HashMap::new()),
                sanitized,
                dropped,
                counter_handles: HandleCache::new(self.limit * 4, self.idle.of(MetricKindMask::COUNTER).is_some()),
                gauge_handles: HandleCache::new(self.limit * 4, self.idle.of(MetricKindMask::GAUGE).is_some()),
                histogram_handles: HandleCache::new(self.limit * 4, self.idle.of(MetricKindMask::HISTOGRAM).is_some()),
            }),
        }
    }
}

/// A [`metrics::Recorder`] that records into a hotmeter [`Registry`].
#[derive(Clone)]
pub struct HotmeterRecorder {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HotmeterRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotmeterRecorder").field("registry", &self.inner.registry).finish_non_exhaustive()
    }
}

/// Families already made, by facade name; the label names are part of the
/// entry so a call site with other labels is noticed.
type Families<M> = RwLock<HashMap<String, (Vec<String>, Option<StringFamily<M>>)>>;

struct Inner {
    registry: Registry,
    buckets: Vec<(Match, Buckets)>,
    limit: usize,
    idle: IdleTimeouts,
    descriptions: Mutex<HashMap<String, (Option<Unit>, String)>>,
    counters: Families<FacadeCounter>,
    gauges: Families<FacadeGauge>,
    histograms: Families<FacadeHistogram>,
    sanitized: Option<StringFamily<SingleCounter>>,
    dropped: Option<StringFamily<SingleCounter>>,
    counter_handles: HandleCache<metrics::Counter>,
    gauge_handles: HandleCache<metrics::Gauge>,
    histogram_handles: HandleCache<metrics::Histogram>,
}

/// Help text of a facade metric recorded before (or without) a `describe_*`.
pub const UNDESCRIBED: &str = "Recorded through the metrics facade; no description was given.";

/// Keys with at most this many labels are served from the handle cache.
const CACHED_LABELS: usize = 8;

/// The facade calls `register_*` at every macro call site execution, so the
/// lookup from a [`Key`] to its handle is the hot path. This cache keys by
/// the name and label pairs exactly as the call site gives them (one index
/// per label count), in the core's lock-free [`StringIndex`]: a hit hashes
/// nothing (the facade's key hash is reused), probes, compares, and clones
/// the handle's `Arc`; no lock, no allocation.
///
/// For kinds that expire, handles are bound to their key (never stale), and
/// the cache reclaims memory: a full cache is emptied and fills again, so
/// keys that come and go never leave it unable to cache.
struct HandleCache<H: Clone + Send + Sync + 'static> {
    by_label_count: Vec<StringIndex<H>>,
}

impl<H: Clone + Send + Sync + 'static> HandleCache<H> {
    fn new(limit: usize, reclaim: bool) -> Self {
        let index = |n: usize| {
            if reclaim {
                StringIndex::reclaiming_with_limit(1 + 2 * n, limit)
            } else {
                StringIndex::with_limit(1 + 2 * n, limit)
            }
        };
        Self { by_label_count: (0..=CACHED_LABELS).map(index).collect() }
    }

    /// Forgets the cached handles of the metric named `name` whose labels
    /// include every one of `matching`'s pairs.
    fn forget(&self, name: &str, matching: &[(&str, &str)]) {
        for cache in &self.by_label_count {
            cache.retain(|parts| {
                let (Some(&first), pairs) = (parts.first(), parts.get(1..).unwrap_or_default()) else { return true };
                let has = |(k, v): (&str, &str)| pairs.chunks_exact(2).any(|p| p[0] == k && p[1] == v);
                !(first == name && matching.iter().all(|&pair| has(pair)))
            });
        }
    }

    /// The cached handle for `key`, made by `make` on first use. Keys with
    /// many labels, or beyond the cache's limit, call `make` every time.
    #[inline]
    fn get(&self, key: &Key, make: impl FnOnce() -> H) -> H {
        // An array of exactly the key's parts, so nothing is zeroed that
        // is not used.
        match key.labels().len() {
            0 => self.lookup::<1>(key, make),
            1 => self.lookup::<3>(key, make),
            2 => self.lookup::<5>(key, make),
            3 => self.lookup::<7>(key, make),
            4 => self.lookup::<9>(key, make),
            5 => self.lookup::<11>(key, make),
            6 => self.lookup::<13>(key, make),
            7 => self.lookup::<15>(key, make),
            8 => self.lookup::<17>(key, make),
            _ => make(),
        }
    }

    /// `N` = 1 + 2 × the key's label count.
    #[inline(always)]
    fn lookup<const N: usize>(&self, key: &Key, make: impl FnOnce() -> H) -> H {
        let Some(cache) = self.by_label_count.get(N / 2) else { return make() };
        let mut parts = [""; N];
        parts[0] = key.name();
        for (i, l) in key.labels().enumerate().take(N / 2) {
            parts[1 + 2 * i] = l.key();
            parts[2 + 2 * i] = l.value();
        }
        let mut make = Some(make);
        // The facade hashed the key already (at compile time for static
        // keys); this cache is only ever searched with that hash.
        let found = cache.get_or_insert_with(
            key.get_hash(),
            &parts,
            || make.take().map_or_else(|| unreachable!("make is taken once"), |m| m()),
            H::clone,
        );
        match (found, make) {
            (Ok(Some(handle)), _) => handle,
            // Beyond the cache's limit: a cache that reclaims starts over
            // (the next call for this key caches it); one that does not
            // makes the handle directly each time.
            (_, Some(m)) => {
                if cache.reclaiming() {
                    cache.clear();
                }
                m()
            }
            (_, None) => unreachable!("make is only taken by an insert"),
        }
    }
}

impl HotmeterRecorder {
    /// A recorder on `registry` with the default bucket rules and limit.
    pub fn new(registry: Registry) -> Self {
        Self::builder(registry).build()
    }

    /// A builder for bucket rules and the cardinality limit.
    pub fn builder(registry: Registry) -> RecorderBuilder {
        RecorderBuilder {
            registry,
            buckets: Vec::new(),
            limit: hotmeter::DEFAULT_CARDINALITY_LIMIT,
            idle: IdleTimeouts::default(),
        }
    }

    /// Makes this the process-wide recorder of the `metrics` facade.
    pub fn install(self) -> Result<(), metrics::SetRecorderError<Self>> {
        metrics::set_global_recorder(self)
    }

    /// The registry it records into.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    fn count(&self, family: &Option<StringFamily<SingleCounter>>, value: &str) {
        if let Some(f) = family {
            let _ = f.with(&[value], |c| c.inc());
        }
    }

    /// Finds or makes the family for `key`, then the series for its label
    /// values, and hands it to `f`.
    fn with_series<M: Metric, R>(
        &self,
        kind: MetricKindMask,
        families: &Families<M>,
        key: &Key,
        make: impl Fn(&str) -> M + Send + Sync + 'static,
        f: impl FnOnce(&StringFamily<M>, &[&str], &M) -> R,
        detached: impl FnOnce() -> R,
    ) -> R {
        // Sorted by label name so every call site agrees on the order.
        let mut labels: Vec<(&str, &str)> = key.labels().map(|l| (l.key(), l.value())).collect();
        labels.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let values: Vec<&str> = labels.iter().map(|l| l.1).collect();
        let found = {
            let map = families.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            match map.get(key.name()) {
                Some((names, fam)) if names.iter().map(String::as_str).eq(labels.iter().map(|l| l.0)) => {
                    Some(fam.clone())
                }
                Some(_) => Some(None),
                None => None,
            }
        };
        let family = match found {
            Some(f) => f,
            None => self.make_family(kind, families, key.name(), &labels, make),
        };
        match family {
            Some(fam) => fam.with(&values, |m| f(&fam, &values, m)).unwrap_or_else(|_| detached()),
            None => {
                self.count(&self.inner.dropped, "conflict");
                detached()
            }
        }
    }

    #[cold]
    fn make_family<M: Metric>(
        &self,
        kind: MetricKindMask,
        families: &Families<M>,
        name: &str,
        labels: &[(&str, &str)],
        make: impl Fn(&str) -> M + Send + Sync + 'static,
    ) -> Option<StringFamily<M>> {
        let mut map = families.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((names, fam)) = map.get(name) {
            let same = names.iter().map(String::as_str).eq(labels.iter().map(|l| l.0));
            return if same { fam.clone() } else { None };
        }
        let export_name = self.sanitize(name, "metric", true);
        let label_names: Vec<String> = labels.iter().map(|l| self.sanitize(l.0, "label", false)).collect();
        let label_refs: Vec<&str> = label_names.iter().map(String::as_str).collect();
        let (unit, help) = self
            .inner
            .descriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned()
            // Prometheus tooling flags families without help text.
            .unwrap_or((None, UNDESCRIBED.to_owned()));
        let mut opts = hotmeter::Opts::new(export_name.clone(), help);
        if let Some(unit) = unit.and_then(|u| hotmeter_unit(&export_name, u)) {
            opts = opts.unit(unit);
        }
        let metric_name = export_name.clone();
        // Memory reclaimed always: series removed through `remove_matching`
        // give their place back for good. The family is looked up only on
        // a handle-cache miss, so its lookups' epoch pins cost the macros
        // nothing.
        let family = StringFamily::builder(&label_refs, move || make(&metric_name))
            .limit(self.inner.limit)
            .idle_timeout(self.inner.idle.of(kind))
            .reclaim_memory()
            .build();
        // A conflict with an existing registration is counted by the caller,
        // once per record, like every later record under this name.
        let registered = self.inner.registry.register(opts, family).ok();
        map.insert(name.to_owned(), (labels.iter().map(|l| l.0.to_owned()).collect(), registered.clone()));
        registered
    }

    /// `name` made valid, counted when it had to change.
    fn sanitize(&self, name: &str, kind: &str, metric: bool) -> String {
        let valid = if metric {
            hotmeter::name::validate_metric_name(name).is_ok()
        } else {
            hotmeter::name::validate_label_name(name).is_ok()
        };
        if valid {
            return name.to_owned();
        }
        self.count(&self.inner.sanitized, kind);
        let mut out: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '_' || (metric && c == ':') { c } else { '_' })
            .collect();
        if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
            out.insert(0, '_');
        }
        if !metric {
            // `__` is reserved for label names.
            while out.starts_with("__") {
                out.replace_range(0..1, "x");
            }
        }
        out
    }

    fn buckets_for(&self, name: &str) -> Buckets {
        self.inner.buckets.iter().find(|(m, _)| m.matches(name)).map(|(_, b)| b.clone()).unwrap_or_default()
    }
}

/// The hotmeter unit for a facade unit, when the exported name carries it
/// (OpenMetrics requires the name to end with the unit).
fn hotmeter_unit(name: &str, unit: Unit) -> Option<hotmeter::Unit> {
    let u = match unit {
        Unit::Seconds => hotmeter::Unit::SECONDS,
        Unit::Bytes => hotmeter::Unit::BYTES,
        _ => return None,
    };
    let stem = name.strip_suffix("_total").unwrap_or(name);
    stem.ends_with(&format!("_{}", u.as_str())).then_some(u)
}

impl metrics::Recorder for HotmeterRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> metrics::Counter {
        self.inner.counter_handles.get(key, || self.make_counter(key))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> metrics::Gauge {
        self.inner.gauge_handles.get(key, || self.make_gauge(key))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> metrics::Histogram {
        self.inner.histogram_handles.get(key, || self.make_histogram(key))
    }
}

impl HotmeterRecorder {
    fn make_counter(&self, key: &Key) -> metrics::Counter {
        self.with_series(
            MetricKindMask::COUNTER,
            &self.inner.counters,
            key,
            |_| FacadeCounter(Arc::new(CounterCell(Counter::new()))),
            |family, values, c| match KeyBound::for_expiring(family, values) {
                Some(bound) => metrics::Counter::from_arc(Arc::new(bound)),
                None => metrics::Counter::from_arc(c.0.clone()),
            },
            || metrics::Counter::from_arc(Arc::new(CounterCell(Counter::new()))),
        )
    }

    fn make_gauge(&self, key: &Key) -> metrics::Gauge {
        self.with_series(
            MetricKindMask::GAUGE,
            &self.inner.gauges,
            key,
            |_| FacadeGauge(Arc::new(GaugeCell(Gauge::new()))),
            |family, values, g| match KeyBound::for_expiring(family, values) {
                Some(bound) => metrics::Gauge::from_arc(Arc::new(bound)),
                None => metrics::Gauge::from_arc(g.0.clone()),
            },
            || metrics::Gauge::from_arc(Arc::new(GaugeCell(Gauge::new()))),
        )
    }

    fn make_histogram(&self, key: &Key) -> metrics::Histogram {
        let buckets = self.buckets_for(key.name());
        self.with_series(
            MetricKindMask::HISTOGRAM,
            &self.inner.histograms,
            key,
            move |_| FacadeHistogram(Arc::new(HistogramCell(Histogram::new(buckets.clone())))),
            |family, values, h| match KeyBound::for_expiring(family, values) {
                Some(bound) => metrics::Histogram::from_arc(Arc::new(bound)),
                None => metrics::Histogram::from_arc(h.0.clone()),
            },
            || metrics::Histogram::from_arc(Arc::new(HistogramCell(Histogram::with_default_buckets()))),
        )
    }

    /// Removes every series of the facade metric `name` (counter, gauge or
    /// histogram) whose labels include each of `matching`'s
    /// `(label, value)` pairs, as the call sites name them; returns how many
    /// were removed. An empty list removes every series of `name`. A label
    /// the metric does not have is an error, and nothing is removed.
    /// Removed series leave the next scrape and give their memory and
    /// their place under the cardinality limit back; a label set recorded
    /// again starts a new series from zero. The removed series' handles
    /// cached for call sites are forgotten.
    ///
    /// Handles held across the removal: for kinds with an idle timeout
    /// they are bound to their key and record into the new series; for the
    /// others they record into the removed series, which nothing exports
    /// any more, until dropped (a call site that asks again, as the macros
    /// do, gets a live one). The handle cache of kinds without a timeout
    /// keeps what it forgets until the recorder drops, and caches at most
    /// twice its size (four times the cardinality limit per label count)
    /// over its life: past that, call sites still record exactly, through
    /// the family, only without the cache.
    ///
    /// # Examples
    /// ```
    /// let registry = hotmeter::Registry::new();
    /// let recorder = hotmeter_metrics::HotmeterRecorder::new(registry.clone());
    /// metrics::with_local_recorder(&recorder, || {
    ///     metrics::counter!("jobs_total", "tenant" => "t1", "kind" => "a").increment(1);
    ///     metrics::counter!("jobs_total", "tenant" => "t2", "kind" => "a").increment(1);
    /// });
    /// assert_eq!(recorder.remove_matching("jobs_total", &[("tenant", "t1")])?, 1);
    /// assert_eq!(registry.snapshot().family("jobs_total").unwrap().series.len(), 1);
    /// # Ok::<(), hotmeter::UnknownLabelError>(())
    /// ```
    pub fn remove_matching(&self, name: &str, matching: &[(&str, &str)]) -> Result<usize, hotmeter::UnknownLabelError> {
        fn remove_in<M: Metric>(
            families: &Families<M>,
            name: &str,
            matching: &[(&str, &str)],
        ) -> Result<usize, hotmeter::UnknownLabelError> {
            let map = families.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some((names, Some(family))) = map.get(name) else { return Ok(0) };
            let mut wanted = Vec::with_capacity(matching.len());
            for &(label, value) in matching {
                let Some(i) = names.iter().position(|n| n == label) else {
                    return Err(hotmeter::UnknownLabelError { name: label.to_owned(), label_names: names.clone() });
                };
                wanted.push((i, value));
            }
            Ok(family.retain(|values| !wanted.iter().all(|&(i, v)| values.get(i) == Some(&v))))
        }
        let removed = remove_in(&self.inner.counters, name, matching)?
            + remove_in(&self.inner.gauges, name, matching)?
            + remove_in(&self.inner.histograms, name, matching)?;
        self.inner.counter_handles.forget(name, matching);
        self.inner.gauge_handles.forget(name, matching);
        self.inner.histogram_handles.forget(name, matching);
        Ok(removed)
    }
}

/// A facade handle bound to its key in a family whose series expire: each
/// record looks its series up, so it always records into the series live
/// for its key (and the expiry protocol of [`StringFamily`] sees every
/// record).
struct KeyBound<M: Metric> {
    family: StringFamily<M>,
    values: Box<[Box<str>]>,
}

impl<M: Metric> KeyBound<M> {
    /// A bound handle when `family` expires its series; `None` otherwise.
    fn for_expiring(family: &StringFamily<M>, values: &[&str]) -> Option<Self> {
        family
            .idle_timeout()
            .map(|_| Self { family: family.clone(), values: values.iter().map(|&v| Box::from(v)).collect() })
    }

    #[inline]
    fn with(&self, f: impl FnOnce(&M)) {
        let n = self.values.len();
        if n <= CACHED_LABELS {
            let mut refs = [""; CACHED_LABELS];
            for (r, v) in refs.iter_mut().zip(self.values.iter()) {
                *r = v;
            }
            let _ = self.family.with(&refs[..n], f);
        } else {
            let refs: Vec<&str> = self.values.iter().map(|v| &**v).collect();
            let _ = self.family.with(&refs, f);
        }
    }
}

impl metrics::CounterFn for KeyBound<FacadeCounter> {
    fn increment(&self, value: u64) {
        self.with(|c| metrics::CounterFn::increment(&*c.0, value));
    }
    fn absolute(&self, value: u64) {
        self.with(|c| metrics::CounterFn::absolute(&*c.0, value));
    }
}

impl metrics::GaugeFn for KeyBound<FacadeGauge> {
    fn increment(&self, value: f64) {
        self.with(|g| metrics::GaugeFn::increment(&*g.0, value));
    }
    fn decrement(&self, value: f64) {
        self.with(|g| metrics::GaugeFn::decrement(&*g.0, value));
    }
    fn set(&self, value: f64) {
        self.with(|g| metrics::GaugeFn::set(&*g.0, value));
    }
}

impl metrics::HistogramFn for KeyBound<FacadeHistogram> {
    fn record(&self, value: f64) {
        self.with(|h| metrics::HistogramFn::record(&*h.0, value));
    }
}

impl HotmeterRecorder {
    /// Remembers help and unit for when the family is made (a description
    /// that arrives after the first record is kept for nothing: the family's
    /// help is fixed at registration).
    fn describe(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner
            .descriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.as_str().to_owned(), (unit, description.into_owned()));
    }
}

/// A hotmeter counter as the facade's [`metrics::CounterFn`].
struct CounterCell(Counter);
/// A hotmeter gauge as the facade's [`metrics::GaugeFn`].
struct GaugeCell(Gauge);
/// A hotmeter histogram as the facade's [`metrics::HistogramFn`].
struct HistogramCell(Histogram);

impl metrics::CounterFn for CounterCell {
    fn increment(&self, value: u64) {
        self.0.inc_by(value);
    }
    /// Raises the counter to `value` if it is below (a counter never goes
    /// down). Racing `absolute` calls may each add their difference; use it
    /// from one writer, as the facade documents.
    fn absolute(&self, value: u64) {
        let current = self.0.get();
        if value > current {
            self.0.inc_by(value - current);
        }
    }
}

impl metrics::GaugeFn for GaugeCell {
    fn increment(&self, value: f64) {
        self.0.add(value);
    }
    fn decrement(&self, value: f64) {
        self.0.sub(value);
    }
    fn set(&self, value: f64) {
        self.0.set(value);
    }
}

impl metrics::HistogramFn for HistogramCell {
    fn record(&self, value: f64) {
        self.0.observe(value);
    }
}

/// A facade counter series: the cell behind the `Arc` the facade's handle
/// needs, made once per series, so a lookup clones an `Arc` and allocates
/// nothing.
#[derive(Clone)]
struct FacadeCounter(Arc<CounterCell>);
/// A facade gauge series.
#[derive(Clone)]
struct FacadeGauge(Arc<GaugeCell>);
/// A facade histogram series.
#[derive(Clone)]
struct FacadeHistogram(Arc<HistogramCell>);

impl Metric for FacadeCounter {
    const TYPE: hotmeter::expose::MetricType = hotmeter::expose::MetricType::Counter;
    fn handle_name() -> String {
        "Counter (recorded through the `metrics` facade)".into()
    }
    fn sample<'a>(&'a self, scratch: &'a mut Scratch) -> Value<'a> {
        self.0.0.sample(scratch)
    }
}

impl Metric for FacadeGauge {
    const TYPE: hotmeter::expose::MetricType = hotmeter::expose::MetricType::Gauge;
    fn handle_name() -> String {
        "Gauge (recorded through the `metrics` facade)".into()
    }
    fn sample<'a>(&'a self, scratch: &'a mut Scratch) -> Value<'a> {
        self.0.0.sample(scratch)
    }
}

impl Metric for FacadeHistogram {
    const TYPE: hotmeter::expose::MetricType = hotmeter::expose::MetricType::Histogram;
    fn sample<'a>(&'a self, scratch: &'a mut Scratch) -> Value<'a> {
        self.0.0.sample(scratch)
    }
    fn same_layout(&self, other: &Self) -> bool {
        self.0.0.buckets() == other.0.0.buckets()
    }
    fn layout(&self) -> String {
        self.0.0.layout()
    }
    fn handle_name() -> String {
        "Histogram (recorded through the `metrics` facade)".into()
    }
}
