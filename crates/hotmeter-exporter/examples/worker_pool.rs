//! A small instrumented worker pool served over HTTP: the exporter and the
//! core's metric kinds in one file (the full pipeline is `hotmeter-demo`).
//!
//! Four workers process synthetic jobs, recording through a typed-label
//! family, a string-label family, a histogram and a summary; the exporter
//! serves them (with process metrics) on `127.0.0.1:9898` while it runs; the
//! main thread prints one live status line per second, read from the same
//! registry a scrape reads, then a final table of every series.
//!
//! ```text
//! cargo run --release -p hotmeter-exporter --example worker_pool -- [SECONDS] [ADDR]
//!     SECONDS  how long to run, 1..=3600 (default 5)
//!     ADDR     where to serve /metrics (default 127.0.0.1:9898; port 0 picks one)
//! ```

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hotmeter::{Buckets, Counter, Family, OwnedValue, Registry, StringFamily, SummaryOpts};

hotmeter::label_enum! {
    /// Outcome of a job.
    pub enum Status: "status" { Success = "success", Error = "error" }
}

const WORKERS: usize = 4;
const SPACES: [&str; 3] = ["tenant-a", "tenant-b", "tenant-c"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let default_listen = hotmeter_exporter::DEFAULT_LISTEN;
    let usage =
        format!("usage: worker_pool [SECONDS] [ADDR]   (SECONDS: 1 to 3600, default 5; ADDR default {default_listen})");
    let seconds: u64 = match std::env::args().nth(1) {
        None => 5,
        Some(s) => match s.parse() {
            Ok(n) if (1..=3600).contains(&n) => n,
            _ => {
                eprintln!("{usage}\nSECONDS must be a whole number from 1 to 3600; got {s:?}");
                std::process::exit(2);
            }
        },
    };
    let listen: std::net::SocketAddr = match std::env::args().nth(2) {
        None => default_listen.parse()?,
        Some(a) => match a.parse() {
            Ok(addr) => addr,
            Err(_) => {
                eprintln!("{usage}\nADDR must be IP:PORT, e.g. {default_listen}; got {a:?}");
                std::process::exit(2);
            }
        },
    };

    let registry = Registry::builder().namespace("example").build()?;
    let jobs: Family<Status, Counter> =
        registry.typed_family("jobs_total", "Jobs processed, by outcome.", Counter::new)?;
    let by_space: StringFamily<Counter> =
        registry.labeled_family("jobs_by_space_total", "Jobs by memory space.", &["memory_space"], Counter::new)?;
    let latency =
        registry.histogram("job_duration_seconds", "Time to process one job.", Buckets::exponential(1e-6, 4.0, 10)?)?;
    let latency_window = registry.summary(
        "job_duration_window_seconds",
        "Job time quantiles over the last minute.",
        SummaryOpts { window: Duration::from_secs(60), resolution: 1e-8, ..SummaryOpts::default() },
    )?;
    let busy = registry.int_gauge("busy_workers", "Workers processing a job right now.")?;
    hotmeter_exporter::register_process_metrics(&registry)?;
    let server = match hotmeter_exporter::Exporter::new(registry.clone()).listen(listen).start() {
        Ok(server) => server,
        Err(e) => {
            eprintln!("cannot serve metrics on {listen}: {e} (pass another ADDR, e.g. 127.0.0.1:0)");
            std::process::exit(1);
        }
    };
    server.set_ready(true);
    println!("serving http://{}/metrics (also /metrics/json, /healthz, /readyz) for {seconds} s", server.local_addr());

    let stop = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..WORKERS {
            let (jobs, by_space, latency, latency_window, busy, stop) =
                (&jobs, &by_space, &latency, &latency_window, &busy, &stop);
            s.spawn(move || {
                // Keep the per-space handles: no lookup in the loop.
                let spaces: Vec<Counter> = SPACES.iter().map(|sp| by_space.get(&[sp]).expect("one label")).collect();
                let mut n: u64 = w as u64;
                while !stop.load(Ordering::Relaxed) {
                    busy.inc();
                    let t = Instant::now();
                    // Synthetic work: a little hashing, sometimes more.
                    let rounds = if n.is_multiple_of(97) { 20_000 } else { 200 };
                    let mut x = n;
                    for _ in 0..rounds {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    }
                    std::hint::black_box(x);
                    let elapsed = t.elapsed();
                    latency.observe_duration(elapsed);
                    latency_window.observe_duration(elapsed);
                    jobs.get(if x.is_multiple_of(50) { Status::Error } else { Status::Success }).inc();
                    spaces[(n % 3) as usize].inc();
                    busy.dec();
                    n += WORKERS as u64;
                }
            });
        }

        let mut last = 0u64;
        for _ in 0..seconds {
            std::thread::sleep(Duration::from_secs(1));
            let total = jobs.get(Status::Success).get() + jobs.get(Status::Error).get();
            let errors = jobs.get(Status::Error).get();
            let snap = latency.snapshot();
            let p99 = snap.quantile(0.99).unwrap_or(0.0);
            let wp99 = latency_window.quantile(0.99).unwrap_or(0.0);
            print!(
                "\r[{:>4.0}s] jobs/s {:>10}  errors {:>5.2}%  p99 {:>8.1} µs (histogram)  {:>8.1} µs (window)   ",
                started.elapsed().as_secs_f64(),
                total - last,
                100.0 * errors as f64 / total.max(1) as f64,
                p99 * 1e6,
                wp99 * 1e6,
            );
            let _ = std::io::stdout().flush();
            last = total;
        }
        stop.store(true, Ordering::Relaxed);
    });
    println!();
    server.shutdown();

    println!("\nfinal snapshot ({} families):", registry.snapshot().families.len());
    for family in registry.snapshot().families {
        println!("  {} ({}) — {}", family.desc.name, family.desc.kind, family.desc.help);
        for series in family.series {
            let labels: Vec<String> = series.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            let value = match &series.value {
                OwnedValue::Counter(c) => c.to_string(),
                OwnedValue::Gauge(g) | OwnedValue::FloatCounter(g) => g.to_string(),
                OwnedValue::IntGauge(g) => g.to_string(),
                v @ (OwnedValue::Histogram { .. } | OwnedValue::NativeHistogram { .. }) => {
                    let (count, sum) = match v {
                        OwnedValue::NativeHistogram { native, .. } => (native.count, native.sum),
                        OwnedValue::Histogram { count, sum, .. } => (*count, *sum),
                        _ => unreachable!("matched above"),
                    };
                    format!(
                        "count {count}, sum {sum:.6}, p50 ≈ {:.1} µs, p99 ≈ {:.1} µs",
                        v.quantile(0.5).unwrap_or(0.0) * 1e6,
                        v.quantile(0.99).unwrap_or(0.0) * 1e6
                    )
                }
                OwnedValue::Summary { quantiles, count, .. } => {
                    let q: Vec<String> =
                        quantiles.iter().map(|(q, v)| format!("p{}={:.1}µs", q * 100.0, v * 1e6)).collect();
                    format!("count {count}, {}", q.join(" "))
                }
            };
            println!("    {{{}}} {value}", labels.join(", "));
        }
    }
    Ok(())
}
