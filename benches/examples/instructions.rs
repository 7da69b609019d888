//! Instructions per operation on hotmeter's hot paths, for before/after
//! comparisons of changes that must not move them (refactors): timing on a
//! shared 2-vCPU machine moves by ±20% between processes, an instruction
//! count under callgrind does not.
//!
//! ```sh
//! cargo build --profile bench -p hotmeter-benches --example instructions
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/instructions counter_inc 1000000
//! ```
//! `benches/instructions.sh REV` runs every operation at two iteration
//! counts in REV and in the working tree and prints the difference per
//! iteration (setup cancels out). Each operation uses only API that every
//! version since issue #14 has at the same path.

use std::hint::black_box;

use hotmeter::{Buckets, Counter, Histogram, NativeOpts, Registry, StringFamily};

const SPACES: usize = 16;

fn main() {
    let mut args = std::env::args().skip(1);
    let op = args.next().unwrap_or_default();
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let registry = Registry::new();
    let values = [0.0004, 0.003, 0.012, 0.07, 0.2, 0.9, 3.0, 12.0];
    match op.as_str() {
        "counter_inc" => {
            let c = registry.counter("c_total", "C.").expect("registers");
            for _ in 0..n {
                black_box(&c).inc();
            }
        }
        "string_lookup" => {
            let f: StringFamily<Counter> =
                registry.labeled_family("s_total", "S.", &["memory_space"], Counter::new).expect("registers");
            let spaces: Vec<String> = (0..SPACES).map(|i| format!("memory-space-{i:02}")).collect();
            for i in 0..n {
                let space = black_box(spaces[i % SPACES].as_str());
                f.with(&[space], |c| c.inc()).expect("one label");
            }
        }
        "histogram_observe" => {
            let h: Histogram = registry.histogram("h_seconds", "H.", Buckets::default()).expect("registers");
            for i in 0..n {
                h.observe(black_box(values[i % values.len()]));
            }
        }
        "native_observe" => {
            let h = registry.native_histogram("n_seconds", "N.", NativeOpts::new()).expect("registers");
            for i in 0..n {
                h.observe(black_box(values[i % values.len()]));
            }
        }
        "render_counters_1000" | "render_histograms_1000" | "render_protobuf_1000" => {
            if op != "render_histograms_1000" {
                let f = registry
                    .register(("r_total", "R."), StringFamily::with_limit(&["memory_space"], 2_000, Counter::new))
                    .expect("registers");
                for i in 0..1_000 {
                    f.with(&[&format!("tenant-{i:05}")], |c| c.inc_by(i as u64)).expect("one label");
                }
            } else {
                let f = registry
                    .register(
                        ("r_seconds", "R."),
                        StringFamily::with_limit(&["memory_space"], 2_000, Histogram::with_default_buckets),
                    )
                    .expect("registers");
                for i in 0..1_000 {
                    f.with(&[&format!("tenant-{i:05}")], |h| {
                        for v in values.iter().take(5) {
                            h.observe(*v);
                        }
                    })
                    .expect("one label");
                }
            }
            let mut out = Vec::new();
            let protobuf = op == "render_protobuf_1000";
            for _ in 0..n {
                out.clear();
                if protobuf {
                    hotmeter_exporter::encode_protobuf(&registry, &mut out);
                } else {
                    hotmeter_exporter::encode_text(&registry, &mut out);
                }
                black_box(&out);
            }
        }
        _ => {
            eprintln!(
                "usage: instructions OP [N]; OP is counter_inc, string_lookup, histogram_observe, native_observe, \
                 render_counters_1000, render_histograms_1000 or render_protobuf_1000 (the 1,000 counters)"
            );
            std::process::exit(2);
        }
    }
}
