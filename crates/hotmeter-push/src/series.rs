//! One walk of a registry turned into a remote_write request:
//! [`RemoteWriteEncoder`], what it returns ([`Encoded`]), and how it sends
//! native histograms ([`NativeHistograms`]).
//!
//! Owns: the mapping from hotmeter values to Prometheus series (a counter
//! or gauge is one series; a classic histogram is `_bucket{le}` per bound
//! plus `le="+Inf"`, `_sum` and `_count`; a native histogram is one series
//! carrying one `Histogram` in spans and deltas, with or instead of its
//! classic series as [`NativeHistograms`] says; a summary is one
//! `{quantile}` series per quantile plus `_sum` and `_count`), escaping of
//! UTF-8 names, external labels, label sorting, protobuf encoding and
//! snappy block compression, and the stale markers that end series.
//! Must not: send anything, or run on a recording thread.
//!
//! ## Series that end
//! A series the last [`RemoteWriteEncoder::encode`] sent and this one does
//! not (its label set was removed from a family, its family unregistered,
//! a native histogram turned to classic series) goes out once more, in
//! this request, as Prometheus' stale marker: one float sample whose bits
//! are `0x7ff0000000000002`, at this request's timestamp. A receiver then
//! stops returning the series at once, instead of its last value for the
//! five minutes of its lookback, as when a scrape target's series
//! disappears. A recorded NaN never carries those bits (every NaN goes out
//! as the ordinary one), so only an ending series is marked stale. A
//! series that comes back is sent again as before. The marker is sent
//! once: if its request is dropped or refused, the receiver is not told
//! (the lookback then ends the series). The encoder keeps the last
//! request's protobuf (swapped, not copied) and a 64-bit hash of each
//! series' encoded label set; a series ended when its hash is not among
//! the new request's (the same hashes in the same order, the usual case,
//! is one pass; otherwise two sorted lists, merged). Two label sets with
//! one hash (about 1 in 10^11 for 10,000 series) would cost one marker,
//! never a wrong one. An encoder follows one registry (as a client does):
//! encoding another registry with it ends the first one's series. When the
//! receiver refuses a request for its native histograms, the client turns
//! to classic series without ending the refused request's series (they
//! were never stored).
//!
//! ## Writing
//! The protobuf is written straight from the registry walk through
//! `hotmeter_format::wire` (no message structs). A string family's plain
//! counters keep their label sets, sorted and encoded with their hashes,
//! from one encode to the next, reused while the family's text sample
//! prefixes are the same bytes (the OTLP encoder's run cache, on the same
//! terms); every other series' set is put together, sorted and encoded
//! in reused buffers.
//!
//! Spellings match the Prometheus text exposition the exporter serves
//! (`le="0.005"`, `le="1.0"`, `le="+Inf"`, `quantile="0.99"`), so a
//! dashboard reads pushed and scraped series with the same selectors.
//!
//! ## UTF-8 names
//! remote_write 1.0 requires legacy names (metric names
//! `[a-zA-Z_:][a-zA-Z0-9_:]*`, label names `[a-zA-Z_][a-zA-Z0-9_]*`) and
//! has no way to announce others. Receivers differ in what they do with
//! them: Prometheus 2.42 stores them unchecked (PromQL then reaches such a
//! metric only as `{__name__="a.b"}` and cannot match such a label at
//! all), 2.46 and later skip the series and count it in
//! `prometheus_api_remote_write_invalid_labels_samples_total`. So a family
//! registered with UTF-8 names (`NameValidation::Utf8`) is sent with its
//! metric and label names escaped by the `underscores` scheme
//! (`http.server.requests_total` becomes `http_server_requests_total`), as
//! a scrape that asked for no escaping sees it. Registration already
//! refused names that escaping would make alike. Families whose names are
//! all legacy (every family of a default registry) skip the step.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::ops::Range;

use hotmeter::Registry;
use hotmeter::expose::{CounterRun, Desc, EscapingScheme, Labels, Value, Visitor, write_f64};
use hotmeter::native::NativeBucketsRef;
use hotmeter_format::FamilyNames;
use hotmeter_format::wire::{self, LEN};
use prost::Message;

use crate::error::{ConfigError, EncodeError};
use crate::proto::WriteRequest;
use crate::run::{RunSeen, keep};

/// What a [`NativeHistogram`](hotmeter::NativeHistogram) is sent as over
/// remote_write. Classic [`Histogram`](hotmeter::Histogram)s are always
/// sent as classic series.
///
/// The receiver must take native histograms for the first two: Prometheus
/// from 2.40 with `--enable-feature=native-histograms` (a setting in 3.x).
/// One without answers every request that holds one with 500 ("native
/// histograms are disabled") and stores none of it; the client retries it
/// (counted in `remote_write_samples_retried_total`) while newer snapshots
/// are dropped. Choose [`Classic`](Self::Classic) for such a receiver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NativeHistograms {
    /// One series `name` carrying the native histogram, and nothing else:
    /// the classic buckets kept alongside are not sent. This is what
    /// Prometheus 2.42 stores when it scrapes a histogram with both
    /// (native histograms enabled, it keeps the native part only), so a
    /// pushed and a scraped process look alike.
    #[default]
    Native,
    /// The native series `name`, and beside it the classic series
    /// `name_bucket{le}` (when the histogram keeps classic buckets),
    /// `name_sum` and `name_count`, as Prometheus 2.45 and later store a
    /// scrape with `scrape_classic_histograms: true`. For dashboards and
    /// alerts still written against `_bucket` while they move to native
    /// queries; each histogram then costs its native sample plus
    /// `buckets + 3` float samples.
    NativeAndClassic,
    /// Only the classic series (`name_bucket{le}` when kept, `name_sum`,
    /// `name_count`): for receivers without native histograms.
    Classic,
}

/// Encodes registry snapshots as remote_write 1.0 request bodies, writing
/// the protobuf straight from one registry walk (no message structs) and
/// reusing its buffers from one push to the next.
///
/// ```
/// let registry = hotmeter::Registry::new();
/// registry.counter("jobs_total", "Jobs.")?.inc_by(3);
/// let mut encoder = hotmeter_push::RemoteWriteEncoder::new([("job", "batch")])?;
/// let encoded = encoder.encode(&registry, 1_700_000_000_000)?;
/// assert_eq!(encoded.samples, 1);
/// let request = encoder.request(); // the last body, decoded
/// let series = &request.timeseries[0];
/// let labels: Vec<_> = series.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
/// assert_eq!(labels, [("__name__", "jobs_total"), ("job", "batch")]);
/// assert_eq!(series.samples[0].value, 3.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RemoteWriteEncoder {
    /// External labels, sorted by name.
    external: Vec<(String, String)>,
    native: NativeHistograms,
    /// This request's protobuf, and the one before's (where the labels of
    /// the series it sent are read for their stale markers).
    raw: Vec<u8>,
    previous_raw: Vec<u8>,
    compressed: Vec<u8>,
    snappy: snap::raw::Encoder,
    /// Each series the walk wrote: its label hash and where its encoded
    /// labels are in `raw`; the same of the request before (in
    /// `previous_raw`). Both in walk order.
    sent: Vec<SentSeries>,
    previous_sent: Vec<SentSeries>,
    /// Indexes in `previous_sent` of the series that ended.
    ended: Vec<usize>,
    /// Reused for the merge: this request's hashes, and the one before's
    /// with their indexes, sorted.
    sorted_now: Vec<u64>,
    sorted_before: Vec<(u64, usize)>,
    /// The walk's buffers, kept from one encode to the next.
    walk: WalkState,
}

