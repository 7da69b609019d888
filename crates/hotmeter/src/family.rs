//! Typed-label families: [`Family`], a boxed slice of series indexed by a
//! [`LabelSet`]'s dense index.
//!
//! Owns: one series per possible label value, created up front, their
//! label-value order for scrapes and their rendered prefixes. Must not: take
//! a lock, hash or allocate when recording (a lookup is an array index).

use std::any::Any;
use std::marker::PhantomData;

use crate::collect::Collect;
use crate::desc::Desc;
use crate::labels::LabelSet;
use crate::render::RenderCache;
use crate::sync::Arc;
use crate::value::{LabelValues, Labels, Metric, Scratch, Visitor};

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
            let metric = &self.series[i as usize];
            let labels = Labels { desc, values, rendered, created: metric.created_unix_nanos() };
            let value = metric.sample(scratch);
            visitor.sample(&labels, &value);
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<Self>()
    }
    fn handle_name(&self) -> String {
        format!("Family<{}, {}>", crate::value::short_type_name(std::any::type_name::<L>()), M::handle_name())
    }
}
