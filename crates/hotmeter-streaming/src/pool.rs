//! The worker pool: N threads with work stealing, adaptive batches, a
//! backpressure monitor, and a shutdown that loses nothing.
//!
//! Owns: worker threads and their local deques (crossbeam-deque), memory
//! space registration and retirement, sessions, and the monitor thread
//! that turns queue utilisation into a [`BackpressureState`], retires idle
//! spaces and removes drained ones' series. Must not: hold a lock while a
//! handler runs, let an observation leave except through a handler or
//! back to the caller ([`Shutdown::HandBack`], [`EnqueueError`]), or remove
//! a space's series while anything can still record into them (the holds
//! counted in `observation::SpaceLife`).
//!
//! ```text
//!  submit ──► [high | normal | low] lanes ──claim (≤ 2 × batch)──► worker deque ──pop batch──► handler
//!                       ▲                                          │  ▲
//!                       └─ monitor: utilisation → state ─┐         │  └── idle workers steal half
//!                                        shedding ◄──────┘         ▼
//!                                                      latency, batch size, utilisation
//! ```
//! Batch size adapts to the backlog: `clamp(queued / workers, min_batch, max_batch)`.

use std::collections::HashMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_deque::{Steal, Stealer, Worker as Deque};
use crossbeam_utils::CachePadded;
use crossbeam_utils::sync::Parker;
use hotmeter::{Counter, Registry, RegistryError};

use crate::backpressure::{BackpressureMonitor, BackpressureThresholds, ThresholdError};
use crate::clock::now_ns;
use crate::labels::{BackpressureState, FailureKind, Priority};
use crate::metrics::{PipelineMetrics, WorkerMetrics};
use crate::observation::{MemorySpace, Observation, SpaceError, SpaceLife, SpaceShared, validate_space_name};
use crate::queue::{EnqueueError, ObservationQueue, QueueConfig};

/// A handler's error for one batch: its kind (a bounded label) and cause.
#[derive(Debug)]
pub struct BatchFailure {
    kind: FailureKind,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl BatchFailure {
    /// A failure of this kind caused by `source`.
    pub fn new(kind: FailureKind, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        BatchFailure { kind, source: source.into() }
    }

    /// Its kind.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }
}

impl fmt::Display for BatchFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "batch failed ({}): {}", self.kind.as_str(), self.source)
    }
}

impl std::error::Error for BatchFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// What a worker knows about the batch it hands to the handler.
#[derive(Debug, Clone, Copy)]
pub struct BatchContext {
    /// The worker, `0..workers`.
    pub worker_id: usize,
    /// This worker's batch number, from 0.
    pub batch_seq: u64,
}

/// The work a pool does with each batch.
///
/// A handler runs on a worker thread with no pool lock held. A returned
/// error or a panic fails the batch: it is counted in
/// `streaming_batch_failures_total{error_type}` and its observations still
/// count as processed (they were handled, unsuccessfully), so that
/// processed + rejected + handed back always equals submitted.
pub trait BatchHandler: Send + Sync + 'static {
    /// Handles one batch (1 to `max_batch` observations).
    fn handle(&self, ctx: &BatchContext, batch: &[Observation]) -> Result<(), BatchFailure>;
}

