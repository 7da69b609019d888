//! The connections the server holds, and whom to shed when they reach the cap.
//!
//! Owns: the connection slots (at most `Limits::max_connections`), one entry
//! per held connection (its state, fresh, handling, writing or idle, and
//! since when; how to tell its task to close), the
//! choice of the connection to shed when a newcomer finds every slot taken,
//! and the counts of shed and refused connections. Must not: await or do
//! blocking I/O while its lock is held (it only peeks, without waiting, at
//! what a candidate for shedding has in its receive buffer), close a socket
//! (each belongs to its connection's task, which closes it when told; the
//! table's second descriptor of it only delays the close until the entry
//! is gone), or touch recording paths.
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
//! 4. else the one whose whole request head was found waiting in its
//!    socket, not yet read by its task. Before a fresh or idle connection is
//!    shed, its socket is peeked: a scraper under a flood has sent its head
//!    at once, but its task may not have run yet (a starved runtime takes
//!    longer than a fast flood takes to make it the oldest fresh
//!    connection), and such a connection is moved here instead of shed.
//!    Peeking at that moment, not when it was accepted, also covers a head
//!    that arrived after the accept.
//!
//! A newcomer sheds at most one connection, and none while one shed earlier
//! is still closing: that one's slot is already on its way (see
//! `Connections::make_way`). So sheds never run ahead of closes: normally
//! at most one connection is shed and not yet closed (more only when one
//! takes longer than the shed wait to close).
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
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};

/// How long admitting a newcomer waits for a slot to free: that of the
/// connection shed for it, or of one shed earlier and still closing. Its
/// task only has to be scheduled and drop the connection, so this is
/// normally microseconds; past it (a starved runtime) the newcomer is
/// refused rather than stalling the accept loop longer, and a connection
/// still closing no longer stops the next newcomer from shedding another.
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
    /// its request handled, or because no slot freed within the shed wait
    /// (the connection shed for them, or one shed earlier, did not close).
    /// Monotonically increasing, never reset.
    pub refused_total: u64,
    /// Connections shed and told to close whose slots are not freed yet
    /// (their tasks have not closed their sockets yet). Each one is a slot
    /// on its way to a newcomer: while one shed less than the shed wait
    /// (250 ms) ago is, a newcomer waits for it and sheds nothing more, so
    /// this is normally 0 or 1.
    pub closing: usize,
}

/// The slots and the table of held connections, shared by the accept loop,
/// every connection task and the server handle.
pub(crate) struct Connections {
    cap: usize,
    /// One permit per held socket; a connection's permit is released only
    /// after its socket is closed, so this bounds the sockets held.
    permits: Arc<Semaphore>,
    table: Mutex<Table>,
    /// Told whenever a held connection's socket has closed (its slot freed).
    closed: Notify,
}

struct Table {
    next_id: u64,
    /// Advances at every change of state: within a state, a smaller tick has
    /// been in it longer.
    next_tick: u64,
    entries: HashMap<u64, Entry>,
    /// Shed connections whose slots are not freed yet: see
    /// [`ConnectionStats::closing`]. A slot releases its permit with the
    /// table locked, so this and the semaphore's free permits always agree
    /// under the lock.
    closing: usize,
    /// When the last connection was shed: a connection closing for longer
    /// than the shed wait no longer holds newcomers back.
    last_shed: Option<Instant>,
    shed_total: u64,
    refused_total: u64,
}

struct Entry {
    state: State,
    /// Fired (and the entry removed) when the connection is shed.
    shed: oneshot::Sender<()>,
    /// What its socket holds unread, looked at before it is shed.
    probe: Option<Probe>,
}

/// A second descriptor of a held connection's socket, to look at what waits
/// in its receive buffer without consuming it (a `peek` on the same
/// non-blocking socket: it never waits). Dropped with the entry, before the
/// slot is freed, so the socket is closed by then all the same.
pub(crate) struct Probe(std::net::TcpStream);

impl Probe {
    /// A probe of `socket`, or `None` if its descriptor cannot be
    /// duplicated (out of descriptors: the connection is then shed by its
    /// state alone).
    #[cfg(unix)]
    pub(crate) fn of(socket: &impl std::os::fd::AsFd) -> Option<Self> {
        let probe = std::net::TcpStream::from(socket.as_fd().try_clone_to_owned().ok()?);
        // A tokio socket is non-blocking already (the flag is the socket's,
        // shared by both descriptors); made sure of, so a peek never waits.
        probe.set_nonblocking(true).ok()?;
        Some(Self(probe))
    }

