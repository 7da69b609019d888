//! `NativeBuckets::since` reads a reset as Prometheus' `DetectReset` does:
//! the count, the zero bucket or any bucket going down, or the schema going
//! up, is a new series, and the window is then all of it. A reset whose new
//! count has already passed the old one must not be subtracted bucket by
//! bucket (observations would vanish, the window's count would disagree
//! with its buckets and its sum could go negative).

use hotmeter::native::NativeBuckets;
use hotmeter::{NativeHistogram, NativeOpts};

fn bucket_total(b: &NativeBuckets) -> u64 {
    b.zero_count + b.positive.iter().chain(&b.negative).map(|x| x.1).sum::<u64>()
}

fn observed(values: impl IntoIterator<Item = f64>) -> NativeBuckets {
    let h = NativeHistogram::new(NativeOpts::new());
    for v in values {
        h.observe(v);
    }
    h.snapshot().native
}

/// The series was reset (a new process, or a series that expired and came
/// back, the two cases `since`'s docs name) and saw more observations than
/// before by the next read: the count went up, but a bucket went down.
#[test]
fn since_treats_a_bucket_that_went_down_as_a_reset_even_when_the_count_grew() {
    let earlier = observed(std::iter::repeat_n(2.0, 10));
    let now = observed(std::iter::repeat_n(0.01, 15));
    assert!(now.count > earlier.count);
    let w = now.since(&earlier);
    assert_eq!(w.count, bucket_total(&w), "the window's count disagrees with its own buckets: {w:?}");
    assert!(w.at_or_below(1.0) <= w.count as f64, "more observations at or below 1 s than in the window: {w:?}");
    assert!(w.sum >= 0.0, "a window of positive observations with a negative sum: {w:?}");
    // Prometheus: a bucket that went down is a reset, and the window is everything since it.
    assert_eq!(w, now);
}

/// A scrape's resolution only goes down within a series' life (the docs of
/// `since` say so), so a finer schema than before is a new series: Prometheus
/// calls it a reset. `since` instead merges the new buckets down to the old
/// schema and subtracts, losing the earlier observations' worth of the new ones.
#[test]
fn since_treats_a_finer_schema_than_before_as_a_reset() {
    // Earlier: 5 observations in (1, 2] at schema 0.
    let earlier = NativeBuckets { positive: vec![(1, 5)], count: 5, sum: 7.5, ..NativeBuckets::empty(0) };
    // Now, a new series at schema 3: 8 observations in (1, 2].
    let now = observed(std::iter::repeat_n(1.5, 8));
    assert_eq!(now.schema, 3);
    let w = now.since(&earlier);
    assert_eq!((w.schema, w.count), (3, 8), "the reset was read as a continuation: {w:?}");
}

/// The zero bucket went down while the count grew: a reset for Prometheus.
#[test]
fn since_treats_a_zero_bucket_that_went_down_as_a_reset() {
    let earlier = observed(std::iter::repeat_n(0.0, 10));
    let now = observed(std::iter::repeat_n(1.5, 12));
    let w = now.since(&earlier);
    assert_eq!(w.count, bucket_total(&w), "the window's count disagrees with its own buckets: {w:?}");
    assert_eq!(w, now);
}
