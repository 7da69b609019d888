//! What a scrape hands an encoder: [`Visitor`], [`Labels`], [`Value`],
//! [`Scratch`], and the [`Metric`] trait that reads a handle as one sample;
//! a series' pre-rendered sample prefix as encoders see it (`Rendered`;
//! the cache that fills it is in `render`).
//!
//! Owns: the vocabulary between the registry and encoders. A scrape walks
//! families in name order and series in label-value order and hands each
//! sample to a [`Visitor`] by reference, so encoding streams with no
//! allocation per series. Must not: block a recording thread.

use std::fmt;

use crate::desc::{Desc, MetricType};

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
    /// A key kept by a [`StringIndex`](crate::StringIndex), read only if
    /// an encoder asks for the values (text encoders use the rendered
    /// prefix and never do).
    Indexed {
        source: &'a dyn crate::index::KeySource,
        slot: u32,
    },
}

/// The labels of one series: constant labels, then the family's labels.
#[derive(Clone, Copy)]
pub struct Labels<'a> {
    pub(crate) desc: &'a Desc,
    pub(crate) values: LabelValues<'a>,
    /// The sample prefix in exposition syntax, cached per series.
    pub(crate) rendered: Option<Rendered<'a>>,
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
            LabelValues::Joined { key, ends } => joined_value(key, ends, j)?,
            LabelValues::Indexed { source, slot } => {
                let (key, ends) = source.key(slot)?;
                joined_value(key, ends, j)?
            }
            LabelValues::Same(v) => v,
        };
        Some((name, value))
    }

    /// `(name, value)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// The label set as [`write_label_set`](crate::write_label_set) writes it (open, no closing
    /// brace), when the series keeps it cached (labeled families do,
    /// rendered at their first scrape); `None` otherwise, and then the
    /// encoder renders it.
    pub fn rendered(&self) -> Option<&'a [u8]> {
        self.rendered.and_then(|r| r.bytes.get(r.labels_start as usize..r.labels_end as usize))
    }

    /// The whole sample prefix, `family_name{labels} ` (or `family_name `),
    /// when cached: for samples named exactly as the family (counters,
    /// gauges), an encoder writes this and the value.
    pub fn rendered_sample_prefix(&self) -> Option<&'a [u8]> {
        self.rendered.map(|r| r.bytes)
    }
}

/// A series' sample prefix, `name{a="x",b="y"} ` (or `name ` without
/// labels), rendered once, with where its label set starts and ends.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rendered<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) labels_start: u32,
    pub(crate) labels_end: u32,
}

/// Value `j` of a key stored as its values concatenated plus where each
/// value but the last ends.
fn joined_value<'a>(key: &'a str, ends: &[u32], j: usize) -> Option<&'a str> {
    let start = if j == 0 { 0 } else { *ends.get(j - 1)? as usize };
    let end = if j == ends.len() { key.len() } else { *ends.get(j)? as usize };
    key.get(start..end)
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

/// `Metric` for a handle whose sample is one number read with `get()`.
macro_rules! one_number_metric {
    ($($handle:ty => $kind:ident, $value:ident;)*) => {$(
        impl Metric for $handle {
            const TYPE: MetricType = MetricType::$kind;
            fn sample<'a>(&'a self, _: &'a mut Scratch) -> Value<'a> {
                Value::$value(self.get())
            }
        }
    )*};
}

one_number_metric! {
    crate::Counter => Counter, Counter;
    crate::SingleCounter => Counter, Counter;
    crate::FloatCounter => Counter, FloatCounter;
    crate::Gauge => Gauge, Gauge;
    crate::IntGauge => Gauge, IntGauge;
}

impl Metric for crate::TracedCounter {
    const TYPE: MetricType = MetricType::Counter;
    fn sample<'a>(&'a self, _: &'a mut Scratch) -> Value<'a> {
        // The exemplar first: it is at least as old as the total read after it.
        let exemplar = self.exemplar();
        Value::TracedCounter { total: self.get(), exemplar }
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
