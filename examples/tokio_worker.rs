//! A tokio worker service: jobs by kind and outcome, their latency and the
//! queue's depth, served on `/metrics` while it runs.
//!
//! `cargo run -p hotmeter-examples --example tokio_worker -- [ADDR] [SECONDS]`

use std::time::{Duration, Instant};

use hotmeter::{Buckets, Counter, Registry};
use hotmeter_exporter::Exporter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9898".into());
    let linger: u64 = std::env::args().nth(2).map_or(Ok(30), |s| s.parse())?;
    let registry = Registry::new();
    let server = Exporter::new(registry.clone()).listen(addr.parse()?).serve().await?;
    println!("serving http://{}/metrics", server.local_addr());
    let done = run_jobs(&registry, 1_000).await?;
    println!("{done} jobs done; serving for {linger} s more");
    tokio::time::sleep(Duration::from_secs(linger)).await;
    server.shutdown().await;
    Ok(())
}

/// Runs `count` jobs through a bounded queue and four workers.
async fn run_jobs(registry: &Registry, count: u64) -> Result<u64, Box<dyn std::error::Error>> {
    let jobs = registry.labeled_family("jobs_total", "Jobs run.", &["kind", "outcome"], Counter::new)?;
    let latency = registry.histogram("job_duration_seconds", "Time to run one job.", Buckets::default())?;
    let queued = registry.int_gauge("job_queue_depth", "Jobs waiting for a worker.")?;
    let busy = registry.int_gauge("job_workers_busy", "Workers running a job.")?;

    let (tx, rx) = tokio::sync::mpsc::channel::<u64>(64);
    let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (rx, jobs, latency, queued, busy) =
            (rx.clone(), jobs.clone(), latency.clone(), queued.clone(), busy.clone());
        workers.push(tokio::spawn(async move {
            loop {
                // The lock only while taking a job: the four work at once.
                let next = rx.lock().await.recv().await;
                let Some(job) = next else { break };
                queued.dec();
                busy.inc();
                let started = Instant::now();
                tokio::time::sleep(Duration::from_micros(200)).await; // the work
                busy.dec();
                let kind = if job % 3 == 0 { "resize" } else { "encode" };
                let outcome = if job % 10 == 0 { "error" } else { "ok" };
                latency.observe(started.elapsed().as_secs_f64());
                jobs.with(&[kind, outcome], |c| c.inc())?;
            }
            Ok::<_, hotmeter::LabelCountError>(())
        }));
    }
    for job in 0..count {
        queued.inc();
        tx.send(job).await?;
    }
    drop(tx);
    for worker in workers {
        worker.await??;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_opens_with_this_program() {
        let readme = hotmeter_examples::rust_block(include_str!("../README.md"), 0);
        let program = hotmeter_examples::program_part(include_str!("tokio_worker.rs"));
        assert_eq!(readme.as_deref(), Some(program), "README's first rust block and examples/tokio_worker.rs differ");
    }

    /// The four workers run jobs at the same time (the queue's lock is held
    /// only to take a job): the busy gauge, read while they run, is seen
    /// above one; one worker at a time would never take it there.
    #[test]
    fn the_workers_run_at_once() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let registry = Registry::new();
        let jobs = rt.spawn({
            let registry = registry.clone();
            async move { run_jobs(&registry, 1_000).await.map_err(|e| e.to_string()) }
        });
        let mut most = 0;
        while !jobs.is_finished() {
            if let Some(hotmeter::OwnedValue::IntGauge(n)) = registry.snapshot().value("job_workers_busy", &[]) {
                most = most.max(*n);
            }
            std::thread::yield_now();
        }
        assert_eq!(rt.block_on(jobs).unwrap(), Ok(1_000));
        assert!(most > 1, "at most {most} worker busy at once");
    }

    /// Every job is counted once under its kind and outcome, and a scrape
    /// of the running server says so, on both kinds of tokio runtime.
    #[test]
    fn every_job_is_counted_and_served() {
        let multi = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let current = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        for rt in [multi, current] {
            rt.block_on(async {
                let registry = Registry::new();
                let server =
                    Exporter::new(registry.clone()).listen("127.0.0.1:0".parse().unwrap()).serve().await.unwrap();
                assert_eq!(run_jobs(&registry, 1_000).await.unwrap(), 1_000);
                let addr = server.local_addr().to_string();
                let body = tokio::task::spawn_blocking(move || hotmeter_testkit::http::get(&addr, "/metrics"))
                    .await
                    .unwrap()
                    .unwrap()
                    .body;
                let mut expected = std::collections::BTreeMap::new();
                for job in 0..1_000u64 {
                    let kind = if job % 3 == 0 { "resize" } else { "encode" };
                    let outcome = if job % 10 == 0 { "error" } else { "ok" };
                    *expected.entry((kind, outcome)).or_insert(0u64) += 1;
                }
                for ((kind, outcome), n) in expected {
                    let line = format!("jobs_total{{kind=\"{kind}\",outcome=\"{outcome}\"}} {n}\n");
                    assert!(body.contains(&line), "no {line:?} in\n{body}");
                }
                assert!(body.contains("job_duration_seconds_count 1000\n"), "{body}");
                assert!(body.contains("job_queue_depth 0\n"), "{body}");
                server.shutdown().await;
            });
        }
    }
}
