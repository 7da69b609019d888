//! Families whose values are computed at scrape time: the public
//! [`Collector`] trait, [`CollectorSeries`] (what a collector writes its
//! series into) and [`CollectError`].
//!
//! Owns: checking every series a collector writes (its label count, a
//! value of the family's type, a histogram's shape, no label set twice)
//! before a scrape's encoder sees it, and the registry's handle on a
//! collector. Must not: record into instruments, or hold a registry lock
//! while a collector runs (it is called from the registry's walk, as any
//! family is, with no lock a recording thread could wait on).

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;

use crate::collect::Collect;
use crate::desc::{Desc, MetricType};
use crate::error::LabelCountError;
use crate::sync::{Arc, Mutex, lock};
use crate::value::{LabelValues, Labels, Scratch, Value, Visitor};

/// A family computed when it is scraped: a connection pool's sizes, a
/// cache's entries, figures read from the operating system or another
/// library. Registered with
/// [`Registry::register_collector`](crate::Registry::register_collector)
/// under a name, a type and label names; removed with
/// [`Registry::unregister`](crate::Registry::unregister).
///
/// `collect` runs on the scraping thread, once per scrape; a slow one
/// delays that scrape, never the workers. It must not scrape the same
/// registry (scrapes of one registry are serialised). One that panics
/// loses the series it had not written yet, for that scrape only: the
/// scrape goes on with the next family.
///
/// # Examples
/// ```
/// use hotmeter::expose::MetricType;
/// use hotmeter::{Collector, CollectorSeries, Registry};
///
/// /// Connections of a pool, by state, read when scraped.
/// struct Pool;
/// impl Collector for Pool {
///     fn collect(&self, out: &mut CollectorSeries<'_>) {
///         // Each call checks its labels and type; nothing here can fail.
///         let _ = out.gauge(&["idle"], 3.0);
///         let _ = out.gauge(&["busy"], 5.0);
///     }
/// }
///
/// let registry = Registry::new();
/// registry.register_collector(("pool_connections", "Pool connections by state."), MetricType::Gauge, &["state"], Pool)?;
/// let snap = registry.snapshot();
/// assert_eq!(snap.value("pool_connections", &["busy"]), Some(&hotmeter::OwnedValue::Gauge(5.0)));
/// # Ok::<(), hotmeter::RegistryError>(())
/// ```
pub trait Collector: Send + Sync + 'static {
    /// Writes this scrape's series of the family into `out`.
    fn collect(&self, out: &mut CollectorSeries<'_>);
}

/// Where a [`Collector`] writes one scrape's series. Each call checks the
/// series and returns a [`CollectError`] instead of writing one an encoder
/// could not take.
pub struct CollectorSeries<'a> {
    desc: &'a Desc,
    visitor: &'a mut dyn Visitor,
    /// Label sets written so far in this scrape.
    seen: &'a mut Seen,
}

/// The label sets a collector has written in one scrape, in buffers kept
/// from scrape to scrape: a steady-state scrape allocates nothing here.
#[derive(Default)]
pub(crate) struct Seen {
    /// Each label set's values, each as its length (4 bytes) then its bytes.
    keys: Vec<u8>,
    /// Where each label set's key ends in `keys` (it starts where the one
    /// before ends), and the next label set of the same hash, if any.
    sets: Vec<(u32, Option<u32>)>,
    /// The first label set of each hash.
    by_hash: HashMap<u64, u32>,
}

impl Seen {
    fn clear(&mut self) {
        self.keys.clear();
        self.sets.clear();
        self.by_hash.clear();
    }

    /// Adds `values`; false if they were added already.
    fn insert(&mut self, values: &[&str]) -> bool {
        let start = self.keys.len();
        for v in values {
            self.keys.extend_from_slice(&(v.len() as u32).to_le_bytes());
            self.keys.extend_from_slice(v.as_bytes());
        }
        let hash = foldhash::fast::FixedState::with_seed(0).hash_one(&self.keys[start..]);
        let mut at = self.by_hash.get(&hash).copied();
        while let Some(i) = at {
            let (end, next) = self.sets[i as usize];
            let begin = if i == 0 { 0 } else { self.sets[i as usize - 1].0 as usize };
            if self.keys[begin..end as usize] == self.keys[start..] {
                self.keys.truncate(start);
                return false;
            }
            at = next;
        }
        let index = self.sets.len() as u32;
        let previous = self.by_hash.insert(hash, index);
        self.sets.push((self.keys.len() as u32, previous));
        true
    }
}

impl fmt::Debug for CollectorSeries<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CollectorSeries")
            .field("family", &self.desc.name)
            .field("written", &self.seen.sets.len())
            .finish()
    }
}

/// Why a [`CollectorSeries`] refused a series (it was not written).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CollectError {
    /// The wrong number of label values for the family's label names.
    LabelCount(LabelCountError),
    /// A value of another type than the family's.
    WrongType {
        /// The family's type.
        family: MetricType,
        /// The type of the value given.
        value: MetricType,
    },
    /// This label set was written already in this scrape.
    Duplicate {
        /// Its label values.
        label_values: Vec<String>,
    },
    /// A counter total that is negative, infinite or NaN.
    InvalidValue {
        /// The value given.
        value: f64,
    },
    /// Histogram bounds that are not finite and strictly increasing, or
    /// counts that are not one per bound plus `+Inf`.
    InvalidHistogram {
        /// What is wrong.
        reason: &'static str,
    },
}

