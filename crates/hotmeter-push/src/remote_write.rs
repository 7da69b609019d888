//! The remote_write client: [`RemoteWrite`] (its settings), [`RemoteWriteHandle`]
//! (the running client) and [`PushStats`]; and the delivery every push
//! client shares (`Delivery`, `Client`, the `Snapshotter` each protocol's
//! encoder implements): the OTLP client ([`crate::OtlpPush`]) is this
//! delivery with the OTLP encoder.
//!
//! Owns: two background threads and the bounded queue between them. The
//! sampler thread walks the registry every interval (reading cells exactly
//! as a scrape does: recording threads never wait on it), encodes and
//! compresses the snapshot and queues it. The sender thread sends the
//! oldest queued snapshot, retries it on 5xx, 429 and transport failures
//! with exponential backoff and jitter (at least the receiver's
//! `Retry-After`), and drops it on any other 4xx. Must not: take a lock a
//! recording thread could wait on, hold the queue's lock while a request is
//! on the wire, or lose a sample without counting it.
//!
//! ## The queue and its memory bound
//! The queue holds at most [`RemoteWrite::queue_capacity`] snapshots (the
//! one being sent included), each a compressed `WriteRequest`: about
//! 13 bytes per series after snappy with short label values (measured in
//! `docs/scaling.md`), so the default 30 snapshots of a 1,000-series
//! registry hold about 400 KiB; besides the queue, the sampler keeps two
//! requests' protobuf (about 120 bytes per series each: this one, and the
//! one before for its stale markers) and each string family's counters'
//! encoded label sets and text prefixes (about as much again) for reuse. A native histogram is one series, and one
//! sample in every count here, but a larger one: its labels plus about
//! 40 bytes and one to two bytes per bucket before compression (populated
//! buckets are at most [`hotmeter::NativeOpts::max_buckets`], 160 by
//! default: a few hundred bytes; measured in a unit test). When a new snapshot finds the queue full, the oldest snapshot
//! that is not on the wire at that moment is dropped and its samples are
//! counted in `remote_write_samples_dropped_total`. Counters are
//! cumulative, so the newest snapshot carries everything the dropped ones
//! did except their resolution in time.
//!
//! ## A receiver without native histograms
//! A receiver that refuses a request because it holds native histograms
//! (Prometheus without the feature answers 500 "native histograms are
//! disabled") would refuse every retry of it. The first such answer turns
//! this client to [`NativeHistograms::Classic`] for good: the refused
//! snapshot and every queued one holding native histograms are counted as
//! failed, a new snapshot is taken at once in classic series, the client's
//! `remote_write_native_histograms_refused` gauge goes to 1 and one warning
//! goes out through the `log` facade. Counters are cumulative, so the new
//! snapshot carries what the failed ones did. During shutdown, when the
//! sampler has already taken its last snapshot, the sender takes the
//! classic one itself.
//!
//! ## Failure streaks
//! The first failed attempt after a success (or the first attempt) logs
//! one warning with the receiver's answer; the first success after a
//! streak logs how many attempts it lasted. The counts are in the client's
//! own metrics (`remote_write_samples_failed_total`, `_retried_total`,
//! `_dropped_total`) and in [`PushStats`].
//!
//! ## Shutdown
//! [`RemoteWriteHandle::shutdown`] takes one last snapshot, then sends what is
//! queued, oldest first, until the queue is empty or the deadline passes;
//! what is left then is counted as dropped. Attempts started during
//! shutdown end at the deadline; one already on the wire when shutdown
//! began (a receiver that accepts and never answers) is given up at the
//! deadline: its samples count as dropped (the receiver may still store
//! them) and its thread, detached, ends by itself within the attempt
//! [timeout](RemoteWrite::timeout). So shutdown returns within the
//! deadline and a moment, whatever the receiver does. Afterwards
//! `samples == sent + failed + dropped` ([`PushStats::accounted`]).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use hotmeter::Registry;

use crate::error::{ConfigError, SendError};
use crate::metrics::{self, MetricNames, PushMetrics};
use crate::series::{NativeHistograms, RemoteWriteEncoder};
use crate::transport::{Attempt, Backoff, agent, attempt, check_url, retried_status};

