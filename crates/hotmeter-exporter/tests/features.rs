//! What each default feature adds, checked over real loopback sockets in
//! whatever configuration this test is built with. The workspace runs it
//! with every feature; the test command runs it again with
//! `--no-default-features`, so the minimal build is served and checked too:
//! a client that asks for protobuf and gzip then gets plain text, and the
//! dashboard answers 404 with no history kept.

use hotmeter_exporter::Exporter;
use hotmeter_testkit::raw::get;

const PROTOBUF: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";

#[test]
fn each_feature_adds_what_it_says_and_nothing_breaks_without_it() {
    // Worker threads serve while this thread asks.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let registry = hotmeter::Registry::new();
    registry.counter("jobs_total", "Jobs run.").unwrap().inc_by(7);
    let server = rt.block_on(Exporter::new(registry).listen("127.0.0.1:0".parse().unwrap()).serve()).unwrap();
    let ask = |path: &str, extra: &str| get(server.local_addr(), path, extra);

    // Protobuf asked for, gzip accepted.
    let r = ask("/metrics", &format!("Accept: {PROTOBUF}\r\nAccept-Encoding: gzip\r\n"));
    assert_eq!(r.status, 200);
    let content_type = r.header("content-type").unwrap();
    assert_eq!(
        content_type.starts_with("application/vnd.google.protobuf"),
        cfg!(feature = "protobuf"),
        "{content_type}"
    );
    assert_eq!(r.header("content-encoding") == Some("gzip"), cfg!(feature = "gzip"), "{:?}", r.headers);
    if !cfg!(feature = "protobuf") && !cfg!(feature = "gzip") {
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        assert!(r.text().ends_with("jobs_total 7\n"), "{}", r.text());
    }
    if cfg!(feature = "gzip") {
        assert_eq!(&r.body[..2], [0x1f, 0x8b], "a gzip member");
    }

    // Prometheus with native histograms asks for protobuf first, then
    // OpenMetrics: a build that does not write protobuf answers with the
    // next choice, as a server that does not offer it (also when another
    // crate turned on hotmeter-format's own `protobuf` feature: the test
    // command runs this test in that build too).
    let prometheus = format!(
        "{PROTOBUF};q=0.6,application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
    );
    let r = ask("/metrics", &format!("Accept: {prometheus}\r\n"));
    let content_type = r.header("content-type").unwrap();
    if cfg!(feature = "protobuf") {
        assert!(content_type.starts_with("application/vnd.google.protobuf"), "{content_type}");
    } else {
        assert_eq!(
            content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores",
            "the next choice"
        );
        assert!(r.text().ends_with("jobs_total 7\n# EOF\n"), "{}", r.text());
    }

    // Plain text, no gzip asked: the same in every build.
    let r = ask("/metrics", "");
    assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    assert_eq!(r.header("content-encoding"), None);
    assert!(r.text().ends_with("# TYPE jobs_total counter\njobs_total 7\n"), "{}", r.text());

    // The dashboard and its history are there only with the feature.
    for path in ["/dashboard", "/dashboard/app.js", "/dashboard/history"] {
        let r = ask(path, "Accept-Encoding: gzip\r\n");
        let expected = if cfg!(feature = "dashboard") { 200 } else { 404 };
        assert_eq!(r.status, expected, "{path}: {}", r.text());
    }
    rt.block_on(server.shutdown());
}
