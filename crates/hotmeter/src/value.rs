//! What a scrape hands an encoder: [`Visitor`], [`Labels`], [`Value`],
//! [`Scratch`], and the [`Metric`] trait that reads a handle as one sample;
//! a series' pre-rendered sample prefix as encoders see it (`Rendered`;
//! the cache that fills it is in `render`).
//!
//! Owns: the vocabulary between the registry and encoders. A scrape walks
//! families in name order and series in label-value order and hands each
//! sample to a [`Visitor`] by reference, so encoding streams with no
//! allocation per series. Must not: block a recording thread.

use std::fmt;

use crate::desc::{Desc, MetricType};
use crate::native::NativeBucketsRef;

/// The values of one series' variable labels.
#[derive(Clone, Copy)]
pub(crate) enum LabelValues<'a> {
    None,
    Typed {
        index: usize,
        value: fn(usize, usize) -> &'static str,
    },
    Strings(&'a [Box<str>]),
    /// Values concatenated in `key`, value `i` ending at `ends[i]`.
    Joined {
        key: &'a str,
        ends: &'a [u32],
    },
    /// Every label has this value (the overflow series).
    Same(&'a str),
    /// Values given by a [`Collector`](crate::Collector), in order.
    Borrowed(&'a [&'a str]),
    /// A key kept by a string family's scrape plan, read only if an encoder
    /// asks for the values (text encoders use the rendered
    /// prefix and never do).
    Indexed {
        source: &'a dyn KeySource,
        at: u32,
    },
}

/// Reads a stored key by position, for label values that an encoder asks
/// for lazily (a string family's scrape plan keeps a copy of every key).
pub(crate) trait KeySource: Sync {
    /// The key at `at`: its values concatenated, and where each value but
    /// the last ends.
    fn key(&self, at: u32) -> Option<(&str, &[u32])>;
}

/// The labels of one series: constant labels, then the family's labels.
#[derive(Clone, Copy)]
pub struct Labels<'a> {
    pub(crate) desc: &'a Desc,
    pub(crate) values: LabelValues<'a>,
    /// The sample prefix in exposition syntax, cached per series.
    pub(crate) rendered: Option<Rendered<'a>>,
    /// When the series' metric was made (nanoseconds since the Unix epoch),
    /// for kinds that keep it.
    pub(crate) created: Option<u64>,
}

impl fmt::Debug for Labels<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a> Labels<'a> {
    /// Number of labels (constant and variable).
    pub fn len(&self) -> usize {
        self.desc.const_labels.len() + self.desc.label_names.len()
    }

    /// True when the series has no labels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Label `i` as `(name, value)`.
    pub fn get(&self, i: usize) -> Option<(&'a str, &'a str)> {
        let consts = &self.desc.const_labels;
        if let Some((n, v)) = consts.get(i) {
            return Some((n, v));
        }
        let j = i - consts.len();
        let name = self.desc.label_names.get(j)?;
        let value = match self.values {
            LabelValues::None => return None,
            LabelValues::Typed { index, value } => value(index, j),
            LabelValues::Strings(v) => v.get(j)?,
            LabelValues::Joined { key, ends } => joined_value(key, ends, j)?,
            LabelValues::Indexed { source, at } => {
                let (key, ends) = source.key(at)?;
                joined_value(key, ends, j)?
            }
            LabelValues::Same(v) => v,
            LabelValues::Borrowed(v) => v.get(j)?,
        };
        Some((name, value))
    }

    /// `(name, value)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// The label set as [`write_label_set`](crate::expose::write_label_set) writes it (open, no closing
    /// brace), when the series keeps it cached (labeled families do,
    /// rendered at their first scrape); `None` otherwise, and then the
    /// encoder renders it.
    pub fn rendered(&self) -> Option<&'a [u8]> {
        self.rendered.and_then(|r| r.bytes.get(r.labels_start as usize..r.labels_end as usize))
    }

    /// When the series' metric was made, in nanoseconds since the Unix
    /// epoch: counters, histograms and summaries keep it (OpenMetrics'
    /// `_created`, protobuf's `created_timestamp`); gauges and the overflow
    /// series do not.
    pub fn created_unix_nanos(&self) -> Option<u64> {
        self.created
    }

    /// The whole sample prefix, `family_name{labels} ` (or `family_name `),
    /// when cached: for samples named exactly as the family (counters,
    /// gauges), an encoder writes this and the value.
    pub fn rendered_sample_prefix(&self) -> Option<&'a [u8]> {
        self.rendered.map(|r| r.bytes)
    }
}

