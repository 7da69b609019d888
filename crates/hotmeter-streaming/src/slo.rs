//! Service-level objectives: definitions, in-process evaluation, and the
//! Prometheus rules generated from the same definitions.
//!
//! Owns: [`Slo`] definitions, the [`SloTracker`] that evaluates them from
//! registry snapshots over their windows, the [`SloReport`] served as JSON
//! (`GET /slos` in the demo), and [`prometheus_rules`], which writes the
//! recording rules and multi-window, multi-burn-rate alerts for the same
//! objectives. Must not: keep counts of its own — it reads the snapshots a
//! scrape reads, so the report and Prometheus agree.
//!
//! Every SLO is a ratio of good events to all events:
//! - [`Indicator::Ratio`]: a counter family split by a label (`status="success"` good);
//! - [`Indicator::Latency`]: a histogram's observations at or below a
//!   threshold, interpolated linearly inside the bucket that holds it (the
//!   model `histogram_quantile` uses), so "P95 <= 400 ms" is "at least 95%
//!   of observations at or below 0.4 s".

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use hotmeter::{OwnedValue, RegistrySnapshot};
use serde_json::json;

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
        /// The histogram's bucket bounds (for the generated rules).
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

    fn snake(&self) -> String {
        self.name.replace('-', "_")
    }

    fn camel(&self) -> String {
        self.name.split('-').map(|w| w[..1].to_uppercase() + &w[1..]).collect()
    }
}

/// (good, total) events of one SLO in one snapshot.
fn events(slo: &Slo, snap: &RegistrySnapshot, prefix: &str) -> (f64, f64) {
    match &slo.indicator {
        Indicator::Ratio { metric, label, good } => {
            let Some(f) = snap.family(&format!("{prefix}{metric}")) else { return (0.0, 0.0) };
            let (mut g, mut t) = (0.0, 0.0);
            for s in &f.series {
                let OwnedValue::Counter(n) = s.value else { continue };
                t += n as f64;
                if s.labels.iter().any(|(k, v)| k == label && good.contains(v)) {
                    g += n as f64;
                }
            }
            (g, t)
        }
        Indicator::Latency { histogram, threshold, .. } => {
            let Some(f) = snap.family(&format!("{prefix}{histogram}")) else { return (0.0, 0.0) };
            let (mut g, mut t) = (0.0, 0.0);
            for s in &f.series {
                let OwnedValue::Histogram { bounds, counts, count, .. } = &s.value else { continue };
                t += *count as f64;
                g += at_or_below(bounds, counts, *threshold);
            }
            (g, t)
        }
    }
}

/// Observations at or below `x`, interpolating linearly inside its bucket
/// (the first bucket starts at 0, as in `histogram_quantile`).
fn at_or_below(bounds: &[f64], counts: &[u64], x: f64) -> f64 {
    let mut below = 0.0;
    let mut lower = 0.0;
    for (i, &upper) in bounds.iter().enumerate() {
        let c = counts.get(i).copied().unwrap_or(0) as f64;
        if x >= upper {
            below += c;
            lower = upper;
            continue;
        }
        let width = upper - lower;
        return below + if width > 0.0 { c * ((x - lower) / width).clamp(0.0, 1.0) } else { 0.0 };
    }
    below // x is beyond the last finite bound: the +Inf bucket counts as above
}

/// Where one SLO stands.
#[derive(Debug, Clone, PartialEq)]
pub struct SloStatus {
    /// Its name.
    pub name: String,
    /// Events in the window.
    pub events: f64,
    /// Good fraction in the window (1 with no events).
    pub sli: f64,
    /// For latency SLOs, the `objective` quantile of latency, in seconds.
    pub quantile_seconds: Option<f64>,
    /// Whether the objective holds.
    pub met: bool,
    /// Share of the error budget left: 1 untouched, 0 spent, below 0 overspent.
    pub error_budget_remaining: f64,
}

