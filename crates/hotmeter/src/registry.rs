//! The [`Registry`]: names, help, units, validation, re-registration rules,
//! collect-on-scrape callbacks, and the walk encoders read.
//!
//! Owns: the map from metric names to families. Must not: be touched by a
//! recording thread. Recording goes straight to cells; only registration and
//! scrapes take the registry's locks.

use std::collections::BTreeMap;
use std::fmt;

use crate::collect::Collect;
use crate::desc::{Desc, MetricType, Unit};
use crate::error::{NameError, NameErrorReason, RegistryError, ShapeDifference};
use crate::escape::NameKind;
use crate::escape::{EscapingScheme, NameValidation};
use crate::family::Family;
use crate::histogram::{Buckets, Histogram};
use crate::labels::LabelSet;
use crate::name::{reserved_label_for, validate_label_name_as, validate_metric_name_as};
use crate::snapshot::RegistrySnapshot;
use crate::string_family::StringFamily;
use crate::summary::{Summary, SummaryError, SummaryOpts};
use crate::sync::{Arc, Mutex, lock};
use crate::value::{LabelValues, Labels, Metric, Scratch, Value, Visitor};
use crate::{Counter, Gauge, IntGauge};

/// Name, help and optional unit and constant labels of a metric to register.
///
/// `&str` pairs convert: `registry.register(("jobs_total", "Jobs run."), c)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Opts {
    name: String,
    help: String,
    unit: Option<Unit>,
    const_labels: Vec<(String, String)>,
}

impl Opts {
    /// Name (without namespace) and help text.
    pub fn new(name: impl Into<String>, help: impl Into<String>) -> Self {
        Self { name: name.into(), help: help.into(), unit: None, const_labels: Vec::new() }
    }

    /// Sets the unit (exported as OpenMetrics `# UNIT`).
    pub fn unit(mut self, unit: Unit) -> Self {
        self.unit = Some(unit);
        self
    }

    /// Adds a constant label to every series of this metric.
    pub fn const_label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.const_labels.push((name.into(), value.into()));
        self
    }
}

impl<N: Into<String>, H: Into<String>> From<(N, H)> for Opts {
    fn from((name, help): (N, H)) -> Self {
        Self::new(name, help)
    }
}

mod private {
    use super::*;

    /// What the registry needs of a handle. Sealed: implemented for every
    /// [`Metric`], [`Family`] and [`StringFamily`].
    #[allow(unreachable_pub)]
    pub trait Registrable: Clone + Send + Sync + 'static {
        fn metric_type(&self) -> MetricType;
        fn label_names(&self) -> Vec<String>;
        fn same_layout(&self, other: &Self) -> bool;
        /// What `same_layout` compares, in words, for errors.
        fn layout(&self) -> String;
        /// The handle's name for errors (see `Metric::handle_name`).
        fn handle_name(&self) -> String;
        fn into_collect(self) -> Arc<dyn Collect>;
        /// A string family's cardinality limit; `None` for other handles.
        fn cardinality_limit(&self) -> Option<usize> {
            None
        }
    }
}

/// A handle the registry can hold: every metric type, [`Family`] and
/// [`StringFamily`]. Sealed.
pub trait Registrable: private::Registrable {}
impl<T: private::Registrable> Registrable for T {}

impl<M: Metric> private::Registrable for M {
    fn metric_type(&self) -> MetricType {
        M::TYPE
    }
    fn label_names(&self) -> Vec<String> {
        Vec::new()
    }
    fn same_layout(&self, other: &Self) -> bool {
        Metric::same_layout(self, other)
    }
    fn layout(&self) -> String {
        Metric::layout(self)
    }
    fn handle_name(&self) -> String {
        M::handle_name()
    }
    fn into_collect(self) -> Arc<dyn Collect> {
        Arc::new(self)
    }
}

impl<L: LabelSet, M: Metric> private::Registrable for Family<L, M> {
    fn metric_type(&self) -> MetricType {
        M::TYPE
    }
    fn label_names(&self) -> Vec<String> {
        Self::label_names().into_iter().map(String::from).collect()
    }
    fn same_layout(&self, other: &Self) -> bool {
        Metric::same_layout(self.get_by_index(0), other.get_by_index(0))
    }
    fn layout(&self) -> String {
        Metric::layout(self.get_by_index(0))
    }
    fn handle_name(&self) -> String {
        crate::collect::Collect::handle_name(self)
    }
    fn into_collect(self) -> Arc<dyn Collect> {
        Arc::new(self)
    }
}

impl private::Registrable for crate::collector::CollectorFamily {
    fn metric_type(&self) -> MetricType {
        self.kind()
    }
    fn label_names(&self) -> Vec<String> {
        crate::collector::CollectorFamily::label_names(self).to_vec()
    }
    fn same_layout(&self, other: &Self) -> bool {
        self.same_collector(other)
    }
    fn layout(&self) -> String {
        self.describe()
    }
    fn handle_name(&self) -> String {
        crate::collect::Collect::handle_name(self)
    }
    fn into_collect(self) -> Arc<dyn Collect> {
        Arc::new(self)
    }
}

impl<M: Metric> private::Registrable for StringFamily<M> {
    fn metric_type(&self) -> MetricType {
        M::TYPE
    }
    fn label_names(&self) -> Vec<String> {
        StringFamily::label_names(self).into_iter().map(String::from).collect()
    }
    fn same_layout(&self, other: &Self) -> bool {
        self.ptr_eq(other) || Metric::same_layout(self.overflow_series(), other.overflow_series())
    }
    fn layout(&self) -> String {
        Metric::layout(self.overflow_series())
    }
    fn handle_name(&self) -> String {
        crate::collect::Collect::handle_name(self)
    }
    fn into_collect(self) -> Arc<dyn Collect> {
        Arc::new(self)
    }
    fn cardinality_limit(&self) -> Option<usize> {
        Some(self.limit())
    }
}

/// The registered families, and every name their samples are exposed under.
#[derive(Default)]
struct Families {
    by_name: BTreeMap<String, Entry>,
    /// Exposed name (family or sample, in any format) -> the family that
    /// owns it. Two families may never share one: a scrape would hold two
    /// series of one name, or two families of one name.
    exposed: BTreeMap<String, (String, MetricType)>,
    /// The same under each escaping scheme, in a registry that takes UTF-8
    /// names (empty otherwise: legacy names escape to themselves): a name
    /// that is distinct as registered may not become another family's
    /// name for a scraper that asked for `underscores`, `dots` or `values`.
    escaped: BTreeMap<(EscapingScheme, String), (String, MetricType)>,
    validation: NameValidation,
}

/// Every name a family of `kind` registered as `name` is exposed under, in
/// the text and OpenMetrics formats: its family name(s) and sample names,
/// `_created` included (OpenMetrics reserves it even where we do not
/// write it yet).
fn exposed_names(name: &str, kind: MetricType) -> Vec<String> {
    let with = |suffix: &str| format!("{name}{suffix}");
    match kind {
        MetricType::Counter => {
            // Text: the name as registered. OpenMetrics: the family is the
            // name without `_total`, its samples `<stem>_total`, `<stem>_created`.
            let stem = name.strip_suffix("_total").unwrap_or(name);
            let mut names = vec![name.to_owned(), stem.to_owned(), format!("{stem}_total"), format!("{stem}_created")];
            names.dedup();
            names
        }
        MetricType::Gauge => vec![name.to_owned()],
        MetricType::Histogram => {
            vec![name.to_owned(), with("_bucket"), with("_count"), with("_sum"), with("_created")]
        }
        MetricType::Summary => vec![name.to_owned(), with("_count"), with("_sum"), with("_created")],
    }
}

