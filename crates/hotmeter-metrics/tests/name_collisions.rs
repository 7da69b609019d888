//! Facade names that collide with each other or with the registry's own
//! overflow counter: counted, never lost silently (found by review).

use hotmeter::Registry;
use hotmeter_metrics::HotmeterRecorder;

fn text(r: &Registry) -> String {
    let mut out = Vec::new();
    hotmeter_exporter::encode_text(r, &mut out);
    String::from_utf8(out).unwrap()
}

/// Facade histogram `lat` and facade counter `lat_count`: the second is
/// refused by the registry; its records must be counted as dropped.
#[test]
fn histogram_and_counter_sample_name_collision_is_counted() {
    let registry = Registry::new();
    let rec = HotmeterRecorder::new(registry.clone());
    metrics::with_local_recorder(&rec, || {
        metrics::histogram!("lat").record(1.0);
        metrics::counter!("lat_count").increment(5);
        metrics::gauge!("lat_sum").set(2.0);
    });
    let t = text(&registry);
    eprintln!("{t}");
    assert!(t.contains("hotmeter_metrics_dropped_total{reason=\"conflict\"}"), "{t}");
}

/// A native gauge named like the overflow counter's OpenMetrics family used
/// to be accepted and then made every facade family (and the facade's own
/// `hotmeter_metrics_dropped_total`) fail to register, uncounted. It is now
/// refused at once, and the facade records as usual.
#[test]
fn a_name_of_the_overflow_counter_cannot_silence_the_facade() {
    let registry = Registry::new();
    assert!(matches!(
        registry.gauge("hotmeter_label_overflow", "Mine."),
        Err(hotmeter::RegistryError::NameCollision { .. })
    ));
    let rec = HotmeterRecorder::new(registry.clone());
    metrics::with_local_recorder(&rec, || {
        metrics::counter!("jobs_total", "status" => "ok").increment(2);
    });
    let t = text(&registry);
    assert!(t.contains("jobs_total{status=\"ok\"} 2"), "facade data lost:\n{t}");
}
