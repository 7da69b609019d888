//! The HTTP server: hyper 1.x on tokio, loopback by default, in three
//! layers over one shared state.
//!
//! | module | owns |
//! |---|---|
//! | `config` | the [`Exporter`] builder, [`Limits`], [`Auth`], [`DEFAULT_LISTEN`], extra routes |
//! | `state` | what every connection shares, built once from an [`Exporter`] |
//! | `routes` | [`MetricsService`]: every route, content negotiation and gzip, the body limit, authentication |
//! | `listener` | binding, the accept loop, hyper's per-connection limits, shedding's glue, [`ServerHandle`], [`ThreadedServerHandle`], graceful shutdown |
//!
//! Imports run one way: `listener` → `routes` → `state` → `config`, and
//! each of them may use any module after it (whom to shed at the cap is
//! decided in `connections`, the page in `dashboard`). Must not: touch
//! recording paths, or stop accepting while at the connection cap;
//! rendering reads the registry through [`hotmeter::Registry::collect`] on
//! a blocking thread, so a large scrape never stalls the runtime's reactor.

mod config;
mod listener;
mod routes;
mod state;

pub use config::{Auth, DEFAULT_LISTEN, Exporter, Limits};
pub use listener::{ServerHandle, ThreadedServerHandle};
pub use routes::MetricsService;