impl Families {
    /// Refuses `name` if any name it would be exposed under belongs to
    /// another family.
    fn check_exposed_names(&self, name: &str, kind: MetricType) -> Result<(), RegistryError> {
        for exposed in exposed_names(name, kind) {
            if let Some((owner, existing_kind)) = self.exposed.get(&exposed)
                && owner != name
            {
                return Err(RegistryError::NameCollision {
                    name: name.to_owned(),
                    kind,
                    exposed,
                    existing: owner.clone(),
                    existing_kind: *existing_kind,
                });
            }
        }
        Ok(())
    }

    /// Refuses `name` if, under some escaping scheme, a name it would be
    /// exposed under is another family's (UTF-8 registries only).
    fn check_escaped_names(&self, name: &str, kind: MetricType) -> Result<(), RegistryError> {
        if self.validation != NameValidation::Utf8 {
            return Ok(());
        }
        for scheme in EscapingScheme::ESCAPING {
            for escaped in exposed_names(&scheme.escape(name, NameKind::Metric), kind) {
                let key = (scheme, escaped);
                if let Some((owner, _)) = self.escaped.get(&key)
                    && owner != name
                {
                    return Err(RegistryError::EscapingCollision {
                        scheme,
                        kind: NameKind::Metric,
                        metric: String::new(),
                        name: name.to_owned(),
                        existing: owner.clone(),
                        escaped: key.1,
                    });
                }
            }
        }
        Ok(())
    }

    fn reserve_exposed_names(&mut self, name: &str, kind: MetricType) {
        for exposed in exposed_names(name, kind) {
            self.exposed.insert(exposed, (name.to_owned(), kind));
        }
        if self.validation == NameValidation::Utf8 {
            for scheme in EscapingScheme::ESCAPING {
                for escaped in exposed_names(&scheme.escape(name, NameKind::Metric), kind) {
                    self.escaped.insert((scheme, escaped), (name.to_owned(), kind));
                }
            }
        }
    }

    fn release_exposed_names(&mut self, name: &str) {
        self.exposed.retain(|_, (owner, _)| owner != name);
        self.escaped.retain(|_, (owner, _)| owner != name);
    }
}

struct Entry {
    desc: Arc<Desc>,
    collect: Arc<dyn Collect>,
}

type Callback = Arc<dyn Fn() + Send + Sync>;

/// Names a callback added with [`Registry::on_collect`], to remove it with
/// [`Registry::remove_callback`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallbackId(u64);

/// The registry's scrape callbacks.
#[derive(Default)]
struct Callbacks {
    next_id: u64,
    list: Vec<(CallbackId, Callback)>,
}

/// Buffers reused by every scrape.
#[derive(Default)]
struct CollectState {
    scratch: Scratch,
    entries: Vec<(Arc<Desc>, Arc<dyn Collect>)>,
    callbacks: Vec<Callback>,
}

struct Inner {
    namespace: Option<String>,
    validation: NameValidation,
    created_samples: bool,
    /// The idle timeout of string families the registry makes.
    idle_timeout: Option<std::time::Duration>,
    /// The full name of the registry's own overflow counter.
    overflow_name: String,
    const_labels: Vec<(String, String)>,
    families: Mutex<Families>,
    /// Callbacks in the order they were added, each with its id.
    callbacks: Mutex<Callbacks>,
    overflow: Arc<OverflowCollector>,
    collect_state: Mutex<CollectState>,
}

/// Holds metric families by name and walks them for scrapes.
///
/// Cloning is cheap and yields a handle to the same registry.
///
/// Registering a name that exists with the same type, label names, handle
/// type, help, unit and layout returns the existing handle; anything else is
/// a [`RegistryError`] naming the difference.
///
/// Every registration has one of two shapes. A shorthand makes the metric
/// for you and takes the name, the help text, then what shapes the metric:
/// [`counter`](Self::counter)`(name, help)`,
/// [`histogram`](Self::histogram)`(name, help, buckets)`,
/// [`labeled_family`](Self::labeled_family)`(name, help, label_names, make)`
/// and so on. [`register`](Self::register)`(opts, metric)` takes a metric
/// you built and an [`Opts`], the one place for a unit and constant labels
/// (a `(name, help)` pair converts to it); so does
/// [`register_collector`](Self::register_collector).
///
/// # Examples
/// ```
/// use hotmeter::{Registry, Buckets};
/// let registry = Registry::builder().namespace("app").build()?;
/// let jobs = registry.counter("jobs_total", "Jobs run.")?;
/// let again = registry.counter("jobs_total", "Jobs run.")?; // same counter
/// jobs.inc();
/// assert_eq!(again.get(), 1);
/// assert!(registry.gauge("jobs_total", "Jobs run.").is_err()); // type conflict
/// let snap = registry.snapshot();
/// assert_eq!(snap.families[0].desc.name, "app_jobs_total");
/// # Ok::<(), hotmeter::RegistryError>(())
/// ```
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("namespace", &self.inner.namespace)
            .field("const_labels", &self.inner.const_labels)
            .field("families", &lock(&self.inner.families).by_name.len())
            .finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds a [`Registry`] with a namespace prefix and constant labels.
#[derive(Debug, Default, Clone)]
#[must_use]
pub struct RegistryBuilder {
    namespace: Option<String>,
    const_labels: Vec<(String, String)>,
    validation: NameValidation,
    created_samples: bool,
    idle_timeout: Option<std::time::Duration>,
}

