//! The next decision, once checkpoints live in PostgreSQL: is one server
//! still enough, or is it time to scale out?
//!
//! Owns: the PostgreSQL store's inputs ([`ScaleMetrics`]), thresholds
//! ([`ScaleThresholds`]) and rule ([`should_scale_out`]), built as the
//! SQLite decision is: every reason that applies, strongest first,
//! exclusive boundaries, a sentence a person can act on. Must not: guess —
//! an input that cannot be had is an error, never a silent "sufficient".
//!
//! | verdict | when (defaults) |
//! |---|---|
//! | **SCALE OUT NOW** | write errors > 1%, or p99 write (commit) latency > 50 ms, or the pool > 90% busy |
//! | **PLAN SCALE-OUT** | p99 write latency > 20 ms, or the pool > 70% busy, or > 2,000 writes/s |
//! | **POSTGRESQL SUFFICIENT** | none of the above |
//!
//! ```
//! use hotmeter_checkpoint::decision::{ScaleMetrics, ScaleThresholds, ScaleVerdict, should_scale_out};
//! let m = ScaleMetrics::new(0.0, 420.0, 0.035, 0.25)?;
//! let d = should_scale_out(&m, &ScaleThresholds::default());
//! assert_eq!(d.verdict, ScaleVerdict::PlanScaleOut);
//! assert_eq!(d.reasons[0].to_string(), "PLAN SCALE-OUT - p99 write latency >20 ms");
//! # Ok::<(), hotmeter_checkpoint::decision::InvalidInput>(())
//! ```

use std::fmt;
use std::time::SystemTime;

use super::{InvalidInput, capitalise, check, num};

/// What the PostgreSQL decision is made from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaleMetrics {
    /// Failed checkpoint writes as a percentage of all writes (0 to 100).
    pub error_rate_percent: f64,
    /// Checkpoint writes per second, successes and failures.
    pub writes_per_second: f64,
    /// 99th percentile of one write (a durable commit), in seconds.
    pub p99_write_seconds: f64,
    /// Share of the connection pool in use, 0 to 1, averaged over the window.
    pub pool_busy_fraction: f64,
    /// When the inputs were measured.
    pub timestamp: SystemTime,
}

impl ScaleMetrics {
    /// Validated inputs, timestamped now.
    pub fn new(
        error_rate_percent: f64,
        writes_per_second: f64,
        p99_write_seconds: f64,
        pool_busy_fraction: f64,
    ) -> Result<Self, InvalidInput> {
        Ok(ScaleMetrics {
            error_rate_percent: check("error_rate_percent", error_rate_percent, 100.0)?,
            writes_per_second: check("writes_per_second", writes_per_second, f64::MAX)?,
            p99_write_seconds: check("p99_write_seconds", p99_write_seconds, f64::MAX)?,
            pool_busy_fraction: check("pool_busy_fraction", pool_busy_fraction, 1.0)?,
            timestamp: SystemTime::now(),
        })
    }

    /// `Error rate: 0.00%  Throughput: 420.0 writes/sec  p99 write: 35.0 ms  Pool busy: 25%`
    pub fn summary(&self) -> String {
        format!(
            "Error rate: {:.2}%  Throughput: {:.1} writes/sec  p99 write: {:.1} ms  Pool busy: {:.0}%",
            self.error_rate_percent,
            self.writes_per_second,
            self.p99_write_seconds * 1e3,
            self.pool_busy_fraction * 100.0
        )
    }
}

/// Where the PostgreSQL verdicts change; validated, plan levels at most the
/// scale-out levels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaleThresholds {
    error_rate_percent: f64,
    scale_p99_seconds: f64,
    plan_p99_seconds: f64,
    scale_pool_busy: f64,
    plan_pool_busy: f64,
    plan_writes_per_second: f64,
}

impl Default for ScaleThresholds {
    /// 1% errors; p99 50 ms (scale out) and 20 ms (plan); pool 90% and
    /// 70% busy; 2,000 writes/s (plan: this machine's measured durable
    /// ceiling with four writers is about 7,000, docs/benchmarks-history.md).
    fn default() -> Self {
        ScaleThresholds {
            error_rate_percent: 1.0,
            scale_p99_seconds: 0.050,
            plan_p99_seconds: 0.020,
            scale_pool_busy: 0.9,
            plan_pool_busy: 0.7,
            plan_writes_per_second: 2000.0,
        }
    }
}

