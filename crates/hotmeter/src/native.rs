//! Native-histogram bucket arithmetic and the owned bucket type: which
//! bucket a value falls in at a schema, bucket bounds, merging buckets down
//! to a coarser schema, Prometheus' spans-and-deltas form, quantiles, and
//! [`NativeBuckets`], the one owned form of a native histogram's buckets
//! that snapshots, the SLO tracker and status lines read.
//!
//! Owns: the math every crate shares (encoders, readers, the recording
//! metric in `native_histogram.rs`). Must not: hold recording state, nor
//! estimate differently from Prometheus (quantiles and shares interpolate
//! linearly inside a bucket, as Prometheus 2.x does for native buckets).
//!
//! Conventions are Prometheus' (native histograms specification): with
//! `base = 2^(2^-schema)`, bucket `i` holds `base^(i-1) < |v| <= base^i`;
//! observations with `|v| <= zero_threshold` are in the zero bucket.

/// Generated bound tables (`tools/native_bounds.py`, which a test runs).
#[rustfmt::skip]
mod bounds;

/// Coarsest schema: each bucket spans a factor of 2^16.
pub const MIN_SCHEMA: i8 = -4;
/// Finest schema: 256 buckets per power of two.
pub const MAX_SCHEMA: i8 = 8;

/// Prometheus' default zero threshold, `2^-128`, as `client_golang` uses.
pub const DEFAULT_ZERO_THRESHOLD: f64 = 2.938_735_877_055_719e-39;

/// `(frac, exp)` with `v = frac * 2^exp`, `frac` in `[0.5, 1)`, for finite
/// positive `v` (subnormals included).
#[inline]
pub(crate) fn frexp(v: f64) -> (f64, i32) {
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
/// power of two, as fractions in `[0.5, 1)`: `2^(j/2^s - 1)`, each rounded
/// toward zero (the tables in `native/bounds.rs`, generated exactly), so a
/// value compares against the irrational bound exactly, as `client_golang`'s
/// tables do. `exp2` rounds to nearest and is off by a few ulps: values just
/// above a bound would land a bucket too low.
pub(crate) fn fraction_bounds(schema: i8) -> &'static [f64] {
    use crate::sync::StaticOnceLock;
    static TABLES: [StaticOnceLock<Box<[f64]>>; 8] = [const { StaticOnceLock::new() }; 8];
    debug_assert!((1..=MAX_SCHEMA).contains(&schema));
    TABLES[schema as usize - 1].get_or_init(|| {
        let bits: &[u64] = match schema {
            1 => &bounds::SCHEMA_1,
            2 => &bounds::SCHEMA_2,
            3 => &bounds::SCHEMA_3,
            4 => &bounds::SCHEMA_4,
            5 => &bounds::SCHEMA_5,
            6 => &bounds::SCHEMA_6,
            7 => &bounds::SCHEMA_7,
            _ => &bounds::SCHEMA_8,
        };
        bits.iter().map(|&b| f64::from_bits(b)).collect()
    })
}

/// Top mantissa bits that index a [`first_bounds`] table.
pub(crate) const MANTISSA_BITS: u32 = 10;

/// For schema `s > 0`: per interval of the top [`MANTISSA_BITS`] mantissa
/// bits, the first bucket `j` whose bound (in [`fraction_bounds`]) is at or
/// above the interval's lowest fraction. Buckets are at least `2^(1/256)`
/// apart (0.27%) and an interval is at most 0.2% wide, so at most one bound
/// falls inside: a value's bucket is `j`, or `j + 1` when it is above
/// bound `j`. One load and one compare instead of a binary search whose
/// branches a varied workload mispredicts.
pub(crate) fn first_bounds(schema: i8) -> &'static [u16] {
    use crate::sync::StaticOnceLock;
    static TABLES: [StaticOnceLock<Box<[u16]>>; 8] = [const { StaticOnceLock::new() }; 8];
    TABLES[schema as usize - 1].get_or_init(|| {
        let bounds = fraction_bounds(schema);
        (0..1u64 << MANTISSA_BITS)
            .map(|t| {
                // The interval's lowest fraction: 0.5 with these top bits.
                let lowest = f64::from_bits((1022u64 << 52) | (t << (52 - MANTISSA_BITS)));
                bounds.partition_point(|&b| b < lowest) as u16
            })
            .collect()
    })
}