/// A series a request holds: the hash of its encoded labels, and where
/// they are in the request's protobuf.
#[derive(Debug, Clone)]
struct SentSeries {
    hash: u64,
    labels: Range<usize>,
}

/// Prometheus' staleness marker: the one NaN bit pattern that ends a
/// series.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// One encoded push, borrowed from the [`RemoteWriteEncoder`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Encoded<'a> {
    /// The snappy-compressed protobuf `WriteRequest`: the HTTP body.
    pub body: &'a [u8],
    /// Samples in it: one per series, a float sample or a native
    /// histogram (which counts as one sample, whatever its bucket count),
    /// stale markers included.
    pub samples: u64,
    /// Of these, stale markers: one per series the encode before sent and
    /// this one does not (see the module docs).
    pub stale_markers: u64,
    /// The protobuf's size before compression.
    pub uncompressed_len: usize,
}

impl RemoteWriteEncoder {
    /// An encoder that adds `external_labels` to every series that does not
    /// already have a label of that name (the series' own label wins, as in
    /// Prometheus; a label with an empty value is no label, so the external
    /// one applies). Names must be valid label names, each given once.
    pub fn new<N: Into<String>, V: Into<String>>(
        external_labels: impl IntoIterator<Item = (N, V)>,
    ) -> Result<Self, ConfigError> {
        let mut external: Vec<(String, String)> =
            external_labels.into_iter().map(|(n, v)| (n.into(), v.into())).collect();
        for (name, _) in &external {
            hotmeter::name::validate_label_name(name)
                .map_err(|source| ConfigError::InvalidLabelName { name: name.clone(), source })?;
        }
        external.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = external.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(ConfigError::DuplicateLabel { name: w[0].0.clone() });
        }
        Ok(Self {
            external,
            native: NativeHistograms::default(),
            raw: Vec::new(),
            previous_raw: Vec::new(),
            compressed: Vec::new(),
            snappy: snap::raw::Encoder::new(),
            sent: Vec::new(),
            previous_sent: Vec::new(),
            ended: Vec::new(),
            sorted_now: Vec::new(),
            sorted_before: Vec::new(),
            walk: WalkState::default(),
        })
    }

    /// What native histograms are sent as ([`NativeHistograms::Native`]
    /// unless set).
    pub fn native_histograms(mut self, mode: NativeHistograms) -> Self {
        self.set_native_histograms(mode);
        self
    }

    /// [`native_histograms`](Self::native_histograms) on an encoder in use
    /// (the next [`encode`](Self::encode) follows it).
    pub fn set_native_histograms(&mut self, mode: NativeHistograms) {
        self.native = mode;
    }

    /// Walks `registry` once, stamping every sample with `timestamp_ms`
    /// (milliseconds since the Unix epoch), adds a stale marker for every
    /// series the last call sent and this one does not, and returns the
    /// compressed body.
    pub fn encode(&mut self, registry: &Registry, timestamp_ms: i64) -> Result<Encoded<'_>, EncodeError> {
        // The request before stays readable for its stale markers.
        std::mem::swap(&mut self.raw, &mut self.previous_raw);
        std::mem::swap(&mut self.sent, &mut self.previous_sent);
        self.raw.clear();
        self.sent.clear();
        self.walk.export += 1;
        self.walk.native_written = false;
        let mut writer = Writer {
            external: &self.external,
            native: self.native,
            timestamp_ms,
            out: &mut self.raw,
            sent: &mut self.sent,
            walk: &mut self.walk,
        };
        registry.collect(&mut writer);
        let walked = self.sent.len() as u64;
        let stale_markers = self.mark_ended(timestamp_ms);
        // A run cache lives as long as its family's counter run, or a while
        // when its family was not walked (another registry's).
        let walk = &mut self.walk;
        let export = walk.export;
        walk.walked.sort_unstable();
        let families = &walk.walked;
        walk.runs
            .retain(|registration, cache| keep(cache.run.seen, export, families.binary_search(registration).is_err()));
        walk.walked.clear();
        // Grown when needed, never shrunk or cleared: zeroing a megabyte
        // for every push showed in the profile.
        let room = snap::raw::max_compress_len(self.raw.len()).max(1);
        if self.compressed.len() < room {
            self.compressed.resize(room, 0);
        }
        let n = self.snappy.compress(&self.raw, &mut self.compressed).map_err(EncodeError::Compress)?;
        Ok(Encoded {
            body: &self.compressed[..n],
            samples: walked + stale_markers,
            stale_markers,
            uncompressed_len: self.raw.len(),
        })
    }

    /// Appends a stale marker for every label set the last encode sent and
    /// this one does not; returns how many.
    fn mark_ended(&mut self, timestamp_ms: i64) -> u64 {
        self.ended.clear();
        // The usual case, the same series in the same order as the request
        // before: none ended, and nothing to sort.
        if self.sent.len() == self.previous_sent.len()
            && self.sent.iter().zip(&self.previous_sent).all(|(now, before)| now.hash == before.hash)
        {
            return 0;
        }
        // Both kept in walk order (the next encode compares with this
        // one's); their hashes sorted apart, then merged: every hash of the
        // last request not in this one ended.
        self.sorted_now.clear();
        self.sorted_now.extend(self.sent.iter().map(|s| s.hash));
        self.sorted_now.sort_unstable();
        self.sorted_before.clear();
        self.sorted_before.extend(self.previous_sent.iter().enumerate().map(|(j, s)| (s.hash, j)));
        self.sorted_before.sort_unstable();
        let mut now = self.sorted_now.iter().copied().peekable();
        for &(hash, j) in &self.sorted_before {
            while now.next_if(|&x| x < hash).is_some() {}
            if now.peek() != Some(&hash) {
                self.ended.push(j);
            }
        }
        for &j in &self.ended {
            let labels = &self.previous_raw[self.previous_sent[j].labels.clone()];
            write_series(&mut self.raw, labels, f64::from_bits(STALE_NAN_BITS), timestamp_ms);
        }
        self.ended.len() as u64
    }

    /// The request the last [`encode`](Self::encode) wrote, decoded (for
    /// tests and inspection: it decodes the whole protobuf).
    pub fn request(&self) -> WriteRequest {
        WriteRequest::decode(&self.raw[..]).unwrap_or_default()
    }

    /// Series the last request holds, stale markers included (its samples,
    /// which a failed compression loses).
    pub(crate) fn series_written(&self) -> u64 {
        (self.sent.len() + self.ended.len()) as u64
    }

    /// The receiver refused the last request for its native histograms:
    /// its series were never stored, so none of them is ended with a stale
    /// marker by the next encode (which sends classic series instead).
    pub(crate) fn forget_refused_request(&mut self) {
        self.sent.clear();
    }

    /// Whether the last request holds a native histogram.
    pub(crate) fn holds_native(&self) -> bool {
        self.walk.native_written
    }
}