impl ScaleThresholds {
    /// Thresholds: finite, non-negative, fractions at most 1, each plan
    /// level at most its scale-out level.
    pub fn new(
        error_rate_percent: f64,
        scale_p99_seconds: f64,
        plan_p99_seconds: f64,
        scale_pool_busy: f64,
        plan_pool_busy: f64,
        plan_writes_per_second: f64,
    ) -> Result<Self, InvalidInput> {
        let t = ScaleThresholds {
            error_rate_percent: check("error_rate_percent threshold", error_rate_percent, 100.0)?,
            scale_p99_seconds: check("scale_p99_seconds", scale_p99_seconds, f64::MAX)?,
            plan_p99_seconds: check("plan_p99_seconds", plan_p99_seconds, f64::MAX)?,
            scale_pool_busy: check("scale_pool_busy", scale_pool_busy, 1.0)?,
            plan_pool_busy: check("plan_pool_busy", plan_pool_busy, 1.0)?,
            plan_writes_per_second: check("plan_writes_per_second", plan_writes_per_second, f64::MAX)?,
        };
        if t.plan_p99_seconds > t.scale_p99_seconds {
            return Err(InvalidInput {
                field: "plan_p99_seconds (above the scale-out level)",
                value: plan_p99_seconds,
            });
        }
        if t.plan_pool_busy > t.scale_pool_busy {
            return Err(InvalidInput { field: "plan_pool_busy (above the scale-out level)", value: plan_pool_busy });
        }
        Ok(t)
    }

    /// Error percentage above which to scale out now.
    pub fn error_rate_percent(&self) -> f64 {
        self.error_rate_percent
    }
    /// p99 write seconds above which to scale out now.
    pub fn scale_p99_seconds(&self) -> f64 {
        self.scale_p99_seconds
    }
    /// p99 write seconds above which to plan a scale-out.
    pub fn plan_p99_seconds(&self) -> f64 {
        self.plan_p99_seconds
    }
    /// Pool busy share above which to scale out now.
    pub fn scale_pool_busy(&self) -> f64 {
        self.scale_pool_busy
    }
    /// Pool busy share above which to plan a scale-out.
    pub fn plan_pool_busy(&self) -> f64 {
        self.plan_pool_busy
    }
    /// Writes/s above which to plan a scale-out.
    pub fn plan_writes_per_second(&self) -> f64 {
        self.plan_writes_per_second
    }

    /// The thresholds as a JSON object, for the decision log.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "error_rate_percent": self.error_rate_percent,
            "scale_p99_write_seconds": self.scale_p99_seconds,
            "plan_p99_write_seconds": self.plan_p99_seconds,
            "scale_pool_busy_fraction": self.scale_pool_busy,
            "plan_pool_busy_fraction": self.plan_pool_busy,
            "plan_writes_per_second": self.plan_writes_per_second,
        })
    }
}

/// The PostgreSQL verdicts, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ScaleVerdict {
    /// One server is at its limit: add capacity now (replicas for reads, a
    /// bigger server, or partitioning writers across servers).
    ScaleOutNow,
    /// Schedule it.
    PlanScaleOut,
    /// Stay as it is.
    PostgresSufficient,
}

impl fmt::Display for ScaleVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScaleVerdict::ScaleOutNow => "SCALE OUT NOW",
            ScaleVerdict::PlanScaleOut => "PLAN SCALE-OUT",
            ScaleVerdict::PostgresSufficient => "POSTGRESQL SUFFICIENT",
        })
    }
}

/// One reason for a PostgreSQL verdict, with the threshold it crossed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScaleReason {
    /// Error percentage above the threshold.
    WriteErrors {
        /// Measured.
        percent: f64,
        /// Threshold.
        threshold: f64,
    },
    /// p99 write latency above a threshold (`plan`: the planning one).
    CommitLatency {
        /// Measured, seconds.
        seconds: f64,
        /// Threshold, seconds.
        threshold: f64,
        /// The planning threshold (else the scale-out one).
        plan: bool,
    },
    /// The pool busier than a threshold (`plan`: the planning one).
    PoolSaturation {
        /// Measured, 0 to 1.
        fraction: f64,
        /// Threshold.
        threshold: f64,
        /// The planning threshold (else the scale-out one).
        plan: bool,
    },
    /// Throughput above the planning threshold.
    Throughput {
        /// Measured.
        writes_per_second: f64,
        /// Threshold.
        threshold: f64,
    },
}

