//! Native-histogram buckets as the SLO tracker reads them: a family's
//! series summed, the observations between two snapshots, and a window's
//! latency SLI and quantile.
//!
//! Owns: [`NativeSum`]. Must not: estimate differently from Prometheus —
//! quantiles are [`hotmeter::native_quantile`]'s, and the share at or below
//! a threshold interpolates linearly inside the bucket that holds it, the
//! model Prometheus 2.x uses for native buckets in `histogram_quantile` and
//! `histogram_fraction` — nor read a native histogram's classic buckets.

use hotmeter::{NativeBuckets, OwnedValue, bucket_upper, merge_down, native_quantile};

/// A native histogram's buckets, owned: one series, several summed, or the
/// difference of two snapshots. `count` is the zero bucket plus every
/// bucket, as in the snapshots it comes from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NativeSum {
    pub(crate) schema: i8,
    pub(crate) zero_threshold: f64,
    pub(crate) zero_count: u64,
    pub(crate) count: u64,
    pub(crate) sum: f64,
    /// Populated positive buckets `(key, count)`, ascending, no zero counts.
    pub(crate) positive: Vec<(i32, u64)>,
    /// Populated negative buckets by `|v|`, as `positive`.
    pub(crate) negative: Vec<(i32, u64)>,
}

impl NativeSum {
    /// The native buckets of `value`, if it is a native histogram.
    pub(crate) fn of(value: &OwnedValue) -> Option<Self> {
        let OwnedValue::NativeHistogram { schema, zero_threshold, zero_count, count, sum, positive, negative, .. } =
            value
        else {
            return None;
        };
        Some(NativeSum {
            schema: *schema,
            zero_threshold: *zero_threshold,
            zero_count: *zero_count,
            count: *count,
            sum: *sum,
            positive: positive.clone(),
            negative: negative.clone(),
        })
    }

    /// Brings the buckets down to `schema` (at most the current one) and
    /// widens the zero bucket to at least `zero_threshold`. Merging down is
    /// exact (every coarser bound is a finer one); a bucket that lies wholly
    /// within the wider zero bucket joins it, one that straddles its edge
    /// stays.
    fn reduce(&mut self, schema: i8, zero_threshold: f64) {
        debug_assert!(schema <= self.schema);
        let by = (self.schema - schema) as u32;
        merge_down(&mut self.positive, by);
        merge_down(&mut self.negative, by);
        self.schema = schema;
        if zero_threshold > self.zero_threshold {
            self.zero_threshold = zero_threshold;
            for side in [&mut self.positive, &mut self.negative] {
                let inside = side.partition_point(|&(k, _)| bucket_upper(k, schema) <= zero_threshold);
                self.zero_count += side.drain(..inside).map(|(_, c)| c).sum::<u64>();
            }
        }
    }

    /// Both at the coarser schema and the wider zero bucket of the two.
    fn align(a: &mut Self, b: &mut Self) {
        let (schema, zero) = (a.schema.min(b.schema), a.zero_threshold.max(b.zero_threshold));
        a.reduce(schema, zero);
        b.reduce(schema, zero);
    }

    /// Adds another series' buckets (series of one family share their
    /// options, but each may have reduced its resolution on its own).
    pub(crate) fn add(&mut self, other: &NativeSum) {
        let mut other = other.clone();
        Self::align(self, &mut other);
        self.positive = combine(&self.positive, &other.positive, |a, b| a + b);
        self.negative = combine(&self.negative, &other.negative, |a, b| a + b);
        self.zero_count += other.zero_count;
        self.count += other.count;
        self.sum += other.sum;
    }