/// Field numbers of `prompb`'s messages (see [`crate::proto`], which tests
/// decode with). Fields are written in field-number order (a oneof at its
/// first field's place) and zero values of plain fields are left out, as
/// prost writes a message: a request re-encoded by prost is the same
/// bytes (the tests check).
mod field {
    pub(super) const TIMESERIES: u32 = 1;
    pub(super) mod series {
        pub(crate) const LABELS: u32 = 1;
        pub(crate) const SAMPLES: u32 = 2;
        pub(crate) const HISTOGRAMS: u32 = 4;
    }
    pub(super) mod label {
        pub(crate) const NAME: u32 = 1;
        pub(crate) const VALUE: u32 = 2;
    }
    pub(super) mod sample {
        pub(crate) const VALUE: u32 = 1;
        pub(crate) const TIMESTAMP: u32 = 2;
    }
    pub(super) mod histogram {
        pub(crate) const COUNT_INT: u32 = 1;
        pub(crate) const SUM: u32 = 3;
        pub(crate) const SCHEMA: u32 = 4;
        pub(crate) const ZERO_THRESHOLD: u32 = 5;
        pub(crate) const ZERO_COUNT_INT: u32 = 6;
        pub(crate) const NEGATIVE_SPANS: u32 = 8;
        pub(crate) const NEGATIVE_DELTAS: u32 = 9;
        pub(crate) const POSITIVE_SPANS: u32 = 11;
        pub(crate) const POSITIVE_DELTAS: u32 = 12;
        pub(crate) const TIMESTAMP: u32 = 15;
        /// `BucketSpan.offset`, `BucketSpan.length`.
        pub(crate) const SPAN_OFFSET: u32 = 1;
        pub(crate) const SPAN_LENGTH: u32 = 2;
    }
}

/// Bytes a `Sample { value, timestamp }` takes (zero fields left out).
fn sample_len(value: f64, timestamp_ms: i64) -> usize {
    (if value != 0.0 { 9 } else { 0 }) + if timestamp_ms != 0 { 1 + wire::varint_len(timestamp_ms as u64) } else { 0 }
}

/// One `TimeSeries` with one float sample: `labels` (its `labels`
/// fields, encoded) and the sample.
fn write_series(out: &mut Vec<u8>, labels: &[u8], value: f64, timestamp_ms: i64) {
    let sample = sample_len(value, timestamp_ms);
    let len = labels.len() + wire::bytes_field_len(field::series::SAMPLES, sample);
    wire::tag(out, field::TIMESERIES, LEN);
    wire::varint(out, len as u64);
    out.extend_from_slice(labels);
    wire::tag(out, field::series::SAMPLES, LEN);
    wire::varint(out, sample as u64);
    if value != 0.0 {
        wire::double(out, field::sample::VALUE, value);
    }
    if timestamp_ms != 0 {
        wire::varint_field(out, field::sample::TIMESTAMP, timestamp_ms as u64);
    }
}

/// A hash of a series' encoded labels (its label set, sorted: one set,
/// one encoding).
fn label_hash(labels: &[u8]) -> u64 {
    let mut h = foldhash::fast::FixedState::with_seed(0x7374_616c_655f_6d6b).build_hasher();
    h.write(labels);
    h.finish()
}

/// Prometheus reads one NaN bit pattern (0x7ff0000000000002) as a
/// staleness marker that ends the series (for a native histogram, in its
/// sum); a NaN recorded in a gauge could carry it. Every NaN goes out as
/// the ordinary one.
fn not_stale(v: f64) -> f64 {
    if v.is_nan() { f64::NAN } else { v }
}

/// What a walk keeps for the next one.
#[derive(Debug, Default)]
struct WalkState {
    /// Counts encodes: a run cache not read in this one is dropped.
    export: u64,
    /// The current family's names as sent.
    names: FamilyNames,
    /// A label set being put together: names and values copied into
    /// `text`, then sorted as ranges of it.
    text: Vec<u8>,
    pairs: Vec<(Range<usize>, Range<usize>)>,
    /// The label set as encoded, before it is written.
    labels: Vec<u8>,
    spans: Vec<(i32, u32)>,
    deltas: Vec<i64>,
    /// A native histogram's message, before it is written.
    histogram: Vec<u8>,
    /// Each string family's counter run as last encoded, by registration
    /// ([`Desc::registration_id`]).
    runs: HashMap<u64, RunCache>,
    /// The family being walked: its registration; and every registration
    /// this encode walked.
    registration: u64,
    walked: Vec<u64>,
    /// The walk wrote a native histogram.
    native_written: bool,
}

/// A string family's counter run as last encoded: its sample prefixes,
/// which it is checked against at every encode, and each series' label
/// set, encoded, with its hash. As the OTLP encoder's run cache: kept per
/// registration, where a run whose prefixes (and each prefix's length)
/// are the same bytes holds the same label sets in the same order; any
/// other is encoded afresh.
#[derive(Debug, Default)]
struct RunCache {
    run: RunSeen,
    labels: Vec<u8>,
    ends: Vec<usize>,
    hashes: Vec<u64>,
}

/// The visitor that writes one `TimeSeries` per Prometheus sample.
struct Writer<'a> {
    external: &'a [(String, String)],
    native: NativeHistograms,
    timestamp_ms: i64,
    out: &'a mut Vec<u8>,
    sent: &'a mut Vec<SentSeries>,
    walk: &'a mut WalkState,
}

