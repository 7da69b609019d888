//! Windowed write rates from the engine's own counters: the in-process
//! source of migration inputs, no server needed.
//!
//! Owns: a bounded ring of (time, successes, errors) samples. Must not:
//! read the registry itself (the caller pushes totals) or grow past `keep`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Samples of the checkpoint write counters over time. Push a sample
/// (successes and errors so far) now and then, e.g. once a second; ask for
/// the rates over a window. Memory is bounded by the sample count kept.
#[derive(Debug, Clone)]
pub struct WriteWindow {
    samples: VecDeque<(Instant, u64, u64)>,
    keep: usize,
}

impl WriteWindow {
    /// A window keeping at most `keep` samples (at least 2).
    pub fn new(keep: usize) -> Self {
        WriteWindow { samples: VecDeque::new(), keep: keep.max(2) }
    }

    /// Records the counters' totals at `at`.
    pub fn push(&mut self, at: Instant, successes: u64, errors: u64) {
        self.samples.push_back((at, successes, errors));
        while self.samples.len() > self.keep {
            self.samples.pop_front();
        }
    }

    /// (writes per second, error percentage) between the newest sample and
    /// the oldest one at most `window` older; `None` without two samples or
    /// with no elapsed time. No writes in the window reads as 0% errors.
    pub fn rates(&self, window: Duration) -> Option<(f64, f64)> {
        let &(t1, ok1, err1) = self.samples.back()?;
        let &(t0, ok0, err0) = self.samples.iter().find(|(t, _, _)| t1.saturating_duration_since(*t) <= window)?;
        let secs = t1.saturating_duration_since(t0).as_secs_f64();
        if secs <= 0.0 {
            return None;
        }
        let (ok, err) = (ok1.saturating_sub(ok0), err1.saturating_sub(err0));
        let total = ok + err;
        let pct = if total == 0 { 0.0 } else { 100.0 * err as f64 / total as f64 };
        Some((total as f64 / secs, pct))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_over_the_window() {
        let t = Instant::now();
        let mut w = WriteWindow::new(100);
        assert_eq!(w.rates(Duration::from_secs(60)), None);
        w.push(t, 0, 0);
        assert_eq!(w.rates(Duration::from_secs(60)), None, "one sample is no rate");
        w.push(t + Duration::from_secs(10), 980, 20);
        assert_eq!(w.rates(Duration::from_secs(60)), Some((100.0, 2.0)));
        w.push(t + Duration::from_secs(20), 1980, 20);
        // The last 10 s only: 1000 writes, none failed.
        assert_eq!(w.rates(Duration::from_secs(10)), Some((100.0, 0.0)));
        // Bounded: the oldest samples go.
        let mut small = WriteWindow::new(2);
        for i in 0..5u64 {
            small.push(t + Duration::from_secs(i), i * 10, 0);
        }
        assert_eq!(small.rates(Duration::from_secs(60)), Some((10.0, 0.0)));
    }
}