/// Settings of a remote_write client; [`start`](Self::start) checks them
/// and starts it.
///
/// ```no_run
/// use std::time::Duration;
/// let registry = hotmeter::Registry::new();
/// let writer = hotmeter_push::RemoteWrite::new("http://127.0.0.1:9090/api/v1/write")
///     .interval(Duration::from_secs(15))
///     .job("checkpointer")
///     .instance("worker-7")
///     .external_label("region", "eu-west")
///     .start(&registry)?;
/// // ... work ...
/// let stats = writer.shutdown(Duration::from_secs(5)); // flushes the last snapshot
/// assert!(stats.accounted());
/// # Ok::<(), hotmeter_push::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RemoteWrite {
    url: String,
    external: Vec<(String, String)>,
    native: NativeHistograms,
    delivery: Delivery,
}

/// Default push interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
/// Default queue bound, in snapshots.
pub const DEFAULT_QUEUE_CAPACITY: usize = 30;

impl RemoteWrite {
    /// A client for the receiver at `url` (Prometheus:
    /// `http://HOST:9090/api/v1/write`; Mimir: `.../api/v1/push`;
    /// VictoriaMetrics: `.../api/v1/write`), pushing every 15 s, queueing
    /// at most 30 snapshots, 10 s per attempt, backoff 100 ms to 5 s, and
    /// 5 s to flush when dropped.
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), external: Vec::new(), native: NativeHistograms::Native, delivery: Delivery::default() }
    }

    /// How often to take and push a snapshot.
    pub fn interval(mut self, every: Duration) -> Self {
        self.delivery.interval = every;
        self
    }

    /// The `job` external label.
    pub fn job(self, job: impl Into<String>) -> Self {
        self.external_label("job", job)
    }

    /// The `instance` external label.
    pub fn instance(self, instance: impl Into<String>) -> Self {
        self.external_label("instance", instance)
    }

    /// An external label, added to every series that lacks it; a later
    /// value for the same name replaces an earlier one.
    pub fn external_label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.external.retain(|(n, _)| *n != name);
        self.external.push((name, value.into()));
        self
    }

    /// The queue's bound in snapshots, at least 2 (see the module docs).
    pub fn queue_capacity(mut self, snapshots: usize) -> Self {
        self.delivery.capacity = snapshots;
        self
    }

    /// The longest one HTTP attempt may take.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.delivery.timeout = timeout;
        self
    }

    /// Backoff between retries: doubling from `min` up to `max`, each wait
    /// drawn from its upper half.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.delivery.backoff = (min, max);
        self
    }

    /// What native histograms are sent as: [`NativeHistograms::Native`]
    /// unless set; [`NativeHistograms::Classic`] for a receiver without
    /// native histograms, which refuses every request that holds one.
    pub fn native_histograms(mut self, mode: NativeHistograms) -> Self {
        self.native = mode;
        self
    }

    /// How long dropping a [`RemoteWriteHandle`] may spend flushing.
    pub fn flush_deadline(mut self, deadline: Duration) -> Self {
        self.delivery.flush_deadline = deadline;
        self
    }

    /// Checks the settings, registers the client's metrics in `registry`
    /// (see [`metrics`](crate::metrics)) and starts the two threads. The
    /// first snapshot is taken at once.
    pub fn start(self, registry: &Registry) -> Result<RemoteWriteHandle, ConfigError> {
        let uri = check_url(&self.url)?;
        let encoder = RemoteWriteEncoder::new(self.external.clone())?.native_histograms(self.native);
        let classic = RemoteWriteEncoder::new(self.external.clone())?.native_histograms(NativeHistograms::Classic);
        let client = self.delivery.start(uri, &REMOTE_WRITE, registry, encoder, Some(classic))?;
        Ok(RemoteWriteHandle { client })
    }
}

