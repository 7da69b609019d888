//! Exemplars: a trace id attached to an observation, so a slow bucket links
//! to a concrete trace (OpenMetrics exemplars).
//!
//! Owns: the validated [`TraceId`], the fixed-size [`Exemplar`] record and the
//! per-bucket slots a histogram keeps. Must not: allocate or block when
//! recording — a slot is a fixed array behind a mutex that recording only
//! ever *tries* to take; when a reader holds it, that exemplar is skipped
//! (exemplars are samples, the observation itself is always recorded).

use std::fmt;

use crate::sync::Mutex;

/// Longest trace id, in bytes ([`TraceId::MAX_LEN`]).
const MAX_TRACE_ID: usize = 64;

/// A trace id checked to fit an exemplar: 1 to 64 bytes, no control characters.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TraceId {
    len: u8,
    bytes: [u8; MAX_TRACE_ID],
}

/// A trace id that cannot be attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceIdError {
    /// The id given.
    pub id: String,
}

impl fmt::Display for TraceIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid trace id {:?}: must be 1 to {MAX_TRACE_ID} bytes without control characters", self.id)
    }
}

impl std::error::Error for TraceIdError {}

impl TraceId {
    /// Longest trace id, in bytes. OpenMetrics caps an exemplar's label set
    /// at 128 characters; `trace_id` and 64 bytes of id stay well inside it.
    pub const MAX_LEN: usize = MAX_TRACE_ID;

    /// Checks and copies `id`.
    pub fn new(id: &str) -> Result<Self, TraceIdError> {
        if id.is_empty() || id.len() > MAX_TRACE_ID || id.chars().any(char::is_control) {
            return Err(TraceIdError { id: id.to_owned() });
        }
        let mut bytes = [0u8; MAX_TRACE_ID];
        bytes[..id.len()].copy_from_slice(id.as_bytes());
        Ok(TraceId { len: id.len() as u8, bytes })
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        // Copied from a `&str` whole, so always valid UTF-8.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({:?})", self.as_str())
    }
}

/// One exemplar: the observed value, its trace and when it was recorded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Exemplar {
    /// The trace.
    pub trace_id: TraceId,
    /// The observed value.
    pub value: f64,
    /// Seconds since the Unix epoch.
    pub timestamp: f64,
}

/// One exemplar slot per bucket, newest wins.
#[derive(Debug)]
pub(crate) struct ExemplarSlots {
    slots: Box<[Mutex<Option<Exemplar>>]>,
}

impl ExemplarSlots {
    pub(crate) fn new(buckets: usize) -> Self {
        ExemplarSlots { slots: (0..buckets).map(|_| Mutex::new(None)).collect() }
    }

    /// Stores an exemplar for `bucket` unless a reader holds its slot.
    pub(crate) fn offer(&self, bucket: usize, exemplar: Exemplar) {
        if let Some(slot) = self.slots.get(bucket)
            && let Ok(mut s) = slot.try_lock()
        {
            *s = Some(exemplar);
        }
    }

    /// Copies every slot into `out` (one entry per bucket).
    pub(crate) fn read_into(&self, out: &mut Vec<Option<Exemplar>>) {
        out.clear();
        out.extend(self.slots.iter().map(|s| *crate::sync::lock(s)));
    }
}

/// Now, in nanoseconds since the Unix epoch (0 if the clock is before it):
/// when a metric was made.
pub(crate) fn unix_nanos_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

pub(crate) fn now_unix_seconds() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_are_validated() {
        assert_eq!(
            TraceId::new("4bf92f3577b34da6a3ce929d0e0e4736").unwrap().as_str(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(TraceId::new(&"x".repeat(64)).is_ok());
        for bad in ["", "a\nb", &"x".repeat(65)] {
            assert_eq!(TraceId::new(bad), Err(TraceIdError { id: bad.to_owned() }));
        }
        assert_eq!(TraceId::new("quote\"d").unwrap().as_str(), "quote\"d", "escaped on output, not refused");
    }
}
