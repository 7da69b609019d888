//! The one validator for metric and label names, used everywhere.
//!
//! Owns: the Prometheus naming rules (metric names `[a-zA-Z_:][a-zA-Z0-9_:]*`,
//! label names `[a-zA-Z_][a-zA-Z0-9_]*`, no `__` prefix on label names) and
//! the reserved label names, and their UTF-8 variant
//! ([`NameValidation::Utf8`]: any non-empty name, `__` label prefix still
//! reserved). Must not: allocate on success (validation), or escape names
//! (that is `escape`'s, at encoding).

use crate::error::{NameError, NameErrorReason};
use crate::escape::NameValidation;
pub use crate::escape::{is_legacy_label_name, is_legacy_metric_name};

/// Checks a metric name under `validation`: [`validate_metric_name`] for
/// `Legacy`; any non-empty name for `Utf8`.
///
/// ```
/// use hotmeter::NameValidation::{Legacy, Utf8};
/// assert!(hotmeter::name::validate_metric_name_as("my.metric", Utf8).is_ok());
/// assert!(hotmeter::name::validate_metric_name_as("my.metric", Legacy).is_err());
/// assert!(hotmeter::name::validate_metric_name_as("", Utf8).is_err());
/// ```
pub fn validate_metric_name_as(name: &str, validation: NameValidation) -> Result<(), NameError> {
    match validation {
        NameValidation::Legacy => validate_metric_name(name),
        NameValidation::Utf8 if name.is_empty() => Err(NameError::metric(name, NameErrorReason::Empty)),
        NameValidation::Utf8 => Ok(()),
    }
}

/// Checks a label name under `validation`: [`validate_label_name`] for
/// `Legacy`; for `Utf8` any non-empty name that does not start with `__`
/// (reserved by Prometheus under both schemes).
///
/// ```
/// use hotmeter::NameValidation::{Legacy, Utf8};
/// assert!(hotmeter::name::validate_label_name_as("service.name", Utf8).is_ok());
/// assert!(hotmeter::name::validate_label_name_as("service.name", Legacy).is_err());
/// assert!(hotmeter::name::validate_label_name_as("__x", Utf8).is_err());
/// ```
pub fn validate_label_name_as(name: &str, validation: NameValidation) -> Result<(), NameError> {
    match validation {
        NameValidation::Legacy => validate_label_name(name),
        NameValidation::Utf8 if name.is_empty() => Err(NameError::label(name, NameErrorReason::Empty)),
        NameValidation::Utf8 if name.starts_with("__") => Err(NameError::label(name, NameErrorReason::ReservedPrefix)),
        NameValidation::Utf8 => Ok(()),
    }
}

/// Checks a metric name against `[a-zA-Z_:][a-zA-Z0-9_:]*`.
///
/// ```
/// assert!(hotmeter::name::validate_metric_name("http_requests_total").is_ok());
/// assert!(hotmeter::name::validate_metric_name("2xx").is_err());
/// ```
pub fn validate_metric_name(name: &str) -> Result<(), NameError> {
    let bytes = name.as_bytes();
    let Some(&first) = bytes.first() else {
        return Err(NameError::metric(name, NameErrorReason::Empty));
    };
    if !(first.is_ascii_alphabetic() || first == b'_' || first == b':') {
        return Err(NameError::metric(name, NameErrorReason::BadFirstChar(char_at(name, 0))));
    }
    if let Some(pos) = bytes.iter().position(|&b| !(b.is_ascii_alphanumeric() || b == b'_' || b == b':')) {
        return Err(NameError::metric(name, NameErrorReason::BadChar(char_at(name, pos))));
    }
    Ok(())
}

/// The exposed name of `name` under an optional registry namespace: the one
/// place that spells the prefix rule (`{namespace}_{name}`), for every crate
/// that has to know what a [`Registry`](crate::Registry) built with
/// `.namespace(..)` will expose (generated rules, PromQL queries, status lines).
///
/// ```
/// assert_eq!(hotmeter::name::full_name(Some("engram"), "streaming_batches_total"), "engram_streaming_batches_total");
/// assert_eq!(hotmeter::name::full_name(None, "up"), "up");
/// ```
pub fn full_name(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => {
            let mut full = String::with_capacity(ns.len() + 1 + name.len());
            full.push_str(ns);
            full.push('_');
            full.push_str(name);
            full
        }
        None => name.to_owned(),
    }
}

