//! A program written against the `metrics` facade only: one line installs
//! hotmeter as its recorder, and every `counter!`, `gauge!` and
//! `histogram!` then lands in the registry the exporter serves.
//!
//! `cargo run -p hotmeter-examples --example metrics_facade -- [ADDR]`

use std::time::Duration;

use hotmeter::Registry;
use hotmeter_exporter::Exporter;
use hotmeter_metrics::HotmeterRecorder;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9898".into());
    let registry = Registry::new();
    HotmeterRecorder::new(registry.clone()).install()?;
    let server = Exporter::new(registry.clone()).listen(addr.parse()?).start()?;
    println!("serving http://{}/metrics", server.local_addr());
    handle_requests(500);
    let mut text = Vec::new();
    hotmeter_exporter::encode_text(&registry, &mut text);
    print!("{}", String::from_utf8_lossy(&text));
    server.shutdown();
    Ok(())
}

/// What the application does, instrumented with the facade's macros only.
fn handle_requests(count: u64) {
    for i in 0..count {
        let status = if i % 50 == 0 { "500" } else { "200" };
        metrics::counter!("http_requests_total", "method" => "GET", "status" => status).increment(1);
        metrics::histogram!("http_request_duration_seconds").record(Duration::from_micros(150 + i % 7).as_secs_f64());
        metrics::gauge!("http_in_flight_requests").set((i % 4) as f64);
    }
    metrics::gauge!("http_in_flight_requests").set(0.0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotmeter::OwnedValue;

    /// Every facade call is counted exactly, under the labels given.
    #[test]
    fn every_facade_call_lands_in_the_registry() {
        let registry = Registry::new();
        let recorder = HotmeterRecorder::new(registry.clone());
        metrics::with_local_recorder(&recorder, || handle_requests(500));
        let snap = registry.snapshot();
        // Label values in the family's order, names sorted by the backend.
        let family = snap.family("http_requests_total").expect("the counter family");
        let mut counts: Vec<_> = family
            .series
            .iter()
            .map(|s| (s.labels.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join(","), s.value.clone()))
            .collect();
        counts.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            counts,
            vec![
                ("method=GET,status=200".to_owned(), OwnedValue::Counter(490)),
                ("method=GET,status=500".to_owned(), OwnedValue::Counter(10)),
            ]
        );
        match snap.value("http_request_duration_seconds", &[]) {
            Some(OwnedValue::Histogram { count, .. }) => assert_eq!(*count, 500),
            other => panic!("{other:?}"),
        }
        assert_eq!(snap.value("http_in_flight_requests", &[]), Some(&OwnedValue::Gauge(0.0)));
    }
}