/// The bucket key of `|v|` at `schema`, for `|v|` beyond the zero bucket
/// and not NaN. `±Inf` falls in the bucket after `f64::MAX`'s, as in
/// `client_golang`.
#[inline]
pub(crate) fn bucket_key(v: f64, schema: i8) -> i32 {
    let a = v.abs();
    if a.is_infinite() {
        return bucket_key(f64::MAX, schema) + 1;
    }
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
/// steps (from schema `s` to `s - by`); the result stays ascending with no
/// empty entries if the input had none. Exact: every bound at the coarser
/// schema is also a bound at the finer one, so no count is split.
///
/// ```
/// // Schema 1 buckets (1, 2^0.5], (2^0.5, 2] and (2, 2^1.5] at schema 0:
/// // the first two are (1, 2], the third (2, 4].
/// let mut buckets = vec![(1, 2), (2, 3), (3, 1)];
/// hotmeter::native::merge_down(&mut buckets, 1);
/// assert_eq!(buckets, [(1, 5), (2, 1)]);
/// ```
pub fn merge_down(buckets: &mut Vec<(i32, u64)>, by: u32) {
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

/// A native histogram's exponential buckets, borrowed: what a scrape's
/// [`Value`](crate::expose::Value) carries without copying. As Prometheus
/// models them: with `base = 2^(2^-schema)`, bucket `i` holds the observations `v`
/// with `base^(i-1) < |v| <= base^i`; observations with `|v| <=
/// zero_threshold` are in the zero bucket instead.
///
/// Consistent: `count == zero_count + positive and negative counts`, and
/// `sum` belongs to exactly those observations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NativeBucketsRef<'a> {
    /// Resolution, from -4 (coarsest, each bucket 2^16 wide) to 8.
    pub schema: i8,
    /// Observations with `|v|` at or below this are in the zero bucket.
    pub zero_threshold: f64,
    /// Observations in the zero bucket.
    pub zero_count: u64,
    /// Number of observations.
    pub count: u64,
    /// Sum of observations.
    pub sum: f64,
    /// Populated buckets of positive observations, `(index, count)`,
    /// ascending by index, every count non-zero.
    pub positive: &'a [(i32, u64)],
    /// Populated buckets of negative observations by `|v|`, as `positive`.
    pub negative: &'a [(i32, u64)],
}

impl<'a> NativeBucketsRef<'a> {
    /// Every populated bucket as `(lower, upper, count)`, ascending by
    /// value, as Prometheus' bucket iterator yields them: the negative
    /// buckets from the most negative, the zero bucket, the positive ones. A
    /// bucket that reaches into the zero bucket starts (or ends) at its
    /// threshold; the zero bucket stops at 0 on a side with no buckets.
    pub fn ranges(self) -> impl Iterator<Item = (f64, f64, u64)> + 'a {
        let (s, zt) = (self.schema, self.zero_threshold);
        let neg =
            self.negative.iter().rev().map(move |&(k, c)| (-bucket_upper(k, s), -bucket_upper(k - 1, s).max(zt), c));
        let zero_lower = if self.negative.is_empty() && !self.positive.is_empty() { 0.0 } else { -zt };
        let zero_upper = if self.positive.is_empty() && !self.negative.is_empty() { 0.0 } else { zt };
        let zero = (self.zero_count > 0).then_some((zero_lower, zero_upper, self.zero_count));
        let pos = self.positive.iter().map(move |&(k, c)| (bucket_upper(k - 1, s).max(zt), bucket_upper(k, s), c));
        neg.chain(zero).chain(pos)
    }

    /// The `q`-quantile of a native histogram as Prometheus 2.x's
    /// `histogram_quantile` computes it: buckets in ascending order of value
    /// (negative ones from the most negative, the zero bucket, the positive
    /// ones: [`ranges`](Self::ranges)), the bucket where the rank `q * count`
    /// is reached, and linear interpolation within it. `None` with no observations or `q` NaN;
    /// `-Inf`/`+Inf` for `q < 0`/`q > 1`, as PromQL returns.
    pub fn quantile(self, q: f64) -> Option<f64> {
        let h = self;
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
        let mut seen = 0.0;
        let mut last = None;
        for (lower, upper, c) in h.ranges() {
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
}

/// A native histogram's buckets, owned: one series read from a snapshot
/// ([`OwnedValue::NativeHistogram`](crate::OwnedValue::NativeHistogram),
/// [`NativeSnapshot`](crate::NativeSnapshot)), several series summed
/// ([`add`](Self::add)), or the observations between two snapshots
/// ([`since`](Self::since)).
///
/// Consistent when it comes from a snapshot: `count == zero_count` plus
/// every bucket's count, and `sum` belongs to exactly those observations.
///
/// ```
/// use hotmeter::native::NativeBuckets;
/// // Schema 0: bucket k holds (2^(k-1), 2^k].
/// let earlier = NativeBuckets { positive: vec![(1, 4)], count: 4, sum: 6.0, ..NativeBuckets::empty(0) };
/// let now = NativeBuckets { positive: vec![(1, 4), (2, 4)], count: 8, sum: 20.0, ..NativeBuckets::empty(0) };
/// let window = now.since(&earlier);
/// assert_eq!((window.count, window.sum), (4, 14.0));
/// assert_eq!(window.positive, [(2, 4)]);
/// assert_eq!(window.quantile(0.5), Some(3.0)); // halfway through (2, 4]
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct NativeBuckets {
    /// Resolution, from -4 (coarsest, each bucket 2^16 wide) to 8.
    pub schema: i8,
    /// Observations with `|v|` at or below this are in the zero bucket.
    pub zero_threshold: f64,
    /// Observations in the zero bucket.
    pub zero_count: u64,
    /// Number of observations: the zero bucket plus every bucket.
    pub count: u64,
    /// Sum of observations.
    pub sum: f64,
    /// Populated buckets of positive observations, `(key, count)`,
    /// ascending by key, every count non-zero.
    pub positive: Vec<(i32, u64)>,
    /// Populated buckets of negative observations by `|v|`, as `positive`.
    pub negative: Vec<(i32, u64)>,
}

impl NativeBuckets {
    /// No observations, at `schema`, with Prometheus' default zero bucket.
    pub fn empty(schema: i8) -> Self {
        NativeBuckets {
            schema,
            zero_threshold: DEFAULT_ZERO_THRESHOLD,
            zero_count: 0,
            count: 0,
            sum: 0.0,
            positive: Vec::new(),
            negative: Vec::new(),
        }
    }

    /// The same buckets, borrowed, as encoders take them.
    pub fn view(&self) -> NativeBucketsRef<'_> {
        NativeBucketsRef {
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            zero_count: self.zero_count,
            count: self.count,
            sum: self.sum,
            positive: &self.positive,
            negative: &self.negative,
        }
    }

    /// Every populated bucket as `(lower, upper, count)`, ascending by
    /// value ([`NativeBucketsRef::ranges`]).
    pub fn ranges(&self) -> impl Iterator<Item = (f64, f64, u64)> + '_ {
        self.view().ranges()
    }

    /// The `q`-quantile as Prometheus estimates it ([`NativeBucketsRef::quantile`]).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.view().quantile(q)
    }

    /// Observations at or below `x`: whole buckets below it, and the share
    /// of the bucket that holds it that lies at or below it, assuming its
    /// observations are spread evenly (linear interpolation, the model of
    /// Prometheus 2.x's `histogram_fraction` for native buckets).
    pub fn at_or_below(&self, x: f64) -> f64 {
        self.ranges()
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

    /// Adds another series' buckets: both are first brought to the coarser
    /// schema and the wider zero bucket of the two (series of one family
    /// share their options, but each may have reduced its resolution on
    /// its own). Exact: merging down never splits a bucket.
    pub fn add(&mut self, other: &NativeBuckets) {
        let mut other = other.clone();
        Self::align(self, &mut other);
        self.positive = combine(&self.positive, &other.positive, |a, b| a + b);
        self.negative = combine(&self.negative, &other.negative, |a, b| a + b);
        self.zero_count += other.zero_count;
        self.count += other.count;
        self.sum += other.sum;
    }

    /// The observations since `earlier`, an older read of the same series.
    ///
    /// The resolution a series reports only goes down, so when it dropped
    /// in between, `earlier` is merged down to this schema first (exact:
    /// the window keeps every observation, in the coarser buckets); a zero
    /// bucket that widened takes in the earlier buckets it now covers.
    /// Anything else that only a new series can show is a **reset**, as
    /// Prometheus' `DetectReset` reads native histograms: the count, the
    /// zero bucket or any bucket went down, the schema went up, the zero
    /// bucket narrowed, or it widened into the middle of an earlier bucket.
    /// After a reset (a new process, or a series that expired and came
    /// back) the window is everything since it, `self` whole, as `rate`
    /// takes it. Either way the window is consistent: its `count` is its
    /// zero bucket plus its buckets.
    ///
    /// Read series by series: a sum of several series
    /// ([`add`](Self::add)) can go down in one bucket while it grows in
    /// total when one series goes away and another comes, which reads as a
    /// reset of the whole sum.
    pub fn since(&self, earlier: &NativeBuckets) -> NativeBuckets {
        self.increase_since(earlier).unwrap_or_else(|| self.clone())
    }

    /// The window since `earlier` when nothing in between reads as a reset
    /// (see [`since`](Self::since)); `None` after a reset, for a caller that
    /// must tell the two apart (a delta exporter starts a new stream then).
    pub fn increase_since(&self, earlier: &NativeBuckets) -> Option<NativeBuckets> {
        if self.count < earlier.count || self.schema > earlier.schema || self.zero_threshold < earlier.zero_threshold {
            return None;
        }
        let widened = self.zero_threshold > earlier.zero_threshold;
        let mut then = earlier.clone();
        then.reduce(self.schema, self.zero_threshold);
        // A bucket the wider zero bucket cuts in two (`reduce` leaves it
        // outside): Prometheus calls that a reset, its observations cannot
        // be split.
        let cut = |side: &[(i32, u64)]| {
            side.first().is_some_and(|&(k, _)| bucket_upper(k - 1, self.schema) < self.zero_threshold)
        };
        if widened && (cut(&then.positive) || cut(&then.negative)) {
            return None;
        }
        Some(NativeBuckets {
            zero_count: self.zero_count.checked_sub(then.zero_count)?,
            positive: decrease(&self.positive, &then.positive)?,
            negative: decrease(&self.negative, &then.negative)?,
            count: self.count - then.count,
            sum: self.sum - then.sum,
            ..self.clone()
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
}

impl From<NativeBucketsRef<'_>> for NativeBuckets {
    fn from(b: NativeBucketsRef<'_>) -> Self {
        NativeBuckets {
            schema: b.schema,
            zero_threshold: b.zero_threshold,
            zero_count: b.zero_count,
            count: b.count,
            sum: b.sum,
            positive: b.positive.to_vec(),
            negative: b.negative.to_vec(),
        }
    }
}

/// `now - then` key by key, leaving out empty buckets; `None` when a bucket
/// of `then` went down or is missing from `now` (a reset).
fn decrease(now: &[(i32, u64)], then: &[(i32, u64)]) -> Option<Vec<(i32, u64)>> {
    let mut later = now.iter().peekable();
    for &(key, count) in then {
        while later.next_if(|&&(k, _)| k < key).is_some() {}
        match later.next() {
            Some(&(k, c)) if k == key && c >= count => {}
            _ => return None,
        }
    }
    Some(combine(now, then, u64::saturating_sub))
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
        assert_eq!(bucket_key(f64::INFINITY, 0), bucket_key(f64::MAX, 0) + 1);
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
        let h = NativeBucketsRef {
            schema: 0,
            zero_threshold: DEFAULT_ZERO_THRESHOLD,
            zero_count: 0,
            count: 8,
            sum: 20.0,
            positive: &[(1, 4), (2, 4)],
            negative: &[],
        };
        assert_eq!(h.quantile(0.5), Some(2.0));
        assert_eq!(h.quantile(0.25), Some(1.5));
        assert_eq!(h.quantile(0.75), Some(3.0));
        assert_eq!(h.quantile(1.0), Some(4.0));
        assert_eq!(NativeBucketsRef { count: 0, positive: &[], ..h }.quantile(0.5), None);
    }

    /// Schema 0 (bucket k is (2^(k-1), 2^k]) unless changed.
    fn buckets(positive: &[(i32, u64)], negative: &[(i32, u64)], zero_count: u64) -> NativeBuckets {
        let count = zero_count + positive.iter().chain(negative).map(|b| b.1).sum::<u64>();
        NativeBuckets {
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

    #[test]
    fn a_wider_zero_bucket_takes_in_the_earlier_buckets_it_covers() {
        // Earlier: zero bucket 1e-3, 4 in (1/16, 1/8] (key -3), 10 in (1, 2].
        let mut earlier = buckets(&[(-3, 4), (1, 10)], &[], 0);
        earlier.zero_threshold = 1e-3;
        // Now: the zero bucket reaches 1/8, so key -3's 4 and 2 more are in it.
        let mut now = buckets(&[(1, 13)], &[], 6);
        now.zero_threshold = 0.125;
        let w = now.since(&earlier);
        assert_eq!((w.zero_count, w.positive.as_slice(), w.count), (2, &[(1, 3)][..], 5));
    }

    #[test]
    fn a_zero_bucket_that_cuts_an_earlier_bucket_in_two_or_narrows_is_a_reset() {
        let mut earlier = buckets(&[(-3, 4), (1, 10)], &[], 0);
        earlier.zero_threshold = 1e-3;
        // 0.1 lies inside (1/16, 1/8]: those 4 observations cannot be split.
        let mut now = buckets(&[(1, 13)], &[], 6);
        now.zero_threshold = 0.1;
        assert_eq!(now.since(&earlier), now);
        // A narrower zero bucket than before: only a new series has one.
        let mut narrower = buckets(&[(-3, 4), (1, 20)], &[], 1);
        narrower.zero_threshold = 1e-4;
        assert_eq!(narrower.since(&earlier), narrower);
    }
}