    /// A probe of `socket`, or `None` if its handle cannot be duplicated.
    #[cfg(windows)]
    pub(crate) fn of(socket: &impl std::os::windows::io::AsSocket) -> Option<Self> {
        let probe = std::net::TcpStream::from(socket.as_socket().try_clone_to_owned().ok()?);
        probe.set_nonblocking(true).ok()?;
        Some(Self(probe))
    }

    /// Elsewhere no probe: connections are shed by their state alone.
    #[cfg(not(any(unix, windows)))]
    pub(crate) fn of<T>(_socket: &T) -> Option<Self> {
        None
    }

    /// Whether a complete request head (within [`PEEK_BYTES`]) waits
    /// unread: see [`complete_head`].
    fn head_waiting(&self) -> bool {
        let mut buf = vec![0u8; PEEK_BYTES];
        match self.0.peek(&mut buf) {
            Ok(n) => complete_head(&buf[..n]),
            Err(_) => false,
        }
    }
}

/// How much of a connection's unread bytes [`Probe::head_waiting`] looks at:
/// the default `Limits::max_header_bytes`, so a scraper with a long
/// bearer token is seen too (a longer head is simply not).
const PEEK_BYTES: usize = 16 * 1024;

/// Whether `bytes` begin with a whole request head as hyper reads one: the
/// empty lines it skips before a request line, then a request line and
/// headers ended by an empty line, with CRLF or bare LF line ends. Empty
/// lines alone are no head.
fn complete_head(bytes: &[u8]) -> bool {
    let start = bytes.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(bytes.len());
    let head = &bytes[start..];
    !head.is_empty() && (head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n"))
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
    /// Found with a complete request head waiting in its socket, not yet
    /// read by its task.
    HeadWaiting(u64),
}

impl State {
    /// Shedding order: tier first, then the oldest in the tier; `None` for
    /// a connection that is never shed.
    fn shed_rank(self) -> Option<(u8, u64)> {
        match self {
            State::Fresh(t) => Some((0, t)),
            State::Idle(t) => Some((1, t)),
            State::Writing(t) => Some((2, t)),
            State::HeadWaiting(t) => Some((3, t)),
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
                closing: 0,
                last_shed: None,
                shed_total: 0,
                refused_total: 0,
            }),
            closed: Notify::new(),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // The table stays consistent across a panic (each update is one
        // assignment or insert), so a poisoned lock is still usable.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for a newly accepted connection: a free one, else the first
    /// to free once a connection is on its way out (one shed earlier and
    /// still closing, else one shed now in the module's order: see
    /// [`Connections::make_way`]). `None` (counted as refused) when every
    /// held connection is having its request handled, or no slot freed
    /// within the shed wait. `probe` lets the table look at what the
    /// newcomer's socket holds unread before shedding it.
    pub(crate) async fn admit(self: &Arc<Self>, probe: Option<Probe>) -> Option<Slot> {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if !self.make_way() {
                    self.table().refused_total += 1;
                    return None;
                }
                // Whichever slot frees first (the shed one, or one whose
                // connection ended meanwhile) goes to the newcomer; a shed
                // connection that closes after that is the next newcomer's
                // (see `make_way`).
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
        table.entries.insert(id, Entry { state: State::Fresh(tick), shed, probe });
        drop(table);
        Some(Slot {
            tracker: Tracker { connections: self.clone(), id },
            shed_signal: Some(shed_signal),
            permit: Some(permit),
        })
    }

    /// Sheds one connection in the module's order for want of file
    /// descriptors (none if one shed earlier is still closing: see
    /// [`Connections::make_way`]), and waits (up to the shed wait) until a
    /// held connection has closed and freed its descriptors. False when
    /// nothing could be shed or nothing closed in time.
    pub(crate) async fn make_room(self: &Arc<Self>) -> bool {
        // Made before the table is looked at, so a close in between counts.
        let closed = self.closed.notified();
        {
            let mut table = self.table();
            if !Self::closing_in_time(&table) && !Self::shed_locked(&mut table) {
                return false;
            }
        }
        tokio::time::timeout(SHED_WAIT, closed).await.is_ok()
    }

    /// Makes sure a slot is on its way to the one newcomer waiting: true
    /// at once if one is free by now or a connection shed earlier is still
    /// closing within the shed wait (its slot is as good as free), else
    /// sheds one (see [`Connections::shed_locked`]); false when nothing
    /// could be shed.
    ///
    /// Shedding again while an earlier shed connection is still closing
    /// would let the shed run ahead of the closes for good: a newcomer
    /// takes whichever slot frees first, often one whose connection ended
    /// by itself (a scrape answered), and the slot of the connection shed
    /// for it frees later. Every such ending left one more connection shed
    /// but not closed, without an entry; under a reconnecting flood the
    /// table emptied by one entry per scrape until, its last connection
    /// being the newest scraper, that scraper was shed (the 60 s flood
    /// test's scrapes reset from the 128th on, 25 s in).
    fn make_way(&self) -> bool {
        let mut table = self.table();
        if self.permits.available_permits() > 0 || Self::closing_in_time(&table) {
            return true;
        }
        Self::shed_locked(&mut table)
    }

    /// Whether a shed connection is still closing and the last shed was
    /// within the shed wait: past it, that connection's task is starved or
    /// stuck (a render it started before it saw the shed), and newcomers
    /// may shed another rather than each wait the shed wait for it.
    fn closing_in_time(table: &Table) -> bool {
        table.closing > 0 && table.last_shed.is_some_and(|at| at.elapsed() < SHED_WAIT)
    }

    /// [`Connections::shed_locked`], taking the lock: the tests' way to
    /// shed one, whatever is closing.
    #[cfg(test)]
    fn shed_one(&self) -> bool {
        Self::shed_locked(&mut self.table())
    }

    /// Sheds one connection in the module's order: removes its entry, tells
    /// its task to close it and counts it closing. A fresh or idle
    /// candidate with a complete head waiting in its socket is moved behind
    /// every other kind instead, and the next candidate considered. False
    /// when every held connection is having its request handled.
    /// O(held connections) and one peek; O(held²) and one peek each only
    /// when that many heads wait unread (176 ms for 3,000 of them in a
    /// release build; the default cap is 128).
    fn shed_locked(table: &mut Table) -> bool {
        let mut rechecked = false;
        let id = loop {
            let victim = table.entries.iter().filter_map(|(id, e)| Some((e.state.shed_rank()?, *id))).min();
            let Some(((tier, _), id)) = victim else {
                return false;
            };
            // Before a response being written or a waiting head goes, the
            // heads seen waiting are looked at again: one its task has taken
            // without making a request of it is fresh again, and goes first.
            if tier >= 2 && !rechecked {
                rechecked = true;
                let mut demoted = false;
                for e in table.entries.values_mut() {
                    if let State::HeadWaiting(t) = e.state
                        && !e.probe.as_ref().is_some_and(Probe::head_waiting)
                    {
                        e.state = State::Fresh(t);
                        demoted = true;
                    }
                }
                if demoted {
                    continue;
                }
            }
            let tick = table.next_tick;
            let entry = table.entries.get_mut(&id).expect("the candidate was just found");
            let waiting = || entry.probe.as_ref().is_some_and(Probe::head_waiting);
            if tier < 2 && waiting() {
                entry.state = State::HeadWaiting(tick);
                table.next_tick += 1;
                continue;
            }
            break id;
        };
        let entry = table.entries.remove(&id).expect("the candidate was just found");
        // The receiver is gone only if the task has ended but not yet freed
        // its slot, which it does next (and counts itself closed then).
        let _ = entry.shed.send(());
        table.closing += 1;
        table.last_shed = Some(Instant::now());
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
            closing: table.closing,
        }
    }

    /// Waits, up to `grace`, until every connection has closed.
    pub(crate) async fn drain(&self, grace: Duration) {
        let all = u32::try_from(self.cap).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(grace, self.permits.acquire_many(all)).await;
    }
}

