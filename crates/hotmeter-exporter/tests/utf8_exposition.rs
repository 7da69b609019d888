//! Every negotiated text format on a registry with UTF-8 names, label values
//! with quotes, backslashes and newlines: golden bytes per format and
//! escaping scheme (`tests/golden/*.prom`; `HOTMETER_BLESS=1` rewrites
//! them), prometheus_client's two Python parsers reading back exactly the
//! names, labels and values registered, and `promtool check metrics` on
//! text 0.0.4.

use std::path::{Path, PathBuf};
use std::process::Command;

use hotmeter::expose::EscapingScheme;
use hotmeter::{Buckets, Counter, NameKind, NameValidation, Opts, Registry, StringFamily};
use hotmeter_exporter::ExpositionFormat::{OpenMetrics001, OpenMetrics100, Text004, Text100};
use hotmeter_exporter::{ExpositionFormat, Negotiated, encode_negotiated, promtool};

/// The version of prometheus_client the parsers come from (pip, PyPI).
const PROMETHEUS_CLIENT: &str = "prometheus_client==0.22.1";

const AWKWARD: &str = "say \"hi\"\\ \n twice";

fn registry() -> Registry {
    let r = Registry::builder().name_validation(NameValidation::Utf8).build().unwrap();
    let requests = r
        .register(
            Opts::new("http.requests_total", "Requests \"served\".").const_label("région", "eu"),
            StringFamily::new(&["http.method", "note"], Counter::new),
        )
        .unwrap();
    requests.with(&["GET", "plain"], |c| c.inc_by(3)).unwrap();
    requests.with(&["POST", AWKWARD], |c| c.inc()).unwrap();
    r.gauge("temperature.celsius", "Now.").unwrap().set(21.5);
    let latency = r
        .register(
            Opts::new("rpc.latency_seconds", "RPC latency.").const_label("service.name", "api"),
            hotmeter::Histogram::new(Buckets::new([0.1, 1.0]).unwrap()),
        )
        .unwrap();
    for v in [0.05, 0.5, 3.0] {
        latency.observe(v);
    }
    r.gauge("plain_level", "A legacy name beside them.").unwrap().set(1.0);
    r
}

/// One sample: name, labels in order, value.
type Sample = (String, Vec<(String, String)>, f64);

/// The samples `registry()` holds, with names as registered.
fn registered() -> Vec<Sample> {
    let l = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
    let bucket =
        |le: &str, n: f64| ("rpc.latency_seconds_bucket".to_owned(), l(&[("service.name", "api"), ("le", le)]), n);
    vec![
        ("hotmeter_label_overflow_total".into(), l(&[("metric", "http.requests_total")]), 0.0),
        ("http.requests_total".into(), l(&[("région", "eu"), ("http.method", "GET"), ("note", "plain")]), 3.0),
        ("http.requests_total".into(), l(&[("région", "eu"), ("http.method", "POST"), ("note", AWKWARD)]), 1.0),
        ("plain_level".into(), vec![], 1.0),
        bucket("0.1", 1.0),
        bucket("1.0", 2.0),
        bucket("+Inf", 3.0),
        ("rpc.latency_seconds_sum".into(), l(&[("service.name", "api")]), 0.05 + 0.5 + 3.0),
        ("rpc.latency_seconds_count".into(), l(&[("service.name", "api")]), 3.0),
        ("temperature.celsius".into(), vec![], 21.5),
    ]
}

/// What a scraper that asked for `scheme` should read back: every name
/// escaped as the scheme says (a sample name is its escaped family name
/// plus the suffix, as client_golang writes them).
fn expected(scheme: EscapingScheme) -> serde_json::Value {
    let samples: Vec<serde_json::Value> = registered()
        .into_iter()
        .map(|(name, labels, value)| {
            let (family, suffix) = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).map(|f| (f.to_owned(), *s)))
                .unwrap_or((name.clone(), ""));
            let name = format!("{}{suffix}", scheme.escape(&family, NameKind::Metric));
            let labels: serde_json::Map<String, serde_json::Value> = labels
                .into_iter()
                .map(|(k, v)| (scheme.escape(&k, NameKind::Label).into_owned(), serde_json::Value::from(v)))
                .collect();
            serde_json::json!([name, labels, value])
        })
        .collect();
    serde_json::Value::from(samples)
}

