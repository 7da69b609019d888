//! The migration decision: is a single SQLite file still enough?
//!
//! Owns: the inputs ([`MigrationMetrics`]), the configurable thresholds
//! ([`MigrationThresholds`]), the rule ([`should_migrate`]), where inputs come
//! from ([`WriteWindow`] in process, [`PrometheusSource`] over HTTP) and the
//! audit trail ([`DecisionLog`]). Must not: guess — an input it cannot get is
//! an error, never a silent "sufficient".
//!
//! | verdict | when (defaults) |
//! |---|---|
//! | **MIGRATE NOW** | write errors > 1%, or throughput > 100 writes/s, or a multi-server deployment |
//! | **PLAN MIGRATION** | throughput > 80 writes/s, or the file > 1 GB |
//! | **SQLITE SUFFICIENT** | none of the above |
//!
//! Every reason that applies is listed, strongest first; boundaries are
//! exclusive (exactly 1% or exactly 80/s does not trigger).
//!
//! Once the checkpoints live in PostgreSQL, the same matrix asks the next
//! question with thresholds of its own (commit latency, connection-pool
//! saturation, error rate): [`should_scale_out`] says POSTGRESQL SUFFICIENT,
//! PLAN SCALE-OUT or SCALE OUT NOW, logged the same way
//! ([`DecisionLog::append_scale`]).
//!
//! ```
//! use hotmeter_checkpoint::decision::{Deployment, MigrationMetrics, MigrationThresholds, Verdict, should_migrate};
//! let m = MigrationMetrics::new(2.1, 87.0, Deployment::SingleServer, 10_000_000)?;
//! let d = should_migrate(&m, &MigrationThresholds::default());
//! assert_eq!(d.verdict, Verdict::MigrateNow);
//! assert_eq!(d.reasons[0].to_string(), "MIGRATE NOW - Write errors >1%");
//! assert_eq!(d.reasons[1].to_string(), "PLAN MIGRATION - Throughput >80 writes/sec");
//! # Ok::<(), hotmeter_checkpoint::decision::InvalidInput>(())
//! ```

mod log;
mod prometheus;
mod scale;
mod window;

use std::fmt;
use std::time::SystemTime;

pub use log::{DecisionLog, LogError, rfc3339};
pub use prometheus::{PrometheusSource, SourceError};
pub use scale::{ScaleDecision, ScaleMetrics, ScaleReason, ScaleThresholds, ScaleVerdict, should_scale_out};
pub use window::WriteWindow;

/// Where the service runs: a single-file database cannot be shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deployment {
    /// One server owns the database file.
    SingleServer,
    /// Several servers need the same checkpoints.
    MultiServer,
}

impl Deployment {
    /// `single-server` or `multi-server`.
    pub fn as_str(self) -> &'static str {
        match self {
            Deployment::SingleServer => "single-server",
            Deployment::MultiServer => "multi-server",
        }
    }
}

impl std::str::FromStr for Deployment {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "single-server" | "single" => Ok(Deployment::SingleServer),
            "multi-server" | "multi" => Ok(Deployment::MultiServer),
            _ => Err(InvalidInput { field: "deployment", value: f64::NAN }),
        }
    }
}

/// What the decision is made from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MigrationMetrics {
    /// Failed checkpoint writes as a percentage of all writes (0 to 100).
    pub error_rate_percent: f64,
    /// Checkpoint writes per second, successes and failures.
    pub writes_per_second: f64,
    /// Single or multi-server.
    pub deployment: Deployment,
    /// Database file plus write-ahead log, in bytes.
    pub file_size_bytes: u64,
    /// When the inputs were measured.
    pub timestamp: SystemTime,
}

/// An input or threshold that cannot be decided on: NaN, infinite,
/// negative, or out of range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InvalidInput {
    /// Which field.
    pub field: &'static str,
    /// Its value.
    pub value: f64,
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field == "deployment" {
            return f.write_str("deployment must be single-server or multi-server");
        }
        write!(f, "invalid {}: {} (must be a finite number >= 0", self.field, self.value)?;
        if self.field.contains("percent") {
            f.write_str(", at most 100")?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for InvalidInput {}

fn check(field: &'static str, value: f64, max: f64) -> Result<f64, InvalidInput> {
    if value.is_finite() && (0.0..=max).contains(&value) { Ok(value) } else { Err(InvalidInput { field, value }) }
}

impl MigrationMetrics {
    /// Validated inputs, timestamped now.
    pub fn new(
        error_rate_percent: f64,
        writes_per_second: f64,
        deployment: Deployment,
        file_size_bytes: u64,
    ) -> Result<Self, InvalidInput> {
        Ok(MigrationMetrics {
            error_rate_percent: check("error_rate_percent", error_rate_percent, 100.0)?,
            writes_per_second: check("writes_per_second", writes_per_second, f64::MAX)?,
            deployment,
            file_size_bytes,
            timestamp: SystemTime::now(),
        })
    }

    /// `Error rate: 2.10%  Throughput: 87.0 writes/sec  File size: 0.01 GB`
    pub fn summary(&self) -> String {
        format!(
            "Error rate: {:.2}%  Throughput: {:.1} writes/sec  File size: {:.2} GB  Deployment: {}",
            self.error_rate_percent,
            self.writes_per_second,
            self.file_size_bytes as f64 / 1e9,
            self.deployment.as_str()
        )
    }
}

/// Where the verdicts change. Build with [`MigrationThresholds::new`] or
/// take the defaults; both are validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MigrationThresholds {
    error_rate_percent: f64,
    migrate_writes_per_second: f64,
    plan_writes_per_second: f64,
    plan_file_size_bytes: u64,
}

