//! The connections the server holds, and whom to shed when they reach the cap.
//!
//! Owns: the connection slots (at most `Limits::max_connections`), one entry
//! per held connection (its state, fresh, handling, writing or idle, and
//! since when; how to tell its task to close), the
//! choice of the connection to shed when a newcomer finds every slot taken,
//! and the counts of shed and refused connections. Must not: await or do I/O
//! while its lock is held, hold a socket (each belongs to its connection's
//! task, which closes it when told), or touch recording paths.
//!
//! The policy: a newcomer is never refused while some held connection could
//! give way. In order, the server sheds
//! 1. the connection that has waited longest for its **first** request head
//!    (a slow or silent client: a flood of them only ever sheds itself, and a
//!    scraper, which sends its head at once, is served);
//! 2. else the one idle longest between requests (kept alive after a
//!    response);
//! 3. else the one whose response has been written longest (a client that
//!    does not read what it asked for);
//! 4. else the one whose whole first head was already waiting in its
//!    socket when it was accepted, before its task could read it (the
//!    accept loop peeks; a scraper under a flood is one: its head arrives
//!    while it waits in the kernel's backlog, and a fast flood would
//!    otherwise make it the oldest fresh connection before its task runs).
//!
//! A connection whose request is being handled (the render running) is
//! never shed; only when every held connection is in that state is the
//! newcomer closed instead. A flood of silent or slow clients is therefore
//! always shed before a scrape. "Writing" lasts until hyper has taken the
//! response's last frame into its write buffer (at most 16 KiB buffered
//! plus one 16 KiB frame, and what the kernel's send buffer holds, are then
//! still unsent): a scrape's small response, fully queued, counts as idle,
//! still after every fresh connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// How long admitting a newcomer waits for the connection shed for it to
/// close. Its task only has to be scheduled and drop the connection, so this
/// is normally microseconds; past it (a starved runtime) the newcomer is
/// refused rather than stalling the accept loop longer.
const SHED_WAIT: Duration = Duration::from_millis(250);

/// Connection counts of a running server, from
/// [`ServerHandle::connection_stats`](crate::ServerHandle::connection_stats).
///
/// # Examples
/// ```
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let server = hotmeter_exporter::Exporter::new(hotmeter::Registry::new())
///     .listen("127.0.0.1:0".parse()?)
///     .serve()
///     .await?;
/// let stats = server.connection_stats();
/// assert_eq!((stats.open, stats.shed_total, stats.refused_total), (0, 0, 0));
/// server.shutdown().await;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// Connections held now, each with its socket: at most
    /// [`Limits::max_connections`](crate::Limits::max_connections).
    pub open: usize,
    /// Connections closed to make room for a newcomer, in the module's
    /// order (fresh, then idle, then writing). Monotonically increasing,
    /// never reset.
    pub shed_total: u64,
    /// Newcomers closed at once because every held connection was having
    /// its request handled (or the one shed for them did not close in time).
    /// Monotonically increasing, never reset.
    pub refused_total: u64,
}

/// The slots and the table of held connections, shared by the accept loop,
/// every connection task and the server handle.
pub(crate) struct Connections {
    cap: usize,
    /// One permit per held socket; a connection's permit is released only
    /// after its socket is closed, so this bounds the sockets held.
    permits: Arc<Semaphore>,
    table: Mutex<Table>,
}

struct Table {
    next_id: u64,
    /// Advances at every change of state: within a state, a smaller tick has
    /// been in it longer.
    next_tick: u64,
    entries: HashMap<u64, Entry>,
    shed_total: u64,
    refused_total: u64,
}

struct Entry {
    state: State,
    /// Fired (and the entry removed) when the connection is shed.
    shed: oneshot::Sender<()>,
}

/// Where a held connection is, with the tick it got there (a smaller tick
/// has been there longer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Accepted, no complete request head yet.
    Fresh(u64),
    /// A request head has arrived; its response is being made.
    Handling,
    /// Its response is being written to the client.
    Writing(u64),
    /// Kept alive between requests, waiting for the next head.
    Idle(u64),
    /// Accepted with a complete first head already in its socket, not yet
    /// read by its task.
    HeadBuffered(u64),
}

impl State {
    /// Shedding order: tier first, then the oldest in the tier; `None` for
    /// a connection that is never shed.
    fn shed_rank(self) -> Option<(u8, u64)> {
        match self {
            State::Fresh(t) => Some((0, t)),
            State::Idle(t) => Some((1, t)),
            State::Writing(t) => Some((2, t)),
            State::HeadBuffered(t) => Some((3, t)),
            State::Handling => None,
        }
    }
}

