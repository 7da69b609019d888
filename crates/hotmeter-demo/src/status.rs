//! The live status line and the final summary, read from registry snapshots.
//!
//! Owns: turning two snapshots into per-second figures, and writing lines to
//! stdout (`say`: a closed stdout ends the run instead of a panic). Must not: keep its
//! own counts — what the terminal says is what a scrape of the same
//! registry says (the figures come from the same snapshot an encoder reads).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use hotmeter::native::NativeBuckets;
use hotmeter::{OwnedValue, RegistrySnapshot};
use hotmeter_checkpoint::metrics::{self as checkpoint, WriteStatus};
use hotmeter_streaming::BackpressureState;
use hotmeter_streaming::Priority;
use hotmeter_streaming::metrics as m;

/// Full metric names under an optional namespace.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    namespace: Option<String>,
}

impl Names {
    pub(crate) fn new(namespace: Option<&str>) -> Self {
        Names { namespace: namespace.map(str::to_owned) }
    }

    pub(crate) fn full(&self, base: &str) -> String {
        hotmeter::name::full_name(self.namespace.as_deref(), base)
    }
}

/// Totals read from one snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Tally {
    pub(crate) writes_ok: u64,
    pub(crate) writes_err: u64,
    pub(crate) write_bounds: Vec<f64>,
    pub(crate) write_counts: Vec<u64>,
    /// The write latency's native buckets: quantiles come from these when
    /// present, since the classic buckets' first bound (1 ms) is coarser
    /// than most writes.
    pub(crate) write_native: Option<NativeBuckets>,
    pub(crate) accepted: u64,
    /// Observations processed, from the workers' batch sizes: per-worker
    /// series never leave, where a retired memory space's do.
    pub(crate) processed: u64,
    /// Every series counting refusals, by family and label values: a
    /// window sums each series' own increase, so a memory space whose
    /// series leave (or come back from zero) does not take the others'
    /// increases with it. Refusals through a removed space's handle are
    /// counted pool-wide, in a series that never leaves.
    pub(crate) rejected: BTreeMap<Vec<String>, u64>,
    /// Memory spaces in /metrics (live, and retired ones still lingering).
    pub(crate) spaces: usize,
    pub(crate) depth: [i64; 3],
    pub(crate) state: i64,
    pub(crate) sessions: i64,
    pub(crate) file_size: i64,
}

fn counters(snap: &RegistrySnapshot, name: &str) -> u64 {
    snap.family(name)
        .map_or(0, |f| f.series.iter().map(|s| if let OwnedValue::Counter(n) = s.value { n } else { 0 }).sum())
}

/// Each counter series of the families `names`, keyed by the family's name
/// and the series' label values.
fn counter_series(snap: &RegistrySnapshot, names: &[String]) -> BTreeMap<Vec<String>, u64> {
    let mut series = BTreeMap::new();
    for name in names {
        for s in snap.family(name).into_iter().flat_map(|f| &f.series) {
            if let OwnedValue::Counter(n) = s.value {
                let key = std::iter::once(name.clone()).chain(s.labels.iter().map(|(_, v)| v.to_string())).collect();
                series.insert(key, n);
            }
        }
    }
    series
}

/// How much the counter series in `now` grew since `before`: a series new
/// since then counts from zero, one that went down was reset (removed and
/// started again) and counts from zero too, one gone since counts nothing.
fn increase(before: &BTreeMap<Vec<String>, u64>, now: &BTreeMap<Vec<String>, u64>) -> u64 {
    now.iter()
        .map(|(key, &n)| match before.get(key) {
            Some(&b) if b <= n => n - b,
            _ => n,
        })
        .sum()
}

/// Sum over workers of their batch sizes' sums: observations processed
/// (whole numbers, exact in an `f64` up to 2^53).
fn batch_size_sum(snap: &RegistrySnapshot, name: &str) -> u64 {
    snap.family(name).map_or(0, |f| {
        f.series.iter().map(|s| if let OwnedValue::Histogram { sum, .. } = s.value { sum as u64 } else { 0 }).sum()
    })
}

fn int_gauge(snap: &RegistrySnapshot, name: &str, labels: &[&str]) -> i64 {
    match snap.value(name, labels) {
        Some(OwnedValue::IntGauge(v)) => *v,
        _ => 0,
    }
}