/// A series' sample prefix, `name{a="x",b="y"} ` (or `name ` without
/// labels), rendered once, with where its label set starts and ends.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rendered<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) labels_start: u32,
    pub(crate) labels_end: u32,
}

/// Value `j` of a key stored as its values concatenated plus where each
/// value but the last ends.
fn joined_value<'a>(key: &'a str, ends: &[u32], j: usize) -> Option<&'a str> {
    let start = if j == 0 { 0 } else { *ends.get(j - 1)? as usize };
    let end = if j == ends.len() { key.len() } else { *ends.get(j)? as usize };
    key.get(start..end)
}

impl Value<'_> {
    /// How many lines this sample takes in Prometheus text (`_created`
    /// aside): one for the one-number kinds; a histogram's buckets, `+Inf`,
    /// `_sum` and `_count`; a summary's quantiles, `_sum` and `_count`.
    /// For size hints.
    pub fn text_lines(&self) -> usize {
        match *self {
            Value::Counter(_)
            | Value::TracedCounter { .. }
            | Value::FloatCounter(_)
            | Value::Gauge(_)
            | Value::IntGauge(_) => 1,
            Value::Histogram { bounds, .. } | Value::NativeHistogram { bounds, .. } => bounds.len() + 3,
            Value::Summary { quantiles, .. } => quantiles.len() + 2,
        }
    }
}

/// One sample, borrowed for the duration of a [`Visitor::sample`] call.
///
/// Deliberately exhaustive: a new kind of value must be a compile error in
/// every encoder, never a sample silently skipped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// A counter total.
    Counter(u64),
    /// A counter total with its latest exemplar, if any (OpenMetrics only
    /// carries the exemplar).
    TracedCounter {
        /// The total.
        total: u64,
        /// The latest increment that carried a trace id.
        exemplar: Option<crate::Exemplar>,
    },
    /// A floating-point counter total.
    FloatCounter(f64),
    /// A floating-point gauge.
    Gauge(f64),
    /// An integer gauge.
    IntGauge(i64),
    /// A consistent histogram read.
    Histogram {
        /// Finite upper bounds (`+Inf` implicit).
        bounds: &'a [f64],
        /// Per-bucket counts (not cumulative), the last one `+Inf`.
        counts: &'a [u64],
        /// Sum of observations.
        sum: f64,
        /// Number of observations (`== counts.iter().sum()`).
        count: u64,
        /// The exemplar of each bucket (`+Inf` last), or empty when the
        /// histogram never recorded one. Only OpenMetrics carries them.
        exemplars: &'a [Option<crate::Exemplar>],
    },
    /// A consistent native (sparse exponential) histogram read, with the
    /// classic buckets kept alongside when it has them.
    NativeHistogram {
        /// The exponential buckets.
        native: NativeBucketsRef<'a>,
        /// Finite upper bounds of the classic buckets kept alongside
        /// (`+Inf` implicit); empty when it keeps none.
        bounds: &'a [f64],
        /// Per-bucket classic counts (not cumulative), the last one `+Inf`;
        /// empty when it keeps none. Same observations as `native`.
        counts: &'a [u64],
        /// The exemplar of each classic bucket (`+Inf` last), or empty.
        exemplars: &'a [Option<crate::Exemplar>],
    },
    /// A summary read.
    Summary {
        /// `(quantile, value)` pairs, ascending by quantile. A value is NaN
        /// when the window holds no observations.
        quantiles: &'a [(f64, f64)],
        /// Sum of all observations ever.
        sum: f64,
        /// Number of all observations ever.
        count: u64,
    },
}

