//! Backpressure: a state from queue utilisation, with hysteresis, and what
//! each state sheds.
//!
//! Owns: the state machine ([`BackpressureMonitor::update`], a pure function
//! of the previous state and the utilisation) and the shedding policy
//! ([`BackpressureState::sheds`]). Must not: read the queue or record
//! metrics itself; the pool's monitor thread feeds it utilisation and
//! publishes the state to the queue and the gauges.
//!
//! ```text
//! utilisation  0 ──────── 0.50 ─ 0.60 ──── 0.70 ─ 0.80 ──── 0.85 ─ 0.95 ──── 1
//!  rises past        enter Warning     enter Critical      enter Overloaded
//!  falls below  leave Warning     leave Critical      leave Overloaded
//!               (enter − hysteresis 0.10)
//! ```
//! | state | value | sheds |
//! |---|---|---|
//! | Normal | 0 | nothing |
//! | Warning | 1 | nothing (advisory: scale soon) |
//! | Critical | 2 | `low` priority |
//! | Overloaded | 3 | `low` and `normal`; `high` is refused only when its lane is full |

use std::fmt;

use crate::labels::{BackpressureState, Priority};

impl BackpressureState {
    /// Whether an observation of this priority is refused in this state.
    pub const fn sheds(self, priority: Priority) -> bool {
        match self {
            Self::Normal | Self::Warning => false,
            Self::Critical => matches!(priority, Priority::Low),
            Self::Overloaded => !matches!(priority, Priority::High),
        }
    }
}

/// Utilisation (0 to 1) at which each state is entered, and how far it must
/// fall below that before the state is left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackpressureThresholds {
    /// Enter Warning at or above this utilisation (default 0.60).
    pub warning: f64,
    /// Enter Critical at or above this (default 0.80).
    pub critical: f64,
    /// Enter Overloaded at or above this (default 0.95).
    pub overloaded: f64,
    /// A state is left when utilisation falls below its entry threshold
    /// minus this (default 0.10).
    pub hysteresis: f64,
}

impl Default for BackpressureThresholds {
    fn default() -> Self {
        BackpressureThresholds { warning: 0.60, critical: 0.80, overloaded: 0.95, hysteresis: 0.10 }
    }
}

/// Thresholds that cannot form a state machine.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum ThresholdError {
    /// Entry thresholds must satisfy 0 < warning < critical < overloaded <= 1 (none NaN).
    NotIncreasing {
        /// The thresholds given.
        given: BackpressureThresholds,
    },
    /// Hysteresis must be at least 0 and below the warning threshold.
    Hysteresis {
        /// The value given.
        hysteresis: f64,
    },
}

impl fmt::Display for ThresholdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThresholdError::NotIncreasing { given } => write!(
                f,
                "backpressure thresholds must satisfy 0 < warning < critical < overloaded <= 1; got {} / {} / {}",
                given.warning, given.critical, given.overloaded
            ),
            ThresholdError::Hysteresis { hysteresis } => {
                write!(f, "backpressure hysteresis must be >= 0 and below the warning threshold; got {hysteresis}")
            }
        }
    }
}

impl std::error::Error for ThresholdError {}

impl BackpressureThresholds {
    /// Checks the thresholds can form a state machine.
    pub fn validate(&self) -> Result<(), ThresholdError> {
        let ok = 0.0 < self.warning
            && self.warning < self.critical
            && self.critical < self.overloaded
            && self.overloaded <= 1.0;
        if !ok {
            return Err(ThresholdError::NotIncreasing { given: *self });
        }
        if !(self.hysteresis >= 0.0 && self.hysteresis < self.warning) {
            return Err(ThresholdError::Hysteresis { hysteresis: self.hysteresis });
        }
        Ok(())
    }

    fn enter(&self, state: BackpressureState) -> f64 {
        match state {
            BackpressureState::Normal => 0.0,
            BackpressureState::Warning => self.warning,
            BackpressureState::Critical => self.critical,
            BackpressureState::Overloaded => self.overloaded,
        }
    }
}

/// Exit thresholds are differences of decimals (0.80 − 0.10 is
/// 0.7000000000000001 in binary); this tolerance makes them mean what they say.
const EXIT_TOLERANCE: f64 = 1e-9;

/// A change of state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The state before.
    pub from: BackpressureState,
    /// The state after.
    pub to: BackpressureState,
}

impl Transition {
    /// Whether this raised the state: an activation, counted once at the
    /// level entered (a jump from Normal to Critical counts one Critical
    /// activation).
    pub fn is_activation(&self) -> bool {
        self.to > self.from
    }
}

/// The backpressure state machine. One owner updates it; see the module
/// docs for thresholds and shedding.
#[derive(Debug, Clone)]
pub struct BackpressureMonitor {
    thresholds: BackpressureThresholds,
    state: BackpressureState,
}

impl BackpressureMonitor {
    /// A monitor in state Normal.
    pub fn new(thresholds: BackpressureThresholds) -> Result<Self, ThresholdError> {
        thresholds.validate()?;
        Ok(BackpressureMonitor { thresholds, state: BackpressureState::Normal })
    }

