//! Fault injection: fail a chosen fraction of writes, to test alerts.
//!
//! Owns: the deterministic choice of which `put`s fail. Must not: touch the
//! inner store on a failed write, or alter reads.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::{Checkpoint, CheckpointError, CheckpointStore};

/// Fails a fraction of `put`s with [`CheckpointError::Injected`] before they
/// reach the inner store (so a failed write stores nothing); reads pass
/// through. The choice is deterministic for a seed: write `n` fails when the
/// `n`-th draw of a splitmix64 sequence falls below `rate`, so the failures
/// are independent draws and their fraction converges on `rate`.
#[derive(Debug)]
pub struct FaultInjectingStore<S> {
    inner: S,
    threshold: AtomicU64,
    seed: u64,
    writes: AtomicU64,
    injected: AtomicU64,
}

/// A fault rate outside 0..=1 (or NaN).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InvalidFaultRate(pub f64);

impl std::fmt::Display for InvalidFaultRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "fault rate must be between 0 and 1; got {}", self.0)
    }
}

impl std::error::Error for InvalidFaultRate {}

fn threshold(rate: f64) -> Result<u64, InvalidFaultRate> {
    if !(0.0..=1.0).contains(&rate) {
        return Err(InvalidFaultRate(rate));
    }
    Ok(if rate >= 1.0 { u64::MAX } else { (rate * u64::MAX as f64) as u64 })
}

fn mix(mut z: u64) -> u64 {
    // splitmix64's finaliser: a well-spread hash of the write number.
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl<S: CheckpointStore> FaultInjectingStore<S> {
    /// Fails about `rate` (0 to 1) of writes, chosen by `seed`.
    pub fn new(inner: S, rate: f64, seed: u64) -> Result<Self, InvalidFaultRate> {
        let threshold = AtomicU64::new(threshold(rate)?);
        Ok(FaultInjectingStore { inner, threshold, seed, writes: AtomicU64::new(0), injected: AtomicU64::new(0) })
    }

    /// Fails about `rate` (0 to 1) of the writes from now on (0: none,
    /// e.g. once the store the faults stood for is gone).
    pub fn set_rate(&self, rate: f64) -> Result<(), InvalidFaultRate> {
        self.threshold.store(threshold(rate)?, Ordering::Relaxed);
        Ok(())
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    /// The store underneath.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: CheckpointStore> CheckpointStore for FaultInjectingStore<S> {
    fn put(&self, thread_id: &str, state: &[u8]) -> Result<i64, CheckpointError> {
        let n = self.writes.fetch_add(1, Ordering::Relaxed);
        // splitmix64: the n-th output of the sequence started at `seed`.
        let draw = mix(self.seed.wrapping_add(n.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        let threshold = self.threshold.load(Ordering::Relaxed);
        if threshold > 0 && draw <= threshold {
            self.injected.fetch_add(1, Ordering::Relaxed);
            return Err(CheckpointError::Injected { write: n });
        }
        self.inner.put(thread_id, state)
    }

    fn get(&self, thread_id: &str) -> Result<Option<Checkpoint>, CheckpointError> {
        self.inner.get(thread_id)
    }

    fn list(&self, thread_id: &str, limit: usize) -> Result<Vec<Checkpoint>, CheckpointError> {
        self.inner.list(thread_id, limit)
    }

    fn file_size_bytes(&self) -> Option<u64> {
        self.inner.file_size_bytes()
    }

    fn pool_usage(&self) -> Option<(u32, u32)> {
        self.inner.pool_usage()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Accepting;

    impl CheckpointStore for Accepting {
        fn put(&self, _: &str, _: &[u8]) -> Result<i64, CheckpointError> {
            Ok(1)
        }
        fn get(&self, _: &str) -> Result<Option<Checkpoint>, CheckpointError> {
            Ok(None)
        }
        fn list(&self, _: &str, _: usize) -> Result<Vec<Checkpoint>, CheckpointError> {
            Ok(Vec::new())
        }
    }

    #[test]
    fn the_failed_fraction_converges_on_the_rate() {
        for (rate, seed) in [(0.05, 0x5eed), (0.02, 1), (0.5, 2)] {
            let store = FaultInjectingStore::new(Accepting, rate, seed).unwrap();
            let n = 20_000;
            let failed = (0..n).filter(|_| store.put("t", b"").is_err()).count();
            assert_eq!(failed as u64, store.injected());
            let fraction = failed as f64 / n as f64;
            // Binomial standard deviation at n = 20,000 is at most 0.0036.
            assert!((fraction - rate).abs() < 0.015, "rate {rate}: got {fraction}");
        }
    }
}
