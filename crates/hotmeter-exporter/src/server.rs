//! The HTTP server: hyper 1.x on tokio, loopback by default.
//!
//! Owns: routing (`/metrics`, `/metrics/json`, `/healthz`, `/readyz`, the
//! dashboard's routes (answered by `dashboard`), extra read-only routes),
//! starting the dashboard's sampler, content negotiation and gzip, authentication, and the
//! hardening limits (header size, body size, header read timeout,
//! concurrent connections; whom to shed at the cap is decided in
//! `connections`). Must not: touch recording paths, or stop accepting while
//! at the connection cap; rendering reads the registry through
//! [`hotmeter::Registry::collect`] on a blocking thread, so a large scrape
//! never stalls the runtime's reactor.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;

use crate::connections::{ConnectionStats, Connections, Serving, Slot, Tracker};
use crate::dashboard::{self, Dashboard, Source};
use crate::history::{History, HistoryConfig};
use crate::{ExpositionFormat, JSON_CONTENT_TYPE, Negotiated, Offered, encode_json, encode_negotiated, negotiate};

/// The default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9898";

/// Hardening limits of the server. Build with
/// `Limits { max_connections: 16, ..Limits::default() }`.
///
/// # Bounds
/// The server holds at most `max_connections + 1` client sockets (the one
/// more is a newcomer held while the connection shed for it closes, at most
/// 250 ms) besides its listener, whatever clients do. Each held connection
/// costs hyper's read buffer, at most `max(max_header_bytes, 8 KiB)`, a few
/// hundred bytes of task and table entry, and, while its response is being
/// written, that response. With the defaults: 129 sockets and about
/// 128 × 17 KiB ≈ 2.2 MiB of buffers, plus the responses in flight.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Largest request head (request line and headers) accepted; larger
    /// ones get `431`. At least 8 KiB (hyper's minimum buffer). Default 16 KiB.
    pub max_header_bytes: usize,
    /// Largest declared request body; larger get `413`. Default 4 KiB
    /// (every route is a GET).
    pub max_body_bytes: u64,
    /// Time a client has to send a complete request head, on a new or an
    /// idle kept-alive connection; then the connection is closed (hyper sends no response).
    /// Default 5 s: a scraper sends its head at once, and a kept-alive
    /// scraper reconnects at its next scrape.
    pub header_read_timeout: Duration,
    /// Connections held at once. When all are held, a newcomer takes the
    /// slot of one held connection, which is reset: the one that has waited
    /// longest for its first request head, else the one idle longest between
    /// requests, else the one whose response has been written longest; a
    /// connection whose request is being handled is never shed, and only
    /// when every held connection is in that state is the newcomer closed
    /// instead. So a flood of slow clients only ever displaces itself, and a
    /// scrape is served. See [`ServerHandle::connection_stats`]. Default 128.
    pub max_connections: usize,
    /// How long a graceful shutdown waits for in-flight requests. Default 5 s.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 16 * 1024,
            max_body_bytes: 4 * 1024,
            header_read_timeout: Duration::from_secs(5),
            max_connections: 128,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Optional authentication of every route but `/healthz`.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `Authorization: Basic base64(user:password)`, given here already
    /// encoded as the header carries it.
    BasicEncoded(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        match self {
            Self::Bearer(_) => f.write_str("Auth::Bearer(..)"),
            Self::BasicEncoded(_) => f.write_str("Auth::BasicEncoded(..)"),
        }
    }
}

type RouteFn = Arc<dyn Fn() -> Vec<u8> + Send + Sync>;

/// An extra read-only route: a path, its content type, and the function that
/// renders its body (run on a blocking thread).
#[derive(Clone)]
struct Route {
    path: String,
    content_type: String,
    render: RouteFn,
}

/// State shared by every connection.
struct Shared {
    registry: hotmeter::Registry,
    limits: Limits,
    auth: Option<Auth>,
    routes: Vec<Route>,
    /// The page, its history and sources; `None` when turned off.
    dashboard: Option<Arc<Dashboard>>,
    ready: Arc<AtomicBool>,
    /// Render buffer reused across scrapes.
    buffer: Mutex<Vec<u8>>,
    /// The connections the accept loop holds (unused by a bare service).
    connections: Arc<Connections>,
}

/// Builds and starts the metrics server.
///
/// ```no_run
/// let registry = hotmeter::Registry::new();
/// let requests = registry.counter("requests_total", "Requests served.")?;
/// let server = hotmeter_exporter::Exporter::new(registry).start()?; // 127.0.0.1:9898
/// server.set_ready(true);
/// requests.inc();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub struct Exporter {
    registry: hotmeter::Registry,
    listen: SocketAddr,
    limits: Limits,
    auth: Option<Auth>,
    routes: Vec<Route>,
    history: Option<HistoryConfig>,
    sources: Vec<Source>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("listen", &self.listen)
            .field("limits", &self.limits)
            .field("auth", &self.auth)
            .field("routes", &self.routes.iter().map(|r| &r.path).collect::<Vec<_>>())
            .field("history", &self.history)
            .finish()
    }
}

