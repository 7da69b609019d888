//! Shared helpers for the criterion benchmarks in `benches/`: hotmeter
//! beside its peers, in one process, so ratios are comparable.
//!
//! Owns: the contended-run harness, the pipeline rig and the counting
//! allocator of the memory benchmarks. Must not:
//! contain metric logic.

pub mod counting_alloc;
pub mod peers;
pub mod pipeline;

use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Runs `op(i)` `iters` times on each of `threads` threads started together,
/// and returns the wall time of the slowest thread. Divided by `iters` this
/// is the per-operation cost when `threads` threads hammer at once (equal to
/// the single-thread cost under perfect scaling).
pub fn contended<F: Fn(u64) + Sync>(threads: usize, iters: u64, op: F) -> Duration {
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    for i in 0..iters {
                        op(std::hint::black_box(i));
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_default()).max().unwrap_or_default()
    })
}

/// Sixteen memory-space names, cycled through by string-label benchmarks.
pub const SPACES: [&str; 16] = [
    "tenant-00",
    "tenant-01",
    "tenant-02",
    "tenant-03",
    "tenant-04",
    "tenant-05",
    "tenant-06",
    "tenant-07",
    "tenant-08",
    "tenant-09",
    "tenant-10",
    "tenant-11",
    "tenant-12",
    "tenant-13",
    "tenant-14",
    "tenant-15",
];

/// Lookups in batches of `PINNED_BATCH` sharing one epoch pin
/// (`StringFamily::pinned`), `iters` in all, for `iter_custom`: the pin
/// that starts each batch is part of the time.
pub fn pinned_batches<M: hotmeter::expose::Metric, R>(
    family: &hotmeter::StringFamily<M>,
    iters: u64,
    mut lookup: impl FnMut(&hotmeter::Pinned<'_, M>) -> R,
) -> Duration {
    let start = std::time::Instant::now();
    let mut left = iters;
    while left > 0 {
        let scope = family.pinned();
        let n = left.min(PINNED_BATCH);
        for _ in 0..n {
            // As criterion's `iter` does with each result.
            std::hint::black_box(lookup(&scope));
        }
        left -= n;
    }
    start.elapsed()
}

/// Lookups per pin in [`pinned_batches`].
pub const PINNED_BATCH: u64 = 64;

/// Observation values in seconds for histogram benchmarks: spread over the
/// default buckets (1 ms .. 8 s), cycled by index.
pub fn latency(i: u64) -> f64 {
    const V: [f64; 8] = [0.001, 0.004, 0.02, 0.07, 0.2, 0.6, 2.0, 8.0];
    V[(i & 7) as usize]
}

/// Installs the `metrics-exporter-prometheus` recorder as the global
/// `metrics` recorder, once per process, so `metrics` peers record for real.
pub fn install_metrics_recorder() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let _ = metrics::set_global_recorder(recorder);
    });
}
