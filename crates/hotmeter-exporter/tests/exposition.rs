//! Encoder output: exact golden text in both formats, `promtool check
//! metrics` on a registry holding every kind of metric and every awkward
//! input, and a round trip through an independent parser.

use hotmeter::{Buckets, Counter, Family, FloatCounter, Opts, Registry, StringFamily, Summary, SummaryOpts, Unit};
use hotmeter_exporter::{encode_openmetrics, encode_text};
use proptest::prelude::*;

hotmeter::label_enum! {
    /// Outcome.
    pub enum Status: "status" { Success = "success", Error = "error" }
}

fn text(registry: &Registry) -> String {
    let mut out = Vec::new();
    encode_text(registry, &mut out);
    String::from_utf8(out).expect("exposition is UTF-8")
}

fn openmetrics(registry: &Registry) -> String {
    let mut out = Vec::new();
    encode_openmetrics(registry, &mut out);
    String::from_utf8(out).expect("exposition is UTF-8")
}

fn small_registry() -> Registry {
    let r = Registry::builder().const_label("instance", "a").build().unwrap();
    let writes: Family<Status, Counter> = r.typed_family("writes_total", "Writes by outcome.", Counter::new).unwrap();
    writes.get(Status::Success).inc_by(5);
    let h = r
        .register(
            Opts::new("write_duration_seconds", "Write \"latency\"\\ per\nwrite.").unit(Unit::SECONDS),
            hotmeter::Histogram::new(Buckets::new([0.01, 0.1]).unwrap()),
        )
        .unwrap();
    h.observe(0.005);
    h.observe(0.05);
    h.observe(5.0);
    let g = r.gauge("temperature", "Odd values.").unwrap();
    g.set(f64::NEG_INFINITY);
    let s = r.labeled_family("paths_total", "By path.", &["path"], Counter::new).unwrap();
    s.with(&["C:\\dir\n\"x\""], |c| c.inc()).unwrap();
    r
}

#[test]
fn golden_prometheus_text() {
    let expected = r#"# HELP hotmeter_label_overflow_total Lookups of new label sets routed to a family's overflow series because it reached its cardinality limit.
# TYPE hotmeter_label_overflow_total counter
hotmeter_label_overflow_total{instance="a",metric="paths_total"} 0
# HELP paths_total By path.
# TYPE paths_total counter
paths_total{instance="a",path="C:\\dir\n\"x\""} 1
# HELP temperature Odd values.
# TYPE temperature gauge
temperature{instance="a"} -Inf
# HELP write_duration_seconds Write "latency"\\ per\nwrite.
# TYPE write_duration_seconds histogram
write_duration_seconds_bucket{instance="a",le="0.01"} 1
write_duration_seconds_bucket{instance="a",le="0.1"} 2
write_duration_seconds_bucket{instance="a",le="+Inf"} 3
write_duration_seconds_sum{instance="a"} 5.055
write_duration_seconds_count{instance="a"} 3
# HELP writes_total Writes by outcome.
# TYPE writes_total counter
writes_total{instance="a",status="error"} 0
writes_total{instance="a",status="success"} 5
"#;
    assert_eq!(text(&small_registry()), expected);
}

#[test]
fn golden_openmetrics() {
    let expected = r#"# HELP hotmeter_label_overflow Lookups of new label sets routed to a family's overflow series because it reached its cardinality limit.
# TYPE hotmeter_label_overflow counter
hotmeter_label_overflow_total{instance="a",metric="paths_total"} 0
# HELP paths By path.
# TYPE paths counter
paths_total{instance="a",path="C:\\dir\n\"x\""} 1
# HELP temperature Odd values.
# TYPE temperature gauge
temperature{instance="a"} -Inf
# HELP write_duration_seconds Write \"latency\"\\ per\nwrite.
# TYPE write_duration_seconds histogram
# UNIT write_duration_seconds seconds
write_duration_seconds_bucket{instance="a",le="0.01"} 1
write_duration_seconds_bucket{instance="a",le="0.1"} 2
write_duration_seconds_bucket{instance="a",le="+Inf"} 3
write_duration_seconds_sum{instance="a"} 5.055
write_duration_seconds_count{instance="a"} 3
# HELP writes Writes by outcome.
# TYPE writes counter
writes_total{instance="a",status="error"} 0
writes_total{instance="a",status="success"} 5
# EOF
"#;
    assert_eq!(openmetrics(&small_registry()), expected);
}

