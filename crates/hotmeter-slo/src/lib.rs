//! Service-level objectives and trace continuity, read from what a scrape reads.
//!
//! `hotmeter-slo` evaluates objectives from the same registry snapshots an
//! encoder reads, so what the process reports and what Prometheus computes
//! never disagree, and generates the Prometheus rules for the same
//! objectives from the same definitions.
//!
//! | part | type | what it tells you |
//! |---|---|---|
//! | definitions | [`Slo`], [`Indicator`], [`SloError`] | what is good, how much of it, over what window |
//! | evaluation | [`SloTracker`], [`SloReport`], [`SloStatus`] | SLI, met or violated, error budget left, as JSON |
//! | alert rules | [`prometheus_rules`] | recording rules and multi-window burn-rate alerts |
//! | trace continuity | [`TraceTracker`], [`TraceReport`] | which stages a trace passed, incomplete traces by missing stage |
//!
//! Metric names in definitions are written without namespace; a tracker
//! or rule set built with a namespace reads `engram_...` through
//! [`hotmeter::name::full_name`].
//!
//! # Quick start
//! ```
//! use std::time::{Duration, Instant};
//! use hotmeter_slo::{Indicator, Slo, SloTracker};
//!
//! let registry = hotmeter::Registry::new();
//! let writes = registry.labeled_family("writes_total", "Writes.", &["status"], hotmeter::Counter::new)?;
//! let slo = Slo {
//!     name: "availability".into(),
//!     description: "Writes succeed".into(),
//!     indicator: Indicator::Ratio { metric: "writes_total".into(), label: "status".into(), good: vec!["success".into()] },
//!     objective: 0.99,
//!     window: Duration::from_secs(60),
//! };
//! let mut tracker = SloTracker::new(vec![slo], None)?;
//! let t0 = Instant::now();
//! tracker.record(t0, &registry.snapshot());
//! writes.get(&["success"])?.inc_by(999);
//! writes.get(&["error"])?.inc();
//! tracker.record(t0 + Duration::from_secs(10), &registry.snapshot());
//! let report = tracker.report();
//! assert_eq!((report.met(), report.total()), (1, 1));
//! assert_eq!(report.slos[0].sli, 0.999);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Features
//! None.
#![forbid(unsafe_code)]

mod rules;
mod slo;
mod trace;
mod tracker;

pub use rules::prometheus_rules;
pub use slo::{Indicator, Slo, SloError};
pub use trace::{TRACE_INCOMPLETE, TraceReport, TraceTracker, UnknownStage};
pub use tracker::{SloReport, SloStatus, SloTracker};
