//! A family's names as an encoder writes them: [`FamilyNames`], the one
//! "escape names unless legacy" step every exposition format and push
//! transport shares.
//!
//! Owns: deciding once per family whether its names are all legacy (then
//! they are written as registered, on the cached-prefix path) and, when
//! not, escaping the metric name and every label name (constant labels
//! first, as [`Labels`](hotmeter::expose::Labels) yields them) by the
//! scheme the scraper or receiver asked for. Must not: quote names or write
//! bytes (that is each format's own syntax), nor allocate for a family of
//! legacy names.

use hotmeter::NameKind;
use hotmeter::expose::{Desc, EscapingScheme};

/// The metric and label names of the family being written, escaped by one
/// scheme when any is outside the legacy set. Reused across families: its
/// buffers are kept.
///
/// ```
/// use hotmeter::expose::EscapingScheme;
/// use hotmeter::{NameValidation, Registry};
/// use hotmeter_format::FamilyNames;
///
/// let registry = Registry::builder().name_validation(NameValidation::Utf8).build()?;
/// let depth = registry.labeled_family("queue.depth", "Jobs.", &["lane.name"], hotmeter::Gauge::new)?;
/// depth.with(&["fast"], |g| g.set(1.0))?;
/// let mut names = FamilyNames::default();
/// struct Grab<'a>(&'a mut FamilyNames);
/// impl hotmeter::expose::Visitor for Grab<'_> {
///     fn family(&mut self, desc: &hotmeter::expose::Desc) {
///         self.0.set(desc, EscapingScheme::Underscores);
///     }
///     fn sample(&mut self, _: &hotmeter::expose::Labels<'_>, _: &hotmeter::expose::Value<'_>) {}
/// }
/// registry.collect(&mut Grab(&mut names));
/// assert!(!names.is_legacy());
/// assert_eq!(names.name(), "queue_depth");
/// assert_eq!(names.label(0), Some("lane_name"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct FamilyNames {
    legacy: bool,
    name: String,
    /// Escaped label names, constant labels first; `labels[..len]` are this
    /// family's (the vector keeps earlier families' strings to reuse).
    labels: Vec<String>,
    len: usize,
}

impl FamilyNames {
    /// Takes `desc`'s names: as registered when all are legacy
    /// ([`Desc::names_are_legacy`]), escaped by `scheme` otherwise.
    pub fn set(&mut self, desc: &Desc, scheme: EscapingScheme) {
        self.name.clear();
        self.len = 0;
        self.legacy = desc.names_are_legacy();
        if self.legacy {
            self.name.push_str(&desc.name);
            return;
        }
        self.name.push_str(&scheme.escape(&desc.name, NameKind::Metric));
        for name in desc.const_labels.iter().map(|(n, _)| n).chain(&desc.label_names) {
            if self.labels.len() == self.len {
                self.labels.push(String::new());
            }
            let slot = &mut self.labels[self.len];
            slot.clear();
            slot.push_str(&scheme.escape(name, NameKind::Label));
            self.len += 1;
        }
    }

    /// Whether every name is legacy, so labels are written as registered
    /// (and [`label`](Self::label) has nothing to say).
    #[inline]
    pub fn is_legacy(&self) -> bool {
        self.legacy
    }

    /// The metric name as written (escaped unless legacy).
    #[inline]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Label name `i` (constant labels first) as written, for a family with
    /// names outside the legacy set; `None` for a legacy family or past the
    /// last label.
    #[inline]
    pub fn label(&self, i: usize) -> Option<&str> {
        if self.legacy || i >= self.len {
            return None;
        }
        Some(&self.labels[i])
    }

    /// Every label name as written, constant labels first; empty for a
    /// legacy family.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        let n = if self.legacy { 0 } else { self.len };
        self.labels[..n].iter().map(String::as_str)
    }
}
