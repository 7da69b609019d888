//! Quantiles over a sliding time window: [`Summary`] and [`SummaryOpts`],
//! backed by `hdrhistogram`.
//!
//! Owns: per-shard rings of HDR histograms (one per age bucket), their
//! rotation, and the reader's copy of the window. A writer locks only its
//! shard's mutex (shards are chosen by thread slot, as counters' are; past
//! 8 recording threads, writers share shards and so contend with each other
//! on that mutex). A reader holds a shard's mutex only for a constant-time
//! step: it swaps each ring slot's histogram for an empty spare (a pointer
//! swap, `age_buckets` of them) and copies the count and sum; all merging
//! happens afterwards, outside every writer's lock. Must not: allocate when
//! recording (histograms are sized up front), or make a writer wait for a
//! merge.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram as Hdr;

use crate::desc::MetricType;
use crate::sync::{Arc, CachePadded, Mutex, lock, shard_count, thread_slot};
use crate::value::{Metric, Scratch, Value};

/// A ring slot that has held no sub-window yet.
const NO_EPOCH: u64 = u64::MAX;

/// Options of a [`Summary`].
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryOpts {
    /// Quantiles to report, each in `0..=1`. Default P50, P90, P99, P99.9.
    pub quantiles: Vec<f64>,
    /// The sliding window. Default one hour.
    pub window: Duration,
    /// How many sub-windows the window rotates through. Default 6.
    pub age_buckets: usize,
    /// Smallest distinguishable value, in the metric's unit. Default `1e-6`
    /// (a microsecond, for `_seconds`).
    pub resolution: f64,
    /// Largest tracked value; larger ones are clamped to it for quantiles
    /// (sum and count stay exact). Default `3600.0`.
    pub max_value: f64,
    /// HDR significant figures (1..=5). Default 2: quantiles within 1%.
    pub significant_figures: u8,
}

impl Default for SummaryOpts {
    fn default() -> Self {
        Self {
            quantiles: vec![0.5, 0.9, 0.99, 0.999],
            window: Duration::from_secs(3600),
            age_buckets: 6,
            resolution: 1e-6,
            max_value: 3600.0,
            significant_figures: 2,
        }
    }
}

/// Invalid [`SummaryOpts`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SummaryError {
    /// A quantile outside `0..=1` or NaN.
    Quantile(f64),
    /// Window or age bucket count is zero.
    Window,
    /// Resolution, max value or significant figures out of range.
    Range,
}

impl std::fmt::Display for SummaryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Quantile(q) => write!(f, "summary quantile {q} is not in 0..=1"),
            Self::Window => write!(f, "summary window and age buckets must be non-zero"),
            Self::Range => {
                write!(f, "summary resolution must be > 0, max_value >= 2 x resolution, significant figures 1..=5")
            }
        }
    }
}

impl std::error::Error for SummaryError {}

/// Quantiles (P50, P99…) of observations over a sliding time window, plus
/// the count and sum of all observations ever.
///
/// Quantiles cover the last `window` (rotating through `age_buckets`
/// sub-windows, so the oldest sub-window ages out whole); count and sum only
/// go up and never reset. Its unit is the one in its name (`_seconds`).
/// Readable in-process with [`quantile`](Self::quantile): "P99 write
/// latency" without any server.
///
/// Negative observations count in sum and count but are clamped to zero for
/// quantiles; values above `max_value` are clamped to it; NaN is not
/// recorded at all.
///
/// # Examples
/// ```
/// let latency = hotmeter::Summary::new(hotmeter::SummaryOpts::default())?;
/// for ms in 1..=100 {
///     latency.observe(ms as f64 / 1000.0);
/// }
/// let p99 = latency.quantile(0.99).unwrap();
/// assert!((p99 - 0.099).abs() < 0.002, "{p99}");
/// # Ok::<(), hotmeter::SummaryError>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Summary {
    inner: Arc<Inner>,
}

impl Summary {
    /// Handles sharing this series' value, this one included
    /// ([`Metric::handles`](crate::expose::Metric::handles)).
    pub(crate) fn handles(&self) -> usize {
        crate::sync::handle_count(&self.inner)
    }
}

