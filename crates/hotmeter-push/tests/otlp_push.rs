//! The OTLP client: remote_write's delivery with the OTLP encoder. Into a
//! real VictoriaMetrics (values exact, accounting closed at shutdown), and
//! against scripted receivers for the faults: 429 with `Retry-After`
//! retried no sooner than asked, 400 never retried, a receiver that never
//! answers given up at the shutdown deadline, the queue's bound while
//! the receiver is down for 30 s and its drain once it is back, OTLP's
//! own retry rule, partial successes, and gzip bodies.

use std::time::{Duration, Instant};

use hotmeter::{OwnedValue, Registry};
use hotmeter_push::otlp_proto::{ExportMetricsServiceRequest, metric::Data, number_data_point};
use hotmeter_push::{OtlpPush, Temporality};
use hotmeter_testkit::{VictoriaMetrics, promql, receiver, wait_for};
use prost::Message;

fn counter_value(body: &[u8], name: &str) -> Option<i64> {
    let request = ExportMetricsServiceRequest::decode(body).expect("an OTLP body");
    let metric = request.resource_metrics[0].scope_metrics[0].metrics.iter().find(|m| m.name == name)?;
    match &metric.data {
        Some(Data::Sum(s)) => match s.data_points[0].value {
            Some(number_data_point::Value::AsInt(v)) => Some(v),
            _ => None,
        },
        _ => None,
    }
}

