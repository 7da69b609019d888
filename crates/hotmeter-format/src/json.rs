//! A JSON snapshot for people and scripts: every family with its labels and
//! values; histograms with cumulative buckets and P50/P95/P99 estimates.
//!
//! Owns: the JSON encoding. Non-finite numbers are written as the strings
//! `"NaN"`, `"+Inf"`, `"-Inf"` (JSON has no spelling for them). Must not:
//! hold locks recording waits on.

use hotmeter::Registry;
use hotmeter::expose::{Desc, Labels, Value, Visitor, histogram_quantile};

/// Content type of the JSON snapshot.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// Appends a JSON snapshot of `registry` to `out`.
///
/// ```
/// let registry = hotmeter::Registry::new();
/// registry.gauge("temperature_celsius", "Room \"temp\".")?.set(21.5);
/// let mut out = Vec::new();
/// hotmeter_format::encode_json(&registry, &mut out);
/// assert_eq!(
///     String::from_utf8(out).unwrap(),
///     r#"{"families":[{"name":"temperature_celsius","help":"Room \"temp\".","type":"gauge","unit":null,"series":[{"labels":{},"value":21.5}]}]}"#
/// );
/// # Ok::<(), hotmeter::RegistryError>(())
/// ```
pub fn encode_json(registry: &Registry, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"families\":[");
    let mut enc = JsonEncoder { out, families: 0, series: 0 };
    registry.collect(&mut enc);
    if enc.families > 0 {
        enc.out.extend_from_slice(b"]}");
    }
    out.extend_from_slice(b"]}");
}

struct JsonEncoder<'a> {
    out: &'a mut Vec<u8>,
    families: usize,
    series: usize,
}

impl Visitor for JsonEncoder<'_> {
    fn family(&mut self, desc: &Desc) {
        let out = &mut *self.out;
        if self.families > 0 {
            out.extend_from_slice(b"]},");
        }
        self.families += 1;
        self.series = 0;
        out.extend_from_slice(b"{\"name\":");
        write_json_string(out, &desc.name);
        out.extend_from_slice(b",\"help\":");
        write_json_string(out, &desc.help);
        out.extend_from_slice(b",\"type\":");
        write_json_string(out, desc.kind.as_str());
        out.extend_from_slice(b",\"unit\":");
        match &desc.unit {
            Some(u) => write_json_string(out, u.as_str()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"series\":[");
    }

    fn sample(&mut self, labels: &Labels<'_>, value: &Value<'_>) {
        let out = &mut *self.out;
        if self.series > 0 {
            out.push(b',');
        }
        self.series += 1;
        out.extend_from_slice(b"{\"labels\":");
        write_json_object(out, labels.iter());
        match *value {
            Value::Counter(v) | Value::TracedCounter { total: v, .. } => {
                out.extend_from_slice(b",\"value\":");
                out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
            }
            Value::IntGauge(v) => {
                out.extend_from_slice(b",\"value\":");
                out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
            }
            Value::FloatCounter(v) | Value::Gauge(v) => {
                out.extend_from_slice(b",\"value\":");
                write_json_number(out, v);
            }
            Value::Histogram { bounds, counts, sum, count, exemplars: _ } => {
                out.extend_from_slice(b",\"count\":");
                out.extend_from_slice(itoa::Buffer::new().format(count).as_bytes());
                out.extend_from_slice(b",\"sum\":");
                write_json_number(out, sum);
                buckets(out, bounds, counts);
                for (key, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)] {
                    quantile(out, key, histogram_quantile(bounds, counts, q));
                }
            }
            Value::NativeHistogram { native, bounds, counts, exemplars: _ } => {
                out.extend_from_slice(b",\"count\":");
                out.extend_from_slice(itoa::Buffer::new().format(native.count).as_bytes());
                out.extend_from_slice(b",\"sum\":");
                write_json_number(out, native.sum);
                out.extend_from_slice(b",\"schema\":");
                out.extend_from_slice(itoa::Buffer::new().format(native.schema).as_bytes());
                out.extend_from_slice(b",\"zero_threshold\":");
                write_json_number(out, native.zero_threshold);
                out.extend_from_slice(b",\"zero_count\":");
                out.extend_from_slice(itoa::Buffer::new().format(native.zero_count).as_bytes());
                for (key, buckets) in [("positive", native.positive), ("negative", native.negative)] {
                    out.extend_from_slice(b",\"");
                    out.extend_from_slice(key.as_bytes());
                    out.extend_from_slice(b"\":[");
                    for (i, &(k, c)) in buckets.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        out.push(b'[');
                        out.extend_from_slice(itoa::Buffer::new().format(k).as_bytes());
                        out.push(b',');
                        out.extend_from_slice(itoa::Buffer::new().format(c).as_bytes());
                        out.push(b']');
                    }
                    out.push(b']');
                }
                if !bounds.is_empty() {
                    buckets(out, bounds, counts);
                }
                for (key, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)] {
                    quantile(out, key, native.quantile(q));
                }
            }
            Value::Summary { quantiles, sum, count } => {
                out.extend_from_slice(b",\"count\":");
                out.extend_from_slice(itoa::Buffer::new().format(count).as_bytes());
                out.extend_from_slice(b",\"sum\":");
                write_json_number(out, sum);
                out.extend_from_slice(b",\"quantiles\":[");
                for (i, &(q, v)) in quantiles.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(b"{\"quantile\":");
                    write_json_number(out, q);
                    out.extend_from_slice(b",\"value\":");
                    write_json_number(out, v);
                    out.push(b'}');
                }
                out.push(b']');
            }
        }
        out.push(b'}');
    }
}

/// `,"buckets":[{"le":..,"count":..},..]` with cumulative counts.
fn buckets(out: &mut Vec<u8>, bounds: &[f64], counts: &[u64]) {
    out.extend_from_slice(b",\"buckets\":[");
    let mut cumulative = 0u64;
    for (i, &c) in counts.iter().enumerate() {
        cumulative += c;
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"le\":");
        write_json_number(out, bounds.get(i).copied().unwrap_or(f64::INFINITY));
        out.extend_from_slice(b",\"count\":");
        out.extend_from_slice(itoa::Buffer::new().format(cumulative).as_bytes());
        out.push(b'}');
    }
    out.push(b']');
}

/// `,"key":value` for a quantile estimate, `null` when there is none.
fn quantile(out: &mut Vec<u8>, key: &str, v: Option<f64>) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    match v {
        Some(v) => write_json_number(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends `v` as a JSON number, or as the string `"NaN"`, `"+Inf"` or
/// `"-Inf"` (JSON has no spelling for them), as [`encode_json`] writes values.
pub fn write_json_number(out: &mut Vec<u8>, v: f64) {
    let quoted = !v.is_finite();
    if quoted {
        out.push(b'"');
    }
    hotmeter::expose::write_f64(out, v);
    if quoted {
        out.push(b'"');
    }
}

/// Appends `pairs` as a JSON object of strings, `{"name":"value",...}`, in
/// order (a series' labels, as [`encode_json`] writes them).
pub fn write_json_object<'a>(out: &mut Vec<u8>, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) {
    out.push(b'{');
    for (i, (name, value)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_string(out, name);
        out.push(b':');
        write_json_string(out, value);
    }
    out.push(b'}');
}

/// Appends `s` as a JSON string, with the escapes RFC 8259 requires.
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}
