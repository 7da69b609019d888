//! The listener: binding, the accept loop, serving each connection with
//! hyper, the running server's handles ([`ServerHandle`],
//! [`ThreadedServerHandle`]) and graceful shutdown.
//!
//! Owns: starting a server ([`Exporter::serve`], [`Exporter::start`]) and
//! its dashboard sampler, the listen backlog, hyper's per-connection limits (header read timeout,
//! buffer size), telling the connection table what each connection is doing
//! and closing a shed one with a reset. Must not: stop accepting while at
//! the connection cap (whom to shed is decided in `connections`), or decide
//! what a request is answered (`routes` does; this module only wraps its
//! [`MetricsService`]).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;

use super::config::Exporter;
use super::routes::MetricsService;
use super::state::Shared;
use crate::connections::{ConnectionStats, Connections, Probe, Serving, Slot, Tracker};
#[cfg(feature = "dashboard")]
use crate::dashboard;
use crate::first::{First, first};

impl Exporter {
    /// Binds and serves on the caller's tokio runtime; returns once bound.
    pub async fn serve(self) -> io::Result<ServerHandle> {
        let (shared, addr) = self.shared();
        let listener = bind(addr)?;
        let local_addr = listener.local_addr()?;
        let (stop_tx, stop_rx) = watch::channel(false);
        #[cfg(feature = "dashboard")]
        if let Some(d) = &shared.dashboard {
            tokio::spawn(dashboard::sample_loop(d.clone(), shared.registry.clone(), Some(stop_rx.clone())));
        }
        let ready = shared.ready.clone();
        let connections = shared.connections.clone();
        let task = tokio::spawn(accept_loop(listener, shared, stop_rx));
        Ok(ServerHandle { local_addr, ready, connections, stop: stop_tx, task })
    }

    /// Starts a small dedicated runtime on its own thread and serves there;
    /// returns once bound. For threaded programs, and safe to call from
    /// async code too (inside `#[tokio::main]`, a `spawn`ed task or any
    /// other runtime): the runtime is built, entered and, on error, dropped
    /// on a thread of its own, never on the caller's, so the caller's
    /// runtime is neither blocked on nor nested. In async code,
    /// [`Exporter::serve`] shares the caller's runtime instead.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// // Inside a tokio runtime: no "Cannot start a runtime from within a
    /// // runtime" panic.
    /// let server = hotmeter_exporter::Exporter::new(hotmeter::Registry::new())
    ///     .listen("127.0.0.1:0".parse().unwrap())
    ///     .start()?;
    /// assert_ne!(server.local_addr().port(), 0);
    /// server.shutdown();
    /// # Ok(())
    /// # }
    /// ```
    pub fn start(self) -> io::Result<ThreadedServerHandle> {
        let starting = std::thread::Builder::new().name("hotmeter-exporter-start".into()).spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .max_blocking_threads(2)
                .thread_name("hotmeter-exporter")
                .enable_all()
                .build()?;
            let handle = runtime.block_on(self.serve())?;
            Ok(ThreadedServerHandle { handle: Some(handle), runtime: Some(runtime) })
        })?;
        starting.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

/// A running server on the caller's runtime.
pub struct ServerHandle {
    local_addr: SocketAddr,
    ready: Arc<AtomicBool>,
    connections: Arc<Connections>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .field("connections", &self.connection_stats())
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Sets what `/readyz` answers: `200` when ready, `503` until then.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Connections held now, and how many were shed or refused at the cap
    /// (see [`Limits::max_connections`](super::Limits::max_connections)).
    pub fn connection_stats(&self) -> ConnectionStats {
        self.connections.stats()
    }

    /// Stops accepting, lets in-flight requests finish (up to
    /// [`Limits::shutdown_grace`](super::Limits::shutdown_grace)), and
    /// returns when the server is down.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// A running server on its own runtime thread; shut down on drop.
#[derive(Debug)]
pub struct ThreadedServerHandle {
    handle: Option<ServerHandle>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl ThreadedServerHandle {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.as_ref().map_or(SocketAddr::from(([127, 0, 0, 1], 0)), ServerHandle::local_addr)
    }

    /// Sets what `/readyz` answers.
    pub fn set_ready(&self, ready: bool) {
        if let Some(h) = &self.handle {
            h.set_ready(ready);
        }
    }

    /// Connections held now, and how many were shed or refused at the cap.
    pub fn connection_stats(&self) -> ConnectionStats {
        self.handle.as_ref().map(ServerHandle::connection_stats).unwrap_or_default()
    }

    /// Graceful shutdown, blocking until the server is down.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let (Some(handle), Some(runtime)) = (self.handle.take(), self.runtime.take()) {
            let stop = move || {
                runtime.block_on(handle.shutdown());
                runtime.shutdown_timeout(Duration::from_secs(1));
            };
            // Blocking on a runtime from inside another one panics: when
            // dropped in async code, shut down from a plain thread instead.
            if tokio::runtime::Handle::try_current().is_ok() {
                let _ = std::thread::spawn(stop).join();
            } else {
                stop();
            }
        }
    }
}

impl Drop for ThreadedServerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Connections the kernel may hold completed but not yet accepted. Larger
/// than std's 128 so that a burst of connects (a flood of reconnecting slow
/// clients) does not overflow it and drop a scraper's SYN, which would cost
/// the scraper a one-second retransmission; the kernel caps it at
/// `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 1024;