impl RegistryBuilder {
    /// Prefix every metric name with `namespace_`.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Add a label to every series of every metric.
    pub fn const_label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.const_labels.push((name.into(), value.into()));
        self
    }

    /// Which metric and label names the registry accepts:
    /// [`NameValidation::Legacy`] (the default) or [`NameValidation::Utf8`]
    /// (Prometheus 3 names such as `http.server.duration`; encoders quote or
    /// escape them per scrape, and registration refuses names whose escaped
    /// forms would collide).
    ///
    /// ```
    /// use hotmeter::{NameValidation, Registry, RegistryError};
    /// let r = Registry::builder().name_validation(NameValidation::Utf8).build()?;
    /// r.counter("jobs.done_total", "Jobs run.")?;
    /// // `jobs_done_total` is what `underscores` makes of the first name.
    /// let e = r.counter("jobs_done_total", "Jobs run.").unwrap_err();
    /// assert!(matches!(e, RegistryError::EscapingCollision { .. }));
    /// assert!(Registry::new().counter("jobs.done_total", "Jobs run.").is_err());
    /// # Ok::<(), RegistryError>(())
    /// ```
    pub fn name_validation(mut self, validation: NameValidation) -> Self {
        self.validation = validation;
        self
    }

    /// The idle timeout of every string family the registry makes
    /// ([`Registry::labeled_family`]): their series expire after `timeout`
    /// without a change, and their memory is reclaimed (see
    /// [`StringFamilyBuilder::idle_timeout`](crate::StringFamilyBuilder::idle_timeout)).
    /// Families built yourself and passed to [`Registry::register`] keep
    /// their own setting. Default: none, series never expire.
    ///
    /// # Examples
    /// ```
    /// let registry = hotmeter::Registry::builder().idle_timeout(std::time::Duration::from_secs(900)).build()?;
    /// let by_tenant = registry.labeled_family("jobs_total", "Jobs.", &["tenant"], hotmeter::Counter::new)?;
    /// assert_eq!(by_tenant.idle_timeout(), Some(std::time::Duration::from_secs(900)));
    /// # Ok::<(), hotmeter::RegistryError>(())
    /// ```
    pub fn idle_timeout(mut self, timeout: impl Into<Option<std::time::Duration>>) -> Self {
        self.idle_timeout = timeout.into();
        self
    }

    /// Whether OpenMetrics output carries a `<name>_created` sample (the
    /// series' creation time, in seconds) for every counter, histogram and
    /// summary. Off by default, as in `client_golang`: Prometheus 2.x stores
    /// each `_created` sample as a series of its own, doubling those
    /// families' series. Protobuf output always carries the creation time
    /// (`created_timestamp`), which Prometheus reads without a new series.
    ///
    /// ```
    /// let r = hotmeter::Registry::builder().created_samples(true).build()?;
    /// assert!(r.created_samples());
    /// # Ok::<(), hotmeter::RegistryError>(())
    /// ```
    pub fn created_samples(mut self, on: bool) -> Self {
        self.created_samples = on;
        self
    }

    /// Validates and builds. Refused: an invalid namespace or constant label
    /// name, a constant label given twice, and a constant label named
    /// `metric`, which the registry's own overflow counter
    /// ([`OVERFLOW_METRIC`]) uses to name a family.
    pub fn build(self) -> Result<Registry, RegistryError> {
        let validation = self.validation;
        if let Some(ns) = &self.namespace {
            validate_metric_name_as(ns, validation)?;
        }
        check_label_names("", self.const_labels.iter().map(|(n, _)| n.as_str()), MetricType::Counter, validation)?;
        // The overflow self-metric is this registry's own: its name and the
        // names it is exposed under are reserved from the start (a user
        // metric can neither take them nor make string families fail
        // later), and its `metric` label must not repeat a constant label.
        let overflow_name = crate::name::full_name(self.namespace.as_deref(), OVERFLOW_METRIC);
        check_label_names(
            &overflow_name,
            self.const_labels.iter().map(|(n, _)| n.as_str()).chain([OVERFLOW_LABEL]),
            MetricType::Counter,
            validation,
        )?;
        let mut families = Families { validation, ..Families::default() };
        families.reserve_exposed_names(&overflow_name, MetricType::Counter);
        Ok(Registry {
            inner: Arc::new(Inner {
                namespace: self.namespace,
                validation,
                created_samples: self.created_samples,
                idle_timeout: self.idle_timeout,
                overflow_name,
                const_labels: self.const_labels,
                families: Mutex::new(families),
                callbacks: Mutex::new(Callbacks::default()),
                overflow: Arc::new(OverflowCollector::default()),
                collect_state: Mutex::new(CollectState::default()),
            }),
        })
    }
}

fn check_label_names<'a>(
    metric: &str,
    names: impl Iterator<Item = &'a str>,
    kind: MetricType,
    validation: NameValidation,
) -> Result<(), RegistryError> {
    let mut seen: Vec<&str> = Vec::new();
    for name in names {
        validate_label_name_as(name, validation)?;
        if reserved_label_for(kind) == Some(name) {
            return Err(NameError::label(name, NameErrorReason::Reserved).into());
        }
        if seen.contains(&name) {
            return Err(RegistryError::DuplicateLabel { metric: metric.to_owned(), label: name.to_owned() });
        }
        seen.push(name);
    }
    if validation == NameValidation::Utf8 {
        check_escaped_label_names(metric, &seen)?;
    }
    Ok(())
}

/// Refuses two label names of one metric that some escaping scheme would
/// write alike (`a.b` and `a_b` under `underscores`).
fn check_escaped_label_names(metric: &str, names: &[&str]) -> Result<(), RegistryError> {
    for scheme in EscapingScheme::ESCAPING {
        let escaped: Vec<_> = names.iter().map(|n| scheme.escape(n, NameKind::Label)).collect();
        for (i, e) in escaped.iter().enumerate() {
            // `._name__` escapes to `__name__` under `underscores`, what every
            // legacy scraper gets: refused as if registered so, or it would
            // read a reserved label (this one renames the series). Not under
            // `dots`, which turns any leading non-ASCII letter into `__`
            // (`é` into `__`) by its definition: refusing those would refuse
            // most UTF-8 label names; a scraper asks for `dots` knowingly.
            if scheme == EscapingScheme::Underscores && e.starts_with("__") {
                return Err(NameError::label(names[i], NameErrorReason::ReservedPrefix).into());
            }
            if let Some(j) = escaped[..i].iter().position(|earlier| earlier == e) {
                return Err(RegistryError::EscapingCollision {
                    scheme,
                    kind: NameKind::Label,
                    metric: metric.to_owned(),
                    name: names[i].to_owned(),
                    existing: names[j].to_owned(),
                    escaped: e.clone().into_owned(),
                });
            }
        }
    }
    Ok(())
}

/// Name of the self-metric counting lookups folded into overflow series.
pub const OVERFLOW_METRIC: &str = "hotmeter_label_overflow_total";

/// The label of [`OVERFLOW_METRIC`] that names the family.
const OVERFLOW_LABEL: &str = "metric";

impl Registry {
    /// An empty registry with no namespace and no constant labels.
    pub fn new() -> Self {
        // Cannot fail: no namespace, no labels.
        match RegistryBuilder::default().build() {
            Ok(r) => r,
            Err(e) => unreachable!("empty builder is valid: {e}"),
        }
    }

    /// A builder for a namespace and constant labels.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }

    /// Whether OpenMetrics output carries `_created` samples
    /// ([`RegistryBuilder::created_samples`]).
    pub fn created_samples(&self) -> bool {
        self.inner.created_samples
    }

    fn full_name(&self, name: &str) -> String {
        crate::name::full_name(self.inner.namespace.as_deref(), name)
    }

    /// Registers `metric` under `opts`, or returns the handle registered
    /// under that name before if it matches in every respect.
    pub fn register<M: Registrable>(&self, opts: impl Into<Opts>, metric: M) -> Result<M, RegistryError> {
        let opts = opts.into();
        let name = self.full_name(&opts.name);
        validate_metric_name_as(&name, self.inner.validation)?;
        let kind = private::Registrable::metric_type(&metric);
        let label_names = private::Registrable::label_names(&metric);
        let mut const_labels = self.inner.const_labels.clone();
        const_labels.extend(opts.const_labels.iter().cloned());
        check_label_names(
            &name,
            const_labels.iter().map(|(n, _)| n.as_str()).chain(label_names.iter().map(String::as_str)),
            kind,
            self.inner.validation,
        )?;
        let desc = Desc::new(name.clone(), opts.help, opts.unit, kind, const_labels, label_names);

        let overflow_name = &self.inner.overflow_name;
        if name == *overflow_name {
            return Err(RegistryError::ReservedName { name });
        }
        let mut families = lock(&self.inner.families);
        if let Some(existing) = families.by_name.get(&name) {
            return Self::reuse(existing, &desc, &metric);
        }
        families.check_exposed_names(&name, kind)?;
        families.check_escaped_names(&name, kind)?;
        let collect = private::Registrable::into_collect(metric.clone());
        if collect.overflowed().is_some() {
            self.inner.overflow.track(&name, collect.clone());
            families.by_name.entry(overflow_name.clone()).or_insert_with(|| Entry {
                desc: Arc::new(Desc::new(
                    overflow_name.clone(),
                    "Lookups of new label sets routed to a family's overflow series because it reached its cardinality limit.".into(),
                    None,
                    MetricType::Counter,
                    self.inner.const_labels.clone(),
                    vec![OVERFLOW_LABEL.into()],
                )),
                collect: self.inner.overflow.clone(),
            });
        }
        families.reserve_exposed_names(&name, kind);
        families.by_name.insert(name, Entry { desc: Arc::new(desc), collect });
        Ok(metric)
    }