impl ScaleReason {
    /// The verdict this reason demands.
    pub fn verdict(&self) -> ScaleVerdict {
        match *self {
            ScaleReason::WriteErrors { .. }
            | ScaleReason::CommitLatency { plan: false, .. }
            | ScaleReason::PoolSaturation { plan: false, .. } => ScaleVerdict::ScaleOutNow,
            _ => ScaleVerdict::PlanScaleOut,
        }
    }

    fn because(&self) -> String {
        match *self {
            ScaleReason::WriteErrors { percent, threshold } => format!(
                "{percent:.2}% of checkpoint writes fail (limit {}%): look at the server's log first, then at its capacity",
                num(threshold)
            ),
            ScaleReason::CommitLatency { seconds, threshold, .. } => format!(
                "the p99 write takes {:.1} ms (limit {} ms): durable commits queue on one server's WAL",
                seconds * 1e3,
                num(threshold * 1e3)
            ),
            ScaleReason::PoolSaturation { fraction, threshold, .. } => format!(
                "{:.0}% of the connection pool is busy (limit {}%): writers wait for connections",
                fraction * 100.0,
                num(threshold * 100.0)
            ),
            ScaleReason::Throughput { writes_per_second, threshold } => format!(
                "{writes_per_second:.1} writes/s is past the {} writes/s planning threshold for one server",
                num(threshold)
            ),
        }
    }
}

impl fmt::Display for ScaleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.verdict();
        match *self {
            ScaleReason::WriteErrors { threshold, .. } => write!(f, "{v} - Write errors >{}%", num(threshold)),
            ScaleReason::CommitLatency { threshold, .. } => {
                write!(f, "{v} - p99 write latency >{} ms", num(threshold * 1e3))
            }
            ScaleReason::PoolSaturation { threshold, .. } => {
                write!(f, "{v} - Connection pool >{}% busy", num(threshold * 100.0))
            }
            ScaleReason::Throughput { threshold, .. } => write!(f, "{v} - Throughput >{} writes/sec", num(threshold)),
        }
    }
}

/// A PostgreSQL verdict, every reason for it, and a sentence to act on.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleDecision {
    /// The strongest verdict any reason demands (or sufficient).
    pub verdict: ScaleVerdict,
    /// Every reason that applies, strongest first.
    pub reasons: Vec<ScaleReason>,
    /// Why, in words.
    pub justification: String,
}

impl ScaleDecision {
    /// `Decision: SCALE OUT NOW` and `Justification: ...`, with every reason.
    pub fn report(&self) -> String {
        super::report(&self.verdict, &self.reasons, &self.justification)
    }
}

/// The level `value` is past, if any: the scale-out one (`plan` false) or,
/// below it, the planning one (past the scale-out level, the planning one
/// is not repeated).
fn level(value: f64, scale: f64, plan: f64) -> Option<(f64, bool)> {
    if value > scale {
        Some((scale, false))
    } else if value > plan {
        Some((plan, true))
    } else {
        None
    }
}

