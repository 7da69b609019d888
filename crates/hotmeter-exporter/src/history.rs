//! The dashboard's history: a bounded ring of registry samples, and the
//! plot-ready JSON made from it ([`HistoryConfig`]).
//!
//! Owns: the ring (one sample per interval, oldest dropped first), the
//! table of series it has seen, and turning samples into rates (counters),
//! values (gauges) and quantiles (histograms, from bucket deltas). Must not:
//! touch a recording path. A sample is taken by the server's sampler task
//! through [`hotmeter::Registry::snapshot`], exactly as a scrape reads the
//! registry, on a blocking thread; the ring's mutex is shared only by that
//! task and the history endpoint, never by a recording thread.
//!
//! # Memory bound
//! A sample holds one `f64` per cell: a counter or gauge series is one cell,
//! a histogram `buckets + 2` (each bucket, `+Inf` and the sum), a summary
//! `quantiles + 2` (count, sum, each quantile). At most
//! [`HistoryConfig::max_cells`] cells are tracked; series beyond are left
//! out and counted (`untracked_series` in the JSON). So the ring holds at
//! most `samples × (max_cells × 8 + 48)` bytes ([`HistoryConfig::memory_bound`]),
//! 14.1 MiB with the defaults (900 samples, 2,048 cells), plus the table of
//! at most `max_cells` series' names, help texts and labels.
//!
//! # Series that end
//! A series absent from every sample the ring still holds (removed from
//! its family, its family unregistered, its label value gone) is dead:
//! when a new series does not fit, the dead ones' cells are freed and
//! every sample is repacked without them, in place (one pass over the
//! ring, no allocation), so a process whose label values churn keeps
//! tracking its live series instead of filling the table with ones long
//! gone. Each series keeps the id it was first tracked with, so a page
//! that polls with `since` never mixes two series up across a repack. A
//! series re-registered with another shape is counted in
//! `untracked_series` while its old shape is in the ring, then tracked
//! again in its new shape.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use hotmeter::expose::MetricType;
use hotmeter::{OwnedValue, RegistrySnapshot};

use hotmeter_format::{write_json_number, write_json_object, write_json_string};

/// How much history the exporter keeps for the dashboard.
///
/// Build with `HistoryConfig { samples: 3600, ..HistoryConfig::default() }`.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryConfig {
    /// Time between samples. Default 1 s; at least 100 ms.
    pub interval: Duration,
    /// Samples kept; the oldest is dropped first. Default 900 (15 minutes
    /// at one per second); at least 2.
    pub samples: usize,
    /// Cells (numbers) tracked per sample; series that would go beyond are
    /// not tracked and are counted instead. Default 2,048.
    pub max_cells: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self { interval: Duration::from_secs(1), samples: 900, max_cells: 2048 }
    }
}

/// Bytes a sample costs besides its cells: its boxed slice, timestamps and
/// ring slot.
const SAMPLE_OVERHEAD: usize = 48;

impl HistoryConfig {
    /// The most bytes the ring's samples can hold:
    /// `samples × (max_cells × 8 + 48)`.
    ///
    /// ```
    /// let c = hotmeter_exporter::HistoryConfig::default();
    /// assert_eq!(c.memory_bound(), 900 * (2048 * 8 + 48)); // 14.1 MiB
    /// ```
    pub fn memory_bound(&self) -> usize {
        self.samples.saturating_mul(self.max_cells.saturating_mul(8).saturating_add(SAMPLE_OVERHEAD))
    }

    /// The configuration with its floors applied (interval at least 100 ms,
    /// at least 2 samples).
    pub(crate) fn clamped(mut self) -> Self {
        self.interval = self.interval.max(Duration::from_millis(100));
        self.samples = self.samples.max(2);
        self
    }
}

/// Quantiles reported for every histogram.
pub(crate) const QUANTILES: [(&str, f64); 5] =
    [("0.5", 0.5), ("0.9", 0.9), ("0.95", 0.95), ("0.99", 0.99), ("0.999", 0.999)];

/// How a series' cells are laid out in a sample.
#[derive(Clone, Debug, PartialEq)]
enum Layout {
    /// Counter total or gauge value: one cell.
    Scalar,
    /// Per-bucket (not cumulative) counts, `+Inf` last, then the sum.
    Histogram { bounds: Vec<f64> },
    /// Count, sum, then each quantile's value.
    Summary { quantiles: Vec<f64> },
}

impl Layout {
    fn of(value: &OwnedValue) -> Layout {
        match value {
            OwnedValue::Histogram { bounds, .. } => Layout::Histogram { bounds: bounds.clone() },
            // A native histogram is kept by its classic buckets when it has
            // them, else as its count and sum (no quantiles).
            OwnedValue::NativeHistogram { bounds, .. } if !bounds.is_empty() => {
                Layout::Histogram { bounds: bounds.clone() }
            }
            OwnedValue::NativeHistogram { .. } => Layout::Summary { quantiles: Vec::new() },
            OwnedValue::Summary { quantiles, .. } => {
                Layout::Summary { quantiles: quantiles.iter().map(|q| q.0).collect() }
            }
            _ => Layout::Scalar,
        }
    }