impl Tally {
    pub(crate) fn read(snap: &RegistrySnapshot, names: &Names) -> Tally {
        let writes = names.full(checkpoint::CHECKPOINT_WRITES);
        let count = |status| match snap.value(&writes, &[status]) {
            Some(OwnedValue::Counter(n)) => *n,
            _ => 0,
        };
        let duration = snap.value(&names.full(checkpoint::CHECKPOINT_WRITE_DURATION), &[]);
        let (write_bounds, write_counts) = match duration {
            Some(OwnedValue::Histogram { bounds, counts, .. } | OwnedValue::NativeHistogram { bounds, counts, .. }) => {
                (bounds.clone(), counts.clone())
            }
            _ => (Vec::new(), Vec::new()),
        };
        let write_native = match duration {
            Some(OwnedValue::NativeHistogram { native, .. }) => Some(native.clone()),
            _ => None,
        };
        let depth_name = names.full(m::QUEUE_DEPTH);
        let state = snap.family(&names.full(m::BACKPRESSURE_STATE)).map_or(0, |f| {
            f.series
                .iter()
                .filter_map(|s| if let OwnedValue::IntGauge(v) = s.value { Some(v) } else { None })
                .max()
                .unwrap_or(0)
        });
        Tally {
            writes_ok: count(WriteStatus::Success.as_str()),
            writes_err: count(WriteStatus::Error.as_str()),
            write_bounds,
            write_counts,
            write_native,
            accepted: counters(snap, &names.full(m::OBSERVATIONS)),
            processed: batch_size_sum(snap, &names.full(m::BATCH_SIZE)),
            rejected: {
                let removed = names.full(m::REMOVED_SPACE_USES);
                let mut series = counter_series(snap, &[names.full(m::OBSERVATIONS_REJECTED), removed.clone()]);
                // Of the uses after removal, only submissions were refused.
                series.retain(|key, _| key[0] != removed || key.get(1).is_some_and(|op| op == "submit"));
                series
            },
            spaces: snap.family(&names.full(m::BACKPRESSURE_STATE)).map_or(0, |f| f.series.len()),
            depth: std::array::from_fn(|i| int_gauge(snap, &depth_name, &[Priority::ALL[i].as_str()])),
            state,
            sessions: int_gauge(snap, &names.full(m::ACTIVE_SESSIONS), &[]),
            file_size: int_gauge(snap, &names.full(checkpoint::CHECKPOINT_FILE_SIZE), &[]),
        }
    }

    pub(crate) fn writes(&self) -> u64 {
        self.writes_ok + self.writes_err
    }

    /// P-quantile of write latency over all writes so far, in seconds.
    pub(crate) fn write_quantile(&self, q: f64) -> Option<f64> {
        match &self.write_native {
            Some(native) => native.quantile(q),
            None => hotmeter::expose::histogram_quantile(&self.write_bounds, &self.write_counts, q),
        }
    }
}

/// Rates between two tallies `elapsed` apart.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Window {
    pub(crate) writes_per_sec: f64,
    pub(crate) error_percent: f64,
    pub(crate) p99_write: Option<f64>,
    pub(crate) processed_per_sec: f64,
    pub(crate) rejected: u64,
}

impl Window {
    pub(crate) fn between(before: &Tally, now: &Tally, elapsed: Duration) -> Window {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let writes = now.writes().saturating_sub(before.writes());
        let errors = now.writes_err.saturating_sub(before.writes_err);
        let window_counts: Vec<u64> = if before.write_counts.len() == now.write_counts.len() {
            now.write_counts.iter().zip(&before.write_counts).map(|(a, b)| a.saturating_sub(*b)).collect()
        } else {
            now.write_counts.clone()
        };
        Window {
            writes_per_sec: writes as f64 / secs,
            error_percent: if writes == 0 { 0.0 } else { 100.0 * errors as f64 / writes as f64 },
            p99_write: match (&before.write_native, &now.write_native) {
                (Some(b), Some(n)) => n.since(b).quantile(0.99),
                (None, Some(n)) => n.quantile(0.99),
                _ => hotmeter::expose::histogram_quantile(&now.write_bounds, &window_counts, 0.99),
            },
            processed_per_sec: now.processed.saturating_sub(before.processed) as f64 / secs,
            rejected: increase(&before.rejected, &now.rejected),
        }
    }
}

/// The `level` label of a `streaming_backpressure_state` value, or `unknown`.
pub(crate) fn state_name(v: i64) -> &'static str {
    u8::try_from(v).ok().and_then(BackpressureState::from_value).map_or("unknown", BackpressureState::as_str)
}

