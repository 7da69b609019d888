//! [`MetricType`]: the Prometheus type of a metric family, in a leaf module
//! of its own because descriptors, errors and name rules all speak of it.
//!
//! Owns: the four types and their `# TYPE` spelling. Must not: import any
//! other module of the crate (it is what keeps `desc`, `error` and `name`
//! free of an import circle).

use std::fmt;

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
