//! Native (sparse exponential) histograms: the bucket arithmetic shared by
//! the metric, its snapshots and encoders, and the quantile estimate
//! Prometheus computes from them.
//!
//! Owns: bucket keys (which bucket a value falls in at a schema), bucket
//! bounds, merging buckets to a lower schema, spans-and-deltas, and
//! [`native_quantile`]. Must not: allocate when computing a key.
//!
//! Conventions are Prometheus' (native histograms specification): with
//! `base = 2^(2^-schema)`, bucket `i` holds `base^(i-1) < |v| <= base^i`.

use crate::value::NativeBuckets;

/// Coarsest schema: each bucket spans a factor of 2^16.
pub const MIN_SCHEMA: i8 = -4;
/// Finest schema: 256 buckets per power of two.
pub const MAX_SCHEMA: i8 = 8;

/// Prometheus' default zero threshold, `2^-128`, as `client_golang` uses.
pub const DEFAULT_ZERO_THRESHOLD: f64 = 2.938_735_877_055_719e-39;

/// `(frac, exp)` with `v = frac * 2^exp`, `frac` in `[0.5, 1)`, for finite
/// positive `v` (subnormals included).
#[inline]
fn frexp(v: f64) -> (f64, i32) {
    let bits = v.to_bits();
    let raw = ((bits >> 52) & 0x7ff) as i32;
    if raw == 0 {
        // Subnormal: scale into the normal range first.
        let (f, e) = frexp(v * f64::from_bits(0x43f0_0000_0000_0000)); // 2^64
        return (f, e - 64);
    }
    let frac = f64::from_bits((bits & !(0x7ff << 52)) | (1022u64 << 52));
    (frac, raw - 1022)
}

/// For schema `s > 0`: the `2^s` lower bounds of the buckets within one
/// power of two, as fractions in `[0.5, 1)`: `2^(j/2^s - 1)`.
fn fraction_bounds(schema: i8) -> &'static [f64] {
    use std::sync::OnceLock;
    static TABLES: [OnceLock<Box<[f64]>>; 8] = [const { OnceLock::new() }; 8];
    debug_assert!((1..=MAX_SCHEMA).contains(&schema));
    TABLES[schema as usize - 1].get_or_init(|| {
        let n = 1usize << schema;
        (0..n).map(|j| (j as f64 / n as f64 - 1.0).exp2()).collect()
    })
}

/// The bucket key of `|v|` at `schema`, for `|v|` beyond the zero bucket
/// and not NaN. `±Inf` falls in the bucket of `f64::MAX`.
#[inline]
pub(crate) fn bucket_key(v: f64, schema: i8) -> i32 {
    let a = v.abs().min(f64::MAX);
    let (frac, exp) = frexp(a);
    if schema > 0 {
        let bounds = fraction_bounds(schema);
        // First j with bounds[j] >= frac: the bucket's upper edge.
        let j = bounds.partition_point(|&b| b < frac) as i32;
        j + (exp - 1) * bounds.len() as i32
    } else {
        // Powers of two end a bucket: 2^k is in bucket k (schema 0).
        let mut key = exp;
        if frac == 0.5 {
            key -= 1;
        }
        let shift = -schema as i32;
        let offset = (1 << shift) - 1;
        (key + offset) >> shift
    }
}

/// The upper bound of bucket `key` at `schema`: `2^(key * 2^-schema)`.
pub fn bucket_upper(key: i32, schema: i8) -> f64 {
    if schema >= 0 {
        (key as f64 / f64::from(1u32 << schema)).exp2()
    } else {
        (key as f64 * f64::from(1u32 << -schema)).exp2()
    }
}

/// The key at `schema - by` of the bucket `key` at `schema`: buckets merge
/// in aligned groups of `2^by` (exact: every coarse bound is a fine one).
#[inline]
pub(crate) fn coarser_key(key: i32, by: u32) -> i32 {
    let offset = (1i32 << by) - 1;
    (key + offset) >> by
}

