//! Issue 22, item 3: push never fails silently. A receiver that refuses
//! native histograms turns the client to classic series (said once in the
//! log and in a metric); a receiver that keeps failing is one warning per
//! failure streak and a note when it recovers.
//!
//! One process-wide logger captures the `log` facade; each test reads only
//! the lines that name its own receiver.

use std::sync::Mutex;
use std::time::Duration;

use hotmeter::{NativeOpts, OwnedValue, Registry};
use hotmeter_push::RemoteWrite;
use hotmeter_push::proto::WriteRequest;
use hotmeter_testkit::{receiver, wait_for};
use prost::Message;

static LINES: Mutex<Vec<(log::Level, String)>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        LINES.lock().unwrap().push((record.level(), record.args().to_string()));
    }
    fn flush(&self) {}
}

fn capture() {
    static LOGGER: Capture = Capture;
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}

/// Logged lines that mention `addr`.
fn lines_about(addr: &str) -> Vec<(log::Level, String)> {
    LINES.lock().unwrap().iter().filter(|(_, l)| l.contains(addr)).cloned().collect()
}

fn decode(body: &[u8]) -> WriteRequest {
    let raw = snap::raw::Decoder::new().decompress_vec(body).expect("snappy");
    WriteRequest::decode(raw.as_slice()).expect("protobuf")
}

#[test]
fn a_receiver_without_native_histograms_gets_classic_series() {
    capture();
    let (addr, got) =
        receiver::scripted_with_bodies(vec![(500, "", "native histograms are disabled\n"), (204, "", "")]);
    let registry = Registry::new();
    let h = registry.native_histogram("rt_seconds", "Round trips.", NativeOpts::new()).unwrap();
    for i in 1..=100 {
        h.observe(f64::from(i) * 1e-3);
    }
    // The default mode sends native histograms.
    let writer = RemoteWrite::new(format!("http://{addr}/api/v1/write"))
        .interval(Duration::from_secs(3600))
        .start(&registry)
        .unwrap();
    wait_for("a classic snapshot accepted", Duration::from_secs(20), || (writer.stats().sent > 0).then_some(()));
    let stats = writer.shutdown(Duration::from_secs(10));
    assert!(stats.native_histograms_refused, "{stats:?}");
    assert_eq!(stats.rejected_requests, 1, "refused once, never retried as it was: {stats:?}");
    assert_eq!(stats.retried, 0, "{stats:?}");
    assert!(stats.failed > 0 && stats.sent > 0 && stats.accounted(), "{stats:?}");

    let requests = got.lock().unwrap();
    let first = decode(&requests[0].body);
    assert!(first.timeseries.iter().any(|t| !t.histograms.is_empty()), "the first request held the native histogram");
    for later in &requests[1..] {
        let req = decode(&later.body);
        assert!(req.timeseries.iter().all(|t| t.histograms.is_empty()), "classic only after the refusal");
        let count = req
            .timeseries
            .iter()
            .find(|t| t.labels.iter().any(|l| l.name == "__name__" && l.value == "rt_seconds_count"))
            .expect("rt_seconds_count sent as a classic series");
        assert_eq!(count.samples[0].value, 100.0);
    }
    // Said in the client's own metric and once in the log.
    assert_eq!(
        registry.snapshot().value("remote_write_native_histograms_refused", &[]),
        Some(&OwnedValue::IntGauge(1))
    );
    let warned: Vec<_> =
        lines_about(&addr).into_iter().filter(|(lvl, l)| *lvl == log::Level::Warn && l.contains("native")).collect();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].1.contains("classic series"), "{warned:?}");
}

#[test]
fn a_failure_streak_is_one_warning_and_its_end_one_note() {
    capture();
    let (addr, got) = receiver::scripted(vec![(503, ""), (503, ""), (503, ""), (204, "")]);
    let registry = Registry::new();
    registry.counter("jobs_total", "Jobs.").unwrap().inc();
    let writer = RemoteWrite::new(format!("http://{addr}/api/v1/write"))
        .interval(Duration::from_secs(3600))
        .backoff(Duration::from_millis(10), Duration::from_millis(20))
        .start(&registry)
        .unwrap();
    wait_for("the receiver to recover", Duration::from_secs(20), || (writer.stats().sent > 0).then_some(()));
    let stats = writer.shutdown(Duration::from_secs(10));
    // Three refusals, then the snapshot accepted (and shutdown's last one).
    assert!(got.lock().unwrap().len() >= 4, "{stats:?}");
    assert_eq!(
        stats.retried,
        3 * stats.samples / stats.snapshots,
        "the first snapshot sent three times more: {stats:?}"
    );
    assert!(!stats.native_histograms_refused);
    let lines = lines_about(&addr);
    let warnings: Vec<_> = lines.iter().filter(|(lvl, _)| *lvl == log::Level::Warn).collect();
    assert_eq!(warnings.len(), 1, "one warning for the streak of three: {lines:?}");
    assert!(warnings[0].1.contains("503"), "{warnings:?}");
    let notes: Vec<_> =
        lines.iter().filter(|(lvl, l)| *lvl == log::Level::Info && l.contains("after 3 failed")).collect();
    assert_eq!(notes.len(), 1, "{lines:?}");
}

/// From the review: a refusal that arrives after shutdown began (the
/// sampler has taken its last, native snapshot and ended) still ends in a
/// classic snapshot sent, taken by the sender itself: a short-lived batch
/// job's counts arrive.
#[test]
fn a_refusal_during_shutdown_still_sends_classic_series() {
    capture();
    let (addr, got) = receiver::scripted_after(
        Duration::from_millis(300),
        vec![(500, "", "native histograms are disabled\n"), (204, "", "")],
    );
    let registry = Registry::new();
    registry.native_histogram("rt_seconds", "Round trips.", NativeOpts::new()).unwrap().observe(0.01);
    registry.counter("rows_total", "Rows.").unwrap().inc_by(12_345);
    let writer = RemoteWrite::new(format!("http://{addr}/api/v1/write"))
        .interval(Duration::from_secs(3600))
        .start(&registry)
        .unwrap();
    wait_for("the first request on the wire", Duration::from_secs(10), || {
        (!got.lock().unwrap().is_empty()).then_some(())
    });
    let stats = writer.shutdown(Duration::from_secs(5));
    assert!(stats.native_histograms_refused && stats.sent > 0 && stats.accounted(), "{stats:?}");
    let requests = got.lock().unwrap();
    let last = decode(&requests.last().unwrap().body);
    assert!(last.timeseries.iter().all(|t| t.histograms.is_empty()), "the last request is classic");
    let rows = last
        .timeseries
        .iter()
        .find(|t| t.labels.iter().any(|l| l.name == "__name__" && l.value == "rows_total"))
        .expect("rows_total in the classic snapshot");
    assert_eq!(rows.samples[0].value, 12_345.0);
}