    /// The observations since `earlier`, a snapshot of the same family.
    ///
    /// The resolution a scrape reports only goes down, so when it dropped in
    /// between, `earlier` is merged down to this schema first: exact, the
    /// window keeps every observation and the coarser buckets. A count that
    /// went down means the histogram was reset (a new process): as
    /// Prometheus' `rate` does, the window is then everything since the reset.
    pub(crate) fn since(&self, earlier: &NativeSum) -> NativeSum {
        if self.count < earlier.count {
            return self.clone();
        }
        let (mut now, mut then) = (self.clone(), earlier.clone());
        Self::align(&mut now, &mut then);
        let sub = |a: u64, b: u64| a.saturating_sub(b);
        NativeSum {
            positive: combine(&now.positive, &then.positive, sub),
            negative: combine(&now.negative, &then.negative, sub),
            zero_count: now.zero_count.saturating_sub(then.zero_count),
            count: now.count - then.count,
            sum: now.sum - then.sum,
            ..now
        }
    }

    fn buckets(&self) -> NativeBuckets<'_> {
        NativeBuckets {
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            zero_count: self.zero_count,
            count: self.count,
            sum: self.sum,
            positive: &self.positive,
            negative: &self.negative,
        }
    }

    /// Observations at or below `x`: whole buckets below it, and the share
    /// of the bucket that holds it that lies at or below it, assuming its
    /// observations are spread evenly (linear interpolation).
    pub(crate) fn at_or_below(&self, x: f64) -> f64 {
        self.buckets()
            .ranges()
            .map(|(lower, upper, c)| {
                let c = c as f64;
                if x >= upper {
                    c
                } else if x <= lower {
                    0.0
                } else {
                    c * (x - lower) / (upper - lower)
                }
            })
            .sum()
    }

    /// The `q`-quantile, as Prometheus estimates it from native buckets.
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        native_quantile(&self.buckets(), q)
    }
}

