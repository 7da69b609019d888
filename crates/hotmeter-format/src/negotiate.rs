//! Scrape content negotiation: which of the five exposition formats, and
//! which escaping scheme, an `Accept` header asks for: [`negotiate`],
//! [`ExpositionFormat`], [`Offered`], [`Negotiated`].
//!
//! Owns: parsing `Accept` (media ranges, parameters, quoted strings,
//! `q` values), the choice among the formats the server says it can
//! produce, and the exact response `Content-Type`. A pure function of its
//! inputs. Must not: encode anything (the encoders do), or ever fail or
//! panic on a header: anything unusable falls back to text 0.0.4.
//!
//! Rules, from Prometheus' content-negotiation and escaping-scheme
//! documents, and client_golang where they are silent:
//! - The entry with the highest `q` that names a format the server offers
//!   wins; `q=0` excludes. A format's `q` is the one of the most specific
//!   entry that matches it (RFC 9110 12.5.1): an exact type with a version
//!   beats the bare type, which beats `text/*` or `application/*`, which
//!   beats `*/*`. Equal `q`: the more specific entry, then the one earlier
//!   in the header, then the server's order (text 0.0.4, text 1.0.0,
//!   OpenMetrics 1.0.0, OpenMetrics 0.0.1, protobuf) for a wildcard.
//! - `text/plain` without `version` is 0.0.4; `application/openmetrics-text`
//!   without `version` is 0.0.1 (as client_golang negotiates it); any other
//!   version, or protobuf without `proto=io.prometheus.client.MetricFamily`
//!   and `encoding=delimited`, matches nothing.
//! - `escaping=` takes `allow-utf-8`, `underscores`, `dots`, `values`. No
//!   parameter, or one with any other value (client_golang ignores unknown
//!   values; this includes the `allow-utf8` spelling of the negotiation page,
//!   which Prometheus does not send), means `underscores`. Text 0.0.4 and
//!   OpenMetrics 0.0.1 cannot carry UTF-8 names and always get
//!   `underscores`, with no `escaping=` in their content type.
//! - Nothing acceptable: text 0.0.4.
//!
//! Spec: <https://prometheus.io/docs/instrumenting/content_negotiation/>,
//! <https://prometheus.io/docs/instrumenting/escaping_schemes/>

use hotmeter::expose::EscapingScheme;

/// Content type of the Prometheus text format 0.0.4 (what [`encode_text`](crate::encode_text)
/// writes, and what a scrape that asks for nothing in particular gets).
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One of the exposition formats Prometheus negotiates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExpositionFormat {
    /// Length-delimited `io.prometheus.client.MetricFamily` protobuf.
    Protobuf,
    /// Prometheus text 0.0.4 (legacy names only).
    Text004,
    /// Prometheus text 1.0.0: 0.0.4 plus quoted UTF-8 names.
    Text100,
    /// OpenMetrics text 0.0.1 (what Prometheus 2 asked for; legacy names).
    OpenMetrics001,
    /// OpenMetrics text 1.0.0, with quoted UTF-8 names when allowed.
    OpenMetrics100,
}

impl ExpositionFormat {
    /// Every format, in the server's order of preference among those a
    /// wildcard matches.
    pub const ALL: [ExpositionFormat; 5] =
        [Self::Text004, Self::Text100, Self::OpenMetrics100, Self::OpenMetrics001, Self::Protobuf];

    fn bit(self) -> u8 {
        match self {
            Self::Protobuf => 1,
            Self::Text004 => 2,
            Self::Text100 => 4,
            Self::OpenMetrics001 => 8,
            Self::OpenMetrics100 => 16,
        }
    }

    /// Whether the format can write UTF-8 names quoted (`allow-utf-8`).
    pub fn carries_escaping(self) -> bool {
        matches!(self, Self::Protobuf | Self::Text100 | Self::OpenMetrics100)
    }

    /// Whether it is one of the OpenMetrics versions.
    pub fn is_openmetrics(self) -> bool {
        matches!(self, Self::OpenMetrics001 | Self::OpenMetrics100)
    }

    fn is_text_type(self) -> bool {
        matches!(self, Self::Text004 | Self::Text100)
    }
}