    fn reuse<M: Registrable>(existing: &Entry, desc: &Desc, metric: &M) -> Result<M, RegistryError> {
        let name = desc.name.clone();
        if existing.desc.kind != desc.kind {
            return Err(RegistryError::TypeConflict { name, existing: existing.desc.kind, requested: desc.kind });
        }
        if existing.desc.label_names != desc.label_names {
            return Err(RegistryError::ShapeConflict {
                name,
                what: ShapeDifference::Labels {
                    existing: existing.desc.label_names.clone(),
                    requested: desc.label_names.clone(),
                },
            });
        }
        let Some(found) = existing.collect.as_any().downcast_ref::<M>() else {
            let (mut existing_name, mut requested) =
                (existing.collect.handle_name(), private::Registrable::handle_name(metric));
            if existing_name == requested {
                // Two types of one name in two modules: the full names.
                existing_name = existing.collect.type_name().to_owned();
                requested = std::any::type_name::<M>().to_owned();
            }
            return Err(RegistryError::ShapeConflict {
                name,
                what: ShapeDifference::HandleType { existing: existing_name, requested },
            });
        };
        if let (Some(existing_limit), Some(requested)) =
            (private::Registrable::cardinality_limit(found), private::Registrable::cardinality_limit(metric))
            && existing_limit != requested
        {
            return Err(RegistryError::ShapeConflict {
                name,
                what: ShapeDifference::CardinalityLimit { existing: existing_limit, requested },
            });
        }
        let what = if existing.desc.help != desc.help {
            ShapeDifference::Help { existing: existing.desc.help.clone(), requested: desc.help.clone() }
        } else if existing.desc.unit != desc.unit {
            let unit = |u: &Option<Unit>| u.as_ref().map(|u| u.as_str().to_owned());
            ShapeDifference::Unit { existing: unit(&existing.desc.unit), requested: unit(&desc.unit) }
        } else if existing.desc.const_labels != desc.const_labels {
            ShapeDifference::ConstLabels {
                existing: existing.desc.const_labels.clone(),
                requested: desc.const_labels.clone(),
            }
        } else if !private::Registrable::same_layout(found, metric) {
            ShapeDifference::Layout {
                existing: private::Registrable::layout(found),
                requested: private::Registrable::layout(metric),
            }
        } else {
            return Ok(found.clone());
        };
        Err(RegistryError::ShapeConflict { name, what })
    }

    /// Registers (or finds) a sharded [`Counter`].
    pub fn counter(&self, name: &str, help: &str) -> Result<Counter, RegistryError> {
        self.register(Opts::new(name, help), Counter::new())
    }

    /// Registers (or finds) a [`Gauge`].
    pub fn gauge(&self, name: &str, help: &str) -> Result<Gauge, RegistryError> {
        self.register(Opts::new(name, help), Gauge::new())
    }

    /// Registers (or finds) an [`IntGauge`].
    pub fn int_gauge(&self, name: &str, help: &str) -> Result<IntGauge, RegistryError> {
        self.register(Opts::new(name, help), IntGauge::new())
    }

    /// Registers (or finds) a [`Histogram`] with these buckets.
    pub fn histogram(&self, name: &str, help: &str, buckets: Buckets) -> Result<Histogram, RegistryError> {
        self.register(Opts::new(name, help), Histogram::new(buckets))
    }

    /// Registers (or finds) a [`NativeHistogram`](crate::NativeHistogram).
    pub fn native_histogram(
        &self,
        name: &str,
        help: &str,
        opts: crate::NativeOpts,
    ) -> Result<crate::NativeHistogram, RegistryError> {
        self.register(Opts::new(name, help), crate::NativeHistogram::new(opts))
    }

    /// Registers (or finds) a [`Summary`].
    pub fn summary(&self, name: &str, help: &str, opts: SummaryOpts) -> Result<Summary, SummaryOrRegistryError> {
        let s = Summary::new(opts).map_err(SummaryOrRegistryError::Summary)?;
        self.register(Opts::new(name, help), s).map_err(SummaryOrRegistryError::Registry)
    }

    /// Registers (or finds) a typed-label [`Family`] whose series `make`
    /// creates: `registry.typed_family::<Status, _>("writes_total", "Writes.", Counter::new)`.
    /// For a unit or constant labels, register
    /// [`Family::new`] with [`Opts`] through [`register`](Self::register).
    pub fn typed_family<L: LabelSet, M: Metric>(
        &self,
        name: &str,
        help: &str,
        make: impl FnMut() -> M,
    ) -> Result<Family<L, M>, RegistryError> {
        self.register(Opts::new(name, help), Family::new(make))
    }

