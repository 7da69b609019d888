//! The remote_write client against Debian's Prometheus started with
//! `--web.enable-remote-write-receiver` on a loopback port: received
//! values equal pushed values exactly, histograms arrive complete with
//! their external labels; and a 30 s outage of the receiver (killed, then
//! restarted on its data) costs counted drops, never an unbounded queue
//! or a lost count; a series that ends is gone from queries at once (its
//! stale marker).
//!
//! Needs Debian's `prometheus` (the test command installs it); without it
//! these tests fail and say so.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hotmeter::{Buckets, Counter, Registry, SummaryOpts};
use hotmeter_push::RemoteWrite;
use hotmeter_testkit::promql::{query, scalar};
use hotmeter_testkit::{Prometheus, wait_for};

hotmeter::label_enum! {
    /// Outcome of a write.
    pub enum Status: "status" { Ok = "ok", Error = "error" }
}

#[test]
fn received_values_equal_pushed_values() {
    let receiver = Prometheus::builder("prometheus").remote_write_receiver().start();
    let prom = receiver.addr();

    let registry = Registry::new();
    let writes: hotmeter::Family<Status, Counter> =
        registry.typed_family("pushed_writes_total", "Writes by outcome.", Counter::new).unwrap();
    writes.get(Status::Ok).inc_by(123_456_789);
    writes.get(Status::Error).inc_by(5);
    let latency =
        registry.histogram("pushed_latency_seconds", "Latency.", Buckets::new([0.01, 0.1, 1.0]).unwrap()).unwrap();
    for v in [0.005, 0.05, 0.06, 0.5, 5.0] {
        latency.observe(v);
    }
    let sizes = registry.summary("pushed_size_bytes", "Sizes.", SummaryOpts::default()).unwrap();
    sizes.observe(100.0);

    let writer = RemoteWrite::new(format!("http://{prom}/api/v1/write"))
        .interval(Duration::from_secs(3600))
        .job("push-test")
        .instance("host-1:9898")
        .external_label("region", "eu")
        .start(&registry)
        .unwrap();
    writes.get(Status::Ok).inc_by(11); // reaches Prometheus with the last snapshot
    let stats = writer.shutdown(Duration::from_secs(20));
    assert_eq!((stats.sent, stats.failed, stats.dropped), (stats.samples, 0, 0), "{stats:?}");

    let sel = r#"{job="push-test",instance="host-1:9898",region="eu"}"#;
    let ok = wait_for("the pushed counter", Duration::from_secs(30), || {
        scalar(prom, &format!("pushed_writes_total{{status=\"ok\",{}", &sel[1..]))
    });
    assert_eq!(ok, 123_456_800.0, "exact, and the last snapshot's");
    assert_eq!(scalar(prom, &format!("pushed_writes_total{{status=\"error\",{}", &sel[1..])), Some(5.0));

    // Every bucket, cumulative, with the exposition's `le` spelling.
    let mut buckets: Vec<(String, f64)> = query(prom, &format!("pushed_latency_seconds_bucket{sel}"))
        .iter()
        .map(|s| (s["metric"]["le"].as_str().unwrap().to_owned(), s["value"][1].as_str().unwrap().parse().unwrap()))
        .collect();
    buckets.sort_by(|a, b| a.1.total_cmp(&b.1));
    let want = [("0.01", 1.0), ("0.1", 3.0), ("1.0", 4.0), ("+Inf", 5.0)];
    assert_eq!(buckets, want.map(|(l, v)| (l.to_owned(), v)), "buckets");
    assert_eq!(scalar(prom, &format!("pushed_latency_seconds_count{sel}")), Some(5.0));
    assert_eq!(scalar(prom, &format!("pushed_latency_seconds_sum{sel}")), Some(0.005 + 0.05 + 0.06 + 0.5 + 5.0));
    assert_eq!(scalar(prom, &format!("pushed_size_bytes_count{sel}")), Some(1.0));
    let quantiles = query(prom, &format!("pushed_size_bytes{sel}"));
    assert_eq!(quantiles.len(), SummaryOpts::default().quantiles.len(), "{quantiles:?}");
    // The client's own metrics travel too, with the same labels.
    let capacity = scalar(prom, &format!("remote_write_queue_capacity{sel}"));
    assert_eq!(capacity, Some(hotmeter_push::DEFAULT_QUEUE_CAPACITY as f64));
}