/// How the pool is built.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Worker threads (default: available parallelism).
    pub workers: usize,
    /// Lane capacities and payload limit.
    pub queue: QueueConfig,
    /// Smallest batch a worker takes when work is waiting (default 1).
    pub min_batch: usize,
    /// Largest batch (default 64).
    pub max_batch: usize,
    /// When backpressure states are entered and left.
    pub backpressure: BackpressureThresholds,
    /// How often the monitor reads utilisation (default 5 ms).
    pub monitor_interval: Duration,
    /// How many memory spaces the pool holds at once (default 64): the
    /// bound on the `memory_space` label. A retired space counts until its
    /// series are removed.
    pub max_memory_spaces: usize,
    /// Retire a memory space nothing was submitted to for this long
    /// (default `None`: spaces live until retired by
    /// [`WorkerPool::retire_memory_space`]). Checked by the monitor thread.
    pub space_idle_timeout: Option<Duration>,
    /// How long a retired space's series stay in `/metrics`, with their
    /// final values, after its last observation was processed (default
    /// 30 s). Make it longer than every scraper's and pusher's interval, so
    /// each reads the final values; a pusher (remote_write) then sends the
    /// series' stale marker.
    pub retired_linger: Duration,
    /// Record metrics (default true). `false` exists to measure what
    /// recording costs the pipeline; nothing else changes.
    pub record: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            workers: std::thread::available_parallelism().map_or(2, usize::from),
            queue: QueueConfig::default(),
            min_batch: 1,
            max_batch: 64,
            backpressure: BackpressureThresholds::default(),
            monitor_interval: Duration::from_millis(5),
            max_memory_spaces: 64,
            space_idle_timeout: None,
            retired_linger: Duration::from_secs(30),
            record: true,
        }
    }
}

/// Why a pool could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum PoolError {
    /// A setting is out of range.
    InvalidConfig {
        /// Which setting.
        setting: &'static str,
        /// What it must be.
        requirement: &'static str,
    },
    /// Backpressure thresholds are inconsistent.
    Thresholds(ThresholdError),
    /// The metrics could not be registered (a name is taken by another shape).
    Registry(RegistryError),
    /// A thread could not be spawned.
    Spawn(std::io::Error),
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::InvalidConfig { setting, requirement } => {
                write!(f, "invalid pool setting {setting}: {requirement}")
            }
            PoolError::Thresholds(_) => f.write_str("invalid backpressure thresholds"),
            PoolError::Registry(_) => f.write_str("cannot register the pipeline's metrics"),
            PoolError::Spawn(_) => f.write_str("cannot spawn a pool thread"),
        }
    }
}

impl std::error::Error for PoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PoolError::InvalidConfig { .. } => None,
            PoolError::Thresholds(e) => Some(e),
            PoolError::Registry(e) => Some(e),
            PoolError::Spawn(e) => Some(e),
        }
    }
}

/// How [`WorkerPool::shutdown`] treats queued work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// Process everything already accepted, then stop.
    Drain,
    /// Finish the batches in hand, then return everything still queued to
    /// the caller in [`ShutdownReport::handed_back`].
    HandBack,
}

/// What a shutdown did.
#[derive(Debug)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Observations processed over the pool's life.
    pub processed: u64,
    /// Accepted observations returned unprocessed (only with [`Shutdown::HandBack`]).
    pub handed_back: Vec<Observation>,
    /// Batches handled over the pool's life, failed ones included.
    pub batches: u64,
    /// Batches that failed.
    pub failed_batches: u64,
}

/// Lifetime totals of a running pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Observations processed.
    pub processed: u64,
    /// Batches handled.
    pub batches: u64,
    /// Batches that failed.
    pub failed_batches: u64,
}

struct Shared {
    queue: ObservationQueue,
    metrics: PipelineMetrics,
    config: PoolConfig,
    /// Live and retired spaces; a retired one leaves when its series are
    /// removed (by the monitor, under this lock).
    spaces: Mutex<Spaces>,
    handback: AtomicBool,
    stop_monitor: AtomicBool,
    processed: Counter,
    batches: Counter,
    failed: Counter,
}

/// A pool of workers draining an [`ObservationQueue`] through a
/// [`BatchHandler`]. See the module docs for the flow.
///
/// Share it between submitting threads by reference or in an `Arc`;
/// [`shutdown`](Self::shutdown) takes `&self`, so any holder can stop it
/// while others are still submitting (they get `shutdown` refusals).
pub struct WorkerPool {
    shared: Arc<Shared>,
    threads: Mutex<Threads>,
}

#[derive(Default)]
struct Threads {
    workers: Vec<JoinHandle<Vec<Observation>>>,
    monitor: Option<(JoinHandle<()>, crossbeam_utils::sync::Unparker)>,
}

impl fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerPool")
            .field("workers", &self.shared.config.workers)
            .field("queued", &self.shared.queue.total_len())
            .field("state", &self.shared.queue.state())
            .finish_non_exhaustive()
    }
}

