//! Text 0.0.4 as the Pushgateway is pushed it (`hotmeter-push` writes its
//! bodies with [`encode_text`]): the golden bodies the push crate's own
//! encoder was held to before it gave way to this one, unchanged.

use hotmeter::expose::write_f64;
use hotmeter::{Buckets, Counter, NameValidation, NativeOpts, Registry};
use hotmeter_format::encode_text;

#[test]
fn golden_text() {
    let r = Registry::new();
    let fam = r.labeled_family("jobs_total", "Jobs\\done\nhere.", &["kind"], Counter::new).unwrap();
    fam.with(&["a\"b"], |c| c.inc_by(2)).unwrap();
    let h = r.histogram("d_seconds", "D.", Buckets::new([0.5]).unwrap()).unwrap();
    h.observe(0.25);
    h.observe(2.0);
    r.int_gauge("g", "").unwrap().set(-3);
    let mut out = Vec::new();
    encode_text(&r, &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "# HELP d_seconds D.\n# TYPE d_seconds histogram\n\
         d_seconds_bucket{le=\"0.5\"} 1\nd_seconds_bucket{le=\"+Inf\"} 2\nd_seconds_sum 2.25\nd_seconds_count 2\n\
         # TYPE g gauge\ng -3\n\
         # HELP hotmeter_label_overflow_total Lookups of new label sets routed to a family's overflow series \
         because it reached its cardinality limit.\n\
         # TYPE hotmeter_label_overflow_total counter\nhotmeter_label_overflow_total{metric=\"jobs_total\"} 0\n\
         # HELP jobs_total Jobs\\\\done\\nhere.\n# TYPE jobs_total counter\njobs_total{kind=\"a\\\"b\"} 2\n"
    );
}

#[test]
fn utf8_names_are_escaped_with_underscores() {
    let r = Registry::builder().name_validation(NameValidation::Utf8).const_label("zone.id", "z\"1").build().unwrap();
    let fam = r.labeled_family("http.requests_total", "Requests.", &["service.name", "code"], Counter::new).unwrap();
    fam.with(&["api.v1", "200"], |c| c.inc_by(2)).unwrap();
    let opts = NativeOpts::new().classic(Buckets::new([1.0]).unwrap());
    r.native_histogram("rpc.duration_seconds", "", opts).unwrap().observe(0.5);
    r.gauge("plain_gauge", "Legacy.").unwrap().set(1.5);
    let mut out = Vec::new();
    encode_text(&r, &mut out);
    let text = String::from_utf8(out).unwrap();
    let families: Vec<&str> = text.lines().filter(|l| !l.contains("hotmeter_label_overflow_total")).collect();
    assert_eq!(
        families,
        [
            "# HELP http_requests_total Requests.",
            "# TYPE http_requests_total counter",
            r#"http_requests_total{zone_id="z\"1",service_name="api.v1",code="200"} 2"#,
            "# HELP plain_gauge Legacy.",
            "# TYPE plain_gauge gauge",
            r#"plain_gauge{zone_id="z\"1"} 1.5"#,
            "# TYPE rpc_duration_seconds histogram",
            r#"rpc_duration_seconds_bucket{zone_id="z\"1",le="1.0"} 1"#,
            r#"rpc_duration_seconds_bucket{zone_id="z\"1",le="+Inf"} 1"#,
            r#"rpc_duration_seconds_sum{zone_id="z\"1"} 0.5"#,
            r#"rpc_duration_seconds_count{zone_id="z\"1"} 1"#,
        ]
    );
}

#[test]
fn legacy_names_are_written_as_registered() {
    // `:` is legal in metric names, so `a:b` is not rewritten.
    let r = Registry::builder().name_validation(NameValidation::Utf8).build().unwrap();
    r.counter("a:b_total", "").unwrap().inc();
    let mut out = Vec::new();
    encode_text(&r, &mut out);
    assert!(String::from_utf8(out).unwrap().contains("\na:b_total 1\n"));
}

#[test]
fn floats() {
    let f = |v: f64| {
        let mut o = Vec::new();
        write_f64(&mut o, v);
        String::from_utf8(o).unwrap()
    };
    assert_eq!(
        [f(f64::NAN), f(f64::INFINITY), f(f64::NEG_INFINITY), f(1.0), f(0.005)],
        ["NaN", "+Inf", "-Inf", "1.0", "0.005"]
    );
}
