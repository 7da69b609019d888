//! Every metric the streaming layer exports: names, labels, help, buckets.
//!
//! Owns: registration on a [`Registry`], the handles recording code keeps,
//! and the one decision whether the pipeline records at all
//! ([`PoolConfig::record`](crate::PoolConfig::record)). One name, one place:
//! dashboards, alert rules and tests refer to the constants here. Must not:
//! decide anything about the pipeline (the queue, pool and monitor do),
//! import anything from the crate but its leaves (`labels`, `clock`), or
//! look a label set up on a hot path — callers resolve handles once per
//! memory space or worker and keep them.
//!
//! Labels with fixed cardinality (`priority`, `status`, `level`, `reason`,
//! `error_type`) come from typed label enums; a family keyed by one of them
//! alone is a typed [`Family`]. Where such a label is paired with an open
//! one (`memory_space`, `worker_id`), the family is string-keyed and the
//! typed values index an array of handles resolved when the space or
//! worker is created, so recording is still an array index.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use hotmeter::{Buckets, Counter, Family, Gauge, Histogram, IntGauge, LabelSet, Registry, RegistryError, StringFamily};

use crate::clock::{now_ns, seconds_between};
use crate::labels::{BackpressureState, FailureKind, Priority, RejectReason, SpaceOperation};

/// `streaming_observations_total{memory_space,priority}`: observations accepted into the queue.
pub const OBSERVATIONS: &str = "streaming_observations_total";
/// `streaming_observations_processed_total{memory_space}`: observations a worker finished (batch succeeded or failed).
pub const OBSERVATIONS_PROCESSED: &str = "streaming_observations_processed_total";
/// `streaming_observations_rejected_total{memory_space,reason}`: observations refused at enqueue.
pub const OBSERVATIONS_REJECTED: &str = "streaming_observations_rejected_total";
/// `streaming_removed_space_uses_total{operation}`: submissions and recalls through the handle of a
/// memory space whose series were already removed (the space's own series cannot count them).
pub const REMOVED_SPACE_USES: &str = "streaming_removed_space_uses_total";
/// `streaming_backpressure_activations_total{memory_space,level}`: upward state transitions.
pub const BACKPRESSURE_ACTIVATIONS: &str = "streaming_backpressure_activations_total";
/// `streaming_batches_processed_total{worker_id}`: batches handled, failed ones included.
pub const BATCHES_PROCESSED: &str = "streaming_batches_processed_total";
/// `streaming_batch_failures_total{worker_id,error_type}`: batches whose handler failed.
pub const BATCH_FAILURES: &str = "streaming_batch_failures_total";
/// `streaming_work_stolen_total{worker_id}`: steals by this worker from another's deque; each moves up
/// to one batch of observations, so the ratio to batches is the share of batches fed by stealing.
pub const WORK_STOLEN: &str = "streaming_work_stolen_total";
/// `streaming_queue_depth{priority}`: observations waiting in each lane.
pub const QUEUE_DEPTH: &str = "streaming_queue_depth";
/// `streaming_queue_capacity{priority}`: each lane's capacity (for utilisation rules).
pub const QUEUE_CAPACITY: &str = "streaming_queue_capacity";
/// `streaming_worker_utilization{worker_id}`: percent of the last second a worker was busy.
pub const WORKER_UTILIZATION: &str = "streaming_worker_utilization";
/// `streaming_worker_up{worker_id}`: 1 while the worker thread runs.
pub const WORKER_UP: &str = "streaming_worker_up";
/// `streaming_active_sessions`: open sessions (a gauge). Engram called it
/// `streaming_active_sessions_total`; a gauge must not end in `_total`
/// (promtool), so it was renamed (docs/operations.md, "Renamed metrics").
pub const ACTIVE_SESSIONS: &str = "streaming_active_sessions";
/// `streaming_backpressure_state{memory_space}`: 0 normal, 1 warning, 2 critical, 3 overloaded.
pub const BACKPRESSURE_STATE: &str = "streaming_backpressure_state";
/// `streaming_queue_memory_bytes`: queued observations' slots plus payloads.
pub const QUEUE_MEMORY: &str = "streaming_queue_memory_bytes";
/// `streaming_observation_latency_seconds{memory_space}`: enqueue to processed.
pub const OBSERVATION_LATENCY: &str = "streaming_observation_latency_seconds";
/// `streaming_recall_latency_seconds{memory_space}`: one recall query.
pub const RECALL_LATENCY: &str = "streaming_recall_latency_seconds";
/// `streaming_batch_size{worker_id}`: observations per batch (a count).
pub const BATCH_SIZE: &str = "streaming_batch_size";
/// `streaming_queue_wait_time_seconds{priority}`: enqueue to taken by a worker.
pub const QUEUE_WAIT: &str = "streaming_queue_wait_time_seconds";