impl Connections {
    /// Slots for `cap` connections (at least one).
    pub(crate) fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        Self {
            cap,
            permits: Arc::new(Semaphore::new(cap)),
            table: Mutex::new(Table {
                next_id: 0,
                next_tick: 0,
                entries: HashMap::with_capacity(cap),
                shed_total: 0,
                refused_total: 0,
            }),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // The table stays consistent across a panic (each update is one
        // assignment or insert), so a poisoned lock is still usable.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for a newly accepted connection: a free one, else the one of
    /// the connection shed for it (in the module's order), once that
    /// connection has closed. `None` (counted as refused) when every held
    /// connection is having its request handled.
    pub(crate) async fn admit(self: &Arc<Self>) -> Option<Slot> {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if !self.shed_one() {
                    self.table().refused_total += 1;
                    return None;
                }
                // Whichever slot frees first (the shed one, or one whose
                // connection ended meanwhile) goes to the newcomer.
                match tokio::time::timeout(SHED_WAIT, self.permits.clone().acquire_owned()).await {
                    Ok(Ok(permit)) => permit,
                    // Timed out, or (never) the semaphore closed.
                    _ => {
                        self.table().refused_total += 1;
                        return None;
                    }
                }
            }
        };
        let (shed, shed_signal) = oneshot::channel();
        let mut table = self.table();
        let id = table.next_id;
        table.next_id += 1;
        let tick = table.next_tick;
        table.next_tick += 1;
        table.entries.insert(id, Entry { state: State::Fresh(tick), shed });
        drop(table);
        Some(Slot {
            tracker: Tracker { connections: self.clone(), id },
            shed_signal: Some(shed_signal),
            _permit: permit,
        })
    }

    /// Sheds one connection in the module's order: removes its entry and
    /// tells its task to close it. False when every held connection is
    /// having its request handled. O(held connections).
    fn shed_one(&self) -> bool {
        let mut table = self.table();
        let victim = table.entries.iter().filter_map(|(id, e)| Some((e.state.shed_rank()?, *id))).min();
        let Some((_, id)) = victim else {
            return false;
        };
        if let Some(entry) = table.entries.remove(&id) {
            // The receiver is gone only if the task already ended; its
            // permit is then free (or about to be) all the same.
            let _ = entry.shed.send(());
        }
        table.shed_total += 1;
        true
    }

    fn set_state(&self, id: u64, state: impl FnOnce(u64) -> State) {
        let mut table = self.table();
        let tick = table.next_tick;
        table.next_tick += 1;
        if let Some(entry) = table.entries.get_mut(&id) {
            entry.state = state(tick);
        }
    }

    /// The current counts.
    pub(crate) fn stats(&self) -> ConnectionStats {
        let table = self.table();
        ConnectionStats {
            open: self.cap - self.permits.available_permits(),
            shed_total: table.shed_total,
            refused_total: table.refused_total,
        }
    }

    /// Waits, up to `grace`, until every connection has closed.
    pub(crate) async fn drain(&self, grace: Duration) {
        let all = u32::try_from(self.cap).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(grace, self.permits.acquire_many(all)).await;
    }
}

/// A held connection's slot, owned by its task. Dropping it (after the
/// socket is closed) removes the entry and frees the slot.
pub(crate) struct Slot {
    tracker: Tracker,
    shed_signal: Option<oneshot::Receiver<()>>,
    // Dropped last: the slot is free only once the entry is gone.
    _permit: OwnedSemaphorePermit,
}

impl Slot {
    /// The handle the connection's service reports request heads through.
    pub(crate) fn tracker(&self) -> Tracker {
        self.tracker.clone()
    }

    /// Resolves when this connection is shed; pending forever otherwise
    /// (including after a first call).
    pub(crate) async fn shed(&mut self) {
        if let Some(signal) = self.shed_signal.take()
            && signal.await.is_ok()
        {
            return;
        }
        std::future::pending().await
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.tracker.connections.table().entries.remove(&self.tracker.id);
    }
}

/// Reports one connection's request heads and responses to the table.
#[derive(Clone)]
pub(crate) struct Tracker {
    connections: Arc<Connections>,
    id: u64,
}

impl Tracker {
    /// A complete first head was already in the socket when it was
    /// accepted: shed only after every fresh, idle and writing connection.
    pub(crate) fn head_buffered(&self) {
        self.connections.set_state(self.id, State::HeadBuffered);
    }

    /// A complete request head has arrived: never shed while its response
    /// is made. The returned guard goes with the response body
    /// ([`Serving::writing`]); when it is dropped (the body is done, or the
    /// connection is), the connection is idle, waiting for its next head.
    pub(crate) fn head_complete(&self) -> Serving {
        self.connections.set_state(self.id, |_| State::Handling);
        Serving(self.clone())
    }
}

/// Held from a request's head until its response body is done; see
/// [`Tracker::head_complete`].
pub(crate) struct Serving(Tracker);