/// Merges ascending `(key, count)` buckets in place down by `by` schema
/// steps; the result stays ascending with no empty entries.
pub(crate) fn merge_down(buckets: &mut Vec<(i32, u64)>, by: u32) {
    if by == 0 {
        return;
    }
    let mut w = 0usize;
    for r in 0..buckets.len() {
        let (k, c) = buckets[r];
        let k = coarser_key(k, by);
        if w > 0 && buckets[w - 1].0 == k {
            buckets[w - 1].1 += c;
        } else {
            buckets[w] = (k, c);
            w += 1;
        }
    }
    buckets.truncate(w);
}

/// The `q`-quantile of a native histogram as Prometheus 2.x's
/// `histogram_quantile` computes it: buckets in ascending order of value
/// (negative ones from the most negative, the zero bucket, the positive
/// ones), the bucket where the rank `q * count` is reached, and linear
/// interpolation within it. `None` with no observations or `q` NaN;
/// `-Inf`/`+Inf` for `q < 0`/`q > 1`, as PromQL returns.
pub fn native_quantile(h: &NativeBuckets<'_>, q: f64) -> Option<f64> {
    if h.count == 0 || q.is_nan() {
        return None;
    }
    if q < 0.0 {
        return Some(f64::NEG_INFINITY);
    }
    if q > 1.0 {
        return Some(f64::INFINITY);
    }
    let total = h.count as f64;
    let rank = q * total;
    // (lower, upper, count) in ascending order of value.
    let neg = h.negative.iter().rev().map(|&(k, c)| (-bucket_upper(k, h.schema), -bucket_upper(k - 1, h.schema), c));
    let zero_lower = if h.negative.is_empty() && !h.positive.is_empty() { 0.0 } else { -h.zero_threshold };
    let zero_upper = if h.positive.is_empty() && !h.negative.is_empty() { 0.0 } else { h.zero_threshold };
    let zero = (h.zero_count > 0).then_some((zero_lower, zero_upper, h.zero_count));
    let pos = h.positive.iter().map(|&(k, c)| (bucket_upper(k - 1, h.schema), bucket_upper(k, h.schema), c));
    let mut seen = 0.0;
    let mut last = None;
    for (lower, upper, c) in neg.chain(zero).chain(pos) {
        let c = c as f64;
        seen += c;
        last = Some((lower, upper, c));
        if seen >= rank {
            break;
        }
    }
    let (lower, upper, c) = last?;
    let seen = seen.min(total);
    if seen < rank {
        return Some(upper);
    }
    let within = rank - (seen - c);
    Some(lower + (upper - lower) * (within / c))
}