/// Bucket bounds of `streaming_observation_latency_seconds` and
/// `streaming_queue_wait_time_seconds`: 100 µs doubling to 3.28 s.
pub fn latency_bounds() -> Vec<f64> {
    latency_buckets().bounds().to_vec()
}

fn latency_buckets() -> Buckets {
    // 100 µs to 3.3 s in 16 doublings: queue waits and end-to-end latency of
    // in-memory work are sub-millisecond, durable commits and backlogs reach
    // seconds. Sixteen bounds keep the bucket search linear (the core's
    // cut-over), which is what this per-observation histogram can afford.
    Buckets::exponential(0.000_1, 2.0, 16).expect("valid constant buckets")
}

fn recall_buckets() -> Buckets {
    Buckets::exponential(0.000_001, 4.0, 12).expect("valid constant buckets")
}

fn batch_size_buckets() -> Buckets {
    Buckets::exponential(1.0, 2.0, 11).expect("valid constant buckets")
}

/// The pipeline's registered families.
#[derive(Debug)]
struct Families {
    observations: StringFamily<Counter>,
    processed: StringFamily<Counter>,
    rejected: StringFamily<Counter>,
    activations: StringFamily<Counter>,
    state: StringFamily<IntGauge>,
    latency: StringFamily<Histogram>,
    recall: StringFamily<Histogram>,
    batches: StringFamily<Counter>,
    failures: StringFamily<Counter>,
    stolen: StringFamily<Counter>,
    utilization: StringFamily<Gauge>,
    worker_up: StringFamily<IntGauge>,
    batch_size: StringFamily<Histogram>,
    queue_depth: Family<Priority, IntGauge>,
    queue_capacity: Family<Priority, IntGauge>,
    queue_wait: Family<Priority, Histogram>,
    removed_space_uses: Family<SpaceOperation, Counter>,
    sessions: IntGauge,
    queue_memory: IntGauge,
}

fn handle<M: hotmeter::expose::Metric>(family: &StringFamily<M>, values: &[&str]) -> M {
    family.get(values).expect("label count fixed by the registration above")
}

