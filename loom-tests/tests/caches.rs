//! Once-initialised storage seen by loom: a histogram's exemplar slots
//! created by the first exemplar while a scrape reads them, and the
//! per-series render cache filled by two concurrent scrapes.
#![cfg(hotmeter_loom)]

use loom::thread;

#[test]
fn exemplar_slots_are_created_once_and_never_torn() {
    loom::model(|| {
        let h = hotmeter::Histogram::new(hotmeter::Buckets::new([1.0]).unwrap());
        let trace = hotmeter::TraceId::new("t1").unwrap();
        let w = h.clone();
        let writer = thread::spawn(move || w.observe_with_exemplar(0.5, &trace));
        let seen = h.exemplars();
        // Either no slots yet, or one per bucket with the first bucket empty
        // or holding exactly what was written.
        assert!(seen.is_empty() || seen.len() == 2, "slots: {seen:?}");
        if let Some(Some(e)) = seen.first() {
            assert_eq!((e.trace_id.as_str(), e.value), ("t1", 0.5), "torn exemplar");
        }
        writer.join().unwrap();
        let after = h.exemplars();
        let e = after[0].expect("the writer's exemplar is kept");
        assert_eq!((e.trace_id.as_str(), e.value), ("t1", 0.5));
        assert!(after[1].is_none());
        assert_eq!(h.snapshot().counts(), &[1, 0]);
    });
}

/// Collects every sample prefix of `x_total` a scrape sees, rendered or not.
struct Prefixes(Vec<Vec<u8>>, bool);

impl hotmeter::expose::Visitor for Prefixes {
    fn family(&mut self, desc: &hotmeter::expose::Desc) {
        self.1 = desc.name == "x_total";
    }
    fn sample(&mut self, labels: &hotmeter::expose::Labels<'_>, _: &hotmeter::expose::Value<'_>) {
        if !self.1 {
            return;
        }
        let mut prefix = labels.rendered_sample_prefix().map(<[u8]>::to_vec).unwrap_or_default();
        if prefix.is_empty() {
            // Not cached: render it as an encoder would.
            prefix.extend_from_slice(b"x_total");
            hotmeter::expose::write_label_set(&mut prefix, labels);
            prefix.extend_from_slice(b"} ");
        }
        self.0.push(prefix);
    }
}

#[test]
fn two_scrapes_fill_the_render_cache_once() {
    loom::model(|| {
        let r = hotmeter::Registry::new();
        let f = hotmeter::StringFamily::new(&["id"], hotmeter::SingleCounter::new);
        let _ = r.register(("x_total", "X."), f.clone()).unwrap();
        f.with(&["a\"b"], |c| c.inc()).unwrap();
        let r2 = r.clone();
        let other = thread::spawn(move || {
            let mut p = Prefixes(Vec::new(), false);
            r2.collect(&mut p);
            p.0
        });
        let mut mine = Prefixes(Vec::new(), false);
        r.collect(&mut mine);
        let theirs = other.join().unwrap();
        let expected = br#"x_total{id="a\"b"} "#.to_vec();
        assert_eq!(mine.0, [expected.clone()]);
        assert_eq!(theirs, [expected]);
    });
}
