//! How costs grow with the number of live series (issue #13). First, an
//! increment through a runtime string label looked up on every call, in a family already holding 8, 1,000 or 100,000 series, the label
//! value drawn pseudo-randomly from all of them, so that the big tables do
//! not sit in L1 as a 16-value cycle would. hotmeter beside every peer whose
//! API takes a borrowed runtime value (`metrics` would need an owned
//! `String` per call and is left out: that allocation, not its map, would be
//! measured). Second, recording through a family of 1 or 100,000 series
//! with no lookup (`record_by_family_size`).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use prometheus_client::encoding::EncodeLabelSet;

#[derive(measured::LabelGroup)]
#[label(set = MeIdSet)]
struct MeIdGroup<'a> {
    #[label(dynamic_with = measured::lasso::ThreadedRodeo, default)]
    id: &'a str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PcIdLabels {
    id: String,
}

/// xorshift64: a cheap pseudo-random index into the keys, so consecutive
/// lookups land on unrelated series.
struct Picker(u64, usize);

impl Picker {
    #[inline]
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (black_box(self.0) % self.1 as u64) as usize
    }
}

fn lookup_every_call(c: &mut Criterion) {
    for n in [8usize, 1_000, 100_000] {
        let keys: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        let hm = hotmeter::StringFamily::with_limit(&["id"], n, hotmeter::Counter::new);
        let hm_single = hotmeter::StringFamily::with_limit(&["id"], n, hotmeter::SingleCounter::new);
        // Issue #21: the same family with reclaimed memory (lookups pin the
        // epoch), and with an idle timeout (never reached here).
        let hm_reclaim =
            hotmeter::StringFamily::builder(&["id"], hotmeter::Counter::new).limit(n).reclaim_memory().build();
        let hm_expiry = hotmeter::StringFamily::builder(&["id"], hotmeter::Counter::new)
            .limit(n)
            .idle_timeout(std::time::Duration::from_secs(3600))
            .build();
        let me = measured::CounterVec::with_label_set(MeIdSet::new());
        let ft = fast_telemetry::DynamicCounter::with_max_series(4, n);
        let pc = prometheus_client::metrics::family::Family::<PcIdLabels, prometheus_client::metrics::counter::Counter>::default();
        // The peer needs owned keys; building them outside the loop favours it.
        let pc_keys: Vec<PcIdLabels> = keys.iter().map(|k| PcIdLabels { id: k.clone() }).collect();
        let pr = prometheus::IntCounterVec::new(prometheus::Opts::new("scaled_total", "s"), &["id"]).unwrap();
        // fastmetrics' label sets are owned types, built outside the loop
        // as prometheus-client's are.
        let fm = fastmetrics::metrics::family::Family::<
            hotmeter_benches::peers::fastmetrics_labels::Short,
            fastmetrics::metrics::counter::Counter,
        >::default();
        let fm_keys: Vec<_> =
            keys.iter().map(|k| hotmeter_benches::peers::fastmetrics_labels::Short { id: k.clone() }).collect();
        // Every series exists before timing: this measures hits.
        for (k, pk) in keys.iter().zip(&pc_keys) {
            hm.with(&[k], |c| c.inc()).unwrap();
            hm_single.with(&[k], |c| c.inc()).unwrap();
            hm_reclaim.with(&[k], |c| c.inc()).unwrap();
            hm_expiry.with(&[k], |c| c.inc()).unwrap();
            me.inc(MeIdGroup { id: k });
            ft.inc(&[("id", k.as_str())]);
            pc.get_or_create(pk).inc();
            pr.with_label_values(&[k.as_str()]).inc();
        }
        for k in &fm_keys {
            fm.with_or_new(k, |c| c.inc());
        }
        assert_eq!((hm.len(), hm.overflowed()), (n, 0), "every key is a live series");

        let mut g = c.benchmark_group(format!("labeled_inc/string_lookup_every_call/{n}_series"));
        let mut p = Picker(0x9e37_79b9_7f4a_7c15, n);
        g.bench_function("hotmeter", |b| b.iter(|| hm.with(&[&keys[p.next()]], |c| c.inc())));
        g.bench_function("hotmeter_single_cell", |b| b.iter(|| hm_single.with(&[&keys[p.next()]], |c| c.inc())));
        g.bench_function("hotmeter_reclaim_memory", |b| b.iter(|| hm_reclaim.with(&[&keys[p.next()]], |c| c.inc())));
        g.bench_function("hotmeter_idle_timeout", |b| b.iter(|| hm_expiry.with(&[&keys[p.next()]], |c| c.inc())));
        // The same batches in the default family: the like-for-like
        // baseline of the row after it.
        g.bench_function("hotmeter_pinned_64", |b| {
            b.iter_custom(|iters| {
                hotmeter_benches::pinned_batches(&hm, iters, |f| f.with(&[&keys[p.next()]], |c| c.inc()).unwrap())
            })
        });
        g.bench_function("hotmeter_idle_timeout_pinned_64", |b| {
            b.iter_custom(|iters| {
                hotmeter_benches::pinned_batches(&hm_expiry, iters, |f| {
                    f.with(&[&keys[p.next()]], |c| c.inc()).unwrap()
                })
            })
        });
        g.bench_function("measured", |b| b.iter(|| me.inc(MeIdGroup { id: &keys[p.next()] })));
        g.bench_function("fast_telemetry", |b| b.iter(|| ft.inc(&[("id", keys[p.next()].as_str())])));
        g.bench_function("prometheus_client", |b| b.iter(|| pc.get_or_create(&pc_keys[p.next()]).inc()));
        g.bench_function("prometheus", |b| b.iter(|| pr.with_label_values(&[keys[p.next()].as_str()]).inc()));
        g.bench_function("fastmetrics", |b| b.iter(|| fm.with_or_new(&fm_keys[p.next()], |c| c.inc())));
        g.bench_function("floor_pick_only", |b| b.iter(|| black_box(&keys[p.next()])));
        g.finish();
        assert_eq!(hm.overflowed(), 0);
    }
}

