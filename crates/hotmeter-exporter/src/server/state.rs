//! The state every connection of one server shares: the registry, the
//! configuration it was started with, the readiness flag, the reused render
//! buffer, the dashboard and the connection table.
//!
//! Owns: turning an [`Exporter`] into that state, once, at start. Must not:
//! answer requests (`routes` does) or accept connections (`listener` does);
//! it is the leaf both share, so it imports neither.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use super::config::{Auth, Exporter, Limits, Route};
use crate::connections::Connections;
#[cfg(feature = "dashboard")]
use crate::dashboard::Dashboard;
#[cfg(feature = "dashboard")]
use crate::history::History;

/// State shared by every connection.
pub(super) struct Shared {
    pub(super) registry: hotmeter::Registry,
    pub(super) limits: Limits,
    pub(super) auth: Option<Auth>,
    pub(super) routes: Vec<Route>,
    /// The page, its history and sources; `None` when turned off.
    #[cfg(feature = "dashboard")]
    pub(super) dashboard: Option<Arc<Dashboard>>,
    pub(super) ready: Arc<AtomicBool>,
    /// Render buffer reused across scrapes.
    pub(super) buffer: Mutex<Vec<u8>>,
    /// The connections the accept loop holds (unused by a bare service).
    pub(super) connections: Arc<Connections>,
}

impl Exporter {
    /// The shared state this configuration starts with, and the address to
    /// listen on.
    pub(super) fn shared(self) -> (Arc<Shared>, SocketAddr) {
        let shared = Shared {
            registry: self.registry,
            auth: self.auth,
            routes: self.routes,
            #[cfg(feature = "dashboard")]
            dashboard: self.history.map(|c| Arc::new(Dashboard::new(History::new(c), self.sources))),
            ready: Arc::new(AtomicBool::new(false)),
            buffer: Mutex::new(Vec::new()),
            connections: Arc::new(Connections::new(self.limits.max_connections)),
            limits: self.limits,
        };
        (Arc::new(shared), self.listen)
    }
}