/// Decides. See the module docs for the rule.
pub fn should_scale_out(m: &ScaleMetrics, t: &ScaleThresholds) -> ScaleDecision {
    let mut reasons = Vec::new();
    if m.error_rate_percent > t.error_rate_percent {
        reasons.push(ScaleReason::WriteErrors { percent: m.error_rate_percent, threshold: t.error_rate_percent });
    }
    if let Some((threshold, plan)) = level(m.p99_write_seconds, t.scale_p99_seconds, t.plan_p99_seconds) {
        reasons.push(ScaleReason::CommitLatency { seconds: m.p99_write_seconds, threshold, plan });
    }
    if let Some((threshold, plan)) = level(m.pool_busy_fraction, t.scale_pool_busy, t.plan_pool_busy) {
        reasons.push(ScaleReason::PoolSaturation { fraction: m.pool_busy_fraction, threshold, plan });
    }
    if m.writes_per_second > t.plan_writes_per_second {
        reasons.push(ScaleReason::Throughput {
            writes_per_second: m.writes_per_second,
            threshold: t.plan_writes_per_second,
        });
    }
    // Strongest first; the sort is stable, so each verdict keeps the order
    // above.
    reasons.sort_by_key(ScaleReason::verdict);
    let verdict = reasons.iter().map(ScaleReason::verdict).min().unwrap_or(ScaleVerdict::PostgresSufficient);
    let justification = if reasons.is_empty() {
        format!(
            "{:.2}% write errors (limit {}%), p99 write {:.1} ms (plan above {} ms), pool {:.0}% busy (plan above {}%), {:.1} writes/s: one PostgreSQL server is enough.",
            m.error_rate_percent,
            num(t.error_rate_percent),
            m.p99_write_seconds * 1e3,
            num(t.plan_p99_seconds * 1e3),
            m.pool_busy_fraction * 100.0,
            num(t.plan_pool_busy * 100.0),
            m.writes_per_second
        )
    } else {
        let mut text: Vec<String> = reasons.iter().map(ScaleReason::because).collect();
        text[0] = capitalise(&text[0]);
        text.join("; ") + "."
    };
    ScaleDecision { verdict, reasons, justification }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(err: f64, wps: f64, p99: f64, pool: f64) -> ScaleDecision {
        should_scale_out(&ScaleMetrics::new(err, wps, p99, pool).unwrap(), &ScaleThresholds::default())
    }

    #[test]
    fn each_threshold_and_its_boundary() {
        let calm = decide(0.0, 100.0, 0.002, 0.1);
        assert_eq!(calm.verdict, ScaleVerdict::PostgresSufficient);
        assert!(calm.justification.ends_with("one PostgreSQL server is enough."), "{}", calm.justification);
        // Exactly at a threshold is not above it.
        assert_eq!(decide(1.0, 2000.0, 0.020, 0.7).verdict, ScaleVerdict::PostgresSufficient);
        let d = decide(1.5, 100.0, 0.002, 0.1);
        assert_eq!(
            (d.verdict, d.reasons[0].to_string()),
            (ScaleVerdict::ScaleOutNow, "SCALE OUT NOW - Write errors >1%".into())
        );
        let d = decide(0.0, 100.0, 0.021, 0.1);
        assert_eq!(d.reasons[0].to_string(), "PLAN SCALE-OUT - p99 write latency >20 ms");
        let d = decide(0.0, 100.0, 0.051, 0.1);
        assert_eq!((d.verdict, d.reasons.len()), (ScaleVerdict::ScaleOutNow, 1), "{:?}", d.reasons);
        assert_eq!(d.reasons[0].to_string(), "SCALE OUT NOW - p99 write latency >50 ms");
        let d = decide(0.0, 100.0, 0.002, 0.75);
        assert_eq!(d.reasons[0].to_string(), "PLAN SCALE-OUT - Connection pool >70% busy");
        let d = decide(0.0, 100.0, 0.002, 0.95);
        assert_eq!((d.verdict, d.reasons.len()), (ScaleVerdict::ScaleOutNow, 1));
        let d = decide(0.0, 2500.0, 0.002, 0.1);
        assert_eq!(d.reasons[0].to_string(), "PLAN SCALE-OUT - Throughput >2000 writes/sec");
        // Every reason, strongest first.
        let d = decide(2.0, 2500.0, 0.030, 0.95);
        let shown: Vec<String> = d.reasons.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "SCALE OUT NOW - Write errors >1%",
                "SCALE OUT NOW - Connection pool >90% busy",
                "PLAN SCALE-OUT - p99 write latency >20 ms",
                "PLAN SCALE-OUT - Throughput >2000 writes/sec"
            ]
        );
        assert!(d.report().starts_with("Decision: SCALE OUT NOW\n  - SCALE OUT NOW - Write errors >1%\n"));
    }

    #[test]
    fn bad_inputs_and_thresholds_are_refused() {
        assert!(ScaleMetrics::new(f64::NAN, 1.0, 0.0, 0.0).is_err());
        assert!(ScaleMetrics::new(0.0, 1.0, -0.1, 0.0).is_err());
        assert!(ScaleMetrics::new(0.0, 1.0, 0.0, 1.5).is_err());
        assert!(ScaleThresholds::new(1.0, 0.01, 0.02, 0.9, 0.7, 10.0).is_err(), "plan p99 above scale");
        assert!(ScaleThresholds::new(1.0, 0.05, 0.02, 0.6, 0.7, 10.0).is_err(), "plan pool above scale");
        assert!(ScaleThresholds::new(1.0, 0.05, 0.02, 0.9, 0.7, f64::INFINITY).is_err());
        assert!(ScaleThresholds::new(1.0, 0.05, 0.02, 0.9, 0.7, 10.0).is_ok());
    }
}
