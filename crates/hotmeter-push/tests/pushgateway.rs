//! A batch job against Debian's `prometheus-pushgateway` on a loopback
//! port: push (`PUT`) makes the group appear on the Pushgateway's
//! `/metrics` with its grouping labels, push-add (`POST`) adds to it, a
//! second push replaces it, a refused push is a typed error that is not
//! retried, and delete removes the group.
//!
//! Needs Debian's `prometheus-pushgateway` (the test command installs
//! it); without it this test fails and says so.

use hotmeter::{Buckets, Registry};
use hotmeter_push::{GroupingKey, Pushgateway, SendError};
use hotmeter_testkit::http;

/// Lines of the Pushgateway's `/metrics` that belong to our job.
fn group_lines(gw: &str) -> Vec<String> {
    let http::Reply { status, body, .. } = http::get(gw, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200);
    body.lines().filter(|l| !l.starts_with('#') && l.contains(r#"job="nightly-export""#)).map(str::to_owned).collect()
}

fn value(lines: &[String], prefix: &str) -> Option<f64> {
    lines.iter().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

#[test]
fn push_push_add_and_delete_a_group() {
    let pushgateway = hotmeter_testkit::Pushgateway::start();
    let gw = pushgateway.addr();

    // The batch job.
    let registry = Registry::new();
    registry.counter("export_rows_total", "Rows exported.").unwrap().inc_by(1_234);
    let took = registry.histogram("export_duration_seconds", "Run time.", Buckets::new([1.0, 10.0]).unwrap()).unwrap();
    took.observe(4.2);
    let gateway = Pushgateway::new(&format!("http://{gw}")).unwrap();
    let key = GroupingKey::new("nightly-export").unwrap().label("shard", "3").unwrap().label("path", "/var/x").unwrap();
    gateway.push(&registry, &key).unwrap();

    let lines = group_lines(gw);
    let rows = lines.iter().find(|l| l.starts_with("export_rows_total{")).expect("the pushed counter");
    for label in [r#"job="nightly-export""#, r#"shard="3""#, r#"path="/var/x""#] {
        assert!(rows.contains(label), "{label} missing from {rows}");
    }
    assert_eq!(value(&lines, "export_rows_total{"), Some(1234.0));
    assert_eq!(value(&lines, "export_duration_seconds_count{"), Some(1.0));
    assert!(lines.iter().any(|l| l.starts_with("export_duration_seconds_bucket{") && l.contains(r#"le="10""#)));

    // push-add keeps what is there.
    let extra = Registry::new();
    extra.gauge("export_last_success_timestamp_seconds", "When it last succeeded.").unwrap().set(1.7e9);
    gateway.push_add(&extra, &key).unwrap();
    let lines = group_lines(gw);
    assert_eq!(value(&lines, "export_rows_total{"), Some(1234.0));
    assert_eq!(value(&lines, "export_last_success_timestamp_seconds{"), Some(1.7e9));

    // push replaces the group.
    gateway.push(&extra, &key).unwrap();
    let lines = group_lines(gw);
    assert_eq!(value(&lines, "export_rows_total{"), None, "PUT replaced the group: {lines:?}");
    assert_eq!(value(&lines, "export_last_success_timestamp_seconds{"), Some(1.7e9));

    // A push inconsistent with what the Pushgateway holds (a counter where
    // another group has a gauge of that name) is refused: 400, a typed
    // error, not retried.
    let bad = Registry::new();
    bad.counter("export_last_success_timestamp_seconds", "Not a gauge.").unwrap().inc();
    let other_key = GroupingKey::new("nightly-export").unwrap().label("shard", "4").unwrap();
    match gateway.push(&bad, &other_key) {
        Err(SendError::Rejected { status: 400, body }) => assert!(!body.is_empty()),
        other => panic!("expected a 400 rejection, got {other:?}"),
    }

    // The refused push left only the Pushgateway's failure marker for its group.
    let lines = group_lines(gw);
    assert!(lines.iter().any(|l| l.starts_with("push_failure_time_seconds{") && l.contains(r#"shard="4""#)));

    gateway.delete(&key).unwrap();
    let lines = group_lines(gw);
    assert!(!lines.iter().any(|l| l.contains(r#"shard="3""#)), "the group is gone: {lines:?}");
    gateway.delete(&other_key).unwrap();
    assert_eq!(group_lines(gw), Vec::<String>::new(), "both groups are gone");
}

/// A registry of UTF-8 names pushes as text 0.0.4 with the names escaped
/// by `underscores`, and the Pushgateway takes it.
#[test]
fn utf8_names_arrive_escaped() {
    let pushgateway = hotmeter_testkit::Pushgateway::start();
    let gw = pushgateway.addr();

    let registry = Registry::builder().name_validation(hotmeter::NameValidation::Utf8).build().unwrap();
    let fam =
        registry.labeled_family("http.requests_total", "Requests.", &["service.name"], hotmeter::Counter::new).unwrap();
    fam.with(&["api.v1"], |c| c.inc_by(7)).unwrap();
    let gateway = Pushgateway::new(&format!("http://{gw}")).unwrap();
    let key = GroupingKey::new("utf8-job").unwrap();
    gateway.push(&registry, &key).unwrap();

    let http::Reply { status, body, .. } = http::get(gw, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200);
    let line = body
        .lines()
        .find(|l| l.starts_with("http_requests_total{") && l.contains(r#"job="utf8-job""#))
        .unwrap_or_else(|| panic!("no escaped family in:\n{body}"));
    assert!(line.contains(r#"service_name="api.v1""#) && line.ends_with(" 7"), "{line}");
    assert!(body.contains("# TYPE http_requests_total counter"), "{body}");
    gateway.delete(&key).unwrap();
}
