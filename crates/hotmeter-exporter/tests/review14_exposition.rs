//! Review of issue #14: hostile UTF-8 label names and native histograms in
//! the text formats.

use std::process::Command;

use hotmeter::{EscapingScheme, NameValidation, NativeOpts, Opts, Registry};
use hotmeter_exporter::ExpositionFormat::{self, OpenMetrics001, OpenMetrics100, Text004, Text100};
use hotmeter_exporter::{Negotiated, encode_negotiated};

fn render(r: &Registry, format: ExpositionFormat, scheme: EscapingScheme) -> String {
    let mut out = Vec::new();
    encode_negotiated(r, Negotiated::new(format, scheme), &mut out);
    String::from_utf8(out).unwrap()
}

/// Label names starting with `__` are refused at registration ("reserved by
/// Prometheus under both schemes"), but only as registered: `._name__`
/// escapes to `__name__` under `underscores` (what every text 0.0.4 scraper
/// gets), and `é` to `__` under `dots`. A scraper then reads a sample with
/// a `__name__` label (which overrides the metric name in Prometheus) or a
/// reserved label.
#[test]
fn escaped_label_names_never_become_reserved() {
    let r = Registry::builder().name_validation(NameValidation::Utf8).build().unwrap();
    let registered = r
        .string_family(Opts::new("requests_total", "Requests."), &["._name__", "é"], hotmeter::Counter::new)
        .map(|f| f.with(&["evil", "x"], |c| c.inc()).unwrap());
    if registered.is_err() {
        return; // Refusing such names at registration is a fix too.
    }
    for (format, scheme) in [
        (Text004, EscapingScheme::Underscores),
        (Text100, EscapingScheme::Underscores),
        (Text100, EscapingScheme::Dots),
        (OpenMetrics100, EscapingScheme::Dots),
    ] {
        let text = render(&r, format, scheme);
        for line in text.lines().filter(|l| l.starts_with("requests")) {
            assert!(!line.contains("{__") && !line.contains(",__"), "{format:?} {scheme}: reserved label name in {line:?}");
        }
    }
}

/// A native histogram without classic buckets is written in OpenMetrics as
/// a `histogram` family with only `_sum` and `_count`. OpenMetrics requires
/// every histogram point to have buckets ending in `+Inf`, so
/// prometheus_client's OpenMetrics parser (which the issue says must accept
/// everything hotmeter emits) rejects the exposition. client_golang writes
/// `_bucket{le="+Inf"} <count>` for a native-only histogram in text formats.
#[test]
fn openmetrics_native_histogram_without_classic_buckets_parses() {
    let r = Registry::new();
    let h = r.native_histogram("latency_seconds", "Latency.", NativeOpts::new()).unwrap();
    h.observe(0.25);
    h.observe(3.0);
    for format in [OpenMetrics100, OpenMetrics001] {
        let text = render(&r, format, EscapingScheme::Underscores);
        let dir = std::env::temp_dir().join(format!("review14-om-{}-{format:?}.prom", std::process::id()));
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