    /// Registers (or finds) a [`StringFamily`] with these label names and
    /// the default cardinality limit, whose series `make` creates. For a
    /// unit, constant labels or another limit, register
    /// [`StringFamily::new`] (or [`StringFamily::with_limit`]) with [`Opts`]
    /// through [`register`](Self::register).
    ///
    /// # Examples
    /// ```
    /// use hotmeter::{Counter, Registry};
    /// let registry = Registry::new();
    /// let jobs = registry.labeled_family("jobs_total", "Jobs run.", &["kind", "outcome"], Counter::new)?;
    /// jobs.with(&["resize", "ok"], |c| c.inc())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn labeled_family<M: Metric>(
        &self,
        name: &str,
        help: &str,
        label_names: &[&str],
        make: impl Fn() -> M + Send + Sync + 'static,
    ) -> Result<StringFamily<M>, RegistryError> {
        let family = StringFamily::builder(label_names, make).idle_timeout(self.inner.idle_timeout).build();
        self.register(Opts::new(name, help), family)
    }

    /// The old spelling of [`typed_family`](Self::typed_family), with name
    /// and help in one [`Opts`].
    #[deprecated(
        since = "0.1.0",
        note = "use typed_family(name, help, make), or register(opts, Family::new(make)) for a unit or constant labels"
    )]
    pub fn family<L: LabelSet, M: Metric>(
        &self,
        opts: impl Into<Opts>,
        make: impl FnMut() -> M,
    ) -> Result<Family<L, M>, RegistryError> {
        self.register(opts, Family::new(make))
    }

    /// The old spelling of [`labeled_family`](Self::labeled_family), with
    /// name and help in one [`Opts`].
    #[deprecated(
        since = "0.1.0",
        note = "use labeled_family(name, help, label_names, make), or register(opts, StringFamily::new(label_names, make)) for a unit or constant labels"
    )]
    pub fn string_family<M: Metric>(
        &self,
        opts: impl Into<Opts>,
        label_names: &[&str],
        make: impl Fn() -> M + Send + Sync + 'static,
    ) -> Result<StringFamily<M>, RegistryError> {
        self.register(opts, StringFamily::new(label_names, make))
    }

    /// Adds a callback run at the start of every scrape, before any value
    /// is read: the place to refresh gauges from a queue or database. It runs
    /// on the scraping thread with no registry lock held, so it may register
    /// metrics; a slow callback delays the scrape, never the workers. It
    /// must not scrape the same registry itself (`collect`/`snapshot`):
    /// scrapes of one registry are serialised, so that would wait for ever.
    /// Returns the id [`remove_callback`](Self::remove_callback) takes.
    ///
    /// # Examples
    /// ```
    /// let registry = hotmeter::Registry::new();
    /// let depth = registry.int_gauge("queue_depth", "Jobs queued.")?;
    /// let id = registry.on_collect(move || depth.set(7));
    /// assert!(registry.remove_callback(id));
    /// assert!(!registry.remove_callback(id), "removed once");
    /// # Ok::<(), hotmeter::RegistryError>(())
    /// ```
    pub fn on_collect(&self, callback: impl Fn() + Send + Sync + 'static) -> CallbackId {
        let mut callbacks = lock(&self.inner.callbacks);
        let id = CallbackId(callbacks.next_id);
        callbacks.next_id += 1;
        callbacks.list.push((id, Arc::new(callback)));
        id
    }

    /// Removes a callback added with [`on_collect`](Self::on_collect);
    /// returns whether it was there. A scrape already running may still
    /// call it once; later ones do not.
    pub fn remove_callback(&self, id: CallbackId) -> bool {
        let mut callbacks = lock(&self.inner.callbacks);
        let before = callbacks.list.len();
        callbacks.list.retain(|(i, _)| *i != id);
        callbacks.list.len() != before
    }

    /// Registers a family whose series a [`Collector`](crate::Collector)
    /// computes at every scrape, of type `kind` with `label_names` (checked
    /// as any family's). The name takes one collector until it is
    /// [`unregister`](Self::unregister)ed: registering it again is a
    /// [`RegistryError::ShapeConflict`] that says so.
    pub fn register_collector(
        &self,
        opts: impl Into<Opts>,
        kind: MetricType,
        label_names: &[&str],
        collector: impl crate::Collector,
    ) -> Result<(), RegistryError> {
        let family = crate::collector::CollectorFamily::new(kind, label_names, Arc::new(collector));
        match self.register(opts, family) {
            Ok(_) => Ok(()),
            // Two collectors are never one layout (each registration brings
            // its own): say that, not two addresses.
            Err(RegistryError::ShapeConflict { name, what: ShapeDifference::Layout { .. } }) => {
                Err(RegistryError::ShapeConflict {
                    name,
                    what: ShapeDifference::Layout {
                        existing: "a collector".into(),
                        requested: "a second one (a name takes one collector; unregister the first)".into(),
                    },
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Runs the callbacks, then walks every family in name order, and every
    /// series in label-value order, into `visitor`. Never blocks recording;
    /// reuses its buffers, so a steady-state scrape allocates nothing here.
    pub fn collect(&self, visitor: &mut dyn Visitor) {
        let mut state = lock(&self.inner.collect_state);
        let state = &mut *state;
        state.callbacks.extend(lock(&self.inner.callbacks).list.iter().map(|(_, cb)| cb.clone()));
        for cb in state.callbacks.drain(..) {
            // A callback that panics skips its refresh, never the scrape.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb()));
        }
        state.entries.extend(lock(&self.inner.families).by_name.values().map(|e| (e.desc.clone(), e.collect.clone())));
        for (desc, collect) in state.entries.drain(..) {
            visitor.family(&desc);
            collect.collect(&desc, &mut state.scratch, visitor);
        }
    }

    /// An owned copy of everything (allocates; for tests, JSON and people).
    pub fn snapshot(&self) -> RegistrySnapshot {
        let mut s = RegistrySnapshot::default();
        self.collect(&mut s);
        s
    }

    /// Removes a family by full name; returns whether it was removed.
    /// Handles keep working but are no longer exported. The registry's own
    /// overflow counter ([`OVERFLOW_METRIC`]) is never removed (`false`).
    pub fn unregister(&self, full_name: &str) -> bool {
        self.inner.overflow.untrack(full_name);
        if full_name == self.inner.overflow_name {
            return false;
        }
        let mut families = lock(&self.inner.families);
        families.release_exposed_names(full_name);
        families.by_name.remove(full_name).is_some()
    }
}

/// Error of [`Registry::summary`]: bad summary options or a registration error.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SummaryOrRegistryError {
    /// Invalid [`SummaryOpts`].
    Summary(SummaryError),
    /// Registration failed.
    Registry(RegistryError),
}

impl fmt::Display for SummaryOrRegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Summary(e) => e.fmt(f),
            Self::Registry(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SummaryOrRegistryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Summary(e) => Some(e),
            Self::Registry(e) => Some(e),
        }
    }
}

type TrackedFamily = (Box<[Box<str>]>, Arc<dyn Collect>);

/// Exports each string family's overflow count as one series of
/// `hotmeter_label_overflow_total{metric="<family>"}`.
#[derive(Default)]
struct OverflowCollector {
    /// `(family name as a one-element label value list, family)`, sorted.
    families: Mutex<Vec<TrackedFamily>>,
}

impl OverflowCollector {
    fn track(&self, name: &str, family: Arc<dyn Collect>) {
        let mut f = lock(&self.families);
        let key: Box<[Box<str>]> = Box::new([Box::from(name)]);
        let at = f.partition_point(|(k, _)| *k < key);
        f.insert(at, (key, family));
    }

    fn untrack(&self, name: &str) {
        lock(&self.families).retain(|(k, _)| &*k[0] != name);
    }
}

impl Collect for OverflowCollector {
    fn collect(&self, desc: &Desc, _scratch: &mut Scratch, visitor: &mut dyn Visitor) {
        for (key, family) in lock(&self.families).iter() {
            let value = Value::Counter(family.overflowed().unwrap_or(0));
            visitor.sample(&Labels { desc, values: LabelValues::Strings(key), rendered: None, created: None }, &value);
        }
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<Self>()
    }
    fn handle_name(&self) -> String {
        "the registry's overflow counter".into()
    }
}

#[cfg(all(test, not(hotmeter_loom)))]
#[allow(unreachable_pub, dead_code)]
mod tests {
    use super::*;
    use crate::{OwnedValue, SingleCounter};

    crate::label_enum! {
        /// Status.
        pub enum Status: "status" { Success = "success", Error = "error" }
    }

    fn collision(r: &Registry, register: impl FnOnce(&Registry) -> Result<(), RegistryError>) -> (String, String) {
        match register(r) {
            Err(RegistryError::NameCollision { exposed, existing, .. }) => (exposed, existing),
            other => panic!("expected a name collision, got {other:?}"),
        }
    }

    fn structured(r: &Registry, histogram: bool) -> Result<(), RegistryError> {
        if histogram {
            r.histogram("lat", "L.", Buckets::default()).map(drop)
        } else {
            r.summary("lat", "L.", SummaryOpts::default()).map(drop).map_err(|e| match e {
                SummaryOrRegistryError::Registry(e) => e,
                other => panic!("{other:?}"),
            })
        }
    }

    #[test]
    fn colliding_sample_names_are_refused_in_both_orders() {
        for (gauge, histogram) in
            [("lat_count", true), ("lat_bucket", true), ("lat_created", true), ("lat_sum", false), ("lat_count", false)]
        {
            // The histogram or summary first, then the gauge.
            let r = Registry::new();
            structured(&r, histogram).unwrap();
            let (exposed, existing) = collision(&r, |r| r.gauge(gauge, "G.").map(drop));
            assert_eq!((exposed.as_str(), existing.as_str()), (gauge, "lat"));
            // The gauge first, then the histogram or summary.
            let r = Registry::new();
            let _ = r.gauge(gauge, "G.").unwrap();
            let (exposed, existing) = collision(&r, |r| structured(r, histogram));
            assert_eq!((exposed.as_str(), existing.as_str()), (gauge, gauge));
            assert_eq!(r.snapshot().families.len(), 1, "nothing registered by the refused call");
        }
        // A counter `a_total` is the OpenMetrics family `a`: a gauge `a` collides.
        let r = Registry::new();
        let _ = r.counter("a_total", "A.").unwrap();
        assert_eq!(collision(&r, |r| r.gauge("a", "G.").map(drop)).0, "a");
        let r = Registry::new();
        let _ = r.gauge("a", "G.").unwrap();
        assert_eq!(collision(&r, |r| r.counter("a_total", "A.").map(drop)).0, "a");
        // A counter registered without `_total` owns `<name>_total`.
        let r = Registry::new();
        let _ = r.counter("jobs", "J.").unwrap();
        assert_eq!(collision(&r, |r| r.gauge("jobs_total", "G.").map(drop)).0, "jobs_total");
        // A counter cannot take a histogram's sample name either.
        let r = Registry::new();
        let _ = r.histogram("x", "X.", Buckets::default()).unwrap();
        assert_eq!(collision(&r, |r| r.counter("x_count", "C.").map(drop)).0, "x_count");
        // Unregistering frees the names.
        assert!(r.unregister("x"));
        let _ = r.gauge("x_count", "G.").unwrap();
        // A namespace applies before the check.
        let r = Registry::builder().namespace("ns").build().unwrap();
        let _ = r.histogram("lat", "L.", Buckets::default()).unwrap();
        assert_eq!(collision(&r, |r| r.gauge("lat_sum", "G.").map(drop)).0, "ns_lat_sum");
        // Names that only look alike are fine, and the same registration
        // twice is the same handle, not a collision.
        let r = Registry::new();
        let _ = r.histogram("lat", "L.", Buckets::default()).unwrap();
        let _ = r.gauge("lat_counts", "G.").unwrap();
        let _ = r.gauge("latency", "G.").unwrap();
        let _ = r.histogram("lat", "L.", Buckets::default()).unwrap();
        let err = collision(&r, |r| r.gauge("lat_sum", "G.").map(drop));
        assert_eq!(err, ("lat_sum".to_owned(), "lat".to_owned()));
    }

    /// The spellings before `labeled_family`/`typed_family` still compile
    /// (deprecated) and find the very families the new ones registered.
    #[test]
    #[allow(deprecated)]
    fn the_old_family_spellings_still_compile_and_find_the_same_family() {
        let r = Registry::new();
        let new = r.labeled_family("s_total", "S.", &["k"], Counter::new).unwrap();
        let old = r.string_family(("s_total", "S."), &["k"], Counter::new).unwrap();
        assert!(new.ptr_eq(&old));
        assert!(r.string_family(("s_total", "Other."), &["k"], Counter::new).is_err(), "still checked");
        let typed = r.typed_family::<Status, Counter>("w_total", "W.", Counter::new).unwrap();
        let old = r.family::<Status, Counter>(("w_total", "W."), Counter::new).unwrap();
        typed.get(Status::Error).inc();
        assert_eq!(old.get(Status::Error).get(), 1);
    }

    #[test]
    fn a_string_family_with_another_limit_is_a_shape_conflict() {
        let r = Registry::new();
        let first = StringFamily::with_limit(&["id"], 10, Counter::new);
        let _ = r.register(("ids_total", "Ids."), first.clone()).unwrap();
        let again = r.register(("ids_total", "Ids."), StringFamily::with_limit(&["id"], 10, Counter::new)).unwrap();
        assert!(again.ptr_eq(&first), "same limit: the existing family comes back");
        let err = r.register(("ids_total", "Ids."), StringFamily::with_limit(&["id"], 20, Counter::new)).unwrap_err();
        assert_eq!(
            err,
            RegistryError::ShapeConflict {
                name: "ids_total".into(),
                what: ShapeDifference::CardinalityLimit { existing: 10, requested: 20 }
            }
        );
        assert!(err.to_string().contains("cardinality limit 10, not 20"), "{err}");
    }

    #[test]
    fn invalid_names_are_typed_errors() {
        let r = Registry::new();
        let e = r.counter("bad-name", "x").unwrap_err();
        assert!(matches!(&e, RegistryError::InvalidName(n) if n.name == "bad-name"), "{e:?}");
        assert!(std::error::Error::source(&e).is_some());
        let e = r.labeled_family("ok_total", "x", &["1bad"], Counter::new).unwrap_err();
        assert!(matches!(&e, RegistryError::InvalidName(n) if n.name == "1bad"), "{e:?}");
        let e = r.labeled_family("ok2_total", "x", &["a", "a"], Counter::new).unwrap_err();
        assert!(matches!(e, RegistryError::DuplicateLabel { .. }), "{e:?}");
        assert!(Registry::builder().namespace("bad ns").build().is_err());
        assert!(Registry::builder().const_label("__x", "y").build().is_err());
    }

    #[test]
    fn reserved_labels_only_where_they_clash() {
        let r = Registry::new();
        let e = r.register(("h", "x"), StringFamily::new(&["le"], Histogram::with_default_buckets)).unwrap_err();
        assert!(matches!(&e, RegistryError::InvalidName(n) if n.reason == NameErrorReason::Reserved), "{e:?}");
        assert!(r.labeled_family("c_total", "x", &["le"], Counter::new).is_ok());
        let e = r
            .register(("s", "x"), StringFamily::new(&["quantile"], || Summary::new(SummaryOpts::default()).unwrap()))
            .unwrap_err();
        assert!(matches!(e, RegistryError::InvalidName(_)), "{e:?}");
    }

    #[test]
    fn re_registration_rules() {
        let r = Registry::new();
        let a = r.counter("a_total", "A.").unwrap();
        let b = r.counter("a_total", "A.").unwrap();
        a.inc();
        assert_eq!(b.get(), 1);
        assert!(matches!(
            r.gauge("a_total", "A.").unwrap_err(),
            RegistryError::TypeConflict { existing: MetricType::Counter, requested: MetricType::Gauge, .. }
        ));
        assert!(matches!(
            r.register(("a_total", "A."), SingleCounter::new()).unwrap_err(),
            RegistryError::ShapeConflict { what: ShapeDifference::HandleType { .. }, .. }
        ));
        let err = r.counter("a_total", "Other help.").unwrap_err();
        assert_eq!(
            err,
            RegistryError::ShapeConflict {
                name: "a_total".into(),
                what: ShapeDifference::Help { existing: "A.".into(), requested: "Other help.".into() }
            }
        );
        assert_eq!(err.to_string(), r#"metric "a_total" is registered with help "A.", not "Other help.""#);
        assert!(matches!(
            r.labeled_family("a_total", "A.", &["x"], Counter::new).unwrap_err(),
            RegistryError::ShapeConflict { what: ShapeDifference::Labels { .. }, .. }
        ));
        let _h = r.histogram("h_seconds", "H.", Buckets::new([1.0]).unwrap()).unwrap();
        assert!(r.histogram("h_seconds", "H.", Buckets::new([2.0]).unwrap()).is_err());
        assert!(r.histogram("h_seconds", "H.", Buckets::new([1.0]).unwrap()).is_ok());
        let f1 = r.typed_family::<Status, Counter>("w_total", "W.", Counter::new).unwrap();
        let f2 = r.typed_family::<Status, Counter>("w_total", "W.", Counter::new).unwrap();
        f1.get(Status::Error).inc();
        assert_eq!(f2.get(Status::Error).get(), 1);
        let s1 = r.labeled_family("s_total", "S.", &["k"], Counter::new).unwrap();
        let s2 = r.labeled_family("s_total", "S.", &["k"], Counter::new).unwrap();
        assert!(s1.ptr_eq(&s2));
    }

    /// Issue 22, item 2: a conflicting re-registration names what differs
    /// and shows both values, never a private type.
    #[test]
    fn shape_conflicts_show_both_values() {
        let r = Registry::new();
        let seconds = Unit::new("seconds").unwrap();
        let opts = || Opts::new("write_seconds", "Write time.").unit(seconds.clone()).const_label("store", "sqlite");
        let _h = r.register(opts(), Histogram::new(Buckets::new([0.1, 1.0]).unwrap())).unwrap();
        let conflict = |o: Opts, buckets: &[f64]| {
            let err = r.register(o, Histogram::new(Buckets::new(buckets).unwrap())).unwrap_err();
            let RegistryError::ShapeConflict { what, .. } = &err else { panic!("{err:?}") };
            (what.clone(), err.to_string())
        };
        let (what, text) = conflict(Opts::new("write_seconds", "Other.").unit(seconds.clone()), &[0.1, 1.0]);
        assert_eq!(what, ShapeDifference::Help { existing: "Write time.".into(), requested: "Other.".into() });
        assert!(text.contains(r#"help "Write time.", not "Other.""#), "{text}");
        let (what, text) = conflict(Opts::new("write_seconds", "Write time."), &[0.1, 1.0]);
        assert_eq!(what, ShapeDifference::Unit { existing: Some("seconds".into()), requested: None });
        assert!(text.contains(r#"unit "seconds", not no unit"#), "{text}");
        let (what, text) = conflict(opts().const_label("tier", "hot"), &[0.1, 1.0]);
        let store = ("store".to_owned(), "sqlite".to_owned());
        let tier = ("tier".to_owned(), "hot".to_owned());
        assert_eq!(what, ShapeDifference::ConstLabels { existing: vec![store.clone()], requested: vec![store, tier] });
        assert!(text.contains("tier"), "{text}");
        let (what, text) = conflict(opts(), &[0.5]);
        assert_eq!(
            what,
            ShapeDifference::Layout { existing: "buckets [0.1, 1.0]".into(), requested: "buckets [0.5]".into() }
        );
        assert!(text.contains("buckets [0.1, 1.0], not buckets [0.5]"), "{text}");
        assert!(r.register(opts(), Histogram::new(Buckets::new([0.1, 1.0]).unwrap())).is_ok(), "same shape");
        // Handle types by the names their users know.
        let _c = r.counter("jobs_total", "Jobs.").unwrap();
        let err = r.register(("jobs_total", "Jobs."), SingleCounter::new()).unwrap_err();
        assert_eq!(err.to_string(), r#"metric "jobs_total" is registered with handle type Counter, not SingleCounter"#);
        let _f = r.labeled_family("by_total", "By.", &["x"], Counter::new).unwrap();
        let err = r.register(("by_total", "By."), StringFamily::new(&["x"], SingleCounter::new)).unwrap_err();
        assert!(
            err.to_string().ends_with("handle type StringFamily<Counter>, not StringFamily<SingleCounter>"),
            "{err}"
        );
    }

    /// From the review: two label sets of one name from two modules are
    /// told apart by their full type names.
    #[test]
    fn two_types_of_one_name_are_named_in_full() {
        mod a {
            crate::label_enum! { pub enum Status: "status" { Ok = "ok", Err = "error" } }
        }
        mod b {
            crate::label_enum! { pub enum Status: "status" { Success = "success", Failure = "failure" } }
        }
        let r = Registry::new();
        let _x: Family<a::Status, Counter> = r.typed_family("x_total", "X.", Counter::new).unwrap();
        let err = r.typed_family::<b::Status, Counter>("x_total", "X.", Counter::new).unwrap_err();
        let RegistryError::ShapeConflict { what: ShapeDifference::HandleType { existing, requested }, .. } = &err
        else {
            panic!("{err:?}")
        };
        assert_ne!(existing, requested, "{err}");
        assert!(existing.contains("a::Status") && requested.contains("b::Status"), "{err}");
    }

    #[test]
    fn short_type_names_drop_module_paths_only() {
        use crate::value::short_type_name;
        assert_eq!(short_type_name("hotmeter::counter::Counter"), "Counter");
        assert_eq!(
            short_type_name("hotmeter::family::Family<my_app::Status, hotmeter::counter::Counter>"),
            "Family<Status, Counter>"
        );
        assert_eq!(short_type_name("(u8, alloc::string::String)"), "(u8, String)");
    }

    #[test]
    fn collect_orders_and_labels() {
        let r = Registry::builder().namespace("ns").const_label("host", "h1").build().unwrap();
        let f = r.typed_family::<Status, Counter>("writes_total", "W.", Counter::new).unwrap();
        f.get(Status::Success).inc_by(3);
        let s = r.labeled_family("by_space_total", "B.", &["space"], Counter::new).unwrap();
        s.with(&["zeta"], |c| c.inc()).unwrap();
        s.with(&["alpha"], |c| c.inc_by(2)).unwrap();
        let g = r.gauge("a_gauge", "G.").unwrap();
        r.on_collect(move || g.set(42.0));
        let snap = r.snapshot();
        let names: Vec<_> = snap.families.iter().map(|f| f.desc.name.as_str()).collect();
        assert_eq!(names, ["ns_a_gauge", "ns_by_space_total", "ns_hotmeter_label_overflow_total", "ns_writes_total"]);
        assert_eq!(snap.value("ns_a_gauge", &[]), Some(&OwnedValue::Gauge(42.0)));
        let spaces: Vec<_> =
            snap.family("ns_by_space_total").unwrap().series.iter().map(|s| s.labels.clone()).collect();
        assert_eq!(
            spaces,
            vec![
                vec![("host".to_owned(), "h1".to_owned()), ("space".to_owned(), "alpha".to_owned())],
                vec![("host".to_owned(), "h1".to_owned()), ("space".to_owned(), "zeta".to_owned())],
            ]
        );
        // Typed families export every value, sorted by label value.
        let w = snap.family("ns_writes_total").unwrap();
        assert_eq!(w.series.len(), 2);
        assert_eq!(w.series[0].labels[1].1, "error");
        assert_eq!(snap.value("ns_writes_total", &["success"]), Some(&OwnedValue::Counter(3)));
        assert_eq!(
            snap.value("ns_hotmeter_label_overflow_total", &["ns_by_space_total"]),
            Some(&OwnedValue::Counter(0))
        );
    }

    #[test]
    fn overflow_is_exported() {
        let r = Registry::new();
        let s = r.register(("ids_total", "I."), StringFamily::with_limit(&["id"], 2, Counter::new)).unwrap();
        for id in ["a", "b", "c", "d"] {
            s.with(&[id], |c| c.inc()).unwrap();
        }
        let snap = r.snapshot();
        assert_eq!(snap.value(OVERFLOW_METRIC, &["ids_total"]), Some(&OwnedValue::Counter(2)));
        assert_eq!(snap.value("ids_total", &[crate::OVERFLOW_LABEL_VALUE]), Some(&OwnedValue::Counter(2)));
        assert!(r.unregister("ids_total"));
        assert!(r.snapshot().value(OVERFLOW_METRIC, &["ids_total"]).is_none());
    }

    fn utf8() -> Registry {
        Registry::builder().name_validation(NameValidation::Utf8).build().unwrap()
    }

    fn escaping_collision(e: RegistryError) -> (EscapingScheme, NameKind, String, String, String) {
        match e {
            RegistryError::EscapingCollision { scheme, kind, name, existing, escaped, .. } => {
                (scheme, kind, name, existing, escaped)
            }
            other => panic!("expected an escaping collision, got {other:?}"),
        }
    }

    #[test]
    fn utf8_names_only_when_asked_for() {
        let legacy = Registry::new();
        assert!(matches!(legacy.counter("a.b_total", "x"), Err(RegistryError::InvalidName(_))));
        assert!(matches!(
            legacy.labeled_family("ok_total", "x", &["k.v"], Counter::new),
            Err(RegistryError::InvalidName(_))
        ));
        let r = utf8();
        let c = r.counter("http.server.requests_total", "x").unwrap();
        c.inc();
        let _ = r.labeled_family("by_total", "x", &["service.name", "ünïcode"], Counter::new).unwrap();
        assert!(!r.snapshot().family("http.server.requests_total").unwrap().desc.names_are_legacy());
        assert!(r.snapshot().family("hotmeter_label_overflow_total").unwrap().desc.names_are_legacy());
        // Still refused under UTF-8: empty names, the `__` label prefix, `le` on histograms.
        assert!(matches!(r.counter("", "x"), Err(RegistryError::InvalidName(_))));
        let e = r.labeled_family("c_total", "x", &["__k"], Counter::new).unwrap_err();
        assert!(matches!(&e, RegistryError::InvalidName(n) if n.reason == NameErrorReason::ReservedPrefix), "{e:?}");
        assert!(r.register(("h", "x"), StringFamily::new(&["le"], Histogram::with_default_buckets)).is_err());
        assert!(Registry::builder().name_validation(NameValidation::Utf8).namespace("my.app").build().is_ok());
        assert!(Registry::builder().namespace("my.app").build().is_err());
    }

    #[test]
    fn escaping_collisions_of_metric_names_are_refused_in_both_orders() {
        // `a.b` and `a_b` meet under `underscores`.
        let r = utf8();
        let _ = r.gauge("a.b", "x").unwrap();
        let (scheme, kind, name, existing, escaped) = escaping_collision(r.gauge("a_b", "x").unwrap_err());
        assert_eq!((scheme, kind), (EscapingScheme::Underscores, NameKind::Metric));
        assert_eq!((name.as_str(), existing.as_str(), escaped.as_str()), ("a_b", "a.b", "a_b"));
        let r = utf8();
        let _ = r.gauge("a_b", "x").unwrap();
        let (_, _, name, existing, _) = escaping_collision(r.gauge("a.b", "x").unwrap_err());
        assert_eq!((name.as_str(), existing.as_str()), ("a.b", "a_b"));
        // `a.b` and `a/b` meet under underscores too, and `a.b`, `a_dot_b` under dots.
        let r = utf8();
        let _ = r.gauge("a.b", "x").unwrap();
        assert_eq!(escaping_collision(r.gauge("a/b", "x").unwrap_err()).0, EscapingScheme::Underscores);
        let r = utf8();
        let _ = r.gauge("a.b", "x").unwrap();
        let (scheme, _, _, _, escaped) = escaping_collision(r.gauge("a_dot_b", "x").unwrap_err());
        assert_eq!((scheme, escaped.as_str()), (EscapingScheme::Dots, "a_dot_b"));
        // A sample name of a histogram: `l.at` escapes to `l_at`, whose
        // `_count` a gauge `l_at_count` would repeat.
        let r = utf8();
        let _ = r.histogram("l.at", "x", Buckets::default()).unwrap();
        let (_, _, _, existing, escaped) = escaping_collision(r.gauge("l_at_count", "x").unwrap_err());
        assert_eq!((existing.as_str(), escaped.as_str()), ("l.at", "l_at_count"));
        // Distinct under every scheme: fine; re-registration returns the handle;
        // unregistering frees the escaped names.
        let r = utf8();
        let a = r.counter("a.b_total", "x").unwrap();
        let _ = r.counter("a-c_total", "x").unwrap();
        a.inc();
        assert_eq!(r.counter("a.b_total", "x").unwrap().get(), 1);
        assert!(r.unregister("a.b_total"));
        let _ = r.counter("a_b_total", "x").unwrap();
        // The message names both and the scheme.
        let e = r.counter("a?b_total", "x").unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("\"a?b_total\"") && text.contains("\"a_b_total\"") && text.contains("underscores"),
            "{text}"
        );
    }

    #[test]
    fn escaping_collisions_of_label_names_are_refused_within_a_family() {
        let r = utf8();
        let e = r.labeled_family("x_total", "x", &["k.v", "k_v"], Counter::new).unwrap_err();
        let (scheme, kind, name, existing, escaped) = escaping_collision(e.clone());
        assert_eq!((scheme, kind), (EscapingScheme::Underscores, NameKind::Label));
        assert_eq!((name.as_str(), existing.as_str(), escaped.as_str()), ("k_v", "k.v", "k_v"));
        assert!(matches!(e, RegistryError::EscapingCollision { metric, .. } if metric == "x_total"));
        // `:` is not legal in label names: `k:v` escapes to `k_v` too.
        assert!(r.labeled_family("y_total", "x", &["k_v", "k:v"], Counter::new).is_err());
        // Against a constant label of the registry.
        let r =
            Registry::builder().name_validation(NameValidation::Utf8).const_label("host.name", "h").build().unwrap();
        assert!(r.labeled_family("z_total", "x", &["host_name"], Counter::new).is_err());
        // Two families may each have a label the other's escapes to.
        let _ = r.labeled_family("a_total", "x", &["k.v"], Counter::new).unwrap();
        let _ = r.labeled_family("b_total", "x", &["k_v"], Counter::new).unwrap();
        // And the builder checks its own constant labels.
        let b =
            Registry::builder().name_validation(NameValidation::Utf8).const_label("a.b", "1").const_label("a_b", "2");
        assert!(matches!(b.build(), Err(RegistryError::EscapingCollision { .. })));
    }

    #[test]
    fn callbacks_may_register() {
        let r = Registry::new();
        let r2 = r.clone();
        r.on_collect(move || {
            let _ = r2.counter("late_total", "Registered from a callback.");
        });
        assert!(r.snapshot().family("late_total").is_some());
    }
}