/// Binds a listener as `TcpListener::bind` does (`SO_REUSEADDR` on Unix),
/// with [`LISTEN_BACKLOG`].
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Accepts for as long as the server runs, at the cap too: a newcomer at the
/// cap takes a slot freed by shedding (see `connections`), so the kernel's
/// backlog never fills behind held slow clients.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let connections = shared.connections.clone();
    loop {
        // The stop signal first: under a flood there is always a connection
        // to accept, and the loop must still see the stop at once.
        let accepted = match first(stop.changed(), listener.accept()).await {
            First::A(_) => break,
            First::B(accepted) => accepted,
        };
        let (stream, _peer) = match accepted {
            Ok(accepted) => accepted,
            // Out of file descriptors before the connection cap (an
            // open-file limit under twice `max_connections`: each held
            // connection takes two, its socket and the table's probe):
            // a held connection gives way, as it would at the cap, so a
            // flood of slow clients cannot keep scrapers waiting in the
            // backlog. Anything else, or nothing to shed: back off briefly.
            Err(e) if out_of_descriptors(&e) && connections.make_room().await => continue,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let admitted = match first(stop.changed(), connections.admit(Probe::of(&stream))).await {
            First::A(_) => break,
            First::B(slot) => slot,
        };
        let Some(slot) = admitted else {
            // Every held connection is having its request handled: close at once.
            drop(stream);
            continue;
        };
        tokio::spawn(serve_connection(stream, slot, shared.clone(), stop.clone()));
    }
    drop(listener);
    // Wait for connections to drain (each holds a slot), up to the grace.
    connections.drain(shared.limits.shutdown_grace + Duration::from_millis(100)).await;
}

/// Whether `accept` failed for want of a file descriptor (`EMFILE` for the
/// process, `ENFILE` for the system: 24 and 23 on Linux, the BSDs and
/// macOS).
fn out_of_descriptors(e: &io::Error) -> bool {
    cfg!(unix) && matches!(e.raw_os_error(), Some(23 | 24))
}

/// Serves one connection until it ends, is shed, or the server stops; then
/// closes the socket and only after that frees the slot.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    mut slot: Slot,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let limits = shared.limits.clone();
    let service = TrackedService { inner: MetricsService { shared }, tracker: slot.tracker() };
    let mut conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .serve_connection(TokioIo::new(stream), service);
    // The stop signal, then shedding, then the connection. Polling the
    // connection before shedding (so one that has just finished would
    // close normally rather than be reset) made the slow-client flood test
    // fail in 2 of 3 runs, scrapes reset from 25 s on. The cause, found
    // later, was not this order: sheds ran ahead of closes whenever a
    // connection ended by itself while a newcomer waited (see
    // `Connections::make_way`), and the other order only made that more
    // frequent. The order stays: a shed connection's slot frees soonest.
    let shed = match first(stop.changed(), first(slot.shed(), &mut conn)).await {
        First::A(_) => {
            Pin::new(&mut conn).graceful_shutdown();
            let _ = tokio::time::timeout(limits.shutdown_grace, &mut conn).await;
            false
        }
        First::B(First::A(())) => true,
        First::B(First::B(_)) => false,
    };
    if shed {
        // Shed for a newcomer: close with a reset, not a FIN. The client is
        // told at once, and the server keeps no TIME_WAIT state for it: a
        // flood of reconnecting clients must not pile those up, nor collide
        // with a later connection (a scrape) on the same ports.
        let stream = conn.into_parts().io.into_inner();
        // Zero linger never blocks on drop (the deprecation is about
        // non-zero lingers); `set_zero_linger` needs tokio 1.50.
        #[allow(deprecated)]
        let _ = stream.set_linger(Some(Duration::ZERO));
        drop(stream);
    } else {
        drop(conn);
    }
    // Only now, with the socket closed, is the slot freed.
    drop(slot);
}

/// [`MetricsService`] that tells the connection table when a request head
/// has arrived (hyper calls a service only then), when its response starts
/// being written, and when that is done (hyper drops the body), so that a
/// connection is shed in the order `connections` sets.
#[derive(Clone)]
struct TrackedService {
    inner: MetricsService,
    tracker: Tracker,
}

impl hyper::service::Service<Request<Incoming>> for TrackedService {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        // Taken before the future exists, so it is released even if hyper
        // drops the future unpolled.
        let serving = self.tracker.head_complete();
        let response = self.inner.call(req);
        Box::pin(async move {
            let (parts, body) = response.await.unwrap_or_else(|never| match never {}).into_parts();
            let bytes = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(never) => match never {},
            };
            serving.writing();
            Ok(Response::from_parts(parts, TrackedBody { bytes, serving: Some(serving) }))
        })
    }
}

/// Largest frame a [`TrackedBody`] hands hyper at once: hyper asks for the
/// next one only as it writes, so the body (and the guard it carries) lives
/// until the end of the response is queued, not just its start.
const FRAME: usize = 16 * 1024;

/// A response body that carries its connection's [`Serving`] guard until it
/// is fully handed to hyper (or the connection is dropped), with an exact
/// length, so `Content-Length` is sent as before.
struct TrackedBody {
    bytes: Bytes,
    serving: Option<Serving>,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        if self.bytes.is_empty() {
            self.serving = None;
            return std::task::Poll::Ready(None);
        }
        let n = self.bytes.len().min(FRAME);
        let frame = self.bytes.split_to(n);
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.bytes.is_empty()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.bytes.len() as u64)
    }
}
