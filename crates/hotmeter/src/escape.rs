//! UTF-8 names and the escaping schemes that show them to scrapers which
//! cannot take them: [`NameValidation`], [`EscapingScheme`],
//! [`is_legacy_metric_name`], [`is_legacy_label_name`].
//!
//! Owns: the one spelling of each escaping algorithm of Prometheus'
//! "UTF-8 escaping schemes" document, with the rule client_golang applies
//! on top of it: a name that is already legacy-valid is never escaped (not
//! even by `dots`, whose bare algorithm would double its underscores).
//! Must not: be reached from a recording path, or know any exposition
//! syntax beyond names (the encoders quote or escape; this module only says
//! what a name becomes).
//!
//! Spec: <https://prometheus.io/docs/instrumenting/escaping_schemes/>

use std::borrow::Cow;
use std::fmt;

/// What kind of name a [`NameError`](crate::NameError), or an escaping, is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A metric (family) name.
    Metric,
    /// A label name.
    Label,
}

/// Which names a [`Registry`](crate::Registry) accepts, chosen on its
/// [`RegistryBuilder`](crate::RegistryBuilder).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NameValidation {
    /// Today's rules: metric names `[a-zA-Z_:][a-zA-Z0-9_:]*`, label names
    /// `[a-zA-Z_][a-zA-Z0-9_]*`, no `__` label prefix.
    #[default]
    Legacy,
    /// Prometheus 3: any non-empty UTF-8 metric or label name; label names
    /// starting with `__` stay reserved. Names outside the legacy set are
    /// quoted for scrapers that allow UTF-8 and escaped for the others;
    /// registration refuses names whose escaped forms would collide.
    Utf8,
}

/// How an encoder shows a name outside the legacy character set, as the
/// scraper asked with `escaping=` in its `Accept` header.
///
/// Legacy-valid names are written as they are under every scheme.
///
/// ```
/// use hotmeter::expose::EscapingScheme;
/// use hotmeter::NameKind::Metric;
/// assert_eq!(EscapingScheme::Underscores.escape("my.metric/x", Metric), "my_metric_x");
/// assert_eq!(EscapingScheme::Dots.escape("my.metric_x", Metric), "my_dot_metric__x");
/// assert_eq!(EscapingScheme::Values.escape("my.metric_x", Metric), "U__my_2e_metric__x");
/// assert_eq!(EscapingScheme::AllowUtf8.escape("my.metric", Metric), "my.metric");
/// assert_eq!(EscapingScheme::Dots.escape("already_legal", Metric), "already_legal");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum EscapingScheme {
    /// `allow-utf-8`: names as registered; the encoder quotes those
    /// outside the legacy set.
    AllowUtf8,
    /// `underscores` (the default when none is asked for): every character
    /// outside the legacy set becomes `_`.
    Underscores,
    /// `dots`: `.` becomes `_dot_`, `_` becomes `__`, any other character
    /// outside the legacy set becomes `__`.
    Dots,
    /// `values`: the name gets a `U__` prefix, `_` becomes `__`, and any
    /// other character outside the legacy set becomes its code point in
    /// lower-case hex between underscores (`.` is `_2e_`).
    Values,
}

impl EscapingScheme {
    /// The schemes that rewrite names (every one but [`AllowUtf8`](Self::AllowUtf8)):
    /// the views registration checks for collisions.
    pub const ESCAPING: [EscapingScheme; 3] = [Self::Underscores, Self::Dots, Self::Values];

    /// The `escaping=` parameter value: `allow-utf-8`, `underscores`,
    /// `dots`, `values`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AllowUtf8 => "allow-utf-8",
            Self::Underscores => "underscores",
            Self::Dots => "dots",
            Self::Values => "values",
        }
    }

    /// Parses an `escaping=` parameter value (exactly, case-sensitive, as
    /// client_golang does); `None` for anything else.
    pub fn from_param(value: &str) -> Option<Self> {
        Some(match value {
            "allow-utf-8" => Self::AllowUtf8,
            "underscores" => Self::Underscores,
            "dots" => Self::Dots,
            "values" => Self::Values,
            _ => return None,
        })
    }

    /// What `name` (a metric name, or a label name) is written as under
    /// this scheme. Borrowed, with no work beyond one scan, when the name is
    /// legacy-valid for its kind or the scheme is `AllowUtf8`.
    ///
    /// For label names `:` is outside the legacy set (it is allowed in
    /// metric names only), so an escaped label name always parses as one.
    pub fn escape(self, name: &str, kind: NameKind) -> Cow<'_, str> {
        if self == Self::AllowUtf8 || name.is_empty() || is_legacy(name, kind) {
            return Cow::Borrowed(name);
        }
        let mut out = String::with_capacity(name.len() + 8);
        if self == Self::Values {
            out.push_str("U__");
        }
        for (i, c) in name.char_indices() {
            let legal = is_legacy_char(c, i, kind);
            match self {
                Self::AllowUtf8 => out.push(c),
                Self::Underscores => out.push(if legal { c } else { '_' }),
                Self::Dots => match c {
                    '_' => out.push_str("__"),
                    '.' => out.push_str("_dot_"),
                    c if legal => out.push(c),
                    _ => out.push_str("__"),
                },
                Self::Values => match c {
                    '_' => out.push_str("__"),
                    c if legal => out.push(c),
                    c => {
                        use fmt::Write;
                        // Writing to a String cannot fail.
                        let _ = write!(out, "_{:x}_", u32::from(c));
                    }
                },
            }
        }
        Cow::Owned(out)
    }
}

