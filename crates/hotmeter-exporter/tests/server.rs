//! The HTTP server end to end over real loopback sockets: headers,
//! negotiation, gzip, 404/405, readiness, auth, limits, malformed and slow
//! clients, graceful shutdown. Every client is bounded by timeouts.

use std::io::{Read, Write};
#[cfg_attr(not(feature = "gzip"), allow(unused_imports))] // used by the gzip tests
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use hotmeter_exporter::{Auth, Exporter, Limits};
#[cfg_attr(not(feature = "gzip"), allow(unused_imports))]
use hotmeter_testkit::raw::{self, get};

fn registry() -> hotmeter::Registry {
    let r = hotmeter::Registry::new();
    r.counter("jobs_total", "Jobs run.").unwrap().inc_by(7);
    r
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Every format the server negotiates, with and without gzip: the exact
/// Content-Type, `Vary`, and a body in that format (UTF-8 names quoted or
/// escaped as the header asked); protobuf is never claimed until its
/// encoder is wired in.
#[test]
#[cfg(all(feature = "gzip", feature = "protobuf"))]
fn every_format_is_negotiated_and_gzipped() {
    let rt = runtime();
    let r = hotmeter::Registry::builder().name_validation(hotmeter::NameValidation::Utf8).build().unwrap();
    r.counter("jobs.done_total", "Jobs run.").unwrap().inc_by(7);
    let server = rt.block_on(Exporter::new(r).listen("127.0.0.1:0".parse().unwrap()).serve()).unwrap();
    let addr = server.local_addr();
    let prometheus_3 = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
    let protobuf = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";
    let cases = [
        ("", "text/plain; version=0.0.4; charset=utf-8", "jobs_done_total 7\n"),
        (
            prometheus_3,
            "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8",
            "{\"jobs.done_total\"} 7\n# EOF\n",
        ),
        (
            "application/openmetrics-text;version=0.0.1",
            "application/openmetrics-text; version=0.0.1; charset=utf-8",
            "jobs_done_total 7\n# EOF\n",
        ),
        (
            "text/plain;version=1.0.0;escaping=allow-utf-8",
            "text/plain; version=1.0.0; charset=utf-8; escaping=allow-utf-8",
            "{\"jobs.done_total\"} 7\n",
        ),
        (
            "text/plain;version=1.0.0;escaping=dots",
            "text/plain; version=1.0.0; charset=utf-8; escaping=dots",
            "jobs_dot_done__total 7\n",
        ),
        (
            "text/plain;version=1.0.0;escaping=values",
            "text/plain; version=1.0.0; charset=utf-8; escaping=values",
            "U__jobs_2e_done__total 7\n",
        ),
        // Delimited MetricFamily: the escaped family name, then the counter
        // (tag 0x1a) whose first field is one double (tag 0x09) of 7.0; its
        // created timestamp follows.
        (
            protobuf,
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; escaping=underscores",
            "\x09\x00\x00\x00\x00\x00\x00\x1c@",
        ),
    ];
    for (accept, content_type, tail) in cases {
        for gzip in [false, true] {
            let mut headers = String::new();
            if !accept.is_empty() {
                headers.push_str(&format!("Accept: {accept}\r\n"));
            }
            if gzip {
                headers.push_str("Accept-Encoding: gzip\r\n");
            }
            let resp = get(addr, "/metrics", &headers);
            assert_eq!(resp.status, 200);
            assert_eq!(resp.header("content-type"), Some(content_type), "{accept}");
            assert_eq!(resp.header("vary"), Some("Accept, Accept-Encoding"));
            let body = if gzip {
                assert_eq!(resp.header("content-encoding"), Some("gzip"), "{accept}");
                let mut plain = Vec::new();
                flate2::read::GzDecoder::new(&resp.body[..]).read_to_end(&mut plain).unwrap();
                String::from_utf8_lossy(&plain).into_owned()
            } else {
                assert_eq!(resp.header("content-encoding"), None);
                resp.text()
            };
            if accept == protobuf {
                assert!(body.contains("jobs_done_total") && !body.contains("jobs.done"), "escaped: {body:?}");
                assert!(body.contains(tail), "{accept} (gzip {gzip}): {body:?}");
            } else {
                assert!(body.ends_with(tail), "{accept} (gzip {gzip}): {body}");
            }
        }
    }
    rt.block_on(server.shutdown());
}

#[test]
#[cfg(feature = "gzip")]
fn routes_negotiation_gzip_and_errors() {
    let rt = runtime();
    let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = rt.block_on(Exporter::new(registry()).listen(any_port).serve()).unwrap();
    let addr = server.local_addr();
    assert!(addr.ip().is_loopback());

    let r = get(addr, "/metrics", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    assert_eq!(r.text(), "# HELP jobs_total Jobs run.\n# TYPE jobs_total counter\njobs_total 7\n");

    let r = get(addr, "/metrics", "Accept: application/openmetrics-text; version=1.0.0\r\n");
    assert_eq!(
        r.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores")
    );
    assert!(r.text().ends_with("jobs_total 7\n# EOF\n"), "{}", r.text());

    let r = get(addr, "/metrics", "Accept-Encoding: gzip\r\n");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&r.body[..]).read_to_string(&mut plain).unwrap();
    assert!(plain.contains("jobs_total 7\n"));

    let r = get(addr, "/metrics/json", "");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.text().contains("\"name\":\"jobs_total\""));

    let r = raw::exchange(addr, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    let full_length = get(addr, "/metrics", "").body.len().to_string();
    assert_eq!(r.header("content-length"), Some(full_length.as_str()));

    assert_eq!(get(addr, "/nope", "").status, 404);
    let r = raw::exchange(addr, b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    assert_eq!(get(addr, "/healthz", "").status, 200);

    // Readiness flips.
    assert_eq!(get(addr, "/readyz", "").status, 503);
    server.set_ready(true);
    assert_eq!(get(addr, "/readyz", "").status, 200);

    // Malformed requests get an error, never a panic, and the server lives on.
    let r = raw::exchange(addr, b"THIS IS NOT HTTP\r\n\r\n");
    assert_eq!(r.status, 400);
    let huge = format!("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(64 * 1024));
    let r = raw::exchange(addr, huge.as_bytes());
    assert_eq!(r.status, 431);
    let r =
        raw::exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 413);
    assert_eq!(get(addr, "/metrics", "").status, 200);

    rt.block_on(server.shutdown());
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(), "still listening after shutdown");
}

#[test]
fn slow_client_times_out_without_blocking_a_concurrent_scrape() {
    let limits = Limits { header_read_timeout: Duration::from_millis(300), ..Limits::default() };
    let server = Exporter::new(registry()).listen("127.0.0.1:0".parse().unwrap()).limits(limits).start().unwrap();
    let addr = server.local_addr();
    // A client that sends half a request head and then nothing.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").unwrap();
    // A concurrent scrape is served at once.
    let t = Instant::now();
    assert_eq!(get(addr, "/metrics", "").status, 200);
    assert!(t.elapsed() < Duration::from_secs(5));
    // The slow client is cut off after the header read timeout.
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let started = Instant::now();
    let _ = slow.read_to_end(&mut buf);
    assert!(started.elapsed() < Duration::from_secs(4), "slow client held the connection");
    let head = String::from_utf8_lossy(&buf);
    assert!(buf.is_empty() || head.starts_with("HTTP/1.1 408"), "{head}");
    server.shutdown();
}

#[test]
fn authentication_and_extra_routes() {
    let server = Exporter::new(registry())
        .listen("127.0.0.1:0".parse().unwrap())
        .auth(Auth::Bearer("s3cret".into()))
        .route("/slos", "application/json", || b"{\"total\":0}".to_vec())
        .start()
        .unwrap();
    let addr = server.local_addr();
    let r = get(addr, "/metrics", "");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"hotmeter\""));
    assert_eq!(get(addr, "/metrics", "Authorization: Bearer wrong\r\n").status, 401);
    assert_eq!(get(addr, "/metrics", "Authorization: Bearer s3cret\r\n").status, 200);
    assert_eq!(get(addr, "/healthz", "").status, 200, "liveness needs no credentials");
    let r = get(addr, "/slos", "Authorization: Bearer s3cret\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "{\"total\":0}"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    server.shutdown();
}

/// At the cap a newcomer takes the slot of the connection that has waited
/// longest without a request head; when every held connection is being
/// served, the newcomer is closed instead.
#[test]
fn connection_cap_sheds_the_longest_waiting_then_refuses() {
    let limits = Limits { max_connections: 2, header_read_timeout: Duration::from_secs(5), ..Limits::default() };
    // `/slow` is served until the test releases it, holding its connection busy.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = std::sync::Mutex::new(released);
    let server = Exporter::new(registry())
        .listen("127.0.0.1:0".parse().unwrap())
        .limits(limits)
        .route("/slow", "text/plain", move || {
            let _ = released.lock().unwrap().recv_timeout(Duration::from_secs(5));
            b"done\n".to_vec()
        })
        .start()
        .unwrap();
    let addr = server.local_addr();

    // Two idle connections fill the cap; a scrape sheds the older one.
    let mut a = TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut b = TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(get(addr, "/metrics", "").status, 200);
    a.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    b.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut buf = [0u8; 64];
    let a_read = a.read(&mut buf);
    assert!(
        a_read.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the older idle connection is shed (reset): {a_read:?}"
    );
    let b_read = b.read(&mut buf);
    assert!(
        b_read.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
        "the younger one is kept: {b_read:?}"
    );
    assert_eq!(server.connection_stats().shed_total, 1);
    drop(b);

    // Two requests being served fill the cap: a newcomer is closed unanswered.
    let slow: Vec<_> = (0..2).map(|_| std::thread::spawn(move || get(addr, "/slow", "").status)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let _ = c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut refused = Vec::new();
    let _ = c.read_to_end(&mut refused);
    assert!(refused.is_empty(), "over the cap, got: {}", String::from_utf8_lossy(&refused));
    assert_eq!(server.connection_stats().refused_total, 1);
    // The requests being served were not shed.
    release.send(()).unwrap();
    release.send(()).unwrap();
    for s in slow {
        assert_eq!(s.join().unwrap(), 200);
    }
    assert_eq!(get(addr, "/metrics", "").status, 200);
    server.shutdown();
}

/// The README's exposure snippet, on port 0 instead of 9898 so tests never
/// collide with a running demo.
#[test]
fn readme_snippet_serves() -> Result<(), Box<dyn std::error::Error>> {
    let registry = hotmeter::Registry::new();
    let writes = registry.counter("checkpoint_writes_total", "Checkpoint writes.")?;
    writes.inc();
    let server = hotmeter_exporter::Exporter::new(registry.clone()).listen("127.0.0.1:0".parse()?).start()?;
    server.set_ready(true);
    let addr = server.local_addr();
    assert_eq!(get(addr, "/readyz", "").status, 200);
    assert!(get(addr, "/metrics", "").text().contains("checkpoint_writes_total 1\n"));
    server.shutdown();
    Ok(())
}

/// A threaded server dropped inside async code shuts down without panicking.
#[test]
fn threaded_server_dropped_in_async_code() {
    let server = Exporter::new(registry()).listen("127.0.0.1:0".parse().unwrap()).start().unwrap();
    let addr = server.local_addr();
    runtime().block_on(async move { drop(server) });
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(), "still listening after drop");
}

/// `start()` called from async code (issue 22, item 1: it used to panic with
/// "Cannot start a runtime from within a runtime"): on a multi-threaded and
/// a current-thread runtime, from the runtime's own task and from a spawned
/// one, it serves scrapes and shuts down, blocking only the caller.
#[test]
fn threaded_server_started_in_async_code() {
    let multi = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let current = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for (flavor, rt) in [("multi-thread", &multi), ("current-thread", &current)] {
        for spawned in [false, true] {
            let start_and_scrape = async move {
                let registry = registry();
                let server = Exporter::new(registry).listen("127.0.0.1:0".parse().unwrap()).start().unwrap();
                let addr = server.local_addr();
                // The scrape blocks this task; the server runs on its own thread.
                let reply = get(addr, "/metrics", "");
                assert_eq!(reply.status, 200, "{flavor}, spawned {spawned}");
                assert!(reply.text().contains("jobs_total"), "{flavor}: {}", reply.text());
                server.shutdown();
                addr
            };
            let addr = if spawned {
                rt.block_on(async { tokio::spawn(start_and_scrape).await.unwrap() })
            } else {
                rt.block_on(start_and_scrape)
            };
            assert!(
                TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
                "{flavor}: still listening"
            );
        }
    }
}

/// A `start()` that fails (the address is taken) inside async code returns
/// the error; the runtime it built is dropped on its own thread, not the
/// caller's (dropping a runtime inside another one panics).
#[test]
fn threaded_server_that_cannot_bind_in_async_code_returns_the_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = runtime().block_on(async { Exporter::new(registry()).listen(addr).start().unwrap_err() });
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
}

/// The old name still compiles (deprecated), and is the same type.
#[test]
#[allow(deprecated)]
fn old_names_are_aliases() {
    let server: hotmeter_exporter::ThreadedServer =
        Exporter::new(registry()).listen("127.0.0.1:0".parse().unwrap()).start().unwrap();
    let server: hotmeter_exporter::ThreadedServerHandle = server;
    server.shutdown();
}
