//! The pipeline overhead measured in pairs: the recording and the
//! disabled pipeline (see `pipeline.rs`) run alternately, run by run, in
//! one process, so slow phases of a shared machine hit both alike. Prints,
//! per handler, the median of the per-round ratios (recording / disabled)
//! with their interquartile range, and the median per-observation cost.
//!
//! `cargo bench -p hotmeter-benches --bench pipeline_paired` (about a
//! minute). Not a criterion bench: criterion times one function at a time.

use std::time::{Duration, Instant};

use hotmeter_benches::pipeline::{HANDLERS, PER_RUN, Rig};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn quartiles(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 4], v[v.len() * 3 / 4])
}

fn timed(rig: &mut Rig) -> Duration {
    let t = Instant::now();
    rig.run();
    t.elapsed()
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument selects handlers.
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temporary directory");
    println!("| handler | rounds | recording / disabled (median) | interquartile range | per observation |");
    println!("|---|---:|---:|---:|---:|");
    for handler in HANDLERS {
        if !filter.is_empty() && !filter.iter().any(|f| handler.contains(f.as_str())) {
            continue;
        }
        let rounds = if handler == "checkpoint" { 30 } else { 80 };
        let mut on = Rig::new(handler, true, dir.path());
        let mut off = Rig::new(handler, false, dir.path());
        for _ in 0..3 {
            on.run();
            off.run();
        }
        let (mut ratios, mut extra_ns) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            // Alternate which goes first, so neither always follows the other.
            let (a, b) = if round % 2 == 0 {
                let a = timed(&mut on);
                (a, timed(&mut off))
            } else {
                let b = timed(&mut off);
                (timed(&mut on), b)
            };
            ratios.push(a.as_secs_f64() / b.as_secs_f64());
            extra_ns.push((a.as_secs_f64() - b.as_secs_f64()) * 1e9 / PER_RUN as f64);
            eprint!("\r{handler}: round {}/{rounds}", round + 1);
        }
        eprintln!();
        let (q1, q3) = quartiles(&mut ratios.clone());
        println!(
            "| `{handler}` | {rounds} | {:.3}x | {q1:.3}x to {q3:.3}x | {:+.1} ns |",
            median(&mut ratios),
            median(&mut extra_ns)
        );
    }
}
