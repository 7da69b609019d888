//! Native histograms over remote_write into Debian's Prometheus 2.42
//! started with `--web.enable-remote-write-receiver` and
//! `--enable-feature=native-histograms` on a loopback port: PromQL's
//! `histogram_count` and `histogram_sum` of the received histogram equal
//! hotmeter's exactly, and its `histogram_quantile` equals
//! [`hotmeter::native_quantile`] of the same snapshot (Prometheus 2.x
//! interpolates linearly within a bucket, as the core does). The registry
//! takes UTF-8 names, so the test also sees them arrive escaped with
//! `underscores`; and a receiver without native histograms takes the
//! classic form.
//!
//! Needs Debian's `prometheus` (the test command installs it); without it
//! these tests fail and say so.

use std::time::Duration;

use hotmeter::{Buckets, NameValidation, NativeOpts, Registry};
use hotmeter_push::{NativeHistograms, RemoteWrite};
use hotmeter_testkit::Prometheus;
use hotmeter_testkit::promql::{query, scalar};
use hotmeter_testkit::wait_for;

/// Known observations: 100 negative, 100 zeros (the zero bucket), 1,800
/// positive from 0.1 ms to about 0.8 s, so the buckets have a negative
/// span, a zero bucket and many positive ones, and the median lies among
/// the positive buckets.
fn observations() -> Vec<f64> {
    let negative = (0..100).map(|i| -0.01 * 1.01f64.powi(i));
    let zeros = std::iter::repeat_n(0.0, 100);
    let positive = (0..1800).map(|i| 1e-4 * 1.005f64.powi(i));
    negative.chain(zeros).chain(positive).collect()
}

#[test]
fn prometheus_receives_native_histograms_and_agrees_on_count_sum_and_quantile() {
    let receiver = Prometheus::builder("prometheus").remote_write_receiver().feature("native-histograms").start();
    let prom = receiver.addr();

    let registry =
        Registry::builder().name_validation(NameValidation::Utf8).const_label("zone.id", "z1").build().unwrap();
    // Classic buckets kept alongside: the default mode does not send them.
    let opts = NativeOpts::new().classic(Buckets::new([0.001, 0.01, 0.1]).unwrap());
    let h = registry.native_histogram("pushed.rt_seconds", "Round trips.", opts).unwrap();
    for v in observations() {
        h.observe(v);
    }
    let ours = h.snapshot();
    assert_eq!(ours.native.count, 2000);
    assert!(
        ours.native.zero_count == 100 && !ours.native.negative.is_empty() && ours.native.positive.len() > 50,
        "{ours:?}"
    );

    let writer = RemoteWrite::new(format!("http://{prom}/api/v1/write"))
        .interval(Duration::from_secs(3600))
        .job("native-push")
        .start(&registry)
        .unwrap();
    let stats = writer.shutdown(Duration::from_secs(20));
    assert_eq!((stats.sent, stats.failed, stats.dropped), (stats.samples, 0, 0), "{stats:?}");
    assert!(stats.accounted(), "{stats:?}");

    // Escaped names: `pushed.rt_seconds` arrives as `pushed_rt_seconds`,
    // the constant label `zone.id` as `zone_id`.
    let sel = r#"pushed_rt_seconds{job="native-push",zone_id="z1"}"#;
    let count = wait_for("the pushed native histogram", Duration::from_secs(30), || {
        scalar(prom, &format!("histogram_count({sel})"))
    });
    assert_eq!(count, ours.native.count as f64, "count, exactly");
    assert_eq!(scalar(prom, &format!("histogram_sum({sel})")), Some(ours.native.sum), "sum, exactly");
    for q in [0.5, 0.9, 0.05] {
        let theirs = scalar(prom, &format!("histogram_quantile({q}, {sel})")).expect("a quantile");
        let mine = ours.quantile(q).unwrap();
        assert!(((theirs - mine) / mine).abs() < 1e-9, "q={q}: Prometheus says {theirs}, hotmeter {mine}");
    }
    // One series, stored as a native histogram: no float sample under the
    // name, and the classic buckets kept alongside were not sent.
    let raw = query(prom, sel);
    assert_eq!(raw.len(), 1, "{raw:?}");
    assert!(raw[0].get("histogram").is_some() && raw[0].get("value").is_none(), "{raw:?}");
    for suffix in ["_bucket", "_sum", "_count"] {
        let classic = query(prom, &format!("pushed_rt_seconds{suffix}"));
        assert!(classic.is_empty(), "{suffix} sent in native mode: {classic:?}");
    }
}