/// The formats a server can produce: what [`negotiate`] may choose from.
/// Text 0.0.4, the last resort, is always in.
///
/// ```
/// use hotmeter_format::{ExpositionFormat, Offered};
/// assert!(!Offered::TEXT.contains(ExpositionFormat::Protobuf));
/// assert!(Offered::ALL.contains(ExpositionFormat::Protobuf));
/// assert!(Offered::TEXT.without(ExpositionFormat::Text004).contains(ExpositionFormat::Text004));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Offered(u8);

impl Offered {
    /// All five formats, whatever this crate's features: a server offers
    /// what it writes, so one built without protobuf offers
    /// [`TEXT`](Self::TEXT) (a constant that changed with a feature would
    /// change when another crate in the build turned that feature on).
    pub const ALL: Offered = Offered(31);
    /// The four text formats (no protobuf).
    pub const TEXT: Offered = Offered(30);

    /// This set and `format`.
    #[must_use]
    pub fn with(self, format: ExpositionFormat) -> Self {
        Self(self.0 | format.bit())
    }

    /// This set without `format` (text 0.0.4 stays: it is the fallback).
    #[must_use]
    pub fn without(self, format: ExpositionFormat) -> Self {
        Self((self.0 & !format.bit()) | ExpositionFormat::Text004.bit())
    }

    /// Whether `format` is offered.
    pub fn contains(self, format: ExpositionFormat) -> bool {
        format == ExpositionFormat::Text004 || self.0 & format.bit() != 0
    }
}

/// What [`negotiate`] chose: a format and how names outside the legacy
/// character set are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Negotiated {
    /// The format to write.
    pub format: ExpositionFormat,
    /// How to show UTF-8 names (always `Underscores` for text 0.0.4 and
    /// OpenMetrics 0.0.1).
    pub escaping: EscapingScheme,
}

impl Default for Negotiated {
    /// Text 0.0.4 with `underscores`: the last resort.
    fn default() -> Self {
        Self { format: ExpositionFormat::Text004, escaping: EscapingScheme::Underscores }
    }
}

impl Negotiated {
    /// `format` with `escaping`, the latter forced to `Underscores` where
    /// the format cannot carry the parameter.
    pub fn new(format: ExpositionFormat, escaping: EscapingScheme) -> Self {
        let escaping = if format.carries_escaping() { escaping } else { EscapingScheme::Underscores };
        Self { format, escaping }
    }

    /// The response `Content-Type`: one type, its version, `charset=utf-8`
    /// for the text formats, and `escaping=` where the format has it.
    ///
    /// ```
    /// use hotmeter::expose::EscapingScheme;
    /// use hotmeter_format::{ExpositionFormat, Negotiated};
    /// let n = Negotiated::new(ExpositionFormat::Text100, EscapingScheme::AllowUtf8);
    /// assert_eq!(n.content_type(), "text/plain; version=1.0.0; charset=utf-8; escaping=allow-utf-8");
    /// ```
    pub fn content_type(&self) -> &'static str {
        use EscapingScheme::{AllowUtf8, Dots, Underscores, Values};
        use ExpositionFormat::*;
        macro_rules! by_scheme {
            ($base:literal) => {
                match self.escaping {
                    AllowUtf8 => concat!($base, "; escaping=allow-utf-8"),
                    Dots => concat!($base, "; escaping=dots"),
                    Values => concat!($base, "; escaping=values"),
                    Underscores => concat!($base, "; escaping=underscores"),
                    // `EscapingScheme` is non-exhaustive: anything newer is
                    // never negotiated, and encoders treat it as underscores.
                    _ => concat!($base, "; escaping=underscores"),
                }
            };
        }
        match self.format {
            Text004 => TEXT_CONTENT_TYPE,
            OpenMetrics001 => "application/openmetrics-text; version=0.0.1; charset=utf-8",
            Text100 => by_scheme!("text/plain; version=1.0.0; charset=utf-8"),
            OpenMetrics100 => by_scheme!("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            Protobuf => {
                by_scheme!(
                    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
                )
            }
        }
    }
}