impl Default for MigrationThresholds {
    /// 1% errors, 100 writes/s (migrate), 80 writes/s (plan), 1 GB (plan).
    fn default() -> Self {
        MigrationThresholds {
            error_rate_percent: 1.0,
            migrate_writes_per_second: 100.0,
            plan_writes_per_second: 80.0,
            plan_file_size_bytes: 1_000_000_000,
        }
    }
}

impl MigrationThresholds {
    /// Thresholds: all finite and non-negative, plan rate at most the migrate rate.
    pub fn new(
        error_rate_percent: f64,
        migrate_writes_per_second: f64,
        plan_writes_per_second: f64,
        plan_file_size_bytes: u64,
    ) -> Result<Self, InvalidInput> {
        let t = MigrationThresholds {
            error_rate_percent: check("error_rate_percent threshold", error_rate_percent, 100.0)?,
            migrate_writes_per_second: check("migrate_writes_per_second", migrate_writes_per_second, f64::MAX)?,
            plan_writes_per_second: check("plan_writes_per_second", plan_writes_per_second, f64::MAX)?,
            plan_file_size_bytes,
        };
        if t.plan_writes_per_second > t.migrate_writes_per_second {
            return Err(InvalidInput {
                field: "plan_writes_per_second (above the migrate rate)",
                value: plan_writes_per_second,
            });
        }
        Ok(t)
    }

    /// Error percentage above which to migrate now.
    pub fn error_rate_percent(&self) -> f64 {
        self.error_rate_percent
    }
    /// Writes/s above which to migrate now.
    pub fn migrate_writes_per_second(&self) -> f64 {
        self.migrate_writes_per_second
    }
    /// Writes/s above which to plan a migration.
    pub fn plan_writes_per_second(&self) -> f64 {
        self.plan_writes_per_second
    }
    /// File size above which to plan a migration.
    pub fn plan_file_size_bytes(&self) -> u64 {
        self.plan_file_size_bytes
    }
}

/// The three verdicts, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Move to a server database now.
    MigrateNow,
    /// Schedule the move.
    PlanMigration,
    /// Stay on SQLite.
    SqliteSufficient,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::MigrateNow => "MIGRATE NOW",
            Verdict::PlanMigration => "PLAN MIGRATION",
            Verdict::SqliteSufficient => "SQLITE SUFFICIENT",
        })
    }
}

/// One reason for a verdict, with the threshold it crossed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reason {
    /// Error percentage above the threshold.
    WriteErrors {
        /// Measured.
        percent: f64,
        /// Threshold.
        threshold: f64,
    },
    /// Throughput above the migrate threshold.
    ThroughputExceeded {
        /// Measured.
        writes_per_second: f64,
        /// Threshold.
        threshold: f64,
    },
    /// Several servers need the database.
    MultiServer,
    /// Throughput above the plan threshold.
    ThroughputApproaching {
        /// Measured.
        writes_per_second: f64,
        /// Threshold.
        threshold: f64,
    },
    /// File above the size threshold.
    FileSize {
        /// Measured.
        bytes: u64,
        /// Threshold.
        threshold: u64,
    },
}

/// Bytes in the largest decimal unit that keeps them readable: `1 GB`, `250 MB`, `10 bytes`.
fn size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{} GB", num(b / 1e9))
    } else if b >= 1e6 {
        format!("{} MB", num(b / 1e6))
    } else {
        format!("{bytes} bytes")
    }
}

