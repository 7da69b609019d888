//! The OTLP client: remote_write's delivery with the OTLP encoder. Into a
//! real VictoriaMetrics (values exact, accounting closed at shutdown), and
//! against scripted receivers for the faults: 429 with `Retry-After`
//! retried no sooner than asked, 400 never retried, a receiver that never
//! answers given up at the shutdown deadline, and the queue's bound while
//! the receiver is down.

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

/// A refusal of native histograms is remote_write's to fall back from;
/// OTLP sends exponential histograms as they are, so such an answer is
/// read by its status: a 500 is retried, and the next answer stores it.
#[test]
fn a_native_histogram_refusal_is_retried_by_its_status() {
    let (addr, got) =
        receiver::scripted_with_bodies(vec![(500, "", "native histograms are disabled\n"), (200, "", "")]);
    let registry = Registry::new();
    registry.native_histogram("rt_seconds", "RT.", hotmeter::NativeOpts::new()).unwrap().observe(0.5);
    registry.counter("jobs_total", "Jobs.").unwrap().inc();
    let exporter = OtlpPush::new(format!("http://{addr}/v1/metrics"))
        .service_name("refusal")
        .interval(Duration::from_secs(3600))
        .backoff(Duration::from_millis(10), Duration::from_millis(20))
        .start(&registry)
        .unwrap();
    wait_for("the retry stored", Duration::from_secs(10), || (exporter.stats().sent > 0).then_some(()));
    let got = got.lock().unwrap();
    assert_eq!(got[0].body, got[1].body, "the same export, sent again");
    drop(got);
    let stats = exporter.shutdown(Duration::from_secs(2));
    assert!(stats.accounted(), "{stats:?}");
    assert!(stats.retried > 0 && stats.failed == 0 && !stats.native_histograms_refused, "{stats:?}");
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
