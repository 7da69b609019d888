//! The read side of a registry: what encoders, exporters and other readers
//! use to walk a scrape without copying it ([`Visitor`], [`Value`],
//! [`Labels`], [`Desc`]), the reusable buffers that keep a scrape free of
//! per-series allocation ([`Scratch`], [`CounterRun`]), and the byte-level
//! helpers every text encoder shares ([`write_f64`], [`write_label_set`],
//! [`escape_label_value`], [`EscapingScheme`]).
//!
//! Owns nothing of its own: it gathers the read side in one place, as
//! tikv `prometheus` keeps its building blocks in `pub mod core`, so the
//! crate root shows the instruments, the registry and the snapshots a
//! program records into. Must not: be needed to record.
//!
//! A reader starts from [`Registry::collect`](crate::Registry::collect):
//!
//! ```
//! use hotmeter::expose::{Desc, Labels, Value, Visitor};
//!
//! struct Total(u64);
//! impl Visitor for Total {
//!     fn family(&mut self, _desc: &Desc) {}
//!     fn sample(&mut self, _labels: &Labels<'_>, value: &Value<'_>) {
//!         if let Value::Counter(n) = value {
//!             self.0 += n;
//!         }
//!     }
//! }
//!
//! let registry = hotmeter::Registry::new();
//! registry.counter("jobs_total", "Jobs.")?.inc_by(3);
//! let mut total = Total(0);
//! registry.collect(&mut total);
//! assert_eq!(total.0, 3);
//! # Ok::<(), hotmeter::RegistryError>(())
//! ```

pub use crate::desc::{Desc, MetricType};
pub use crate::escape::EscapingScheme;
pub use crate::histogram::{histogram_quantile, histogram_quantile_bound};
pub use crate::registry::Registrable;
pub use crate::render::{escape_label_value, write_f64, write_label_set};
pub use crate::value::{CounterRun, Labels, Metric, Scratch, Value, Visitor};