impl WorkerPool {
    /// Registers the pipeline metrics on `registry` and starts the workers
    /// and the monitor.
    pub fn start<H: BatchHandler>(config: PoolConfig, registry: &Registry, handler: Arc<H>) -> Result<Self, PoolError> {
        let invalid = |setting, requirement| Err(PoolError::InvalidConfig { setting, requirement });
        if !(1..=1024).contains(&config.workers) {
            return invalid("workers", "1 to 1024");
        }
        if config.min_batch == 0 || config.max_batch < config.min_batch {
            return invalid("min_batch/max_batch", "1 <= min_batch <= max_batch");
        }
        if Priority::ALL.iter().any(|&p| config.queue.capacity(p) == 0) {
            return invalid("queue", "every lane needs a capacity of at least 1");
        }
        if config.monitor_interval.is_zero() {
            return invalid("monitor_interval", "greater than zero");
        }
        if !(1..=usize::from(u16::MAX)).contains(&config.max_memory_spaces) {
            return invalid("max_memory_spaces", "1 to 65535");
        }
        if config.space_idle_timeout.is_some_and(|t| t.is_zero()) {
            return invalid("space_idle_timeout", "greater than zero");
        }
        let monitor = BackpressureMonitor::new(config.backpressure).map_err(PoolError::Thresholds)?;
        let capacities = std::array::from_fn(|i| config.queue.capacity(Priority::ALL[i]));
        let metrics = PipelineMetrics::register(registry, capacities, config.max_memory_spaces, config.record)
            .map_err(PoolError::Registry)?;

        let deques: Vec<Deque<Observation>> = (0..config.workers).map(|_| Deque::new_fifo()).collect();
        let stealers: Arc<[Stealer<Observation>]> = deques.iter().map(Deque::stealer).collect();
        let parkers: Vec<Parker> = (0..config.workers).map(|_| Parker::new()).collect();
        let unparkers = parkers.iter().map(|p| p.unparker().clone()).collect();
        let shared = Arc::new(Shared {
            queue: ObservationQueue::new(config.queue, unparkers),
            metrics,
            config,
            spaces: Mutex::new(Spaces::default()),
            handback: AtomicBool::new(false),
            stop_monitor: AtomicBool::new(false),
            processed: Counter::new(),
            batches: Counter::new(),
            failed: Counter::new(),
        });

        let weak = Arc::downgrade(&shared);
        registry.on_collect(move || {
            if let Some(shared) = Weak::upgrade(&weak) {
                shared.publish_queue_gauges();
            }
        });

        let pool = WorkerPool { shared: shared.clone(), threads: Mutex::new(Threads::default()) };
        for (id, (deque, parker)) in deques.into_iter().zip(parkers).enumerate() {
            let (shared, stealers, handler) = (shared.clone(), stealers.clone(), handler.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("hotmeter-worker-{id}"))
                .spawn(move || run_worker(id, &shared, deque, &stealers, &parker, &*handler));
            match spawned {
                Ok(h) => pool.threads().workers.push(h),
                Err(e) => {
                    pool.stop(Shutdown::HandBack);
                    return Err(PoolError::Spawn(e));
                }
            }
        }
        let parker = Parker::new();
        let unparker = parker.unparker().clone();
        let monitor_shared = shared.clone();
        match std::thread::Builder::new()
            .name("hotmeter-backpressure".into())
            .spawn(move || run_monitor(&monitor_shared, monitor, &parker))
        {
            Ok(h) => pool.threads().monitor = Some((h, unparker)),
            Err(e) => {
                pool.stop(Shutdown::HandBack);
                return Err(PoolError::Spawn(e));
            }
        }
        Ok(pool)
    }

