//! Labeled recording, hotmeter beside its peers: a counter increment through
//! a typed (fixed-cardinality, 2 values) label, and through a runtime string
//! label looked up on every call (16 values, cycled). The unlabeled hotmeter
//! counter is in the typed group as the reference.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hotmeter_benches::{SPACES, install_metrics_recorder};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};

hotmeter::label_enum! {
    /// Outcome.
    pub enum Status: "status" { Success = "success", Error = "error" }
}

const STATUSES: [Status; 2] = [Status::Success, Status::Error];

#[derive(Clone, Copy, Debug, measured::FixedCardinalityLabel)]
enum MeStatus {
    Success,
    Error,
}

#[derive(measured::LabelGroup)]
#[label(set = MeStatusSet)]
struct MeStatusGroup {
    status: MeStatus,
}

#[derive(measured::LabelGroup)]
#[label(set = MeSpaceSet)]
struct MeSpaceGroup<'a> {
    #[label(dynamic_with = measured::lasso::ThreadedRodeo, default)]
    memory_space: &'a str,
}

#[derive(Clone, Copy, Debug)]
enum FtStatus {
    Success,
    Error,
}

impl fast_telemetry::LabelEnum for FtStatus {
    const CARDINALITY: usize = 2;
    const LABEL_NAME: &'static str = "status";
    fn as_index(self) -> usize {
        self as usize
    }
    fn from_index(index: usize) -> Self {
        if index == 0 { Self::Success } else { Self::Error }
    }
    fn variant_name(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Error => "error",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
enum PcStatus {
    Success,
    Error,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PcStatusLabels {
    status: PcStatus,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PcSpaceLabels {
    memory_space: String,
}

fn typed_label(c: &mut Criterion) {
    install_metrics_recorder();
    let unlabeled = hotmeter::Counter::new();
    let hm: hotmeter::Family<Status, hotmeter::Counter> = hotmeter::Family::new(hotmeter::Counter::new);
    let me = measured::CounterVec::with_label_set(MeStatusSet::new());
    let ft: fast_telemetry::LabeledCounter<FtStatus> = fast_telemetry::LabeledCounter::new(4);
    let pc = prometheus_client::metrics::family::Family::<PcStatusLabels, prometheus_client::metrics::counter::Counter>::default();
    let pc_keys = [PcStatusLabels { status: PcStatus::Success }, PcStatusLabels { status: PcStatus::Error }];
    let pr = prometheus::IntCounterVec::new(prometheus::Opts::new("typed_total", "t"), &["status"]).unwrap();
    let names = ["success", "error"];

    let mut i = 0usize;
    let mut next = move || {
        i = i.wrapping_add(1);
        black_box(i) & 1
    };
    let mut g = c.benchmark_group("labeled_inc/typed/1thread");
    g.bench_function("hotmeter_unlabeled_reference", |b| b.iter(|| unlabeled.inc()));
    g.bench_function("hotmeter", |b| b.iter(|| hm.get(STATUSES[next()]).inc()));
    g.bench_function("measured", |b| {
        b.iter(|| {
            let s = if next() == 0 { MeStatus::Success } else { MeStatus::Error };
            me.inc(MeStatusGroup { status: s })
        })
    });
    g.bench_function("fast_telemetry", |b| {
        b.iter(|| ft.inc(if next() == 0 { FtStatus::Success } else { FtStatus::Error }))
    });
    g.bench_function("prometheus_client", |b| b.iter(|| pc.get_or_create(&pc_keys[next()]).inc()));
    g.bench_function("prometheus", |b| b.iter(|| pr.with_label_values(&[names[next()]]).inc()));
    g.bench_function("metrics", |b| {
        b.iter(|| metrics::counter!("typed_total", "status" => names[next()]).increment(1))
    });
    g.finish();
}

fn string_label(c: &mut Criterion) {
    install_metrics_recorder();
    let hm = hotmeter::StringFamily::new(&["memory_space"], hotmeter::Counter::new);
    let hm_single = hotmeter::StringFamily::new(&["memory_space"], hotmeter::SingleCounter::new);
    // Issue #21: reclaimed memory (lookups pin the epoch) and an idle timeout.
    let hm_reclaim =
        hotmeter::StringFamily::builder(&["memory_space"], hotmeter::Counter::new).reclaim_memory().build();
    let hm_expiry = hotmeter::StringFamily::builder(&["memory_space"], hotmeter::Counter::new)
        .idle_timeout(std::time::Duration::from_secs(3600))
        .build();
    let me = measured::CounterVec::with_label_set(MeSpaceSet::new());
    let ft = fast_telemetry::DynamicCounter::new(4);
    let pc = prometheus_client::metrics::family::Family::<PcSpaceLabels, prometheus_client::metrics::counter::Counter>::default();
    // The peer needs owned keys; building them outside the loop favours it.
    let pc_keys: Vec<PcSpaceLabels> = SPACES.iter().map(|s| PcSpaceLabels { memory_space: s.to_string() }).collect();
    let pr = prometheus::IntCounterVec::new(prometheus::Opts::new("space_total", "s"), &["memory_space"]).unwrap();

    let mut i = 0usize;
    let mut next = move || {
        i = i.wrapping_add(1);
        black_box(i) & 15
    };
    let mut g = c.benchmark_group("labeled_inc/string_lookup_every_call/1thread");
    g.bench_function("hotmeter", |b| b.iter(|| hm.with(&[SPACES[next()]], |c| c.inc())));
    g.bench_function("hotmeter_single_cell", |b| b.iter(|| hm_single.with(&[SPACES[next()]], |c| c.inc())));
    g.bench_function("hotmeter_reclaim_memory", |b| b.iter(|| hm_reclaim.with(&[SPACES[next()]], |c| c.inc())));
    g.bench_function("hotmeter_idle_timeout", |b| b.iter(|| hm_expiry.with(&[SPACES[next()]], |c| c.inc())));
    // The same batches in the default family (which pins nothing per
    // lookup): the like-for-like baseline of the row after it.
    g.bench_function("hotmeter_pinned_64", |b| {
        b.iter_custom(|iters| hotmeter_benches::pinned_batches(&hm, iters, |p| p.with(&[SPACES[next()]], |c| c.inc())))
    });
    g.bench_function("hotmeter_idle_timeout_pinned_64", |b| {
        b.iter_custom(|iters| {
            hotmeter_benches::pinned_batches(&hm_expiry, iters, |p| p.with(&[SPACES[next()]], |c| c.inc()))
        })
    });
    g.bench_function("measured", |b| b.iter(|| me.inc(MeSpaceGroup { memory_space: SPACES[next()] })));
    g.bench_function("fast_telemetry", |b| b.iter(|| ft.inc(&[("memory_space", SPACES[next()])])));
    g.bench_function("prometheus_client", |b| b.iter(|| pc.get_or_create(&pc_keys[next()]).inc()));
    g.bench_function("prometheus", |b| b.iter(|| pr.with_label_values(&[SPACES[next()]]).inc()));
    g.bench_function("metrics", |b| {
        b.iter(|| metrics::counter!("space_total", "memory_space" => SPACES[next()]).increment(1))
    });
    g.finish();
}

/// The floor under a reclaiming family's lookup: what protecting one read
/// costs by itself on this CPU (a full fence; `crossbeam-epoch`'s pin and
/// unpin, which holds one; a pin nested in one already held, which does
/// not: what a `StringFamily::pinned` scope's lookups pay).
fn reclamation_floor(c: &mut Criterion) {
    use std::sync::atomic::{AtomicU64, Ordering, fence};
    let word = AtomicU64::new(0);
    let mut g = c.benchmark_group("reclamation_floor");
    g.bench_function("store_seqcst_fence_load", |b| {
        b.iter(|| {
            word.store(1, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            black_box(word.load(Ordering::Relaxed))
        })
    });
    g.bench_function("crossbeam_epoch_pin", |b| b.iter(|| black_box(crossbeam_epoch::pin())));
    let outer = crossbeam_epoch::pin();
    g.bench_function("crossbeam_epoch_pin_nested", |b| b.iter(|| black_box(crossbeam_epoch::pin())));
    drop(outer);
    g.finish();
}

criterion_group!(benches, typed_label, string_label, reclamation_floor);
criterion_main!(benches);