/// Prometheus' spans-and-deltas form of ascending `(key, count)` buckets:
/// `spans` as `(offset, length)` (the first offset from key 0, later ones
/// the gap after the previous span) and each count as the difference from
/// the previous one. Gaps of up to two empty buckets are bridged with zero
/// counts, as `client_golang` does, when that is shorter.
pub fn spans_and_deltas(buckets: &[(i32, u64)], spans: &mut Vec<(i32, u32)>, deltas: &mut Vec<i64>) {
    spans.clear();
    deltas.clear();
    let mut prev_key = 0i32;
    let mut prev_count = 0i64;
    for (i, &(key, count)) in buckets.iter().enumerate() {
        let gap = key - prev_key - 1;
        if i == 0 {
            spans.push((key, 1));
        } else if gap <= 2 {
            // Bridge the gap with empty buckets inside the current span.
            for _ in 0..gap {
                deltas.push(-prev_count);
                prev_count = 0;
            }
            if let Some(last) = spans.last_mut() {
                last.1 += gap as u32 + 1;
            }
        } else {
            spans.push((gap, 1));
        }
        deltas.push(count as i64 - prev_count);
        prev_count = count as i64;
        prev_key = key;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_the_specification() {
        // Schema 0: bucket k holds (2^(k-1), 2^k].
        assert_eq!(bucket_key(1.0, 0), 0);
        assert_eq!(bucket_key(1.5, 0), 1);
        assert_eq!(bucket_key(2.0, 0), 1);
        assert_eq!(bucket_key(2.1, 0), 2);
        assert_eq!(bucket_key(0.5, 0), -1);
        assert_eq!(bucket_key(-3.0, 0), 2);
        // Schema 1: boundaries at 2^(k/2).
        assert_eq!(bucket_key(1.0, 1), 0);
        assert_eq!(bucket_key(1.4, 1), 1);
        assert_eq!(bucket_key(1.5, 1), 2);
        assert_eq!(bucket_key(2.0, 1), 2);
        // Schema -1: boundaries at 4^k.
        assert_eq!(bucket_key(1.0, -1), 0);
        assert_eq!(bucket_key(3.0, -1), 1);
        assert_eq!(bucket_key(4.0, -1), 1);
        assert_eq!(bucket_key(5.0, -1), 2);
        assert_eq!(bucket_key(0.25, -1), -1);
        // Extremes.
        assert_eq!(bucket_key(f64::INFINITY, 0), bucket_key(f64::MAX, 0));
        assert_eq!(bucket_key(f64::MAX, 0), 1024);
        assert_eq!(bucket_key(f64::MIN_POSITIVE / 4.0, 0), -1024);
    }

    #[test]
    fn every_key_is_the_bucket_whose_bounds_hold_the_value() {
        for schema in MIN_SCHEMA..=MAX_SCHEMA {
            for &v in &[1e-9, 3e-6, 0.001, 0.0173, 0.5, 0.999, 1.0, 1.0001, 7.3, 1e3, 12345.678, 4e12] {
                let k = bucket_key(v, schema);
                let (lo, hi) = (bucket_upper(k - 1, schema), bucket_upper(k, schema));
                assert!(
                    lo < v * (1.0 + 1e-12) && v <= hi * (1.0 + 1e-12),
                    "schema {schema} v {v} key {k}: ({lo}, {hi}]"
                );
            }
        }
    }

    #[test]
    fn merging_down_is_the_key_at_the_coarser_schema() {
        for schema in (MIN_SCHEMA + 2)..=MAX_SCHEMA {
            for &v in &[1e-7, 0.003, 0.7, 1.0, 2.0, 3.3, 1e5] {
                for by in 1..=2u32 {
                    assert_eq!(
                        coarser_key(bucket_key(v, schema), by),
                        bucket_key(v, schema - by as i8),
                        "{v} {schema} {by}"
                    );
                }
            }
        }
        let mut b = vec![(-3, 1), (-2, 2), (1, 4), (2, 8), (3, 16)];
        merge_down(&mut b, 1);
        assert_eq!(b, vec![(-1, 3), (1, 12), (2, 16)]);
    }

    #[test]
    fn spans_and_deltas_as_prometheus_encodes_them() {
        let (mut s, mut d) = (Vec::new(), Vec::new());
        spans_and_deltas(&[(0, 2), (1, 1), (3, 2), (10, 1)], &mut s, &mut d);
        assert_eq!(s, vec![(0, 4), (6, 1)]);
        assert_eq!(d, vec![2, -1, -1, 2, -1]);
        spans_and_deltas(&[], &mut s, &mut d);
        assert!(s.is_empty() && d.is_empty());
    }

    #[test]
    fn quantile_interpolates_linearly_within_the_bucket() {
        // Schema 0, 4 observations in (1, 2], 4 in (2, 4].
        let h = NativeBuckets {
            schema: 0,
            zero_threshold: DEFAULT_ZERO_THRESHOLD,
            zero_count: 0,
            count: 8,
            sum: 20.0,
            positive: &[(1, 4), (2, 4)],
            negative: &[],
        };
        assert_eq!(native_quantile(&h, 0.5), Some(2.0));
        assert_eq!(native_quantile(&h, 0.25), Some(1.5));
        assert_eq!(native_quantile(&h, 0.75), Some(3.0));
        assert_eq!(native_quantile(&h, 1.0), Some(4.0));
        assert_eq!(native_quantile(&NativeBuckets { count: 0, positive: &[], ..h }, 0.5), None);
    }
}