/// A push protocol as the delivery below sees it: its name (logs, thread
/// names), its request headers and its own metrics' names.
#[derive(Debug)]
pub(crate) struct Protocol {
    pub(crate) name: &'static str,
    /// Its threads' names start with this.
    pub(crate) thread_prefix: &'static str,
    /// The `log` target of its warnings (its module's path).
    pub(crate) log_target: &'static str,
    pub(crate) headers: &'static [(&'static str, &'static str)],
    pub(crate) metrics: &'static MetricNames,
    /// Which statuses are retried (transport failures always are).
    pub(crate) retried: fn(u16) -> bool,
    /// How many of a request's samples a 2xx answer says the receiver
    /// refused, and its message (OTLP's partial success); `None` when it
    /// says none were.
    pub(crate) refused_in_answer: fn(&[u8]) -> Option<(u64, String)>,
}

const REMOTE_WRITE: Protocol = Protocol {
    name: "remote_write",
    thread_prefix: "remote-write",
    log_target: "hotmeter_push::remote_write",
    headers: &HEADERS,
    metrics: &metrics::REMOTE_WRITE,
    retried: retried_status,
    // remote_write 1.0 answers carry nothing to read.
    refused_in_answer: |_| None,
};

/// What a push client encodes. The delivery (sampler, bounded queue,
/// sender, retries, shutdown, accounting) is the same for every protocol;
/// this is the one part that differs.
pub(crate) trait Snapshotter: Send + 'static {
    /// Encodes `registry` stamped with `timestamp_ms`; on failure, the
    /// samples that could not be sent.
    fn take(&mut self, registry: &Registry, timestamp_ms: i64) -> Result<Taken, u64>;
    /// The receiver refused native histograms: send classic series from
    /// now on (only remote_write has both).
    fn use_classic(&mut self) {}
}

/// One encoded snapshot.
pub(crate) struct Taken {
    pub(crate) body: Arc<[u8]>,
    pub(crate) samples: u64,
    pub(crate) stale_markers: u64,
    /// It holds native histograms (a receiver without them refuses it).
    pub(crate) native: bool,
}

impl Snapshotter for RemoteWriteEncoder {
    fn take(&mut self, registry: &Registry, timestamp_ms: i64) -> Result<Taken, u64> {
        let taken = self.encode(registry, timestamp_ms).map(|e| (Arc::from(e.body), e.samples, e.stale_markers));
        let native = self.holds_native();
        match taken {
            Ok((body, samples, stale_markers)) => Ok(Taken { body, samples, stale_markers, native }),
            Err(_) => Err(self.series_written()),
        }
    }

    fn use_classic(&mut self) {
        self.set_native_histograms(NativeHistograms::Classic);
        self.forget_refused_request();
    }
}

/// The delivery's settings, held by every push client's builder, with
/// their defaults: every 15 s, at most 30 snapshots queued, 10 s per
/// attempt, backoff 100 ms to 5 s, 5 s to flush when dropped.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) interval: Duration,
    pub(crate) capacity: usize,
    pub(crate) timeout: Duration,
    pub(crate) backoff: (Duration, Duration),
    pub(crate) flush_deadline: Duration,
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            interval: DEFAULT_INTERVAL,
            capacity: DEFAULT_QUEUE_CAPACITY,
            timeout: Duration::from_secs(10),
            backoff: (Duration::from_millis(100), Duration::from_secs(5)),
            flush_deadline: Duration::from_secs(5),
        }
    }
}

