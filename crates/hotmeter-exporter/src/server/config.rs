//! The server's configuration: the [`Exporter`] builder, the hardening
//! [`Limits`], [`Auth`], the default listen address, and the extra routes
//! an application mounts.
//!
//! Owns: what a server is told before it starts, and the defaults (loopback
//! only, the limits' values, the dashboard on). Must not: bind, spawn or
//! answer anything: starting is `listener`'s ([`Exporter::serve`],
//! [`Exporter::start`]) and answering `routes`' ([`Exporter::service`]);
//! nothing here imports either, so the two can build on it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "dashboard")]
use crate::dashboard::Source;
#[cfg(feature = "dashboard")]
use crate::history::HistoryConfig;

/// The default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9898";

/// Hardening limits of the server. Build with
/// `Limits { max_connections: 16, ..Limits::default() }`.
///
/// # Bounds
/// The server holds at most `max_connections + 1` client sockets (the one
/// more is a newcomer held while a shed connection closes, at most 250 ms)
/// besides its listener, whatever clients do. Each held connection
/// costs hyper's read buffer, at most `max(max_header_bytes, 8 KiB)`, a few
/// hundred bytes of task and table entry, and, while its response is being
/// written, that response. With the defaults: 129 sockets and about
/// 128 × 17 KiB ≈ 2.2 MiB of buffers, plus the responses in flight.
///
/// Each held socket takes two file descriptors: its own and the connection
/// table's second one, through which the server peeks at what a connection
/// has sent before it sheds it. So the defaults take up to 258 besides the
/// listener. Under a lower open-file limit the server runs out of
/// descriptors before the cap and then, whenever an accept fails for want
/// of one, sheds a held connection (counted in `shed_total`) or waits for
/// one shed earlier to close, as it would at the cap: a flood still only
/// displaces itself.
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
    /// scrape is served. See
    /// [`ServerHandle::connection_stats`](super::ServerHandle::connection_stats).
    /// Default 128.
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

/// Renders an extra route's body.
pub(super) type RouteFn = Arc<dyn Fn() -> Vec<u8> + Send + Sync>;

/// An extra read-only route: a path, its content type, and the function that
/// renders its body (run on a blocking thread).
#[derive(Clone)]
pub(super) struct Route {
    pub(super) path: String,
    pub(super) content_type: String,
    pub(super) render: RouteFn,
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
    pub(super) registry: hotmeter::Registry,
    pub(super) listen: SocketAddr,
    pub(super) limits: Limits,
    pub(super) auth: Option<Auth>,
    pub(super) routes: Vec<Route>,
    #[cfg(feature = "dashboard")]
    pub(super) history: Option<HistoryConfig>,
    #[cfg(feature = "dashboard")]
    pub(super) sources: Vec<Source>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Exporter");
        d.field("listen", &self.listen)
            .field("limits", &self.limits)
            .field("auth", &self.auth)
            .field("routes", &self.routes.iter().map(|r| &r.path).collect::<Vec<_>>());
        #[cfg(feature = "dashboard")]
        d.field("history", &self.history);
        d.finish()
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
            #[cfg(feature = "dashboard")]
            history: Some(HistoryConfig::default()),
            #[cfg(feature = "dashboard")]
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
    /// `render` on a blocking thread at each request. The server's own
    /// routes come first: `/metrics`, `/metrics/json`, `/healthz`,
    /// `/readyz`, and the dashboard's paths while it is on (a route mounted
    /// at one of those is answered only in a build without the
    /// `dashboard` feature or after [`without_dashboard`](Self::without_dashboard)).
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
    #[cfg(feature = "dashboard")]
    pub fn history(mut self, config: HistoryConfig) -> Self {
        self.history = Some(config);
        self
    }

    /// Turns the dashboard off: no `/dashboard` routes (404), no sampler,
    /// no history held. Without the `dashboard` feature it is always off
    /// and this does nothing.
    pub fn without_dashboard(#[allow(unused_mut)] mut self) -> Self {
        #[cfg(feature = "dashboard")]
        {
            self.history = None;
        }
        self
    }

    /// Mounts a read-only JSON route (as [`route`](Self::route) does) and
    /// lists it on the dashboard, which shows it as a panel titled `title`
    /// (e.g. an SLO report at `/slos`, the latest decision at `/decision`).
    /// The page reads the JSON as data: an object with a `slos` array is
    /// shown as an SLO table, one with a `verdict` as a decision, anything
    /// else as a table of its fields.
    #[cfg(feature = "dashboard")]
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_listen_is_loopback() {
        let e = Exporter::new(hotmeter::Registry::new());
        assert!(e.listen.ip().is_loopback());
        assert_eq!(e.listen.to_string(), DEFAULT_LISTEN);
    }
}
