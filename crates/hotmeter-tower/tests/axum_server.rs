//! The layer on a real axum server over loopback, under concurrent
//! clients: every request counted once under its method, route template
//! and status, the duration and body-size histograms agreeing with what
//! the clients sent and got, nothing left "active", and the exposition
//! accepted by the text encoder.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use hotmeter::{OwnedValue, Registry};
use hotmeter_testkit::raw;
use hotmeter_tower::HttpMetricsLayer;

const CLIENTS: usize = 8;
/// Requests and response body bytes by (method, route, status).
type Tally = BTreeMap<(&'static str, &'static str, u16), (u64, u64)>;
const ROUNDS: usize = 40;

fn app(registry: &Registry) -> Router {
    Router::new()
        .route(
            "/users/{id}",
            get(|axum::extract::Path(id): axum::extract::Path<u32>| async move { format!("user {id}") }),
        )
        .route("/items", post(|body: String| async move { (axum::http::StatusCode::CREATED, body.repeat(2)) }))
        .layer(HttpMetricsLayer::for_axum(registry).unwrap())
}

/// One request over its own connection; the status and body length.
fn send(addr: SocketAddr, head: &str, body: &str) -> (u16, usize) {
    let request =
        format!("{head} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    let reply = raw::try_exchange(addr, request.as_bytes(), Duration::from_secs(10)).expect("an answer");
    (reply.status, reply.body.len())
}

fn histogram(registry: &Registry, name: &str, labels: &[&str]) -> (u64, f64) {
    match registry.snapshot().value(name, labels) {
        Some(OwnedValue::NativeHistogram { native, .. }) => (native.count, native.sum),
        other => panic!("{name}{labels:?}: {other:?}"),
    }
}

#[test]
fn every_request_is_counted_under_its_route_template_and_status() {
    let registry = Registry::new();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app(&registry);
    rt.spawn(async move { axum::serve(listener, router).await.unwrap() });

    // Each client: GET /users/<n> (200), POST /items (201, the body twice),
    // GET /nope/<n> (404, no route), and a method no one defined (_OTHER).
    let sent: Vec<Tally> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|c| {
                s.spawn(move || {
                    let mut tally = Tally::new();
                    let mut add = |key: (&'static str, &'static str, u16), (status, len): (u16, usize)| {
                        assert_eq!(status, key.2, "{key:?}");
                        let e = tally.entry(key).or_default();
                        e.0 += 1;
                        e.1 += len as u64;
                    };
                    for r in 0..ROUNDS {
                        let n = c * 1000 + r;
                        add(("GET", "/users/{id}", 200), send(addr, &format!("GET /users/{n}"), ""));
                        add(("POST", "/items", 201), send(addr, "POST /items", &"x".repeat(r + 1)));
                        add(("GET", "", 404), send(addr, &format!("GET /nope/{n}"), ""));
                    }
                    add(("_OTHER", "/users/{id}", 405), send(addr, "BREW /users/1", ""));
                    tally
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut expected = Tally::new();
    for tally in sent {
        for (k, (n, bytes)) in tally {
            let e = expected.entry(k).or_default();
            e.0 += n;
            e.1 += bytes;
        }
    }

    for (&(method, route, status), &(count, bytes)) in &expected {
        let code = status.to_string();
        let labels = [method, route, code.as_str()];
        let (n, seconds) = histogram(&registry, hotmeter_tower::REQUEST_DURATION, &labels);
        assert_eq!(n, count, "requests {labels:?}");
        assert!(seconds > 0.0 && seconds < 60.0, "{labels:?}: {seconds} s");
        let (n, size) = histogram(&registry, hotmeter_tower::RESPONSE_BODY_SIZE, &labels);
        assert_eq!((n, size), (count, bytes as f64), "body sizes {labels:?}");
    }
    // Only those label sets: the raw paths never became labels.
    let snap = registry.snapshot();
    let family = snap.family(hotmeter_tower::REQUEST_DURATION).unwrap();
    assert_eq!(
        family.series.len(),
        expected.len(),
        "{:?}",
        family.series.iter().map(|s| &s.labels).collect::<Vec<_>>()
    );
    for method in ["GET", "POST", "_OTHER"] {
        assert_eq!(snap.value(hotmeter_tower::ACTIVE_REQUESTS, &[method]), Some(&OwnedValue::IntGauge(0)), "{method}");
    }
    let mut text = Vec::new();
    hotmeter_format::encode_text(&registry, &mut text);
    let text = String::from_utf8(text).unwrap();
    let line = format!(
        "http_server_request_duration_seconds_count{{http_request_method=\"POST\",http_route=\"/items\",http_response_status_code=\"201\"}} {}\n",
        CLIENTS * ROUNDS
    );
    assert!(text.contains(&line), "no {line:?} in\n{text}");
    drop(rt);
}

/// A request still being handled is active; once its head is made it is
/// not.
#[test]
fn active_requests_go_up_while_handled_and_back_to_zero() {
    let registry = Registry::new();
    let (release, released) = tokio::sync::watch::channel(false);
    let router = Router::new()
        .route(
            "/slow",
            get(move || {
                let mut released = released.clone();
                async move {
                    let _ = released.wait_for(|r| *r).await;
                    "done"
                }
            }),
        )
        .layer(HttpMetricsLayer::for_axum(&registry).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, router).await.unwrap() });

    let clients: Vec<_> = (0..3).map(|_| std::thread::spawn(move || send(addr, "GET /slow", ""))).collect();
    let active = || match registry.snapshot().value(hotmeter_tower::ACTIVE_REQUESTS, &["GET"]) {
        Some(OwnedValue::IntGauge(n)) => *n,
        _ => 0,
    };
    hotmeter_testkit::wait_for("three active requests", Duration::from_secs(10), || (active() == 3).then_some(()));
    release.send(true).unwrap();
    for c in clients {
        assert_eq!(c.join().unwrap(), (200, 4));
    }
    assert_eq!(active(), 0);
    assert_eq!(histogram(&registry, hotmeter_tower::REQUEST_DURATION, &["GET", "/slow", "200"]).0, 3);
    drop(rt);
}