impl Delivery {
    /// Checks the settings, registers the protocol's metrics and starts the
    /// sampler and the sender, pushing to `uri`: `main` takes every
    /// snapshot. `classic`, for a protocol that can send native histograms
    /// as classic series (remote_write), takes the one the sender takes
    /// itself after the sampler has ended (see the module docs); without
    /// it, a refusal of native histograms is read by its status like any
    /// other (OTLP: a 500 is retried).
    pub(crate) fn start<E: Snapshotter>(
        self,
        uri: ureq::http::Uri,
        protocol: &'static Protocol,
        registry: &Registry,
        main: E,
        classic: Option<E>,
    ) -> Result<Client, ConfigError> {
        if self.capacity < 2 {
            return Err(ConfigError::QueueCapacity { capacity: self.capacity });
        }
        for (setting, d) in [("interval", self.interval), ("timeout", self.timeout), ("backoff", self.backoff.0)] {
            if d.is_zero() {
                return Err(ConfigError::Timing { setting });
            }
        }
        if self.backoff.0 > self.backoff.1 {
            return Err(ConfigError::Timing { setting: "backoff" });
        }
        let metrics = PushMetrics::register(registry, protocol.metrics, self.capacity).map_err(ConfigError::Metrics)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake_sender: Condvar::new(),
            wake_sampler: Condvar::new(),
            sender_exited: Condvar::new(),
            metrics,
            capacity: self.capacity,
        });
        let sampler = {
            let (shared, registry, interval) = (shared.clone(), registry.clone(), self.interval);
            std::thread::Builder::new()
                .name(format!("{}-sampler", protocol.thread_prefix))
                .spawn(move || sample(&shared, &registry, main, interval))
                .map_err(ConfigError::Spawn)?
        };
        let sender = {
            let for_thread = shared.clone();
            let sender = Sender {
                protocol,
                agent: agent(self.timeout),
                uri,
                timeout: self.timeout,
                backoff: self.backoff,
                classic_fallback: classic.is_some(),
                own_snapshot: Mutex::new((registry.clone(), classic)),
            };
            let spawned = std::thread::Builder::new()
                .name(format!("{}-sender", protocol.thread_prefix))
                .spawn(move || sender.run(&for_thread));
            match spawned {
                Ok(handle) => handle,
                Err(e) => {
                    shared.lock().stop = Some(Instant::now());
                    shared.wake_sampler.notify_all();
                    let _ = sampler.join();
                    return Err(ConfigError::Spawn(e));
                }
            }
        };
        Ok(Client { shared, threads: Some((sampler, sender)), flush_deadline: self.flush_deadline })
    }
}

/// A running remote_write client. Dropping it shuts it down with the
/// [flush deadline](RemoteWrite::flush_deadline).
#[derive(Debug)]
pub struct RemoteWriteHandle {
    client: Client,
}

/// A running push client: the delivery's threads and their shared state.
/// Dropping it shuts it down with its flush deadline.
#[derive(Debug)]
pub(crate) struct Client {
    shared: Arc<Shared>,
    threads: Option<(JoinHandle<()>, JoinHandle<()>)>,
    flush_deadline: Duration,
}

/// What a client has done, in samples: one per series per snapshot, a
/// float sample or a native histogram (one sample, whatever its buckets).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PushStats {
    /// Snapshots taken.
    pub snapshots: u64,
    /// Samples taken into the queue.
    pub samples: u64,
    /// Samples the receiver accepted.
    pub sent: u64,
    /// Samples refused with a status that is not retried.
    pub failed: u64,
    /// Samples dropped from a full queue or at the shutdown deadline.
    pub dropped: u64,
    /// Samples sent again after a retryable failure (each retry counts).
    pub retried: u64,
    /// Requests answered with a status that is not retried.
    pub rejected_requests: u64,
    /// Requests the receiver took while saying it refused some of their
    /// samples (OTLP's partial success); those samples count as failed.
    pub partially_refused_requests: u64,
    /// The last status that was not 2xx, if any.
    pub last_error_status: Option<u16>,
    /// Snapshots queued now, the one being sent included.
    pub queue_len: usize,
    /// The most snapshots ever queued at once.
    pub max_queue_len: usize,
    /// The queue's bound.
    pub capacity: usize,
    /// The receiver refused native histograms, and this client sends
    /// classic series since (see the module docs).
    pub native_histograms_refused: bool,
    /// Stale markers taken into the queue (counted in `samples` too): one
    /// per series a snapshot sent and the next one did not.
    pub stale_markers: u64,
}

impl PushStats {
    /// Whether every sample taken is sent, failed, dropped or still queued
    /// and nothing more: `samples == sent + failed + dropped` once the
    /// queue is empty.
    pub fn accounted(&self) -> bool {
        self.queue_len == 0 && self.samples == self.sent + self.failed + self.dropped
    }
}

impl RemoteWriteHandle {
    /// The client's counts so far.
    pub fn stats(&self) -> PushStats {
        self.client.stats()
    }

    /// Takes a snapshot now instead of at the next tick (the interval
    /// restarts from it).
    pub fn push_now(&self) {
        self.client.push_now();
    }

