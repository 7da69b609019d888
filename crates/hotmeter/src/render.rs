//! Exposition syntax shared by the text formats, and its per-series cache:
//! [`write_label_set`], [`escape_label_value`], and the pre-rendered
//! sample prefix a series keeps (`RenderCache`).
//!
//! Owns: escaping of label values (backslash, double quote, line feed),
//! the spelling of a label set, and the cache keyed by registration
//! identity. Must not: know formats beyond the label set and sample prefix
//! (the encoders own those), or be reached from a recording path.

use crate::desc::Desc;
use crate::sync::OnceLock;
use crate::value::{LabelValues, Labels, Rendered};

/// A series' cached [`Rendered`] prefix, tagged with the registration
/// identity ([`Desc`]'s `id`) it was rendered for. Any other registration
/// of the same handle (a second registry with other constant labels, or a
/// re-registration under a new name after `unregister`) gets `None` and
/// renders on the encoder's slow path: never a stale name.
#[derive(Debug, Default)]
pub(crate) struct RenderCache(OnceLock<(u64, Box<[u8]>, u32, u32)>);

impl RenderCache {
    /// The cached rendering for `desc`, rendering it on first use.
    pub(crate) fn get<'a>(&'a self, desc: &Desc, values: LabelValues<'_>) -> Option<Rendered<'a>> {
        let id = desc.id;
        let (owner, bytes, labels_start, labels_end) = self.0.get_or_init(|| {
            let mut out = Vec::with_capacity(desc.name.len() + 64);
            let (start, end) = write_sample_prefix(&mut out, desc, values);
            (id, out.into_boxed_slice(), start, end)
        });
        (*owner == id).then_some(Rendered { bytes, labels_start: *labels_start, labels_end: *labels_end })
    }
}

/// Appends a series' sample prefix, `name{a="x",b="y"} ` (or `name ` when
/// it has no labels), and returns where its label set (`{a="x",b="y"`, no
/// closing brace) starts and ends in `out`, relative to where the prefix
/// starts. One prefix (a series' name and label values) is taken to be under
/// 4 GiB, which no label value in memory twice comes near.
pub(crate) fn write_sample_prefix(out: &mut Vec<u8>, desc: &Desc, values: LabelValues<'_>) -> (u32, u32) {
    let begin = out.len();
    out.extend_from_slice(desc.name.as_bytes());
    let start = out.len();
    write_label_set(out, &Labels { desc, values, rendered: None, created: None });
    let end = out.len();
    out.extend_from_slice(if end > start { b"} " } else { b" " });
    ((start - begin) as u32, (end - begin) as u32)
}

/// Writes a series' label set as the Prometheus text and OpenMetrics
/// formats both spell it: `{name="value",name="value"` with values escaped
/// (`\` `\"` `\n`) and **without** the closing brace, so an encoder can
/// append `le`/`quantile` before closing it. Writes nothing for a series
/// without labels.
///
/// ```
/// let r = hotmeter::Registry::builder().const_label("host", "a\"b").build()?;
/// r.counter("c_total", "C.")?.inc();
/// struct V(Vec<u8>);
/// impl hotmeter::expose::Visitor for V {
///     fn family(&mut self, _: &hotmeter::expose::Desc) {}
///     fn sample(&mut self, labels: &hotmeter::expose::Labels<'_>, _: &hotmeter::expose::Value<'_>) {
///         hotmeter::expose::write_label_set(&mut self.0, labels);
///     }
/// }
/// let mut v = V(Vec::new());
/// r.collect(&mut v);
/// assert_eq!(v.0, br#"{host="a\"b""#);
/// # Ok::<(), hotmeter::RegistryError>(())
/// ```
pub fn write_label_set(out: &mut Vec<u8>, labels: &Labels<'_>) {
    for (i, (name, value)) in labels.iter().enumerate() {
        out.push(if i == 0 { b'{' } else { b',' });
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"=\"");
        escape_label_value(out, value);
        out.push(b'"');
    }
}

/// Writes `v` as the Prometheus exposition formats spell floats: shortest
/// round-trip digits, `+Inf`, `-Inf`, `NaN` (the one spelling every
/// encoder, scraped or pushed, uses).
///
/// ```
/// let mut out = Vec::new();
/// for v in [0.005, 1.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
///     hotmeter::expose::write_f64(&mut out, v);
///     out.push(b' ');
/// }
/// assert_eq!(out, b"0.005 1.0 +Inf -Inf NaN ");
/// ```
pub fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v == f64::INFINITY {
        out.extend_from_slice(b"+Inf");
    } else if v == f64::NEG_INFINITY {
        out.extend_from_slice(b"-Inf");
    } else {
        // `zmij` (the successor of `ryu`, by the same author) gives the same
        // shortest round-trip digits at about 2.6x the speed, but writes a
        // positive exponent with a sign (`1e+16`); the spelling kept here is
        // `ryu`'s (`1e16`), which every earlier scrape and test used.
        let mut buffer = zmij::Buffer::new();
        let text = buffer.format_finite(v).as_bytes();
        // Only values far from 1 have a positive exponent: the scan for its
        // sign is skipped for the others.
        match (v.abs() >= 1e15).then(|| text.iter().position(|&b| b == b'+')).flatten() {
            Some(sign) => {
                out.extend_from_slice(&text[..sign]);
                out.extend_from_slice(&text[sign + 1..]);
            }
            None => out.extend_from_slice(text),
        }
    }
}

/// Escapes a label value for the exposition formats: backslash, double
/// quote and line feed.
pub fn escape_label_value(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    // Fast path: most values need no escaping.
    if !bytes.iter().any(|&b| matches!(b, b'\\' | b'"' | b'\n')) {
        out.extend_from_slice(bytes);
        return;
    }
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::write_f64;

    fn written(v: f64) -> String {
        let mut out = Vec::new();
        write_f64(&mut out, v);
        String::from_utf8(out).expect("ASCII")
    }

    /// Digit for digit what `ryu` writes, which every earlier release
    /// wrote: every power of ten and its neighbours across the whole range
    /// (where the spelling switches between plain and exponent forms), the
    /// extremes, and a million pseudo-random bit patterns.
    #[test]
    fn writes_what_ryu_writes() {
        let mut values =
            vec![0.0, -0.0, f64::MAX, f64::MIN, f64::MIN_POSITIVE, 5e-324, -5e-324, 1e15, 1e16, 1e21, 1e22];
        for e in -330..=308 {
            let p = format!("1e{e}").parse::<f64>().expect("a float");
            for v in [
                p,
                1.5 * p,
                9.999_999_999 * p,
                -p,
                f64::from_bits(p.to_bits() + 1),
                f64::from_bits(p.to_bits().saturating_sub(1)),
            ] {
                values.push(v);
            }
        }
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..1_000_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(f64::from_bits(x));
        }
        let mut checked = 0;
        for v in values.into_iter().filter(|v| v.is_finite()) {
            assert_eq!(written(v), ryu::Buffer::new().format_finite(v), "{v:e}");
            checked += 1;
        }
        assert!(checked > 900_000);
        assert_eq!(written(f64::NAN), "NaN");
        assert_eq!(written(f64::INFINITY), "+Inf");
        assert_eq!(written(f64::NEG_INFINITY), "-Inf");
        assert_eq!(written(1e16), "1e16");
        assert_eq!(written(-2.5e300), "-2.5e300");
    }
}
