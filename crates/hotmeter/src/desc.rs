//! What describes a metric family: [`Unit`], [`Desc`] (its type is a
//! [`MetricType`]).
//!
//! Owns: the family's name, help, unit, type and label names as the
//! registry validated them, and its registration identity. Must not: hold
//! values or know any exposition format.

pub use crate::metric_type::MetricType;

/// A metric's unit, as OpenMetrics `# UNIT` spells it (`seconds`, `bytes`).
///
/// The metric name should end with `_<unit>` (before `_total` for counters).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Unit(std::borrow::Cow<'static, str>);

impl Unit {
    /// Seconds.
    pub const SECONDS: Unit = Unit(std::borrow::Cow::Borrowed("seconds"));
    /// Bytes.
    pub const BYTES: Unit = Unit(std::borrow::Cow::Borrowed("bytes"));
    /// A ratio (0..1).
    pub const RATIO: Unit = Unit(std::borrow::Cow::Borrowed("ratio"));

    /// A custom unit; must be a valid label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
    pub fn new(unit: impl Into<String>) -> Result<Self, crate::error::NameError> {
        let unit = unit.into();
        crate::name::validate_label_name(&unit)?;
        Ok(Self(std::borrow::Cow::Owned(unit)))
    }

    /// The unit's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Everything that describes a metric family: full name (namespace
/// included), help, unit, type, label names (constant labels first).
///
/// Equality compares what a scrape shows, not the registration identity.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Desc {
    /// This registration's identity, never reused in the process: what
    /// per-series render caches are keyed by (an address could be reused by
    /// the next registration after an `unregister`).
    pub(crate) id: u64,
    /// The full metric name.
    pub name: String,
    /// Help text (unescaped).
    pub help: String,
    /// Unit, if set.
    pub unit: Option<Unit>,
    /// The type.
    pub kind: MetricType,
    /// Constant labels, applied to every series, in registration order.
    pub const_labels: Vec<(String, String)>,
    /// The family's own label names, in declaration order.
    pub label_names: Vec<String>,
    /// Whether the name and every label name are legacy-valid, so every
    /// format writes them bare and the per-series prefix cache is exact:
    /// decided once here, so encoders pay nothing per series for UTF-8
    /// support while every name is legacy.
    legacy_names: bool,
}

impl PartialEq for Desc {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.help == other.help
            && self.unit == other.unit
            && self.kind == other.kind
            && self.const_labels == other.const_labels
            && self.label_names == other.label_names
    }
}

impl Desc {
    /// This registration's identity: never reused in the process, different
    /// for the same family registered in two registries, or again after an
    /// `unregister`. For an encoder's own caches, which must never carry
    /// one registration's series over to another.
    pub fn registration_id(&self) -> u64 {
        self.id
    }

    /// A description with a fresh registration identity.
    pub(crate) fn new(
        name: String,
        help: String,
        unit: Option<Unit>,
        kind: MetricType,
        const_labels: Vec<(String, String)>,
        label_names: Vec<String>,
    ) -> Self {
        let legacy_names = crate::escape::is_legacy_metric_name(&name)
            && const_labels.iter().map(|(n, _)| n).chain(&label_names).all(|n| crate::escape::is_legacy_label_name(n));
        Self {
            id: crate::sync::next_registration_id(),
            name,
            help,
            unit,
            kind,
            const_labels,
            label_names,
            legacy_names,
        }
    }

    /// True when the family name and every label name match the legacy
    /// grammar (always, in a registry built with the default
    /// [`NameValidation::Legacy`](crate::NameValidation)): encoders may
    /// then write every name bare and use the cached sample prefixes.
    pub fn names_are_legacy(&self) -> bool {
        self.legacy_names
    }
}