    /// Stops: takes a last snapshot, sends what is queued until `deadline`
    /// from now, counts what is left as dropped, and returns the final
    /// counts within about `deadline` (see the module docs: a request on
    /// the wire at the deadline is given up and its thread left to end by
    /// itself within the attempt timeout; otherwise the threads are gone
    /// when it returns).
    pub fn shutdown(self, deadline: Duration) -> PushStats {
        self.client.shutdown(deadline)
    }
}

impl Client {
    /// The client's counts so far.
    pub(crate) fn stats(&self) -> PushStats {
        let st = self.shared.lock();
        PushStats { queue_len: st.queue.len(), capacity: self.shared.capacity, ..st.stats }
    }

    /// Takes a snapshot now instead of at the next tick (the interval
    /// restarts from it).
    pub(crate) fn push_now(&self) {
        self.shared.lock().snapshot_requested = true;
        self.shared.wake_sampler.notify_all();
    }

    /// Stops: takes a last snapshot, sends what is queued until `deadline`
    /// from now, counts what is left as dropped, and returns the final
    /// counts within about `deadline` (see the module docs: a request on
    /// the wire at the deadline is given up and its thread left to end by
    /// itself within the attempt timeout; otherwise the threads are gone
    /// when it returns).
    pub(crate) fn shutdown(mut self, deadline: Duration) -> PushStats {
        self.stop(deadline);
        self.stats()
    }

    fn stop(&mut self, deadline: Duration) {
        let Some((sampler, sender)) = self.threads.take() else { return };
        let until = Instant::now() + deadline;
        self.shared.lock().stop = Some(until);
        self.shared.wake_sampler.notify_all();
        self.shared.wake_sender.notify_all();
        let _ = sampler.join();
        // The sender bounds every attempt it starts by the deadline, but
        // one already on the wire when shutdown began runs to its own
        // timeout, and `ureq` cannot cut it short. Wait for the sender
        // until the deadline (and a moment to wake up); past that, give up
        // on the request in flight: its samples and whatever is queued are
        // counted as dropped now, and the sender, once its attempt ends
        // (within the attempt timeout), leaves without counting anything.
        let mut st = self.shared.lock();
        let give_up = until + SENDER_GRACE;
        while !st.sender_exited {
            let now = Instant::now();
            if now >= give_up {
                break;
            }
            st = self.shared.sender_exited.wait_timeout(st, give_up - now).unwrap_or_else(PoisonError::into_inner).0;
        }
        if st.sender_exited {
            drop(st);
            let _ = sender.join();
        } else {
            st.abandoned = true;
            st.on_wire = false;
            let left: u64 = st.queue.drain(..).map(|b| b.samples).sum();
            st.stats.dropped += left;
            self.shared.metrics.dropped.inc_by(left);
            self.shared.set_queue_gauge(&st);
            // Detached: it holds only its `Arc<Shared>` and ends by itself.
            drop(sender);
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop(self.flush_deadline);
    }
}

/// The queue and counts, behind one mutex that only the two threads and
/// [`RemoteWriteHandle`]'s methods take (never a recording thread).
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    wake_sender: Condvar,
    wake_sampler: Condvar,
    /// Signalled when the sender thread returns.
    sender_exited: Condvar,
    metrics: PushMetrics,
    capacity: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere leaves the counts consistent (each update is
        // one critical section): keep going.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Batch>,
    /// The front batch is being sent: eviction skips it.
    on_wire: bool,
    /// Set by shutdown: the time by which the sender gives up.
    stop: Option<Instant>,
    /// The sampler has queued its last snapshot.
    sampler_done: bool,
    /// The sender thread has returned.
    sender_exited: bool,
    /// Shutdown gave up on a request still on the wire past its deadline
    /// and counted everything left as dropped: the sender must count
    /// nothing more.
    abandoned: bool,
    snapshot_requested: bool,
    /// The newest snapshot's timestamp: each one is later than the last.
    last_ms: i64,
    next_id: u64,
    stats: PushStats,
}

#[derive(Debug)]
struct Batch {
    id: u64,
    body: Arc<[u8]>,
    samples: u64,
    attempts: u32,
    /// It holds native histograms.
    native: bool,
}

impl Shared {
    /// Queues a snapshot, evicting the oldest one not on the wire when full.
    fn enqueue(&self, st: &mut State, body: Arc<[u8]>, samples: u64, native: bool) {
        st.stats.snapshots += 1;
        st.stats.samples += samples;
        self.metrics.samples.inc_by(samples);
        if st.queue.len() >= self.capacity {
            // capacity >= 2, so with the front on the wire index 1 exists.
            let victim = usize::from(st.on_wire);
            if let Some(old) = st.queue.remove(victim) {
                st.stats.dropped += old.samples;
                self.metrics.dropped.inc_by(old.samples);
            }
        }
        let id = st.next_id;
        st.next_id += 1;
        st.queue.push_back(Batch { id, body, samples, attempts: 0, native });
        st.stats.max_queue_len = st.stats.max_queue_len.max(st.queue.len());
        self.set_queue_gauge(st);
    }