/// Chooses the format and escaping scheme for a scrape whose `Accept`
/// header is `accept` (several `Accept` headers: join them with `,`), among
/// the formats in `offered`. Never fails: see the module docs for the rules.
///
/// ```
/// use hotmeter::expose::EscapingScheme;
/// use hotmeter_format::{ExpositionFormat, Offered, negotiate};
/// // What Prometheus 3 sends by default.
/// let accept = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,\
///     application/openmetrics-text;version=0.0.1;q=0.4,\
///     text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
/// let n = negotiate(accept, Offered::TEXT);
/// assert_eq!((n.format, n.escaping), (ExpositionFormat::OpenMetrics100, EscapingScheme::AllowUtf8));
/// assert_eq!(n.content_type(), "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8");
/// assert_eq!(negotiate("", Offered::ALL).format, ExpositionFormat::Text004);
/// ```
pub fn negotiate(accept: &str, offered: Offered) -> Negotiated {
    // Per format: (q, specificity, position, escaping) of the most specific
    // matching entry, the first such in the header.
    let mut best_for: [Option<Match>; 5] = [None; 5];
    for (position, entry) in split_unquoted(accept, b',').enumerate() {
        let Some(range) = MediaRange::parse(entry) else { continue };
        for (slot, &format) in ExpositionFormat::ALL.iter().enumerate() {
            if !offered.contains(format) {
                continue;
            }
            let Some(specificity) = range.matches(format) else { continue };
            let candidate = Match { q: range.q, specificity, position, escaping: range.escaping };
            match &best_for[slot] {
                Some(m) if m.specificity >= specificity => {}
                _ => best_for[slot] = Some(candidate),
            }
        }
    }
    let mut chosen: Option<(ExpositionFormat, Match)> = None;
    for (slot, &format) in ExpositionFormat::ALL.iter().enumerate() {
        let Some(m) = best_for[slot] else { continue };
        if m.q == 0 {
            continue;
        }
        let better = match &chosen {
            None => true,
            Some((_, c)) => {
                (m.q, m.specificity, std::cmp::Reverse(m.position))
                    > (c.q, c.specificity, std::cmp::Reverse(c.position))
            }
        };
        if better {
            chosen = Some((format, m));
        }
    }
    match chosen {
        Some((format, m)) => Negotiated::new(format, m.escaping.unwrap_or(EscapingScheme::Underscores)),
        None => Negotiated::default(),
    }
}

#[derive(Clone, Copy, Debug)]
struct Match {
    /// Quality in thousandths, 0..=1000.
    q: u16,
    specificity: u8,
    position: usize,
    escaping: Option<EscapingScheme>,
}

/// One parsed `Accept` entry.
#[derive(Debug, Default)]
struct MediaRange<'a> {
    kind: &'a str,
    subtype: &'a str,
    version: Option<&'a str>,
    proto: Option<&'a str>,
    encoding: Option<&'a str>,
    escaping: Option<EscapingScheme>,
    q: u16,
}

impl<'a> MediaRange<'a> {
    /// `None` for an entry that is not `type/subtype[;params]` or whose
    /// `q` is malformed (RFC 9110: such an entry is ignored).
    fn parse(entry: &'a str) -> Option<Self> {
        let mut parts = split_unquoted(entry, b';');
        let media = parts.next()?.trim();
        let (kind, subtype) = media.split_once('/')?;
        let (kind, subtype) = (kind.trim(), subtype.trim());
        if kind.is_empty() || subtype.is_empty() || (kind == "*" && subtype != "*") {
            return None;
        }
        let mut range = MediaRange { kind, subtype, q: 1000, ..Self::default() };
        for param in parts {
            let Some((key, value)) = param.split_once('=') else { continue };
            let key = key.trim();
            let value = unquote(value.trim());
            if key.eq_ignore_ascii_case("q") {
                range.q = parse_q(value)?;
            } else if key.eq_ignore_ascii_case("version") {
                range.version = Some(value);
            } else if key.eq_ignore_ascii_case("proto") {
                range.proto = Some(value);
            } else if key.eq_ignore_ascii_case("encoding") {
                range.encoding = Some(value);
            } else if key.eq_ignore_ascii_case("escaping") {
                range.escaping = EscapingScheme::from_param(value);
            }
        }
        Some(range)
    }