/// Every metric kind, every awkward label value, NaN and infinities, and a
/// family of 1,000 series.
fn rich_registry() -> Registry {
    let r = Registry::builder().namespace("hm").const_label("service", "exporter-test").build().unwrap();
    hotmeter_exporter::register_process_metrics(&r).unwrap();
    let c = r.counter("requests_total", "Requests served.").unwrap();
    c.inc_by(42);
    let fc =
        r.register(Opts::new("busy_seconds_total", "Busy time.").unit(Unit::SECONDS), FloatCounter::new()).unwrap();
    fc.inc_by(1.25);
    for (name, v) in [("nan_value", f64::NAN), ("pos_inf_value", f64::INFINITY), ("neg_inf_value", f64::NEG_INFINITY)] {
        r.gauge(name, "A special float.").unwrap().set(v);
    }
    r.int_gauge("queue_depth", "Items queued.").unwrap().set(-3);
    let typed: Family<Status, Counter> = r.typed_family("writes_total", "Writes by outcome.", Counter::new).unwrap();
    typed.get(Status::Error).inc();
    let odd = r.labeled_family("odd_labels_total", "Awkward label values.", &["value"], Counter::new).unwrap();
    for v in ["", "quote\"", "back\\slash", "new\nline", "ünïcødé ✓", "{}=,\t"] {
        odd.with(&[v], |c| c.inc()).unwrap();
    }
    let big = r.labeled_family("tenant_observations_total", "Many series.", &["tenant"], Counter::new).unwrap();
    for i in 0..1000 {
        big.with(&[&format!("tenant-{i:04}")], |c| c.inc_by(i)).unwrap();
    }
    let h = r.histogram("latency_seconds", "Latency.", Buckets::default()).unwrap();
    for i in 0..100 {
        h.observe(i as f64 * 0.01);
    }
    h.observe(f64::NAN);
    let hs = r
        .labeled_family("op_duration_seconds", "By op.", &["op"], || {
            hotmeter::Histogram::new(Buckets::exponential(0.001, 2.0, 8).unwrap())
        })
        .unwrap();
    hs.with(&["read"], |h| h.observe(0.003)).unwrap();
    let s = r.register(Opts::new("rpc_duration_seconds", "RPC time."), Summary::new(SummaryOpts::default()).unwrap());
    s.unwrap().observe(0.2);
    let _idle = r
        .register(Opts::new("idle_rpc_duration_seconds", "No data yet."), Summary::new(SummaryOpts::default()).unwrap())
        .unwrap();
    r
}

/// `promtool check metrics` on `exposition`; a missing promtool fails the
/// test unless HOTMETER_SKIP_PROMTOOL is set.
fn assert_promtool_accepts(exposition: &str) {
    match hotmeter_exporter::promtool::check_metrics(exposition.as_bytes()) {
        Ok(()) => {}
        Err(hotmeter_exporter::promtool::PromtoolError::NotInstalled)
            if std::env::var_os("HOTMETER_SKIP_PROMTOOL").is_some() =>
        {
            eprintln!("promtool not installed and HOTMETER_SKIP_PROMTOOL set: skipping");
        }
        Err(e) => panic!("{e}\n(run `bash ci/test.sh`, which installs Debian's `prometheus`)"),
    }
}

#[test]
fn promtool_accepts_every_kind_and_awkward_input() {
    let exposition = text(&rich_registry());
    assert!(exposition.contains("hm_tenant_observations_total{service=\"exporter-test\",tenant=\"tenant-0999\"} 999"));
    assert!(exposition.contains("hm_nan_value{service=\"exporter-test\"} NaN"));
    assert!(exposition.contains("hm_busy_seconds_total{service=\"exporter-test\"} 1.25\n"));
    assert!(exposition.contains("hm_queue_depth{service=\"exporter-test\"} -3\n"));
    assert!(exposition.contains("hm_rpc_duration_seconds{service=\"exporter-test\",quantile=\"0.99\"}"));
    assert!(exposition.contains("hm_odd_labels_total{service=\"exporter-test\",value=\"new\\nline\"} 1"));
    assert_promtool_accepts(&exposition);
}

