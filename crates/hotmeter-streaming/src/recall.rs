//! Recall: read queries against what the pipeline stored, timed.
//!
//! Owns: a bounded in-memory index of the latest observations per memory
//! space, and timing each recall into `streaming_recall_latency_seconds{memory_space}`. Must not:
//! grow without bound (each space keeps its newest `capacity` keys, and a
//! removed space's keys are dropped when the next new space is indexed).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use crate::labels::SpaceOperation;
use crate::observation::{MemorySpace, Observation};

#[derive(Debug, Default)]
struct SpaceIndex {
    by_key: HashMap<u64, Vec<u8>>,
    order: VecDeque<u64>,
}

/// The newest observations of each memory space, by key. One mutex per
/// space, so recalls in one space never wait on writes to another.
#[derive(Debug)]
pub struct RecallIndex {
    capacity: usize,
    /// By [`MemorySpace::index`], which a pool never reuses.
    spaces: Mutex<HashMap<usize, Indexed>>,
}

/// One space's keys, with the space (to see when it is removed).
type Indexed = (MemorySpace, Arc<Mutex<SpaceIndex>>);

impl RecallIndex {
    /// An index keeping the newest `capacity` keys of each space (at least 1).
    pub fn new(capacity: usize) -> Self {
        RecallIndex { capacity: capacity.max(1), spaces: Mutex::new(HashMap::new()) }
    }

    fn space(&self, space: &MemorySpace) -> Arc<Mutex<SpaceIndex>> {
        let mut spaces = self.spaces.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, idx)) = spaces.get(&space.index()) {
            return idx.clone();
        }
        // A new space: drop what removed ones held (a removed space never
        // comes back: its name, registered again, is a new space).
        spaces.retain(|_, (s, _)| !s.inner.life.is_removed());
        let idx = Arc::<Mutex<SpaceIndex>>::default();
        if !space.inner.life.is_removed() {
            spaces.insert(space.index(), (space.clone(), idx.clone()));
        }
        idx
    }

    /// Stores (or replaces) the observation's payload under its key.
    pub fn insert(&self, obs: &Observation) {
        let space = self.space(&obs.space);
        let mut idx = space.lock().unwrap_or_else(PoisonError::into_inner);
        if idx.by_key.insert(obs.key, obs.payload.clone()).is_none() {
            idx.order.push_back(obs.key);
            while idx.order.len() > self.capacity {
                if let Some(old) = idx.order.pop_front() {
                    idx.by_key.remove(&old);
                }
            }
        }
    }

    /// Looks `key` up in `space`, recording the time taken in
    /// `streaming_recall_latency_seconds`. `None` when the key was never
    /// stored or has aged out.
    pub fn recall(&self, space: &MemorySpace, key: u64) -> Option<Vec<u8>> {
        let started = Instant::now();
        let found = {
            let idx = self.space(space);
            let idx = idx.lock().unwrap_or_else(PoisonError::into_inner);
            idx.by_key.get(&key).cloned()
        };
        // A removed space's series are gone: counted pool-wide instead.
        if space.inner.life.is_removed() {
            space.metrics().used_after_removal(SpaceOperation::Recall);
        } else {
            space.metrics().recalled(started.elapsed());
        }
        found
    }

    /// Keys held for `space`.
    pub fn len(&self, space: &MemorySpace) -> usize {
        self.space(space).lock().unwrap_or_else(PoisonError::into_inner).order.len()
    }

    /// Whether nothing is held for `space`.
    pub fn is_empty(&self, space: &MemorySpace) -> bool {
        self.len(space) == 0
    }
}