    /// Registers (or finds) the memory space `name`. Names are validated and
    /// their number is capped by [`PoolConfig::max_memory_spaces`]. A
    /// retired space whose series are still exported is revived (its
    /// series go on); once they were removed, the name is registered anew
    /// and its series start again from zero.
    pub fn memory_space(&self, name: &str) -> Result<MemorySpace, SpaceError> {
        validate_space_name(name)?;
        let mut spaces = self.shared.spaces.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = spaces.list.iter().find(|s| s.name() == name).cloned() {
            // Under the list's lock the monitor cannot remove it meanwhile;
            // a revived space is as fresh as a new one to the monitor
            // (active now, its linger not begun).
            if s.inner.life.revive()
                && let Some(w) = spaces.watch.get_mut(&s.index())
            {
                (w.active_at, w.drained_at) = (Instant::now(), None);
            }
            return Ok(s);
        }
        let limit = self.shared.config.max_memory_spaces;
        if spaces.list.len() >= limit {
            return Err(SpaceError::TooMany { name: name.to_owned(), limit });
        }
        let space = MemorySpace {
            inner: Arc::new(SpaceShared {
                id: spaces.registered,
                name: name.into(),
                metrics: self.shared.metrics.space(name),
                life: CachePadded::new(SpaceLife::default()),
            }),
        };
        spaces.registered += 1;
        space.metrics().set_state(self.shared.queue.state());
        spaces.list.push(space.clone());
        Ok(space)
    }

    /// Retires `space`: later submissions to it are refused as `retired`;
    /// what it already queued is still processed; once the last of that is
    /// done and [`PoolConfig::retired_linger`] has passed, the monitor
    /// removes its series from the registry and frees its place under
    /// [`PoolConfig::max_memory_spaces`]. Returns `false` if it was already
    /// retired or is not this pool's.
    pub fn retire_memory_space(&self, space: &MemorySpace) -> bool {
        let spaces = self.shared.spaces.lock().unwrap_or_else(PoisonError::into_inner);
        spaces.list.iter().any(|s| s == space) && space.inner.life.retire()
    }

    /// Memory spaces held now: `(live, retired)`; retired ones are counted
    /// until their series are removed.
    pub fn memory_spaces(&self) -> (usize, usize) {
        let spaces = self.shared.spaces.lock().unwrap_or_else(PoisonError::into_inner);
        let retired = spaces.list.iter().filter(|s| s.is_retired()).count();
        (spaces.list.len() - retired, retired)
    }

    /// Memory spaces whose series were removed since the pool started.
    pub fn memory_spaces_removed(&self) -> u64 {
        self.shared.spaces.lock().unwrap_or_else(PoisonError::into_inner).removed
    }

    /// Submits one observation. On refusal (lane full, shed by
    /// backpressure, payload too large, shutting down, its space retired)
    /// the observation comes back inside the error, already counted as
    /// rejected (unless its space's series were removed: then the error is
    /// the only record).
    pub fn submit(
        &self,
        space: &MemorySpace,
        priority: Priority,
        key: u64,
        payload: Vec<u8>,
    ) -> Result<(), EnqueueError> {
        self.shared.submit(space, priority, key, payload)
    }

    /// Opens a session: a client stream submitting to one memory space,
    /// counted in `streaming_active_sessions` until dropped.
    pub fn session(&self, space: &MemorySpace) -> Session {
        self.shared.metrics.sessions_add(1);
        Session { shared: self.shared.clone(), space: space.clone() }
    }

    /// The queue, to read depth, utilisation and state.
    pub fn queue(&self) -> &ObservationQueue {
        &self.shared.queue
    }

    /// Lifetime totals so far.
    pub fn stats(&self) -> PoolStats {
        self.shared.stats()
    }

    /// The backpressure state submissions are judged by now; the monitor
    /// thread updates it every [`PoolConfig::monitor_interval`].
    pub fn backpressure_state(&self) -> BackpressureState {
        self.shared.queue.state()
    }

    /// Stops accepting work (later submissions are rejected as `shutdown`),
    /// then drains or hands back what was accepted, and joins every thread.
    /// Calling it again (or dropping the pool) afterwards does nothing more
    /// and reports the same totals with nothing handed back.
    pub fn shutdown(&self, mode: Shutdown) -> ShutdownReport {
        self.stop(mode)
    }