    fn set_queue_gauge(&self, st: &State) {
        self.metrics.queue_length.set(i64::try_from(st.queue.len()).unwrap_or(i64::MAX));
    }
}

/// How long past its deadline shutdown waits for the sender to wake up
/// and return before it gives up on a request still on the wire.
const SENDER_GRACE: Duration = Duration::from_millis(100);

fn now_ms() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0))
}

/// Encodes a snapshot of `registry`, stamped later than the one before it
/// (even when two fall in one millisecond or the wall clock steps back: a
/// receiver refuses a second, different value at a timestamp it holds
/// (Prometheus: 400, and the whole request is rolled back), as it refuses
/// an older one), and queues it; an oversized one (the only
/// failure) counts its samples as failed. Returns the queue's lock.
fn take_snapshot<'a, E: Snapshotter>(
    shared: &'a Shared,
    registry: &Registry,
    encoder: &mut E,
) -> MutexGuard<'a, State> {
    let timestamp_ms = now_ms().max(shared.lock().last_ms.saturating_add(1));
    let taken = encoder.take(registry, timestamp_ms);
    let mut st = shared.lock();
    st.last_ms = st.last_ms.max(timestamp_ms);
    match taken {
        Ok(Taken { body, samples, stale_markers, native }) => {
            st.stats.stale_markers += stale_markers;
            shared.metrics.stale_markers(stale_markers);
            shared.enqueue(&mut st, body, samples, native);
        }
        Err(n) => {
            st.stats.samples += n;
            st.stats.failed += n;
            shared.metrics.samples.inc_by(n);
            shared.metrics.failed.inc_by(n);
        }
    }
    st
}

/// The sampler thread: a snapshot at start, every `interval`, on request,
/// and a last one at shutdown.
fn sample<E: Snapshotter>(shared: &Shared, registry: &Registry, mut encoder: E, interval: Duration) {
    let mut next = Instant::now();
    loop {
        let last = {
            let mut st = shared.lock();
            loop {
                if st.stop.is_some() || st.snapshot_requested {
                    break;
                }
                let now = Instant::now();
                if now >= next {
                    break;
                }
                st = shared.wake_sampler.wait_timeout(st, next - now).unwrap_or_else(PoisonError::into_inner).0;
            }
            st.snapshot_requested = false;
            if st.stats.native_histograms_refused {
                encoder.use_classic();
            }
            st.stop.is_some()
        };
        let mut st = take_snapshot(shared, registry, &mut encoder);
        if last {
            st.sampler_done = true;
        }
        drop(st);
        shared.wake_sender.notify_all();
        if last {
            return;
        }
        next = Instant::now() + interval;
    }
}

/// The sender thread's settings.
struct Sender<E> {
    protocol: &'static Protocol,
    agent: ureq::Agent,
    uri: ureq::http::Uri,
    /// The registry and a classic encoder, for the snapshot the sender
    /// takes itself when the receiver refuses native histograms after the
    /// sampler has taken its last (at shutdown).
    own_snapshot: Mutex<(Registry, Option<E>)>,
    /// `own_snapshot` has a classic encoder: a refusal of native
    /// histograms turns this client to classic series.
    classic_fallback: bool,
    timeout: Duration,
    backoff: (Duration, Duration),
}