    /// The current state.
    pub fn state(&self) -> BackpressureState {
        self.state
    }

    /// The thresholds in use.
    pub fn thresholds(&self) -> BackpressureThresholds {
        self.thresholds
    }

    /// Feeds one utilisation reading (queued / capacity, 0 to 1; NaN reads
    /// as 0) and returns the transition it caused, if any.
    ///
    /// Rising: the state becomes the highest one whose entry threshold the
    /// reading reaches, if that is above the current one. Otherwise the
    /// state becomes the highest state, at most the current one, whose exit
    /// threshold (entry − hysteresis) the reading still reaches.
    pub fn update(&mut self, utilization: f64) -> Option<Transition> {
        let u = if utilization.is_nan() { 0.0 } else { utilization };
        let t = &self.thresholds;
        let rising = BackpressureState::ALL.iter().rev().copied().find(|&s| u >= t.enter(s));
        let next = match rising {
            Some(s) if s > self.state => s,
            _ => BackpressureState::ALL
                .iter()
                .rev()
                .copied()
                .filter(|&s| s <= self.state)
                .find(|&s| s == BackpressureState::Normal || u + EXIT_TOLERANCE >= t.enter(s) - t.hysteresis)
                .unwrap_or(BackpressureState::Normal),
        };
        if next == self.state {
            return None;
        }
        let transition = Transition { from: self.state, to: next };
        self.state = next;
        Some(transition)
    }
}

#[cfg(test)]
mod tests {
    use super::BackpressureState::*;
    use super::*;

    fn run(readings: &[f64]) -> Vec<BackpressureState> {
        let mut m = BackpressureMonitor::new(BackpressureThresholds::default()).unwrap();
        readings
            .iter()
            .map(|&u| {
                m.update(u);
                m.state()
            })
            .collect()
    }

    #[test]
    fn enters_each_state_exactly_at_its_threshold() {
        assert_eq!(run(&[0.0, 0.5999, 0.60]), [Normal, Normal, Warning]);
        assert_eq!(run(&[0.7999, 0.80]), [Warning, Critical]);
        assert_eq!(run(&[0.9499, 0.95, 1.0]), [Critical, Overloaded, Overloaded]);
    }

    #[test]
    fn leaves_only_below_the_exit_threshold() {
        // Warning is left below 0.50, not at it.
        assert_eq!(run(&[0.60, 0.55, 0.50, 0.4999]), [Warning, Warning, Warning, Normal]);
        // Overloaded falls to Critical below 0.85, to Warning below 0.70.
        assert_eq!(
            run(&[0.96, 0.85, 0.8499, 0.70, 0.6999, 0.49]),
            [Overloaded, Overloaded, Critical, Critical, Warning, Normal]
        );
        // A big drop goes straight to the state the reading supports.
        assert_eq!(run(&[0.99, 0.10]), [Overloaded, Normal]);
    }

    #[test]
    fn does_not_flap_around_a_threshold() {
        let mut m = BackpressureMonitor::new(BackpressureThresholds::default()).unwrap();
        let mut transitions = 0;
        for i in 0..1000 {
            // Oscillate ±5 points around the Warning threshold.
            let u = if i % 2 == 0 { 0.62 } else { 0.56 };
            transitions += usize::from(m.update(u).is_some());
        }
        assert_eq!(transitions, 1, "one activation, then it holds Warning");
        assert_eq!(m.state(), Warning);
    }

    #[test]
    fn jumps_count_one_activation_at_the_level_entered() {
        let mut m = BackpressureMonitor::new(BackpressureThresholds::default()).unwrap();
        let t = m.update(0.9).unwrap();
        assert_eq!(t, Transition { from: Normal, to: Critical });
        assert!(t.is_activation());
        let down = m.update(0.0).unwrap();
        assert!(!down.is_activation());
        assert_eq!(m.update(f64::NAN), None, "NaN reads as 0: stays Normal");
    }

    #[test]
    fn shedding_policy() {
        use Priority::*;
        assert!(!Warning.sheds(Low));
        assert!(Critical.sheds(Low) && !Critical.sheds(Normal));
        assert!(Overloaded.sheds(Low) && Overloaded.sheds(Normal) && !Overloaded.sheds(High));
        assert!(Priority::ALL.iter().all(|&p| !BackpressureState::Normal.sheds(p)));
    }

    #[test]
    fn bad_thresholds_are_typed_errors() {
        let d = BackpressureThresholds::default();
        for bad in [
            BackpressureThresholds { warning: 0.9, ..d },
            BackpressureThresholds { overloaded: 1.5, ..d },
            BackpressureThresholds { critical: f64::NAN, ..d },
            BackpressureThresholds { warning: 0.0, ..d },
        ] {
            assert!(matches!(BackpressureMonitor::new(bad), Err(ThresholdError::NotIncreasing { .. })), "{bad:?}");
        }
        for h in [-0.1, 0.6, f64::NAN] {
            let bad = BackpressureThresholds { hysteresis: h, ..d };
            assert!(matches!(bad.validate(), Err(ThresholdError::Hysteresis { .. })), "{h}");
        }
    }
}
