//! String-labeled family races, on the real code: two threads creating the
//! same label set get the same series; the cardinality limit holds; an
//! existing (or revived) label set never lands in the overflow series at the
//! limit; the index grows past its first table while read; `remove`
//! races a lookup and the increment lands once; `clear` races lookups
//! without losing an increment; a scrape racing
//! an insert and a removal sees a consistent set, and the next one sees
//! the change (the scrape plan).
#![cfg(hotmeter_loom)]

use loom::sync::{Arc, Mutex};
use loom::thread;

#[test]
fn same_label_set_same_series() {
    loom::model(|| {
        let f = hotmeter::StringFamily::new(&["space"], hotmeter::SingleCounter::new);
        loom_tests::on_threads(2, &f, |f| f.with(&["a"], |c| c.inc()).unwrap());
        assert_eq!(f.len(), 1);
        assert_eq!(f.get(&["a"]).unwrap().get(), 2);
        assert_eq!(f.overflowed(), 0);
    });
}

/// At a limit of 1, a thread whose lookup missed just before the other
/// inserted the same label set (filling the family) must still find it.
#[test]
fn an_existing_label_set_never_overflows_at_the_limit() {
    loom::model(|| {
        let f = hotmeter::StringFamily::with_limit(&["space"], 1, hotmeter::SingleCounter::new);
        loom_tests::on_threads(2, &f, |f| f.with(&["a"], |c| c.inc()).unwrap());
        assert_eq!(f.overflowed(), 0, "an increment of an existing series went to overflow");
        assert_eq!(f.get(&["a"]).unwrap().get(), 2);
    });
}

/// The same for a removed label set that both threads bring back at the
/// limit: the one that revives it fills the family, the other must follow.
#[test]
fn a_revived_label_set_never_overflows_at_the_limit() {
    loom::model(|| {
        let f = hotmeter::StringFamily::with_limit(&["space"], 1, hotmeter::SingleCounter::new);
        f.with(&["a"], |c| c.inc()).unwrap();
        assert_eq!(f.remove(&["a"]), Ok(true));
        loom_tests::on_threads(2, &f, |f| f.with(&["a"], |c| c.inc()).unwrap());
        assert_eq!(f.overflowed(), 0, "an increment of a returning series went to overflow");
        assert_eq!(f.get(&["a"]).unwrap().get(), 2, "one new series, from zero, with both increments");
        assert_eq!(f.len(), 1);
    });
}

/// A removed label set brought back while another thread inserts a new one
/// at a limit of 1, with memory kept and reclaimed: only one of them may be
/// live afterwards; the other's increment goes to the overflow series and
/// is counted there.
#[test]
fn a_revival_respects_the_limit_under_race() {
    // `checked`/`expect` rather than asserts: see `loom_tests::expect`.
    for reclaim in [false, true] {
        loom_tests::checked(loom::model::Builder::new(), move || {
            let f = hotmeter::StringFamily::builder(&["id"], hotmeter::SingleCounter::new).limit(1);
            let f = if reclaim { f.reclaim_memory() } else { f }.build();
            f.with(&["a"], |c| c.inc()).unwrap();
            loom_tests::expect(f.remove(&["a"]) == Ok(true), || "a was live".into());
            let g = f.clone();
            let reviver = thread::spawn(move || g.with(&["a"], |c| c.inc()).unwrap());
            f.with(&["b"], |c| c.inc()).unwrap();
            reviver.join().unwrap();
            loom_tests::expect(f.len() == 1, || {
                format!("a returning label set pushed the family past its limit: {} live (reclaim {reclaim})", f.len())
            });
            loom_tests::expect(f.overflowed() == 1, || "the loser must be counted".into());
        });
    }
}

/// The 17th label set grows the index into its second generation (32
/// buckets kept at most half full) while another thread looks up an old
/// label set and the new one.
#[test]
fn index_grows_past_its_first_generation_while_read() {
    const KEYS: [&str; 17] =
        ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9", "k10", "k11", "k12", "k13", "k14", "k15", "k16"];
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(1);
    builder.check(|| {
        let f = hotmeter::StringFamily::with_limit(&["id"], 64, hotmeter::SingleCounter::new);
        for k in &KEYS[..16] {
            f.with(&[k], |c| c.inc()).unwrap();
        }
        let g = f.clone();
        let grower = thread::spawn(move || g.with(&[KEYS[16]], |c| c.inc()).unwrap());
        f.with(&[KEYS[3]], |c| c.inc()).unwrap();
        f.with(&[KEYS[16]], |c| c.inc()).unwrap();
        grower.join().unwrap();
        assert_eq!(f.overflowed(), 0);
        assert_eq!(f.len(), 17);
        assert_eq!(f.get(&[KEYS[3]]).unwrap().get(), 2);
        assert_eq!(f.get(&[KEYS[16]]).unwrap().get(), 2, "the grower's series and the reader's are one");
        assert_eq!(f.get(&[KEYS[15]]).unwrap().get(), 1);
    });
}

