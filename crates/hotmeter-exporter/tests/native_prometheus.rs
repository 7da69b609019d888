//! A real Prometheus (Debian's 2.42, `--enable-feature=native-histograms`)
//! scrapes a native histogram over protobuf: PromQL's quantile of the
//! ingested buckets equals hotmeter's own quantile of the same
//! observations, and its counts are the observations'.
//!
//! Exact by construction: batch A is observed and scraped, then batch B;
//! a `rate` whose window starts after A's scrapes and ends after B's holds
//! exactly B, and Prometheus 2.x interpolates linearly within a native
//! bucket as [`hotmeter::native_quantile`] does, so the two quantiles agree
//! to floating-point rounding (rate scales every bucket alike).

use std::time::{Duration, Instant};

use hotmeter::{Buckets, NativeOpts, Registry};
use hotmeter_testkit::promql::scalar;
use hotmeter_testkit::{Prometheus, wait_for};

#[test]
fn prometheus_ingests_native_histograms_over_protobuf_and_agrees_on_quantiles() {
    let registry = Registry::new();
    let h = registry
        .native_histogram("work_seconds", "Work.", NativeOpts::new().classic(Buckets::new([0.001, 0.01, 0.1]).unwrap()))
        .unwrap();
    let server =
        hotmeter_exporter::Exporter::new(registry.clone()).listen("127.0.0.1:0".parse().unwrap()).start().unwrap();
    let target = server.local_addr();

    let prometheus =
        Prometheus::builder("prometheus").scrape("native", &target.to_string()).feature("native-histograms").start();
    let prom = prometheus.addr();

    // Batch A: a spread from 20 µs to 2 ms.
    for i in 0..1000 {
        h.observe(20e-6 * (1.0 + i as f64 * 0.1));
    }
    // Scraped as a native histogram: its count is A's, exactly.
    wait_for("batch A scraped", Duration::from_secs(60), || {
        scalar(prom, "histogram_count(work_seconds)").filter(|&c| c == 1000.0)
    });
    std::thread::sleep(Duration::from_secs(3));
    let a_done = Instant::now();
    // Batch B: a different shape, 50 µs to 50 ms, plus a few zeros.
    let b: Vec<f64> = (0..3000).map(|i| if i % 500 == 0 { 0.0 } else { 50e-6 * 1.0023f64.powi(i) }).collect();
    for &v in &b {
        h.observe(v);
    }
    wait_for("batch B scraped", Duration::from_secs(60), || {
        scalar(prom, "histogram_count(work_seconds)").filter(|&c| c == 4000.0)
    });
    std::thread::sleep(Duration::from_secs(2));

    // hotmeter's own quantiles of B alone.
    let only_b = hotmeter::NativeHistogram::new(NativeOpts::new());
    for &v in &b {
        only_b.observe(v);
    }
    let own = only_b.snapshot();
    // A window that starts after A's scrapes (1.5 s into the 3 s in which
    // every scrape saw A alone) and ends now holds B alone.
    let window = format!("{}ms", a_done.elapsed().as_millis() + 1500);
    for q in [0.5, 0.9, 0.99] {
        let promql = format!("histogram_quantile({q}, rate(work_seconds[{window}]))");
        let theirs = wait_for(&promql, Duration::from_secs(20), || scalar(prom, &promql));
        let ours = own.quantile(q).unwrap();
        assert!(
            ((theirs - ours) / ours).abs() < 1e-9,
            "q={q}: Prometheus says {theirs}, hotmeter {ours} (window {window}s)"
        );
    }
    // The schema Prometheus stored is the one hotmeter reported.
    let total = registry.snapshot();
    let Some(hotmeter::OwnedValue::NativeHistogram { native, .. }) = total.value("work_seconds", &[]) else {
        panic!("not a native histogram")
    };
    let (count, sum) = (&native.count, &native.sum);
    assert_eq!(scalar(prom, "histogram_count(work_seconds)"), Some(*count as f64));
    let their_sum = scalar(prom, "histogram_sum(work_seconds)").unwrap();
    assert!(((their_sum - sum) / sum).abs() < 1e-12, "sum {their_sum} vs {sum}");
    // The observation rate: B's 3000 observations over the window, within
    // what rate's extrapolation to the window's edges allows.
    let rate = scalar(prom, &format!("histogram_count(increase(work_seconds[{window}]))")).unwrap();
    assert!((rate - 3000.0).abs() / 3000.0 < 0.5, "increase {rate} for 3000 observations");
    drop(server);
}
