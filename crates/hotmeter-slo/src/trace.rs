//! Trace continuity across pipeline stages.
//!
//! Owns: which stages each live trace has passed, for a bounded time and a
//! bounded number of traces, and `trace_incomplete_total{missing_stage}`.
//! Must not: grow without bound (traces expire after a time to live, and
//! the oldest are evicted beyond the cap) or be put on a per-observation
//! hot path of a fast pipeline (it takes a mutex; trace a sample).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use hotmeter::{Counter, Registry, RegistryError, StringFamily};

/// `trace_incomplete_total{missing_stage}`.
pub const TRACE_INCOMPLETE: &str = "trace_incomplete_total";

/// The result of [`TraceTracker::validate`].
#[derive(Debug, Clone, PartialEq)]
pub enum TraceReport {
    /// Every expected stage was seen.
    Complete {
        /// From the first stage recorded to the last.
        end_to_end: Duration,
    },
    /// Some expected stages were not seen (each counted once in
    /// `trace_incomplete_total{missing_stage}`).
    Incomplete {
        /// The stages not seen, in the order expected.
        missing: Vec<String>,
        /// From the first stage recorded to the last one seen.
        so_far: Duration,
    },
    /// The trace was never recorded, or has expired or been evicted.
    Unknown,
}

/// A stage the tracker was not built with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStage(pub String);

impl std::fmt::Display for UnknownStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown trace stage {:?}: stages are fixed when the tracker is built", self.0)
    }
}

impl std::error::Error for UnknownStage {}

#[derive(Debug)]
struct Trace {
    first: Instant,
    last: Instant,
    /// Bit `i` set once stage `i` was recorded.
    seen: u64,
}

#[derive(Debug, Default)]
struct Traces {
    live: HashMap<Box<str>, Trace>,
    /// Insertion order, for expiry and eviction (may hold ids already gone).
    order: VecDeque<(Instant, Box<str>)>,
}

/// Records which stages traces passed and validates them.
///
/// ```
/// use std::time::Duration;
/// use hotmeter_slo::{TraceReport, TraceTracker};
/// let registry = hotmeter::Registry::new();
/// let t = TraceTracker::new(&registry, &["enqueue", "process", "write"], Duration::from_secs(60), 10_000)?;
/// t.record("abc", "enqueue")?;
/// t.record("abc", "process")?;
/// let TraceReport::Incomplete { missing, .. } = t.validate("abc", &["enqueue", "process", "write"])? else { panic!() };
/// assert_eq!(missing, ["write"]);
/// assert_eq!(
///     registry.snapshot().value("trace_incomplete_total", &["write"]),
///     Some(&hotmeter::OwnedValue::Counter(1))
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct TraceTracker {
    stages: Vec<String>,
    incomplete: Vec<Counter>,
    ttl: Duration,
    max_traces: usize,
    traces: Mutex<Traces>,
}

impl TraceTracker {
    /// A tracker for up to 64 named `stages`, keeping each trace at most
    /// `ttl` and at most `max_traces` traces at once.
    pub fn new(registry: &Registry, stages: &[&str], ttl: Duration, max_traces: usize) -> Result<Self, RegistryError> {
        // Built here, not by `labeled_family`: a registry's default idle
        // timeout must not expire series whose handles the tracker keeps.
        let family = registry.register(
            hotmeter::Opts::new(TRACE_INCOMPLETE, "Traces validated with a stage missing, by the stage missing."),
            StringFamily::new(&["missing_stage"], Counter::new),
        )?;
        let stages: Vec<String> = stages.iter().take(64).map(|s| (*s).to_owned()).collect();
        let incomplete = stages.iter().map(|s| family.get(&[s]).expect("one label")).collect();
        Ok(TraceTracker { stages, incomplete, ttl, max_traces: max_traces.max(1), traces: Mutex::default() })
    }

    fn stage(&self, name: &str) -> Result<usize, UnknownStage> {
        self.stages.iter().position(|s| s == name).ok_or_else(|| UnknownStage(name.to_owned()))
    }