/// A held connection's slot, owned by its task. Dropping it (after the
/// socket is closed) removes the entry (or, for a shed connection, counts
/// it closed) and frees the slot, all with the table locked.
pub(crate) struct Slot {
    tracker: Tracker,
    shed_signal: Option<oneshot::Receiver<()>>,
    /// Taken and released in `drop`, under the table's lock.
    permit: Option<OwnedSemaphorePermit>,
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
        let connections = &self.tracker.connections;
        let mut table = connections.table();
        if table.entries.remove(&self.tracker.id).is_none() {
            // No entry left: it was shed (`shed_locked` removed it).
            table.closing -= 1;
        }
        drop(self.permit.take());
        drop(table);
        connections.closed.notify_waiters();
    }
}

/// Reports one connection's request heads and responses to the table.
#[derive(Clone)]
pub(crate) struct Tracker {
    connections: Arc<Connections>,
    id: u64,
}

impl Tracker {
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
        let mut a = rt.block_on(c.admit(None)).unwrap();
        let mut b = rt.block_on(c.admit(None)).unwrap();
        let mut d = rt.block_on(c.admit(None)).unwrap();
        let mut e = rt.block_on(c.admit(None)).unwrap();
        // `a` (the oldest) is being handled, so `b` has waited longest for a
        // first head.
        let serving_a = a.tracker().head_complete();
        assert!(c.shed_one());
        assert!(is_shed(&mut b) && !is_shed(&mut a) && !is_shed(&mut d) && !is_shed(&mut e));
        drop(b);
        assert_eq!(c.stats(), ConnectionStats { open: 3, shed_total: 1, refused_total: 0, closing: 0 });
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