/// A threshold printed without a useless fraction: 1 → "1", 2.5 → "2.5".
fn num(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

impl Reason {
    /// The verdict this reason demands.
    pub fn verdict(&self) -> Verdict {
        match self {
            Reason::WriteErrors { .. } | Reason::ThroughputExceeded { .. } | Reason::MultiServer => Verdict::MigrateNow,
            Reason::ThroughputApproaching { .. } | Reason::FileSize { .. } => Verdict::PlanMigration,
        }
    }

    fn because(&self) -> String {
        match *self {
            Reason::WriteErrors { percent, threshold } => format!(
                "{percent:.2}% of checkpoint writes fail (limit {}%): failed writes are lost checkpoints, and a single file that errors under load will not recover by itself",
                num(threshold)
            ),
            Reason::ThroughputExceeded { writes_per_second, threshold } => format!(
                "{writes_per_second:.1} writes/s is beyond the {} writes/s a single SQLite file sustains with durable commits",
                num(threshold)
            ),
            Reason::MultiServer => "a multi-server deployment cannot share one SQLite file".to_owned(),
            Reason::ThroughputApproaching { writes_per_second, threshold } => format!(
                "{writes_per_second:.1} writes/s is past the {} writes/s planning threshold, close to the single-file ceiling",
                num(threshold)
            ),
            Reason::FileSize { bytes, threshold } => {
                format!("the database is {}, past the {} planning threshold", size(bytes), size(threshold))
            }
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.verdict();
        match *self {
            Reason::WriteErrors { threshold, .. } => write!(f, "{v} - Write errors >{}%", num(threshold)),
            Reason::ThroughputExceeded { threshold, .. } => {
                write!(f, "{v} - Throughput >{} writes/sec", num(threshold))
            }
            Reason::MultiServer => write!(f, "{v} - Multi-server deployment"),
            Reason::ThroughputApproaching { threshold, .. } => {
                write!(f, "{v} - Throughput >{} writes/sec", num(threshold))
            }
            Reason::FileSize { threshold, .. } => write!(f, "{v} - File size >{}", size(threshold)),
        }
    }
}

/// A verdict, every reason for it, and a sentence a person can act on.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The strongest verdict any reason demands (or sufficient).
    pub verdict: Verdict,
    /// Every reason that applies, strongest first.
    pub reasons: Vec<Reason>,
    /// Why, in words.
    pub justification: String,
}

/// Decides. See the module docs for the rule.
pub fn should_migrate(m: &MigrationMetrics, t: &MigrationThresholds) -> Decision {
    let mut reasons = Vec::new();
    if m.error_rate_percent > t.error_rate_percent {
        reasons.push(Reason::WriteErrors { percent: m.error_rate_percent, threshold: t.error_rate_percent });
    }
    if m.writes_per_second > t.migrate_writes_per_second {
        reasons.push(Reason::ThroughputExceeded {
            writes_per_second: m.writes_per_second,
            threshold: t.migrate_writes_per_second,
        });
    }
    if m.deployment == Deployment::MultiServer {
        reasons.push(Reason::MultiServer);
    }
    // Throughput past the migrate threshold is already the stronger reason.
    if m.writes_per_second > t.plan_writes_per_second && m.writes_per_second <= t.migrate_writes_per_second {
        reasons.push(Reason::ThroughputApproaching {
            writes_per_second: m.writes_per_second,
            threshold: t.plan_writes_per_second,
        });
    }
    if m.file_size_bytes > t.plan_file_size_bytes {
        reasons.push(Reason::FileSize { bytes: m.file_size_bytes, threshold: t.plan_file_size_bytes });
    }
    let verdict = reasons.iter().map(Reason::verdict).min().unwrap_or(Verdict::SqliteSufficient);
    let justification = if reasons.is_empty() {
        format!(
            "{:.2}% write errors (limit {}%), {:.1} writes/s (plan above {}, migrate above {}), {:.2} GB on a single server: SQLite is enough.",
            m.error_rate_percent,
            num(t.error_rate_percent),
            m.writes_per_second,
            num(t.plan_writes_per_second),
            num(t.migrate_writes_per_second),
            m.file_size_bytes as f64 / 1e9
        )
    } else {
        let mut text: Vec<String> = reasons.iter().map(Reason::because).collect();
        text[0] = capitalise(&text[0]);
        text.join("; ") + "."
    };
    Decision { verdict, reasons, justification }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

impl Decision {
    /// `Decision: MIGRATE NOW` and `Justification: ...`, with every reason.
    pub fn report(&self) -> String {
        report(&self.verdict, &self.reasons, &self.justification)
    }
}

/// `Decision: <verdict>`, one `  - <reason>` line each, `Justification: ...`:
/// every decision's report, SQLite's and PostgreSQL's.
fn report(verdict: &dyn fmt::Display, reasons: &[impl fmt::Display], justification: &str) -> String {
    let mut out = format!("Decision: {verdict}\n");
    for r in reasons {
        out.push_str(&format!("  - {r}\n"));
    }
    out.push_str(&format!("Justification: {justification}"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(err: f64, wps: f64, dep: Deployment, bytes: u64) -> Decision {
        should_migrate(&MigrationMetrics::new(err, wps, dep, bytes).unwrap(), &MigrationThresholds::default())
    }
    use Deployment::*;

    #[test]
    fn each_threshold_and_its_boundary() {
        assert_eq!(decide(0.0, 0.0, SingleServer, 0).verdict, Verdict::SqliteSufficient);
        // Errors: exactly 1% is not above 1%.
        assert_eq!(decide(1.0, 10.0, SingleServer, 0).verdict, Verdict::SqliteSufficient);
        let d = decide(1.0001, 10.0, SingleServer, 0);
        assert_eq!(
            (d.verdict, d.reasons[0].to_string()),
            (Verdict::MigrateNow, "MIGRATE NOW - Write errors >1%".into())
        );
        // Throughput: exactly 80 is sufficient, above plans; exactly 100 plans, above migrates.
        assert_eq!(decide(0.0, 80.0, SingleServer, 0).verdict, Verdict::SqliteSufficient);
        let d = decide(0.0, 80.01, SingleServer, 0);
        assert_eq!(d.verdict, Verdict::PlanMigration);
        assert_eq!(d.reasons[0].to_string(), "PLAN MIGRATION - Throughput >80 writes/sec");
        assert_eq!(decide(0.0, 100.0, SingleServer, 0).verdict, Verdict::PlanMigration);
        let d = decide(0.0, 100.5, SingleServer, 0);
        assert_eq!(d.reasons, [Reason::ThroughputExceeded { writes_per_second: 100.5, threshold: 100.0 }]);
        assert_eq!(d.reasons[0].to_string(), "MIGRATE NOW - Throughput >100 writes/sec");
        // Multi-server alone migrates.
        let d = decide(0.0, 1.0, MultiServer, 0);
        assert_eq!(
            (d.verdict, d.reasons[0].to_string()),
            (Verdict::MigrateNow, "MIGRATE NOW - Multi-server deployment".into())
        );
        // File size: exactly the threshold is sufficient, a byte more plans.
        assert_eq!(decide(0.0, 1.0, SingleServer, 1_000_000_000).verdict, Verdict::SqliteSufficient);
        let d = decide(0.0, 1.0, SingleServer, 1_000_000_001);
        assert_eq!(
            (d.verdict, d.reasons[0].to_string()),
            (Verdict::PlanMigration, "PLAN MIGRATION - File size >1 GB".into())
        );
    }

    #[test]
    fn every_reason_that_applies_is_listed_strongest_first() {
        let d = decide(2.1, 87.0, MultiServer, 2_000_000_000);
        assert_eq!(d.verdict, Verdict::MigrateNow);
        let texts: Vec<String> = d.reasons.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "MIGRATE NOW - Write errors >1%",
                "MIGRATE NOW - Multi-server deployment",
                "PLAN MIGRATION - Throughput >80 writes/sec",
                "PLAN MIGRATION - File size >1 GB",
            ]
        );
        assert!(
            d.justification.starts_with("2.10% of checkpoint writes fail") || d.justification.starts_with("2.10%"),
            "{}",
            d.justification
        );
        assert!(d.justification.contains("multi-server"));
        let report = d.report();
        assert!(report.starts_with("Decision: MIGRATE NOW\n"), "{report}");
        assert!(report.contains("Justification: "));
    }

    #[test]
    fn thresholds_and_inputs_are_validated() {
        assert!(MigrationThresholds::new(1.0, 100.0, 80.0, 1).is_ok());
        for bad in [
            MigrationThresholds::new(-1.0, 100.0, 80.0, 1),
            MigrationThresholds::new(f64::NAN, 100.0, 80.0, 1),
            MigrationThresholds::new(1.0, f64::INFINITY, 80.0, 1),
            MigrationThresholds::new(1.0, 100.0, -80.0, 1),
            MigrationThresholds::new(1.0, 50.0, 80.0, 1),
            MigrationThresholds::new(101.0, 100.0, 80.0, 1),
        ] {
            assert!(bad.is_err(), "{bad:?}");
        }
        assert!(MigrationMetrics::new(f64::NAN, 1.0, SingleServer, 0).is_err());
        assert!(MigrationMetrics::new(1.0, -1.0, SingleServer, 0).is_err());
        assert!(MigrationMetrics::new(150.0, 1.0, SingleServer, 0).is_err());
        let custom = MigrationThresholds::new(2.5, 50.0, 40.0, 10).unwrap();
        let m = MigrationMetrics::new(2.6, 45.0, SingleServer, 11).unwrap();
        let texts: Vec<String> = should_migrate(&m, &custom).reasons.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "MIGRATE NOW - Write errors >2.5%",
                "PLAN MIGRATION - Throughput >40 writes/sec",
                "PLAN MIGRATION - File size >10 bytes"
            ]
        );
    }
}