    /// How specifically this entry names `format`: 3 an exact type with
    /// its version (or protobuf's parameters), 2 the bare type, 1
    /// `type/*`, 0 `*/*`; `None` if it does not match.
    fn matches(&self, format: ExpositionFormat) -> Option<u8> {
        use ExpositionFormat::*;
        let is = |k: &str, s: &str| self.kind.eq_ignore_ascii_case(k) && self.subtype.eq_ignore_ascii_case(s);
        if self.kind == "*" {
            return Some(0);
        }
        if self.subtype == "*" {
            let kind = if format.is_text_type() { "text" } else { "application" };
            return self.kind.eq_ignore_ascii_case(kind).then_some(1);
        }
        match format {
            Text004 if is("text", "plain") => match self.version {
                None => Some(2),
                Some("0.0.4") => Some(3),
                Some(_) => None,
            },
            Text100 if is("text", "plain") => (self.version == Some("1.0.0")).then_some(3),
            OpenMetrics001 if is("application", "openmetrics-text") => match self.version {
                None => Some(2),
                Some("0.0.1") => Some(3),
                Some(_) => None,
            },
            OpenMetrics100 if is("application", "openmetrics-text") => (self.version == Some("1.0.0")).then_some(3),
            Protobuf if is("application", "vnd.google.protobuf") => {
                (self.proto == Some("io.prometheus.client.MetricFamily") && self.encoding == Some("delimited"))
                    .then_some(3)
            }
            _ => None,
        }
    }
}

/// A `q` value in thousandths: `0`, `1`, or `0.` / `1.` with up to three
/// digits (`1.` only with zeros), as RFC 9110 12.4.2 has it.
fn parse_q(value: &str) -> Option<u16> {
    let (int, frac) = value.split_once('.').unwrap_or((value, ""));
    if !matches!(int, "0" | "1") || frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths = 0u16;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.as_bytes().get(i).map_or(0, |b| u16::from(b - b'0'));
    }
    let q = if int == "1" { 1000 + thousandths } else { thousandths };
    (q <= 1000).then_some(q)
}

fn unquote(value: &str) -> &str {
    value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value)
}