#[derive(Debug)]
struct Inner {
    opts: SummaryOpts,
    start: Instant,
    sub_window_ns: u64,
    shards: Box<[CachePadded<Mutex<Shard>>]>,
    /// The reader's side; one reader at a time.
    reader: Mutex<ReadSide>,
    /// When it was made, in nanoseconds since the Unix epoch.
    created: u64,
}

/// What a reader owns: the window's data moved out of the shards, per ring
/// slot, and the buffers to move it with.
#[derive(Debug)]
struct ReadSide {
    /// Per ring slot: every observation moved out of the shards for the
    /// sub-window `window_epochs[i]`.
    window: Vec<Hdr<u64>>,
    window_epochs: Vec<u64>,
    /// Empty histograms swapped into a shard's ring in exchange for its
    /// data; emptied again (outside the lock) after merging.
    spare: Vec<Hdr<u64>>,
    /// The epochs of the slots just swapped out.
    spare_epochs: Vec<u64>,
    /// The window merged over every live slot, for quantiles.
    merged: Hdr<u64>,
}

#[derive(Debug)]
struct Shard {
    ring: Vec<Hdr<u64>>,
    /// Which sub-window each ring slot holds.
    epochs: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Summary {
    /// A summary with the given options.
    pub fn new(opts: SummaryOpts) -> Result<Self, SummaryError> {
        if let Some(&q) = opts.quantiles.iter().find(|q| !(0.0..=1.0).contains(*q)) {
            return Err(SummaryError::Quantile(q));
        }
        if opts.window.is_zero() || opts.age_buckets == 0 {
            return Err(SummaryError::Window);
        }
        let finite = opts.resolution > 0.0 && opts.resolution.is_finite() && opts.max_value.is_finite();
        if !finite || !(1..=5).contains(&opts.significant_figures) {
            return Err(SummaryError::Range);
        }
        let high = (opts.max_value / opts.resolution).ceil();
        if !(high >= 2.0 && high < u64::MAX as f64) {
            return Err(SummaryError::Range);
        }
        let make = || Hdr::<u64>::new_with_bounds(1, high as u64, opts.significant_figures);
        let proto = make().map_err(|_| SummaryError::Range)?;
        let shards = shard_count().min(8);
        let shards = (0..shards)
            .map(|_| {
                CachePadded::new(Mutex::new(Shard {
                    ring: vec![proto.clone(); opts.age_buckets],
                    epochs: vec![NO_EPOCH; opts.age_buckets],
                    count: 0,
                    sum: 0.0,
                }))
            })
            .collect();
        let sub_window_ns = (opts.window.as_nanos() / opts.age_buckets as u128).max(1) as u64;
        let reader = Mutex::new(ReadSide {
            window: vec![proto.clone(); opts.age_buckets],
            window_epochs: vec![NO_EPOCH; opts.age_buckets],
            spare: vec![proto.clone(); opts.age_buckets],
            spare_epochs: vec![NO_EPOCH; opts.age_buckets],
            merged: proto,
        });
        Ok(Self {
            inner: Arc::new(Inner {
                opts,
                start: Instant::now(),
                sub_window_ns,
                shards,
                reader,
                created: crate::exemplar::unix_nanos_now(),
            }),
        })
    }

    /// The options.
    pub fn opts(&self) -> &SummaryOpts {
        &self.inner.opts
    }

    /// When it was made, in nanoseconds since the Unix epoch.
    pub fn created_unix_nanos(&self) -> u64 {
        self.inner.created
    }

    fn epoch(&self) -> u64 {
        (self.inner.start.elapsed().as_nanos() / self.inner.sub_window_ns as u128) as u64
    }

    /// Records one observation.
    #[inline]
    pub fn observe(&self, v: f64) {
        self.observe_in(v, self.epoch());
    }

    /// Records `v` as observed in sub-window `epoch`. The epoch is read
    /// before the shard's lock, so a writer that stalls in between may bring
    /// an epoch older than the one its ring slot holds by now: such an
    /// observation counts in count and sum but is older than the window, so
    /// it is left out of the quantiles; it never resets the newer
    /// sub-window (an equality test would, and would wipe its data).
    #[inline]
    fn observe_in(&self, v: f64, epoch: u64) {
        if v.is_nan() {
            return;
        }
        let inner = &*self.inner;
        let scaled = (v.max(0.0) / inner.opts.resolution) as u64; // saturating cast
        let shard = &inner.shards[thread_slot() % inner.shards.len()];
        let mut s = lock(shard);
        s.count += 1;
        s.sum += v;
        let slot = (epoch % s.ring.len() as u64) as usize;
        let held = s.epochs[slot];
        if held == NO_EPOCH || held < epoch {
            s.ring[slot].reset();
            s.epochs[slot] = epoch;
        } else if held > epoch {
            return;
        }
        s.ring[slot].saturating_record(scaled);
    }

    /// Records a duration, in seconds.
    #[inline]
    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// Moves every shard's new data into the reader's window, merges the
    /// live sub-windows, and calls `f` on the result with the all-time count
    /// and sum.
    fn read<R>(&self, f: impl FnOnce(&Hdr<u64>, u64, f64) -> R) -> R {
        let inner = &*self.inner;
        let mut reader = lock(&inner.reader);
        let r = &mut *reader;
        let (mut count, mut sum) = (0u64, 0.0);
        for shard in inner.shards.iter() {
            {
                // The only step under the writer's lock: O(age_buckets)
                // pointer swaps and two copies. The writer goes on into the
                // empty spare, same epoch, so nothing is reset or lost.
                let mut s = lock(shard);
                count += s.count;
                sum += s.sum;
                let s = &mut *s;
                for (ring, spare) in s.ring.iter_mut().zip(r.spare.iter_mut()) {
                    std::mem::swap(ring, spare);
                }
                r.spare_epochs.copy_from_slice(&s.epochs);
            }
            for i in 0..r.spare.len() {
                let epoch = r.spare_epochs[i];
                if epoch != NO_EPOCH {
                    let held = r.window_epochs[i];
                    if held == NO_EPOCH || held < epoch {
                        r.window[i].reset();
                        r.window_epochs[i] = epoch;
                    }
                    if r.window_epochs[i] == epoch {
                        // Same bounds, so adding cannot fail or resize.
                        let _ = r.window[i].add(&r.spare[i]);
                    }
                }
                r.spare[i].reset();
            }
        }
        let now = self.epoch();
        r.merged.reset();
        for (h, &e) in r.window.iter().zip(&r.window_epochs) {
            if e != NO_EPOCH && now.saturating_sub(e) < r.window.len() as u64 {
                let _ = r.merged.add(h);
            }
        }
        f(&r.merged, count, sum)
    }

    /// The `q`-quantile over the window, in the metric's unit; `None` when
    /// the window is empty or `q` is outside `0..=1`.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if !(0.0..=1.0).contains(&q) {
            return None;
        }
        let res = self.inner.opts.resolution;
        self.read(|h, _, _| (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 * res))
    }

    /// Count of all observations ever.
    pub fn count(&self) -> u64 {
        self.inner.shards.iter().map(|s| lock(s).count).sum()
    }

    /// Sum of all observations ever.
    pub fn sum(&self) -> f64 {
        self.inner.shards.iter().map(|s| lock(s).sum).sum()
    }
}