/// One status line (no line ending).
pub(crate) fn line(uptime: Duration, w: &Window, now: &Tally) -> String {
    let p99 = match w.p99_write {
        Some(s) => format!("{:>7.1} ms", s * 1e3),
        None => "     -    ".to_owned(),
    };
    format!(
        "[{:>5}s] writes/s {:>6.1} | errors {:>5.2}% | p99 write {p99} | obs/s {:>7.1} | spaces {} | queue h/n/l {}/{}/{} | backpressure {} | rejected/s {}",
        uptime.as_secs(),
        w.writes_per_sec,
        w.error_percent,
        w.processed_per_sec,
        now.spaces,
        now.depth[0],
        now.depth[1],
        now.depth[2],
        state_name(now.state),
        w.rejected,
    )
}

/// Writes to stdout, flushed; false once stdout is gone (a closed pipe, as
/// behind `| head`), which ends the run like Ctrl-C instead of a panic.
pub(crate) fn say(text: std::fmt::Arguments<'_>) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_fmt(text).and_then(|()| out.flush()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review finding D2: the window's refusals summed the series, so a
    /// memory space whose series left took its total with it and the line
    /// said 0 however many others were refused.
    #[test]
    fn refusals_count_each_series_own_increase_as_spaces_come_and_go() {
        let key = |space: &str| vec!["rejected".to_owned(), space.to_owned(), "queue_full".to_owned()];
        let before =
            Tally { rejected: BTreeMap::from([(key("a"), 500), (key("b"), 3), (key("c"), 9)]), ..Tally::default() };
        // `a` left, `b` rose by 1, `c` was removed and came back with 2, `d` is new with 4.
        let now = Tally { rejected: BTreeMap::from([(key("b"), 4), (key("c"), 2), (key("d"), 4)]), ..Tally::default() };
        assert_eq!(Window::between(&before, &now, Duration::from_secs(1)).rejected, 1 + 2 + 4);
    }

    #[test]
    fn a_window_is_the_difference_of_two_tallies() {
        let before = Tally {
            writes_ok: 100,
            writes_err: 0,
            write_bounds: vec![0.001, 0.01],
            write_counts: vec![100, 0, 0],
            processed: 100,
            ..Tally::default()
        };
        let now = Tally {
            writes_ok: 180,
            writes_err: 20,
            write_bounds: vec![0.001, 0.01],
            write_counts: vec![100, 100, 0],
            processed: 300,
            rejected: BTreeMap::from([(vec!["r".to_owned(), "t1".to_owned()], 3)]),
            depth: [1, 2, 3],
            state: 2,
            spaces: 5,
            ..Tally::default()
        };
        let w = Window::between(&before, &now, Duration::from_secs(2));
        assert_eq!(w.writes_per_sec, 50.0);
        assert_eq!(w.error_percent, 20.0);
        assert_eq!(w.processed_per_sec, 100.0);
        // All 100 writes in this window fell in (1 ms, 10 ms]: P99 is in there.
        let p99 = w.p99_write.unwrap();
        assert!(p99 > 0.001 && p99 <= 0.01, "{p99}");
        let text = line(Duration::from_secs(7), &w, &now);
        assert!(text.contains("writes/s   50.0"), "{text}");
        assert!(text.contains("errors 20.00%"), "{text}");
        assert!(text.contains("queue h/n/l 1/2/3"), "{text}");
        assert!(text.contains("| spaces 5 |"), "{text}");
        assert!(text.contains("backpressure critical"), "{text}");
        assert_eq!(state_name(9), "unknown");
    }

    #[test]
    fn native_write_latencies_give_the_windows_own_p99() {
        let native = |positive: Vec<(i32, u64)>| NativeBuckets {
            zero_threshold: 0.0,
            count: positive.iter().map(|b| b.1).sum(),
            positive,
            ..NativeBuckets::empty(3)
        };
        // Key -120 at schema 3 is about 30 µs; key -80 about 1 ms.
        let before = Tally { write_native: Some(native(vec![(-80, 100)])), ..Tally::default() };
        let now = Tally { write_native: Some(native(vec![(-120, 1000), (-80, 100)])), ..Tally::default() };
        let w = Window::between(&before, &now, Duration::from_secs(1));
        let p99 = w.p99_write.unwrap();
        let (lo, hi) = (hotmeter::native::bucket_upper(-121, 3), hotmeter::native::bucket_upper(-120, 3));
        assert!(lo < p99 && p99 <= hi, "{p99} in ({lo}, {hi}]: only this window's writes");
        assert!(now.write_quantile(0.5).unwrap() < 50e-6, "p50 over all writes is a microsecond figure");
    }
}