    fn cells(&self) -> usize {
        match self {
            Layout::Scalar => 1,
            Layout::Histogram { bounds } => bounds.len() + 2,
            Layout::Summary { quantiles } => quantiles.len() + 2,
        }
    }
}

/// One series the ring has seen; its cells start at `offset` in every
/// sample taken since.
#[derive(Debug)]
struct Series {
    /// Given when first tracked, never reused: the JSON's `id`.
    id: u64,
    name: String,
    help: String,
    unit: Option<String>,
    kind: MetricType,
    labels: Vec<(String, String)>,
    offset: usize,
    layout: Layout,
    /// The sequence number of the last sample it was in.
    last_seen: u64,
}

/// One sample: when, and every tracked cell (NaN where a series was absent).
#[derive(Debug)]
struct Sample {
    /// Its sequence number: one more than the sample before.
    seq: u64,
    /// Milliseconds since the Unix epoch.
    wall_ms: u64,
    /// Seconds on a monotonic clock, for rates.
    mono: f64,
    values: Box<[f64]>,
}

/// What a history request asks for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct HistoryQuery {
    /// Only samples taken after this (ms since the Unix epoch).
    pub(crate) since_ms: Option<u64>,
    /// Rates and quantiles over this window (like PromQL's `rate(x[w])`).
    pub(crate) window: Duration,
}

/// Why a history request's query string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum HistoryQueryError {
    /// `since` was not a whole number of milliseconds.
    BadSince {
        /// The value given.
        value: String,
    },
    /// `window` was not a number of seconds from 1 to 3600.
    BadWindow {
        /// The value given.
        value: String,
    },
}

impl std::fmt::Display for HistoryQueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadSince { value } => write!(f, "since={value:?}: expected milliseconds since the Unix epoch"),
            Self::BadWindow { value } => write!(f, "window={value:?}: expected seconds from 1 to 3600"),
        }
    }
}

impl std::error::Error for HistoryQueryError {}

/// Default window of rates and quantiles.
pub(crate) const DEFAULT_WINDOW: Duration = Duration::from_secs(30);

impl HistoryQuery {
    /// Parses `since=<ms>&window=<s>` (both optional, others ignored).
    pub(crate) fn parse(query: Option<&str>) -> Result<Self, HistoryQueryError> {
        let mut q = HistoryQuery { since_ms: None, window: DEFAULT_WINDOW };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "since" => {
                    q.since_ms = Some(value.parse().map_err(|_| HistoryQueryError::BadSince { value: value.into() })?);
                }
                "window" => {
                    let secs = value
                        .parse::<f64>()
                        .ok()
                        .filter(|s| (1.0..=3600.0).contains(s))
                        .ok_or_else(|| HistoryQueryError::BadWindow { value: value.into() })?;
                    q.window = Duration::from_secs_f64(secs);
                }
                _ => {}
            }
        }
        Ok(q)
    }
}

/// The ring of samples and the table of series.
#[derive(Debug)]
pub(crate) struct History {
    config: HistoryConfig,
    series: Vec<Series>,
    /// `name`, then each label name and value, NUL-separated → index in `series`.
    index: HashMap<String, usize>,
    cells: usize,
    ring: VecDeque<Sample>,
    /// Series in the latest sample that did not fit in `max_cells`.
    untracked: usize,
    /// The next sample's sequence number.
    next_seq: u64,
    /// The next series' id.
    next_id: u64,
}

fn key(name: &str, labels: &[(String, String)]) -> String {
    let mut k = String::from(name);
    for (n, v) in labels {
        k.push('\0');
        k.push_str(n);
        k.push('\0');
        k.push_str(v);
    }
    k
}

impl History {
    pub(crate) fn new(config: HistoryConfig) -> Self {
        let config = config.clamped();
        History {
            ring: VecDeque::with_capacity(config.samples.min(4096)),
            config,
            series: Vec::new(),
            index: HashMap::new(),
            cells: 0,
            untracked: 0,
            next_seq: 0,
            next_id: 0,
        }
    }

    pub(crate) fn config(&self) -> &HistoryConfig {
        &self.config
    }