/// Checks a label name against `[a-zA-Z_][a-zA-Z0-9_]*` and rejects the
/// `__` prefix, which Prometheus reserves for internal use.
///
/// ```
/// assert!(hotmeter::name::validate_label_name("status").is_ok());
/// assert!(hotmeter::name::validate_label_name("__name__").is_err());
/// ```
pub fn validate_label_name(name: &str) -> Result<(), NameError> {
    let bytes = name.as_bytes();
    let Some(&first) = bytes.first() else {
        return Err(NameError::label(name, NameErrorReason::Empty));
    };
    if !(first.is_ascii_alphabetic() || first == b'_') {
        return Err(NameError::label(name, NameErrorReason::BadFirstChar(char_at(name, 0))));
    }
    if let Some(pos) = bytes.iter().position(|&b| !(b.is_ascii_alphanumeric() || b == b'_')) {
        return Err(NameError::label(name, NameErrorReason::BadChar(char_at(name, pos))));
    }
    if name.starts_with("__") {
        return Err(NameError::label(name, NameErrorReason::ReservedPrefix));
    }
    Ok(())
}

/// Label names that a metric type generates itself and so cannot be given
/// by the user: `le` on histograms, `quantile` on summaries.
pub(crate) fn reserved_label_for(kind: crate::metric_type::MetricType) -> Option<&'static str> {
    match kind {
        crate::metric_type::MetricType::Histogram => Some("le"),
        crate::metric_type::MetricType::Summary => Some("quantile"),
        _ => None,
    }
}

fn char_at(s: &str, byte_pos: usize) -> char {
    s[byte_pos..].chars().next().unwrap_or('\u{fffd}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn is_metric_name_by_regex(s: &str) -> bool {
        let mut chars = s.chars();
        match chars.next() {
            Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':' => {}
            _ => return false,
        }
        chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }

    #[test]
    fn examples() {
        for ok in ["a", "_", ":", "a:b_c9", "process_cpu_seconds_total"] {
            assert!(validate_metric_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "9a", "a-b", "a b", "é", "a.b"] {
            assert!(validate_metric_name(bad).is_err(), "{bad}");
        }
        for ok in ["a", "_a", "status", "le"] {
            assert!(validate_label_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a:b", "__x", "1a", "ü"] {
            assert!(validate_label_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn error_names_the_input_and_the_character() {
        let e = validate_metric_name("http-requests").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("http-requests"), "{text}");
        assert!(text.contains("'-'"), "{text}");
    }

    proptest! {
        #[test]
        fn metric_names_agree_with_the_grammar(s in "\\PC{0,12}") {
            prop_assert_eq!(validate_metric_name(&s).is_ok(), is_metric_name_by_regex(&s));
        }

        #[test]
        fn generated_valid_names_pass(s in "[a-zA-Z_:][a-zA-Z0-9_:]{0,20}") {
            prop_assert!(validate_metric_name(&s).is_ok());
        }

        #[test]
        fn label_names_agree_with_the_grammar(s in "[a-zA-Z0-9_:\\-]{0,8}") {
            let by_grammar = is_metric_name_by_regex(&s)
                && !s.contains(':')
                && !s.starts_with("__");
            prop_assert_eq!(validate_label_name(&s).is_ok(), by_grammar);
        }
    }

    proptest! {
        /// The escaping module's fast legacy checks agree with the validator.
        #[test]
        fn legacy_check_agrees_with_the_validator(s in "\\PC{0,12}") {
            prop_assert_eq!(is_legacy_metric_name(&s), validate_metric_name(&s).is_ok());
            prop_assert_eq!(
                is_legacy_label_name(&s),
                validate_label_name(&s).is_ok() || (s.starts_with("__") && is_legacy_label_name(&s[1..]))
            );
        }
    }
}
