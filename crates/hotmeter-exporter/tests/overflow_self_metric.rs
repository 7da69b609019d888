//! The registry's own overflow counter (`hotmeter_label_overflow_total`)
//! and the overflow series of a string family can never be doubled,
//! shadowed or made invalid by a user's names or label values (found by an
//! independent review; each case printed a scrape that Prometheus drops or
//! rejects, or silently stopped exporting overflow counts).

use hotmeter::expose::MetricType;
use hotmeter::{Counter, OVERFLOW_METRIC, Registry, RegistryError, SingleCounter, StringFamily};
use hotmeter_exporter::encode_text;

fn text(r: &Registry) -> String {
    let mut out = Vec::new();
    encode_text(r, &mut out);
    String::from_utf8(out).unwrap()
}

/// Fills a limit-1 family and sends one more label set to overflow.
fn overflow_once(f: &StringFamily<SingleCounter>) {
    f.with(&["a"], |c| c.inc()).unwrap();
    f.with(&["b"], |c| c.inc()).unwrap();
}

fn promtool_clean(body: &str) {
    match hotmeter_exporter::promtool::check_metrics(body.as_bytes()) {
        Ok(()) | Err(hotmeter_exporter::promtool::PromtoolError::NotInstalled) => {}
        Err(e) => panic!("promtool rejects:\n{body}\n{e:?}"),
    }
}

/// A user label value `__overflow__` is the overflow series' own label set:
/// it goes there (counted), never printed as a second identical series.
#[test]
fn a_user_value_equal_to_the_overflow_value_is_not_a_second_series() {
    let r = Registry::new();
    let f = r.register(("ids_total", "Ids."), StringFamily::with_limit(&["id"], 1, SingleCounter::new)).unwrap();
    f.with(&["__overflow__"], |c| c.inc()).unwrap();
    f.with(&["b"], |c| c.inc()).unwrap();
    f.with(&["c"], |c| c.inc()).unwrap(); // over the limit
    let body = text(&r);
    let lines: Vec<&str> = body.lines().filter(|l| l.starts_with("ids_total{")).collect();
    assert_eq!(lines, ["ids_total{id=\"b\"} 1", "ids_total{id=\"__overflow__\"} 2"], "{body}");
    assert!(body.contains("hotmeter_label_overflow_total{metric=\"ids_total\"} 2"), "{body}");
    promtool_clean(&body);
}

/// The overflow counter's name is reserved from the registry's creation:
/// a user metric cannot take it (before or after any string family), and a
/// string family's overflow is always exported.
#[test]
fn the_overflow_counter_name_is_reserved() {
    for namespace in [None, Some("app")] {
        let r = match namespace {
            Some(ns) => Registry::builder().namespace(ns).build().unwrap(),
            None => Registry::new(),
        };
        let reserved = hotmeter::name::full_name(namespace, OVERFLOW_METRIC);
        let err = r.counter(OVERFLOW_METRIC, "Mine.").unwrap_err();
        assert_eq!(err, RegistryError::ReservedName { name: reserved.clone() });
        assert!(err.to_string().contains("reserved"), "{err}");
        let err =
            r.register((OVERFLOW_METRIC, "Mine."), StringFamily::new(&["metric"], SingleCounter::new)).unwrap_err();
        assert_eq!(err, RegistryError::ReservedName { name: reserved.clone() });
        // A name it is exposed under (its OpenMetrics family) is taken too,
        // and the error names the registry's counter, not a later family.
        let stem = reserved.trim_end_matches("_total");
        match r.gauge(OVERFLOW_METRIC.trim_end_matches("_total"), "G.") {
            Err(RegistryError::NameCollision { exposed, existing, existing_kind, .. }) => {
                assert_eq!(
                    (exposed.as_str(), existing.as_str(), existing_kind),
                    (stem, reserved.as_str(), MetricType::Counter)
                );
            }
            other => panic!("expected a collision with the overflow counter, got {other:?}"),
        }
        // String families register and their overflow is exported.
        let f = r.register(("ids_total", "Ids."), StringFamily::with_limit(&["id"], 1, SingleCounter::new)).unwrap();
        overflow_once(&f);
        let body = text(&r);
        assert!(
            body.contains(&format!("{reserved}{{metric=\"{}\"}} 1", hotmeter::name::full_name(namespace, "ids_total"))),
            "{body}"
        );
        assert!(!r.unregister(&reserved), "the registry's own counter cannot be unregistered");
        promtool_clean(&body);
    }
}

/// A constant label named `metric` would repeat the overflow counter's own
/// `metric` label (a scrape Prometheus rejects whole): refused at build.
#[test]
fn a_constant_label_named_metric_is_refused_at_build() {
    let err = Registry::builder().const_label("metric", "x").build().unwrap_err();
    assert_eq!(err, RegistryError::DuplicateLabel { metric: OVERFLOW_METRIC.into(), label: "metric".into() });
    // Any other constant label is fine, and the scrape is valid.
    let r = Registry::builder().const_label("service", "x").build().unwrap();
    let f = r.register(("ids_total", "Ids."), StringFamily::with_limit(&["id"], 1, SingleCounter::new)).unwrap();
    overflow_once(&f);
    r.counter("other_total", "O.").map(|c: Counter| c.inc()).unwrap();
    promtool_clean(&text(&r));
}