impl fmt::Display for EscapingScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `name` matches `[a-zA-Z_:][a-zA-Z0-9_:]*`, so every format can
/// write it bare.
pub fn is_legacy_metric_name(name: &str) -> bool {
    !name.is_empty() && is_legacy(name, NameKind::Metric)
}

/// Whether `name` matches `[a-zA-Z_][a-zA-Z0-9_]*`, so every format can
/// write it bare.
pub fn is_legacy_label_name(name: &str) -> bool {
    !name.is_empty() && is_legacy(name, NameKind::Label)
}

fn is_legacy(name: &str, kind: NameKind) -> bool {
    name.bytes().enumerate().all(|(i, b)| is_legacy_char(char::from(b), i, kind) && b.is_ascii())
}

fn is_legacy_char(c: char, i: usize, kind: NameKind) -> bool {
    c.is_ascii_alphabetic() || c == '_' || (c == ':' && kind == NameKind::Metric) || (c.is_ascii_digit() && i > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use NameKind::{Label, Metric};
    use proptest::prelude::*;

    #[test]
    fn the_documents_examples() {
        assert_eq!(EscapingScheme::Underscores.escape("metric.name/with/slashes", Metric), "metric_name_with_slashes");
        assert_eq!(EscapingScheme::Dots.escape("metric.name.with.dots", Metric), "metric_dot_name_dot_with_dot_dots");
        assert_eq!(EscapingScheme::Values.escape("metric.name", Metric), "U__metric_2e_name");
    }

    #[test]
    fn every_detail() {
        use EscapingScheme::*;
        // A leading digit is outside the set; later digits are not.
        assert_eq!(Underscores.escape("1a.b2", Metric), "_a_b2");
        assert_eq!(Dots.escape("1a.b2", Metric), "__a_dot_b2");
        assert_eq!(Values.escape("1a.b2", Metric), "U___31_a_2e_b2");
        // Multi-byte characters: one replacement per character, not per byte.
        assert_eq!(Underscores.escape("é€x", Metric), "__x");
        assert_eq!(Dots.escape("é€x", Metric), "____x");
        assert_eq!(Values.escape("é€x", Metric), "U___e9__20ac_x");
        assert_eq!(Values.escape("a😀", Metric), "U__a_1f600_");
        // Underscores double under dots and values, stay under underscores.
        assert_eq!(Underscores.escape("a_b.c", Metric), "a_b_c");
        assert_eq!(Dots.escape("a_b.c", Metric), "a__b_dot_c");
        assert_eq!(Values.escape("a_b.c", Metric), "U__a__b_2e_c");
        // Legacy-valid names are never rewritten, under any scheme.
        for s in EscapingScheme::ESCAPING {
            assert_eq!(s.escape("http_requests_total", Metric), "http_requests_total");
            assert!(matches!(s.escape("a:b", Metric), Cow::Borrowed(_)));
        }
        // `:` is legal in metric names only.
        assert_eq!(Underscores.escape("a:b", Label), "a_b");
        assert_eq!(Values.escape("a:b", Label), "U__a_3a_b");
        assert_eq!(AllowUtf8.escape("a.b", Label), "a.b");
    }

    #[test]
    fn parameter_names_round_trip() {
        for s in [EscapingScheme::AllowUtf8, EscapingScheme::Underscores, EscapingScheme::Dots, EscapingScheme::Values]
        {
            assert_eq!(EscapingScheme::from_param(s.as_str()), Some(s));
        }
        // The content-negotiation page's `allow-utf8` spelling is not the
        // parameter Prometheus sends (prometheus/docs#2747).
        assert_eq!(EscapingScheme::from_param("allow-utf8"), None);
        assert_eq!(EscapingScheme::from_param("Dots"), None);
    }

    proptest! {
        #[test]
        fn escaped_names_are_legacy_valid(s in "\\PC{1,12}") {
            for scheme in EscapingScheme::ESCAPING {
                let m = scheme.escape(&s, Metric);
                prop_assert!(is_legacy_metric_name(&m), "{scheme}: {s:?} -> {m:?}");
                let l = scheme.escape(&s, Label);
                prop_assert!(is_legacy_label_name(&l), "{scheme}: {s:?} -> {l:?}");
            }
        }
    }
}
