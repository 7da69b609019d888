//! Native histogram edge cases (bucket bounds, the zero threshold in
//! quantiles, infinities, the generated bound tables) and stress tests of
//! block claims and the schema -4 fallback racing snapshots.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hotmeter::native::NativeBucketsRef;
use hotmeter::{NativeHistogram, NativeOpts};

/// `std::f64::consts::SQRT_2` is the f64 just *above* the real sqrt(2)
/// (1.41421356237309514547... > 1.41421356237309504880...), so at schema 1
/// it lies in bucket 2, `(2^(1/2), 2]`, and `client_golang` (whose bound
/// table holds each bound rounded down) puts it there. hotmeter computes
/// its bounds with `exp2`, rounded to nearest (and at schema 8 up to 4 ulps
/// above the true bound), so values in the last few ulps above a bound are
/// counted one bucket too low.
#[test]
fn values_just_above_a_bucket_bound_go_to_the_next_bucket() {
    let h = NativeHistogram::new(NativeOpts::new().schema(1).unwrap());
    h.observe(std::f64::consts::SQRT_2);
    assert_eq!(h.snapshot().native.positive, vec![(2, 1)], "SQRT_2 > sqrt(2): bucket (sqrt 2, 2]");

    let h = NativeHistogram::new(NativeOpts::new().schema(1).unwrap());
    h.observe(std::f64::consts::FRAC_1_SQRT_2);
    assert_eq!(h.snapshot().native.positive, vec![(0, 1)], "FRAC_1_SQRT_2 > 1/sqrt(2): bucket (1/sqrt 2, 1]");

    // Schema 8, j = 250: the true bound 2^(250/256 - 1) is
    // 0.98388561161658755..., client_golang's table has 0.9838856116165875;
    // 0.9838856116165879 (what exp2 gives) is above the true bound, so its
    // double lies in bucket 251 (client_golang: SearchFloat64s -> 251).
    let v = 2.0 * 0.983_885_611_616_587_9;
    let h = NativeHistogram::new(NativeOpts::new().schema(8).unwrap());
    h.observe(v);
    assert_eq!(h.snapshot().native.positive, vec![(251, 1)]);
}

/// Prometheus (promql/quantile.go with `AllBucketIterator`) clamps a
/// positive bucket's lower bound to the zero threshold (and a negative
/// bucket's upper bound to `-zero_threshold`) before interpolating.
/// `NativeBucketsRef::quantile` does not, so with a zero threshold that is not a
/// bucket bound its quantiles differ from Prometheus'.
#[test]
fn native_quantiles_clamp_buckets_to_the_zero_threshold_like_prometheus() {
    // Schema 0, zero threshold 0.001: bucket -9 is (2^-10, 2^-9] =
    // (0.0009765625, 0.001953125], Prometheus treats it as (0.001, 0.001953125].
    let h = NativeBucketsRef {
        schema: 0,
        zero_threshold: 0.001,
        zero_count: 0,
        count: 1,
        sum: 0.0015,
        positive: &[(-9, 1)],
        negative: &[],
    };
    let prometheus = 0.001 + (0.001_953_125 - 0.001) * 0.5;
    assert_eq!(h.quantile(0.5), Some(prometheus));

    let h = NativeBucketsRef { positive: &[], negative: &[(-9, 1)], ..h };
    let prometheus = -0.001_953_125 + (-0.001 + 0.001_953_125) * 0.5;
    assert_eq!(h.quantile(0.5), Some(prometheus));
}

/// The zero-threshold clamp end to end: a histogram with a non-power-of-two
/// zero threshold.
#[test]
fn histogram_with_custom_zero_threshold_quantile_matches_prometheus() {
    let h = NativeHistogram::new(NativeOpts::new().schema(0).unwrap().zero_threshold(0.001).unwrap());
    h.observe(0.0015);
    let s = h.snapshot();
    assert_eq!(s.native.positive, vec![(-9, 1)]);
    assert_eq!(s.quantile(0.5), Some(0.001 + (0.001_953_125 - 0.001) * 0.5));
}

/// client_golang counts `+Inf` in the bucket after `f64::MAX`'s (key + 1)
/// and `-Inf` likewise on the negative side, so Prometheus sees a bucket
/// (2^1024, ...] = (Inf, Inf] for them; hotmeter puts them in f64::MAX's
/// bucket.
#[test]
fn infinities_go_one_bucket_beyond_f64_max_like_client_golang() {
    let h = NativeHistogram::new(NativeOpts::new().schema(3).unwrap());
    h.observe(f64::MAX);
    h.observe(f64::INFINITY);
    let s = h.snapshot();
    assert_eq!(s.native.positive, vec![(8192, 1), (8193, 1)]);
}

fn check(s: &hotmeter::NativeSnapshot) {
    let buckets: u64 = s.native.positive.iter().chain(&s.native.negative).map(|&(_, c)| c).sum();
    assert_eq!(s.native.count, s.native.zero_count + buckets, "{s:?}");
}