    fn threads(&self) -> std::sync::MutexGuard<'_, Threads> {
        self.threads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stop(&self, mode: Shutdown) -> ShutdownReport {
        let shared = &self.shared;
        // Held throughout, so concurrent shutdowns run one after the other.
        let mut threads = self.threads();
        shared.queue.close();
        if mode == Shutdown::HandBack {
            shared.handback.store(true, Ordering::Release);
        }
        shared.queue.wake_all();
        let mut handed_back = Vec::new();
        for h in threads.workers.drain(..) {
            match h.join() {
                Ok(left) => handed_back.extend(left),
                // run_worker catches handler panics; a panic here is a bug in
                // the pool itself, and its deque's items are lost with it.
                Err(p) => std::panic::resume_unwind(p),
            }
        }
        while let Some(obs) = shared.queue.pop() {
            handed_back.push(obs);
        }
        for obs in &handed_back {
            obs.space.inner.life.leave(1);
        }
        if let Some((h, unparker)) = threads.monitor.take() {
            shared.stop_monitor.store(true, Ordering::Release);
            unparker.unpark();
            let _ = h.join();
        }
        shared.publish_queue_gauges();
        let stats = shared.stats();
        ShutdownReport {
            processed: stats.processed,
            handed_back,
            batches: stats.batches,
            failed_batches: stats.failed_batches,
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        let report = self.stop(Shutdown::Drain);
        debug_assert!(report.handed_back.is_empty());
    }
}

/// One client stream submitting to a memory space; counted in
/// `streaming_active_sessions` while it lives.
pub struct Session {
    shared: Arc<Shared>,
    space: MemorySpace,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session").field("space", &self.space).finish_non_exhaustive()
    }
}

impl Session {
    /// Submits one observation to this session's memory space; see
    /// [`WorkerPool::submit`].
    pub fn submit(&self, priority: Priority, key: u64, payload: Vec<u8>) -> Result<(), EnqueueError> {
        self.shared.submit(&self.space, priority, key, payload)
    }

    /// The session's memory space.
    pub fn space(&self) -> &MemorySpace {
        &self.space
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shared.metrics.sessions_add(-1);
    }
}

impl Shared {
    fn submit(&self, space: &MemorySpace, priority: Priority, key: u64, payload: Vec<u8>) -> Result<(), EnqueueError> {
        let obs = Observation { space: space.clone(), priority, key, payload, enqueued_ns: now_ns() };
        self.queue.push(space, obs)
    }

    fn stats(&self) -> PoolStats {
        PoolStats { processed: self.processed.get(), batches: self.batches.get(), failed_batches: self.failed.get() }
    }

    fn publish_queue_gauges(&self) {
        self.metrics.queue_gauges(std::array::from_fn(|i| self.queue.len(Priority::ALL[i])), self.queue.memory_bytes());
    }

    fn batch_target(&self) -> usize {
        let c = &self.config;
        (self.queue.total_len() / c.workers).clamp(c.min_batch, c.max_batch)
    }
}

/// The memory spaces a pool holds.
#[derive(Debug, Default)]
struct Spaces {
    /// Live and retired spaces, in order of registration.
    list: Vec<MemorySpace>,
    /// Spaces registered so far: the next one's number.
    registered: usize,
    /// Spaces whose series were removed.
    removed: u64,
    /// What the monitor remembers of each space between its ticks, by
    /// [`MemorySpace::index`]; here, under the list's lock, so that a
    /// revival resets it.
    watch: HashMap<usize, Watch>,
}

/// What the monitor remembers of one space between its ticks.
#[derive(Debug)]
struct Watch {
    /// Accepted observations at the last tick (backpressure attribution).
    accepted: u64,
    /// [`SpaceLife::submissions`] at the last tick, and when it last changed.
    submissions: u64,
    active_at: Instant,
    /// Since when it has been retired with nothing holding it.
    drained_at: Option<Instant>,
}