const HEADERS: [(&str, &str); 3] = [
    ("Content-Encoding", "snappy"),
    ("Content-Type", "application/x-protobuf"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
];

impl<E: Snapshotter> Sender<E> {
    fn run(&self, shared: &Shared) {
        /// Tells a waiting shutdown that the sender has returned, panics included.
        struct Exited<'a>(&'a Shared);
        impl Drop for Exited<'_> {
            fn drop(&mut self) {
                self.0.lock().sender_exited = true;
                self.0.sender_exited.notify_all();
            }
        }
        let _exited = Exited(shared);
        let mut backoff = Backoff::new(self.backoff.0, self.backoff.1);
        // Failed attempts in a row (0: the last one succeeded).
        let mut streak = 0u64;
        // The last answer said some samples were refused.
        let mut refusing = false;
        loop {
            // Wait for work; at the deadline drop what is left and stop.
            let (id, body, samples, native, deadline) = {
                let mut st = shared.lock();
                loop {
                    if let Some(deadline) = st.stop
                        && (Instant::now() >= deadline || (st.queue.is_empty() && st.sampler_done))
                    {
                        let left: u64 = st.queue.drain(..).map(|b| b.samples).sum();
                        st.stats.dropped += left;
                        shared.metrics.dropped.inc_by(left);
                        shared.set_queue_gauge(&st);
                        return;
                    }
                    if !st.queue.is_empty() {
                        break;
                    }
                    st = match st.stop {
                        Some(deadline) => {
                            let left = deadline.saturating_duration_since(Instant::now());
                            shared.wake_sender.wait_timeout(st, left).unwrap_or_else(PoisonError::into_inner).0
                        }
                        None => shared.wake_sender.wait(st).unwrap_or_else(PoisonError::into_inner),
                    };
                }
                let stop = st.stop;
                let State { queue, stats, on_wire, .. } = &mut *st;
                let Some(front) = queue.front_mut() else { continue };
                front.attempts += 1;
                if front.attempts > 1 {
                    stats.retried += front.samples;
                    shared.metrics.retried.inc_by(front.samples);
                }
                *on_wire = true;
                (front.id, front.body.clone(), front.samples, front.native, stop)
            };

            let timeout = match deadline {
                Some(d) => self.timeout.min(d.saturating_duration_since(Instant::now())),
                None => self.timeout,
            };
            let started = Instant::now();
            let outcome = match attempt(
                &self.agent,
                ureq::http::Method::POST,
                &self.uri,
                self.protocol.headers,
                &body,
                timeout,
                self.protocol.retried,
            ) {
                // No classic series to fall back to: the refusal is what
                // its status says.
                Attempt::RefusesNative(SendError::Rejected { status, .. })
                    if !self.classic_fallback && (self.protocol.retried)(status) =>
                {
                    Attempt::Retry { after: None, error: SendError::Unavailable { status, attempts: 1 } }
                }
                Attempt::RefusesNative(error) if !self.classic_fallback => Attempt::Fail(error),
                outcome => outcome,
            };
            shared.metrics.send_duration.observe(started.elapsed().as_secs_f64());

            let mut st = shared.lock();
            if st.abandoned {
                // Shutdown has counted this request and the queue as dropped.
                return;
            }
            st.on_wire = false;
            // The front cannot have been evicted while on the wire.
            debug_assert_eq!(st.queue.front().map(|b| b.id), Some(id));
            // A refusal of native histograms is said once by the turn to
            // classic series, not as the start of a failure streak.
            if !(native && matches!(outcome, Attempt::RefusesNative(_))) {
                self.note_streak(&mut streak, &outcome);
            }
            let wait = match outcome {
                Attempt::RefusesNative(error) if native => {
                    self.turn_to_classic(shared, &mut st, &error);
                    if st.sampler_done {
                        // Shutdown: no sampler to take the classic snapshot.
                        drop(st);
                        st = self.take_classic_snapshot(shared);
                    }
                    backoff.reset();
                    None
                }
                Attempt::Done(answer) => {
                    st.queue.pop_front();
                    let refused = (self.protocol.refused_in_answer)(&answer);
                    let refused_samples = refused.as_ref().map_or(0, |(n, _)| (*n).min(samples));
                    st.stats.sent += samples - refused_samples;
                    shared.metrics.sent.inc_by(samples - refused_samples);
                    if refused_samples > 0 {
                        st.stats.failed += refused_samples;
                        st.stats.partially_refused_requests += 1;
                        shared.metrics.failed.inc_by(refused_samples);
                    }
                    if let Some((n, message)) = &refused
                        && !refusing
                    {
                        log::warn!(
                            target: self.protocol.log_target,
                            "{} to {}: the receiver took the request but refused {n} of its {samples} samples ({message}); \
                             counted as failed",
                            self.protocol.name,
                            self.uri
                        );
                    }
                    refusing = refused.is_some();
                    backoff.reset();
                    None
                }
                Attempt::Fail(error) | Attempt::RefusesNative(error) => {
                    st.queue.pop_front();
                    st.stats.failed += samples;
                    st.stats.rejected_requests += 1;
                    if let SendError::Rejected { status, .. } = error {
                        st.stats.last_error_status = Some(status);
                    }
                    shared.metrics.failed.inc_by(samples);
                    backoff.reset();
                    None
                }
                Attempt::Retry { after, error } => {
                    if let SendError::Unavailable { status, .. } = error {
                        st.stats.last_error_status = Some(status);
                    }
                    Some(backoff.next(after))
                }
            };
            shared.set_queue_gauge(&st);
            if let Some(wait) = wait {
                // Sleep out the backoff; shutdown shortens it to the deadline.
                let until = Instant::now() + wait;
                loop {
                    let now = Instant::now();
                    let end = st.stop.map_or(until, |d| d.min(until));
                    if now >= end {
                        break;
                    }
                    st = shared.wake_sender.wait_timeout(st, end - now).unwrap_or_else(PoisonError::into_inner).0;
                }
            }
        }
    }
}

