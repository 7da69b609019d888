//! The read side: what encoders see. [`Visitor`], [`Desc`], [`Labels`],
//! [`Value`], the [`Metric`] trait, and the owned [`RegistrySnapshot`].
//!
//! Owns: the vocabulary between the registry and encoders. A scrape walks
//! families in name order and series in label-value order and hands each
//! sample to a [`Visitor`] by reference, so encoding streams with no
//! allocation per series. Must not: block a recording thread.

use std::fmt;

use crate::sync::OnceLock;

use crate::histogram::histogram_quantile as quantile_from_buckets;

/// The Prometheus type of a metric family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MetricType {
    /// Monotonic counter.
    Counter,
    /// Value that goes up and down.
    Gauge,
    /// Bucketed distribution.
    Histogram,
    /// Quantiles over a sliding window, with sum and count.
    Summary,
}

impl MetricType {
    /// The lowercase name used in `# TYPE` lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
            Self::Summary => "summary",
        }
    }
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A metric's unit, as OpenMetrics `# UNIT` spells it (`seconds`, `bytes`).
///
/// The metric name should end with `_<unit>` (before `_total` for counters).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Unit(std::borrow::Cow<'static, str>);

impl Unit {
    /// Seconds.
    pub const SECONDS: Unit = Unit(std::borrow::Cow::Borrowed("seconds"));
    /// Bytes.
    pub const BYTES: Unit = Unit(std::borrow::Cow::Borrowed("bytes"));
    /// A ratio (0..1).
    pub const RATIO: Unit = Unit(std::borrow::Cow::Borrowed("ratio"));

    /// A custom unit; must be a valid label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
    pub fn new(unit: impl Into<String>) -> Result<Self, crate::NameError> {
        let unit = unit.into();
        crate::validate_label_name(&unit)?;
        Ok(Self(std::borrow::Cow::Owned(unit)))
    }

    /// The unit's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Everything that describes a metric family: full name (namespace
/// included), help, unit, type, label names (constant labels first).
///
/// Equality compares what a scrape shows, not the registration identity.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Desc {
    /// This registration's identity, never reused in the process: what
    /// per-series render caches are keyed by (an address could be reused by
    /// the next registration after an `unregister`).
    pub(crate) id: u64,
    /// The full metric name.
    pub name: String,
    /// Help text (unescaped).
    pub help: String,
    /// Unit, if set.
    pub unit: Option<Unit>,
    /// The type.
    pub kind: MetricType,
    /// Constant labels, applied to every series, in registration order.
    pub const_labels: Vec<(String, String)>,
    /// The family's own label names, in declaration order.
    pub label_names: Vec<String>,
}

impl PartialEq for Desc {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.help == other.help
            && self.unit == other.unit
            && self.kind == other.kind
            && self.const_labels == other.const_labels
            && self.label_names == other.label_names
    }
}

impl Desc {
    /// A description with a fresh registration identity.
    pub(crate) fn new(
        name: String,
        help: String,
        unit: Option<Unit>,
        kind: MetricType,
        const_labels: Vec<(String, String)>,
        label_names: Vec<String>,
    ) -> Self {
        Self { id: crate::sync::next_registration_id(), name, help, unit, kind, const_labels, label_names }
    }
}

/// The values of one series' variable labels.
#[derive(Clone, Copy)]
pub(crate) enum LabelValues<'a> {
    None,
    Typed {
        index: usize,
        value: fn(usize, usize) -> &'static str,
    },
    Strings(&'a [Box<str>]),
    /// Values concatenated in `key`, value `i` ending at `ends[i]`.
    Joined {
        key: &'a str,
        ends: &'a [u32],
    },
    /// Every label has this value (the overflow series).
    Same(&'a str),
}

/// The labels of one series: constant labels, then the family's labels.
#[derive(Clone, Copy)]
pub struct Labels<'a> {
    pub(crate) desc: &'a Desc,
    pub(crate) values: LabelValues<'a>,
    /// The sample prefix in exposition syntax, cached per series.
    pub(crate) rendered: Option<&'a Rendered>,
}

/// A series' sample prefix, `name{a="x",b="y"} ` (or `name ` without
/// labels), rendered once, with where its label set starts and ends.
#[derive(Debug)]
pub(crate) struct Rendered {
    bytes: Box<[u8]>,
    labels: std::ops::Range<usize>,
}

/// A series' cached [`Rendered`] prefix, tagged with the registration
/// identity ([`Desc`]'s `id`) it was rendered for. Any other registration
/// of the same handle (a second registry with other constant labels, or a
/// re-registration under a new name after `unregister`) gets `None` and
/// renders on the encoder's slow path: never a stale name.
#[derive(Debug, Default)]
pub(crate) struct RenderCache(OnceLock<(u64, Rendered)>);

