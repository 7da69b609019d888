//! Series that come and go, on the real index code with memory reclaimed
//! through `crossbeam-epoch` (run on loom's atomics): a removal and the
//! reclamation after it racing a reader on the lock-free hit path (no read
//! of freed memory, no read of another key's value); a freed entry's memory
//! reused by a new key while a lookup of the old and the new key runs; an
//! idle expiry racing an increment (no update lost: it lands before the
//! last export, cancels the expiry, or starts a new series); a handle taken
//! racing an expiry (its series is kept); a lookup that takes an expiring
//! entry back.
#![cfg(hotmeter_loom)]

use hotmeter::index::{PinScope, StringIndex};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use loom::thread;
use loom_tests::expect;

/// A value that knows its key and whether it was dropped: a reader that
/// sees `dropped` set, or another key, read freed or reused memory.
struct Probe {
    key: &'static str,
    dropped: Arc<AtomicBool>,
    count: AtomicU64,
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

fn probe(key: &'static str, dropped: &Arc<AtomicBool>) -> Probe {
    Probe { key, dropped: dropped.clone(), count: AtomicU64::new(0) }
}

fn h(key: &str) -> u64 {
    StringIndex::<Probe>::hash(&[key])
}

/// Lets the epoch advance far enough to run what was deferred (each flush
/// tries one advance and collects what is due).
fn nudge_epoch() {
    for _ in 0..3 {
        crossbeam_epoch_pin_flush();
    }
}

fn crossbeam_epoch_pin_flush() {
    // The index's own settle call flushes; a removal's deferred free is
    // run by any later flush, which an empty settle does not reach, so the
    // models ask for one through an index that has something to settle.
    let index: StringIndex<AtomicU64> = StringIndex::reclaiming_with_limit(1, 1);
    index.get_or_insert_with(StringIndex::<AtomicU64>::hash(&["n"]), &["n"], || AtomicU64::new(0), |_| ()).unwrap();
    let _ = index.settle_expired(|_, at| at == 0);
}

/// Settles every expiry of `index` from a fresh thread (the work a later
/// scrape does) by `still_idle`, and returns how many were freed.
fn settle_all<V: Send + Sync + 'static>(index: &StringIndex<V>, still_idle: fn(&V, u64) -> bool) -> usize {
    let index = index.clone();
    thread::spawn(move || {
        let mut freed = 0;
        for _ in 0..4 {
            freed += index.settle_expired(still_idle).freed;
        }
        freed
    })
    .join()
    .unwrap()
}

/// What a counter family's settle asks: the value is unchanged.
fn unchanged(v: &AtomicU64, at: u64) -> bool {
    v.load(Ordering::Relaxed) == at
}

/// A reclaiming index (limit 4) holding `key` with the value `made` gives,
/// the key's hash, and its entry's id (what a scrape's walk saw).
fn index_with<V: Send + Sync + 'static>(key: &str, made: impl FnOnce() -> V) -> (StringIndex<V>, u64, u64) {
    let index: StringIndex<V> = StringIndex::reclaiming_with_limit(1, 4);
    let hash = StringIndex::<V>::hash(&[key]);
    index.get_or_insert_with(hash, &[key], made, |_| ()).unwrap();
    let mut id = 0;
    index.walk_live_since(None, &mut Vec::new(), |e| id = e.id());
    (index, hash, id)
}

/// A reader increments `a` through the hit path while another thread
/// removes `a` and pushes the epoch on: the reader either misses, or
/// reaches `a`'s value while it is still allocated, and the value is `a`'s.
#[test]
fn reclamation_racing_a_reader_never_frees_what_it_reads() {
    loom_tests::checked(loom::model::Builder::new(), || {
        let index: StringIndex<Probe> = StringIndex::reclaiming_with_limit(1, 4);
        let dropped = Arc::new(AtomicBool::new(false));
        index.get_or_insert_with(h("a"), &["a"], || probe("a", &dropped), |_| ()).unwrap();
        let remover = {
            let index = index.clone();
            thread::spawn(move || {
                expect(index.remove(h("a"), &["a"]) == Ok(true), || "a was live".into());
                nudge_epoch();
            })
        };
        let _ = index.find_with(h("a"), &["a"], |p| {
            expect(!p.dropped.load(Ordering::SeqCst), || "read a freed entry".into());
            expect(p.key == "a", || format!("read another key's value: {}", p.key));
            p.count.fetch_add(1, Ordering::Relaxed);
        });
        remover.join().unwrap();
        expect(index.is_empty(), || format!("{} live", index.len()));
    });
}

