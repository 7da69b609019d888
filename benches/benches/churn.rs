//! Series that come and go (issue #21): 10,000,000 distinct label sets over
//! time, at most 1,000 live at once, in a family with a limit of 2,000 that
//! reclaims memory; then a million more left to idle expiry. Live heap
//! bytes (a counting allocator: what the program holds, not the
//! allocator's rounding), resident memory, the index's table and the scrape
//! size are read every million label sets; the run fails if anything went
//! to the overflow series or memory grew after the first million.
//!
//! Not a timing benchmark: it prints a Markdown table and checks memory,
//! never time. The test command runs it (`cargo bench -p hotmeter-benches
//! --bench churn`); `CHURN_SETS=1000000` runs a shorter one.

use std::time::{Duration, Instant};

use hotmeter_benches::counting_alloc::{Counting, live_bytes};

#[global_allocator]
static ALLOC: Counting = Counting;

fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4)
}

const LIVE_AT_ONCE: u64 = 1_000;

/// `prefix` and `i` in 8 digits: every label value the same length, so
/// memory can only grow with the number of label sets seen, not their size.
fn tenant(key: &mut String, prefix: &str, i: u64) {
    use std::fmt::Write;
    key.clear();
    let _ = write!(key, "{prefix}{i:08}");
}

fn main() {
    let sets: u64 = std::env::var("CHURN_SETS").ok().and_then(|s| s.parse().ok()).unwrap_or(10_000_000);
    let step = (sets / 10).max(LIVE_AT_ONCE);
    let registry = hotmeter::Registry::new();
    let family = registry
        .register(
            ("churn_jobs_total", "Jobs by tenant."),
            hotmeter::StringFamily::builder(&["tenant"], hotmeter::Counter::new).limit(2_000).reclaim_memory().build(),
        )
        .expect("registers");
    let mut scrape = Vec::new();
    let mut key = String::new();
    let started = Instant::now();
    println!("| label sets so far | live series | live heap (KiB) | resident (KiB) | scrape bytes | elapsed (s) |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let mut first: Option<(isize, usize)> = None;
    let mut worst = 0isize;
    for i in 0..sets {
        tenant(&mut key, "tenant-", i);
        family.with(&[&key], |c| c.inc()).expect("one label");
        if i >= LIVE_AT_ONCE {
            tenant(&mut key, "tenant-", i - LIVE_AT_ONCE);
            assert_eq!(family.remove(&[&key]), Ok(true));
        }
        if (i + 1) % step == 0 {
            scrape.clear();
            hotmeter_exporter::encode_text(&registry, &mut scrape);
            let heap = live_bytes();
            println!(
                "| {} | {} | {} | {} | {} | {:.1} |",
                i + 1,
                family.len(),
                heap / 1024,
                resident_kib(),
                scrape.len(),
                started.elapsed().as_secs_f64()
            );
            match first {
                None => first = Some((heap, scrape.len())),
                Some(_) => worst = worst.max(heap),
            }
        }
    }
    assert_eq!(family.overflowed(), 0, "a label set went to the overflow series");
    let (first_heap, first_scrape) = first.expect("at least one step");
    println!(
        "\nLive heap: {} KiB after the first {step} label sets, at most {} KiB after (x{:.3}).",
        first_heap / 1024,
        worst / 1024,
        worst as f64 / first_heap as f64
    );
    // Retired entries wait for the epoch: allow what a few garbage bags
    // in flight hold, nothing that grows with the label sets seen.
    assert!(worst <= first_heap + first_heap / 10, "memory grew with history: {worst} > {first_heap} + 10%");
    assert!(scrape.len() <= first_scrape + first_scrape / 5, "scrape size grew: {} vs {first_scrape}", scrape.len());

    // Idle expiry: label sets recorded once and left; scrapes expire them.
    let expiring = registry
        .register(
            ("churn_idle_total", "Left to expire."),
            hotmeter::StringFamily::builder(&["tenant"], hotmeter::Counter::new)
                .limit(2_000)
                .idle_timeout(Duration::ZERO)
                .build(),
        )
        .expect("registers");
    let idle_sets = sets / 10;
    let mut most_live = 0;
    let mut warm: Option<isize> = None;
    let mut worst_idle = 0isize;
    for i in 0..idle_sets {
        tenant(&mut key, "idle-", i);
        expiring.with(&[&key], |c| c.inc()).expect("one label");
        if (i + 1) % 500 == 0 {
            // A scrape notes values; the next one that finds them unchanged
            // expires them.
            scrape.clear();
            hotmeter_exporter::encode_text(&registry, &mut scrape);
            most_live = most_live.max(expiring.len());
            let heap = live_bytes();
            if (i + 1) * 10 >= idle_sets {
                match warm {
                    None => warm = Some(heap),
                    Some(_) => worst_idle = worst_idle.max(heap),
                }
            }
        }
    }
    for _ in 0..4 {
        scrape.clear();
        hotmeter_exporter::encode_text(&registry, &mut scrape);
    }
    let warm = warm.expect("a scrape after the first tenth");
    println!(
        "\nIdle expiry: {idle_sets} label sets recorded once, a scrape every 500 (idle timeout 0: a series expires at \
         the second scrape that sees it unchanged): at most {most_live} live at a scrape, {} live at the end; live heap \
         {} KiB after the first tenth, at most {} KiB after (x{:.3}); overflow {}.",
        expiring.len(),
        warm / 1024,
        worst_idle / 1024,
        worst_idle as f64 / warm as f64,
        expiring.overflowed()
    );
    assert_eq!(expiring.overflowed(), 0, "idle label sets must expire before the limit");
    assert!(most_live <= 1_000, "at most two scrapes' worth of series live: {most_live}");
    assert!(worst_idle <= warm + warm / 10, "idle expiry must give memory back: {worst_idle} > {warm} + 10%");
}
