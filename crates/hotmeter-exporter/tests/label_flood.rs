//! A label flood: 1,000,000 distinct label values pushed into a string
//! family with the default cardinality limit. Resident memory stays bounded,
//! every increment is accounted for (series + overflow), and scrapes stay
//! the size of the limit. Its own test binary, so the resident-memory
//! reading sees no other test's allocations.

use hotmeter::{Counter, DEFAULT_CARDINALITY_LIMIT, OVERFLOW_LABEL_VALUE, Registry};
use hotmeter_exporter::encode_text;

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status is readable on Linux");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS is reported")
}

#[test]
fn a_million_distinct_label_values_stay_bounded_and_accounted_for() {
    const VALUES: u64 = 1_000_000;
    /// Resident growth allowed for the whole flood: the family holds at most
    /// its limit of series (2,000), a few hundred KiB; the rest is slack for
    /// the allocator and the scrape buffer.
    const MAX_GROWTH_KIB: u64 = 32 * 1024;

    let registry = Registry::new();
    let by_user = registry.labeled_family("requests_total", "Requests by user.", &["user"], Counter::new).unwrap();
    let mut out = Vec::new();
    encode_text(&registry, &mut out);
    let before = resident_kib();

    let mut value = String::new();
    let mut peak = before;
    for i in 0..VALUES {
        value.clear();
        use std::fmt::Write;
        write!(value, "user-{i:07}-\"quoted\\").unwrap();
        value.push('\n');
        by_user.with(&[value.as_str()], |c| c.inc()).unwrap();
        if i % 100_000 == 0 {
            peak = peak.max(resident_kib());
        }
    }
    let after = resident_kib();
    peak = peak.max(after);
    eprintln!(
        "label flood: {VALUES} distinct values, limit {DEFAULT_CARDINALITY_LIMIT}: resident {before} KiB before, {after} KiB after, peak {peak} KiB (+{} KiB)",
        peak.saturating_sub(before)
    );
    assert!(
        peak.saturating_sub(before) < MAX_GROWTH_KIB,
        "resident memory grew by {} KiB during the flood",
        peak - before
    );

    // Every increment is in a series or in the overflow series, and counted.
    assert_eq!(by_user.len(), DEFAULT_CARDINALITY_LIMIT);
    let snapshot = registry.snapshot();
    let family = snapshot.family("requests_total").unwrap();
    let total: u64 = family
        .series
        .iter()
        .map(|s| match s.value {
            hotmeter::OwnedValue::Counter(n) => n,
            ref other => panic!("not a counter: {other:?}"),
        })
        .sum();
    assert_eq!(total, VALUES, "increments lost or double-counted");
    assert_eq!(family.series.len(), DEFAULT_CARDINALITY_LIMIT + 1, "the limit's series plus one overflow series");
    let overflow = family.series.iter().find(|s| s.labels[0].1 == OVERFLOW_LABEL_VALUE).unwrap();
    assert_eq!(overflow.value, hotmeter::OwnedValue::Counter(VALUES - DEFAULT_CARDINALITY_LIMIT as u64));
    assert_eq!(by_user.overflowed(), VALUES - DEFAULT_CARDINALITY_LIMIT as u64);
    assert_eq!(
        snapshot.value("hotmeter_label_overflow_total", &["requests_total"]),
        Some(&hotmeter::OwnedValue::Counter(VALUES - DEFAULT_CARDINALITY_LIMIT as u64)),
        "the overflow is exported as a self-metric"
    );

    // The scrape is the size of the limit: one line per kept series, one
    // overflow line, no line per flooded value.
    out.clear();
    encode_text(&registry, &mut out);
    let text = String::from_utf8(out).unwrap();
    let lines = text.lines().filter(|l| l.starts_with("requests_total{")).count();
    assert_eq!(lines, DEFAULT_CARDINALITY_LIMIT + 1);
    assert!(text.len() < 200 * 1024, "scrape of {} bytes", text.len());
    // Awkward values are escaped, one line each.
    assert!(text.contains(r#"requests_total{user="user-0000000-\"quoted\\\n"} 1"#), "{}", &text[..500]);
}
