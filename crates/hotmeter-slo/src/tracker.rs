//! In-process SLO evaluation from registry snapshots.
//!
//! Owns: the [`SloTracker`] that evaluates definitions over their windows
//! and the [`SloReport`] served as JSON (`GET /slos` in the demo). Must not:
//! keep counts of its own — it reads the snapshots a scrape reads, so the
//! report and Prometheus agree — or hold more samples than its longest
//! window needs.
//!
//! Latency SLOs read classic histograms through their buckets and native
//! histograms through their native buckets (never the classic ones kept
//! alongside): a window is each series' difference of two snapshots
//! ([`NativeBuckets::since`](hotmeter::native::NativeBuckets::since)),
//! summed over the series, its SLI the share at or below the threshold and
//! its quantile Prometheus' estimate from those buckets.

use std::collections::VecDeque;
use std::time::Instant;

use hotmeter::name::full_name;
use hotmeter::{OwnedValue, RegistrySnapshot};
use serde_json::json;

use crate::slo::{Indicator, Slo, SloError};
use hotmeter::native::NativeBuckets;

/// (good, total) events of one SLO in one snapshot. Native histograms
/// count nothing here: their windows come from their buckets ([`Latency`]).
fn events(slo: &Slo, snap: &RegistrySnapshot, namespace: Option<&str>) -> (f64, f64) {
    match &slo.indicator {
        Indicator::Ratio { metric, label, good } => {
            let Some(f) = snap.family(&full_name(namespace, metric)) else { return (0.0, 0.0) };
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
            let Some(f) = snap.family(&full_name(namespace, histogram)) else { return (0.0, 0.0) };
            let (mut g, mut t) = (0.0, 0.0);
            for s in &f.series {
                let OwnedValue::Histogram { bounds, counts, count, .. } = &s.value else { continue };
                if counts.is_empty() {
                    continue;
                }
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

/// A series' labels, as a snapshot lists them.
type SeriesLabels = Vec<(String, String)>;

/// A latency SLO's histogram family in one snapshot.
#[derive(Debug, Clone)]
enum Latency {
    /// Classic buckets, its series summed.
    Classic(Merged),
    /// Native buckets, series by series (sorted by labels): a window is
    /// taken per series and then summed, so a series that goes away while
    /// another comes is neither a reset of the others nor a loss.
    Native(Vec<(SeriesLabels, NativeBuckets)>),
}

impl Latency {
    fn read(snap: &RegistrySnapshot, name: &str) -> Option<Latency> {
        let mut native: Vec<(SeriesLabels, NativeBuckets)> = snap
            .family(name)?
            .series
            .iter()
            .filter_map(|s| match &s.value {
                OwnedValue::NativeHistogram { native, .. } => Some((s.labels.clone(), native.clone())),
                _ => None,
            })
            .collect();
        if native.is_empty() {
            return merged(snap, name).map(Latency::Classic);
        }
        native.sort_by(|a, b| a.0.cmp(&b.0));
        Some(Latency::Native(native))
    }
}

/// The observations between two reads of a native family: each series'
/// own window ([`NativeBuckets::since`] its earlier read, or all of it when
/// it is new), summed at the coarsest schema among them. A series that went
/// away adds nothing (as Prometheus' `rate` over the sum of series).
fn native_window(now: &[(SeriesLabels, NativeBuckets)], then: &[(SeriesLabels, NativeBuckets)]) -> NativeBuckets {
    let mut total: Option<NativeBuckets> = None;
    for (labels, buckets) in now {
        let window = match then.binary_search_by(|(l, _)| l.cmp(labels)) {
            Ok(i) => buckets.since(&then[i].1),
            Err(_) => buckets.clone(),
        };
        match &mut total {
            Some(sum) => sum.add(&window),
            None => total = Some(window),
        }
    }
    total.unwrap_or_else(|| NativeBuckets::empty(0))
}

fn merged(snap: &RegistrySnapshot, name: &str) -> Option<Merged> {
    let mut out: Option<Merged> = None;
    for s in &snap.family(name)?.series {
        if let OwnedValue::Histogram { bounds, counts, .. } = &s.value
            && !counts.is_empty()
        {
            let m = out.get_or_insert_with(|| (bounds.clone(), vec![0; counts.len()]));
            if m.1.len() == counts.len() {
                m.1.iter_mut().zip(counts).for_each(|(a, b)| *a += b);
            }
        }
    }
    out
}

/// One recorded snapshot: when, (good, total) per SLO, and summed buckets
/// per latency SLO.
type Sample = (Instant, Vec<(f64, f64)>, Vec<Option<Latency>>);

/// Evaluates SLOs from registry snapshots fed to it over time. Memory is
/// bounded: samples older than the longest window are dropped.
#[derive(Debug)]
pub struct SloTracker {
    slos: Vec<Slo>,
    namespace: Option<String>,
    samples: VecDeque<Sample>,
}

impl SloTracker {
    /// A tracker for these SLOs, reading metrics under `namespace`.
    pub fn new(slos: Vec<Slo>, namespace: Option<&str>) -> Result<Self, SloError> {
        slos.iter().try_for_each(Slo::validate)?;
        Ok(SloTracker { slos, namespace: namespace.map(str::to_owned), samples: VecDeque::new() })
    }

    /// The definitions.
    pub fn slos(&self) -> &[Slo] {
        &self.slos
    }

    /// Records one snapshot taken at `at`.
    pub fn record(&mut self, at: Instant, snap: &RegistrySnapshot) {
        let counts = self.slos.iter().map(|s| events(s, snap, self.namespace.as_deref())).collect();
        // Cumulative buckets per latency SLO, for windowed quantiles (and a
        // native histogram's whole window).
        let buckets = self
            .slos
            .iter()
            .map(|s| match &s.indicator {
                Indicator::Latency { histogram, .. } => {
                    Latency::read(snap, &full_name(self.namespace.as_deref(), histogram))
                }
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
                    (Some((_, s, sb)), Some((_, e, eb))) => match (&sb[i], &eb[i], &slo.indicator) {
                        // Native: the window's own buckets (none before: all of them).
                        (before, Some(Latency::Native(now)), Indicator::Latency { threshold, .. }) => {
                            let then = match before {
                                Some(Latency::Native(then)) => then.as_slice(),
                                _ => &[],
                            };
                            let window = native_window(now, then);
                            (window.at_or_below(*threshold), window.count as f64, window.quantile(slo.objective))
                        }
                        (Some(Latency::Classic((_, c0))), Some(Latency::Classic((bounds, c1))), _)
                            if c0.len() == c1.len() =>
                        {
                            let window: Vec<u64> = c1.iter().zip(c0).map(|(a, b)| a.saturating_sub(*b)).collect();
                            let q = hotmeter::expose::histogram_quantile(bounds, &window, slo.objective);
                            (e[i].0 - s[i].0, e[i].1 - s[i].1, q)
                        }
                        _ => (e[i].0 - s[i].0, e[i].1 - s[i].1, None),
                    },
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::slo::Indicator;
    use hotmeter::{Buckets, Counter, Family, NativeHistogram, NativeOpts, Registry};
    use std::time::Duration;

    hotmeter::label_enum! {
        enum Status: "status" { Success = "success", Error = "error" }
    }

    pub(crate) fn slos() -> Vec<Slo> {
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
        let writes: Family<Status, Counter> = r.typed_family("writes_total", "w", Counter::new).unwrap();
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

    /// One latency SLO on `write_seconds`: P95 at or below `threshold`.
    fn latency_slo(threshold: f64) -> Slo {
        Slo {
            name: "write-latency".into(),
            description: "P95 write latency.".into(),
            indicator: Indicator::Latency {
                histogram: "write_seconds".into(),
                threshold,
                bounds: vec![0.1, 0.25, 0.5, 1.0],
            },
            objective: 0.95,
            window: Duration::from_secs(60),
        }
    }

    fn native(value: &OwnedValue) -> (i8, Vec<(i32, u64)>) {
        let OwnedValue::NativeHistogram { native, .. } = value else { panic!("{value:?}") };
        (native.schema, native.positive.clone())
    }

    #[test]
    fn native_histograms_are_read_through_their_native_buckets() {
        let r = Registry::new();
        let opts = NativeOpts::new().classic(Buckets::new([0.1, 0.25, 0.5, 1.0]).unwrap());
        let lat = r.native_histogram("write_seconds", "l", opts.clone()).unwrap();
        // The same window's observations alone, for the expected quantile.
        let alone = NativeHistogram::new(opts);
        // 0.3 is in the schema 3 bucket (2^-1.75, 2^-1.625] = (0.2973, 0.3242].
        let (lower, upper) = (hotmeter::native::bucket_upper(-14, 3), hotmeter::native::bucket_upper(-13, 3));
        assert!(lower < 0.3 && 0.3 <= upper, "{lower} {upper}");
        let threshold_inside = lower + 0.25 * (upper - lower);
        let mut t = SloTracker::new(vec![latency_slo(0.4), latency_slo(threshold_inside)], None).unwrap();
        let t0 = Instant::now();
        // Before the window: 1000 slow writes, which must not count.
        for _ in 0..1000 {
            lat.observe(2.0);
        }
        t.record(t0, &r.snapshot());
        t.record(t0 + Duration::from_secs(100), &r.snapshot());
        // In the window: 90 fast, 10 at 0.3.
        for v in std::iter::repeat_n(0.05, 90).chain(std::iter::repeat_n(0.3, 10)) {
            lat.observe(v);
            alone.observe(v);
        }
        t.record(t0 + Duration::from_secs(130), &r.snapshot());
        let rep = t.report();
        // Every window write is at or below 0.4 s: the classic buckets would
        // have put 0.3 in (0.25, 0.5] and counted only 60% of those 10 good.
        let l = &rep.slos[0];
        assert_eq!((l.events, l.sli, l.met), (100.0, 1.0, true));
        assert_eq!(l.quantile_seconds, alone.snapshot().quantile(0.95));
        let q = l.quantile_seconds.unwrap();
        assert!(lower < q && q <= upper, "{q}");
        // A threshold a quarter into 0.3's bucket: 90 + 10 / 4 good.
        let inside = &rep.slos[1];
        assert!((inside.sli - 0.925).abs() < 1e-12, "{}", inside.sli);
        assert!(!inside.met);
        // The report's JSON is the same shape for either kind of histogram.
        let json: serde_json::Value = serde_json::from_str(&rep.to_json(t.slos())).unwrap();
        assert_eq!(json["slos"][0]["current"], serde_json::json!(q));
        assert_eq!(json["slos"][0]["events"], 100.0);
    }

    #[test]
    fn a_window_across_a_schema_drop_merges_the_older_snapshot_down() {
        // No classic buckets at all (those would have given no events), and
        // at most 8 buckets: a wide spread of values reduces the resolution.
        let r = Registry::new();
        let lat = r.native_histogram("write_seconds", "l", NativeOpts::new().max_buckets(8).unwrap()).unwrap();
        // 0.5 = 2^-1 is a bucket bound at every schema >= 0, so the SLI is
        // exact whatever schema the window ends at.
        let mut t = SloTracker::new(vec![latency_slo(0.5)], None).unwrap();
        let t0 = Instant::now();
        for _ in 0..1000 {
            lat.observe(0.01); // before the window, all good
        }
        t.record(t0, &r.snapshot());
        let before = r.snapshot();
        let (schema_before, buckets_before) = native(&before.families[0].series[0].value);
        assert_eq!((schema_before, buckets_before.len()), (3, 1));
        // In the window: 50 in [0.1, 0.5], 50 in [0.6, 1.0).
        for i in 0..50 {
            lat.observe(0.1 + 0.008 * f64::from(i));
            lat.observe(0.6 + 0.008 * f64::from(i));
        }
        let after = r.snapshot();
        let (schema_after, _) = native(&after.families[0].series[0].value);
        assert!((0..3).contains(&schema_after), "the resolution dropped to {schema_after}");
        t.record(t0 + Duration::from_secs(30), &after);
        let l = &t.report().slos[0];
        // Only the window's 100, half of them good: the older snapshot's
        // 1000 fast writes were subtracted at the new schema.
        assert_eq!((l.events, l.sli, l.met), (100.0, 0.5, false));
        let q = l.quantile_seconds.unwrap();
        assert!((0.6..=1.0).contains(&q), "{q}");
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
}