    /// A loopback connection whose client has sent `bytes`; the server's end
    /// (kept, so that the socket stays open) and a probe of it.
    fn connection_with(bytes: &[u8]) -> (std::net::TcpStream, std::net::TcpStream, Option<Probe>) {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client.write_all(bytes).unwrap();
        let (server, _) = listener.accept().unwrap();
        // Loopback delivers at once; wait until the bytes are readable.
        let mut buf = [0u8; 64];
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while server.peek(&mut buf).unwrap_or(0) < bytes.len().min(64) {
            assert!(std::time::Instant::now() < deadline, "loopback bytes never arrived");
            std::thread::yield_now();
        }
        let probe = Probe::of(&server);
        (client, server, probe)
    }

    #[test]
    fn a_connection_with_a_whole_head_waiting_goes_after_every_other_kind() {
        let rt = rt();
        let c = Arc::new(Connections::new(5));
        // `s` (a scraper) is the oldest fresh connection, its whole head
        // waiting in its socket: its task has not read it yet.
        let (_sc, _ss, probe) = connection_with(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut s = rt.block_on(c.admit(probe)).unwrap();
        // A slow client's unfinished head does not count.
        let (_pc, _ps, probe) = connection_with(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ");
        let mut partial = rt.block_on(c.admit(probe)).unwrap();
        let mut fresh = rt.block_on(c.admit(None)).unwrap();
        let mut idle = rt.block_on(c.admit(None)).unwrap();
        drop(idle.tracker().head_complete());
        let mut writing = rt.block_on(c.admit(None)).unwrap();
        let serving = writing.tracker().head_complete();
        serving.writing();
        for (victim, what) in
            [(&mut partial, "partial head"), (&mut fresh, "fresh"), (&mut idle, "idle"), (&mut writing, "writing")]
        {
            assert!(c.shed_one());
            assert!(is_shed(victim), "{what} goes before the waiting head");
            assert!(!is_shed(&mut s), "the scraper outlasts {what}");
        }
        assert!(c.shed_one());
        assert!(is_shed(&mut s), "and only then gives way itself");
        assert_eq!(c.stats().shed_total, 5);
        drop(serving);
    }

    #[test]
    fn a_head_is_a_request_line_and_headers_ended_by_an_empty_line() {
        assert!(complete_head(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(complete_head(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"), "empty lines first, as hyper skips them");
        assert!(complete_head(b"GET /healthz HTTP/1.1\nHost: x\n\n"), "bare LF line ends, as hyper takes them");
        assert!(!complete_head(b"\r\n\r\n"), "empty lines alone");
        assert!(!complete_head(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: a"));
        assert!(!complete_head(b""));
    }

    #[test]
    fn a_scraper_with_a_long_head_outlasts_a_slow_client() {
        let rt = rt();
        let c = Arc::new(Connections::new(2));
        let mut head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ".to_vec();
        head.extend(std::iter::repeat_n(b'a', 2100));
        head.extend_from_slice(b"\r\n\r\n");
        let (_sc, _ss, probe) = connection_with(&head);
        let mut scraper = rt.block_on(c.admit(probe)).unwrap();
        let (_pc, _ps, probe) = connection_with(b"GET /metrics HTTP/1.1\r\nX-Slow: ");
        let mut slow = rt.block_on(c.admit(probe)).unwrap();
        assert!(c.shed_one());
        assert!(is_shed(&mut slow) && !is_shed(&mut scraper));
    }

    /// A head seen waiting and then taken by its task without becoming a
    /// request (hyper skipping what it skips) is fresh again.
    #[test]
    fn a_head_no_longer_waiting_is_fresh_again() {
        use std::io::Read;
        let rt = rt();
        let c = Arc::new(Connections::new(3));
        let (_ac, mut a_server, probe) = connection_with(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut stale = rt.block_on(c.admit(probe)).unwrap();
        let mut writing = rt.block_on(c.admit(None)).unwrap();
        let serving = writing.tracker().head_complete();
        serving.writing();
        let (_fc, _fs, probe) = connection_with(b"GET / HTTP/1.1\r\nX-Slow: ");
        let mut fresh = rt.block_on(c.admit(probe)).unwrap();
        // The partial head goes first; `stale` is seen waiting on the way.
        assert!(c.shed_one());
        assert!(is_shed(&mut fresh) && !is_shed(&mut stale));
        // Its task takes the bytes and makes no request of them.
        let mut taken = vec![0u8; 64];
        let _ = a_server.read(&mut taken).unwrap();
        assert!(c.shed_one());
        assert!(is_shed(&mut stale), "looked at again, it has nothing waiting: it goes before a response");
        assert!(!is_shed(&mut writing));
        drop(serving);
    }

    #[test]
    fn an_idle_connection_whose_next_head_waits_goes_after_writing_ones() {
        let rt = rt();
        let c = Arc::new(Connections::new(2));
        // A keep-alive scraper between scrapes, its next head already sent.
        let (_kc, _ks, probe) = connection_with(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut keep_alive = rt.block_on(c.admit(probe)).unwrap();
        drop(keep_alive.tracker().head_complete());
        let mut writing = rt.block_on(c.admit(None)).unwrap();
        let serving = writing.tracker().head_complete();
        serving.writing();
        assert!(c.shed_one());
        assert!(is_shed(&mut writing) && !is_shed(&mut keep_alive));
        drop(serving);
    }

    #[test]
    fn a_response_being_written_outlasts_newer_silent_connections() {
        let rt = rt();
        let c = Arc::new(Connections::new(2));
        let mut scraper = rt.block_on(c.admit(None)).unwrap();
        let serving = scraper.tracker().head_complete();
        serving.writing();
        let mut silent = rt.block_on(c.admit(None)).unwrap();
        // Newcomers keep arriving: each sheds the silent one, never the
        // scraper, older as it is.
        assert!(c.shed_one());
        assert!(is_shed(&mut silent) && !is_shed(&mut scraper));
        drop(silent);
        let mut silent = rt.block_on(c.admit(None)).unwrap();
        assert!(c.shed_one());
        assert!(is_shed(&mut silent) && !is_shed(&mut scraper));
        drop(serving);
    }

    #[test]
    fn a_newcomer_takes_the_slot_of_the_connection_shed_for_it() {
        let rt = rt();
        let c = Arc::new(Connections::new(1));
        let mut held = rt.block_on(c.admit(None)).unwrap();
        let newcomer = rt.block_on(async {
            // The held connection's task: closes when shed.
            let task = tokio::spawn(async move { held.shed().await });
            let newcomer = c.admit(None).await;
            task.await.unwrap();
            newcomer
        });
        assert!(newcomer.is_some());
        assert_eq!(c.stats(), ConnectionStats { open: 1, shed_total: 1, refused_total: 0, closing: 0 });
    }

    #[test]
    fn refuses_the_newcomer_when_every_connection_is_being_served() {
        let rt = rt();
        let c = Arc::new(Connections::new(2));
        let a = rt.block_on(c.admit(None)).unwrap();
        let b = rt.block_on(c.admit(None)).unwrap();
        let _handling = (a.tracker().head_complete(), b.tracker().head_complete());
        assert!(rt.block_on(c.admit(None)).is_none());
        assert_eq!(c.stats(), ConnectionStats { open: 2, shed_total: 0, refused_total: 1, closing: 0 });
    }

    #[test]
    fn refuses_the_newcomer_when_the_shed_connection_does_not_close_in_time() {
        let rt = rt();
        let c = Arc::new(Connections::new(1));
        let _stuck = rt.block_on(c.admit(None)).unwrap();
        assert!(rt.block_on(c.admit(None)).is_none());
        assert_eq!(c.stats(), ConnectionStats { open: 1, shed_total: 1, refused_total: 1, closing: 1 });
    }

    /// The flood test's failure, in small: a newcomer sheds `a`, whose task
    /// has not run yet, and takes the slot of `b`, a scrape that ended by
    /// itself meanwhile. The next newcomer must wait for `a`'s slot rather
    /// than shed the first newcomer; shedding it would leave two shed and
    /// one held, and so on, one entry less per scrape.
    #[test]
    fn a_newcomer_waits_for_a_connection_still_closing_and_sheds_no_other() {
        let rt = rt();
        let c = Arc::new(Connections::new(2));
        let mut a = rt.block_on(c.admit(None)).unwrap();
        let b = rt.block_on(c.admit(None)).unwrap();
        let mut first = rt
            .block_on(async {
                let c = c.clone();
                let admitting = tokio::spawn(async move { c.admit(None).await });
                tokio::task::yield_now().await;
                assert!(is_shed(&mut a), "the first newcomer sheds the oldest fresh connection");
                drop(b);
                admitting.await.unwrap()
            })
            .expect("the first newcomer takes the slot that ended by itself");
        assert_eq!(c.stats(), ConnectionStats { open: 2, shed_total: 1, refused_total: 0, closing: 1 });
        let second = rt.block_on(async {
            let c2 = c.clone();
            let admitting = tokio::spawn(async move { c2.admit(None).await });
            tokio::task::yield_now().await;
            assert!(!is_shed(&mut first), "nothing more is shed while `a` is closing");
            assert_eq!(c.stats().shed_total, 1);
            drop(a);
            admitting.await.unwrap()
        });
        assert!(second.is_some(), "the second newcomer takes `a`'s slot");
        assert!(!is_shed(&mut first));
        assert_eq!(c.stats(), ConnectionStats { open: 2, shed_total: 1, refused_total: 0, closing: 0 });
    }

    /// Out of descriptors (not slots), the same: while a shed connection is
    /// closing, making room sheds nothing more and waits for that close.
    #[test]
    fn making_room_sheds_nothing_more_while_a_shed_connection_is_closing() {
        let rt = rt();
        let c = Arc::new(Connections::new(4));
        let a = rt.block_on(c.admit(None)).unwrap();
        let mut b = rt.block_on(c.admit(None)).unwrap();
        assert!(c.shed_one(), "`a` is shed; its task has not run yet");
        rt.block_on(async {
            let c2 = c.clone();
            let room = tokio::spawn(async move { c2.make_room().await });
            tokio::task::yield_now().await;
            assert!(!is_shed(&mut b), "nothing more is shed while `a` is closing");
            assert!(!room.is_finished(), "making room waits for `a` to close");
            drop(a);
            assert!(room.await.unwrap(), "room is made once `a` has closed");
        });
        assert_eq!(c.stats(), ConnectionStats { open: 1, shed_total: 1, refused_total: 0, closing: 0 });
        // With nothing closing, making room sheds again (`b`), and waits
        // until it has closed.
        rt.block_on(async {
            let c2 = c.clone();
            let room = tokio::spawn(async move { c2.make_room().await });
            tokio::task::yield_now().await;
            assert!(is_shed(&mut b));
            assert!(!room.is_finished(), "making room waits for `b` to close");
            drop(b);
            assert!(room.await.unwrap());
        });
        assert_eq!(c.stats(), ConnectionStats { open: 0, shed_total: 2, refused_total: 0, closing: 0 });
    }

    /// A shed connection that does not close within the shed wait (its task
    /// stuck in a long render it started before it saw the shed) holds back
    /// one newcomer, not every one after it.
    #[test]
    fn a_connection_closing_past_the_shed_wait_no_longer_holds_newcomers_back() {
        let rt = rt();
        let c = Arc::new(Connections::new(2));
        let _stuck = rt.block_on(c.admit(None)).unwrap();
        let mut b = rt.block_on(c.admit(None)).unwrap();
        assert!(c.shed_one(), "`_stuck` is shed, and never closes");
        assert!(rt.block_on(c.admit(None)).is_none(), "a newcomer waits the shed wait for it, then is refused");
        assert!(!is_shed(&mut b), "having shed nothing more");
        // The shed wait has passed: the next newcomer sheds another.
        assert!(c.make_way());
        assert!(is_shed(&mut b));
        assert_eq!(c.stats(), ConnectionStats { open: 2, shed_total: 2, refused_total: 1, closing: 2 });
    }
}