/// More writers than owned shards (16), values spanning 2^0..2^28 (exact
/// sums), fresh histograms every round so block claims race snapshots.
#[test]
fn stress_exact_sums_with_block_claims_racing_snapshots() {
    const THREADS: usize = 24;
    const ROUNDS: usize = 30;
    const PER_THREAD: u64 = 10_000;
    for round in 0..ROUNDS {
        let h = NativeHistogram::new(NativeOpts::new().schema(3).unwrap());
        let start = Arc::new(std::sync::Barrier::new(THREADS + 1));
        let done = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (h, start) = (h.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    for i in 0..PER_THREAD {
                        let k = ((i as usize * 7 + t * 3 + round) % 29) as i32;
                        if i % 11 == 0 {
                            h.observe(0.0);
                        } else if i % 5 == 0 {
                            h.observe(-(2f64.powi(k)));
                        } else {
                            h.observe(2f64.powi(k));
                        }
                    }
                })
            })
            .collect();
        let reader = {
            let (h, done) = (h.clone(), done.clone());
            std::thread::spawn(move || {
                let mut last = 0;
                let mut n = 0;
                while !done.load(Ordering::Relaxed) {
                    let s = h.snapshot();
                    check(&s);
                    assert!(s.native.count >= last, "count went back: {} after {last}", s.native.count);
                    last = s.native.count;
                    assert_eq!(s.native.schema, 3);
                    // Every bucket key is 8k for value 2^k: the sum is exact.
                    let mut expect = 0.0f64;
                    for &(key, c) in &s.native.positive {
                        assert_eq!(key % 8, 0, "{key}");
                        expect += c as f64 * 2f64.powi(key / 8);
                    }
                    for &(key, c) in &s.native.negative {
                        assert_eq!(key % 8, 0, "{key}");
                        expect -= c as f64 * 2f64.powi(key / 8);
                    }
                    assert_eq!(s.native.sum, expect, "sum belongs to other observations than the buckets: {s:?}");
                    n += 1;
                }
                n
            })
        };
        start.wait();
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        reader.join().unwrap();
        let s = h.snapshot();
        check(&s);
        assert_eq!(s.native.count, THREADS as u64 * PER_THREAD, "lost observations");
    }
}

/// Values spanning 2^-40..2^40 per thread (81 powers of two: beyond the 64
/// slots, so the schema -4 fallback) on more threads than owned shards.
#[test]
fn stress_fallback_racing_snapshots() {
    const THREADS: usize = 24;
    const PER_THREAD: u64 = 10_000;
    for round in 0..10 {
        let h = NativeHistogram::new(NativeOpts::new().schema(2).unwrap().max_buckets(1_000).unwrap());
        let start = Arc::new(std::sync::Barrier::new(THREADS + 1));
        let done = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (h, start) = (h.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    for i in 0..PER_THREAD {
                        let k = ((i as usize * 13 + t + round) % 81) as i32 - 40;
                        let v = 2f64.powi(k) * 1.25;
                        h.observe(if i % 3 == 0 { -v } else { v });
                    }
                })
            })
            .collect();
        let reader = {
            let (h, done) = (h.clone(), done.clone());
            std::thread::spawn(move || {
                let mut last_schema = i8::MAX;
                while !done.load(Ordering::Relaxed) {
                    let s = h.snapshot();
                    check(&s);
                    assert!(s.native.schema <= last_schema, "schema went back up");
                    last_schema = s.native.schema;
                    // Every key at schema -4 holds 2^16-wide buckets; at
                    // finer schemas keys must be consistent with the values.
                    for &(key, _) in &s.native.positive {
                        assert!(
                            (-41..=41).contains(&(key >> (s.native.schema.max(0) as u32))) || s.native.schema < 0,
                            "{key} at {}",
                            s.native.schema
                        );
                    }
                }
            })
        };
        start.wait();
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        reader.join().unwrap();
        let s = h.snapshot();
        check(&s);
        assert_eq!(s.native.count, THREADS as u64 * PER_THREAD, "lost observations");
        assert_eq!(s.native.schema, -4);
        // Expected sum, computed in the same order-independent way is not
        // exact; compare relatively.
        let mut expect = 0.0;
        for t in 0..THREADS {
            for i in 0..PER_THREAD {
                let k = ((i as usize * 13 + t + round) % 81) as i32 - 40;
                let v = 2f64.powi(k) * 1.25;
                expect += if i % 3 == 0 { -v } else { v };
            }
        }
        assert!((s.native.sum - expect).abs() <= expect.abs() * 1e-9, "{} vs {expect}", s.native.sum);
    }
}

/// The checked-in bound tables are exactly what their generator makes
/// (bounds rounded toward zero, computed with 100-digit decimals).
#[test]
fn native_bound_tables_are_what_the_generator_makes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("python3")
        .arg(root.join("tools/native_bounds.py"))
        .output()
        .expect("python3 runs the generator");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let committed = std::fs::read(root.join("src/native/bounds.rs")).unwrap();
    assert!(out.stdout == committed, "src/native/bounds.rs is stale: run tools/native_bounds.py");
}