impl Exporter {
    /// An exporter for `registry` on [`DEFAULT_LISTEN`] (loopback only).
    pub fn new(registry: hotmeter::Registry) -> Self {
        Self {
            registry,
            listen: SocketAddr::from(([127, 0, 0, 1], 9898)),
            limits: Limits::default(),
            auth: None,
            routes: Vec::new(),
            history: Some(HistoryConfig::default()),
            sources: Vec::new(),
        }
    }

    /// Listens on `addr` instead (port 0 picks a free port). Nothing listens
    /// beyond loopback unless an address like `0.0.0.0:9898` is given here.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Replaces the hardening limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Requires authentication on every route but `/healthz`.
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Mounts an extra read-only `GET` route (e.g. `/slos`), rendered by
    /// `render` on a blocking thread at each request.
    pub fn route(
        mut self,
        path: impl Into<String>,
        content_type: impl Into<String>,
        render: impl Fn() -> Vec<u8> + Send + Sync + 'static,
    ) -> Self {
        self.routes.push(Route { path: path.into(), content_type: content_type.into(), render: Arc::new(render) });
        self
    }

    /// Sets how much history the dashboard keeps (default: one sample a
    /// second for 15 minutes; the memory bound is
    /// [`HistoryConfig::memory_bound`]).
    pub fn history(mut self, config: HistoryConfig) -> Self {
        self.history = Some(config);
        self
    }

    /// Turns the dashboard off: no `/dashboard` routes (404), no sampler,
    /// no history held.
    pub fn without_dashboard(mut self) -> Self {
        self.history = None;
        self
    }

    /// Mounts a read-only JSON route (as [`route`](Self::route) does) and
    /// lists it on the dashboard, which shows it as a panel titled `title`
    /// (e.g. an SLO report at `/slos`, the latest decision at `/decision`).
    /// The page reads the JSON as data: an object with a `slos` array is
    /// shown as an SLO table, one with a `verdict` as a decision, anything
    /// else as a table of its fields.
    pub fn dashboard_source(
        mut self,
        title: impl Into<String>,
        path: impl Into<String>,
        render: impl Fn() -> Vec<u8> + Send + Sync + 'static,
    ) -> Self {
        let path = path.into();
        self.sources.push(Source { title: title.into(), path: path.clone() });
        self.route(path, "application/json", render)
    }

    fn shared(self) -> (Arc<Shared>, SocketAddr) {
        let shared = Shared {
            registry: self.registry,
            auth: self.auth,
            routes: self.routes,
            dashboard: self.history.map(|c| Arc::new(Dashboard::new(History::new(c), self.sources))),
            ready: Arc::new(AtomicBool::new(false)),
            buffer: Mutex::new(Vec::new()),
            connections: Arc::new(Connections::new(self.limits.max_connections)),
            limits: self.limits,
        };
        (Arc::new(shared), self.listen)
    }

    /// A hyper service answering every route, to mount in your own server.
    /// Readiness starts false; flip it with [`MetricsService::set_ready`].
    pub fn service(self) -> MetricsService {
        MetricsService { shared: self.shared().0 }
    }

    /// Binds and serves on the caller's tokio runtime; returns once bound.
    pub async fn serve(self) -> io::Result<ServerHandle> {
        let (shared, addr) = self.shared();
        let listener = bind(addr)?;
        let local_addr = listener.local_addr()?;
        let (stop_tx, stop_rx) = watch::channel(false);
        if let Some(d) = &shared.dashboard {
            tokio::spawn(dashboard::sample_loop(d.clone(), shared.registry.clone(), Some(stop_rx.clone())));
        }
        let ready = shared.ready.clone();
        let connections = shared.connections.clone();
        let task = tokio::spawn(accept_loop(listener, shared, stop_rx));
        Ok(ServerHandle { local_addr, ready, connections, stop: stop_tx, task })
    }

    /// Starts a small dedicated runtime on its own thread and serves there:
    /// for plain threaded programs. Returns once bound.
    pub fn start(self) -> io::Result<ThreadedServer> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(2)
            .thread_name("hotmeter-exporter")
            .enable_all()
            .build()?;
        let handle = runtime.block_on(self.serve())?;
        Ok(ThreadedServer { handle: Some(handle), runtime: Some(runtime) })
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
    /// (see [`Limits::max_connections`]).
    pub fn connection_stats(&self) -> ConnectionStats {
        self.connections.stats()
    }