impl<E: Snapshotter> Sender<E> {
    /// The receiver refused native histograms: from now on this client
    /// sends classic series. The refused batch (the front) and every queued
    /// one holding native histograms count as failed; the sampler is asked
    /// for a new snapshot at once, which it encodes in classic series.
    fn turn_to_classic(&self, shared: &Shared, st: &mut State, error: &SendError) {
        let mut failed = 0;
        st.queue.retain(|b| {
            if b.native {
                failed += b.samples;
            }
            !b.native
        });
        st.stats.failed += failed;
        st.stats.rejected_requests += 1;
        if let SendError::Rejected { status, .. } = error {
            st.stats.last_error_status = Some(*status);
        }
        shared.metrics.failed.inc_by(failed);
        if !st.stats.native_histograms_refused {
            st.stats.native_histograms_refused = true;
            shared.metrics.native_refused();
            log::warn!(
                target: self.protocol.log_target,
                "{} to {}: the receiver refuses native histograms ({error}); \
                 sending them as classic series from now on ({failed} samples of refused snapshots counted as failed)",
                self.protocol.name,
                self.uri
            );
        }
        st.snapshot_requested = true;
        shared.wake_sampler.notify_all();
    }

    /// The classic snapshot the sampler would take, taken by the sender
    /// (the sampler has ended); queued like the sampler's.
    fn take_classic_snapshot<'a>(&self, shared: &'a Shared) -> MutexGuard<'a, State> {
        let mut own = self.own_snapshot.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *own {
            (registry, Some(encoder)) => take_snapshot(shared, registry, encoder),
            // Never: without a classic encoder nothing turns to classic.
            (_, None) => shared.lock(),
        }
    }

    /// One warning when a streak of failed attempts starts, one note when
    /// it ends.
    fn note_streak(&self, streak: &mut u64, outcome: &Attempt) {
        match outcome {
            Attempt::Done(_) => {
                if *streak > 0 {
                    log::info!(
                        target: self.protocol.log_target,
                        "{} to {}: sending again after {} failed attempts",
                        self.protocol.name,
                        self.uri,
                        *streak
                    );
                }
                *streak = 0;
            }
            Attempt::Retry { error, .. } | Attempt::Fail(error) | Attempt::RefusesNative(error) => {
                if *streak == 0 {
                    log::warn!(
                        target: self.protocol.log_target,
                        "{} to {}: {error} (counted in {}_*_total; retried where the answer allows)",
                        self.protocol.name,
                        self.uri,
                        self.protocol.metrics.samples.trim_end_matches("_total")
                    );
                }
                *streak += 1;
            }
        }
    }
}
