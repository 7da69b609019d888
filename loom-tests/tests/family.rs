//! String-labeled family insert races: two threads creating the same label
//! set get the same series, and the cardinality limit holds under a race.
#![cfg(hotmeter_loom)]

use loom::sync::{Arc, Mutex};
use loom::thread;

#[test]
fn same_label_set_same_series() {
    loom::model(|| {
        let f = hotmeter::StringFamily::new(&["space"], hotmeter::SingleCounter::new);
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let f = f.clone();
                thread::spawn(move || f.with(&["a"], |c| c.inc()).unwrap())
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(f.len(), 1);
        assert_eq!(f.get(&["a"]).unwrap().get(), 2);
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
#[should_panic]
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