    /// Stops accepting, lets in-flight requests finish (up to
    /// [`Limits::shutdown_grace`]), and returns when the server is down.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// A running server on its own runtime thread; shut down on drop.
#[derive(Debug)]
pub struct ThreadedServer {
    handle: Option<ServerHandle>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl ThreadedServer {
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

impl Drop for ThreadedServer {
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
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => break,
        };
        let Ok((stream, _peer)) = accepted else {
            // Out of file descriptors and the like: back off briefly.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let admitted = tokio::select! {
            slot = connections.admit() => slot,
            _ = stop.changed() => break,
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
    let shed = tokio::select! {
        _ = &mut conn => false,
        () = slot.shed() => true,
        _ = stop.changed() => {
            Pin::new(&mut conn).graceful_shutdown();
            let _ = tokio::time::timeout(limits.shutdown_grace, &mut conn).await;
            false
        }
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

/// The request handler as a hyper service: every route, negotiation, gzip,
/// limits and authentication. Cheap to clone.
#[derive(Clone)]
pub struct MetricsService {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MetricsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsService").finish_non_exhaustive()
    }
}

impl MetricsService {
    /// Sets what `/readyz` answers.
    pub fn set_ready(&self, ready: bool) {
        self.shared.ready.store(ready, Ordering::Relaxed);
    }

    /// The dashboard's sampler, for a service mounted in your own server
    /// ([`Exporter::serve`] and [`Exporter::start`] run it themselves):
    /// spawn it on your runtime and it fills the history once per
    /// interval, forever. Returns at once when the dashboard is off.
    pub fn history_sampler(&self) -> impl Future<Output = ()> + Send + 'static {
        let dashboard = self.shared.dashboard.clone();
        let registry = self.shared.registry.clone();
        async move {
            if let Some(d) = dashboard {
                dashboard::sample_loop(d, registry, None).await;
            }
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for MetricsService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move { Ok(handle(shared, req.method().clone(), req.uri(), req.headers()).await) })
    }
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// Whether `path` is one of the dashboard's (`/dashboard`, `/dashboard/...`).
fn is_dashboard_path(path: &str) -> bool {
    path == "/dashboard" || path.starts_with("/dashboard/")
}

/// The whole routing decision, given the parts of a request it needs.
/// Every answer to a dashboard path, refusals included (401, 405, 413,
/// 404), carries the dashboard's security headers.
async fn handle(
    shared: Arc<Shared>,
    method: Method,
    uri: &hyper::Uri,
    headers: &hyper::HeaderMap,
) -> Response<Full<Bytes>> {
    let dashboard = shared.dashboard.is_some() && is_dashboard_path(uri.path());
    let mut r = answer(shared, method, uri, headers).await;
    if dashboard {
        dashboard::secure(&mut r);
    }
    r
}

/// [`handle`] without the dashboard's headers.
async fn answer(
    shared: Arc<Shared>,
    method: Method,
    uri: &hyper::Uri,
    headers: &hyper::HeaderMap,
) -> Response<Full<Bytes>> {
    let path = uri.path();
    let head = method == Method::HEAD;
    if method != Method::GET && !head {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let declared_body = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared_body.is_some_and(|n| n > shared.limits.max_body_bytes) {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
    }
    if path == "/healthz" {
        return strip(head, plain(StatusCode::OK, "ok\n"));
    }
    if let Some(auth) = &shared.auth
        && !authorized(auth, headers)
    {
        let mut r = plain(StatusCode::UNAUTHORIZED, "unauthorized\n");
        let challenge = match auth {
            Auth::Bearer(_) => "Bearer realm=\"hotmeter\"",
            Auth::BasicEncoded(_) => "Basic realm=\"hotmeter\"",
        };
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        return r;
    }
    let response = match path {
        "/readyz" => {
            if shared.ready.load(Ordering::Relaxed) {
                plain(StatusCode::OK, "ready\n")
            } else {
                plain(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }
        "/metrics" => {
            let chosen = negotiate(&accept_header(headers), METRICS_FORMATS);
            let gzip = headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).is_some_and(accepts_gzip);
            let s = shared.clone();
            let rendered = tokio::task::spawn_blocking(move || {
                let mut written = chosen;
                let body = render(&s, |r, out| written = encode_metrics(r, chosen, out), gzip);
                (written, body)
            })
            .await;
            match rendered {
                Ok((written, body)) => body_response(written.content_type(), body, gzip),
                Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, "render failed\n"),
            }
        }
        "/metrics/json" => {
            let s = shared.clone();
            match tokio::task::spawn_blocking(move || render(&s, encode_json, false)).await {
                Ok(body) => body_response(JSON_CONTENT_TYPE, body, false),
                Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, "render failed\n"),
            }
        }
        p if dashboard::serves(p) && shared.dashboard.is_some() => {
            let gzip = headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).is_some_and(accepts_gzip);
            let d = shared.dashboard.as_ref().map(Arc::clone);
            match d {
                Some(d) => match dashboard::respond(&d, p, uri.query(), gzip).await {
                    Some(r) => r,
                    None => plain(StatusCode::NOT_FOUND, "not found\n"),
                },
                None => plain(StatusCode::NOT_FOUND, "not found\n"),
            }
        }
        p => match shared.routes.iter().find(|r| r.path == p) {
            Some(route) => {
                let render = route.render.clone();
                match tokio::task::spawn_blocking(move || render()).await {
                    Ok(body) => {
                        let mut r = Response::new(Full::new(Bytes::from(body)));
                        if let Ok(v) = HeaderValue::from_str(&route.content_type) {
                            r.headers_mut().insert(header::CONTENT_TYPE, v);
                        }
                        r
                    }
                    Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, "render failed\n"),
                }
            }
            None => plain(StatusCode::NOT_FOUND, "not found\n"),
        },
    };
    strip(head, response)
}

// ---------------------------------------------------------------------------
// What `/metrics` can produce: every format negotiation knows.
const METRICS_FORMATS: Offered = Offered::ALL;

/// Writes `chosen` and returns what was written (for `Content-Type`).
fn encode_metrics(registry: &hotmeter::Registry, chosen: Negotiated, out: &mut Vec<u8>) -> Negotiated {
    match chosen.format {
        ExpositionFormat::Protobuf => {
            hotmeter_format::encode_protobuf_escaped(registry, chosen.escaping, out);
            chosen
        }
        _ => encode_negotiated(registry, chosen, out),
    }
}
// ---------------------------------------------------------------------------

/// Every `Accept` header of a request, joined with `,` (RFC 9110 allows a
/// list header to be split over several lines); non-ASCII ones are ignored.
fn accept_header(headers: &hyper::HeaderMap) -> String {
    let mut joined = String::new();
    for value in headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()) {
        if !joined.is_empty() {
            joined.push(',');
        }
        joined.push_str(value);
    }
    joined
}

/// Renders into the shared, reused buffer and returns the (optionally
/// gzipped) bytes.
fn render(shared: &Shared, encode: impl FnOnce(&hotmeter::Registry, &mut Vec<u8>), gzip: bool) -> Bytes {
    let mut buf = shared.buffer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    buf.clear();
    encode(&shared.registry, &mut buf);
    if gzip {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(buf.len() / 4), flate2::Compression::fast());
        // Writing to a Vec cannot fail.
        let _ = enc.write_all(&buf);
        Bytes::from(enc.finish().unwrap_or_default())
    } else {
        Bytes::copy_from_slice(&buf)
    }
}