impl Shared {
    /// The monitor's look at the spaces: retires idle ones
    /// ([`PoolConfig::space_idle_timeout`]), removes the series of retired
    /// ones drained for [`PoolConfig::retired_linger`], and returns those
    /// that remain with their acceptances since the last look.
    fn tend_spaces(&self, now: Instant) -> Vec<(MemorySpace, u64)> {
        let mut spaces = self.spaces.lock().unwrap_or_else(PoisonError::into_inner);
        let Spaces { list, removed, watch, .. } = &mut *spaces;
        let mut gone = Vec::new();
        let (idle_timeout, linger) = (self.config.space_idle_timeout, self.config.retired_linger);
        list.retain(|s| {
            let life = &s.inner.life;
            let w = watch.entry(s.index()).or_insert_with(|| Watch {
                accepted: 0,
                submissions: life.submissions(),
                active_at: now,
                drained_at: None,
            });
            let submissions = life.submissions();
            if submissions != w.submissions {
                (w.submissions, w.active_at) = (submissions, now);
            }
            if let Some(timeout) = idle_timeout
                && now.duration_since(w.active_at) >= timeout
            {
                life.retire();
            }
            if !life.is_drained() {
                // Once drained, a retired space takes no new work (only a
                // revival, which resets `drained_at`, would let it), so
                // holds seen later are refusals passing through: they must
                // not restart the linger, or a client retrying with a
                // stale handle would keep the space for ever.
                return true;
            }
            let drained_at = *w.drained_at.get_or_insert(now);
            if now.duration_since(drained_at) < linger {
                return true;
            }
            // Scrapers had `linger` to read the final values. After the
            // gate's barrier every acceptance of its last observations is
            // recorded; once marked removed, nothing records into its
            // series any more (a refusal holding it meanwhile makes the
            // mark wait a tick).
            self.queue.barrier();
            if !life.try_remove() {
                return true;
            }
            gone.push(s.name().to_owned());
            watch.remove(&s.index());
            *removed += 1;
            false
        });
        // Before the lock is let go: a name registered again must not find
        // its old series.
        self.metrics.remove_spaces(&gone);
        list.iter()
            .map(|s| {
                let accepted = s.metrics().accepted_total();
                let before = watch.get_mut(&s.index()).map_or(0, |w| std::mem::replace(&mut w.accepted, accepted));
                (s.clone(), accepted.saturating_sub(before))
            })
            .collect()
    }
}

fn run_monitor(shared: &Shared, mut monitor: BackpressureMonitor, parker: &Parker) {
    while !shared.stop_monitor.load(Ordering::Acquire) {
        let spaces = shared.tend_spaces(Instant::now());
        if let Some(t) = monitor.update(shared.queue.utilization()) {
            shared.queue.set_state(t.to);
            for (s, _) in &spaces {
                s.metrics().set_state(t.to);
            }
            if t.is_activation() {
                // Attribute the rise to the space that submitted most
                // since the last check (the first space on a tie).
                let top = spaces.iter().enumerate().max_by_key(|&(i, (_, accepted))| (*accepted, usize::MAX - i));
                if let Some((_, (s, _))) = top {
                    s.metrics().activated(t.to);
                }
            }
        }
        shared.publish_queue_gauges();
        parker.park_timeout(shared.config.monitor_interval);
    }
}

/// How long an idle worker sleeps before looking again, when no submission
/// woke it.
const IDLE_PARK: Duration = Duration::from_millis(1);
/// How often a worker publishes its utilisation.
const UTILIZATION_WINDOW: Duration = Duration::from_secs(1);

/// Busy time within the current utilisation window, in [`now_ns`] units.
struct Utilization {
    since_ns: u64,
    busy_ns: u64,
}

impl Utilization {
    fn tick(&mut self, now_ns: u64, metrics: &WorkerMetrics) {
        let elapsed = now_ns.saturating_sub(self.since_ns);
        if elapsed >= UTILIZATION_WINDOW.as_nanos() as u64 {
            metrics.utilization((100.0 * self.busy_ns as f64 / elapsed as f64).min(100.0));
            self.since_ns = now_ns;
            self.busy_ns = 0;
        }
    }
}

