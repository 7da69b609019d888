//! The synthetic load's ingredients: the three weighted memory spaces, a
//! seeded generator, and the submitted/rejected counts the summary checks
//! against, with what churn did (the threads that use them are in `pipeline`).
//!
//! Owns: those definitions (a leaf: it imports nothing from the demo).
//! Must not: hold anything a recording thread waits on.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

/// xorshift64*: a small, fast, seeded generator for synthetic traffic.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in 0..n.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub(crate) const SPACES: [(&str, u64); 3] = [("tenant-a", 50), ("tenant-b", 30), ("tenant-c", 20)];

/// What churn did over a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChurnCounts {
    /// Churning spaces registered.
    pub(crate) appeared: u64,
    /// Churning spaces that fell silent.
    pub(crate) silenced: u64,
    /// Spaces the pool had retired that traffic brought back.
    pub(crate) brought_back: u64,
    /// Churning spaces the pool refused (its `max_memory_spaces`).
    pub(crate) refused: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Traffic {
    pub(crate) submitted: AtomicU64,
    pub(crate) rejected: AtomicU64,
    /// Set by the generator when it stops.
    pub(crate) churn: Mutex<ChurnCounts>,
}