impl fmt::Display for CollectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LabelCount(e) => e.fmt(f),
            Self::WrongType { family, value } => write!(f, "a {value} value in a {family} family"),
            Self::Duplicate { label_values } => write!(f, "label values {label_values:?} written twice in one scrape"),
            Self::InvalidValue { value } => write!(f, "a counter total must be finite and not negative, not {value}"),
            Self::InvalidHistogram { reason } => write!(f, "invalid histogram: {reason}"),
        }
    }
}

impl std::error::Error for CollectError {}

impl CollectorSeries<'_> {
    /// A counter's total (a [`MetricType::Counter`] family).
    pub fn counter(&mut self, label_values: &[&str], total: u64) -> Result<(), CollectError> {
        self.write(label_values, MetricType::Counter, &Value::Counter(total))
    }

    /// A counter's total that is not a whole number (a
    /// [`MetricType::Counter`] family): finite and not negative, as
    /// OpenMetrics requires of a counter.
    pub fn float_counter(&mut self, label_values: &[&str], total: f64) -> Result<(), CollectError> {
        if !(total.is_finite() && total >= 0.0) {
            return Err(CollectError::InvalidValue { value: total });
        }
        self.write(label_values, MetricType::Counter, &Value::FloatCounter(total))
    }

    /// A gauge's value (a [`MetricType::Gauge`] family).
    pub fn gauge(&mut self, label_values: &[&str], value: f64) -> Result<(), CollectError> {
        self.write(label_values, MetricType::Gauge, &Value::Gauge(value))
    }

    /// A gauge's whole-number value (a [`MetricType::Gauge`] family).
    pub fn int_gauge(&mut self, label_values: &[&str], value: i64) -> Result<(), CollectError> {
        self.write(label_values, MetricType::Gauge, &Value::IntGauge(value))
    }

    /// A histogram (a [`MetricType::Histogram`] family): finite, strictly
    /// increasing upper `bounds` (`+Inf` implied), per-bucket counts (not
    /// cumulative, `+Inf` last, so one more than `bounds`) and the sum.
    pub fn histogram(
        &mut self,
        label_values: &[&str],
        bounds: &[f64],
        counts: &[u64],
        sum: f64,
    ) -> Result<(), CollectError> {
        if counts.len() != bounds.len() + 1 {
            return Err(CollectError::InvalidHistogram { reason: "counts must be one per bound, then +Inf" });
        }
        if bounds.iter().any(|b| !b.is_finite()) || bounds.windows(2).any(|w| w[0] >= w[1]) {
            return Err(CollectError::InvalidHistogram { reason: "bounds must be finite and strictly increasing" });
        }
        let count = counts.iter().try_fold(0u64, |a, &c| a.checked_add(c));
        let Some(count) = count else {
            return Err(CollectError::InvalidHistogram { reason: "the counts overflow u64" });
        };
        let value = Value::Histogram { bounds, counts, sum, count, exemplars: &[] };
        self.write(label_values, MetricType::Histogram, &value)
    }

    fn write(&mut self, label_values: &[&str], kind: MetricType, value: &Value<'_>) -> Result<(), CollectError> {
        let expected = self.desc.label_names.len();
        if label_values.len() != expected {
            return Err(CollectError::LabelCount(LabelCountError { expected, got: label_values.len() }));
        }
        if kind != self.desc.kind {
            return Err(CollectError::WrongType { family: self.desc.kind, value: kind });
        }
        if !self.seen.insert(label_values) {
            return Err(CollectError::Duplicate {
                label_values: label_values.iter().map(|v| (*v).to_owned()).collect(),
            });
        }
        let labels =
            Labels { desc: self.desc, values: LabelValues::Borrowed(label_values), rendered: None, created: None };
        self.visitor.sample(&labels, value);
        Ok(())
    }
}

/// A registered [`Collector`] with its type and label names: what the
/// registry holds.
#[derive(Clone)]
pub(crate) struct CollectorFamily {
    kind: MetricType,
    label_names: Vec<String>,
    collector: Arc<dyn Collector>,
    /// Reused by every scrape (scrapes of a registry are serialised, so
    /// this lock is never contended).
    seen: Arc<Mutex<Seen>>,
}

impl CollectorFamily {
    pub(crate) fn new(kind: MetricType, label_names: &[&str], collector: Arc<dyn Collector>) -> Self {
        Self {
            kind,
            label_names: label_names.iter().map(|n| (*n).to_owned()).collect(),
            collector,
            seen: Arc::new(Mutex::new(Seen::default())),
        }
    }

    pub(crate) fn kind(&self) -> MetricType {
        self.kind
    }

    pub(crate) fn label_names(&self) -> &[String] {
        &self.label_names
    }

    /// Two registrations are one family only with the same collector.
    pub(crate) fn same_collector(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.collector, &other.collector)
    }

    /// The collector, in words, for errors.
    pub(crate) fn describe(&self) -> String {
        "a collector".into()
    }
}

impl Collect for CollectorFamily {
    fn collect(&self, desc: &Desc, _scratch: &mut Scratch, visitor: &mut dyn Visitor) {
        let mut seen = lock(&self.seen);
        seen.clear();
        let mut out = CollectorSeries { desc, visitor, seen: &mut seen };
        // A collector that panics loses the rest of its family for this
        // scrape, never the scrape, the registry or a push client's thread:
        // the panic hook has said what happened (stderr by default).
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.collector.collect(&mut out)));
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<Self>()
    }
    fn handle_name(&self) -> String {
        "Collector".into()
    }
}