/// Receives a registry's contents during a scrape, in order: one
/// [`family`](Self::family) call, then its samples.
pub trait Visitor {
    /// Starts a family.
    fn family(&mut self, desc: &Desc);
    /// One series of the current family.
    fn sample(&mut self, labels: &Labels<'_>, value: &Value<'_>);
    /// A hint, before a family's samples: about this many bytes of sample
    /// prefixes and values follow in Prometheus text (a writer may reserve
    /// room for them once instead of growing as it goes). Only a hint: it
    /// may be low or high, and most families give none.
    fn size_hint(&mut self, _bytes: usize) {}
    /// Whether this visitor reads the series' creation times
    /// ([`Labels::created_unix_nanos`], [`CounterRun::created_unix_nanos`]).
    /// One that answers `false` may be given `None` for them, and a scrape
    /// then skips reading them (the Prometheus text formats never write
    /// them). By default `true`.
    fn reads_created(&self) -> bool {
        true
    }
    /// A run of counter series of the current family, each with its
    /// rendered sample prefix and its value, in label-value order (string
    /// families hand their plain counters over this way). By default, one
    /// [`sample`](Self::sample) call per series; a text writer can instead
    /// stream the prefixes and values in one loop.
    fn counters(&mut self, run: &CounterRun<'_>) {
        for i in 0..run.len() {
            self.sample(&run.labels(i), &Value::Counter(run.value(i)));
        }
    }
}

/// Where a series' sample prefix ends in a run's buffer, and where its
/// label set starts and ends within the prefix.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PrefixSpan {
    /// A byte offset into the run's buffer: `usize`, since a family's
    /// prefixes together may pass 4 GiB (16 million series of long values).
    pub(crate) end: usize,
    pub(crate) labels_start: u32,
    pub(crate) labels_end: u32,
}

/// Consecutive counter series of one family, ready to write: every sample
/// prefix (`name{labels} `) in one buffer, and the values read for this
/// scrape. See [`Visitor::counters`].
#[derive(Clone, Copy)]
pub struct CounterRun<'a> {
    pub(crate) desc: &'a Desc,
    pub(crate) prefixes: &'a [u8],
    pub(crate) spans: &'a [PrefixSpan],
    pub(crate) values: &'a [u64],
    /// Per series, when its counter was made (Unix nanoseconds).
    pub(crate) created: &'a [u64],
    /// The series' keys, by position in the run.
    pub(crate) source: &'a dyn KeySource,
}

impl fmt::Debug for CounterRun<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CounterRun").field("family", &self.desc.name).field("len", &self.len()).finish()
    }
}

impl<'a> CounterRun<'a> {
    /// Number of series.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True with no series.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Every series' sample prefix (`name{labels} `), concatenated in the
    /// run's order. Within one registration of a family (one
    /// [`Desc::registration_id`](crate::expose::Desc::registration_id): its
    /// label names and constant labels fixed), the same bytes, each prefix
    /// as long, mean the same label values in the same order (values are
    /// escaped), so an encoder may key a cache of its own rendering of the
    /// run on them and the registration. Not across registrations: names are
    /// written as registered, and UTF-8 names (`a="x",b`) can spell another
    /// family's label set.
    pub fn prefixes(&self) -> &'a [u8] {
        self.prefixes
    }

    /// When series `i`'s counter was made, in nanoseconds since the Unix
    /// epoch (as its [`labels`](Self::labels) say).
    pub fn created_unix_nanos(&self, i: usize) -> Option<u64> {
        self.created.get(i).copied()
    }

    /// Every prefix, concatenated, as [`iter`](Self::iter) hands them out.
    pub fn prefix_bytes(&self) -> usize {
        self.prefixes.len()
    }

    /// Each series' sample prefix (`name{labels} `) and value.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], u64)> + 'a {
        let prefixes = self.prefixes;
        let mut start = 0usize;
        self.spans.iter().zip(self.values).map(move |(span, &v)| {
            let end = span.end;
            let prefix = &prefixes[start..end];
            start = end;
            (prefix, v)
        })
    }

    /// Series `i`'s value.
    pub fn value(&self, i: usize) -> u64 {
        self.values[i]
    }

    /// Series `i`'s labels, as [`Visitor::sample`] would get them.
    pub fn labels(&self, i: usize) -> Labels<'a> {
        planned_labels(self.desc, self.prefixes, self.spans, i, self.source, self.created.get(i).copied())
    }
}