impl RenderCache {
    /// The cached rendering for `desc`, rendering it on first use.
    pub(crate) fn get<'a>(&'a self, desc: &Desc, values: LabelValues<'_>) -> Option<&'a Rendered> {
        let id = desc.id;
        let (owner, rendered) = self.0.get_or_init(|| {
            let mut out = Vec::with_capacity(desc.name.len() + 64);
            out.extend_from_slice(desc.name.as_bytes());
            let start = out.len();
            write_label_set(&mut out, &Labels { desc, values, rendered: None });
            let end = out.len();
            out.extend_from_slice(if end > start { b"} " } else { b" " });
            (id, Rendered { bytes: out.into_boxed_slice(), labels: start..end })
        });
        (*owner == id).then_some(rendered)
    }
}

/// Writes a series' label set as the Prometheus text and OpenMetrics
/// formats both spell it: `{name="value",name="value"` with values escaped
/// (`\` `\"` `\n`) and **without** the closing brace, so an encoder can
/// append `le`/`quantile` before closing it. Writes nothing for a series
/// without labels.
///
/// ```
/// let r = hotmeter::Registry::builder().const_label("host", "a\"b").build()?;
/// r.counter("c_total", "C.")?.inc();
/// struct V(Vec<u8>);
/// impl hotmeter::Visitor for V {
///     fn family(&mut self, _: &hotmeter::Desc) {}
///     fn sample(&mut self, labels: &hotmeter::Labels<'_>, _: &hotmeter::Value<'_>) {
///         hotmeter::write_label_set(&mut self.0, labels);
///     }
/// }
/// let mut v = V(Vec::new());
/// r.collect(&mut v);
/// assert_eq!(v.0, br#"{host="a\"b""#);
/// # Ok::<(), hotmeter::RegistryError>(())
/// ```
pub fn write_label_set(out: &mut Vec<u8>, labels: &Labels<'_>) {
    for (i, (name, value)) in labels.iter().enumerate() {
        out.push(if i == 0 { b'{' } else { b',' });
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"=\"");
        escape_label_value(out, value);
        out.push(b'"');
    }
}

/// Escapes a label value for the exposition formats: backslash, double
/// quote and line feed.
pub fn escape_label_value(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    // Fast path: most values need no escaping.
    if !bytes.iter().any(|&b| matches!(b, b'\\' | b'"' | b'\n')) {
        out.extend_from_slice(bytes);
        return;
    }
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
}

impl fmt::Debug for Labels<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a> Labels<'a> {
    /// Number of labels (constant and variable).
    pub fn len(&self) -> usize {
        self.desc.const_labels.len() + self.desc.label_names.len()
    }

    /// True when the series has no labels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Label `i` as `(name, value)`.
    pub fn get(&self, i: usize) -> Option<(&'a str, &'a str)> {
        let consts = &self.desc.const_labels;
        if let Some((n, v)) = consts.get(i) {
            return Some((n, v));
        }
        let j = i - consts.len();
        let name = self.desc.label_names.get(j)?;
        let value = match self.values {
            LabelValues::None => return None,
            LabelValues::Typed { index, value } => value(index, j),
            LabelValues::Strings(v) => v.get(j)?,
            LabelValues::Joined { key, ends } => {
                let start = if j == 0 { 0 } else { *ends.get(j - 1)? as usize };
                key.get(start..*ends.get(j)? as usize)?
            }
            LabelValues::Same(v) => v,
        };
        Some((name, value))
    }

    /// `(name, value)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// The label set as [`write_label_set`] writes it (open, no closing
    /// brace), when the series keeps it cached (labeled families do,
    /// rendered at their first scrape); `None` otherwise, and then the
    /// encoder renders it.
    pub fn rendered(&self) -> Option<&'a [u8]> {
        self.rendered.and_then(|r| r.bytes.get(r.labels.clone()))
    }

    /// The whole sample prefix, `family_name{labels} ` (or `family_name `),
    /// when cached: for samples named exactly as the family (counters,
    /// gauges), an encoder writes this and the value.
    pub fn rendered_sample_prefix(&self) -> Option<&'a [u8]> {
        self.rendered.map(|r| &*r.bytes)
    }
}