impl WalkState {
    /// Puts together one series' label set: `__name__` = the family's name
    /// (as sent) + `suffix`, `extra` (`le` or `quantile` and its bound,
    /// spelled as the text format spells it), the series' labels (names
    /// escaped if the family needs it), the external labels not already
    /// present; sorted by name (the spec requires it); and writes it into
    /// `self.labels` as `TimeSeries.labels` fields (an empty value left
    /// out, as proto3 does).
    fn label_set(
        &mut self,
        suffix: &str,
        labels: &Labels<'_>,
        extra: Option<(&str, f64)>,
        external: &[(String, String)],
    ) {
        self.text.clear();
        self.pairs.clear();
        let push = |text: &mut Vec<u8>, name: &[&[u8]], value: &[&[u8]]| {
            let n = text.len();
            name.iter().for_each(|part| text.extend_from_slice(part));
            let v = text.len();
            value.iter().for_each(|part| text.extend_from_slice(part));
            (n..v, v..text.len())
        };
        let name = push(&mut self.text, &[b"__name__"], &[self.names.name().as_bytes(), suffix.as_bytes()]);
        self.pairs.push(name);
        if let Some((n, v)) = extra {
            let start = self.text.len();
            self.text.extend_from_slice(n.as_bytes());
            let mid = self.text.len();
            write_f64(&mut self.text, v);
            self.pairs.push((start..mid, mid..self.text.len()));
        }
        for (i, (name, value)) in labels.iter().enumerate() {
            // An empty value is no label, as Prometheus reads it: it does
            // not keep an external label of that name out.
            if value.is_empty() {
                continue;
            }
            let name = self.names.label(i).unwrap_or(name);
            let pair = push(&mut self.text, &[name.as_bytes()], &[value.as_bytes()]);
            self.pairs.push(pair);
        }
        for (n, v) in external {
            let pair = push(&mut self.text, &[n.as_bytes()], &[v.as_bytes()]);
            self.pairs.push(pair);
        }
        // Stable: of two labels with one name, the first pushed (the
        // series' own) stays and the external one goes.
        let text = &self.text;
        self.pairs.sort_by(|a, b| text[a.0.clone()].cmp(&text[b.0.clone()]));
        self.pairs.dedup_by(|later, first| text[later.0.clone()] == text[first.0.clone()]);
        self.labels.clear();
        for (n, v) in &self.pairs {
            let (name, value) = (&text[n.clone()], &text[v.clone()]);
            let len = wire::bytes_field_len(field::label::NAME, name.len())
                + if value.is_empty() { 0 } else { wire::bytes_field_len(field::label::VALUE, value.len()) };
            wire::tag(&mut self.labels, field::series::LABELS, LEN);
            wire::varint(&mut self.labels, len as u64);
            wire::bytes(&mut self.labels, field::label::NAME, name);
            if !value.is_empty() {
                wire::bytes(&mut self.labels, field::label::VALUE, value);
            }
        }
    }
}

impl Writer<'_> {
    /// Notes a series about to be written with `labels` (already in
    /// `self.out` at `at..`) for the stale-marker merge.
    fn note(&mut self, hash: u64, at: Range<usize>) {
        self.sent.push(SentSeries { hash, labels: at });
    }

    /// One float series with these encoded labels.
    fn series(&mut self, labels: &[u8], hash: u64, value: f64) {
        let value = not_stale(value);
        let sample = sample_len(value, self.timestamp_ms);
        let len = labels.len() + wire::bytes_field_len(field::series::SAMPLES, sample);
        wire::tag(self.out, field::TIMESERIES, LEN);
        wire::varint(self.out, len as u64);
        let at = self.out.len();
        self.out.extend_from_slice(labels);
        let labels_end = self.out.len();
        wire::tag(self.out, field::series::SAMPLES, LEN);
        wire::varint(self.out, sample as u64);
        if value != 0.0 {
            wire::double(self.out, field::sample::VALUE, value);
        }
        if self.timestamp_ms != 0 {
            wire::varint_field(self.out, field::sample::TIMESTAMP, self.timestamp_ms as u64);
        }
        self.note(hash, at..labels_end);
    }

    /// One float series of the current family.
    fn push(&mut self, suffix: &str, labels: &Labels<'_>, extra: Option<(&str, f64)>, value: f64) {
        let walk = &mut *self.walk;
        walk.label_set(suffix, labels, extra, self.external);
        let labels = std::mem::take(&mut walk.labels);
        self.series(&labels, label_hash(&labels), value);
        self.walk.labels = labels;
    }

    /// `_bucket{le}` per classic bucket (cumulative, `+Inf` last), `_sum`
    /// and `_count`.
    fn push_classic(&mut self, labels: &Labels<'_>, bounds: &[f64], counts: &[u64], sum: f64, count: u64) {
        let mut cumulative = 0u64;
        for (i, &c) in counts.iter().enumerate() {
            cumulative += c;
            let le = bounds.get(i).copied().unwrap_or(f64::INFINITY);
            self.push("_bucket", labels, Some(("le", le)), cumulative as f64);
        }
        self.push("_sum", labels, None, sum);
        self.push("_count", labels, None, count as f64);
    }

    /// One series named as the family carrying one integer native
    /// histogram. The reset hint is left `UNKNOWN` (0, so not written): the
    /// receiver detects a reset (a restarted process) itself.
    fn push_native(&mut self, labels: &Labels<'_>, native: &NativeBucketsRef<'_>) {
        use field::histogram as h;
        let walk = &mut *self.walk;
        walk.native_written = true;
        walk.label_set("", labels, None, self.external);
        // The histogram first, apart, so the series' length is known.
        let hist = &mut walk.histogram;
        hist.clear();
        wire::varint_field(hist, h::COUNT_INT, native.count);
        let sum = not_stale(native.sum);
        if sum != 0.0 {
            wire::double(hist, h::SUM, sum);
        }
        if native.schema != 0 {
            wire::varint_field(hist, h::SCHEMA, wire::zigzag(i64::from(native.schema)));
        }
        if native.zero_threshold != 0.0 {
            wire::double(hist, h::ZERO_THRESHOLD, native.zero_threshold);
        }
        wire::varint_field(hist, h::ZERO_COUNT_INT, native.zero_count);
        hotmeter::native::spans_and_deltas(native.negative, &mut walk.spans, &mut walk.deltas);
        spans_field(hist, h::NEGATIVE_SPANS, &walk.spans);
        deltas_field(hist, h::NEGATIVE_DELTAS, &walk.deltas);
        hotmeter::native::spans_and_deltas(native.positive, &mut walk.spans, &mut walk.deltas);
        spans_field(hist, h::POSITIVE_SPANS, &walk.spans);
        deltas_field(hist, h::POSITIVE_DELTAS, &walk.deltas);
        if self.timestamp_ms != 0 {
            wire::varint_field(hist, h::TIMESTAMP, self.timestamp_ms as u64);
        }
        let out = &mut *self.out;
        let len = walk.labels.len() + wire::bytes_field_len(field::series::HISTOGRAMS, hist.len());
        wire::tag(out, field::TIMESERIES, LEN);
        wire::varint(out, len as u64);
        let at = out.len();
        out.extend_from_slice(&walk.labels);
        let labels_end = out.len();
        wire::bytes(out, field::series::HISTOGRAMS, hist);
        let hash = label_hash(&walk.labels);
        self.note(hash, at..labels_end);
    }
}