    /// Records that `trace_id` passed `stage` now.
    pub fn record(&self, trace_id: &str, stage: &str) -> Result<(), UnknownStage> {
        let bit = 1u64 << self.stage(stage)?;
        let now = Instant::now();
        let mut t = self.traces.lock().unwrap_or_else(PoisonError::into_inner);
        self.expire(&mut t, now);
        if let Some(trace) = t.live.get_mut(trace_id) {
            trace.seen |= bit;
            trace.last = now;
            return Ok(());
        }
        while t.live.len() >= self.max_traces {
            match t.order.pop_front() {
                Some((_, old)) => {
                    t.live.remove(&old);
                }
                None => break,
            }
        }
        let id: Box<str> = trace_id.into();
        t.live.insert(id.clone(), Trace { first: now, last: now, seen: bit });
        t.order.push_back((now, id));
        Ok(())
    }

    fn expire(&self, t: &mut Traces, now: Instant) {
        while let Some((at, _)) = t.order.front() {
            if now.saturating_duration_since(*at) < self.ttl {
                break;
            }
            if let Some((_, id)) = t.order.pop_front() {
                t.live.remove(&id);
            }
        }
    }

    /// Checks that `trace_id` passed every stage in `expected`, then forgets
    /// it. Missing stages are counted once each.
    pub fn validate(&self, trace_id: &str, expected: &[&str]) -> Result<TraceReport, UnknownStage> {
        let wanted: Vec<usize> = expected.iter().map(|s| self.stage(s)).collect::<Result<_, _>>()?;
        let mut t = self.traces.lock().unwrap_or_else(PoisonError::into_inner);
        self.expire(&mut t, Instant::now());
        let Some(trace) = t.live.remove(trace_id) else { return Ok(TraceReport::Unknown) };
        let span = trace.last.saturating_duration_since(trace.first);
        let missing: Vec<usize> = wanted.into_iter().filter(|&i| trace.seen & (1 << i) == 0).collect();
        if missing.is_empty() {
            return Ok(TraceReport::Complete { end_to_end: span });
        }
        for &i in &missing {
            self.incomplete[i].inc();
        }
        Ok(TraceReport::Incomplete {
            missing: missing.into_iter().map(|i| self.stages[i].clone()).collect(),
            so_far: span,
        })
    }

    /// Traces held now.
    pub fn len(&self) -> usize {
        self.traces.lock().unwrap_or_else(PoisonError::into_inner).live.len()
    }

    /// Whether no trace is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAGES: [&str; 4] = ["generate", "enqueue", "process", "checkpoint_write"];

    #[test]
    fn complete_incomplete_unknown() {
        let r = Registry::new();
        let t = TraceTracker::new(&r, &STAGES, Duration::from_secs(60), 100).unwrap();
        for s in STAGES {
            t.record("a", s).unwrap();
        }
        assert!(matches!(t.validate("a", &STAGES).unwrap(), TraceReport::Complete { .. }));
        assert_eq!(t.validate("a", &STAGES).unwrap(), TraceReport::Unknown, "validated traces are forgotten");
        t.record("b", "generate").unwrap();
        t.record("b", "process").unwrap();
        let TraceReport::Incomplete { missing, .. } = t.validate("b", &STAGES).unwrap() else { panic!() };
        assert_eq!(missing, ["enqueue", "checkpoint_write"]);
        let snap = r.snapshot();
        assert_eq!(snap.value(TRACE_INCOMPLETE, &["enqueue"]), Some(&hotmeter::OwnedValue::Counter(1)));
        assert_eq!(snap.value(TRACE_INCOMPLETE, &["generate"]), Some(&hotmeter::OwnedValue::Counter(0)));
        assert_eq!(t.record("c", "teleport"), Err(UnknownStage("teleport".into())));
        assert!(t.validate("c", &["teleport"]).is_err());
    }

    #[test]
    fn memory_is_bounded_by_count_and_time() {
        let r = Registry::new();
        let t = TraceTracker::new(&r, &STAGES, Duration::from_secs(60), 10).unwrap();
        for i in 0..1000 {
            t.record(&i.to_string(), "generate").unwrap();
        }
        assert_eq!(t.len(), 10);
        assert_eq!(t.validate("0", &STAGES).unwrap(), TraceReport::Unknown, "the oldest were evicted");
        assert!(matches!(t.validate("999", &STAGES).unwrap(), TraceReport::Incomplete { .. }));
        let short = TraceTracker::new(&r, &STAGES, Duration::from_millis(20), 100).unwrap();
        short.record("x", "generate").unwrap();
        std::thread::sleep(Duration::from_millis(40));
        short.record("y", "generate").unwrap();
        assert_eq!(short.len(), 1, "x expired");
        assert_eq!(short.validate("x", &STAGES).unwrap(), TraceReport::Unknown);
    }
}