#[test]
fn promtool_rejects_what_it_should() {
    // The check can fail: a counter without `_total` is a lint error.
    let bad = "# HELP c Bad.\n# TYPE c counter\nc 1\n";
    match hotmeter_exporter::promtool::check_metrics(bad.as_bytes()) {
        Err(hotmeter_exporter::promtool::PromtoolError::Rejected { stderr, .. }) => {
            assert!(stderr.contains("c"), "{stderr}")
        }
        Err(hotmeter_exporter::promtool::PromtoolError::NotInstalled)
            if std::env::var_os("HOTMETER_SKIP_PROMTOOL").is_some() => {}
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// One parsed sample line: name, label pairs, value text.
type ParsedSample = (String, Vec<(String, String)>, String);

/// An independent, strict parser for one text-format sample line:
/// `name{l="v",...} value`, undoing the three escapes.
fn parse_sample(line: &str) -> Option<ParsedSample> {
    let (name_end, has_labels) = match line.find(['{', ' ']) {
        Some(i) => (i, line.as_bytes()[i] == b'{'),
        None => return None,
    };
    let name = line[..name_end].to_string();
    let mut labels = Vec::new();
    let mut rest = &line[name_end..];
    if has_labels {
        rest = &rest[1..];
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let eq = rest.find("=\"")?;
            let label = rest[..eq].to_string();
            let mut value = String::new();
            let mut chars = rest[eq + 2..].char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        _ => return None,
                    },
                    '"' => break eq + 2 + i + 1,
                    '\n' => return None,
                    c => value.push(c),
                }
            };
            labels.push((label, value));
            rest = &rest[end..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }
    let value = rest.strip_prefix(' ')?.to_string();
    Some((name, labels, value))
}

fn parse_value(s: &str) -> f64 {
    match s {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        s => s.parse().expect("a float"),
    }
}

proptest! {
    #[test]
    fn round_trip_through_an_independent_parser(
        name in "[a-zA-Z_:][a-zA-Z0-9_:]{0,20}",
        label in "[a-zA-Z][a-zA-Z0-9_]{0,10}",
        values in proptest::collection::btree_set("\\PC{0,12}|[\\\\\"\n]{1,4}", 1..6),
        gauge in proptest::num::f64::ANY,
        count in any::<u64>(),
    ) {
        let r = Registry::new();
        let fam = r.register(Opts::new(format!("{name}_total"), "Round trip."), StringFamily::new(&[label.as_str()], Counter::new)).unwrap();
        for v in &values {
            fam.with(&[v.as_str()], |c| c.inc_by(count)).unwrap();
        }
        let g = r.gauge(&format!("{name}_gauge"), "Round trip.").unwrap();
        g.set(gauge);
        let exposition = text(&r);
        let mut seen = std::collections::BTreeSet::new();
        let mut gauge_seen = false;
        for line in exposition.lines().filter(|l| !l.starts_with('#')) {
            let (sample, labels, value) = parse_sample(line).expect("every sample line parses");
            if sample == format!("{name}_gauge") {
                let v = parse_value(&value);
                prop_assert!(v == gauge || (v.is_nan() && gauge.is_nan()), "{} != {}", v, gauge);
                gauge_seen = true;
            } else if sample == format!("{name}_total") {
                prop_assert_eq!(labels.len(), 1);
                prop_assert_eq!(&labels[0].0, &label);
                prop_assert_eq!(value.parse::<u64>().unwrap(), count);
                seen.insert(labels[0].1.clone());
            }
        }
        prop_assert!(gauge_seen);
        prop_assert_eq!(seen, values);
    }
}