    /// Adds one sample of `snap`, taken at `wall_ms` (Unix ms) and `mono`
    /// (monotonic seconds), dropping the oldest when full.
    pub(crate) fn push(&mut self, snap: &RegistrySnapshot, wall_ms: u64, mono: f64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut values = vec![f64::NAN; self.cells];
        let mut untracked = 0;
        let mut repacked = false;
        for family in &snap.families {
            for s in &family.series {
                let k = key(&family.desc.name, &s.labels);
                let layout = Layout::of(&s.value);
                let mut found = self.index.get(&k).copied();
                if let Some(i) = found
                    && self.series[i].layout != layout
                {
                    // Re-registered with another shape: tracked anew once
                    // the old shape is gone from the ring (its cells freed).
                    if !repacked && self.series[i].last_seen < self.oldest_kept(seq) {
                        repacked = true;
                        self.free_dead(&mut values, seq);
                        found = self.index.get(&k).copied();
                    }
                    if found.is_some() {
                        untracked += 1;
                        continue;
                    }
                }
                let idx = match found {
                    Some(i) => i,
                    None => {
                        if self.cells + layout.cells() > self.config.max_cells && !repacked {
                            // Once per sample at most: free the dead series' cells.
                            repacked = true;
                            self.free_dead(&mut values, seq);
                        }
                        if self.cells + layout.cells() > self.config.max_cells {
                            untracked += 1;
                            continue;
                        }
                        self.next_id += 1;
                        self.series.push(Series {
                            id: self.next_id - 1,
                            name: family.desc.name.clone(),
                            help: family.desc.help.clone(),
                            unit: family.desc.unit.as_ref().map(|u| u.as_str().to_owned()),
                            kind: family.desc.kind,
                            labels: s.labels.clone(),
                            offset: self.cells,
                            layout: layout.clone(),
                            last_seen: seq,
                        });
                        self.cells += layout.cells();
                        values.resize(self.cells, f64::NAN);
                        self.index.insert(k, self.series.len() - 1);
                        self.series.len() - 1
                    }
                };
                let series = &mut self.series[idx];
                series.last_seen = seq;
                let cells = &mut values[series.offset..series.offset + layout.cells()];
                match &s.value {
                    OwnedValue::Counter(v) => cells[0] = *v as f64,
                    OwnedValue::IntGauge(v) => cells[0] = *v as f64,
                    OwnedValue::FloatCounter(v) | OwnedValue::Gauge(v) => cells[0] = *v,
                    OwnedValue::Histogram { counts, sum, .. } if !counts.is_empty() => {
                        for (cell, c) in cells.iter_mut().zip(counts) {
                            *cell = *c as f64;
                        }
                        cells[counts.len()] = *sum;
                    }
                    OwnedValue::NativeHistogram { counts, native, .. } if !counts.is_empty() => {
                        for (cell, c) in cells.iter_mut().zip(counts) {
                            *cell = *c as f64;
                        }
                        cells[counts.len()] = native.sum;
                    }
                    OwnedValue::Histogram { .. } => {}
                    OwnedValue::NativeHistogram { native, .. } => {
                        cells[0] = native.count as f64;
                        cells[1] = native.sum;
                    }
                    OwnedValue::Summary { quantiles, sum, count } => {
                        cells[0] = *count as f64;
                        cells[1] = *sum;
                        for (cell, (_, v)) in cells[2..].iter_mut().zip(quantiles) {
                            *cell = *v;
                        }
                    }
                }
            }
        }
        self.untracked = untracked;
        if self.ring.len() == self.config.samples {
            self.ring.pop_front();
        } else if self.ring.len() == self.ring.capacity() {
            // Grow by doubling, but never past the configured samples (a
            // plain push could reserve up to twice as many slots).
            let more = self.ring.len().max(1).min(self.config.samples - self.ring.len());
            self.ring.reserve_exact(more);
        }
        self.ring.push_back(Sample { seq, wall_ms, mono, values: values.into_boxed_slice() });
    }

    /// Forgets every series absent from all samples the ring will still
    /// hold after the one being built (`seq`, its cells so far in
    /// `values`), and repacks the others' cells, in every sample and in
    /// `values`, without the gaps.
    fn free_dead(&mut self, values: &mut Vec<f64>, seq: u64) {
        let oldest = self.oldest_kept(seq);
        let dead = |s: &Series| s.last_seen < oldest;
        if !self.series.iter().any(dead) {
            return;
        }
        // (old offset, new offset, cells) of every series kept.
        let mut moves = Vec::with_capacity(self.series.len());
        let mut cells = 0;
        self.series.retain_mut(|s| {
            if dead(s) {
                return false;
            }
            let n = s.layout.cells();
            moves.push((s.offset, cells, n));
            s.offset = cells;
            cells += n;
            true
        });
        // In place: every move is to a lower offset (or none), in offset
        // order, so a forward copy never overwrites cells still to move.
        // A sample taken before a series was tracked is shorter; what it
        // lacks, and everything past the kept cells, reads as absent.
        let repack = |cells_of: &mut [f64]| {
            let len = cells_of.len();
            for &(from, to, n) in &moves {
                if from + n <= len {
                    cells_of.copy_within(from..from + n, to);
                } else if to < len {
                    cells_of[to..(to + n).min(len)].fill(f64::NAN);
                }
            }
            if cells < len {
                cells_of[cells..].fill(f64::NAN);
            }
        };
        for sample in &mut self.ring {
            repack(&mut sample.values);
        }
        repack(values);
        values.truncate(cells);
        self.index = self.series.iter().enumerate().map(|(i, s)| (key(&s.name, &s.labels), i)).collect();
        self.cells = cells;
    }

    /// The sequence number of the oldest sample the ring will hold once
    /// the sample being built (`seq`) is added: the front goes when full.
    fn oldest_kept(&self, seq: u64) -> u64 {
        let skip = usize::from(self.ring.len() == self.config.samples);
        self.ring.get(skip).map_or(seq, |s| s.seq)
    }

