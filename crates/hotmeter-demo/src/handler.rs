//! The demo's batch handler: each observation into the recall index, one
//! durable checkpoint per batch, and the stages of every tenth trace.
//!
//! Owns: what a worker does with a batch. Must not: count anything itself
//! (the store and the pool record), or hide a failed write.

use std::sync::Arc;

use hotmeter::TraceId;
use hotmeter_checkpoint::{FaultInjectingStore, MonitoredStore};

use crate::store::Backend;
use hotmeter_slo::TraceTracker;
use hotmeter_streaming::{BatchContext, BatchFailure, BatchHandler, FailureKind, Observation, RecallIndex};

pub(crate) type Store = MonitoredStore<FaultInjectingStore<Backend>>;

/// Stores each observation in the recall index, then writes one checkpoint
/// of the worker's progress per batch.
#[derive(Debug)]
pub(crate) struct DemoHandler {
    pub(crate) store: Store,
    pub(crate) recall: Arc<RecallIndex>,
    pub(crate) traces: Arc<TraceTracker>,
}

/// The pipeline's stages, as the trace tracker knows them.
pub(crate) const STAGES: [&str; 4] = ["generate", "enqueue", "process", "checkpoint_write"];

/// One observation in this many is traced (its key is a multiple of it).
pub(crate) const TRACE_EVERY: u64 = 10;

pub(crate) fn trace_id(key: u64) -> Option<String> {
    key.is_multiple_of(TRACE_EVERY).then(|| format!("{key:016x}"))
}

impl BatchHandler for DemoHandler {
    fn handle(&self, ctx: &BatchContext, batch: &[Observation]) -> Result<(), BatchFailure> {
        for o in batch {
            self.recall.insert(o);
            if let Some(id) = trace_id(o.key) {
                let _ = self.traces.record(&id, "process");
            }
        }
        let result = self.write_checkpoint(ctx, batch);
        // A trace ends here: complete, or counted with its missing stages
        // (a failed checkpoint write leaves `checkpoint_write` missing).
        for o in batch {
            if let Some(id) = trace_id(o.key) {
                if result.is_ok() {
                    let _ = self.traces.record(&id, "checkpoint_write");
                }
                let _ = self.traces.validate(&id, &STAGES);
            }
        }
        result
    }
}

impl DemoHandler {
    fn write_checkpoint(&self, ctx: &BatchContext, batch: &[Observation]) -> Result<(), BatchFailure> {
        let last = batch.last().map_or(0, |o| o.key);
        let state = format!(
            "{{\"worker\":{},\"batch\":{},\"observations\":{},\"last_key\":{last}}}",
            ctx.worker_id,
            ctx.batch_seq,
            batch.len()
        );
        // The batch's first traced observation lends its trace to the write's
        // latency, as an exemplar: a slow write bucket links to a trace.
        let trace = batch.iter().find_map(|o| trace_id(o.key)).and_then(|id| TraceId::new(&id).ok());
        self.store
            .put_traced(&self.store.inner().inner().thread_id(ctx.worker_id), state.as_bytes(), trace.as_ref())
            .map(drop)
            .map_err(|e| BatchFailure::new(FailureKind::Checkpoint, e))
    }
}