/// One sample, borrowed for the duration of a [`Visitor::sample`] call.
///
/// Deliberately exhaustive: a new kind of value must be a compile error in
/// every encoder, never a sample silently skipped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// A counter total.
    Counter(u64),
    /// A counter total with its latest exemplar, if any (OpenMetrics only
    /// carries the exemplar).
    TracedCounter {
        /// The total.
        total: u64,
        /// The latest increment that carried a trace id.
        exemplar: Option<crate::Exemplar>,
    },
    /// A floating-point counter total.
    FloatCounter(f64),
    /// A floating-point gauge.
    Gauge(f64),
    /// An integer gauge.
    IntGauge(i64),
    /// A consistent histogram read.
    Histogram {
        /// Finite upper bounds (`+Inf` implicit).
        bounds: &'a [f64],
        /// Per-bucket counts (not cumulative), the last one `+Inf`.
        counts: &'a [u64],
        /// Sum of observations.
        sum: f64,
        /// Number of observations (`== counts.iter().sum()`).
        count: u64,
        /// The exemplar of each bucket (`+Inf` last), or empty when the
        /// histogram never recorded one. Only OpenMetrics carries them.
        exemplars: &'a [Option<crate::Exemplar>],
    },
    /// A summary read.
    Summary {
        /// `(quantile, value)` pairs, ascending by quantile. A value is NaN
        /// when the window holds no observations.
        quantiles: &'a [(f64, f64)],
        /// Sum of all observations ever.
        sum: f64,
        /// Number of all observations ever.
        count: u64,
    },
}

/// Receives a registry's contents during a scrape, in order: one
/// [`family`](Self::family) call, then its samples.
pub trait Visitor {
    /// Starts a family.
    fn family(&mut self, desc: &Desc);
    /// One series of the current family.
    fn sample(&mut self, labels: &Labels<'_>, value: &Value<'_>);
}

/// Reusable buffers for reading samples, so a scrape allocates nothing per
/// series once they have grown.
#[derive(Debug, Default)]
pub struct Scratch {
    pub(crate) counts: Vec<u64>,
    pub(crate) exemplars: Vec<Option<crate::Exemplar>>,
    pub(crate) quantiles: Vec<(f64, f64)>,
    pub(crate) order: Vec<u32>,
}

/// A metric handle that can be read as one sample.
///
/// Implemented by [`Counter`](crate::Counter),
/// [`SingleCounter`](crate::SingleCounter), [`Gauge`](crate::Gauge),
/// [`IntGauge`](crate::IntGauge), [`Histogram`](crate::Histogram) and
/// [`Summary`](crate::Summary): the types a family can hold.
pub trait Metric: Clone + Send + Sync + 'static {
    /// The Prometheus type.
    const TYPE: MetricType;
    /// Reads the current value; may use `scratch` for buffers.
    fn sample<'a>(&'a self, scratch: &'a mut Scratch) -> Value<'a>;
    /// Whether two handles have the same layout (bucket bounds, quantiles),
    /// so a re-registration can be accepted.
    fn same_layout(&self, _other: &Self) -> bool {
        true
    }
}

impl Metric for crate::Counter {
    const TYPE: MetricType = MetricType::Counter;
    fn sample<'a>(&'a self, _: &'a mut Scratch) -> Value<'a> {
        Value::Counter(self.get())
    }
}

impl Metric for crate::SingleCounter {
    const TYPE: MetricType = MetricType::Counter;
    fn sample<'a>(&'a self, _: &'a mut Scratch) -> Value<'a> {
        Value::Counter(self.get())
    }
}

impl Metric for crate::TracedCounter {
    const TYPE: MetricType = MetricType::Counter;
    fn sample<'a>(&'a self, _: &'a mut Scratch) -> Value<'a> {
        // The exemplar first: it is at least as old as the total read after it.
        let exemplar = self.exemplar();
        Value::TracedCounter { total: self.get(), exemplar }
    }
}

impl Metric for crate::FloatCounter {
    const TYPE: MetricType = MetricType::Counter;
    fn sample<'a>(&'a self, _: &'a mut Scratch) -> Value<'a> {
        Value::FloatCounter(self.get())
    }
}

impl Metric for crate::Gauge {
    const TYPE: MetricType = MetricType::Gauge;
    fn sample<'a>(&'a self, _: &'a mut Scratch) -> Value<'a> {
        Value::Gauge(self.get())
    }
}

impl Metric for crate::IntGauge {
    const TYPE: MetricType = MetricType::Gauge;
    fn sample<'a>(&'a self, _: &'a mut Scratch) -> Value<'a> {
        Value::IntGauge(self.get())
    }
}