    /// Samples held now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.ring.len()
    }

    /// For sample `i`, the sample its rates start from: the oldest one at
    /// most `window` (plus half an interval of jitter) before it, and never
    /// `i` itself; `None` for the first sample.
    fn base(&self, i: usize, window: f64) -> Option<usize> {
        let now = self.ring[i].mono;
        let slack = self.config.interval.as_secs_f64() / 2.0;
        let first = self.ring.partition_point(|s| now - s.mono > window + slack);
        (i > 0).then(|| first.min(i - 1))
    }

    /// Writes the plot-ready JSON for `q` to `out`.
    pub(crate) fn write_json(&self, q: &HistoryQuery, out: &mut Vec<u8>) {
        let window = q.window.as_secs_f64();
        let from = q.since_ms.map_or(0, |since| self.ring.partition_point(|s| s.wall_ms <= since));
        let points: Vec<(usize, Option<usize>)> = (from..self.ring.len()).map(|i| (i, self.base(i, window))).collect();
        out.extend_from_slice(b"{\"interval_ms\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.config.interval.as_millis() as u64).as_bytes());
        for (k, v) in [
            ("capacity", self.config.samples),
            ("samples", self.ring.len()),
            ("max_cells", self.config.max_cells),
            ("cells", self.cells),
            ("memory_bound_bytes", self.config.memory_bound()),
            ("untracked_series", self.untracked),
        ] {
            out.extend_from_slice(format!(",\"{k}\":").as_bytes());
            out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
        }
        out.extend_from_slice(b",\"window_s\":");
        write_json_number(out, window);
        out.extend_from_slice(b",\"quantiles\":[");
        for (n, (name, _)) in QUANTILES.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            write_json_string(out, name);
        }
        out.extend_from_slice(b"],\"times\":[");
        for (n, &(i, _)) in points.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(itoa::Buffer::new().format(self.ring[i].wall_ms).as_bytes());
        }
        out.extend_from_slice(b"],\"series\":[");
        let mut first = true;
        for s in &self.series {
            if !first {
                out.push(b',');
            }
            first = false;
            self.write_series(itoa::Buffer::new().format(s.id), &[s], false, &points, out);
        }
        // One merged series per histogram family of several series with the
        // same buckets: PromQL's `sum by (le)`.
        let mut families: Vec<(&str, Vec<&Series>)> = Vec::new();
        for s in self.series.iter().filter(|s| matches!(s.layout, Layout::Histogram { .. })) {
            match families.iter_mut().find(|(n, members)| *n == s.name && members[0].layout == s.layout) {
                Some((_, members)) => members.push(s),
                None => families.push((&s.name, vec![s])),
            }
        }
        for (name, members) in families.iter().filter(|(_, m)| m.len() > 1) {
            out.push(b',');
            self.write_series(&format!("all:{name}"), members, true, &points, out);
        }
        out.extend_from_slice(b"]}");
    }

    /// One series (or, with `aggregate`, the sum of several histogram
    /// series) as JSON.
    fn write_series(
        &self,
        id: &str,
        members: &[&Series],
        aggregate: bool,
        points: &[(usize, Option<usize>)],
        out: &mut Vec<u8>,
    ) {
        let s = members[0];
        out.extend_from_slice(b"{\"id\":");
        write_json_string(out, id);
        out.extend_from_slice(b",\"name\":");
        write_json_string(out, &s.name);
        out.extend_from_slice(b",\"type\":");
        write_json_string(out, s.kind.as_str());
        out.extend_from_slice(b",\"help\":");
        write_json_string(out, &s.help);
        out.extend_from_slice(b",\"unit\":");
        match &s.unit {
            Some(u) => write_json_string(out, u),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(if aggregate { b",\"aggregate\":true" } else { b",\"aggregate\":false" });
        out.extend_from_slice(b",\"labels\":");
        let labels = if aggregate { &[][..] } else { &s.labels[..] };
        write_json_object(out, labels.iter().map(|(name, value)| (name.as_str(), value.as_str())));
        let list = |out: &mut Vec<u8>, key: &str, f: &dyn Fn(usize, Option<usize>) -> f64| {
            out.extend_from_slice(format!(",\"{key}\":").as_bytes());
            array(out, points, f);
        };
        match &s.layout {
            Layout::Scalar if s.kind == MetricType::Counter => {
                list(out, "values", &|i, j| j.map_or(f64::NAN, |j| self.rate(s.offset, i, j)));
            }
            Layout::Scalar => {
                list(out, "values", &|i, _| self.ring[i].values.get(s.offset).copied().unwrap_or(f64::NAN))
            }
            Layout::Histogram { bounds } => {
                let buckets = bounds.len() + 1;
                list(out, "rate", &|i, j| {
                    j.and_then(|j| self.bucket_deltas(members, buckets, i, j)).map_or(f64::NAN, |(_, rate)| rate)
                });
                // A classic bucket knows only "at most its bound": the
                // quantiles are the bounds, and the page says so.
                out.extend_from_slice(b",\"quantiles_are_bounds\":true,\"quantiles\":{");
                for (n, (name, q)) in QUANTILES.iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    write_json_string(out, name);
                    out.push(b':');
                    array(out, points, &|i, j| {
                        j.and_then(|j| self.bucket_deltas(members, buckets, i, j))
                            .and_then(|(d, _)| hotmeter::expose::histogram_quantile_bound(bounds, &d, *q))
                            .unwrap_or(f64::NAN)
                    });
                }
                out.push(b'}');
            }
            Layout::Summary { quantiles } => {
                list(out, "rate", &|i, j| j.map_or(f64::NAN, |j| self.rate(s.offset, i, j)));
                out.extend_from_slice(b",\"quantiles\":{");
                for (n, q) in quantiles.iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    write_json_string(out, &q.to_string());
                    out.push(b':');
                    let cell = s.offset + 2 + n;
                    array(out, points, &|i, _| self.ring[i].values.get(cell).copied().unwrap_or(f64::NAN));
                }
                out.push(b'}');
            }
        }
        out.push(b'}');
    }

    /// Whether sample `k` holds cell `cell` (the series existed then).
    fn present(&self, cell: usize, k: usize) -> bool {
        self.ring[k].values.get(cell).is_some_and(|v| !v.is_nan())
    }

    /// The sample a rate at `i` starts from for a series whose first cell
    /// is `cell`: the oldest from `j` on (and before `i`) that holds it, as
    /// PromQL's `rate` starts from the first sample in its range. A series
    /// born inside the window is rated from its first sample.
    fn start(&self, cell: usize, i: usize, j: usize) -> Option<usize> {
        (j..i).find(|&k| self.present(cell, k))
    }

    /// Per-second increase of the counter cell `cell` up to sample `i`,
    /// from sample `j` (or the first after it that holds the cell); a
    /// counter that went down was reset, and its whole value counts.
    fn rate(&self, cell: usize, i: usize, j: usize) -> f64 {
        if !self.present(cell, i) {
            return f64::NAN;
        }
        let Some(k) = self.start(cell, i, j) else { return f64::NAN };
        let (a, b) = (&self.ring[k], &self.ring[i]);
        let (before, now) = (a.values[cell], b.values[cell]);
        let increase = if now < before { now } else { now - before };
        increase / (b.mono - a.mono)
    }

    /// Observations per bucket up to sample `i` from sample `j`, summed
    /// over `members`, and their total per second. Each member counts from
    /// the first sample from `j` on that holds it; a member missing from
    /// `i`, or with no earlier sample, is left out, and `None` means every
    /// member was. A series whose buckets went down was reset: its counts
    /// since count.
    fn bucket_deltas(&self, members: &[&Series], buckets: usize, i: usize, j: usize) -> Option<(Vec<u64>, f64)> {
        let mut total = vec![0u64; buckets];
        let mut rate = 0.0;
        let mut any = false;
        for s in members {
            if !self.present(s.offset, i) {
                continue;
            }
            let Some(k) = self.start(s.offset, i, j) else { continue };
            let now = &self.ring[i].values[s.offset..s.offset + buckets];
            let before = &self.ring[k].values[s.offset..s.offset + buckets];
            let reset = now.iter().zip(before).any(|(n, b)| n < b);
            let mut observed = 0u64;
            for (t, (n, b)) in total.iter_mut().zip(now.iter().zip(before)) {
                let d = if reset { *n as u64 } else { (n - b) as u64 };
                *t += d;
                observed += d;
            }
            rate += observed as f64 / (self.ring[i].mono - self.ring[k].mono);
            any = true;
        }
        any.then_some((total, rate))
    }
}

