//! Service-level objective definitions: what is good, how much of it, over
//! what window.
//!
//! Owns: [`Slo`], [`Indicator`] and their validation ([`SloError`]). Must
//! not: read metrics or write rules — [`SloTracker`](crate::SloTracker)
//! evaluates definitions, [`prometheus_rules`](crate::prometheus_rules)
//! turns them into alerts.
//!
//! Every SLO is a ratio of good events to all events:
//! - [`Indicator::Ratio`]: a counter family split by a label (`status="success"` good);
//! - [`Indicator::Latency`]: a histogram's observations at or below a
//!   threshold, interpolated linearly inside the bucket that holds it (the
//!   model `histogram_quantile` uses), so "P95 <= 400 ms" is "at least 95%
//!   of observations at or below 0.4 s". A native histogram is evaluated
//!   from its exponential buckets, not the classic ones it may keep.

use std::time::Duration;

/// What counts as a good event.
#[derive(Debug, Clone, PartialEq)]
pub enum Indicator {
    /// Events of a counter family; those whose `label` is one of `good` are good.
    Ratio {
        /// Counter family name, without namespace.
        metric: String,
        /// The label that classifies events.
        label: String,
        /// Its good values.
        good: Vec<String>,
    },
    /// Observations of a histogram at or below `threshold`.
    Latency {
        /// Histogram family name (seconds), without namespace.
        histogram: String,
        /// The latency bound, in seconds.
        threshold: f64,
        /// The histogram's classic bucket bounds (for the generated rules,
        /// which read `_bucket` series; in-process evaluation reads the
        /// snapshot's own buckets).
        bounds: Vec<f64>,
    },
}

/// One objective: at least `objective` of events good over `window`.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    /// A short kebab-case name: `checkpoint-availability`.
    pub name: String,
    /// One sentence for people.
    pub description: String,
    /// What is measured.
    pub indicator: Indicator,
    /// Target good fraction, in (0, 1): 0.995 for 99.5%.
    pub objective: f64,
    /// The evaluation window.
    pub window: Duration,
}

/// A definition that cannot be evaluated.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SloError {
    /// The name is not lowercase letters, digits and dashes.
    InvalidName(String),
    /// The objective is not strictly between 0 and 1.
    InvalidObjective(f64),
    /// The window is zero.
    EmptyWindow,
    /// A latency threshold that is not finite and positive, or bounds not increasing.
    InvalidThreshold(f64),
}

impl std::fmt::Display for SloError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SloError::InvalidName(n) => write!(f, "invalid SLO name {n:?}: use lowercase letters, digits and dashes"),
            SloError::InvalidObjective(o) => write!(f, "invalid SLO objective {o}: must be strictly between 0 and 1"),
            SloError::EmptyWindow => f.write_str("an SLO window must be longer than zero"),
            SloError::InvalidThreshold(t) => {
                write!(f, "invalid latency threshold {t}: must be finite and > 0, with increasing bucket bounds")
            }
        }
    }
}

impl std::error::Error for SloError {}

impl Slo {
    /// Checks the definition.
    pub fn validate(&self) -> Result<(), SloError> {
        let name_ok = !self.name.is_empty()
            && self.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && self.name.starts_with(|c: char| c.is_ascii_lowercase());
        if !name_ok {
            return Err(SloError::InvalidName(self.name.clone()));
        }
        if !(self.objective > 0.0 && self.objective < 1.0) {
            return Err(SloError::InvalidObjective(self.objective));
        }
        if self.window.is_zero() {
            return Err(SloError::EmptyWindow);
        }
        if let Indicator::Latency { threshold, bounds, .. } = &self.indicator {
            let increasing = bounds.windows(2).all(|w| w[0] < w[1]) && bounds.iter().all(|b| b.is_finite());
            if !(threshold.is_finite() && *threshold > 0.0 && increasing && !bounds.is_empty()) {
                return Err(SloError::InvalidThreshold(*threshold));
            }
        }
        Ok(())
    }

    pub(crate) fn snake(&self) -> String {
        self.name.replace('-', "_")
    }

    pub(crate) fn camel(&self) -> String {
        self.name.split('-').map(|w| w[..1].to_uppercase() + &w[1..]).collect()
    }
}