impl Families {
    /// Every string family is built here rather than by
    /// `Registry::labeled_family`: the pool keeps handles to its series, so
    /// a registry's default idle timeout must not expire them (a space's
    /// series live until the pool removes them, [`PipelineMetrics::remove_space`]).
    /// Families keyed by memory space reclaim their memory: spaces come and
    /// go, and the pool resolves their handles once per space, so the
    /// reclaiming lookup's epoch pin is never on a recording path. Their
    /// limit is what `max_spaces` spaces need (a space holds `per_space`
    /// series of a family), so no space's series ever overflow.
    fn register(registry: &Registry, max_spaces: usize) -> Result<Self, RegistryError> {
        fn by_space<M: hotmeter::expose::Metric>(
            names: &[&str],
            series: usize,
            make: impl Fn() -> M + Send + Sync + 'static,
        ) -> StringFamily<M> {
            StringFamily::builder(names, make).limit(series).reclaim_memory().build()
        }
        let (one, per) = (max_spaces, |n: usize| max_spaces * n);
        let r = registry;
        let space = &["memory_space"];
        let worker = &["worker_id"];
        Ok(Families {
            observations: r.register(hotmeter::Opts::new(OBSERVATIONS, "Observations accepted into the queue, by memory space and priority."), by_space(&["memory_space", "priority"], per(Priority::ALL.len()), Counter::new))?,
            processed: r.register(hotmeter::Opts::new(OBSERVATIONS_PROCESSED, "Observations finished by a worker (their batch succeeded or failed)."), by_space(space, one, Counter::new))?,
            rejected: r.register(hotmeter::Opts::new(OBSERVATIONS_REJECTED, "Observations refused at enqueue, by reason; each was handed back to its caller."), by_space(&["memory_space", "reason"], per(RejectReason::ALL.len()), Counter::new))?,
            activations: r.register(hotmeter::Opts::new(BACKPRESSURE_ACTIVATIONS, "Backpressure state rises, by the level entered, attributed to the memory space that submitted most since the last check."), by_space(&["memory_space", "level"], per(3), Counter::new))?,
            state: r.register(hotmeter::Opts::new(BACKPRESSURE_STATE, "Backpressure state applied to this memory space: 0 normal, 1 warning, 2 critical, 3 overloaded."), by_space(space, one, IntGauge::new))?,
            latency: r.register(hotmeter::Opts::new(OBSERVATION_LATENCY, "Time from enqueue to the end of the batch that processed the observation."), by_space(space, one, || Histogram::new(latency_buckets())))?,
            recall: r.register(hotmeter::Opts::new(RECALL_LATENCY, "Time to answer one recall query against stored observations."), by_space(space, one, || Histogram::new(recall_buckets())))?,
            batches: r.register(hotmeter::Opts::new(BATCHES_PROCESSED, "Batches a worker handled, failed ones included."), StringFamily::new(worker, Counter::new))?,
            failures: r.register(hotmeter::Opts::new(BATCH_FAILURES, "Batches whose handler returned an error or panicked, by error type."), StringFamily::new(&["worker_id", "error_type"], Counter::new))?,
            stolen: r.register(hotmeter::Opts::new(WORK_STOLEN, "Times this worker stole work (up to one batch) from another worker's deque."), StringFamily::new(worker, Counter::new))?,
            utilization: r.register(hotmeter::Opts::new(WORKER_UTILIZATION, "Percent of the last measured second the worker spent handling batches."), StringFamily::new(worker, Gauge::new))?,
            worker_up: r.register(hotmeter::Opts::new(WORKER_UP, "1 while the worker thread runs, 0 after it stopped."), StringFamily::new(worker, IntGauge::new))?,
            batch_size: r.register(hotmeter::Opts::new(BATCH_SIZE, "Observations per batch (a count, not bytes)."), StringFamily::new(worker, || Histogram::new(batch_size_buckets())))?,
            queue_depth: r.typed_family(QUEUE_DEPTH, "Observations waiting in each priority lane.", IntGauge::new)?,
            queue_capacity: r.typed_family(QUEUE_CAPACITY, "Capacity of each priority lane.", IntGauge::new)?,
            queue_wait: r.typed_family(
                QUEUE_WAIT, "Time from enqueue until a worker took the observation, by priority.",
                || Histogram::new(latency_buckets()),
            )?,
            removed_space_uses: r.typed_family(
                REMOVED_SPACE_USES,
                "Submissions (refused as retired) and recalls through the handle of a memory space whose series were already removed.",
                Counter::new,
            )?,
            sessions: r.int_gauge(ACTIVE_SESSIONS, "Sessions currently open.")?,
            queue_memory: r.int_gauge(QUEUE_MEMORY, "Bytes held by queued observations: their slots plus payloads.")?,
        })
    }

    fn space(&self, name: &str) -> SpaceHandles {
        SpaceHandles {
            observations: std::array::from_fn(|i| handle(&self.observations, &[name, Priority::ALL[i].as_str()])),
            processed: handle(&self.processed, &[name]),
            rejected: std::array::from_fn(|i| handle(&self.rejected, &[name, RejectReason::ALL[i].as_str()])),
            activations: [BackpressureState::Warning, BackpressureState::Critical, BackpressureState::Overloaded]
                .map(|l| handle(&self.activations, &[name, l.as_str()])),
            state: handle(&self.state, &[name]),
            latency: handle(&self.latency, &[name]),
            recall: handle(&self.recall, &[name]),
            after_removal: std::array::from_fn(|i| self.removed_space_uses.get(SpaceOperation::ALL[i]).clone()),
        }
    }

