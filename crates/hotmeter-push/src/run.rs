//! Recognising a string family's counter run from one encode to the next,
//! for the encoders' caches of what they encoded from it (OTLP's
//! attributes, remote_write's label sets).
//!
//! Owns: the identity of a run (its text sample prefixes, byte for byte,
//! and each prefix's length) and how long an encoder keeps what it cached
//! or read for a family it did not walk. Must not: encode anything (each
//! encoder keeps its own encoding beside a [`RunSeen`]), or be keyed by
//! anything but a family registration (`Desc::registration_id`).
//!
//! Within one registration the family's label names and constant labels
//! are fixed, and label values are escaped in the text prefixes, so the
//! same prefixes mean the same label sets in the same order. Across
//! registrations they do not: names are written as registered, and UTF-8
//! names (`a="x",b`) can spell another family's label set.

use hotmeter::expose::CounterRun;

/// How many encodes in a row an encoder keeps what it cached or read for a
/// family it did not walk (unregistered, or of another registry it also
/// encodes), or for a series that may come back to its reading.
pub(crate) const KEEP_UNSEEN: u64 = 64;

/// Whether to keep something last used at encode `seen`, now at encode
/// `now`, when `may_come_back` (its family was not walked this time, or its
/// series may return to it).
pub(crate) fn keep(seen: u64, now: u64, may_come_back: bool) -> bool {
    seen == now || (may_come_back && now - seen <= KEEP_UNSEEN)
}

/// A counter run as an encoder last encoded it.
#[derive(Debug, Default)]
pub(crate) struct RunSeen {
    /// The encode that last read it.
    pub(crate) seen: u64,
    prefixes: Vec<u8>,
    prefix_lens: Vec<usize>,
}

impl RunSeen {
    /// Whether `run` holds the label sets this was noted from, in order.
    pub(crate) fn holds(&self, run: &CounterRun<'_>) -> bool {
        self.prefix_lens.len() == run.len()
            && self.prefixes == run.prefixes()
            && run.iter().zip(&self.prefix_lens).all(|((prefix, _), &len)| prefix.len() == len)
    }

    /// Notes `run` as the one the cache beside this now holds.
    pub(crate) fn note(&mut self, run: &CounterRun<'_>) {
        self.prefixes.clear();
        self.prefixes.extend_from_slice(run.prefixes());
        self.prefix_lens.clear();
        self.prefix_lens.extend(run.iter().map(|(prefix, _)| prefix.len()));
    }
}