/// The labels of series `i` of a scrape plan: its prefix in `prefixes` (as
/// `spans` delimits it), its values read from `source` at `i` if asked.
pub(crate) fn planned_labels<'a>(
    desc: &'a Desc,
    prefixes: &'a [u8],
    spans: &[PrefixSpan],
    i: usize,
    source: &'a dyn KeySource,
    created: Option<u64>,
) -> Labels<'a> {
    let start = if i == 0 { 0 } else { spans[i - 1].end };
    let span = spans[i];
    Labels {
        desc,
        values: LabelValues::Indexed { source, at: i as u32 },
        rendered: Some(Rendered {
            bytes: &prefixes[start..span.end],
            labels_start: span.labels_start,
            labels_end: span.labels_end,
        }),
        created,
    }
}

/// Reusable buffers for reading samples, so a scrape allocates nothing per
/// series once they have grown.
#[derive(Debug, Default)]
pub struct Scratch {
    pub(crate) counts: Vec<u64>,
    pub(crate) exemplars: Vec<Option<crate::Exemplar>>,
    pub(crate) quantiles: Vec<(f64, f64)>,
    pub(crate) order: Vec<usize>,
    pub(crate) values: Vec<u64>,
    pub(crate) created: Vec<u64>,
    pub(crate) native_positive: Vec<(i32, u64)>,
    pub(crate) native_negative: Vec<(i32, u64)>,
}

/// A metric handle that can be read as one sample.
///
/// Implemented by [`Counter`](crate::Counter),
/// [`SingleCounter`](crate::SingleCounter), [`Gauge`](crate::Gauge),
/// [`IntGauge`](crate::IntGauge), [`Histogram`](crate::Histogram),
/// [`NativeHistogram`](crate::NativeHistogram) and
/// [`Summary`](crate::Summary): the types a family can hold.
pub trait Metric: Clone + Send + Sync + 'static {
    /// The Prometheus type.
    const TYPE: MetricType;
    /// Reads the current value; may use `scratch` for buffers.
    fn sample<'a>(&'a self, scratch: &'a mut Scratch) -> Value<'a>;
    /// Whether two handles have the same layout (bucket bounds, quantiles),
    /// so a re-registration can be accepted.
    fn same_layout(&self, _other: &Self) -> bool {
        true
    }
    /// The layout [`Metric::same_layout`] compares, in words, for an error
    /// that shows both sides (e.g. `buckets [0.1, 1.0]`). Empty for kinds
    /// without one.
    fn layout(&self) -> String {
        String::new()
    }
    /// How errors name this handle type: its own name without module paths
    /// (`Counter`, `Histogram`). A wrapper its user never sees overrides it
    /// with what the user knows it as.
    fn handle_name() -> String
    where
        Self: Sized,
    {
        short_type_name(std::any::type_name::<Self>())
    }
    /// When it was made, in nanoseconds since the Unix epoch, for kinds
    /// that keep it (counters, histograms, summaries).
    fn created_unix_nanos(&self) -> Option<u64> {
        None
    }
    /// How many handles share this series' value, this one included (for
    /// the kinds here: the count of the `Arc` behind it), read so that what
    /// a handle recorded before it was dropped is visible to reads of the
    /// value after this call (an `Acquire` fence after the count). A
    /// [`StringFamily`](crate::StringFamily) with an idle timeout does not
    /// expire a series that has handles beyond its own, so a handle kept
    /// from [`get`](crate::StringFamily::get) never records into a series
    /// that is gone for good. A kind that cannot tell answers 1 (its kept
    /// handles then lose what they record after an expiry): implement it
    /// for a `Metric` of your own whose handles you keep.
    fn handles(&self) -> usize {
        1
    }
}