#[test]
fn exemplars_ride_on_openmetrics_bucket_lines_only() {
    let registry = Registry::new();
    let h = registry.histogram("write_seconds", "Writes.", hotmeter::Buckets::new([0.1, 1.0]).unwrap()).unwrap();
    h.observe(0.05);
    h.observe_with_exemplar(0.5, &hotmeter::TraceId::new("4bf92f35\"77b3\\4da6").unwrap());
    h.observe_with_exemplar(f64::NAN, &hotmeter::TraceId::new("nan-trace").unwrap());

    let om = openmetrics(&registry);
    let bucket = om.lines().find(|l| l.starts_with("write_seconds_bucket{le=\"1.0\"}")).unwrap();
    let (sample, exemplar) = bucket.split_once(" # ").expect("an exemplar on the bucket holding 0.5");
    assert_eq!(sample, "write_seconds_bucket{le=\"1.0\"} 2");
    // The id is escaped like any label value; then value and timestamp.
    let rest =
        exemplar.strip_prefix("{trace_id=\"4bf92f35\\\"77b3\\\\4da6\"} 0.5 ").unwrap_or_else(|| panic!("{exemplar}"));
    let ts: f64 = rest.parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((now - ts).abs() < 60.0, "timestamp {ts} vs now {now}");
    assert!(!om.contains("nan-trace"), "NaN is not recorded, so it has no exemplar");
    assert_eq!(om.matches(" # {").count(), 1, "{om}");
    let low = om.lines().find(|l| l.starts_with("write_seconds_bucket{le=\"0.1\"}")).unwrap();
    assert_eq!(low, "write_seconds_bucket{le=\"0.1\"} 1");

    // Text 0.0.4 has no exemplar syntax: none appear, and promtool accepts it.
    let plain = text(&registry);
    assert!(plain.lines().all(|l| !l.contains(" # ")), "{plain}");
    assert_promtool_accepts(&plain);
}

#[test]
fn counter_exemplars_ride_on_the_openmetrics_total_line() {
    let registry = Registry::new();
    let errors = registry
        .register(hotmeter::Opts::new("write_errors_total", "Failed writes."), hotmeter::TracedCounter::new())
        .unwrap();
    errors.inc();
    errors.inc_with_exemplar(1, &hotmeter::TraceId::new("trace-1").unwrap());
    let om = openmetrics(&registry);
    let line = om.lines().find(|l| l.starts_with("write_errors_total ")).unwrap();
    let rest =
        line.strip_prefix("write_errors_total 2 # {trace_id=\"trace-1\"} 1.0 ").unwrap_or_else(|| panic!("{line}"));
    assert!(rest.parse::<f64>().unwrap() > 1.7e9, "a Unix timestamp: {rest}");
    let plain = text(&registry);
    assert!(plain.contains("\nwrite_errors_total 2\n"), "{plain}");
    assert_promtool_accepts(&plain);
}

/// A re-registration under another name never prints the old name: the
/// per-series render cache is keyed by a registration identity that is
/// never reused, not by the address of a description (the allocator
/// readily hands the freed address to the next registration).
#[test]
fn re_registration_under_a_new_name_never_prints_the_old_one() {
    fn check<M: hotmeter::expose::Registrable + Clone>(family: M, line_a: &str, line_b: &str) {
        for format in [text, openmetrics] {
            let r = Registry::new();
            r.register(("a_total", "A."), family.clone()).unwrap();
            let first = format(&r);
            assert!(first.contains(line_a), "{first}");
            assert!(r.unregister("a_total"));
            r.register(("b_total", "A."), family.clone()).unwrap();
            let second = format(&r);
            assert!(second.contains(line_b), "{second}");
            assert!(!second.contains("a_total"), "stale name after re-registration:\n{second}");
        }
    }
    let by_id: StringFamily<Counter> = StringFamily::new(&["id"], Counter::new);
    by_id.with(&["x"], |c| c.inc()).unwrap();
    check(by_id, "\na_total{id=\"x\"} 1\n", "\nb_total{id=\"x\"} 1\n");
    let typed: Family<Status, Counter> = Family::new(Counter::new);
    typed.get(Status::Error).inc();
    check(typed, "\na_total{status=\"error\"} 1\n", "\nb_total{status=\"error\"} 1\n");
}