    /// Removes every series of the memory spaces `names`: one pass over
    /// each family, however many spaces go at once.
    fn remove_spaces(&self, names: &HashSet<&str>) {
        // `memory_space` is every one of these families' first label.
        let keep = |values: &[&str]| !names.contains(values[0]);
        self.observations.retain(keep);
        self.processed.retain(keep);
        self.rejected.retain(keep);
        self.activations.retain(keep);
        self.state.retain(keep);
        self.latency.retain(keep);
        self.recall.retain(keep);
    }

    fn worker(&self, id: usize) -> WorkerHandles {
        let id = id.to_string();
        let id = id.as_str();
        WorkerHandles {
            batches: handle(&self.batches, &[id]),
            failures: std::array::from_fn(|i| handle(&self.failures, &[id, FailureKind::ALL[i].as_str()])),
            stolen: handle(&self.stolen, &[id]),
            utilization: handle(&self.utilization, &[id]),
            up: handle(&self.worker_up, &[id]),
            batch_size: handle(&self.batch_size, &[id]),
        }
    }
}

/// The pipeline's metrics, recording or not: the one place that decides.
///
/// Built once by the pool from [`PoolConfig::record`](crate::PoolConfig::record).
/// The families are always registered (a scrape shows the same names either
/// way, and the lane capacities); when recording is off the handles are
/// `None` and every method below returns at its first line, so the queue,
/// the pool and the monitor call them unconditionally. Cloning shares them.
#[derive(Clone, Debug)]
pub(crate) struct PipelineMetrics(Option<Arc<Families>>);

impl PipelineMetrics {
    /// Registers every family on `registry` and publishes each lane's
    /// capacity (`capacities` in [`Priority::ALL`] order); records from then
    /// on only if `record`.
    /// Families keyed by memory space hold `max_spaces` spaces' series.
    pub(crate) fn register(
        registry: &Registry,
        capacities: [usize; 3],
        max_spaces: usize,
        record: bool,
    ) -> Result<Self, RegistryError> {
        let families = Families::register(registry, max_spaces)?;
        for (&p, capacity) in Priority::ALL.iter().zip(capacities) {
            families.queue_capacity.get(p).set(i64::try_from(capacity).unwrap_or(i64::MAX));
        }
        Ok(PipelineMetrics(record.then(|| Arc::new(families))))
    }

    /// Handles for one memory space, resolved once when the space is added.
    pub(crate) fn space(&self, name: &str) -> SpaceMetrics {
        SpaceMetrics(self.0.as_ref().map(|f| f.space(name)))
    }

    /// Removes every series of the memory spaces `names`: the pool calls
    /// it once nothing can record into them any more.
    pub(crate) fn remove_spaces(&self, names: &[String]) {
        if let Some(f) = &self.0
            && !names.is_empty()
        {
            f.remove_spaces(&names.iter().map(String::as_str).collect());
        }
    }

    /// Handles for one worker, resolved once when it starts.
    pub(crate) fn worker(&self, id: usize) -> WorkerMetrics {
        WorkerMetrics(self.0.as_ref().map(|f| f.worker(id)))
    }

    /// A session opened (`+1`) or closed (`-1`).
    pub(crate) fn sessions_add(&self, delta: i64) {
        if let Some(f) = &self.0 {
            f.sessions.add(delta);
        }
    }

    /// Publishes lane depths (in [`Priority::ALL`] order) and queued bytes.
    pub(crate) fn queue_gauges(&self, depths: [usize; 3], memory_bytes: u64) {
        if let Some(f) = &self.0 {
            for (&p, depth) in Priority::ALL.iter().zip(depths) {
                f.queue_depth.get(p).set(i64::try_from(depth).unwrap_or(i64::MAX));
            }
            f.queue_memory.set(i64::try_from(memory_bytes).unwrap_or(i64::MAX));
        }
    }

    /// A worker took an observation enqueued at `enqueued_ns`; `now` is read
    /// once per claim, and only when recording.
    #[inline]
    pub(crate) fn claimed(&self, priority: Priority, enqueued_ns: u64, now: &mut Option<u64>) {
        if let Some(f) = &self.0 {
            let now = *now.get_or_insert_with(now_ns);
            f.queue_wait.get(priority).observe(seconds_between(enqueued_ns, now));
        }
    }
}