#[test]
fn exports_on_schedule_into_victoria_metrics_and_accounts_for_every_point() {
    let vm = VictoriaMetrics::start();
    let registry = Registry::new();
    let jobs = registry.counter("jobs_total", "Jobs run.").unwrap();
    jobs.inc_by(3);
    let exporter = OtlpPush::new(format!("http://{}/opentelemetry/v1/metrics", vm.addr()))
        .service_name("otlp-push-test")
        .attribute("deployment.environment.name", "ci")
        .interval(Duration::from_millis(200))
        .start(&registry)
        .unwrap();
    let query = "jobs_total";
    wait_for("the first export stored", Duration::from_secs(30), || {
        (promql::scalar(vm.addr(), query) == Some(3.0)).then_some(())
    });
    jobs.inc_by(4);
    wait_for("a later export stored", Duration::from_secs(30), || {
        (promql::scalar(vm.addr(), query) == Some(7.0)).then_some(())
    });
    let stats = exporter.shutdown(Duration::from_secs(5));
    assert!(stats.accounted(), "{stats:?}");
    assert_eq!((stats.failed, stats.dropped), (0, 0), "{stats:?}");
    assert!(stats.snapshots >= 2 && stats.sent == stats.samples, "{stats:?}");
    // The client's own metrics, in the registry it exports.
    let snap = registry.snapshot();
    let own = |name: &str| match snap.value(name, &[]) {
        Some(OwnedValue::Counter(v)) => *v,
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(own("otlp_data_points_total"), stats.samples);
    assert_eq!(own("otlp_data_points_sent_total"), stats.sent);
    assert!(snap.value("remote_write_samples_total", &[]).is_none(), "OTLP's own names, not remote_write's");
}

/// The receiver down for 30 s, then back (gzip bodies, which
/// VictoriaMetrics reads): while it is down the queue keeps its bound and
/// drops its oldest exports, counted; once it is up the queue drains, the
/// latest total is stored exactly, and every point is sent, failed or
/// dropped.
#[test]
fn a_receiver_down_for_30_s_then_back_gets_the_latest_totals() {
    // Held bound, not listening: refused as a receiver that is down, and
    // no other test's server can take the port before VictoriaMetrics does.
    let port = hotmeter_testkit::ClosedPort::new();
    let addr = port.addr().to_owned();
    let registry = Registry::new();
    let jobs = registry.counter("jobs_total", "Jobs run.").unwrap();
    let exporter = OtlpPush::new(format!("http://{addr}/opentelemetry/v1/metrics"))
        .service_name("otlp-outage")
        .gzip(true)
        .interval(Duration::from_millis(500))
        .queue_capacity(5)
        .backoff(Duration::from_millis(100), Duration::from_millis(500))
        .start(&registry)
        .unwrap();
    let down = Instant::now();
    while down.elapsed() < Duration::from_secs(30) {
        jobs.inc_by(3);
        std::thread::sleep(Duration::from_millis(250));
    }
    let during = exporter.stats();
    assert_eq!(during.sent, 0, "{during:?}");
    assert!(during.dropped > 0 && during.max_queue_len <= 5, "the bound held, the oldest dropped: {during:?}");
    assert!(during.retried > 0, "{during:?}");
    drop(port);
    let vm = hotmeter_testkit::VictoriaMetrics::start_on(&addr);
    let total = jobs.get() as f64;
    wait_for("the latest total stored", Duration::from_secs(60), || {
        (promql::scalar(vm.addr(), "jobs_total") == Some(total)).then_some(())
    });
    let after = wait_for("the queue drained", Duration::from_secs(30), || {
        let stats = exporter.stats();
        (stats.queue_len == 0).then_some(stats)
    });
    assert!(after.sent > 0 && after.failed == 0, "{after:?}");
    let started = Instant::now();
    let stats = exporter.shutdown(Duration::from_secs(5));
    assert!(started.elapsed() < Duration::from_secs(6), "shutdown took {:?}", started.elapsed());
    assert!(stats.accounted(), "{stats:?}");
    assert_eq!(stats.failed, 0, "{stats:?}");
}

#[test]
fn a_429_is_retried_after_its_retry_after_and_a_400_is_not_retried() {
    let (addr, got) = receiver::scripted(vec![(429, "Retry-After: 1\r\n"), (200, ""), (400, "")]);
    let registry = Registry::new();
    registry.counter("jobs_total", "Jobs.").unwrap().inc_by(5);
    let exporter = OtlpPush::new(format!("http://{addr}/v1/metrics"))
        .service_name("faults")
        .interval(Duration::from_secs(3600))
        .backoff(Duration::from_millis(10), Duration::from_millis(20))
        .start(&registry)
        .unwrap();
    wait_for("the retry", Duration::from_secs(10), || (got.lock().unwrap().len() >= 2).then_some(()));
    {
        let got = got.lock().unwrap();
        let gap = got[1].at.duration_since(got[0].at);
        assert!(gap >= Duration::from_secs(1), "retried after {gap:?}, Retry-After asked for 1 s");
        assert_eq!(got[0].path, "/v1/metrics");
        assert_eq!(got[0].header("content-type"), Some("application/x-protobuf"));
        assert_eq!(got[0].body, got[1].body, "the same export, sent again");
        assert_eq!(counter_value(&got[0].body, "jobs_total"), Some(5));
    }
    // The next export is refused with 400: failed, not retried.
    exporter.push_now();
    wait_for("the refused export", Duration::from_secs(10), || (exporter.stats().failed > 0).then_some(()));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(got.lock().unwrap().len(), 3, "a 400 is never sent again");
    let stats = exporter.shutdown(Duration::from_secs(2));
    assert!(stats.accounted(), "{stats:?}");
    assert!(stats.retried > 0 && stats.rejected_requests >= 1 && stats.last_error_status == Some(400), "{stats:?}");
}

#[test]
fn a_receiver_that_never_answers_is_given_up_at_the_deadline() {
    // Answers only after 60 s: every attempt times out.
    let (addr, _got) = receiver::scripted_after(Duration::from_secs(60), vec![(200, "", "")]);
    let registry = Registry::new();
    registry.counter("jobs_total", "Jobs.").unwrap().inc();
    let exporter = OtlpPush::new(format!("http://{addr}/v1/metrics"))
        .service_name("silent")
        .interval(Duration::from_millis(50))
        .timeout(Duration::from_secs(30))
        .queue_capacity(3)
        .start(&registry)
        .unwrap();
    let during = wait_for("a full queue's oldest export dropped and counted", Duration::from_secs(10), || {
        let stats = exporter.stats();
        (stats.dropped > 0).then_some(stats)
    });
    assert!(during.max_queue_len <= 3, "{during:?}");
    let started = Instant::now();
    let stats = exporter.shutdown(Duration::from_millis(500));
    assert!(started.elapsed() < Duration::from_secs(2), "shutdown took {:?}", started.elapsed());
    assert!(stats.accounted(), "{stats:?}");
    assert_eq!(stats.sent, 0);
}

/// OTLP/HTTP's retry rule: 429, 502, 503 and 504 are retried, every other
/// 4xx and 5xx is not (500 included, unlike remote_write). A refusal of
/// native histograms is remote_write's to fall back from; OTLP sends
/// exponential histograms as they are, so such an answer is read by its
/// status too.
#[test]
fn otlp_retries_429_502_503_504_and_no_other_status() {
    let (addr, got) = receiver::scripted_with_bodies(vec![
        (500, "", "native histograms are disabled\n"),
        (502, "", ""),
        (503, "", ""),
        (504, "", ""),
        (200, "", ""),
        (501, "", ""),
        (200, "", ""),
    ]);
    let registry = Registry::new();
    registry.native_histogram("rt_seconds", "RT.", hotmeter::NativeOpts::new()).unwrap().observe(0.5);
    registry.counter("jobs_total", "Jobs.").unwrap().inc();
    let exporter = OtlpPush::new(format!("http://{addr}/v1/metrics"))
        .service_name("statuses")
        .interval(Duration::from_secs(3600))
        .backoff(Duration::from_millis(10), Duration::from_millis(20))
        .start(&registry)
        .unwrap();
    let got_len = |got: &std::sync::Arc<std::sync::Mutex<Vec<receiver::Received>>>| got.lock().unwrap().len();
    wait_for("the 500", Duration::from_secs(10), || (exporter.stats().failed > 0).then_some(()));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(got_len(&got), 1, "a 500 is not retried under OTLP's rule");
    let first = exporter.stats();
    assert_eq!((first.rejected_requests, first.last_error_status, first.retried), (1, Some(500), 0), "{first:?}");
    assert!(!first.native_histograms_refused, "OTLP has no classic fallback");
    // 502, 503 and 504 are retried; the fourth attempt is stored.
    exporter.push_now();
    wait_for("the retries stored", Duration::from_secs(10), || (exporter.stats().sent > 0).then_some(()));
    {
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 5);
        assert!(got[1..5].windows(2).all(|w| w[0].body == w[1].body), "the same export, sent again");
    }
    // 501: not retried either.
    exporter.push_now();
    wait_for("the 501", Duration::from_secs(10), || (exporter.stats().rejected_requests == 2).then_some(()));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(got_len(&got), 6, "a 501 is not retried");
    let stats = exporter.shutdown(Duration::from_secs(2));
    assert!(stats.accounted(), "{stats:?}");
    // Every export holds as many points (the registry's two and the
    // client's own otlp_* series): three retries of one of them.
    assert_eq!(stats.retried, 3 * (stats.samples / stats.snapshots), "{stats:?}");
}