impl Metric for crate::Histogram {
    const TYPE: MetricType = MetricType::Histogram;
    fn sample<'a>(&'a self, scratch: &'a mut Scratch) -> Value<'a> {
        // Exemplars first: each is at least as old as the counts read after it.
        self.exemplars_into(&mut scratch.exemplars);
        let (sum, _nan) = self.snapshot_into(&mut scratch.counts);
        let counts = &scratch.counts[..];
        Value::Histogram {
            bounds: self.buckets().bounds(),
            counts,
            sum,
            count: counts.iter().sum(),
            exemplars: &scratch.exemplars,
        }
    }
    fn same_layout(&self, other: &Self) -> bool {
        self.buckets() == other.buckets()
    }
}

/// An owned copy of every family, for tests, JSON and people. Allocates;
/// encoders should use [`Registry::collect`](crate::Registry::collect).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RegistrySnapshot {
    /// Families in name order.
    pub families: Vec<FamilySnapshot>,
}

/// One family in a [`RegistrySnapshot`].
#[derive(Clone, Debug, PartialEq)]
pub struct FamilySnapshot {
    /// Its description.
    pub desc: Desc,
    /// Its series in label-value order.
    pub series: Vec<SeriesSnapshot>,
}

/// One series in a [`FamilySnapshot`].
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesSnapshot {
    /// `(name, value)` pairs, constant labels first.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: OwnedValue,
}

/// An owned [`Value`].
#[derive(Clone, Debug, PartialEq)]
pub enum OwnedValue {
    /// Counter total.
    Counter(u64),
    /// Float counter total.
    FloatCounter(f64),
    /// Float gauge.
    Gauge(f64),
    /// Integer gauge.
    IntGauge(i64),
    /// Histogram.
    Histogram {
        /// Finite bounds.
        bounds: Vec<f64>,
        /// Per-bucket counts, last = `+Inf`.
        counts: Vec<u64>,
        /// Sum.
        sum: f64,
        /// Count.
        count: u64,
    },
    /// Summary.
    Summary {
        /// `(quantile, value)`.
        quantiles: Vec<(f64, f64)>,
        /// Sum.
        sum: f64,
        /// Count.
        count: u64,
    },
}

impl OwnedValue {
    /// For histograms, the `q`-quantile estimated as PromQL's
    /// `histogram_quantile` does; for summaries, the nearest tracked
    /// quantile's value; `None` otherwise or with no data.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        match self {
            Self::Histogram { bounds, counts, .. } => quantile_from_buckets(bounds, counts, q),
            Self::Summary { quantiles, .. } => quantiles
                .iter()
                .min_by(|a, b| (a.0 - q).abs().total_cmp(&(b.0 - q).abs()))
                .map(|&(_, v)| v)
                .filter(|v| !v.is_nan()),
            _ => None,
        }
    }
}

impl From<&Value<'_>> for OwnedValue {
    fn from(v: &Value<'_>) -> Self {
        match *v {
            Value::Counter(c) | Value::TracedCounter { total: c, .. } => Self::Counter(c),
            Value::FloatCounter(c) => Self::FloatCounter(c),
            Value::Gauge(g) => Self::Gauge(g),
            Value::IntGauge(g) => Self::IntGauge(g),
            Value::Histogram { bounds, counts, sum, count, exemplars: _ } => {
                Self::Histogram { bounds: bounds.to_vec(), counts: counts.to_vec(), sum, count }
            }
            Value::Summary { quantiles, sum, count } => Self::Summary { quantiles: quantiles.to_vec(), sum, count },
        }
    }
}

impl Visitor for RegistrySnapshot {
    fn family(&mut self, desc: &Desc) {
        self.families.push(FamilySnapshot { desc: desc.clone(), series: Vec::new() });
    }
    fn sample(&mut self, labels: &Labels<'_>, value: &Value<'_>) {
        if let Some(f) = self.families.last_mut() {
            f.series.push(SeriesSnapshot {
                labels: labels.iter().map(|(n, v)| (n.to_owned(), v.to_owned())).collect(),
                value: value.into(),
            });
        }
    }
}

impl RegistrySnapshot {
    /// The family with this full name.
    pub fn family(&self, name: &str) -> Option<&FamilySnapshot> {
        self.families.iter().find(|f| f.desc.name == name)
    }

    /// The value of the series of `name` whose variable labels are exactly
    /// `labels` (constant labels ignored), in declaration order.
    pub fn value(&self, name: &str, labels: &[&str]) -> Option<&OwnedValue> {
        let fam = self.family(name)?;
        let skip = fam.desc.const_labels.len();
        fam.series
            .iter()
            .find(|s| {
                s.labels.len() == skip + labels.len() && s.labels[skip..].iter().zip(labels).all(|(l, v)| l.1 == *v)
            })
            .map(|s| &s.value)
    }
}