#[derive(Debug)]
struct SpaceHandles {
    observations: [Counter; 3],
    processed: Counter,
    rejected: [Counter; RejectReason::ALL.len()],
    activations: [Counter; 3],
    state: IntGauge,
    latency: Histogram,
    recall: Histogram,
    /// Pool-wide series (not this space's): what is asked through this
    /// space's handle once its own series are gone.
    after_removal: [Counter; SpaceOperation::ALL.len()],
}

/// One memory space's metrics (`None` inside when recording is off).
#[derive(Debug)]
pub(crate) struct SpaceMetrics(Option<SpaceHandles>);

impl SpaceMetrics {
    /// An observation was accepted into its lane.
    #[inline]
    pub(crate) fn accepted(&self, priority: Priority) {
        if let Some(h) = &self.0 {
            h.observations[priority.index()].inc();
        }
    }

    /// An observation was refused.
    #[inline]
    pub(crate) fn rejected(&self, reason: RejectReason) {
        if let Some(h) = &self.0 {
            h.rejected[reason.index()].inc();
        }
    }

    /// Observations accepted so far (0 when not recording): the monitor
    /// attributes activations by it.
    pub(crate) fn accepted_total(&self) -> u64 {
        self.0.as_ref().map_or(0, |h| h.observations.iter().map(Counter::get).sum())
    }

    /// The backpressure state now applied to this space.
    pub(crate) fn set_state(&self, state: BackpressureState) {
        if let Some(h) = &self.0 {
            h.state.set(i64::from(state.value()));
        }
    }

    /// The state rose to `level` (Warning or above), attributed to this space.
    pub(crate) fn activated(&self, level: BackpressureState) {
        if let Some(h) = &self.0
            && let Some(c) = level.index().checked_sub(1).and_then(|i| h.activations.get(i))
        {
            c.inc();
        }
    }

    /// One recall query took `elapsed`.
    pub(crate) fn recalled(&self, elapsed: Duration) {
        if let Some(h) = &self.0 {
            h.recall.observe_duration(elapsed);
        }
    }

    /// `operation` was asked through this space's handle after its series
    /// were removed: counted in the pool-wide series.
    pub(crate) fn used_after_removal(&self, operation: SpaceOperation) {
        if let Some(h) = &self.0 {
            h.after_removal[operation.index()].inc();
        }
    }
}

#[derive(Debug)]
struct WorkerHandles {
    batches: Counter,
    failures: [Counter; FailureKind::ALL.len()],
    stolen: Counter,
    utilization: Gauge,
    up: IntGauge,
    batch_size: Histogram,
}

/// One worker's metrics (`None` inside when recording is off).
#[derive(Debug)]
pub(crate) struct WorkerMetrics(Option<WorkerHandles>);

impl WorkerMetrics {
    /// The worker thread started (`true`) or stopped (`false`; its
    /// utilisation drops to 0).
    pub(crate) fn up(&self, up: bool) {
        if let Some(h) = &self.0 {
            h.up.set(i64::from(up));
            if !up {
                h.utilization.set(0.0);
            }
        }
    }

    /// The worker stole work from another's deque.
    #[inline]
    pub(crate) fn stole(&self) {
        if let Some(h) = &self.0 {
            h.stolen.inc();
        }
    }

    /// A batch of `size` ended at `done_ns`, failed if `failure` is set.
    /// `observations` yields each one's space metrics and enqueue stamp; it
    /// is only walked when recording.
    #[inline]
    pub(crate) fn batch_done<'a>(
        &self,
        size: usize,
        failure: Option<FailureKind>,
        done_ns: u64,
        observations: impl Iterator<Item = (&'a SpaceMetrics, u64)>,
    ) {
        let Some(h) = &self.0 else { return };
        for (space, enqueued_ns) in observations {
            if let Some(s) = &space.0 {
                s.latency.observe(seconds_between(enqueued_ns, done_ns));
                s.processed.inc();
            }
        }
        h.batches.inc();
        h.batch_size.observe(size as f64);
        if let Some(kind) = failure {
            h.failures[kind.index()].inc();
        }
    }

    /// Percent of the last window the worker was busy.
    pub(crate) fn utilization(&self, percent: f64) {
        if let Some(h) = &self.0 {
            h.utilization.set(percent);
        }
    }
}
