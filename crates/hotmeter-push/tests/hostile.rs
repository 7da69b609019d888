//! Receivers that misbehave on purpose: one that accepts the connection
//! and never answers, one that trickles its answer, one that asks for a
//! `Retry-After` of days. Shutdown keeps its deadline against each of
//! them and every sample stays accounted for.
//!
//! These receivers open raw sockets because they send broken or stalled
//! HTTP on purpose.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hotmeter::Registry;
use hotmeter_push::RemoteWrite;
use hotmeter_testkit::{receiver, wait_for};

/// A loopback listener that hands every accepted connection to `serve` on
/// its own thread; counts connections.
fn raw_receiver(serve: fn(TcpStream)) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || serve(conn));
        }
    });
    (addr, accepted)
}

/// Reads the request and never answers (for at most a minute).
fn never_answer(mut conn: TcpStream) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
    let mut buf = [0u8; 4096];
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        if matches!(conn.read(&mut buf), Ok(0) | Err(_)) {
            return;
        }
    }
}

/// Answers 200 with a long body, one byte a second.
fn trickle(mut conn: TcpStream) {
    let mut buf = [0u8; 4096];
    let _ = conn.read(&mut buf);
    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
    for _ in 0..60 {
        if conn.write_all(b"x").is_err() {
            return;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Answers 503 asking to come back in about eleven days.
fn retry_in_days(mut conn: TcpStream) {
    let mut buf = [0u8; 1 << 16];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let reply = "HTTP/1.1 503 Busy\r\nRetry-After: 999999\r\nContent-Length: 0\r\n\r\n";
                if conn.write_all(reply.as_bytes()).is_err() {
                    return;
                }
            }
        }
    }
}

/// Starts a client with the default 10 s attempt timeout against `addr`,
/// waits until its first request is on the wire, then shuts it down with
/// a 500 ms deadline: it must return well before the attempt timeout.
fn shutdown_keeps_its_deadline(addr: &str, accepted: &AtomicUsize) {
    let registry = Registry::new();
    registry.counter("hostile_total", "H.").unwrap().inc_by(3);
    let writer = RemoteWrite::new(format!("http://{addr}/api/v1/write"))
        .interval(Duration::from_secs(3600))
        .start(&registry)
        .unwrap();
    wait_for("the first request", Duration::from_secs(10), || (accepted.load(Ordering::SeqCst) > 0).then_some(()));
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let stats = writer.shutdown(Duration::from_millis(500));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "shutdown with a 500 ms deadline took {took:?}");
    assert_eq!(stats.sent, 0, "{stats:?}");
    assert!(stats.accounted() && stats.dropped == stats.samples, "{stats:?}");
    // Its own metrics agree: nothing counted twice by a late answer.
    std::thread::sleep(Duration::from_millis(100));
    let snap = registry.snapshot();
    let counter = |name: &str| match snap.value(name, &[]) {
        Some(hotmeter::OwnedValue::Counter(v)) => *v,
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(counter("remote_write_samples_dropped_total"), stats.dropped);
    assert_eq!(counter("remote_write_samples_sent_total"), 0);
}

#[test]
fn a_receiver_that_never_answers_does_not_hold_shutdown() {
    let (addr, accepted) = raw_receiver(never_answer);
    shutdown_keeps_its_deadline(&addr, &accepted);
}

#[test]
fn a_trickling_answer_does_not_hold_shutdown() {
    let (addr, accepted) = raw_receiver(trickle);
    shutdown_keeps_its_deadline(&addr, &accepted);
}

#[test]
fn a_retry_after_of_days_does_not_hold_shutdown() {
    let (addr, accepted) = raw_receiver(retry_in_days);
    shutdown_keeps_its_deadline(&addr, &accepted);
}

/// A batch job is not put to sleep for days: a `Retry-After` longer than
/// the attempt timeout ends the retries at once with the 503.
#[test]
fn a_pushgateway_asking_for_days_fails_the_push_at_once() {
    let (addr, got) = receiver::scripted(vec![(503, "Retry-After: 999999\r\n")]);
    let registry = Registry::new();
    registry.counter("batch_rows_total", "Rows.").unwrap().inc();
    let gateway = hotmeter_push::Pushgateway::new(&format!("http://{addr}")).unwrap();
    let key = hotmeter_push::GroupingKey::new("batch").unwrap();
    let started = Instant::now();
    let result = gateway.push(&registry, &key);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "the push took {took:?}");
    assert!(matches!(result, Err(hotmeter_push::SendError::Unavailable { status: 503, attempts: 1 })), "{result:?}");
    assert_eq!(got.lock().unwrap().len(), 1);
}