/// A typed label with 100,000 values (`id="0".."99999"`), for a typed
/// family as large as the biggest string family here.
#[derive(Clone, Copy)]
struct Id(usize);

const IDS: usize = 100_000;

fn id_names() -> &'static [String] {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| (0..IDS).map(|i| i.to_string()).collect())
}

impl hotmeter::LabelSet for Id {
    const LABELS: usize = 1;
    const CARDINALITY: usize = IDS;
    fn label_name(_: usize) -> &'static str {
        "id"
    }
    fn label_value(index: usize, _: usize) -> &'static str {
        id_names().get(index).map_or("", String::as_str)
    }
    fn index(self) -> usize {
        self.0
    }
}

/// One value: the typed family of one series.
#[derive(Clone, Copy)]
struct One;

impl hotmeter::LabelSet for One {
    const LABELS: usize = 1;
    const CARDINALITY: usize = 1;
    fn label_name(_: usize) -> &'static str {
        "id"
    }
    fn label_value(_: usize, _: usize) -> &'static str {
        "0"
    }
    fn index(self) -> usize {
        0
    }
}

/// Recording cost against family size: an increment of a series picked
/// pseudo-randomly in a family of 1 or of 100,000 series, through a typed
/// family (`get` is an index) and through handles kept from a string
/// family, beside the floor of the same random walk over a plain array of
/// atomics (the cache effect alone).
fn record_by_family_size(c: &mut Criterion) {
    for n in [1usize, IDS] {
        let mut g = c.benchmark_group(format!("record_by_family_size/counter_inc/{n}_series"));
        let mut p = Picker(0x2545_f491_4f6c_dd1d, n);
        if n == 1 {
            let typed: hotmeter::Family<One, hotmeter::Counter> = hotmeter::Family::new(hotmeter::Counter::new);
            g.bench_function("hotmeter_typed_family", |b| b.iter(|| typed.get(One).inc()));
        } else {
            let typed: hotmeter::Family<Id, hotmeter::Counter> = hotmeter::Family::new(hotmeter::Counter::new);
            g.bench_function("hotmeter_typed_family", |b| b.iter(|| typed.get(Id(p.next())).inc()));
        }
        let fam = hotmeter::StringFamily::with_limit(&["id"], n, hotmeter::Counter::new);
        let handles: Vec<hotmeter::Counter> = (0..n).map(|i| fam.get(&[&i.to_string()]).unwrap()).collect();
        g.bench_function("hotmeter_string_family_handle", |b| b.iter(|| handles[p.next()].inc()));
        let cells: Vec<std::sync::atomic::AtomicU64> = (0..n).map(|_| std::sync::atomic::AtomicU64::new(0)).collect();
        g.bench_function("floor_atomic_array", |b| {
            b.iter(|| cells[p.next()].fetch_add(1, std::sync::atomic::Ordering::Relaxed))
        });
        g.finish();
    }
}

/// Issue #21: what idle expiry adds to a scrape of 100,000 counter series
/// when nothing expires (the same family without a timeout beside it), and
/// a scrape that expires all of them (setup, untimed: fill and age the
/// family; timed: the one scrape that exports and expires everything).
fn expiry_sweep(c: &mut Criterion) {
    const N: usize = 100_000;
    let keys: Vec<String> = (0..N).map(|i| format!("{i:08}")).collect();
    let build = |timeout: Option<std::time::Duration>| {
        let registry = hotmeter::Registry::new();
        let family = registry
            .register(
                ("swept_total", "S."),
                hotmeter::StringFamily::builder(&["id"], hotmeter::Counter::new).limit(N).idle_timeout(timeout).build(),
            )
            .unwrap();
        for k in &keys {
            family.with(&[k], |c| c.inc()).unwrap();
        }
        (registry, family)
    };
    let mut out = Vec::with_capacity(8 << 20);
    let mut g = c.benchmark_group("expiry/scrape_100000_counter_series");
    let (plain, _) = build(None);
    g.bench_function("no_timeout", |b| {
        b.iter(|| {
            out.clear();
            hotmeter_exporter::encode_text(&plain, &mut out);
        })
    });
    let (timed, _) = build(Some(std::time::Duration::from_secs(3600)));
    g.bench_function("timeout_nothing_expires", |b| {
        b.iter(|| {
            out.clear();
            hotmeter_exporter::encode_text(&timed, &mut out);
        })
    });
    g.sample_size(10);
    g.bench_function("timeout_every_series_expires", |b| {
        b.iter_batched(
            || {
                let (registry, family) = build(Some(std::time::Duration::ZERO));
                // The first scrape notes every value; the timed one expires.
                let mut first = Vec::new();
                hotmeter_exporter::encode_text(&registry, &mut first);
                (registry, family)
            },
            |(registry, family)| {
                out.clear();
                hotmeter_exporter::encode_text(&registry, &mut out);
                assert_eq!(family.len(), 0);
                (registry, family)
            },
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, lookup_every_call, record_by_family_size, expiry_sweep);
criterion_main!(benches);
