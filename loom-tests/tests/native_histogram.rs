//! Native histogram observe vs snapshot: a snapshot is always an exact set
//! of observations (count = zero bucket + buckets, the sum theirs), through
//! a block claim, the schema -4 fallback and a resolution reduction; and no
//! observation is lost on owned or shared shards.
#![cfg(hotmeter_loom)]

use hotmeter::{NativeHistogram, NativeOpts, NativeSnapshot};
use loom::thread;

/// Three writers and a reader that waits for the shared shard's writers
/// take more scheduling decisions per execution than loom's default limit.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.max_branches = 20_000;
    builder.check(f);
}

/// The observations a snapshot holds, as the sum of their values (all
/// exact in binary), checked against its count and buckets.
fn assert_consistent(s: &NativeSnapshot) {
    let buckets: u64 = s.native.positive.iter().chain(&s.native.negative).map(|b| b.1).sum();
    assert_eq!(s.native.count, s.native.zero_count + buckets, "count is not zero bucket plus buckets: {s:?}");
}

/// One writer observes two values in two powers of two. Under loom a
/// shard's table has one slot, so the first claims it and the second goes
/// to the schema -4 fallback. Every snapshot is a prefix of the writer's
/// observations, whole.
#[test]
fn a_snapshot_racing_a_claim_and_the_fallback_is_a_whole_prefix() {
    const VALUES: [f64; 2] = [1.5, 3.0];
    loom::model(|| {
        let h = NativeHistogram::new(NativeOpts::new().schema(0).unwrap());
        let w = h.clone();
        let t = thread::spawn(move || {
            for v in VALUES {
                w.observe(v);
            }
        });
        let s = h.snapshot();
        assert_consistent(&s);
        let n = s.native.count as usize;
        assert!(n <= VALUES.len());
        assert_eq!(s.native.sum, VALUES[..n].iter().sum::<f64>(), "sum not of exactly the counted prefix: {s:?}");
        t.join().unwrap();
        let s = h.snapshot();
        assert_consistent(&s);
        assert_eq!((s.native.count, s.native.sum, s.native.schema), (2, 4.5, hotmeter::native::MIN_SCHEMA));
    });
}

/// The snapshot holds exactly a subset of `values` (each subset of the
/// values used here has a sum of its own): count and sum are those of one
/// subset, and each bucket counts exactly the subset's values within its
/// bounds at the snapshot's schema.
fn assert_exact_subset(s: &NativeSnapshot, values: &[f64]) {
    assert_consistent(s);
    let subset = (0..1u32 << values.len()).find(|m| {
        let vs = values.iter().enumerate().filter(|(i, _)| m & (1 << i) != 0);
        vs.clone().count() as u64 == s.native.count && vs.map(|(_, v)| v).sum::<f64>() == s.native.sum
    });
    let Some(m) = subset else {
        panic!("count {} with sum {} is no set of observations", s.native.count, s.native.sum)
    };
    for &(k, c) in &s.native.positive {
        let (lo, hi) = (
            hotmeter::native::bucket_upper(k - 1, s.native.schema),
            hotmeter::native::bucket_upper(k, s.native.schema),
        );
        let inside = values.iter().enumerate().filter(|&(i, &v)| m & (1 << i) != 0 && lo < v && v <= hi).count() as u64;
        assert_eq!(c, inside, "bucket {k} at schema {} ({lo}, {hi}]: {s:?}", s.native.schema);
    }
}

/// Three writers, one value each: two own a shard, the third shares the
/// shared one (and a finished writer's slot may be reused, putting two
/// powers of two in one shard: the fallback under loom's one-slot table).
/// Each snapshot holds an exact subset, the last one all three.
#[test]
fn writers_on_owned_and_shared_shards_lose_and_tear_nothing() {
    const VALUES: [f64; 3] = [0.5, 1.5, 3.0];
    model(|| {
        let h = NativeHistogram::new(NativeOpts::new().schema(0).unwrap());
        let ts: Vec<_> = VALUES
            .iter()
            .map(|&v| {
                let w = h.clone();
                thread::spawn(move || w.observe(v))
            })
            .collect();
        assert_exact_subset(&h.snapshot(), &VALUES);
        for t in ts {
            t.join().unwrap();
        }
        let s = h.snapshot();
        assert_exact_subset(&s, &VALUES);
        assert_eq!(s.native.count, 3);
    });
}

/// As above with a limit of one bucket, so a snapshot that sees two or
/// more buckets reduces the resolution: it still holds an exact subset,
/// within the limit unless already at schema -4.
#[test]
fn a_reduced_snapshot_is_still_an_exact_subset() {
    const VALUES: [f64; 3] = [0.5, 1.5, 3.0];
    model(|| {
        let h = NativeHistogram::new(NativeOpts::new().schema(0).unwrap().max_buckets(1).unwrap());
        let ts: Vec<_> = VALUES
            .iter()
            .map(|&v| {
                let w = h.clone();
                thread::spawn(move || w.observe(v))
            })
            .collect();
        let check = |s: &NativeSnapshot| {
            assert_exact_subset(s, &VALUES);
            assert!(
                s.native.positive.len() <= 1 || s.native.schema == hotmeter::native::MIN_SCHEMA,
                "limit not applied: {s:?}"
            );
        };
        check(&h.snapshot());
        for t in ts {
            t.join().unwrap();
        }
        let s = h.snapshot();
        check(&s);
        assert_eq!(s.native.count, 3);
        assert!(s.native.schema < 0, "three buckets at schema 0 need a reduction: {s:?}");
    });
}
