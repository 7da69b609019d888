//! The Prometheus text format 0.0.4, written from one walk of a registry,
//! for Pushgateway bodies: `encode_text`.
//!
//! Owns: `# HELP`/`# TYPE` lines, sample lines, cumulative `_bucket{le}`
//! lines, `{quantile}` lines (floats spelled by the core's
//! [`hotmeter::expose::write_f64`], as the exporter spells them), and the escaping
//! of UTF-8 names. Must not: import the exporter (the two crates stand on
//! the same floor); label values are escaped by the core's
//! [`hotmeter::expose::escape_label_value`], the one the exporter uses.
//!
//! Text 0.0.4 has no UTF-8 names, and the Pushgateway parses what it is
//! pushed as 0.0.4: a family registered with UTF-8 names
//! (`NameValidation::Utf8`) is written with its metric and label names
//! escaped by the `underscores` scheme, as the exporter serves 0.0.4 (and
//! the names then match what remote_write sends). Families whose names are
//! all legacy ([`hotmeter::expose::Desc::names_are_legacy`]) are written as
//! registered, on the same path as before.

use hotmeter::expose::{Desc, EscapingScheme, Labels, Value, Visitor, escape_label_value, write_f64};
use hotmeter::{NameKind, Registry};

/// The content type of what [`encode_text`] writes.
pub(crate) const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Appends the whole registry to `out` in the text format 0.0.4.
pub(crate) fn encode_text(registry: &Registry, out: &mut Vec<u8>) {
    registry.collect(&mut TextWriter { out, name: String::new(), label_names: None });
}

struct TextWriter<'a> {
    out: &'a mut Vec<u8>,
    /// The family's metric name as written (escaped if not legacy).
    name: String,
    /// The family's label names escaped, constant labels first; `None`
    /// when every name is legacy and is written as registered.
    label_names: Option<Vec<String>>,
}

enum Num {
    U(u64),
    I(i64),
    F(f64),
}

impl TextWriter<'_> {
    fn line(&mut self, suffix: &str, labels: &Labels<'_>, extra: Option<(&str, f64)>, value: Num) {
        let out = &mut *self.out;
        out.extend_from_slice(self.name.as_bytes());
        out.extend_from_slice(suffix.as_bytes());
        let before = out.len();
        match &self.label_names {
            None => hotmeter::expose::write_label_set(out, labels),
            Some(names) => {
                for (i, name) in names.iter().enumerate() {
                    let Some((_, value)) = labels.get(i) else { continue };
                    out.push(if out.len() > before { b',' } else { b'{' });
                    out.extend_from_slice(name.as_bytes());
                    out.extend_from_slice(b"=\"");
                    escape_label_value(out, value);
                    out.push(b'"');
                }
            }
        }
        if let Some((name, v)) = extra {
            out.push(if out.len() > before { b',' } else { b'{' });
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"=\"");
            write_f64(out, v);
            out.push(b'"');
        }
        if out.len() > before {
            out.push(b'}');
        }
        out.push(b' ');
        match value {
            Num::U(v) => out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
            Num::I(v) => out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
            Num::F(v) => write_f64(out, v),
        }
        out.push(b'\n');
    }
}

impl Visitor for TextWriter<'_> {
    fn family(&mut self, desc: &Desc) {
        self.name.clear();
        if desc.names_are_legacy() {
            self.name.push_str(&desc.name);
            self.label_names = None;
        } else {
            let scheme = EscapingScheme::Underscores;
            self.name.push_str(&scheme.escape(&desc.name, NameKind::Metric));
            let names = desc.const_labels.iter().map(|(n, _)| n).chain(&desc.label_names);
            self.label_names = Some(names.map(|n| scheme.escape(n, NameKind::Label).into_owned()).collect());
        }
        let out = &mut *self.out;
        if !desc.help.is_empty() {
            out.extend_from_slice(b"# HELP ");
            out.extend_from_slice(self.name.as_bytes());
            out.push(b' ');
            out.extend_from_slice(desc.help.replace('\\', "\\\\").replace('\n', "\\n").as_bytes());
            out.push(b'\n');
        }
        out.extend_from_slice(b"# TYPE ");
        out.extend_from_slice(self.name.as_bytes());
        out.push(b' ');
        out.extend_from_slice(desc.kind.as_str().as_bytes());
        out.push(b'\n');
    }

    fn sample(&mut self, labels: &Labels<'_>, value: &Value<'_>) {
        match *value {
            Value::Counter(v) | Value::TracedCounter { total: v, .. } => self.line("", labels, None, Num::U(v)),
            Value::FloatCounter(v) | Value::Gauge(v) => self.line("", labels, None, Num::F(v)),
            Value::IntGauge(v) => self.line("", labels, None, Num::I(v)),
            Value::Histogram { bounds, counts, sum, count, exemplars: _ } => {
                let mut cumulative = 0u64;
                for (i, &c) in counts.iter().enumerate() {
                    cumulative += c;
                    let le = bounds.get(i).copied().unwrap_or(f64::INFINITY);
                    self.line("_bucket", labels, Some(("le", le)), Num::U(cumulative));
                }
                self.line("_sum", labels, None, Num::F(sum));
                self.line("_count", labels, None, Num::U(count));
            }
            // The Pushgateway's text format has no exponential buckets:
            // the classic ones kept alongside, or else the one `+Inf` bucket.
            Value::NativeHistogram { native, bounds, counts, exemplars: _ } => {
                let inf = [native.count];
                let counts = if bounds.is_empty() { &inf[..] } else { counts };
                let mut cumulative = 0u64;
                for (i, &c) in counts.iter().enumerate() {
                    cumulative += c;
                    let le = bounds.get(i).copied().unwrap_or(f64::INFINITY);
                    self.line("_bucket", labels, Some(("le", le)), Num::U(cumulative));
                }
                self.line("_sum", labels, None, Num::F(native.sum));
                self.line("_count", labels, None, Num::U(native.count));
            }
            Value::Summary { quantiles, sum, count } => {
                for &(q, v) in quantiles {
                    self.line("", labels, Some(("quantile", q)), Num::F(v));
                }
                self.line("_sum", labels, None, Num::F(sum));
                self.line("_count", labels, None, Num::U(count));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotmeter::{Buckets, Counter, NameValidation, NativeOpts};

    #[test]
    fn golden_text() {
        let r = Registry::new();
        let fam = r.string_family(("jobs_total", "Jobs\\done\nhere."), &["kind"], Counter::new).unwrap();
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
        let r =
            Registry::builder().name_validation(NameValidation::Utf8).const_label("zone.id", "z\"1").build().unwrap();
        let fam =
            r.string_family(("http.requests_total", "Requests."), &["service.name", "code"], Counter::new).unwrap();
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
}
