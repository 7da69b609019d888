//! The owned copy of a scrape: [`RegistrySnapshot`], [`FamilySnapshot`],
//! [`SeriesSnapshot`], [`OwnedValue`].
//!
//! Owns: turning one walk of the registry into owned data, for tests, JSON,
//! status lines and people. Must not: be used by encoders on the scrape
//! path (it allocates per series; they use [`Registry::collect`](crate::Registry::collect)).

use crate::desc::Desc;
use crate::histogram::histogram_quantile as quantile_from_buckets;
use crate::native::NativeBuckets;
use crate::value::{Labels, Value, Visitor};

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
    /// Native histogram, with its classic buckets when it keeps them.
    NativeHistogram {
        /// The native buckets: schema, zero bucket, count, sum, and every
        /// populated bucket ([`NativeBuckets::quantile`], [`NativeBuckets::since`]).
        native: NativeBuckets,
        /// Classic finite bounds kept alongside (empty if none).
        bounds: Vec<f64>,
        /// Classic per-bucket counts, last = `+Inf` (empty if none).
        counts: Vec<u64>,
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
            Self::NativeHistogram { native, .. } => native.quantile(q),
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
            Value::NativeHistogram { native, bounds, counts, exemplars: _ } => {
                Self::NativeHistogram { native: native.into(), bounds: bounds.to_vec(), counts: counts.to_vec() }
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