/// Two ascending bucket lists combined key by key (`op(a, 0)` or `op(0, b)`
/// where only one has the key); zero results are left out.
fn combine(a: &[(i32, u64)], b: &[(i32, u64)], op: impl Fn(u64, u64) -> u64) -> Vec<(i32, u64)> {
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let (key, x, y) = match (a.get(i), b.get(j)) {
            (Some(&(ka, x)), Some(&(kb, y))) if ka == kb => {
                (i, j) = (i + 1, j + 1);
                (ka, x, y)
            }
            (Some(&(ka, x)), Some(&(kb, _))) if ka < kb => {
                i += 1;
                (ka, x, 0)
            }
            (Some(&(ka, x)), None) => {
                i += 1;
                (ka, x, 0)
            }
            (_, Some(&(kb, y))) => {
                j += 1;
                (kb, 0, y)
            }
            (None, None) => unreachable!("the loop condition"),
        };
        let c = op(x, y);
        if c > 0 {
            out.push((key, c));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Schema 0 (bucket k is (2^(k-1), 2^k]) unless changed.
    fn buckets(positive: &[(i32, u64)], negative: &[(i32, u64)], zero_count: u64) -> NativeSum {
        let count = zero_count + positive.iter().chain(negative).map(|b| b.1).sum::<u64>();
        NativeSum {
            schema: 0,
            zero_threshold: 1e-3,
            zero_count,
            count,
            sum: 0.0,
            positive: positive.to_vec(),
            negative: negative.to_vec(),
        }
    }

    #[test]
    fn share_at_or_below_interpolates_inside_the_bucket_that_holds_it() {
        // 4 in [-1, -0.5), 2 in the zero bucket, 10 in (0.5, 1], 10 in (1, 2], 8 in (2, 4].
        let h = buckets(&[(0, 10), (1, 10), (2, 8)], &[(0, 4)], 2);
        assert_eq!(h.count, 34);
        // 1.5 is halfway through (1, 2]: 4 + 2 + 10 + 5.
        assert_eq!(h.at_or_below(1.5), 21.0);
        // On a bound: every bucket below it, none above.
        assert_eq!(h.at_or_below(1.0), 16.0);
        assert_eq!(h.at_or_below(2.0), 26.0);
        // 3 is halfway through (2, 4]: (3 - 2) / (4 - 2).
        assert_eq!(h.at_or_below(3.0), 30.0);
        assert_eq!(h.at_or_below(4.0), 34.0);
        assert_eq!(h.at_or_below(100.0), 34.0);
        // 0.75 is halfway through (0.5, 1], after the negatives and zero bucket.
        assert_eq!(h.at_or_below(0.75), 11.0);
        // Inside the negatives: -0.75 is halfway through [-1, -0.5).
        assert_eq!(h.at_or_below(-0.75), 2.0);
        assert_eq!(h.at_or_below(-5.0), 0.0);
    }

    #[test]
    fn share_at_or_below_at_a_finer_schema() {
        // Schema 3: bucket 0 is (2^-0.125, 1], bucket 1 is (1, 2^0.125].
        let mut h = buckets(&[(0, 6), (1, 4)], &[], 0);
        h.schema = 3;
        let (lo, hi) = (1.0, 2f64.powf(0.125));
        let x = lo + 0.25 * (hi - lo);
        assert!((h.at_or_below(x) - 7.0).abs() < 1e-9, "{}", h.at_or_below(x));
        // The quantile is Prometheus' and inverts the share: 7 of 10 is the 0.7-quantile.
        let q = h.quantile(0.7).unwrap();
        assert!((q - x).abs() < 1e-12, "{q} vs {x}");
    }

    #[test]
    fn a_window_is_the_difference_of_two_snapshots_at_one_schema() {
        let earlier = buckets(&[(0, 10), (2, 3)], &[], 1);
        let now = buckets(&[(0, 12), (1, 5), (2, 3), (4, 1)], &[], 1);
        let w = now.since(&earlier);
        assert_eq!(w.positive, [(0, 2), (1, 5), (4, 1)]);
        assert_eq!((w.zero_count, w.count), (0, 8));
        // Whole buckets: (0.5, 1] and (1, 2] hold 7 of the window's 8 at or below 2.
        assert_eq!(w.at_or_below(2.0), 7.0);
    }

    #[test]
    fn a_dropped_schema_merges_the_older_snapshot_down() {
        // Earlier at schema 1: (1, 2^0.5] x2, (2^0.5, 2] x3, (2, 2^1.5] x1.
        let mut earlier = buckets(&[(1, 2), (2, 3), (3, 1)], &[], 0);
        earlier.schema = 1;
        // Now at schema 0: (1, 2] x9, (2, 4] x4 — 6 of the first and 3 of
        // the second are new.
        let now = buckets(&[(1, 9), (2, 4)], &[], 0);
        let w = now.since(&earlier);
        assert_eq!(w.schema, 0);
        assert_eq!(w.positive, [(1, 4), (2, 3)]);
        assert_eq!(w.count, 7);
        // Falling back to `now` whole would have said 13 and (1, 2] x9.
        assert_eq!(w.quantile(0.5), Some(1.0 + 3.5 / 4.0));
    }

    #[test]
    fn a_reset_counts_from_zero() {
        let earlier = buckets(&[(0, 10)], &[], 0);
        let now = buckets(&[(1, 3)], &[], 0);
        assert_eq!(now.since(&earlier), now);
    }

    #[test]
    fn series_add_at_the_coarser_schema_and_wider_zero_bucket() {
        let mut a = buckets(&[(1, 2), (2, 3)], &[(1, 1)], 1);
        (a.schema, a.zero_threshold) = (1, 0.25);
        // b's bucket -3 is (1/16, 1/8]: inside a's wider zero bucket.
        let mut b = buckets(&[(-3, 5), (1, 1)], &[], 0);
        b.sum = 1.5;
        a.add(&b);
        assert_eq!(a.schema, 0);
        assert_eq!(a.zero_threshold, 0.25);
        assert_eq!(a.positive, [(1, 6)]);
        assert_eq!(a.negative, [(1, 1)]);
        assert_eq!((a.zero_count, a.count, a.sum), (6, 13, 1.5));
    }

    #[test]
    fn combine_keeps_order_and_drops_zeros() {
        let a = [(-2, 1), (0, 4), (3, 2)];
        let b = [(-5, 7), (0, 4), (5, 1)];
        assert_eq!(combine(&a, &b, |x, y| x + y), [(-5, 7), (-2, 1), (0, 8), (3, 2), (5, 1)]);
        assert_eq!(combine(&a, &b, u64::saturating_sub), [(-2, 1), (3, 2)]);
    }
}