impl Metric for Summary {
    const TYPE: MetricType = MetricType::Summary;
    fn sample<'a>(&'a self, scratch: &'a mut Scratch) -> Value<'a> {
        let res = self.inner.opts.resolution;
        let out = &mut scratch.quantiles;
        out.clear();
        let (count, sum) = self.read(|h, count, sum| {
            for &q in &self.inner.opts.quantiles {
                let v = if h.is_empty() { f64::NAN } else { h.value_at_quantile(q) as f64 * res };
                out.push((q, v));
            }
            (count, sum)
        });
        Value::Summary { quantiles: &scratch.quantiles, sum, count }
    }
    fn same_layout(&self, other: &Self) -> bool {
        self.inner.opts == other.inner.opts
    }
    fn layout(&self) -> String {
        format!("{:?}", self.inner.opts)
    }
    fn handles(&self) -> usize {
        self.handles()
    }
    fn created_unix_nanos(&self) -> Option<u64> {
        Some(self.inner.created)
    }
}

#[cfg(all(test, not(hotmeter_loom)))]
mod tests {
    use super::*;

    #[test]
    fn validates_options() {
        let bad_q = SummaryOpts { quantiles: vec![1.5], ..Default::default() };
        assert_eq!(Summary::new(bad_q).unwrap_err(), SummaryError::Quantile(1.5));
        let bad_w = SummaryOpts { window: Duration::ZERO, ..Default::default() };
        assert_eq!(Summary::new(bad_w).unwrap_err(), SummaryError::Window);
        let bad_r = SummaryOpts { resolution: 0.0, ..Default::default() };
        assert_eq!(Summary::new(bad_r).unwrap_err(), SummaryError::Range);
    }