/// Splits `s` at `sep` outside double-quoted strings (a backslash escapes
/// the next character inside one).
fn split_unquoted(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    let mut quoted = false;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        while i < bytes.len() {
            let b = bytes[i];
            if quoted && b == b'\\' {
                i += 2;
                continue;
            }
            if b == b'"' {
                quoted = !quoted;
            } else if b == sep && !quoted {
                // `sep` is ASCII, so both ends are character boundaries.
                let part = &s[start..i];
                i += 1;
                start = i;
                return Some(part);
            }
            i += 1;
        }
        done = true;
        s.get(start..)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use EscapingScheme::*;
    use ExpositionFormat::*;
    use proptest::prelude::*;

    const PROMETHEUS_3: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
    const PROTOBUF_FIRST: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.4,application/openmetrics-text;version=0.0.1;q=0.3,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.2,text/plain;version=0.0.4;q=0.1,*/*;q=0";
    /// What Prometheus 2 sent.
    const PROMETHEUS_2: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

    fn n(accept: &str, offered: Offered) -> (ExpositionFormat, EscapingScheme) {
        let n = negotiate(accept, offered);
        (n.format, n.escaping)
    }

    #[test]
    fn prometheus_headers() {
        for offered in [Offered::TEXT, Offered::ALL] {
            assert_eq!(n(PROMETHEUS_3, offered), (OpenMetrics100, AllowUtf8));
            assert_eq!(n(PROMETHEUS_2, offered), (OpenMetrics100, Underscores));
        }
        assert_eq!(n(PROTOBUF_FIRST, Offered::ALL), (Protobuf, AllowUtf8));
        assert_eq!(n(PROTOBUF_FIRST, Offered::TEXT), (OpenMetrics100, AllowUtf8));
        // Protobuf offered but not asked for.
        assert_eq!(n("text/plain;version=1.0.0;escaping=dots", Offered::ALL), (Text100, Dots));
    }

    #[test]
    fn versions_and_defaults() {
        let all = Offered::ALL;
        assert_eq!(n("text/plain", all), (Text004, Underscores));
        assert_eq!(n("text/plain;version=0.0.4", all), (Text004, Underscores));
        assert_eq!(n("text/plain;version=1.0.0", all), (Text100, Underscores));
        assert_eq!(n("text/plain;version=2.0.0", all), (Text004, Underscores), "unknown version: fallback");
        assert_eq!(n("application/openmetrics-text", all), (OpenMetrics001, Underscores));
        assert_eq!(n("application/openmetrics-text;version=0.0.1", all), (OpenMetrics001, Underscores));
        assert_eq!(n("application/openmetrics-text; version=1.0.0", all), (OpenMetrics100, Underscores));
        assert_eq!(n("application/openmetrics-text;version=9", all), (Text004, Underscores));
        assert_eq!(n("", all), (Text004, Underscores));
        assert_eq!(n("application/json", all), (Text004, Underscores));
        assert_eq!(n("garbage;;;,,,", all), (Text004, Underscores));
        // Protobuf needs both parameters.
        assert_eq!(n("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily", all).0, Text004);
        assert_eq!(n("application/vnd.google.protobuf;encoding=delimited", all).0, Text004);
        assert_eq!(
            n("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text", all).0,
            Text004
        );
    }

    #[test]
    fn escaping_parameter() {
        let all = Offered::ALL;
        for (param, scheme) in
            [("allow-utf-8", AllowUtf8), ("underscores", Underscores), ("dots", Dots), ("values", Values)]
        {
            assert_eq!(n(&format!("text/plain;version=1.0.0;escaping={param}"), all), (Text100, scheme));
            assert_eq!(n(&format!("application/openmetrics-text;version=1.0.0;escaping=\"{param}\""), all).1, scheme);
        }
        // Unknown values are ignored: the default scheme, the entry still counts.
        assert_eq!(n("text/plain;version=1.0.0;escaping=allow-utf8", all), (Text100, Underscores));
        assert_eq!(n("text/plain;version=1.0.0;escaping=ALLOW-UTF-8", all), (Text100, Underscores));
        assert_eq!(n("text/plain;version=1.0.0;escaping=", all), (Text100, Underscores));
        // Legacy formats cannot carry it: always underscores.
        assert_eq!(n("text/plain;version=0.0.4;escaping=allow-utf-8", all), (Text004, Underscores));
        assert_eq!(n("application/openmetrics-text;version=0.0.1;escaping=dots", all), (OpenMetrics001, Underscores));
        // Escaping comes from the entry that won, not another one.
        assert_eq!(
            n("text/plain;version=1.0.0;escaping=dots;q=0.2,application/openmetrics-text;version=1.0.0;q=0.9", all),
            (OpenMetrics100, Underscores)
        );
    }

    #[test]
    fn quality_values() {
        let all = Offered::ALL;
        assert_eq!(
            n("text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.8", all).0,
            Text004
        );
        assert_eq!(
            n("text/plain;version=0.0.4;q=0.8,application/openmetrics-text;version=1.0.0;q=0.9", all).0,
            OpenMetrics100
        );
        // Ties: the earlier entry.
        assert_eq!(n("application/openmetrics-text;version=1.0.0,text/plain;version=1.0.0", all).0, OpenMetrics100);
        assert_eq!(n("text/plain;version=1.0.0,application/openmetrics-text;version=1.0.0", all).0, Text100);
        // Ties: an exact entry beats a wildcard, wherever it is.
        assert_eq!(n("*/*,application/openmetrics-text;version=1.0.0", all).0, OpenMetrics100);
        // q=0 excludes, and a malformed q drops the entry.
        assert_eq!(n("application/openmetrics-text;version=1.0.0;q=0", all).0, Text004);
        assert_eq!(
            n("application/openmetrics-text;version=1.0.0;q=0.000,text/plain;version=1.0.0;q=0.001", all).0,
            Text100
        );
        for bad in ["q=2", "q=-1", "q=0.5x", "q=1.5", "q=0.1234", "q=abc", "q="] {
            assert_eq!(n(&format!("application/openmetrics-text;version=1.0.0;{bad}"), all).0, Text004, "{bad}");
        }
        assert_eq!(n("application/openmetrics-text;version=1.0.0;Q=1.000", all).0, OpenMetrics100);
        // Case-insensitive types and parameter names; spaces around everything.
        assert_eq!(n(" Application/OpenMetrics-Text ; Version=1.0.0 ; q=0.7 ", all).0, OpenMetrics100);
        // A quoted comma does not split entries.
        assert_eq!(n("text/plain;foo=\"a,b\";version=1.0.0", all).0, Text100);
    }

    #[test]
    fn the_most_specific_entry_decides_a_formats_quality() {
        let all = Offered::ALL;
        // `*/*` would accept text 0.0.4, but its own entry excludes it.
        assert_eq!(n("text/plain;version=0.0.4;q=0,*/*", all), (Text100, Underscores));
        assert_eq!(n("text/plain;q=0,text/*;q=1", all).0, Text100);
        // Bare `text/plain` is 0.0.4 only: excluding it leaves 1.0.0 to the wildcard.
        assert_eq!(n("text/plain;q=0,text/plain;version=1.0.0;q=0.1", all).0, Text100);
        // Everything excluded: the last resort anyway.
        assert_eq!(n("*/*;q=0", all).0, Text004);
    }

    #[test]
    fn wildcards() {
        assert_eq!(n("*/*", Offered::ALL), (Text004, Underscores));
        assert_eq!(n("text/*", Offered::ALL), (Text004, Underscores));
        assert_eq!(n("application/*", Offered::TEXT), (OpenMetrics100, Underscores));
        assert_eq!(n("text/*;escaping=allow-utf-8,*/*;q=0.5", Offered::ALL), (Text004, Underscores));
        assert_eq!(n("text/*;q=0.1,application/*;q=0.2", Offered::ALL).0, OpenMetrics100);
        assert_eq!(n("*/plain", Offered::ALL).0, Text004, "not a media range");
    }

    #[test]
    fn protobuf_only_when_offered() {
        let proto = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";
        assert_eq!(n(proto, Offered::ALL), (Protobuf, Underscores));
        assert_eq!(n(proto, Offered::TEXT), (Text004, Underscores));
        assert_eq!(n(proto, Offered::ALL.without(Protobuf)), (Text004, Underscores));
        assert_eq!(n(proto, Offered::TEXT.with(Protobuf)), (Protobuf, Underscores));
        assert_eq!(n(&format!("{proto};escaping=values"), Offered::ALL), (Protobuf, Values));
        // Text formats can be withheld too; 0.0.4 never.
        let only_004 = Offered::TEXT.without(Text100).without(OpenMetrics001).without(OpenMetrics100);
        assert_eq!(n(PROMETHEUS_3, only_004).0, Text004);
        assert_eq!(n(PROMETHEUS_3, Offered::TEXT.without(OpenMetrics100)), (OpenMetrics001, Underscores));
    }

    #[test]
    fn content_types_name_one_type_with_its_version() {
        let ct = |f, e| Negotiated::new(f, e).content_type();
        assert_eq!(ct(Text004, AllowUtf8), "text/plain; version=0.0.4; charset=utf-8");
        assert_eq!(ct(Text100, Underscores), "text/plain; version=1.0.0; charset=utf-8; escaping=underscores");
        assert_eq!(ct(Text100, Values), "text/plain; version=1.0.0; charset=utf-8; escaping=values");
        assert_eq!(ct(OpenMetrics001, AllowUtf8), "application/openmetrics-text; version=0.0.1; charset=utf-8");
        assert_eq!(
            ct(OpenMetrics100, Dots),
            "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=dots"
        );
        assert_eq!(
            ct(Protobuf, AllowUtf8),
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; escaping=allow-utf-8"
        );
        assert_eq!(Negotiated::new(Text004, AllowUtf8).escaping, Underscores);
    }

    proptest! {
        #[test]
        fn any_header_yields_an_offered_format(accept in "\\PC{0,80}", proto in any::<bool>()) {
            let offered = if proto { Offered::ALL } else { Offered::TEXT };
            let got = negotiate(&accept, offered);
            prop_assert!(offered.contains(got.format));
            prop_assert!(ExpositionFormat::ALL.contains(&got.format));
            prop_assert!(got.format.carries_escaping() || got.escaping == Underscores);
        }

        #[test]
        fn header_shaped_input_never_panics(
            entries in proptest::collection::vec(
                ("(text|application|\\*|x)/(plain|openmetrics-text|vnd.google.protobuf|\\*|)",
                 proptest::collection::vec("(version|q|escaping|proto|encoding|Q)=(\"?)[0-9a-z.\\-,\"]{0,8}", 0..4)),
                0..5),
        ) {
            let accept: Vec<String> = entries.iter().map(|(m, ps)| {
                let mut s = m.clone();
                for p in ps { s.push(';'); s.push_str(p); }
                s
            }).collect();
            let got = negotiate(&accept.join(","), Offered::ALL);
            prop_assert!(ExpositionFormat::ALL.contains(&got.format));
        }

        #[test]
        fn a_content_type_negotiates_itself(f in 0usize..5, e in 0usize..4) {
            let format = ExpositionFormat::ALL[f];
            let escaping = [AllowUtf8, Underscores, Dots, Values][e];
            let chosen = Negotiated::new(format, escaping);
            // The response type, sent back as an Accept header (with
            // `charset` and spaces), asks for exactly what was chosen.
            prop_assert_eq!(negotiate(chosen.content_type(), Offered::ALL), chosen);
        }
    }
}