/// A receiver without native histograms refuses every request holding one
/// (500); `NativeHistograms::Classic` sends the classic series from the
/// start, so nothing is refused and everything arrives.
#[test]
fn classic_mode_serves_a_receiver_without_native_histograms() {
    let receiver = Prometheus::builder("prometheus").remote_write_receiver().start();
    let prom = receiver.addr();

    let registry = Registry::new();
    let opts = NativeOpts::new().classic(Buckets::new([0.001, 0.01, 0.1]).unwrap());
    let h = registry.native_histogram("classic_rt_seconds", "Round trips.", opts).unwrap();
    for v in observations() {
        h.observe(v);
    }
    let writer = RemoteWrite::new(format!("http://{prom}/api/v1/write"))
        .interval(Duration::from_secs(3600))
        .native_histograms(NativeHistograms::Classic)
        .job("classic-push")
        .start(&registry)
        .unwrap();
    let stats = writer.shutdown(Duration::from_secs(20));
    assert_eq!((stats.sent, stats.failed, stats.dropped, stats.retried), (stats.samples, 0, 0, 0), "{stats:?}");

    let sel = r#"{job="classic-push"}"#;
    let count = wait_for("the classic count", Duration::from_secs(30), || {
        scalar(prom, &format!("classic_rt_seconds_count{sel}"))
    });
    assert_eq!(count, 2000.0);
    // -0.01.. and the zeros at or below 0.001; then each bound's share.
    let mut buckets: Vec<(String, f64)> = query(prom, &format!("classic_rt_seconds_bucket{sel}"))
        .iter()
        .map(|s| (s["metric"]["le"].as_str().unwrap().to_owned(), s["value"][1].as_str().unwrap().parse().unwrap()))
        .collect();
    buckets.sort_by(|a, b| a.1.total_cmp(&b.1));
    let at_or_below = |bound: f64| observations().iter().filter(|&&v| v <= bound).count() as f64;
    let want =
        [("0.001", at_or_below(0.001)), ("0.01", at_or_below(0.01)), ("0.1", at_or_below(0.1)), ("+Inf", 2000.0)];
    assert_eq!(buckets, want.map(|(l, v)| (l.to_owned(), v)), "buckets");
}

/// Issue 22, item 3: the default mode (native) into a real Prometheus
/// without native histograms. It answers 500 "native histograms are
/// disabled"; the client turns to classic series at once, says so in its
/// own metric, and the count and sum arrive, where before every push was
/// refused and retried for as long as the client ran.
#[test]
fn default_mode_falls_back_to_classic_series_for_a_receiver_without_native_histograms() {
    let receiver = Prometheus::builder("prometheus").remote_write_receiver().start();
    let prom = receiver.addr();

    let registry = Registry::new();
    let h = registry.native_histogram("fallback_rt_seconds", "Round trips.", NativeOpts::new()).unwrap();
    for v in observations() {
        h.observe(v);
    }
    let writer = RemoteWrite::new(format!("http://{prom}/api/v1/write"))
        .interval(Duration::from_secs(3600))
        .job("fallback-push")
        .start(&registry)
        .unwrap();
    wait_for("a classic snapshot accepted", Duration::from_secs(30), || (writer.stats().sent > 0).then_some(()));
    let stats = writer.shutdown(Duration::from_secs(20));
    assert!(stats.native_histograms_refused, "{stats:?}");
    assert_eq!((stats.rejected_requests, stats.retried, stats.last_error_status), (1, 0, Some(500)), "{stats:?}");
    assert!(stats.accounted(), "{stats:?}");

    let sel = r#"{job="fallback-push"}"#;
    let count = wait_for("the classic count", Duration::from_secs(30), || {
        scalar(prom, &format!("fallback_rt_seconds_count{sel}"))
    });
    assert_eq!(count, 2000.0);
    let sum = scalar(prom, &format!("fallback_rt_seconds_sum{sel}")).expect("the classic sum");
    let want: f64 = observations().iter().sum();
    assert!((sum - want).abs() <= want.abs() * 1e-12, "{sum} vs {want}");
    let refused = scalar(prom, &format!("remote_write_native_histograms_refused{sel}"));
    assert_eq!(refused, Some(1.0), "the client's own metric says it fell back");
}