/// `[v, ...]` with one value per point, `null` where not finite.
fn array(out: &mut Vec<u8>, points: &[(usize, Option<usize>)], f: &dyn Fn(usize, Option<usize>) -> f64) {
    out.push(b'[');
    for (n, &(i, j)) in points.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        let v = f(i, j);
        if v.is_finite() { write_json_number(out, v) } else { out.extend_from_slice(b"null") }
    }
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(h: &History, q: HistoryQuery) -> serde_json::Value {
        let mut out = Vec::new();
        h.write_json(&q, &mut out);
        serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)))
    }

    fn named<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
        v["series"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no {name} in {v}"))
    }

    fn query(window: u64) -> HistoryQuery {
        HistoryQuery { since_ms: None, window: Duration::from_secs(window) }
    }

    #[test]
    fn counters_become_rates_gauges_values_and_the_ring_is_bounded() {
        let r = hotmeter::Registry::new();
        let c = r.counter("jobs_total", "Jobs.").unwrap();
        let g = r.int_gauge("depth", "Depth.").unwrap();
        let mut h = History::new(HistoryConfig { samples: 4, ..HistoryConfig::default() });
        for (t, (inc, depth)) in [(0u64, 7i64), (10, 3), (30, 5), (30, 1), (5, 2), (40, 9)].into_iter().enumerate() {
            c.inc_by(inc);
            g.set(depth);
            h.push(&r.snapshot(), 1_000 + t as u64 * 1000, t as f64);
        }
        assert_eq!(h.len(), 4, "the oldest two samples were dropped");
        let v = json(&h, query(1));
        assert_eq!(v["times"], serde_json::json!([3000, 4000, 5000, 6000]));
        let s = &v["series"].as_array().unwrap();
        let jobs = s.iter().find(|s| s["name"] == "jobs_total").unwrap();
        // The first kept sample has no earlier one in the ring: no rate.
        assert_eq!(jobs["values"], serde_json::json!([null, 30.0, 5.0, 40.0]));
        assert_eq!(jobs["type"], "counter");
        let depth = s.iter().find(|s| s["name"] == "depth").unwrap();
        assert_eq!(depth["values"], serde_json::json!([5.0, 1.0, 2.0, 9.0]));
        // A 2 s window: rates over two intervals once there are two.
        let v = json(&h, query(2));
        let jobs = v["series"].as_array().unwrap().iter().find(|s| s["name"] == "jobs_total").unwrap().clone();
        assert_eq!(jobs["values"], serde_json::json!([null, 30.0, 17.5, 22.5]));
        // Only what came after `since`.
        let v = json(&h, HistoryQuery { since_ms: Some(5000), ..query(1) });
        assert_eq!(v["times"], serde_json::json!([6000]));
        assert_eq!(named(&v, "jobs_total")["values"], serde_json::json!([40.0]));
        assert_eq!(v["samples"], 4);
        assert_eq!(v["capacity"], 4);
    }

    #[test]
    fn a_reset_counter_counts_its_new_value() {
        let mut h = History::new(HistoryConfig::default());
        for (t, total) in [100u64, 160, 20].into_iter().enumerate() {
            let r = hotmeter::Registry::new();
            r.counter("x_total", "X.").unwrap().inc_by(total);
            h.push(&r.snapshot(), t as u64, t as f64 * 2.0);
        }
        assert_eq!(named(&json(&h, query(1)), "x_total")["values"], serde_json::json!([null, 30.0, 10.0]));
    }

    #[test]
    fn histogram_quantiles_come_from_bucket_deltas_and_families_are_merged() {
        let r = hotmeter::Registry::new();
        let buckets = hotmeter::Buckets::new(vec![0.01, 0.1, 1.0]).unwrap();
        let fam = r
            .labeled_family("lat_seconds", "Latency.", &["op"], move || hotmeter::Histogram::new(buckets.clone()))
            .unwrap();
        let mut h = History::new(HistoryConfig::default());
        // Before: 100 fast observations of "a", which must not count.
        fam.with(&["a"], |x| (0..100).for_each(|_| x.observe(0.005))).unwrap();
        fam.with(&["b"], |x| x.observe(0.005)).unwrap();
        h.push(&r.snapshot(), 0, 0.0);
        // In the window: 10 slow observations of "a", 10 medium of "b".
        fam.with(&["a"], |x| (0..10).for_each(|_| x.observe(0.5))).unwrap();
        fam.with(&["b"], |x| (0..10).for_each(|_| x.observe(0.05))).unwrap();
        h.push(&r.snapshot(), 1000, 2.0);
        let v = json(&h, query(30));
        let series = v["series"].as_array().unwrap();
        let a = series.iter().find(|s| s["labels"]["op"] == "a").unwrap();
        assert_eq!(a["rate"], serde_json::json!([null, 5.0]));
        // All 10 in (0.1, 1]: P50 is at most 1 (interpolation would make
        // up 0.55).
        assert_eq!(a["quantiles"]["0.5"], serde_json::json!([null, 1.0]));
        assert_eq!(a["quantiles_are_bounds"], true);
        let all = series.iter().find(|s| s["id"] == "all:lat_seconds").unwrap();
        assert_eq!((all["aggregate"].as_bool(), all["labels"].as_object().unwrap().len()), (Some(true), 0));
        assert_eq!(all["rate"], serde_json::json!([null, 10.0]));
        // 20 in the window, half in (0.01, 0.1], half in (0.1, 1].
        assert_eq!(all["quantiles"]["0.5"], serde_json::json!([null, 0.1]));
        assert_eq!(all["quantiles"]["0.99"], serde_json::json!([null, 1.0]));
    }

    #[test]
    fn a_series_that_appears_later_has_rates_from_its_first_sample() {
        // Like PromQL's rate(x[30s]): a series born inside the window is
        // rated from its first sample, not left empty until the window
        // slides past its birth.
        let r = hotmeter::Registry::new();
        let fam = r.labeled_family("w_total", "W.", &["status"], hotmeter::Counter::new).unwrap();
        let buckets = hotmeter::Buckets::new(vec![0.01, 0.1, 1.0]).unwrap();
        let lat =
            r.labeled_family("l_seconds", "L.", &["op"], move || hotmeter::Histogram::new(buckets.clone())).unwrap();
        let mut h = History::new(HistoryConfig::default());
        for t in 0..6u64 {
            fam.with(&["ok"], |c| c.inc_by(10)).unwrap();
            lat.with(&["read"], |x| x.observe(0.005)).unwrap();
            if t >= 2 {
                // Born between samples 1 and 2: 4/s from sample 2 on.
                fam.with(&["error"], |c| c.inc_by(4)).unwrap();
                lat.with(&["write"], |x| (0..3).for_each(|_| x.observe(0.5))).unwrap();
            }
            h.push(&r.snapshot(), t * 1000, t as f64);
        }
        let v = json(&h, query(30));
        let series = v["series"].as_array().unwrap();
        let err = series.iter().find(|s| s["labels"]["status"] == "error").unwrap();
        // Its first sample has nothing before it; then 4/s.
        assert_eq!(err["values"], serde_json::json!([null, null, null, 4.0, 4.0, 4.0]));
        let write = series.iter().find(|s| s["labels"]["op"] == "write").unwrap();
        assert_eq!(write["rate"], serde_json::json!([null, null, null, 3.0, 3.0, 3.0]));
        // The family's merged series keeps its members' data: "read" at
        // 1/s all along, "write" at 3/s once it has two samples.
        let all = series.iter().find(|s| s["id"] == "all:l_seconds").unwrap();
        assert_eq!(all["rate"], serde_json::json!([null, 1.0, 1.0, 4.0, 4.0, 4.0]));
        let p99 = &all["quantiles"]["0.99"];
        assert!(p99[1].as_f64().unwrap() <= 0.01, "only fast reads: {p99}");
        assert!(p99[5].as_f64().unwrap() > 0.1, "slow writes count once present: {p99}");
    }

    #[test]
    fn the_ring_stays_within_its_stated_memory_bound() {
        // More samples than the ring reserves up front (4,096), so it grows
        // while filling; growth must not overshoot the configured samples.
        let r = hotmeter::Registry::new();
        r.counter("a_total", "A.").unwrap().inc();
        let config = HistoryConfig { samples: 5000, max_cells: 1, ..HistoryConfig::default() };
        let mut h = History::new(config.clone());
        for t in 0..6000u64 {
            h.push(&r.snapshot(), t, t as f64);
        }
        let held = h.ring.capacity() * std::mem::size_of::<Sample>()
            + h.ring.iter().map(|s| s.values.len() * std::mem::size_of::<f64>()).sum::<usize>();
        assert!(held <= config.memory_bound(), "{held} bytes held, bound {}", config.memory_bound());
        assert!(h.ring.capacity() <= config.samples, "ring capacity {}", h.ring.capacity());
    }

    #[test]
    fn series_beyond_max_cells_are_counted_not_kept() {
        let r = hotmeter::Registry::new();
        r.counter("a_total", "A.").unwrap().inc();
        r.histogram("b_seconds", "B.", hotmeter::Buckets::new(vec![1.0]).unwrap()).unwrap().observe(0.5);
        r.gauge("c", "C.").unwrap().set(1.0);
        let mut h = History::new(HistoryConfig { max_cells: 3, ..HistoryConfig::default() });
        h.push(&r.snapshot(), 0, 0.0);
        let v = json(&h, query(30));
        // a (1 cell) fits, b (3 cells) does not, c (1 cell) fits.
        let names: Vec<_> = v["series"].as_array().unwrap().iter().map(|s| s["name"].clone()).collect();
        assert_eq!(names, ["a_total", "c"]);
        assert_eq!((v["cells"].as_u64(), v["untracked_series"].as_u64()), (Some(2), Some(1)));
    }

    /// Label values that come and go: a series gone from every sample the
    /// ring holds gives its cells to a new one; until then the new one is
    /// counted as untracked. The series that stay keep their history (and
    /// so their rates) through the repacking.
    #[test]
    fn a_dead_series_frees_its_cells_for_a_new_one() {
        let r = hotmeter::Registry::new();
        let f = r.labeled_family("jobs_total", "Jobs.", &["tenant"], hotmeter::Counter::new).unwrap();
        let overflow_cells = 1; // hotmeter_label_overflow_total{metric="jobs_total"}
        let mut h =
            History::new(HistoryConfig { samples: 3, max_cells: 3 + overflow_cells, ..HistoryConfig::default() });
        let mut t = 0u64;
        // Live tenants count up by 10 a second, a sample a second.
        let mut step = |h: &mut History, live: &[&str]| {
            for tenant in live {
                f.with(&[tenant], |c| c.inc_by(10)).unwrap();
            }
            h.push(&r.snapshot(), t * 1000, t as f64);
            t += 1;
        };
        // Three tenants plus the family's overflow series: full.
        step(&mut h, &["a", "b", "c"]);
        step(&mut h, &["a", "b", "c"]);
        let tenants = |h: &History| {
            let v = json(h, query(30));
            let mut names: Vec<String> = v["series"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["name"] == "jobs_total")
                .map(|s| s["labels"]["tenant"].as_str().unwrap().to_owned())
                .collect();
            names.sort();
            (names, v["untracked_series"].as_u64().unwrap())
        };
        assert_eq!(tenants(&h), (vec!["a".into(), "b".into(), "c".into()], 0));

        // Tenant a ends and d begins: d waits while a is still in the ring.
        assert_eq!(f.remove(&["a"]), Ok(true));
        step(&mut h, &["b", "c", "d"]);
        assert_eq!(tenants(&h), (vec!["a".into(), "b".into(), "c".into()], 1), "a is in the ring still");
        step(&mut h, &["b", "c", "d"]);
        step(&mut h, &["b", "c", "d"]);
        assert_eq!(tenants(&h), (vec!["b".into(), "c".into(), "d".into()], 0), "a's cells went to d");
        let v = json(&h, query(30));
        for s in v["series"].as_array().unwrap().iter().filter(|s| s["name"] == "jobs_total") {
            let rates: Vec<Option<f64>> = s["values"].as_array().unwrap().iter().map(|r| r.as_f64()).collect();
            let expected = match s["labels"]["tenant"].as_str() {
                // From samples taken before the repack and after it (the
                // ring's first sample has no earlier one to start from).
                Some("b" | "c") => vec![None, Some(10.0), Some(10.0)],
                // Tracked from the last sample: no rate yet.
                Some("d") => vec![None, None, None],
                other => panic!("{other:?}"),
            };
            assert_eq!(rates, expected, "{}", s["labels"]);
        }
        assert_eq!(h.cells, 3 + overflow_cells);
    }

    /// A page polls with `since` and merges by `id`: a series keeps its id
    /// across a repack, and the ids of freed series are never given again.
    #[test]
    fn ids_stay_with_their_series_across_a_repack() {
        let r = hotmeter::Registry::new();
        let f = r.labeled_family("jobs_total", "Jobs.", &["tenant"], hotmeter::Counter::new).unwrap();
        let mut h = History::new(HistoryConfig { samples: 3, max_cells: 4, ..HistoryConfig::default() });
        let ids = |h: &History, since: Option<u64>| {
            let v = json(h, HistoryQuery { since_ms: since, window: Duration::from_secs(30) });
            let mut ids: Vec<(String, String)> = v["series"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (s["labels"]["tenant"].as_str().unwrap_or("-").to_owned(), s["id"].as_str().unwrap().to_owned())
                })
                .collect();
            ids.sort();
            ids
        };
        for t in 0..2u64 {
            for tenant in ["a", "b", "c"] {
                f.with(&[tenant], |c| c.inc()).unwrap();
            }
            h.push(&r.snapshot(), t * 1000, t as f64);
        }
        let before = ids(&h, None);
        f.remove(&["a"]).unwrap();
        for t in 2..6u64 {
            for tenant in ["b", "c", "d"] {
                f.with(&[tenant], |c| c.inc()).unwrap();
            }
            h.push(&r.snapshot(), t * 1000, t as f64);
        }
        let after = ids(&h, Some(4000));
        let id_of = |list: &[(String, String)], t: &str| list.iter().find(|(n, _)| n == t).map(|(_, id)| id.clone());
        assert!(id_of(&after, "a").is_none(), "a was freed");
        for t in ["b", "c", "-"] {
            assert_eq!(id_of(&before, t), id_of(&after, t), "{t} kept its id");
        }
        let d = id_of(&after, "d").unwrap();
        assert!(before.iter().all(|(_, id)| *id != d), "d has an id never used before: {d} in {before:?}");
    }

    /// A name re-registered with another shape is counted as untracked
    /// while its old shape is in the ring, then tracked in its new shape,
    /// with room to spare in the table.
    #[test]
    fn a_series_re_registered_with_another_shape_is_tracked_again() {
        let r = hotmeter::Registry::new();
        r.counter("x", "X.").unwrap().inc();
        let mut h = History::new(HistoryConfig { samples: 3, max_cells: 100, ..HistoryConfig::default() });
        h.push(&r.snapshot(), 0, 0.0);
        assert!(r.unregister("x"));
        r.histogram("x", "X.", hotmeter::Buckets::new([1.0]).unwrap()).unwrap().observe(0.5);
        let kind = |h: &History| {
            let v = json(h, query(30));
            (named(&v, "x")["type"].as_str().unwrap().to_owned(), v["untracked_series"].as_u64().unwrap())
        };
        let mut t = 1;
        let mut push = |h: &mut History| {
            h.push(&r.snapshot(), t * 1000, t as f64);
            t += 1;
        };
        push(&mut h);
        assert_eq!(kind(&h), ("counter".to_owned(), 1), "the counter is in the ring still");
        push(&mut h);
        push(&mut h);
        assert_eq!(kind(&h), ("histogram".to_owned(), 0));
    }

    #[test]
    fn label_values_and_help_are_json_strings() {
        let r = hotmeter::Registry::new();
        let f = r.labeled_family("t_total", "Help with \"quotes\" <b>.", &["space"], hotmeter::Counter::new).unwrap();
        f.with(&["<img src=x onerror=alert(1)>"], |c| c.inc()).unwrap();
        let mut h = History::new(HistoryConfig::default());
        h.push(&r.snapshot(), 0, 0.0);
        let v = json(&h, query(30));
        let t = named(&v, "t_total");
        assert_eq!(t["labels"]["space"], "<img src=x onerror=alert(1)>");
        assert_eq!(t["help"], "Help with \"quotes\" <b>.");
    }

    #[test]
    fn queries_are_parsed_and_bad_ones_named() {
        assert_eq!(HistoryQuery::parse(None), Ok(HistoryQuery { since_ms: None, window: DEFAULT_WINDOW }));
        assert_eq!(
            HistoryQuery::parse(Some("since=17&window=60&x=1")),
            Ok(HistoryQuery { since_ms: Some(17), window: Duration::from_secs(60) })
        );
        assert_eq!(HistoryQuery::parse(Some("since=-1")), Err(HistoryQueryError::BadSince { value: "-1".into() }));
        for bad in ["window=0", "window=NaN", "window=3601", "window"] {
            assert!(matches!(HistoryQuery::parse(Some(bad)), Err(HistoryQueryError::BadWindow { .. })), "{bad}");
        }
    }
}