/// A `200` whose `ExportMetricsServiceResponse` says some points were
/// refused (a partial success): those count as failed, the rest as sent.
#[test]
fn a_partial_success_counts_the_refused_points_as_failed() {
    // partial_success { rejected_data_points: 1, error_message: "bad" }
    const PARTIAL: &str = "\n\u{7}\u{8}\u{1}\u{12}\u{3}bad";
    let decoded = hotmeter_push::otlp_proto::ExportMetricsServiceResponse::decode(PARTIAL.as_bytes()).unwrap();
    let partial = decoded.partial_success.unwrap();
    assert_eq!((partial.rejected_data_points, partial.error_message.as_str()), (1, "bad"));
    let (addr, got) = receiver::scripted_with_bodies(vec![(200, "", PARTIAL), (200, "", "")]);
    let registry = Registry::new();
    registry.counter("jobs_total", "Jobs.").unwrap().inc();
    registry.gauge("depth", "Depth.").unwrap().set(2.0);
    let exporter = OtlpPush::new(format!("http://{addr}/v1/metrics"))
        .service_name("partial")
        .interval(Duration::from_secs(3600))
        .start(&registry)
        .unwrap();
    wait_for("the first export", Duration::from_secs(10), || (exporter.stats().sent > 0).then_some(()));
    let first = exporter.stats();
    assert_eq!(
        (first.sent, first.failed, first.partially_refused_requests),
        (first.samples - 1, 1, 1),
        "one point refused, the rest sent: {first:?}"
    );
    exporter.push_now();
    wait_for("the second export", Duration::from_secs(10), || (got.lock().unwrap().len() >= 2).then_some(()));
    let stats = exporter.shutdown(Duration::from_secs(2));
    assert!(stats.accounted(), "{stats:?}");
    assert_eq!(stats.partially_refused_requests, 1, "a plain 200 refused nothing: {stats:?}");
    assert_eq!(stats.failed, 1, "{stats:?}");
}

