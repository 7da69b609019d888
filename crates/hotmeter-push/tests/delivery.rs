//! Delivery rules against a loopback receiver whose answers the test
//! scripts: the request's headers and body, 400 never retried, 429 with
//! `Retry-After` retried no sooner than asked, the queue's bound while a
//! receiver fails, strictly increasing snapshot timestamps, and bad
//! settings refused with typed errors.

use std::time::Duration;

use hotmeter::{Counter, Registry};
use hotmeter_push::proto::WriteRequest;
use hotmeter_push::{ConfigError, RemoteWrite};
use hotmeter_testkit::{receiver, wait_for};
use prost::Message;

fn registry_with_writes(n: u64) -> (Registry, Counter) {
    let r = Registry::new();
    let c = r.counter("writes_total", "Writes.").unwrap();
    c.inc_by(n);
    (r, c)
}

fn decode(body: &[u8]) -> WriteRequest {
    let raw = snap::raw::Decoder::new().decompress_vec(body).expect("a snappy block");
    WriteRequest::decode(&raw[..]).expect("a WriteRequest")
}

#[test]
fn headers_body_and_a_400_is_never_retried() {
    let (addr, got) = receiver::scripted(vec![(400, "")]);
    let (registry, _) = registry_with_writes(17);
    let writer = RemoteWrite::new(format!("http://{addr}/api/v1/write"))
        .interval(Duration::from_secs(3600))
        .job("j")
        .instance("i")
        .backoff(Duration::from_millis(10), Duration::from_millis(20))
        .start(&registry)
        .unwrap();
    wait_for("the first push", Duration::from_secs(10), || (!got.lock().unwrap().is_empty()).then_some(()));
    let stats = writer.shutdown(Duration::from_secs(5));
    let got = got.lock().unwrap();
    // The first snapshot and the last one (at shutdown): one request each,
    // never a retry.
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!((stats.retried, stats.rejected_requests, stats.last_error_status), (0, 2, Some(400)));
    assert_eq!((stats.failed, stats.sent, stats.dropped), (stats.samples, 0, 0));
    assert!(stats.accounted() && stats.samples > 0);

    let first = &got[0];
    assert_eq!((first.method.as_str(), first.path.as_str()), ("POST", "/api/v1/write"));
    assert_eq!(first.header("content-encoding"), Some("snappy"));
    assert_eq!(first.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(first.header("x-prometheus-remote-write-version"), Some("0.1.0"));
    assert_eq!(first.header("user-agent"), Some(hotmeter_push::USER_AGENT));
    let req = decode(&first.body);
    let writes = req
        .timeseries
        .iter()
        .find(|s| s.labels.iter().any(|l| l.name == "__name__" && l.value == "writes_total"))
        .expect("writes_total sent");
    let names: Vec<_> = writes.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
    assert_eq!(names, [("__name__", "writes_total"), ("instance", "i"), ("job", "j")]);
    assert_eq!(writes.samples[0].value, 17.0);
    // Every series' labels are sorted by name.
    for s in &req.timeseries {
        assert!(s.labels.windows(2).all(|w| w[0].name < w[1].name), "{:?}", s.labels);
    }
}

#[test]
fn a_429_is_retried_after_its_retry_after() {
    let (addr, got) = receiver::scripted(vec![(429, "Retry-After: 1\r\n"), (200, "")]);
    let (registry, _) = registry_with_writes(3);
    // Backoff alone would retry within 20 ms: any longer gap is Retry-After's.
    let writer = RemoteWrite::new(format!("http://{addr}/api/v1/write"))
        .interval(Duration::from_secs(3600))
        .backoff(Duration::from_millis(10), Duration::from_millis(20))
        .start(&registry)
        .unwrap();
    let (first, second) = wait_for("the retry", Duration::from_secs(10), || {
        let g = got.lock().unwrap();
        (g.len() >= 2).then(|| (g[0].clone(), g[1].clone()))
    });
    let gap = second.at - first.at;
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}, Retry-After asked for 1 s");
    assert_eq!(first.body, second.body, "the same snapshot was sent again");
    let stats = writer.shutdown(Duration::from_secs(5));
    assert_eq!(stats.failed, 0);
    assert!(stats.retried > 0 && stats.accounted(), "{stats:?}");
    assert_eq!(stats.sent, stats.samples);
}