/// Every format and scheme a scraper can negotiate (0.0.4 and 0.0.1 take
/// only `underscores`), with the golden file each is compared with.
fn cases() -> Vec<(ExpositionFormat, EscapingScheme, &'static str)> {
    use EscapingScheme::*;
    vec![
        (Text004, Underscores, "utf8_text_0.0.4.prom"),
        (Text100, AllowUtf8, "utf8_text_1.0.0_allow-utf-8.prom"),
        (Text100, Underscores, "utf8_text_1.0.0_underscores.prom"),
        (Text100, Dots, "utf8_text_1.0.0_dots.prom"),
        (Text100, Values, "utf8_text_1.0.0_values.prom"),
        (OpenMetrics100, AllowUtf8, "utf8_openmetrics_1.0.0_allow-utf-8.prom"),
        (OpenMetrics100, Underscores, "utf8_openmetrics_1.0.0_underscores.prom"),
        (OpenMetrics100, Dots, "utf8_openmetrics_1.0.0_dots.prom"),
        (OpenMetrics100, Values, "utf8_openmetrics_1.0.0_values.prom"),
        (OpenMetrics001, Underscores, "utf8_openmetrics_0.0.1.prom"),
    ]
}

fn encode(registry: &Registry, format: ExpositionFormat, scheme: EscapingScheme) -> Vec<u8> {
    let mut out = Vec::new();
    let chosen = Negotiated::new(format, scheme);
    assert_eq!(encode_negotiated(registry, chosen, &mut out), chosen);
    out
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[test]
fn golden_bytes_for_every_format_and_scheme() {
    let r = registry();
    let bless = std::env::var_os("HOTMETER_BLESS").is_some();
    for (format, scheme, file) in cases() {
        let got = encode(&r, format, scheme);
        let path = golden_dir().join(file);
        if bless {
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want), "{format:?} {scheme}: {file}");
    }
}

#[test]
fn legacy_formats_escape_and_quoting_is_only_for_utf8_scrapers() {
    let r = registry();
    for (format, scheme, _) in cases() {
        let text = String::from_utf8(encode(&r, format, scheme)).unwrap();
        // A quote right after `{` or before `=` only appears where UTF-8 names are allowed.
        let quoted = text.contains("{\"") || text.contains("\"=\"") || text.contains("# TYPE \"");
        assert_eq!(quoted, scheme == EscapingScheme::AllowUtf8, "{format:?} {scheme}:\n{text}");
        // `le` is written in float form, `1.0` and never `1`.
        assert!(text.contains("le=\"1.0\"") && !text.contains("le=\"1\""), "{text}");
    }
}

#[test]
fn promtool_accepts_text_0_0_4() {
    let text = encode(&registry(), Text004, EscapingScheme::Underscores);
    if let Err(e) = promtool::check_metrics(&text) {
        panic!("promtool check metrics rejected text 0.0.4 of UTF-8 names: {e}\n{}", String::from_utf8_lossy(&text));
    }
}