/// `gzip(true)`: `Content-Encoding: gzip`, and the body is the export,
/// gzipped.
#[test]
fn gzip_bodies_decompress_to_the_export() {
    use std::io::Read;
    let (addr, got) = receiver::scripted(vec![(200, "")]);
    let registry = Registry::new();
    registry.counter("jobs_total", "Jobs.").unwrap().inc_by(42);
    let exporter = OtlpPush::new(format!("http://{addr}/v1/metrics"))
        .service_name("gzip")
        .gzip(true)
        .interval(Duration::from_secs(3600))
        .start(&registry)
        .unwrap();
    wait_for("the export", Duration::from_secs(10), || (!got.lock().unwrap().is_empty()).then_some(()));
    let got = got.lock().unwrap();
    assert_eq!(got[0].header("content-encoding"), Some("gzip"));
    assert_eq!(got[0].header("content-type"), Some("application/x-protobuf"));
    let mut body = Vec::new();
    flate2::read::GzDecoder::new(&got[0].body[..]).read_to_end(&mut body).unwrap();
    assert_eq!(counter_value(&body, "jobs_total"), Some(42));
    drop(got);
    assert!(exporter.shutdown(Duration::from_secs(2)).accounted());
}

#[test]
fn delta_exports_reach_the_receiver_as_changes() {
    let (addr, got) = receiver::scripted(vec![(200, "")]);
    let registry = Registry::new();
    let jobs = registry.counter("jobs_total", "Jobs.").unwrap();
    jobs.inc_by(10);
    let exporter = OtlpPush::new(format!("http://{addr}/v1/metrics"))
        .service_name("delta")
        .temporality(Temporality::Delta)
        .interval(Duration::from_secs(3600))
        .start(&registry)
        .unwrap();
    wait_for("the first export", Duration::from_secs(10), || (!got.lock().unwrap().is_empty()).then_some(()));
    jobs.inc_by(4);
    exporter.push_now();
    wait_for("the second export", Duration::from_secs(10), || (got.lock().unwrap().len() >= 2).then_some(()));
    let got = got.lock().unwrap();
    assert_eq!(counter_value(&got[0].body, "jobs_total"), Some(10));
    assert_eq!(counter_value(&got[1].body, "jobs_total"), Some(4), "only what changed since the export before");
    drop(got);
    assert!(exporter.shutdown(Duration::from_secs(2)).accounted());
}

/// The README's OTLP snippet as written (its URL pointed at a receiver
/// here), so the README stays true.
#[test]
fn readme_otlp_snippet() -> Result<(), Box<dyn std::error::Error>> {
    use std::io::Read;
    let (addr, got) = receiver::scripted(vec![(200, "")]);
    let registry = Registry::new();
    registry.counter("checkpoint_writes_total", "Writes.")?.inc();
    let exporter = hotmeter_push::OtlpPush::new(format!("http://{addr}/v1/metrics")) // VictoriaMetrics: .../opentelemetry/v1/metrics
        .service_name("checkpointer")
        .attribute("deployment.environment.name", "prod") // resource attributes
        .gzip(true) // optional: Content-Encoding: gzip
        .start(&registry)?; // otlp_* metrics count every data point
    let stats = exporter.shutdown(std::time::Duration::from_secs(5));
    assert!(stats.accounted() && stats.sent > 0 && stats.failed == 0, "{stats:?}");
    let got = got.lock().unwrap();
    let mut body = Vec::new();
    flate2::read::GzDecoder::new(&got[0].body[..]).read_to_end(&mut body)?;
    let request = ExportMetricsServiceRequest::decode(&body[..])?;
    let resource = request.resource_metrics[0].resource.as_ref().expect("a resource");
    let keys: Vec<_> = resource.attributes.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["service.name", "service.instance.id", "deployment.environment.name"]);
    assert_eq!(counter_value(&body, "checkpoint_writes_total"), Some(1));
    Ok(())
}