/// `a` is removed and freed and `b` inserted (its memory may be `a`'s
/// again) while a reader looks up `a` then `b` through `read` (which runs
/// the check it is given on each value it finds).
fn reuse_racing_lookups(read: fn(&StringIndex<Probe>, &dyn Fn(&'static str, &Probe))) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    loom_tests::checked(builder, move || {
        let index: StringIndex<Probe> = StringIndex::reclaiming_with_limit(1, 1);
        let a_dropped = Arc::new(AtomicBool::new(false));
        let b_dropped = Arc::new(AtomicBool::new(false));
        index.get_or_insert_with(h("a"), &["a"], || probe("a", &a_dropped), |_| ()).unwrap();
        let writer = {
            let index = index.clone();
            thread::spawn(move || {
                expect(index.remove(h("a"), &["a"]) == Ok(true), || "a was live".into());
                nudge_epoch();
                let made = index.get_or_insert_with(h("b"), &["b"], || probe("b", &b_dropped), |p| p.key).unwrap();
                expect(made == Some("b"), || format!("b made {made:?}"));
            })
        };
        read(&index, &|key, p| {
            expect(!p.dropped.load(Ordering::SeqCst), || "read a freed entry".into());
            expect(p.key == key, || format!("a lookup of {key} read {}'s value", p.key));
        });
        writer.join().unwrap();
        expect(index.len() == 1, || format!("{} live", index.len()));
    });
}

/// Each lookup of the reader (one pin each) finds its own key's value or
/// nothing, never the other's, never freed memory.
#[test]
fn reuse_racing_a_lookup_of_the_old_and_the_new_key() {
    reuse_racing_lookups(|index, check| {
        for key in ["a", "b"] {
            let _ = index.find_with(h(key), &[key], |p| check(key, p));
        }
    });
}

/// As above, with the reader's two lookups in one `PinScope` (what
/// `StringFamily::pinned` gives: one pin, no pin per lookup).
#[test]
fn lookups_in_one_scope_racing_reuse_read_only_their_own_keys() {
    reuse_racing_lookups(|index, check| {
        let scope = PinScope::new();
        for key in ["a", "b"] {
            let _ = index.with_live_in(&scope, h(key), &[key], |p| check(key, p));
        }
    });
}

/// The idle expiry of `a` (value 1 at its last export) races an increment
/// of `a` by lookup. Afterwards, with every expiry settled, the increment is
/// in the live value of `a` (it landed in the old series, which came back,
/// or cancelled the expiry) or in a new series (the old one, freed, was last
/// exported at 1): never lost, never counted twice.
#[test]
fn expiry_racing_an_increment_loses_nothing() {
    loom_tests::checked(loom::model::Builder::new(), || {
        let (index, ha, id) = index_with("a", || AtomicU64::new(1));
        let made = || AtomicU64::new(0);
        let sweeper = {
            let index = index.clone();
            thread::spawn(move || {
                // The last export read 1; nothing changed since: expire.
                let expired = index.expire(ha, &["a"], id, 1);
                let s = index.settle_expired(unchanged);
                (expired, s.freed)
            })
        };
        index.get_or_insert_with(ha, &["a"], made, |v| v.fetch_add(1, Ordering::Relaxed)).unwrap();
        let (_, mut freed) = sweeper.join().unwrap();
        // What a later scrape does. (Under loom, crossbeam-epoch does not
        // always run deferred functions once threads have exited, so an
        // expiry may still be waiting here: its entry is then counted as
        // it stands, and would be freed or put back by it.)
        freed += settle_all(&index, unchanged);
        let live = index.find_with(ha, &["a"], |v| v.load(Ordering::Relaxed)).unwrap().unwrap_or(0);
        let mut waiting = 0;
        index.walk_expiring(|e| waiting += e.value().load(Ordering::Relaxed));
        let exported_then_freed = freed as u64;
        expect(live + waiting + exported_then_freed == 2, || {
            format!("an increment lost or counted twice (live {live}, waiting {waiting}, freed {freed})")
        });
        expect(index.len() <= 1, || format!("{} live", index.len()));
    });
}

