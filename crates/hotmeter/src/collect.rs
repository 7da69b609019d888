//! What the registry walks during a scrape: the [`Collect`] trait, and its
//! implementation for a single metric (a family of one unlabeled series).
//!
//! Owns: the object-safe interface between the registry and whatever it
//! holds (metrics, [`Family`](crate::Family), [`StringFamily`](crate::StringFamily)).
//! Must not: record, or hold a lock a recording thread could wait on.

use std::any::Any;

use crate::desc::Desc;
use crate::value::{LabelValues, Labels, Metric, Scratch, Visitor};

/// Something the registry can walk during a scrape. Object safe. `pub` only
/// so the sealed `Registrable` can name it; the module is private.
#[allow(unreachable_pub)]
pub trait Collect: Send + Sync + 'static {
    fn collect(&self, desc: &Desc, scratch: &mut Scratch, visitor: &mut dyn Visitor);
    fn as_any(&self) -> &dyn Any;
    /// The handle's name for errors (see [`Metric::handle_name`]).
    fn handle_name(&self) -> String;
    /// `std::any::type_name` of the handle: for an error about two
    /// different types whose [`handle_name`](Self::handle_name)s agree.
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
        let created = self.created_unix_nanos();
        visitor.sample(&Labels { desc, values: LabelValues::None, rendered: None, created }, &value);
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<Self>()
    }
    fn handle_name(&self) -> String {
        M::handle_name()
    }
}