/// `remove` racing a lookup-and-increment of the same label set, with
/// memory kept and reclaimed: the increment lands in the old series (then
/// removed with it) or makes a new one from zero, never both, never the
/// overflow series, never a second live series.
#[test]
fn remove_racing_a_lookup_lands_once() {
    for reclaim in [false, true] {
        loom_tests::checked(loom::model::Builder::new(), move || {
            let f = hotmeter::StringFamily::builder(&["id"], hotmeter::SingleCounter::new).limit(2);
            let f = if reclaim { f.reclaim_memory() } else { f }.build();
            f.with(&["a"], |c| c.inc()).unwrap();
            let r = f.clone();
            let remover = thread::spawn(move || r.remove(&["a"]).unwrap());
            f.with(&["a"], |c| c.inc()).unwrap();
            let removed = remover.join().unwrap();
            loom_tests::expect(removed, || "the series was live when remove ran".into());
            loom_tests::expect(f.overflowed() == 0, || "overflow".into());
            let len = f.len();
            loom_tests::expect(len <= 1, || format!("{len} live series for one label set"));
            if len == 1 {
                let v = f.get(&["a"]).unwrap().get();
                loom_tests::expect(v == 1, || format!("a new series holds the one increment, not {v}"));
            }
        });
    }
}

/// The series a scrape sees, as `label=value` pairs, read through the
/// registry walk the exporters use.
fn scrape(r: &hotmeter::Registry) -> Vec<(String, u64)> {
    struct V(Vec<(String, u64)>);
    impl hotmeter::expose::Visitor for V {
        fn family(&mut self, _: &hotmeter::expose::Desc) {}
        fn sample(&mut self, labels: &hotmeter::expose::Labels<'_>, value: &hotmeter::expose::Value<'_>) {
            if let hotmeter::expose::Value::Counter(v) = value {
                let set: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v}")).collect();
                self.0.push((set.join(","), *v));
            }
        }
    }
    let mut v = V(Vec::new());
    r.collect(&mut v);
    v.0.retain(|(set, _)| set.starts_with("id="));
    v.0
}

/// A scrape races one thread inserting `b` and another removing `a`: it
/// sees each change wholly or not at all (never a removed series' stale
/// prefix beside another's value), and a scrape after both sees exactly
/// `b`, with its increment.
#[test]
fn a_scrape_racing_an_insert_and_a_removal_is_consistent() {
    loom::model(|| scrape_racing_an_insert_and(|f| usize::from(f.remove(&["a"]).unwrap())));
}

/// As above with `retain` removing `a`.
#[test]
fn a_scrape_racing_an_insert_and_a_retain_is_consistent() {
    loom::model(|| scrape_racing_an_insert_and(|f| f.retain(|values| values != ["a"])));
}

/// One run of the two models above: `remove_a` removes `a` on a thread of
/// its own (returning how many series it removed) while another inserts
/// `b` and this one scrapes.
fn scrape_racing_an_insert_and(remove_a: fn(&hotmeter::StringFamily<hotmeter::SingleCounter>) -> usize) {
    let r = hotmeter::Registry::new();
    let f = r.labeled_family("t_total", "T.", &["id"], hotmeter::SingleCounter::new).unwrap();
    f.with(&["a"], |c| c.inc()).unwrap();
    assert_eq!(scrape(&r), [("id=a".to_owned(), 1)]);
    let (fi, fr) = (f.clone(), f.clone());
    let inserter = thread::spawn(move || fi.with(&["b"], |c| c.inc_by(2)).unwrap());
    let remover = thread::spawn(move || remove_a(&fr));
    let seen = scrape(&r);
    for (set, v) in &seen {
        match set.as_str() {
            "id=a" => assert_eq!(*v, 1),
            "id=b" => assert!(*v <= 2),
            other => panic!("unexpected series {other}"),
        }
    }
    inserter.join().unwrap();
    assert_eq!(remover.join().unwrap(), 1, "a was live when it was removed");
    assert_eq!(scrape(&r), [("id=b".to_owned(), 2)], "the plan missed a change");
}