    #[test]
    fn window_ages_out() {
        let s = Summary::new(SummaryOpts { window: Duration::from_millis(60), age_buckets: 3, ..Default::default() })
            .unwrap();
        s.observe(1.0);
        assert!(s.quantile(0.5).is_some());
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(s.quantile(0.5), None, "old observations must leave the window");
        assert_eq!(s.count(), 1, "count is all-time");
        s.observe(2.0);
        let q = s.quantile(0.5).unwrap();
        assert!((q - 2.0).abs() < 0.03, "{q}");
    }

    /// A writer that read its epoch, then stalled for a whole window before
    /// taking the lock, must not reset the newer sub-window that now holds
    /// its ring slot.
    #[test]
    fn a_stalled_writer_never_wipes_a_newer_sub_window() {
        let s = Summary::new(SummaryOpts { age_buckets: 3, ..Default::default() }).unwrap();
        // Sub-window 1_000_003 holds ring slot 1; a writer stalled since
        // sub-window 1_000_000 (the same slot, one ring earlier) arrives.
        s.observe_in(5.0, 1_000_003);
        s.observe_in(7.0, 1_000_000);
        {
            let shard = s.inner.shards.iter().map(|sh| lock(sh)).find(|sh| sh.count > 0).unwrap();
            assert_eq!(shard.epochs[1], 1_000_003, "the newer sub-window kept its slot");
            assert_eq!(shard.ring[1].len(), 1, "and its data");
        }
        let (lo, hi) = (s.quantile(0.0).unwrap(), s.quantile(1.0).unwrap());
        assert!((lo - 5.0).abs() < 0.05 && (hi - 5.0).abs() < 0.05, "window holds {lo}..{hi}, not just 5.0");
        assert_eq!(s.count(), 2, "count and sum still hold every observation");
        assert_eq!(s.sum(), 12.0);
    }

    /// Readers move data out of the shards; nothing is lost or counted twice
    /// across reads, with writers on several threads.
    #[test]
    fn reads_between_writes_keep_every_observation_in_the_window() {
        let s = Summary::new(SummaryOpts::default()).unwrap();
        std::thread::scope(|scope| {
            for t in 0..4u32 {
                let s = &s;
                scope.spawn(move || {
                    for i in 0..250u32 {
                        s.observe(f64::from(t * 250 + i + 1) / 1000.0);
                        if i % 50 == 0 {
                            let _ = s.quantile(0.5);
                        }
                    }
                });
            }
        });
        // Values 0.001..=1.000 each once: median 0.5, P99 0.99, max 1.0.
        for (q, want) in [(0.5, 0.5), (0.99, 0.99), (1.0, 1.0)] {
            let got = s.quantile(q).unwrap();
            assert!((got - want).abs() <= want * 0.01 + 1e-6, "q{q}: {got}, want {want}");
        }
        assert_eq!(s.count(), 1000);
        // Reading again changes nothing.
        assert!((s.quantile(0.5).unwrap() - 0.5).abs() < 0.006);
        assert!((s.sum() - 500.5).abs() < 1e-9);
    }

    #[test]
    fn special_values() {
        let s = Summary::new(SummaryOpts::default()).unwrap();
        s.observe(f64::NAN);
        assert_eq!(s.count(), 0);
        s.observe(-1.0);
        s.observe(1e12);
        assert_eq!(s.count(), 2);
        assert_eq!(s.quantile(0.0), Some(0.0));
        let top = s.quantile(1.0).unwrap();
        assert!((3600.0 * 0.99..=3600.0 * 1.01).contains(&top), "{top}");
    }
}