#[test]
fn a_30_second_outage_is_counted_and_bounded() {
    // Its data outlives the first process: the restart picks it up.
    let dir = tempfile::tempdir().unwrap();
    let receiver = || Prometheus::builder("prometheus").remote_write_receiver().dir(dir.path());
    let first = receiver().start();
    let prom = first.addr().to_owned();

    let registry = Registry::new();
    let work = registry.counter("outage_work_total", "Work done.").unwrap();
    const CAPACITY: usize = 6;
    let writer = RemoteWrite::new(format!("http://{prom}/api/v1/write"))
        .interval(Duration::from_millis(250))
        .queue_capacity(CAPACITY)
        .backoff(Duration::from_millis(100), Duration::from_secs(2))
        .timeout(Duration::from_secs(2))
        .job("outage")
        .start(&registry)
        .unwrap();

    // Recording goes on through the outage (bounded: at most 100,000 increments).
    let recording = Arc::new(AtomicBool::new(true));
    let recorder = {
        let (work, recording) = (work.clone(), recording.clone());
        std::thread::spawn(move || {
            for _ in 0..100_000 {
                if !recording.load(Ordering::Relaxed) {
                    break;
                }
                work.inc();
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };

    wait_for("a first delivery", Duration::from_secs(30), || (writer.stats().sent > 0).then_some(()));
    drop(first); // killed
    let down = Instant::now();
    while down.elapsed() < Duration::from_secs(30) {
        let s = writer.stats();
        assert!(s.queue_len <= CAPACITY && s.max_queue_len <= CAPACITY, "queue past its bound: {s:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let during = writer.stats();
    assert!(during.dropped > 0 && during.retried > 0, "an outage this long drops and retries: {during:?}");

    let _restarted = receiver().listen(&prom).start();
    wait_for("deliveries after the restart", Duration::from_secs(60), || {
        (writer.stats().sent > during.sent).then_some(())
    });
    recording.store(false, Ordering::Relaxed);
    recorder.join().unwrap();
    let produced_work = work.get();
    let stats = writer.shutdown(Duration::from_secs(20));

    assert!(stats.max_queue_len <= CAPACITY, "{stats:?}");
    assert_eq!(stats.failed, 0, "{stats:?}");
    assert_eq!(stats.sent + stats.dropped, stats.samples, "sent + dropped == produced: {stats:?}");
    // The last snapshot made it: Prometheus holds the final count exactly.
    let received = wait_for("the final count", Duration::from_secs(30), || {
        scalar(&prom, r#"outage_work_total{job="outage"}"#).filter(|v| *v == produced_work as f64)
    });
    assert_eq!(received, produced_work as f64);
}

/// Waits until `snapshots` snapshots are taken and every one delivered.
fn delivered(writer: &hotmeter_push::RemoteWriteHandle, snapshots: u64) -> hotmeter_push::PushStats {
    wait_for("the requests delivered", Duration::from_secs(30), || {
        let s = writer.stats();
        (s.snapshots == snapshots && s.queue_len == 0 && s.sent == s.samples).then_some(s)
    })
}

/// A pushed series that ends (removed from its family) is marked stale in
/// the next request, and Debian's Prometheus stops returning it at once:
/// an instant query right after that request has no result, where without
/// the marker it would return the last value for the 5 minutes of its
/// lookback (as the series that stays shows). Its history stays, and a
/// series that comes back is returned again.
#[test]
fn an_ended_series_is_gone_at_once_not_after_the_lookback() {
    let receiver = Prometheus::builder("prometheus").remote_write_receiver().start();
    let prom = receiver.addr();
    let registry = Registry::new();
    let jobs = registry.labeled_family("tenant_jobs_total", "Jobs by tenant.", &["tenant"], Counter::new).unwrap();
    jobs.with(&["t1"], |c| c.inc_by(3)).unwrap();
    jobs.with(&["t2"], |c| c.inc_by(4)).unwrap();
    let writer = RemoteWrite::new(format!("http://{prom}/api/v1/write"))
        .interval(Duration::from_secs(3600))
        .job("stale-test")
        .start(&registry)
        .unwrap();
    let delivered = |snapshots: u64| delivered(&writer, snapshots);
    assert_eq!(delivered(1).stale_markers, 0);
    let t1 = r#"tenant_jobs_total{job="stale-test",tenant="t1"}"#;
    let t2 = r#"tenant_jobs_total{job="stale-test",tenant="t2"}"#;
    assert_eq!(scalar(prom, t1), Some(3.0));
    assert_eq!(scalar(prom, t2), Some(4.0));

    assert!(jobs.remove(&["t1"]).unwrap());
    writer.push_now();
    let stats = delivered(2);
    assert_eq!((stats.stale_markers, stats.failed + stats.dropped), (1, 0), "{stats:?}");
    assert!(query(prom, t1).is_empty(), "t1 ended: no result at once, not its last value for 5 minutes");
    assert_eq!(scalar(prom, t2), Some(4.0), "the series that stays is still returned");
    assert_eq!(scalar(prom, &format!("last_over_time({t1}[1h])")), Some(3.0), "its history stays");

    jobs.with(&["t1"], |c| c.inc()).unwrap();
    writer.push_now();
    assert_eq!(delivered(3).stale_markers, 1, "nothing more ended");
    assert!(scalar(prom, t1).is_some(), "a series that comes back is returned again");
    let stats = writer.shutdown(Duration::from_secs(20));
    assert!(stats.accounted(), "{stats:?}");
}

/// The same for a series that expires: idle for the registry's timeout, it
/// is pushed one last time with its final value, then marked stale, and
/// Debian's Prometheus stops returning it at once while the busy series
/// stays.
#[test]
fn an_expired_series_is_gone_at_once_not_after_the_lookback() {
    let receiver = Prometheus::builder("prometheus").remote_write_receiver().start();
    let prom = receiver.addr();
    let registry = Registry::builder().idle_timeout(Duration::from_millis(300)).build().unwrap();
    let jobs = registry.labeled_family("idle_jobs_total", "Jobs by tenant.", &["tenant"], Counter::new).unwrap();
    jobs.with(&["quiet"], |c| c.inc_by(3)).unwrap();
    jobs.with(&["busy"], |c| c.inc()).unwrap();
    let writer = RemoteWrite::new(format!("http://{prom}/api/v1/write"))
        .interval(Duration::from_secs(3600))
        .job("expiry-test")
        .start(&registry)
        .unwrap();
    let delivered = |snapshots: u64| delivered(&writer, snapshots);
    delivered(1);
    let quiet = r#"idle_jobs_total{job="expiry-test",tenant="quiet"}"#;
    let busy = r#"idle_jobs_total{job="expiry-test",tenant="busy"}"#;
    assert_eq!(scalar(prom, quiet), Some(3.0));

    // Pushes until the quiet series has expired and its marker went out;
    // the busy one records before every push, so it never idles.
    let mut snapshots = 1;
    let stats = wait_for("the quiet series' stale marker", Duration::from_secs(30), || {
        std::thread::sleep(Duration::from_millis(100));
        jobs.with(&["busy"], |c| c.inc()).unwrap();
        writer.push_now();
        snapshots += 1;
        let s = delivered(snapshots);
        (s.stale_markers > 0).then_some(s)
    });
    assert_eq!((stats.stale_markers, stats.failed + stats.dropped), (1, 0), "{stats:?}");
    assert!(query(prom, quiet).is_empty(), "expired: no result at once, not its last value for 5 minutes");
    assert_eq!(scalar(prom, busy), Some(snapshots as f64), "the busy series is returned with its last value");
    assert_eq!(scalar(prom, &format!("last_over_time({quiet}[1h])")), Some(3.0), "its final value was pushed");
    let stats = writer.shutdown(Duration::from_secs(20));
    assert!(stats.accounted(), "{stats:?}");
}
