//! A batch job that cannot be scraped: it counts what it did and, before
//! it exits, pushes its metrics once to a Pushgateway under its grouping
//! key (`PUT`: the group holds this run's metrics only).
//!
//! `cargo run -p hotmeter-examples --example batch_job -- [PUSHGATEWAY_URL]`

use std::time::Instant;

use hotmeter::{Buckets, Registry};
use hotmeter_push::{GroupingKey, Pushgateway};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args().nth(1).unwrap_or_else(|| "http://127.0.0.1:9091".into());
    let rows = run_export(&url, "3", 10_000)?;
    println!("exported {rows} rows; pushed to {url}");
    Ok(())
}

/// Exports `rows` rows of `shard`, then pushes the job's metrics to the
/// Pushgateway at `url`.
fn run_export(url: &str, shard: &str, rows: u64) -> Result<u64, Box<dyn std::error::Error>> {
    let registry = Registry::new();
    let exported = registry.counter("export_rows_total", "Rows exported.")?;
    let batch_time = registry.histogram("export_batch_seconds", "Time to export one batch.", Buckets::default())?;
    let last_success = registry.gauge("export_last_success_timestamp_seconds", "When the job last succeeded.")?;

    for batch in (0..rows).collect::<Vec<_>>().chunks(1_000) {
        let started = Instant::now();
        let written = batch.iter().filter(|row| **row != u64::MAX).count() as u64; // the export
        exported.inc_by(written);
        batch_time.observe(started.elapsed().as_secs_f64());
    }
    last_success.set(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs_f64());

    let key = GroupingKey::new("nightly_export")?.label("shard", shard)?;
    Pushgateway::new(url)?.push(&registry, &key)?;
    Ok(exported.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real Pushgateway shows the run's exact counts under the job's
    /// grouping key.
    #[test]
    fn a_run_is_visible_in_a_real_pushgateway() {
        let gateway = hotmeter_testkit::Pushgateway::start();
        let url = format!("http://{}", gateway.addr());
        assert_eq!(run_export(&url, "7", 12_345).unwrap(), 12_345);
        let body = hotmeter_testkit::http::get(gateway.addr(), "/metrics").unwrap().body;
        let line = body
            .lines()
            .find(|l| l.starts_with("export_rows_total{"))
            .unwrap_or_else(|| panic!("no export_rows_total in\n{body}"));
        assert!(line.contains(r#"job="nightly_export""#) && line.contains(r#"shard="7""#), "{line}");
        assert!(line.ends_with(" 12345"), "{line}");
        assert!(body.contains("export_batch_seconds_count{"), "{body}");
        // A second run replaces the group (PUT), it does not add to it.
        assert_eq!(run_export(&url, "7", 10).unwrap(), 10);
        let body = hotmeter_testkit::http::get(gateway.addr(), "/metrics").unwrap().body;
        let line = body.lines().find(|l| l.starts_with("export_rows_total{")).unwrap();
        assert!(line.ends_with(" 10"), "{line}");
    }
}