#[test]
fn a_failing_receiver_never_grows_the_queue_past_its_bound() {
    let (addr, got) = receiver::scripted(vec![(503, "")]);
    let (registry, writes) = registry_with_writes(0);
    // A native histogram with classic buckets alongside: one series, one
    // sample per snapshot (its classic buckets are not sent by default).
    let opts = hotmeter::NativeOpts::new().classic(hotmeter::Buckets::new([0.1, 1.0]).unwrap());
    let native = registry.native_histogram("wait_seconds", "Waits.", opts).unwrap();
    for v in [0.05, 0.5, 5.0, -1.0, 0.0] {
        native.observe(v);
    }
    let writer = RemoteWrite::new(format!("http://{addr}/api/v1/write"))
        .interval(Duration::from_millis(20))
        .queue_capacity(3)
        .backoff(Duration::from_millis(50), Duration::from_millis(200))
        .start(&registry)
        .unwrap();
    // Recording goes on meanwhile (bounded: 2,000 increments).
    for _ in 0..2_000 {
        writes.inc();
        if writer.stats().dropped > 0 && got.lock().unwrap().len() >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    wait_for("drops from the full queue", Duration::from_secs(20), || {
        let s = writer.stats();
        assert!(s.queue_len <= 3 && s.max_queue_len <= 3, "{s:?}");
        (s.dropped > 0 && s.retried > 0).then_some(())
    });
    let stats = writer.shutdown(Duration::from_millis(300));
    assert_eq!(stats.max_queue_len, 3, "{stats:?}");
    assert_eq!((stats.sent, stats.failed), (0, 0));
    assert!(stats.accounted(), "samples {} != dropped {}", stats.samples, stats.dropped);
    // The client's own metrics agree with its counts.
    let snap = registry.snapshot();
    let counter = |name: &str| match snap.value(name, &[]) {
        Some(hotmeter::OwnedValue::Counter(v)) => *v,
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(counter("remote_write_samples_dropped_total"), stats.dropped);
    assert_eq!(counter("remote_write_samples_total"), stats.samples);
    assert_eq!(counter("remote_write_samples_retried_total"), stats.retried);
    assert_eq!(snap.value("remote_write_queue_length", &[]), Some(&hotmeter::OwnedValue::IntGauge(0)));
    assert_eq!(snap.value("remote_write_queue_capacity", &[]), Some(&hotmeter::OwnedValue::IntGauge(3)));
    // Every snapshot has the same series; the native histogram is one of
    // them and one sample.
    let first = decode(&got.lock().unwrap()[0].body);
    let histograms: Vec<_> = first.timeseries.iter().filter(|s| !s.histograms.is_empty()).collect();
    assert_eq!(histograms.len(), 1, "{first:?}");
    assert!(histograms[0].samples.is_empty() && histograms[0].histograms.len() == 1);
    let classic = |s: &&hotmeter_push::proto::TimeSeries| {
        s.labels.iter().any(|l| l.name == "__name__" && l.value.starts_with("wait_seconds_"))
    };
    assert!(!first.timeseries.iter().any(|s| classic(&s)), "classic buckets sent by default");
    assert_eq!(stats.samples, stats.snapshots * first.timeseries.len() as u64, "{stats:?}");
}

/// Prometheus refuses a second, different value at a timestamp it holds
/// with a 400 that rolls back the whole request.
#[test]
fn snapshots_never_share_a_timestamp() {
    let (addr, got) = receiver::scripted(vec![(204, "")]);
    let registry = Registry::new();
    let c = registry.counter("ticks_total", "Ticks.").unwrap();
    let writer = RemoteWrite::new(format!("http://{addr}/api/v1/write"))
        .interval(Duration::from_secs(3600))
        .queue_capacity(1000)
        .start(&registry)
        .unwrap();
    // Snapshots asked for back to back: several fall in one millisecond.
    // (Bounded: 2 s or 100 snapshots, whichever comes first.)
    let until = std::time::Instant::now() + Duration::from_secs(2);
    while writer.stats().snapshots < 100 && std::time::Instant::now() < until {
        c.inc();
        writer.push_now();
        std::thread::yield_now();
    }
    let stats = writer.shutdown(Duration::from_secs(10));
    assert!(stats.accounted() && stats.dropped == 0 && stats.snapshots > 10, "{stats:?}");
    let stamps: Vec<i64> =
        got.lock().unwrap().iter().map(|r| decode(&r.body).timeseries[0].samples[0].timestamp).collect();
    assert_eq!(stamps.len() as u64, stats.snapshots);
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "timestamps not strictly increasing: {stamps:?}");
}

#[test]
fn bad_settings_are_typed_errors() {
    let r = Registry::new();
    let err = |w: RemoteWrite| w.start(&r).map(drop).unwrap_err();
    assert!(matches!(err(RemoteWrite::new("not a url")), ConfigError::InvalidUrl { .. }));
    assert!(matches!(err(RemoteWrite::new("127.0.0.1:9090")), ConfigError::UnsupportedUrl { .. }));
    let ok = || RemoteWrite::new("http://127.0.0.1:1/api/v1/write");
    assert!(matches!(err(ok().queue_capacity(1)), ConfigError::QueueCapacity { capacity: 1 }));
    assert!(matches!(err(ok().interval(Duration::ZERO)), ConfigError::Timing { setting: "interval" }));
    assert!(matches!(
        err(ok().backoff(Duration::from_secs(2), Duration::from_secs(1))),
        ConfigError::Timing { setting: "backoff" }
    ));
    let e = err(ok().external_label("bad-name", "x"));
    assert!(matches!(&e, ConfigError::InvalidLabelName { name, .. } if name == "bad-name"));
    assert!(std::error::Error::source(&e).is_some(), "the name error is kept as the source");
    // A name the client's metrics need, taken by another type: a typed error.
    let taken = Registry::new();
    let _gauge = taken.gauge("remote_write_samples_total", "Not a counter.").unwrap();
    assert!(matches!(ok().start(&taken).map(drop).unwrap_err(), ConfigError::Metrics(_)));
    let first = ok().start(&r).unwrap();
    // Nothing listens on port 1: the client neither panics nor blocks shutdown.
    let stats = first.shutdown(Duration::from_millis(200));
    assert!(stats.accounted() && stats.sent == 0, "{stats:?}");
}
