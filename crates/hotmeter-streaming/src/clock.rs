//! The pipeline's clock: one process-wide epoch and integer nanoseconds.
//!
//! Owns: the instant observation timestamps count from, and the conversion
//! of two stamps into seconds. Must not: import anything else from this
//! crate, or cost more than one `Instant::now` per stamp.

use std::sync::OnceLock;
use std::time::Instant;

/// The process-wide instant that observation timestamps count from.
pub(crate) fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since [`epoch`] (saturating after 584 years).
#[inline]
pub(crate) fn now_ns() -> u64 {
    u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Seconds between two [`now_ns`] stamps, 0 if `later` is not later.
#[inline]
pub(crate) fn seconds_between(earlier: u64, later: u64) -> f64 {
    later.saturating_sub(earlier) as f64 * 1e-9
}
