//! Hostile UTF-8 label names and native histograms in
//! the text formats.

use std::process::Command;

use hotmeter::expose::EscapingScheme;
use hotmeter::{NameValidation, NativeOpts, Opts, Registry, StringFamily};
use hotmeter_exporter::ExpositionFormat::{self, OpenMetrics001, OpenMetrics100, Text004, Text100};
use hotmeter_exporter::{Negotiated, encode_negotiated};

fn render(r: &Registry, format: ExpositionFormat, scheme: EscapingScheme) -> String {
    let mut out = Vec::new();
    encode_negotiated(r, Negotiated::new(format, scheme), &mut out);
    String::from_utf8(out).unwrap()
}

/// Label names starting with `__` are refused at registration, and so are
/// names that escape to one under `underscores`, what every legacy scraper
/// gets: `._name__` would become `__name__` (which renames the series in
/// Prometheus), `é_x` would become `__x`. Under `dots`, a leading non-ASCII
/// letter becomes `__` by the scheme's definition; those names stay legal.
#[test]
fn escaped_label_names_never_become_reserved_for_legacy_scrapers() {
    let r = Registry::builder().name_validation(NameValidation::Utf8).build().unwrap();
    for hostile in ["._name__", "é_x", "_.x"] {
        let e = r
            .register(Opts::new("requests_total", "Requests."), StringFamily::new(&[hostile], hotmeter::Counter::new))
            .map(|_| ())
            .unwrap_err();
        let hotmeter::RegistryError::InvalidName(e) = e else { panic!("{hostile}: {e:?}") };
        assert_eq!(e.reason, hotmeter::NameErrorReason::ReservedPrefix, "{hostile}: {e}");
    }
    // Legal UTF-8 label names register, and no legacy scraper sees `__`.
    let fam = r
        .register(
            Opts::new("fine_total", "F."),
            StringFamily::new(&["http.method", "é", "ünïcode"], hotmeter::Counter::new),
        )
        .unwrap();
    fam.with(&["GET", "x", "y"], |c| c.inc()).unwrap();
    for (format, scheme) in [
        (Text004, EscapingScheme::Underscores),
        (Text100, EscapingScheme::Underscores),
        (Text100, EscapingScheme::Values),
        (OpenMetrics100, EscapingScheme::Underscores),
    ] {
        let text = render(&r, format, scheme);
        let line = text.lines().find(|l| l.starts_with("fine")).unwrap();
        assert!(!line.contains("{__") && !line.contains(",__"), "{format:?} {scheme}: reserved label name in {line:?}");
    }
}

/// A native histogram without classic buckets is written in the text
/// formats with one `_bucket{le="+Inf"}` line beside `_sum` and `_count`,
/// as client_golang writes it: OpenMetrics requires every histogram point to
/// end in a `+Inf` bucket, and prometheus_client's OpenMetrics parser (which
/// must accept everything hotmeter emits) rejects one without.
#[test]
fn openmetrics_native_histogram_without_classic_buckets_parses() {
    let r = Registry::new();
    let h = r.native_histogram("latency_seconds", "Latency.", NativeOpts::new()).unwrap();
    h.observe(0.25);
    h.observe(3.0);
    for format in [OpenMetrics100, OpenMetrics001] {
        let text = render(&r, format, EscapingScheme::Underscores);
        let dir = std::env::temp_dir().join(format!("hotmeter-native-om-{}-{format:?}.prom", std::process::id()));
        std::fs::write(&dir, &text).unwrap();
        let script = "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as p\nlist(p(open(sys.argv[1]).read()))\n";
        let out = Command::new("python3").arg("-c").arg(script).arg(&dir).output().expect("python3");
        assert!(
            out.status.success(),
            "{format:?}: prometheus_client's OpenMetrics parser rejects:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