/// All SLOs at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct SloReport {
    /// Each SLO, in definition order.
    pub slos: Vec<SloStatus>,
}

impl SloReport {
    /// How many SLOs.
    pub fn total(&self) -> usize {
        self.slos.len()
    }
    /// How many hold.
    pub fn met(&self) -> usize {
        self.slos.iter().filter(|s| s.met).count()
    }
    /// How many do not.
    pub fn violated(&self) -> usize {
        self.total() - self.met()
    }

    /// `{"total":3,"met":2,"violated":1,"slos":[...]}`, with each definition.
    pub fn to_json(&self, defs: &[Slo]) -> String {
        let slos: Vec<_> = self
            .slos
            .iter()
            .zip(defs)
            .map(|(s, d)| {
                let (kind, threshold) = match &d.indicator {
                    Indicator::Ratio { .. } => ("ratio", None),
                    Indicator::Latency { threshold, .. } => ("latency", Some(*threshold)),
                };
                json!({
                    "name": s.name,
                    "description": d.description,
                    "indicator": kind,
                    "objective": d.objective,
                    "threshold_seconds": threshold,
                    "window_seconds": d.window.as_secs_f64(),
                    "events": s.events,
                    "sli": s.sli,
                    "current": s.quantile_seconds.unwrap_or(s.sli),
                    "met": s.met,
                    "error_budget_remaining": s.error_budget_remaining,
                })
            })
            .collect();
        json!({"total": self.total(), "met": self.met(), "violated": self.violated(), "slos": slos}).to_string()
    }
}

/// A histogram family's series summed: (bounds, per-bucket counts).
type Merged = (Vec<f64>, Vec<u64>);

fn merged(snap: &RegistrySnapshot, name: &str) -> Option<Merged> {
    let mut out: Option<Merged> = None;
    for s in &snap.family(name)?.series {
        if let OwnedValue::Histogram { bounds, counts, .. } = &s.value {
            let m = out.get_or_insert_with(|| (bounds.clone(), vec![0; counts.len()]));
            if m.1.len() == counts.len() {
                m.1.iter_mut().zip(counts).for_each(|(a, b)| *a += b);
            }
        }
    }
    out
}

/// One recorded snapshot: when, (good, total) per SLO, and merged bucket
/// counts per latency SLO.
type Sample = (Instant, Vec<(f64, f64)>, Vec<Option<Merged>>);

/// Evaluates SLOs from registry snapshots fed to it over time. Memory is
/// bounded: samples older than the longest window are dropped.
#[derive(Debug)]
pub struct SloTracker {
    slos: Vec<Slo>,
    prefix: String,
    samples: VecDeque<Sample>,
}

impl SloTracker {
    /// A tracker for these SLOs, reading metrics under `namespace`.
    pub fn new(slos: Vec<Slo>, namespace: Option<&str>) -> Result<Self, SloError> {
        slos.iter().try_for_each(Slo::validate)?;
        Ok(SloTracker {
            slos,
            prefix: namespace.map(|n| format!("{n}_")).unwrap_or_default(),
            samples: VecDeque::new(),
        })
    }

    /// The definitions.
    pub fn slos(&self) -> &[Slo] {
        &self.slos
    }

    /// Records one snapshot taken at `at`.
    pub fn record(&mut self, at: Instant, snap: &RegistrySnapshot) {
        let counts = self.slos.iter().map(|s| events(s, snap, &self.prefix)).collect();
        // Cumulative bucket counts per latency SLO, for windowed quantiles.
        let buckets = self
            .slos
            .iter()
            .map(|s| match &s.indicator {
                Indicator::Latency { histogram, .. } => merged(snap, &format!("{}{histogram}", self.prefix)),
                Indicator::Ratio { .. } => None,
            })
            .collect();
        let longest = self.slos.iter().map(|s| s.window).max().unwrap_or_default();
        self.samples.push_back((at, counts, buckets));
        while self.samples.len() > 2
            && self.samples.get(1).is_some_and(|(t, ..)| at.saturating_duration_since(*t) >= longest)
        {
            self.samples.pop_front();
        }
    }