/// A handle to `a` taken by lookup (as `StringFamily::get` takes one: a
/// clone of the value's `Arc`) while an idle expiry of `a` runs, settled as
/// a family settles (freed only with no handle beyond the index's own and
/// the value unchanged). Afterwards the handle's value is `a`'s live value
/// or still waiting to settle: never freed out from under the handle, so
/// what it records is exported.
#[test]
fn a_handle_taken_racing_an_expiry_keeps_its_series() {
    type Shared = std::sync::Arc<AtomicU64>;
    fn still_idle(v: &Shared, at: u64) -> bool {
        std::sync::Arc::strong_count(v) <= 1 && v.load(Ordering::Relaxed) == at
    }
    loom_tests::checked(loom::model::Builder::new(), || {
        let (index, ha, id) = index_with("a", || Shared::new(AtomicU64::new(1)));
        let made = || Shared::new(AtomicU64::new(0));
        let sweeper = {
            let index = index.clone();
            thread::spawn(move || {
                index.expire(ha, &["a"], id, 1);
                index.settle_expired(still_idle);
            })
        };
        let handle = index.get_or_insert_with(ha, &["a"], made, Shared::clone).unwrap().unwrap();
        handle.fetch_add(1, Ordering::Relaxed);
        sweeper.join().unwrap();
        settle_all(&index, still_idle);
        let live = index.find_with(ha, &["a"], |v| std::sync::Arc::ptr_eq(v, &handle)).unwrap().unwrap_or(false);
        let mut waiting = false;
        index.walk_expiring(|e| waiting |= std::sync::Arc::ptr_eq(e.value(), &handle));
        expect(live || waiting, || "the handle records into a series the index no longer holds".into());
        expect(index.len() <= 1, || format!("{} live", index.len()));
    });
}

/// An expired entry whose value moved (an update raced the expiry) comes
/// back when settled, value kept; a lookup before then takes it back too.
#[test]
fn an_expiring_entry_comes_back_to_a_lookup_or_a_raced_update() {
    loom_tests::checked(loom::model::Builder::new(), || {
        let (index, hb, id) = index_with("b", || AtomicU64::new(5));
        expect(index.expire(hb, &["b"], id, 5), || "did not expire".into());
        let looker = {
            let index = index.clone();
            thread::spawn(move || {
                index.get_or_insert_with(hb, &["b"], || AtomicU64::new(0), |v| v.load(Ordering::Relaxed))
            })
        };
        let settled = index.settle_expired(unchanged);
        let seen = looker.join().unwrap().unwrap();
        expect(settled.revived == 0, || "its value never moved, yet it was put back".into());
        if settled.freed == 1 {
            expect(seen == Some(0), || format!("after the free, a lookup starts anew: {seen:?}"));
        } else {
            expect(seen == Some(5), || format!("before the free, a lookup takes the entry back: {seen:?}"));
        }
        expect(index.len() == 1, || format!("{} live", index.len()));
    });
}

/// The 17th key rebuilds a reclaiming index's table (32 buckets kept at
/// most half full) and retires the old one while another thread reads old
/// keys and the new one: the old table is freed only after that reader
/// has unpinned, and every lookup finds its own key's value.
#[test]
fn a_rebuild_racing_a_reader_frees_the_old_table_after_it() {
    const KEYS: [&str; 17] =
        ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9", "k10", "k11", "k12", "k13", "k14", "k15", "k16"];
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    // 16 inserts and a 64-word table are many atomic operations.
    builder.max_branches = 20_000;
    loom_tests::checked(builder, || {
        let index: StringIndex<Probe> = StringIndex::reclaiming_with_limit(1, 64);
        let dropped = Arc::new(AtomicBool::new(false));
        for k in &KEYS[..16] {
            index.get_or_insert_with(h(k), &[k], || probe(k, &dropped), |_| ()).unwrap();
        }
        let table = index.table_len();
        let grower = {
            let index = index.clone();
            let dropped = dropped.clone();
            thread::spawn(move || {
                index.get_or_insert_with(h(KEYS[16]), &[KEYS[16]], || probe(KEYS[16], &dropped), |_| ()).unwrap();
                nudge_epoch();
            })
        };
        for key in [KEYS[3], KEYS[16], KEYS[15]] {
            let _ = index.find_with(h(key), &[key], |p| {
                expect(p.key == key, || format!("a lookup of {key} read {}'s value", p.key));
            });
        }
        grower.join().unwrap();
        expect(index.table_len() > table, || "the table was rebuilt".into());
        expect(index.len() == 17, || format!("{} live", index.len()));
    });
}
