//! Memory per series, hotmeter beside every peer (issue #13): heap bytes a
//! family holds per series, counted by a global allocator that tallies
//! every allocation and free, for counter and histogram families (default
//! buckets) of 10,000 series in each label shape; and the resident memory
//! of a process holding 100,000 counter series (one child process per
//! library, so one library's freed pages do not flatter the next).
//!
//! Not a timing benchmark: it prints Markdown tables. Run it with
//! `cargo bench -p hotmeter-benches --bench memory`.

use std::process::Command;

use hotmeter_benches::counting_alloc::{Counting, live_bytes};
use hotmeter_benches::peers::{self, Kind, Lib, Shape};

#[global_allocator]
static ALLOC: Counting = Counting;

/// Series per family for the per-series figures.
const N: usize = 10_000;
/// Series in the resident-memory child.
const RSS_N: usize = 100_000;

/// Heap bytes per series that `lib`'s family holds after one scrape (the
/// scrape counts: some libraries build caches on the first one).
fn bytes_per_series(lib: Lib, kind: Kind, shape: Shape) -> f64 {
    let before = live_bytes();
    let mut family = peers::build(lib, kind, shape, N);
    std::hint::black_box(family.render_fresh());
    let after = live_bytes();
    drop(family);
    (after - before) as f64 / N as f64
}

/// `VmRSS` of this process in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Child mode: build one family of `RSS_N` counter series, scrape it once,
/// print the resident memory it added in KiB.
fn child(lib: Lib) {
    let before = rss_kib();
    let mut family = peers::build(lib, Kind::Counter, Shape::Long, RSS_N);
    std::hint::black_box(family.render_fresh());
    let after = rss_kib();
    println!("{}", after.saturating_sub(before));
    drop(family);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--rss-child") {
        let lib = args.get(pos + 1).and_then(|n| Lib::from_name(n)).expect("a library name after --rss-child");
        return child(lib);
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // of the sort and only wants to see that it runs: keep that quick.
    let quick = !args.iter().any(|a| a == "--bench");
    let shapes: &[Shape] = if quick { &[Shape::Short] } else { &Shape::ALL };

    for kind in [Kind::Counter, Kind::Histogram] {
        println!(
            "\n#### heap bytes per {} series ({N} series, after one scrape)\n",
            match kind {
                Kind::Counter => "counter",
                Kind::Histogram => "histogram",
            }
        );
        print!("| implementation |");
        for s in shapes {
            print!(" {} |", s.name());
        }
        print!("\n|---|");
        for _ in shapes {
            print!("---:|");
        }
        println!();
        for lib in Lib::ALL {
            print!("| {} |", lib.name());
            for &shape in shapes {
                eprint!("\rmemory: {} {:?} {:?}            ", lib.name(), kind, shape);
                print!(" {:.0} |", bytes_per_series(lib, kind, shape));
            }
            println!();
        }
        eprintln!();
    }

    if quick {
        return;
    }
    println!("\n#### resident memory added by {RSS_N} counter series (long_memory_space), one process each\n");
    println!("| implementation | RSS added | per series |");
    println!("|---|---:|---:|");
    let exe = std::env::current_exe().expect("own path");
    for lib in Lib::ALL {
        eprint!("\rmemory: resident, {}            ", lib.name());
        let out = Command::new(&exe).args(["--rss-child", lib.name()]).output().expect("child runs");
        let kib: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
        println!("| {} | {:.1} MiB | {:.0} B |", lib.name(), kib as f64 / 1024.0, kib as f64 * 1024.0 / RSS_N as f64);
    }
    eprintln!();
}