    /// Evaluates every SLO over its window, ending at the latest recorded
    /// snapshot. With fewer than two snapshots in a window there are no
    /// events: the SLO reads as met with its budget untouched.
    pub fn report(&self) -> SloReport {
        let slos = self
            .slos
            .iter()
            .enumerate()
            .map(|(i, slo)| {
                let end = self.samples.back();
                let start = end.and_then(|(t_end, ..)| {
                    self.samples.iter().find(|(t, ..)| t_end.saturating_duration_since(*t) <= slo.window)
                });
                let (good, total, quantile_seconds) = match (start, end) {
                    (Some((_, s, sb)), Some((_, e, eb))) => {
                        let q = match (&sb[i], &eb[i]) {
                            (Some((_, c0)), Some((bounds, c1))) if c0.len() == c1.len() => {
                                let window: Vec<u64> = c1.iter().zip(c0).map(|(a, b)| a.saturating_sub(*b)).collect();
                                hotmeter::histogram_quantile(bounds, &window, slo.objective)
                            }
                            _ => None,
                        };
                        (e[i].0 - s[i].0, e[i].1 - s[i].1, q)
                    }
                    _ => (0.0, 0.0, None),
                };
                let sli = if total > 0.0 { (good / total).clamp(0.0, 1.0) } else { 1.0 };
                SloStatus {
                    name: slo.name.clone(),
                    events: total,
                    sli,
                    quantile_seconds,
                    met: sli >= slo.objective,
                    error_budget_remaining: 1.0 - (1.0 - sli) / (1.0 - slo.objective),
                }
            })
            .collect();
        SloReport { slos }
    }
}

fn le(bound: f64) -> String {
    // The exposition's formatting of a bound: shortest round-trip, `1.0` not `1`.
    format!("{bound:?}")
}

/// The PromQL "good events per second over `w`" of an SLO.
fn good_rate(slo: &Slo, p: &str, w: &str) -> String {
    match &slo.indicator {
        Indicator::Ratio { metric, label, good } => {
            format!("sum(rate({p}{metric}{{{label}=~\"{}\"}}[{w}]))", good.join("|"))
        }
        Indicator::Latency { histogram, threshold, bounds } => {
            let b = |x: f64| format!("sum(rate({p}{histogram}_bucket{{le=\"{}\"}}[{w}]))", le(x));
            match bounds.iter().position(|&u| u >= *threshold) {
                Some(i) if bounds[i] == *threshold => b(bounds[i]),
                Some(i) => {
                    let lower = if i == 0 { 0.0 } else { bounds[i - 1] };
                    let frac = (threshold - lower) / (bounds[i] - lower);
                    let below = if i == 0 { "0".to_owned() } else { b(lower) };
                    format!("({below} + {frac:.6} * ({} - {below}))", b(bounds[i]))
                }
                None => b(*bounds.last().expect("validated: bounds not empty")),
            }
        }
    }
}

fn total_rate(slo: &Slo, p: &str, w: &str) -> String {
    match &slo.indicator {
        Indicator::Ratio { metric, .. } => format!("sum(rate({p}{metric}[{w}]))"),
        Indicator::Latency { histogram, .. } => format!("sum(rate({p}{histogram}_count[{w}]))"),
    }
}