/// `Metric` for a handle whose sample is one number read with `get()`.
macro_rules! one_number_metric {
    ($($handle:ty => $kind:ident, $value:ident, $created:expr;)*) => {$(
        impl Metric for $handle {
            const TYPE: MetricType = MetricType::$kind;
            fn sample<'a>(&'a self, _: &'a mut Scratch) -> Value<'a> {
                Value::$value(self.get())
            }
            fn created_unix_nanos(&self) -> Option<u64> {
                let created: fn(&Self) -> Option<u64> = $created;
                created(self)
            }
            fn handles(&self) -> usize {
                self.handles()
            }
        }
    )*};
}

one_number_metric! {
    crate::Counter => Counter, Counter, |c| Some(c.created_unix_nanos());
    crate::SingleCounter => Counter, Counter, |c| Some(c.created_unix_nanos());
    crate::FloatCounter => Counter, FloatCounter, |c| Some(c.created_unix_nanos());
    crate::Gauge => Gauge, Gauge, |_| None;
    crate::IntGauge => Gauge, IntGauge, |_| None;
}

impl Metric for crate::TracedCounter {
    const TYPE: MetricType = MetricType::Counter;
    fn sample<'a>(&'a self, _: &'a mut Scratch) -> Value<'a> {
        // The exemplar first: it is at least as old as the total read after it.
        let exemplar = self.exemplar();
        Value::TracedCounter { total: self.get(), exemplar }
    }
    fn created_unix_nanos(&self) -> Option<u64> {
        Some(self.created_unix_nanos())
    }
    fn handles(&self) -> usize {
        self.handles()
    }
}

impl Metric for crate::Histogram {
    const TYPE: MetricType = MetricType::Histogram;
    fn sample<'a>(&'a self, scratch: &'a mut Scratch) -> Value<'a> {
        // Exemplars first: each is at least as old as the counts read after it.
        self.exemplars_into(&mut scratch.exemplars);
        let (sum, _nan) = self.snapshot_into(&mut scratch.counts);
        let counts = &scratch.counts[..];
        Value::Histogram {
            bounds: self.buckets().bounds(),
            counts,
            sum,
            count: counts.iter().sum(),
            exemplars: &scratch.exemplars,
        }
    }
    fn same_layout(&self, other: &Self) -> bool {
        self.buckets() == other.buckets()
    }
    fn layout(&self) -> String {
        format!("buckets {:?}", self.buckets().bounds())
    }
    fn created_unix_nanos(&self) -> Option<u64> {
        Some(self.created_unix_nanos())
    }
    fn handles(&self) -> usize {
        self.handles()
    }
}

/// `std::any::type_name` without module paths, generics kept:
/// `hotmeter::string_family::StringFamily<hotmeter::counter::Counter>`
/// reads `StringFamily<Counter>`.
pub(crate) fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut segment_start = 0;
    for (i, c) in full.char_indices() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            continue;
        }
        out.push_str(last_path_segment(&full[segment_start..i]));
        out.push(c);
        segment_start = i + c.len_utf8();
    }
    out.push_str(last_path_segment(&full[segment_start..]));
    out
}

fn last_path_segment(path: &str) -> &str {
    path.rsplit("::").next().unwrap_or(path)
}
