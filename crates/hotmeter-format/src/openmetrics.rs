//! OpenMetrics text 1.0.0 (and 0.0.1, the version Prometheus 2 asked for
//! second), chosen by content negotiation ([`crate::negotiate`]).
//!
//! Owns: the OpenMetrics-specific parts (content type, `# EOF`, and the
//! deprecated [`wants_openmetrics`]); the writing itself is the encoder shared with the
//! Prometheus text format in [`crate::text`], which names counter families
//! without `_total` and their samples with it, writes `# UNIT` where the
//! family name carries the unit, and escapes `"` in HELP. Must not: hold
//! locks recording waits on.
//!
//! 0.0.1 and 1.0.0: everything this encoder writes is spelled the same in
//! both (Prometheus parses them with one parser); they differ only in what
//! a scraper asking for 0.0.1 can take, so 0.0.1 never gets quoted UTF-8
//! names (`escaping` is always `underscores`). Neither version gets
//! `_created` samples yet.
//!
//! Exemplars: every sample line goes through one writer
//! (`text::Encoder::sample_line`), which is where an exemplar
//! (` # {trace_id="..."} value`) would be appended once the core records
//! them.
//!
//! Spec: <https://github.com/OpenObservability/OpenMetrics/blob/main/specification/OpenMetrics.md>

use hotmeter::Registry;

use crate::text::{Encoder, Format};

/// Content type of OpenMetrics 1.0 text.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Appends the OpenMetrics 1.0 text of everything in `registry` to `out`,
/// ending with `# EOF`.
///
/// ```
/// let registry = hotmeter::Registry::new();
/// registry.counter("jobs_total", "Jobs run.")?.inc();
/// let mut out = Vec::new();
/// hotmeter_format::encode_openmetrics(&registry, &mut out);
/// assert_eq!(
///     String::from_utf8(out).unwrap(),
///     "# HELP jobs Jobs run.\n# TYPE jobs counter\njobs_total 1\n# EOF\n"
/// );
/// # Ok::<(), hotmeter::RegistryError>(())
/// ```
pub fn encode_openmetrics(registry: &Registry, out: &mut Vec<u8>) {
    let mut encoder = Encoder::new(out, Format::OpenMetrics, hotmeter::expose::EscapingScheme::Underscores);
    encoder.created = registry.created_samples();
    registry.collect(&mut encoder);
    out.extend_from_slice(b"# EOF\n");
}

/// Whether an `Accept` header asks for OpenMetrics (any
/// `application/openmetrics-text` entry with a non-zero quality).
#[deprecated(
    since = "0.1.0",
    note = "ignores q-value order, versions and escaping; use `negotiate(accept, offered)`, whose result names the format and its exact Content-Type"
)]
pub fn wants_openmetrics(accept: &str) -> bool {
    accept.split(',').any(|entry| {
        let mut parts = entry.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        if !media.eq_ignore_ascii_case("application/openmetrics-text") {
            return false;
        }
        let q = parts.find_map(|p| p.strip_prefix("q=")).and_then(|q| q.parse::<f32>().ok()).unwrap_or(1.0);
        q > 0.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(deprecated)]
    fn negotiation() {
        assert!(wants_openmetrics("application/openmetrics-text; version=1.0.0"));
        assert!(wants_openmetrics(
            "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1"
        ));
        assert!(!wants_openmetrics("text/plain"));
        assert!(!wants_openmetrics("application/openmetrics-text;q=0"));
        assert!(!wants_openmetrics(""));
    }
}