/// Prometheus rules for these SLOs: per SLO, error-ratio recording rules
/// over 5m, 30m, 1h and 6h, and two multi-window burn-rate alerts —
/// fast (1h and 5m both above 14.4x the budget rate, `critical`) and slow
/// (6h and 30m above 6x, `warning`). Error ratios are guarded: no traffic,
/// no sample.
pub fn prometheus_rules(slos: &[Slo], namespace: Option<&str>, runbook: &str) -> String {
    let p = namespace.map(|n| format!("{n}_")).unwrap_or_default();
    let mut y = String::from(
        "# Generated by hotmeter_streaming::slo::prometheus_rules from the demo's SLO\n\
         # definitions (crates/hotmeter-demo/src/slos.rs); edit those, not this file.\n\
         groups:\n",
    );
    for slo in slos {
        let (snake, camel) = (slo.snake(), slo.camel());
        let budget = 1.0 - slo.objective;
        let _ = write!(y, "  - name: slo-{}\n    rules:\n", slo.name);
        for w in ["5m", "30m", "1h", "6h"] {
            let _ = write!(
                y,
                "      - record: slo:{snake}:error_ratio:rate{w}\n        expr: 1 - ({}) / ({} > 0)\n",
                good_rate(slo, &p, w),
                total_rate(slo, &p, w)
            );
        }
        for (speed, long, short, factor, severity, for_) in
            [("Fast", "1h", "5m", 14.4, "critical", "2m"), ("Slow", "6h", "30m", 6.0, "warning", "15m")]
        {
            let limit = factor * budget;
            let _ = write!(
                y,
                "      - alert: {camel}ErrorBudget{speed}Burn\n        \
                 expr: slo:{snake}:error_ratio:rate{long} > {limit:.6} and slo:{snake}:error_ratio:rate{short} > {limit:.6}\n        \
                 for: {for_}\n        labels:\n          severity: {severity}\n          slo: {}\n        annotations:\n          \
                 summary: \"SLO {} is burning its error budget {factor}x too fast\"\n          \
                 description: \"{}: error ratio {{{{ $value | humanizePercentage }}}} over {long} and {short}, above {factor}x the {:.3}% budget (objective {}%).\"\n          \
                 runbook_url: {runbook}#{}\n",
                slo.name,
                slo.name,
                slo.description,
                budget * 100.0,
                slo.objective * 100.0,
                format!("{camel}ErrorBudget{speed}Burn").to_ascii_lowercase(),
            );
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotmeter::{Buckets, Counter, Family, Registry};

    hotmeter::label_enum! {
        enum Status: "status" { Success = "success", Error = "error" }
    }

    fn slos() -> Vec<Slo> {
        vec![
            Slo {
                name: "availability".into(),
                description: "Writes succeed.".into(),
                indicator: Indicator::Ratio {
                    metric: "writes_total".into(),
                    label: "status".into(),
                    good: vec!["success".into()],
                },
                objective: 0.99,
                window: Duration::from_secs(60),
            },
            Slo {
                name: "write-latency".into(),
                description: "P95 write latency <= 400 ms.".into(),
                indicator: Indicator::Latency {
                    histogram: "write_seconds".into(),
                    threshold: 0.4,
                    bounds: vec![0.1, 0.25, 0.5, 1.0],
                },
                objective: 0.95,
                window: Duration::from_secs(60),
            },
        ]
    }

    #[test]
    fn evaluates_over_the_window_with_budgets() {
        let r = Registry::new();
        let writes: Family<Status, Counter> = r.family(("writes_total", "w"), Counter::new).unwrap();
        let lat = r.histogram("write_seconds", "l", Buckets::new([0.1, 0.25, 0.5, 1.0]).unwrap()).unwrap();
        let mut t = SloTracker::new(slos(), None).unwrap();
        let t0 = Instant::now();
        // Before the window: 1000 failures, which must not count.
        writes.get(Status::Error).inc_by(1000);
        t.record(t0, &r.snapshot());
        t.record(t0 + Duration::from_secs(100), &r.snapshot());
        // In the window: 995 good, 5 bad (99.5% >= 99%); latency: 90 fast, 10 in (0.25, 0.5].
        writes.get(Status::Success).inc_by(995);
        writes.get(Status::Error).inc_by(5);
        for _ in 0..90 {
            lat.observe(0.05);
        }
        for _ in 0..10 {
            lat.observe(0.3);
        }
        let snap = r.snapshot();
        t.record(t0 + Duration::from_secs(130), &snap);
        let rep = t.report();
        let a = &rep.slos[0];
        assert_eq!((a.events, a.sli, a.met), (1000.0, 0.995, true));
        assert!((a.error_budget_remaining - 0.5).abs() < 1e-9, "{}", a.error_budget_remaining);
        // 10 in (0.25, 0.5]: 0.4 is 60% into it → 6 of them count as good: 96% >= 95%.
        let l = &rep.slos[1];
        assert!((l.sli - 0.96).abs() < 1e-9, "{}", l.sli);
        assert!(l.met);
        let q = l.quantile_seconds.unwrap();
        assert!(q > 0.25 && q <= 0.5, "{q}");
        assert_eq!((rep.total(), rep.met(), rep.violated()), (2, 2, 0));
        let json: serde_json::Value = serde_json::from_str(&rep.to_json(t.slos())).unwrap();
        assert_eq!(json["met"], 2);
        assert_eq!(json["slos"][1]["threshold_seconds"], 0.4);

        // 20 more failures: 975/1020 < 99%: violated, budget overspent.
        writes.get(Status::Error).inc_by(20);
        let snap = r.snapshot();
        t.record(t0 + Duration::from_secs(140), &snap);
        let rep = t.report();
        assert!(!rep.slos[0].met);
        assert!(rep.slos[0].error_budget_remaining < 0.0);
        assert_eq!(rep.violated(), 1);
    }

    #[test]
    fn no_traffic_is_met_with_an_untouched_budget() {
        let t = SloTracker::new(slos(), None).unwrap();
        let rep = t.report();
        assert!(rep.slos.iter().all(|s| s.met && s.events == 0.0 && s.error_budget_remaining == 1.0));
    }

    #[test]
    fn definitions_are_validated() {
        let mut bad = slos();
        bad[0].objective = 1.0;
        assert_eq!(SloTracker::new(bad, None).unwrap_err(), SloError::InvalidObjective(1.0));
        let mut bad = slos();
        bad[0].name = "Bad Name".into();
        assert!(matches!(SloTracker::new(bad, None), Err(SloError::InvalidName(_))));
        let mut bad = slos();
        bad[1].indicator = Indicator::Latency { histogram: "h".into(), threshold: f64::NAN, bounds: vec![1.0] };
        assert!(matches!(SloTracker::new(bad, None), Err(SloError::InvalidThreshold(_))));
    }

    #[test]
    fn rules_interpolate_the_threshold_bucket_and_burn_at_both_speeds() {
        let y = prometheus_rules(&slos(), Some("engram"), "https://x/ops.md");
        assert!(y.contains("record: slo:availability:error_ratio:rate5m"));
        assert!(y.contains("sum(rate(engram_writes_total{status=~\"success\"}[1h]))"));
        // 0.4 is 60% of the way from 0.25 to 0.5.
        assert!(y.contains("(sum(rate(engram_write_seconds_bucket{le=\"0.25\"}[5m])) + 0.600000 * (sum(rate(engram_write_seconds_bucket{le=\"0.5\"}[5m])) - sum(rate(engram_write_seconds_bucket{le=\"0.25\"}[5m]))))"), "{y}");
        assert!(y.contains("alert: AvailabilityErrorBudgetFastBurn"));
        assert!(y.contains(
            "slo:availability:error_ratio:rate1h > 0.144000 and slo:availability:error_ratio:rate5m > 0.144000"
        ));
        assert!(y.contains(
            "slo:availability:error_ratio:rate6h > 0.060000 and slo:availability:error_ratio:rate30m > 0.060000"
        ));
        assert!(y.contains("runbook_url: https://x/ops.md#writelatencyerrorbudgetslowburn"));
    }
}