/// Imports prometheus_client, installing the pinned version from PyPI
/// (`pip install --user`) if it is missing. Fails, never skips, when that
/// cannot be done: these parsers are half of what proves the output.
fn python_with_prometheus_client() -> &'static str {
    let python = "python3";
    let import = || {
        Command::new(python)
            .args(["-c", "import prometheus_client.openmetrics.parser, prometheus_client.parser"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if import() {
        return python;
    }
    let pip = Command::new(python)
        .args(["-m", "pip", "install", "--user", "--quiet", "--disable-pip-version-check", PROMETHEUS_CLIENT])
        .output();
    match pip {
        Ok(out) if out.status.success() && import() => python,
        Ok(out) => panic!(
            "prometheus_client is not importable and `{python} -m pip install --user {PROMETHEUS_CLIENT}` did not fix it \
             (status {}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("cannot run `{python}` to parse the exposition with prometheus_client: {e}"),
    }
}

#[test]
fn python_parsers_read_back_what_was_registered() {
    let python = python_with_prometheus_client();
    let dir = std::env::temp_dir().join(format!("hotmeter-utf8-exposition-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let r = registry();
    let mut cases_json = Vec::new();
    for (format, scheme, file) in cases() {
        let path = dir.join(file);
        std::fs::write(&path, encode(&r, format, scheme)).unwrap();
        let parser = if format.is_openmetrics() { "openmetrics" } else { "text" };
        cases_json.push(serde_json::json!({
            "path": path.to_str().unwrap(),
            "parser": parser,
            "samples": expected(scheme),
        }));
    }
    let cases_path = dir.join("cases.json");
    std::fs::write(&cases_path, serde_json::to_vec(&cases_json).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parse_exposition.py");
    let out = Command::new(python).arg(&script).arg(&cases_path).output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "prometheus_client disagrees:\n{report}");
    assert_eq!(report.lines().filter(|l| l.starts_with("ok ")).count(), cases().len(), "{report}");
}

/// `_created` samples (a registry built with `created_samples(true)`):
/// OpenMetrics carries one per counter, histogram and summary series, at
/// the metric's creation time, and prometheus_client's OpenMetrics parser
/// reads them back exactly; text formats never carry them.
#[test]
fn python_openmetrics_parser_reads_created_samples() {
    let python = python_with_prometheus_client();
    let r = Registry::builder().created_samples(true).build().unwrap();
    let jobs = r.labeled_family("jobs_total", "Jobs.", &["kind"], Counter::new).unwrap();
    jobs.with(&["a"], |c| c.inc_by(2)).unwrap();
    let b = jobs.get(&["a"]).unwrap();
    let lat = r.histogram("lat_seconds", "Latency.", Buckets::new([0.5]).unwrap()).unwrap();
    lat.observe(0.25);
    // Quantile lines are the summary encoder's business; none here.
    let opts = hotmeter::SummaryOpts { quantiles: Vec::new(), ..hotmeter::SummaryOpts::default() };
    let sizes = r.summary("size_bytes", "Sizes.", opts).unwrap();
    sizes.observe(10.0);
    r.gauge("level", "Level.").unwrap().set(1.0);
    let secs = |nanos: u64| (nanos / 1_000_000_000) as f64 + (nanos % 1_000_000_000) as f64 / 1e9;
    let now = secs(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64);
    for created in [b.created_unix_nanos(), lat.created_unix_nanos(), sizes.created_unix_nanos()] {
        assert!((now - secs(created)).abs() < 60.0, "created {created} is not about now ({now})");
    }
    let mut om = Vec::new();
    hotmeter_exporter::encode_openmetrics(&r, &mut om);
    let om = String::from_utf8(om).unwrap();
    let samples = vec![
        serde_json::json!(["jobs_total", {"kind": "a"}, 2.0]),
        serde_json::json!(["jobs_created", {"kind": "a"}, secs(b.created_unix_nanos())]),
        serde_json::json!(["hotmeter_label_overflow_total", {"metric": "jobs_total"}, 0.0]),
        serde_json::json!(["lat_seconds_bucket", {"le": "0.5"}, 1.0]),
        serde_json::json!(["lat_seconds_bucket", {"le": "+Inf"}, 1.0]),
        serde_json::json!(["lat_seconds_sum", {}, 0.25]),
        serde_json::json!(["lat_seconds_count", {}, 1.0]),
        serde_json::json!(["lat_seconds_created", {}, secs(lat.created_unix_nanos())]),
        serde_json::json!(["size_bytes_sum", {}, 10.0]),
        serde_json::json!(["size_bytes_count", {}, 1.0]),
        serde_json::json!(["size_bytes_created", {}, secs(sizes.created_unix_nanos())]),
        serde_json::json!(["level", {}, 1.0]),
    ];
    // The registry's own overflow counter keeps no creation time.
    assert!(!om.contains("hotmeter_label_overflow_created"), "{om}");
    let dir = std::env::temp_dir().join(format!("hotmeter-created-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("created.om");
    std::fs::write(&path, &om).unwrap();
    let cases_path = dir.join("cases.json");
    let cases = serde_json::json!([{ "path": path.to_str().unwrap(), "parser": "openmetrics", "samples": samples }]);
    std::fs::write(&cases_path, serde_json::to_vec(&cases).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parse_exposition.py");
    let out = Command::new(python).arg(&script).arg(&cases_path).output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "prometheus_client disagrees:\n{report}\n{om}");
    // Off by default, and never in the text formats.
    let mut text = Vec::new();
    hotmeter_exporter::encode_text(&r, &mut text);
    assert!(!String::from_utf8(text).unwrap().contains("_created"));
    let plain = Registry::new();
    plain.counter("c_total", "C.").unwrap().inc();
    let mut om = Vec::new();
    hotmeter_exporter::encode_openmetrics(&plain, &mut om);
    assert!(!String::from_utf8(om).unwrap().contains("_created"));
}