fn run_worker(
    id: usize,
    shared: &Shared,
    local: Deque<Observation>,
    stealers: &[Stealer<Observation>],
    parker: &Parker,
    handler: &dyn BatchHandler,
) -> Vec<Observation> {
    let m = shared.metrics.worker(id);
    m.up(true);
    let queue = &shared.queue;
    let mut batch: Vec<Observation> = Vec::with_capacity(shared.config.max_batch);
    let mut util = Utilization { since_ns: now_ns(), busy_ns: 0 };
    let mut seq = 0u64;
    loop {
        if shared.handback.load(Ordering::Acquire) {
            break;
        }
        let target = shared.batch_target();
        if local.is_empty() {
            claim(shared, &local, 2 * target);
        }
        while batch.len() < target {
            match local.pop() {
                Some(o) => batch.push(o),
                None => break,
            }
        }
        if batch.is_empty()
            && let Some(o) = steal(id, stealers, &local, target)
        {
            // One steal moves up to a batch's worth (`target`) into this
            // worker's deque: it feeds about one batch.
            m.stole();
            batch.push(o);
        }
        if batch.is_empty() {
            if queue.is_closed() && queue.is_empty() {
                break;
            }
            let idle = queue.idle_workers();
            // Relaxed: `idle` is only a hint for submitters (`wake_one`
            // reads it Relaxed too); a submission that races with this
            // worker going to sleep costs at most one `IDLE_PARK`, never a
            // lost observation, since the worker looks again after it.
            idle.fetch_add(1, Ordering::Relaxed);
            if queue.is_empty() {
                parker.park_timeout(IDLE_PARK);
            }
            idle.fetch_sub(1, Ordering::Relaxed);
            util.tick(now_ns(), &m);
            continue;
        }

        let ctx = BatchContext { worker_id: id, batch_seq: seq };
        seq += 1;
        let started = now_ns();
        let outcome = match catch_unwind(AssertUnwindSafe(|| handler.handle(&ctx, &batch))) {
            Ok(Ok(())) => None,
            Ok(Err(failure)) => Some(failure.kind()),
            Err(_panic) => Some(FailureKind::Panic),
        };
        let done = now_ns();
        let n = batch.len() as u64;
        m.batch_done(batch.len(), outcome, done, batch.iter().map(|o| (o.space.metrics(), o.enqueued_ns)));
        release_holds(&batch);
        batch.clear();
        shared.processed.inc_by(n);
        shared.batches.inc();
        if outcome.is_some() {
            shared.failed.inc();
        }
        util.busy_ns += done.saturating_sub(started);
        util.tick(done, &m);
    }
    m.up(false);
    let mut left = Vec::new();
    while let Some(o) = local.pop() {
        left.push(o);
    }
    left
}

/// Gives back the holds a finished batch's observations had on their spaces
/// (after their latency and count were recorded), one atomic subtraction
/// per run of observations from the same space.
fn release_holds(batch: &[Observation]) {
    let mut run: Option<(&MemorySpace, u64)> = None;
    for o in batch {
        match &mut run {
            Some((space, n)) if *space == &o.space => *n += 1,
            _ => {
                if let Some((space, n)) = run.replace((&o.space, 1)) {
                    space.inner.life.leave(n);
                }
            }
        }
    }
    if let Some((space, n)) = run {
        space.inner.life.leave(n);
    }
}

/// Moves up to `max` observations from the lanes into the worker's deque,
/// recording how long each waited.
fn claim(shared: &Shared, local: &Deque<Observation>, max: usize) {
    let mut now = None;
    for _ in 0..max {
        let Some(o) = shared.queue.pop() else { break };
        shared.metrics.claimed(o.priority, o.enqueued_ns, &mut now);
        local.push(o);
    }
}

fn steal(
    id: usize,
    stealers: &[Stealer<Observation>],
    local: &Deque<Observation>,
    limit: usize,
) -> Option<Observation> {
    let n = stealers.len();
    for k in 1..n {
        let victim = &stealers[(id + k) % n];
        loop {
            match victim.steal_batch_with_limit_and_pop(local, limit.max(1)) {
                Steal::Success(o) => return Some(o),
                Steal::Empty => break,
                Steal::Retry => continue,
            }
        }
    }
    None
}