/// `retain` and `remove` take the same label set at once: exactly one of
/// them removes it, and the live count drops by one.
#[test]
fn a_retain_racing_a_remove_of_one_label_set_counts_once() {
    loom::model(|| {
        let f = hotmeter::StringFamily::with_limit(&["id"], 2, hotmeter::SingleCounter::new);
        f.with(&["a"], |c| c.inc()).unwrap();
        f.with(&["b"], |c| c.inc()).unwrap();
        let g = f.clone();
        let retainer = thread::spawn(move || g.retain(|values| values[0] != "a"));
        let removed = usize::from(f.remove(&["a"]).unwrap());
        assert_eq!(removed + retainer.join().unwrap(), 1, "one label set removed twice");
        assert_eq!(f.len(), 1, "live count off after a racing retain and remove");
    });
}

/// Two threads remove the same label set at once: exactly one succeeds and
/// the live count drops by one, so the limit still counts right afterwards.
#[test]
fn concurrent_removes_of_one_label_set_count_once() {
    loom::model(|| {
        let f = hotmeter::StringFamily::with_limit(&["id"], 2, hotmeter::SingleCounter::new);
        f.with(&["a"], |c| c.inc()).unwrap();
        f.with(&["b"], |c| c.inc()).unwrap();
        let removed = loom_tests::on_threads(2, &f, |f| f.remove(&["a"]).unwrap()).into_iter().filter(|&r| r).count();
        assert_eq!(removed, 1, "one label set removed twice");
        assert_eq!(f.len(), 1, "live count off after concurrent removes");
    });
}

/// `clear` racing the insert of a new label set at a limit of 1: the new
/// increment lands in its series or, if the family was still full, in the
/// overflow series, and is counted there; never lost.
#[test]
fn clear_racing_an_insert_accounts_for_every_increment() {
    loom::model(|| {
        let f = hotmeter::StringFamily::with_limit(&["id"], 1, hotmeter::SingleCounter::new);
        f.with(&["a"], |c| c.inc()).unwrap();
        let c = f.clone();
        let clearer = thread::spawn(move || c.clear());
        f.with(&["b"], |c| c.inc()).unwrap();
        clearer.join().unwrap();
        assert!(f.len() <= 1);
        let in_series = if f.overflowed() == 0 { f.get(&["b"]).unwrap().get() } else { 0 };
        assert_eq!(in_series + f.overflowed(), 1, "the increment of b is neither in its series nor in overflow");
    });
}

#[test]
fn cardinality_limit_holds_under_race() {
    loom::model(|| {
        let f = hotmeter::StringFamily::with_limit(&["id"], 1, hotmeter::SingleCounter::new);
        let ts: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|id| {
                let f = f.clone();
                thread::spawn(move || f.with(&[id], |c| c.inc()).unwrap())
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(f.len(), 1, "limit exceeded");
        assert_eq!(f.overflowed(), 1, "the loser must be counted");
        let kept = if f.get(&["a"]).unwrap().get() == 1 { "a" } else { "b" };
        assert_eq!(f.get(&[kept]).unwrap().get(), 1);
    });
}

#[test]
fn typed_family_is_an_index() {
    hotmeter::label_enum! {
        /// Status.
        pub enum Status: "status" { Ok = "ok", Err = "error" }
    }
    loom::model(|| {
        let f: hotmeter::Family<Status, hotmeter::Counter> = hotmeter::Family::new(hotmeter::Counter::new);
        let f1 = f.clone();
        let t = thread::spawn(move || f1.get(Status::Err).inc());
        f.get(Status::Err).inc();
        t.join().unwrap();
        assert_eq!(f.get(Status::Err).get(), 2);
        assert_eq!(f.get(Status::Ok).get(), 0);
    });
}

/// A get-or-create that checks, then inserts under the lock without
/// checking again: loom must find the two threads creating two series.
#[test]
#[should_panic(expected = "two series for one label set")]
fn insert_without_recheck_is_caught() {
    loom::model(|| {
        let map: Arc<Mutex<Vec<(&'static str, Arc<()>)>>> = Arc::new(Mutex::new(Vec::new()));
        let get_or_create = |map: &Mutex<Vec<(&'static str, Arc<()>)>>, key: &'static str| -> Arc<()> {
            let found = map.lock().unwrap().iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone());
            if let Some(v) = found {
                return v;
            }
            // Bug: no second lookup once the lock is held.
            let v = Arc::new(());
            map.lock().unwrap().push((key, v.clone()));
            v
        };
        let m2 = map.clone();
        let t = thread::spawn(move || get_or_create(&m2, "a"));
        let mine = get_or_create(&map, "a");
        let theirs = t.join().unwrap();
        assert!(Arc::ptr_eq(&mine, &theirs), "two series for one label set");
    });
}