fn body_response(content_type: &'static str, body: Bytes, gzip: bool) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if gzip {
        r.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    r.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
    r
}

/// HEAD: the same headers (including the length), no body.
fn strip(head: bool, r: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    if !head {
        return r;
    }
    let (mut parts, body) = r.into_parts();
    let len = http_body_util::BodyExt::boxed(body);
    if let Some(n) = hyper::body::Body::size_hint(&len).exact()
        && let Ok(v) = HeaderValue::from_str(&n.to_string())
    {
        parts.headers.insert(header::CONTENT_LENGTH, v);
    }
    Response::from_parts(parts, Full::new(Bytes::new()))
}

fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|entry| {
        let mut parts = entry.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("");
        let q = parts.find_map(|p| p.strip_prefix("q=")).and_then(|q| q.parse::<f32>().ok()).unwrap_or(1.0);
        coding.eq_ignore_ascii_case("gzip") && q > 0.0
    })
}

fn authorized(auth: &Auth, headers: &hyper::HeaderMap) -> bool {
    let Some(given) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let (scheme, expected) = match auth {
        Auth::Bearer(t) => ("Bearer ", t),
        Auth::BasicEncoded(b) => ("Basic ", b),
    };
    given.strip_prefix(scheme).is_some_and(|g| constant_time_eq(g.trim().as_bytes(), expected.as_bytes()))
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("br, gzip;q=0.5"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("identity"));
    }

    #[test]
    fn auth_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert_eq!(format!("{:?}", Auth::Bearer("secret".into())), "Auth::Bearer(..)");
    }

    #[test]
    fn default_listen_is_loopback() {
        let e = Exporter::new(hotmeter::Registry::new());
        assert!(e.listen.ip().is_loopback());
        assert_eq!(e.listen.to_string(), DEFAULT_LISTEN);
    }
}