/// Repeated `BucketSpan`s (offsets `sint32`, lengths `uint32`; zeros left
/// out).
fn spans_field(out: &mut Vec<u8>, number: u32, spans: &[(i32, u32)]) {
    use field::histogram as h;
    for &(offset, length) in spans {
        let offset = wire::zigzag(i64::from(offset));
        let length = u64::from(length);
        let len = if offset != 0 { 1 + wire::varint_len(offset) } else { 0 }
            + if length != 0 { 1 + wire::varint_len(length) } else { 0 };
        wire::tag(out, number, LEN);
        wire::varint(out, len as u64);
        if offset != 0 {
            wire::varint_field(out, h::SPAN_OFFSET, offset);
        }
        if length != 0 {
            wire::varint_field(out, h::SPAN_LENGTH, length);
        }
    }
}

/// Repeated `sint64` deltas, packed.
fn deltas_field(out: &mut Vec<u8>, number: u32, deltas: &[i64]) {
    if deltas.is_empty() {
        return;
    }
    wire::tag(out, number, LEN);
    let len: usize = deltas.iter().map(|&d| wire::varint_len(wire::zigzag(d))).sum();
    wire::varint(out, len as u64);
    for &d in deltas {
        wire::varint(out, wire::zigzag(d));
    }
}