impl Serving {
    /// The response is made and is now being written: sheddable, after
    /// every fresh and idle connection.
    pub(crate) fn writing(&self) {
        self.0.connections.set_state(self.0.id, State::Writing);
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.connections.set_state(self.0.id, State::Idle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
    }

    fn is_shed(slot: &mut Slot) -> bool {
        slot.shed_signal.as_mut().is_some_and(|s| s.try_recv().is_ok())
    }

    #[test]
    fn sheds_fresh_then_idle_then_writing_and_never_one_being_handled() {
        let rt = rt();
        let c = Arc::new(Connections::new(4));
        let mut a = rt.block_on(c.admit()).unwrap();
        let mut b = rt.block_on(c.admit()).unwrap();
        let mut d = rt.block_on(c.admit()).unwrap();
        let mut e = rt.block_on(c.admit()).unwrap();
        // `a` (the oldest) is being handled, so `b` has waited longest for a
        // first head.
        let serving_a = a.tracker().head_complete();
        assert!(c.shed_one());
        assert!(is_shed(&mut b) && !is_shed(&mut a) && !is_shed(&mut d) && !is_shed(&mut e));
        drop(b);
        assert_eq!(c.stats(), ConnectionStats { open: 3, shed_total: 1, refused_total: 0 });
        // `a`'s response is being written: a fresh connection (`d`, then
        // `e`) goes before it, however long `a` has been writing.
        serving_a.writing();
        // `e` finishes a request and idles; `d` stays fresh.
        drop(e.tracker().head_complete());
        assert!(c.shed_one());
        assert!(is_shed(&mut d) && !is_shed(&mut a) && !is_shed(&mut e), "fresh first");
        assert!(c.shed_one());
        assert!(is_shed(&mut e) && !is_shed(&mut a), "then idle");
        assert!(c.shed_one());
        assert!(is_shed(&mut a), "then a response still being written");
        assert!(!c.shed_one(), "nothing left to shed");
        assert_eq!(c.stats().shed_total, 4);
        drop(serving_a);
    }

    #[test]
    fn a_connection_accepted_with_its_head_buffered_goes_after_every_other_kind() {
        let rt = rt();
        let c = Arc::new(Connections::new(4));
        // `s` (a scraper) is the oldest, its head already in the socket.
        let mut s = rt.block_on(c.admit()).unwrap();
        s.tracker().head_buffered();
        let mut fresh = rt.block_on(c.admit()).unwrap();
        let mut idle = rt.block_on(c.admit()).unwrap();
        drop(idle.tracker().head_complete());
        let mut writing = rt.block_on(c.admit()).unwrap();
        let serving = writing.tracker().head_complete();
        serving.writing();
        for (victim, what) in [(&mut fresh, "fresh"), (&mut idle, "idle"), (&mut writing, "writing")] {
            assert!(c.shed_one());
            assert!(is_shed(victim), "{what} goes before the buffered head");
        }
        assert!(!is_shed(&mut s), "the scraper outlasts all three");
        assert!(c.shed_one());
        assert!(is_shed(&mut s), "and only then gives way itself");
        drop(serving);
    }

    #[test]
    fn a_response_being_written_outlasts_newer_silent_connections() {
        let rt = rt();
        let c = Arc::new(Connections::new(2));
        let mut scraper = rt.block_on(c.admit()).unwrap();
        let serving = scraper.tracker().head_complete();
        serving.writing();
        let mut silent = rt.block_on(c.admit()).unwrap();
        // Newcomers keep arriving: each sheds the silent one, never the
        // scraper, older as it is.
        assert!(c.shed_one());
        assert!(is_shed(&mut silent) && !is_shed(&mut scraper));
        drop(silent);
        let mut silent = rt.block_on(c.admit()).unwrap();
        assert!(c.shed_one());
        assert!(is_shed(&mut silent) && !is_shed(&mut scraper));
        drop(serving);
    }

    #[test]
    fn a_newcomer_takes_the_slot_of_the_connection_shed_for_it() {
        let rt = rt();
        let c = Arc::new(Connections::new(1));
        let mut held = rt.block_on(c.admit()).unwrap();
        let newcomer = rt.block_on(async {
            // The held connection's task: closes when shed.
            let task = tokio::spawn(async move { held.shed().await });
            let newcomer = c.admit().await;
            task.await.unwrap();
            newcomer
        });
        assert!(newcomer.is_some());
        assert_eq!(c.stats(), ConnectionStats { open: 1, shed_total: 1, refused_total: 0 });
    }

    #[test]
    fn refuses_the_newcomer_when_every_connection_is_being_served() {
        let rt = rt();
        let c = Arc::new(Connections::new(2));
        let a = rt.block_on(c.admit()).unwrap();
        let b = rt.block_on(c.admit()).unwrap();
        let _handling = (a.tracker().head_complete(), b.tracker().head_complete());
        assert!(rt.block_on(c.admit()).is_none());
        assert_eq!(c.stats(), ConnectionStats { open: 2, shed_total: 0, refused_total: 1 });
    }

    #[test]
    fn refuses_the_newcomer_when_the_shed_connection_does_not_close_in_time() {
        let rt = rt();
        let c = Arc::new(Connections::new(1));
        let _stuck = rt.block_on(c.admit()).unwrap();
        assert!(rt.block_on(c.admit()).is_none());
        assert_eq!(c.stats(), ConnectionStats { open: 1, shed_total: 1, refused_total: 1 });
    }
}
