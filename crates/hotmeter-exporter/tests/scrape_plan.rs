//! String families against a model: after any sequence of inserts,
//! increments, removals, returns of removed label sets (from zero), clears,
//! overflow and scrapes of the same
//! family through two registries (different namespaces and constant
//! labels) and both text formats, every scrape shows exactly the model's
//! live series, in label-value order, escaped, with their values.

use std::collections::BTreeMap;

use hotmeter::{Counter, Gauge, Registry, StringFamily};
use hotmeter_exporter::{encode_openmetrics, encode_text};
use proptest::prelude::*;

/// Label values that stress the key storage and escaping: empty, escapes,
/// UTF-8, 22 bytes (inline), 23 bytes (heap), concatenations that collide
/// across the two labels, and the overflow series' own value.
const VALUES: &[&str] = &[
    "",
    "a",
    "ab",
    "c",
    "bc",
    "\\",
    "\"",
    "\n",
    "é✓",
    "0123456789012345678901",
    "01234567890123456789012",
    "a-value-much-longer-than-twenty-two-bytes-\"quoted\"",
    "__overflow__",
];

#[derive(Clone, Debug)]
enum Op {
    Inc(usize, usize, u64),
    Remove(usize, usize),
    Clear,
    Scrape(bool, bool),
}

fn op() -> impl Strategy<Value = Op> {
    let v = 0..VALUES.len();
    prop_oneof![
        6 => (v.clone(), v.clone(), 1..5u64).prop_map(|(a, b, n)| Op::Inc(a, b, n)),
        2 => (v.clone(), v).prop_map(|(a, b)| Op::Remove(a, b)),
        1 => Just(Op::Clear),
        3 => (any::<bool>(), any::<bool>()).prop_map(|(r, om)| Op::Scrape(r, om)),
    ]
}

/// What the family should hold.
#[derive(Default)]
struct Model {
    live: BTreeMap<Vec<String>, u64>,
    /// Removed series a family that does not reclaim memory still holds
    /// (`None`: it reclaims, and holds none).
    kept: Option<usize>,
    overflow: u64,
    overflowed: u64,
}

impl Model {
    fn inc(&mut self, key: Vec<String>, n: u64, limit: usize) {
        if let Some(v) = self.live.get_mut(&key) {
            *v += n;
            return;
        }
        let reserved = key.iter().all(|v| v == "__overflow__");
        let room = self.live.len() < limit;
        if !reserved && room && self.live.len() + self.kept.unwrap_or(0) < 2 * limit {
            self.live.insert(key, n);
            return;
        }
        self.overflow += n;
        self.overflowed += 1;
    }

    fn remove(&mut self, key: Vec<String>) {
        if self.live.remove(&key).is_some() {
            self.kept = self.kept.map(|k| k + 1);
        }
    }

    fn clear(&mut self) {
        let live = std::mem::take(&mut self.live);
        self.kept = self.kept.map(|k| k + live.len());
    }
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The family's sample lines as the model says they must be.
fn expected(model: &Model, name: &str, consts: &str, gauge: bool) -> Vec<String> {
    let num = |v: u64| if gauge { format!("{v}.0") } else { v.to_string() };
    let mut lines: Vec<String> = model
        .live
        .iter()
        .map(|(k, &v)| format!("{name}{{{consts}k=\"{}\",j=\"{}\"}} {}", esc(&k[0]), esc(&k[1]), num(v)))
        .collect();
    if model.overflowed > 0 {
        lines.push(format!("{name}{{{consts}k=\"__overflow__\",j=\"__overflow__\"}} {}", num(model.overflow)));
    }
    lines
}

fn scraped(r: &Registry, om: bool, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    if om {
        encode_openmetrics(r, &mut out);
    } else {
        encode_text(r, &mut out);
    }
    let text = String::from_utf8(out).expect("UTF-8");
    // Label values hold escaped newlines only, so lines split cleanly.
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .map(String::from)
        .collect()
}

fn run(ops: &[Op], limit: usize, gauge: bool, reclaim: bool) -> Result<(), TestCaseError> {
    let a = Registry::builder().namespace("app").const_label("host", "h\"1\n").build().unwrap();
    let b = Registry::new();
    let (name, kind) = if gauge { ("level", "gauge") } else { ("req_total", "counter") };
    let cf = StringFamily::builder(&["k", "j"], Counter::new).limit(limit);
    let cf = if reclaim { cf.reclaim_memory() } else { cf }.build();
    let gf = StringFamily::builder(&["k", "j"], Gauge::new).limit(limit);
    let gf = if reclaim { gf.reclaim_memory() } else { gf }.build();
    if gauge {
        let _ = a.register((name, "H."), gf.clone()).unwrap();
        let _ = b.register((name, "H."), gf.clone()).unwrap();
    } else {
        let _ = a.register((name, "H."), cf.clone()).unwrap();
        let _ = b.register((name, "H."), cf.clone()).unwrap();
    }
    let mut model = Model { kept: (!reclaim).then_some(0), ..Model::default() };
    for op in ops {
        match *op {
            Op::Inc(x, y, n) => {
                let key = [VALUES[x], VALUES[y]];
                if gauge {
                    gf.with(&key, |g| g.add(n as f64)).unwrap();
                } else {
                    cf.with(&key, |c| c.inc_by(n)).unwrap();
                }
                model.inc(key.iter().map(|s| s.to_string()).collect(), n, limit);
            }
            Op::Remove(x, y) => {
                let key = [VALUES[x], VALUES[y]];
                let was = if gauge { gf.remove(&key) } else { cf.remove(&key) }.expect("two values for two labels");
                let owned: Vec<String> = key.iter().map(|s| s.to_string()).collect();
                prop_assert_eq!(was, model.live.contains_key(&owned), "remove {:?}", key);
                model.remove(owned);
            }
            Op::Clear => {
                if gauge {
                    gf.clear()
                } else {
                    cf.clear()
                }
                model.clear();
            }
            Op::Scrape(first, om) => {
                let (r, full, consts) =
                    if first { (&a, format!("app_{name}"), "host=\"h\\\"1\\n\",") } else { (&b, name.to_string(), "") };
                prop_assert_eq!(scraped(r, om, &full), expected(&model, &full, consts, gauge), "{} {:?}", kind, op);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn counter_scrapes_match_the_model(ops in proptest::collection::vec(op(), 1..60), limit in 1..8usize, reclaim: bool) {
        run(&ops, limit, false, reclaim)?;
    }

    #[test]
    fn gauge_scrapes_match_the_model(ops in proptest::collection::vec(op(), 1..60), limit in 1..8usize, reclaim: bool) {
        run(&ops, limit, true, reclaim)?;
    }
}