impl Visitor for Writer<'_> {
    fn family(&mut self, desc: &Desc) {
        self.walk.names.set(desc, EscapingScheme::Underscores);
        self.walk.registration = desc.registration_id();
        self.walk.walked.push(self.walk.registration);
    }

    /// A string family's plain counters: their label sets copied from the
    /// family's [`RunCache`] while the run holds the same label sets.
    fn counters(&mut self, run: &CounterRun<'_>) {
        let walk = &mut *self.walk;
        // Taken out while the series are written, then put back.
        let mut cache = walk.runs.remove(&walk.registration).unwrap_or_default();
        cache.run.seen = walk.export;
        if !cache.run.holds(run) {
            cache.run.note(run);
            cache.labels.clear();
            cache.ends.clear();
            cache.hashes.clear();
            for i in 0..run.len() {
                walk.label_set("", &run.labels(i), None, self.external);
                cache.labels.extend_from_slice(&walk.labels);
                cache.ends.push(cache.labels.len());
                cache.hashes.push(label_hash(&walk.labels));
            }
        }
        let mut start = 0;
        for (i, &end) in cache.ends.iter().enumerate() {
            self.series(&cache.labels[start..end], cache.hashes[i], run.value(i) as f64);
            start = end;
        }
        self.walk.runs.insert(self.walk.registration, cache);
    }

    fn sample(&mut self, labels: &Labels<'_>, value: &Value<'_>) {
        match *value {
            Value::Counter(v) | Value::TracedCounter { total: v, .. } => self.push("", labels, None, v as f64),
            Value::FloatCounter(v) | Value::Gauge(v) => self.push("", labels, None, v),
            Value::IntGauge(v) => self.push("", labels, None, v as f64),
            Value::Histogram { bounds, counts, sum, count, exemplars: _ } => {
                self.push_classic(labels, bounds, counts, sum, count);
            }
            Value::NativeHistogram { native, bounds, counts, exemplars: _ } => {
                if self.native != NativeHistograms::Classic {
                    self.push_native(labels, &native);
                }
                if self.native != NativeHistograms::Native {
                    // Without classic buckets, the one `+Inf` bucket (as the
                    // text formats write it).
                    let inf = [native.count];
                    let counts = if bounds.is_empty() { &inf[..] } else { counts };
                    self.push_classic(labels, bounds, counts, native.sum, native.count);
                }
            }
            Value::Summary { quantiles, sum, count } => {
                for &(q, v) in quantiles {
                    self.push("", labels, Some(("quantile", q)), v);
                }
                self.push("_sum", labels, None, sum);
                self.push("_count", labels, None, count as f64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{BucketSpan, Histogram, Label, Sample, histogram};
    use hotmeter::{Buckets, Counter, NameValidation, NativeOpts, SummaryOpts};

    /// A series as (labels, value, timestamp).
    type Flat = (Vec<(String, String)>, f64, i64);

    fn series(enc: &RemoteWriteEncoder) -> Vec<Flat> {
        let request = enc.request();
        assert!(request.encode_to_vec() == enc.raw, "prost writes the same request as other bytes");
        request
            .timeseries
            .iter()
            .map(|s| {
                // A native histogram's series as its count.
                let (value, timestamp) = match (s.samples.first(), s.histograms.first()) {
                    (Some(x), _) => (x.value, x.timestamp),
                    (None, Some(h)) => match h.count {
                        Some(histogram::Count::CountInt(c)) => (c as f64, h.timestamp),
                        _ => (f64::NAN, h.timestamp),
                    },
                    (None, None) => panic!("an empty series: {s:?}"),
                };
                (s.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect(), value, timestamp)
            })
            .collect()
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
    }

    /// The stale markers of one encode, as sorted `__name__{labels}` keys.
    fn stale(enc: &RemoteWriteEncoder) -> Vec<String> {
        let mut keys: Vec<String> = enc
            .request()
            .timeseries
            .iter()
            .filter(|t| t.samples.iter().any(|s| s.value.to_bits() == STALE_NAN_BITS))
            .map(|t| {
                assert_eq!(t.samples.len(), 1, "a marker is one sample");
                assert!(t.histograms.is_empty());
                t.labels.iter().map(|l| format!("{}={}", l.name, l.value)).collect::<Vec<_>>().join(",")
            })
            .collect();
        keys.sort();
        keys
    }

    /// A series that is no longer there is marked stale once, at the
    /// request's timestamp, with exactly the labels it was sent with
    /// (external ones included); one that comes back is sent as before.
    #[test]
    fn a_series_that_ends_is_marked_stale_once() {
        let r = Registry::new();
        let jobs = r.labeled_family("jobs_total", "Jobs.", &["tenant"], Counter::new).unwrap();
        let lat = r
            .labeled_family("lat_seconds", "L.", &["tenant"], || hotmeter::Histogram::new(Buckets::new([1.0]).unwrap()))
            .unwrap();
        for t in ["a", "b"] {
            jobs.with(&[t], |c| c.inc()).unwrap();
            lat.with(&[t], |h| h.observe(0.5)).unwrap();
        }
        let mut enc = RemoteWriteEncoder::new([("job", "w")]).unwrap();
        let first = enc.encode(&r, 1_000).unwrap();
        // Each family's `hotmeter_label_overflow_total{metric}` is a series too.
        let overflow = 2;
        assert_eq!((first.samples, first.stale_markers), (overflow + 2 + 2 * 4, 0), "{:?}", series(&enc));

        assert!(jobs.remove(&["a"]).unwrap());
        assert!(lat.remove(&["b"]).unwrap());
        let second = enc.encode(&r, 2_000).unwrap();
        assert_eq!((second.samples, second.stale_markers), (overflow + 1 + 4 + 5, 5));
        assert_eq!(
            stale(&enc),
            [
                "__name__=jobs_total,job=w,tenant=a",
                "__name__=lat_seconds_bucket,job=w,le=+Inf,tenant=b",
                "__name__=lat_seconds_bucket,job=w,le=1.0,tenant=b",
                "__name__=lat_seconds_count,job=w,tenant=b",
                "__name__=lat_seconds_sum,job=w,tenant=b",
            ]
        );
        assert!(
            enc.request()
                .timeseries
                .iter()
                .filter(|t| t.samples[0].value.to_bits() == STALE_NAN_BITS)
                .all(|t| t.samples[0].timestamp == 2_000)
        );

        let third = enc.encode(&r, 3_000).unwrap();
        assert_eq!((third.samples, third.stale_markers), (overflow + 1 + 4, 0), "marked once");

        jobs.with(&["a"], |c| c.inc()).unwrap();
        let fourth = enc.encode(&r, 4_000).unwrap();
        assert_eq!((fourth.samples, fourth.stale_markers), (overflow + 2 + 4, 0));
        assert!(stale(&enc).is_empty());
        assert!(series(&enc).iter().any(|(l, v, _)| l.contains(&("tenant".into(), "a".into())) && *v >= 1.0));

        // A whole family unregistered: every series of it.
        assert!(r.unregister("jobs_total"));
        enc.encode(&r, 5_000).unwrap();
        assert_eq!(
            stale(&enc),
            [
                "__name__=hotmeter_label_overflow_total,job=w,metric=jobs_total",
                "__name__=jobs_total,job=w,tenant=a",
                "__name__=jobs_total,job=w,tenant=b"
            ]
        );
    }

    /// A string family's counters reuse their label sets, encoded at the
    /// encode before, only while the family holds the very same ones: a
    /// series swapped for another of the same length is encoded afresh
    /// (and the one it replaced marked stale).
    #[test]
    fn a_counter_run_reuses_label_sets_only_for_the_same_series() {
        let r = Registry::new();
        let jobs = r.labeled_family("jobs_total", "Jobs.", &["tenant"], Counter::new).unwrap();
        for (t, n) in [("a", 1), ("b", 2), ("c", 3)] {
            jobs.with(&[t], |c| c.inc_by(n)).unwrap();
        }
        let mut enc = RemoteWriteEncoder::new([("job", "w")]).unwrap();
        let values = |enc: &RemoteWriteEncoder| {
            series(enc)
                .into_iter()
                .filter(|(l, v, _)| l[0].1 == "jobs_total" && !v.is_nan())
                .map(|(l, v, _)| (l[2].1.clone(), v))
                .collect::<Vec<_>>()
        };
        enc.encode(&r, 1).unwrap();
        assert_eq!(values(&enc), [("a".to_owned(), 1.0), ("b".to_owned(), 2.0), ("c".to_owned(), 3.0)]);
        jobs.with(&["b"], |c| c.inc_by(10)).unwrap();
        enc.encode(&r, 2).unwrap();
        assert_eq!(values(&enc), [("a".to_owned(), 1.0), ("b".to_owned(), 12.0), ("c".to_owned(), 3.0)]);
        jobs.remove(&["b"]).unwrap();
        jobs.with(&["d"], |c| c.inc_by(4)).unwrap();
        let e = enc.encode(&r, 3).unwrap();
        assert_eq!(e.stale_markers, 1);
        assert_eq!(values(&enc), [("a".to_owned(), 1.0), ("c".to_owned(), 3.0), ("d".to_owned(), 4.0)]);
        assert_eq!(stale(&enc), ["__name__=jobs_total,job=w,tenant=b"]);
    }

    /// Review finding (OTLP's, the same cache): with UTF-8 names one text
    /// spells two label sets; a family re-registered with other label
    /// names gets its label sets encoded afresh.
    #[test]
    fn a_run_cache_never_crosses_registrations() {
        let r = Registry::builder().name_validation(NameValidation::Utf8).build().unwrap();
        r.labeled_family("jobs_total", "J.", &["a", "b"], Counter::new)
            .unwrap()
            .with(&["x", "y"], |c| c.inc())
            .unwrap();
        let mut enc = RemoteWriteEncoder::new::<&str, &str>([]).unwrap();
        enc.encode(&r, 1).unwrap();
        assert!(r.unregister("jobs_total"));
        r.labeled_family("jobs_total", "J.", &["a=\"x\",b"], Counter::new).unwrap().with(&["y"], |c| c.inc()).unwrap();
        enc.encode(&r, 2).unwrap();
        let got = series(&enc);
        let jobs: Vec<_> = got.iter().filter(|s| s.0[0].1 == "jobs_total" && !s.1.is_nan()).collect();
        // Sent with its name escaped (remote_write 1.0 takes legacy names).
        assert_eq!(jobs[0].0, labels(&[("__name__", "jobs_total"), ("a__x__b", "y")]), "{got:?}");
    }

    /// Review findings: an empty label value is no label, so the external
    /// label of that name applies (as Prometheus adds external labels to a
    /// scraped series); and a request refused for its native histograms
    /// ends none of its series when the encoder turns to classic ones.
    #[test]
    fn empty_values_and_a_refused_native_request() {
        let r = Registry::new();
        let c = r.labeled_family("c_total", "C.", &["k", "m"], Counter::new).unwrap();
        c.with(&["", "v"], |c| c.inc()).unwrap();
        let mut enc = RemoteWriteEncoder::new([("k", "ext"), ("job", "j")]).unwrap();
        enc.encode(&r, 1).unwrap();
        let got = series(&enc);
        assert_eq!(got[0].0, labels(&[("__name__", "c_total"), ("job", "j"), ("k", "ext"), ("m", "v")]));

        let r = native_registry();
        let mut enc = RemoteWriteEncoder::new([("job", "j")]).unwrap();
        assert_eq!(enc.encode(&r, 1).unwrap().samples, 1);
        crate::remote_write::Snapshotter::use_classic(&mut enc);
        let classic = enc.encode(&r, 2).unwrap();
        assert_eq!((classic.samples, classic.stale_markers), (5, 0), "no marker for the refused native series");
        assert!(stale(&enc).is_empty());
    }

    #[test]
    fn histograms_become_cumulative_buckets_sum_and_count() {
        let r = Registry::builder().const_label("zone", "z1").build().unwrap();
        let h = r.histogram("lat_seconds", "Latency.", Buckets::new([0.1, 1.0]).unwrap()).unwrap();
        h.observe(0.05);
        h.observe(0.5);
        h.observe(0.7);
        h.observe(5.0);
        let mut enc = RemoteWriteEncoder::new([("job", "j"), ("instance", "i:1")]).unwrap();
        let encoded = enc.encode(&r, 42).unwrap();
        assert_eq!(encoded.samples, 5);
        let got = series(&enc);
        let with = |name: &str, le: Option<&str>| {
            let mut l = vec![("__name__", name), ("instance", "i:1"), ("job", "j")];
            if let Some(le) = le {
                l.push(("le", le));
            }
            l.push(("zone", "z1"));
            labels(&l)
        };
        assert_eq!(
            got,
            vec![
                (with("lat_seconds_bucket", Some("0.1")), 1.0, 42),
                (with("lat_seconds_bucket", Some("1.0")), 3.0, 42),
                (with("lat_seconds_bucket", Some("+Inf")), 4.0, 42),
                (with("lat_seconds_sum", None), 6.25, 42),
                (with("lat_seconds_count", None), 4.0, 42),
            ]
        );
    }

    #[test]
    fn summaries_counters_and_label_order() {
        let r = Registry::new();
        let s = r.summary("size_bytes", "Sizes.", SummaryOpts::default()).unwrap();
        s.observe(10.0);
        let fam = r.labeled_family("req_total", "Requests.", &["Zeta", "alpha"], Counter::new).unwrap();
        fam.with(&["z", "a"], |c| c.inc_by(7)).unwrap();
        // `Zeta` sorts before `__name__` (uppercase before `_`); an external
        // `alpha` loses to the series' own.
        let mut enc = RemoteWriteEncoder::new([("alpha", "external"), ("b", "x")]).unwrap();
        enc.encode(&r, 1).unwrap();
        let got = series(&enc);
        let named =
            |name: &'static str| got.iter().filter(move |s| s.0.iter().any(|l| l.0 == "__name__" && l.1 == name));
        let req = named("req_total").next().unwrap();
        assert_eq!(req.0, labels(&[("Zeta", "z"), ("__name__", "req_total"), ("alpha", "a"), ("b", "x")]));
        assert_eq!(req.1, 7.0);
        let quantiles: Vec<_> =
            named("size_bytes").map(|s| s.0.iter().find(|l| l.0 == "quantile").unwrap().1.clone()).collect();
        assert_eq!(quantiles.len(), SummaryOpts::default().quantiles.len());
        assert!(quantiles.iter().all(|q| q.parse::<f64>().is_ok()), "{quantiles:?}");
        let count = named("size_bytes_count").next().unwrap();
        assert_eq!(count.1, 1.0);
    }

    #[test]
    fn body_is_snappy_of_the_protobuf() {
        let r = Registry::new();
        r.gauge("g", "G.").unwrap().set(-1.5);
        let mut enc = RemoteWriteEncoder::new::<&str, &str>([]).unwrap();
        let e = enc.encode(&r, 7).unwrap();
        let raw = snap::raw::Decoder::new().decompress_vec(e.body).unwrap();
        assert_eq!(raw.len(), e.uncompressed_len);
        let decoded = WriteRequest::decode(&raw[..]).unwrap();
        assert_eq!(decoded, enc.request());
        assert_eq!(decoded.timeseries[0].samples[0], Sample { value: -1.5, timestamp: 7 });
    }

    #[test]
    fn a_recorded_nan_is_never_the_staleness_marker() {
        const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;
        let r = Registry::new();
        r.gauge("g", "G.").unwrap().set(f64::from_bits(STALE_NAN));
        r.gauge("h", "H.").unwrap().set(f64::NAN);
        let mut enc = RemoteWriteEncoder::new::<&str, &str>([]).unwrap();
        let e = enc.encode(&r, 7).unwrap();
        let raw = snap::raw::Decoder::new().decompress_vec(e.body).unwrap();
        for s in WriteRequest::decode(&raw[..]).unwrap().timeseries {
            let v = s.samples[0].value;
            assert!(v.is_nan() && v.to_bits() != STALE_NAN, "{:?}: {:#x}", s.labels, v.to_bits());
        }
    }

    #[test]
    fn bad_external_labels_are_refused() {
        assert!(matches!(
            RemoteWriteEncoder::new([("__name__", "x")]),
            Err(ConfigError::InvalidLabelName { name, .. }) if name == "__name__"
        ));
        assert!(matches!(
            RemoteWriteEncoder::new([("a-b", "x")]),
            Err(ConfigError::InvalidLabelName { name, .. }) if name == "a-b"
        ));
        assert!(matches!(
            RemoteWriteEncoder::new([("job", "a"), ("job", "b")]),
            Err(ConfigError::DuplicateLabel { name }) if name == "job"
        ));
    }

    /// A native histogram at schema 0 with classic buckets alongside:
    /// positive buckets 0, 2 (twice) and 7, negative bucket -1, one zero.
    fn native_registry() -> Registry {
        let r = Registry::new();
        let opts = NativeOpts::new().schema(0).unwrap().classic(Buckets::new([1.0, 10.0]).unwrap());
        let h = r.native_histogram("rt_seconds", "RT.", opts).unwrap();
        for v in [1.0, 3.0, 3.5, 100.0, -0.5, 0.0] {
            h.observe(v);
        }
        r
    }

    fn names(enc: &RemoteWriteEncoder) -> Vec<String> {
        enc.request().timeseries.iter().map(|s| s.labels[0].value.clone()).collect()
    }

    #[test]
    fn native_histograms_travel_as_spans_and_deltas() {
        let r = native_registry();
        let mut enc = RemoteWriteEncoder::new([("job", "j")]).unwrap();
        let encoded = enc.encode(&r, 99).unwrap();
        assert_eq!(encoded.samples, 1, "one series, one histogram sample");
        let raw = snap::raw::Decoder::new().decompress_vec(encoded.body).unwrap();
        let decoded = WriteRequest::decode(&raw[..]).unwrap();
        assert_eq!(decoded, enc.request());
        let [series] = &decoded.timeseries[..] else { panic!("{decoded:?}") };
        assert_eq!(
            series.labels,
            [
                Label { name: "__name__".into(), value: "rt_seconds".into() },
                Label { name: "job".into(), value: "j".into() }
            ]
        );
        assert!(series.samples.is_empty());
        let [h] = &series.histograms[..] else { panic!("{series:?}") };
        let span = |offset, length| BucketSpan { offset, length };
        let want = Histogram {
            count: Some(histogram::Count::CountInt(6)),
            sum: 107.0,
            schema: 0,
            zero_threshold: hotmeter::native::DEFAULT_ZERO_THRESHOLD,
            zero_count: Some(histogram::ZeroCount::ZeroCountInt(1)),
            negative_spans: vec![span(-1, 1)],
            negative_deltas: vec![1],
            // Keys 0..=2 in one span (the empty key 1 bridged with a zero
            // count), then a gap of 4 to key 7.
            positive_spans: vec![span(0, 3), span(4, 1)],
            positive_deltas: vec![1, -1, 2, -1],
            timestamp: 99,
            ..Histogram::default()
        };
        assert_eq!(*h, want);
        assert_eq!(h.reset_hint, histogram::ResetHint::Unknown as i32);
    }

    #[test]
    fn native_histogram_modes_choose_the_series() {
        let r = native_registry();
        let mode = |m| RemoteWriteEncoder::new::<&str, &str>([]).unwrap().native_histograms(m);
        let mut both = mode(NativeHistograms::NativeAndClassic);
        assert_eq!(both.encode(&r, 1).unwrap().samples, 6);
        assert_eq!(
            names(&both),
            [
                "rt_seconds",
                "rt_seconds_bucket",
                "rt_seconds_bucket",
                "rt_seconds_bucket",
                "rt_seconds_sum",
                "rt_seconds_count"
            ]
        );
        let got = series(&both);
        // Classic counts from the buckets kept alongside: -0.5, 0 and 1 at
        // or below 1; 3 and 3.5 below 10; 100 above.
        let values: Vec<(Option<&str>, f64)> =
            got[1..].iter().map(|s| (s.0.iter().find(|l| l.0 == "le").map(|l| l.1.as_str()), s.1)).collect();
        assert_eq!(values, [(Some("1.0"), 3.0), (Some("10.0"), 5.0), (Some("+Inf"), 6.0), (None, 107.0), (None, 6.0)]);
        assert_eq!(both.request().timeseries[0].histograms.len(), 1);
        assert!(both.request().timeseries[1..].iter().all(|s| s.histograms.is_empty() && s.samples.len() == 1));

        let mut classic = mode(NativeHistograms::Classic);
        assert_eq!(classic.encode(&r, 1).unwrap().samples, 5);
        assert_eq!(names(&classic), &names(&both)[1..]);
        assert!(classic.request().timeseries.iter().all(|s| s.histograms.is_empty()));

        // Without classic buckets, the classic form is the one `+Inf`
        // bucket, `_sum` and `_count`.
        let bare = Registry::new();
        bare.native_histogram("n", "N.", NativeOpts::new()).unwrap().observe(2.0);
        let mut bare_classic = mode(NativeHistograms::Classic);
        assert_eq!(bare_classic.encode(&bare, 1).unwrap().samples, 3);
        assert_eq!(names(&bare_classic), ["n_bucket", "n_sum", "n_count"]);
        let mut native = mode(NativeHistograms::Native);
        assert_eq!(native.encode(&bare, 1).unwrap().samples, 1);
        assert_eq!(names(&native), ["n"]);
    }

    #[test]
    fn utf8_names_are_escaped_with_underscores_and_legacy_ones_kept() {
        let r = Registry::builder().name_validation(NameValidation::Utf8).const_label("zone.id", "z1").build().unwrap();
        let fam = r
            .labeled_family("http.server.requests_total", "Requests.", &["service.name", "code"], Counter::new)
            .unwrap();
        fam.with(&["api.v1", "200"], |c| c.inc_by(3)).unwrap();
        let h =
            r.native_histogram("rpc.duration", "D.", NativeOpts::new().classic(Buckets::new([1.0]).unwrap())).unwrap();
        h.observe(0.5);
        let mut enc =
            RemoteWriteEncoder::new([("job", "j")]).unwrap().native_histograms(NativeHistograms::NativeAndClassic);
        enc.encode(&r, 1).unwrap();
        let got = series(&enc);
        let find = |name: &str| got.iter().find(|s| s.0[0].1 == name).unwrap_or_else(|| panic!("{name}: {got:?}"));
        // Values are never escaped; names are, and the set is sorted by the
        // names as sent.
        assert_eq!(
            find("http_server_requests_total").0,
            labels(&[
                ("__name__", "http_server_requests_total"),
                ("code", "200"),
                ("job", "j"),
                ("service_name", "api.v1"),
                ("zone_id", "z1")
            ])
        );
        assert_eq!(find("rpc_duration").0, labels(&[("__name__", "rpc_duration"), ("job", "j"), ("zone_id", "z1")]));
        assert_eq!(find("rpc_duration_bucket").0[1], ("job".to_owned(), "j".to_owned()));
        for s in &got {
            assert!(hotmeter::name::is_legacy_metric_name(&s.0[0].1), "{s:?}");
            assert!(s.0.iter().all(|l| hotmeter::name::is_legacy_label_name(l.0.trim_start_matches('_'))), "{s:?}");
        }

        // A legacy registry's names are sent as registered.
        let plain = Registry::new();
        plain.counter("a_b:c_total", "A.").unwrap().inc();
        let mut enc = RemoteWriteEncoder::new::<&str, &str>([]).unwrap();
        enc.encode(&plain, 1).unwrap();
        assert_eq!(names(&enc), ["a_b:c_total"]);
    }

    /// The per-histogram size the memory-bound docs state: about 40 bytes
    /// and one to two bytes per bucket, before compression (measured: 41
    /// bytes empty with its one label, 225 more for 176 buckets).
    #[test]
    fn a_native_histogram_costs_a_few_bytes_per_bucket() {
        let r = Registry::new();
        let h = r.native_histogram("h", "H.", NativeOpts::new()).unwrap();
        let mut enc = RemoteWriteEncoder::new::<&str, &str>([]).unwrap();
        let empty = enc.encode(&r, 1_700_000_000_000).unwrap().uncompressed_len;
        // 160 populated buckets (the default most), counts up to 1,000.
        for i in 0..160 {
            for _ in 0..(1 + i * 6) {
                h.observe(1.1f64.powi(i));
            }
        }
        let full = enc.encode(&r, 1_700_000_000_000).unwrap().uncompressed_len;
        // Deltas: the populated buckets and the short gaps bridged.
        let deltas = enc.request().timeseries[0].histograms[0].positive_deltas.len();
        assert!((160..=190).contains(&deltas), "{deltas}");
        let per_bucket = (full - empty) as f64 / deltas as f64;
        assert!((1.0..=2.5).contains(&per_bucket), "{per_bucket} bytes per bucket");
        let label_bytes = 2 + 2 + 8 + 1; // labels field, __name__ pair framing, "__name__", "h"
        assert!(empty - label_bytes <= 40, "{empty} bytes for an empty histogram");
    }
}
