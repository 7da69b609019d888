//! What hotmeter's tests share, written once: free loopback ports,
//! readiness polls, the one HTTP client (GET over ureq), PromQL queries,
//! child-process guards, tiny loopback HTTP receivers, and one launcher
//! for each real receiver the tests talk to ([`Prometheus`],
//! [`Pushgateway`], [`Alertmanager`], [`VictoriaMetrics`], [`Postgres`]).
//!
//! Owns: the lifetimes of the processes and loopback addresses the tests
//! use; every process it starts is stopped when its handle drops, pass or
//! panic. Must not: be a dependency of anything but tests (`publish =
//! false`, a dev-dependency only); skip when a binary is missing (a test
//! fails and names the package to install; only a binary no test command
//! installs, VictoriaMetrics, is left to `#[ignore]`d tests); open raw
//! sockets for ordinary HTTP (only [`raw`], for tests that check or break
//! the bytes on purpose).
//!
//! | item | what |
//! | --- | --- |
//! | [`free_port`], [`free_addr`] | a loopback port nobody listens on |
//! | [`wait_for`] | poll until a check answers, or fail naming what was awaited |
//! | [`which`], [`require`] | find a binary on `PATH`; fail naming its package |
//! | [`ChildGuard`], [`output_lines`] | child processes killed (and reaped) on drop; their output line by line |
//! | [`client_model`] | prost types of `metrics.proto`: protobuf exposition decoded by a decoder that is not ours |
//! | [`http`] | the one HTTP client: GET, with a query and a bearer token |
//! | [`promql`] | instant queries against a Prometheus HTTP API |
//! | [`receiver`] | a scripted loopback HTTP receiver that records requests |
//! | [`raw`] | raw bytes over a socket, for byte-exact server tests |
//! | [`Prometheus`], [`Pushgateway`], [`Alertmanager`] | Debian's binaries on loopback, ready |
//! | [`VictoriaMetrics`], [`Postgres`] | the receivers of the OTLP and store work |

pub mod client_model;
pub mod http;
mod launch;
mod postgres;
mod process;
pub mod promql;
pub mod raw;
pub mod receiver;
mod victoria;

use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use launch::{Alertmanager, Prometheus, PrometheusBuilder, Pushgateway};
pub use postgres::{POSTGRES_USER, Postgres};
pub use process::{ChildGuard, output_lines};
pub use victoria::{VICTORIA_METRICS_ENV, VictoriaMetrics};

/// A free loopback port: bound once by the kernel's choice, then released.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `127.0.0.1:{`[`free_port`]`}`.
pub fn free_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// A loopback port held bound but not listening, so that connections to
/// it are refused as to a receiver that is down, and no other server (or
/// test) can take it meanwhile; drop it to let a receiver start there.
#[derive(Debug)]
pub struct ClosedPort {
    addr: String,
    _socket: socket2::Socket,
}

impl ClosedPort {
    /// Binds a free loopback port without listening on it.
    pub fn new() -> ClosedPort {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        socket.bind(&any.into()).unwrap();
        let port = socket.local_addr().unwrap().as_socket().unwrap().port();
        ClosedPort { addr: format!("127.0.0.1:{port}"), _socket: socket }
    }

    /// Its `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }
}

impl Default for ClosedPort {
    fn default() -> Self {
        ClosedPort::new()
    }
}

/// Polls `check` every 250 ms until it returns `Some`, and returns that;
/// panics after `limit` with "timed out after {limit} waiting for {what}".
pub fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The executable `name` resolves to: `name` itself when it holds a `/`,
/// else the first file of that name in a `PATH` folder.
pub fn which(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let path = PathBuf::from(name);
        return path.is_file().then_some(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
}

/// Fails (never skips) when `bin` is not on `PATH`, naming the Debian
/// `package` to install.
pub fn require(bin: &str, package: &str) {
    assert!(which(bin).is_some(), "`{bin}` not found: install Debian's {package} (bash ci/test.sh does)");
}
