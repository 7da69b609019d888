//! A fleet as one: `deploy/run-fleet.sh 5` starts five demos on their own
//! loopback ports and a Prometheus that finds them through file_sd. Every
//! instance is `up`; once the demos have finished (their counts fixed,
//! still served thanks to `--linger`), the fleet aggregates the dashboards
//! use equal the sum of what the instances report themselves, and the
//! `instance` variable narrows a panel to one of them. And stopping the
//! fleet is bounded even when a demo ignores SIGTERM.
//!
//! Needs Debian's `prometheus` (the test command installs it); without it
//! this test fails and says so.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::DEMO;
use hotmeter_testkit::promql::{query, scalar};
use hotmeter_testkit::{ChildGuard, free_addr, free_port, http, require, wait_for};

const N: usize = 5;
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The sum of `name`'s samples on an instance's own /metrics.
fn own_sum(addr: &str, name: &str) -> f64 {
    let r = http::get(addr, "/metrics").expect("the instance serves /metrics");
    r.body
        .lines()
        .filter(|l| l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{' | b' ')))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `deploy/run-fleet.sh n <demo_args>` on free loopback ports, its state in
/// a temporary folder, Prometheus scraping every second; stopped (the whole
/// process group) on drop.
struct Fleet {
    dir: tempfile::TempDir,
    addrs: Vec<String>,
    prom: String,
    _group: ChildGuard,
}

impl Fleet {
    fn start(n: usize, demo_args: &[&str]) -> Fleet {
        require("prometheus", "prometheus");
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let addrs = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let prom = free_addr();
        let mut group = ChildGuard::new();
        group.spawn_group(
            "run-fleet.sh",
            Command::new("bash")
                .arg(format!("{ROOT}/deploy/run-fleet.sh"))
                .arg(n.to_string())
                .args(demo_args)
                .env("HOTMETER_DEMO", DEMO)
                .env("HOTMETER_FLEET_DIR", dir.path())
                .env("FLEET_PROMETHEUS", &prom)
                .env("FLEET_PORTS", ports.iter().map(u16::to_string).collect::<Vec<_>>().join(" "))
                .env("FLEET_SCRAPE_INTERVAL", "1s")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit()),
        );
        Fleet { dir, addrs, prom, _group: group }
    }
}

#[test]
fn five_instances_aggregate_as_one() {
    let fleet = Fleet::start(N, &["--rate", "40", "--workers", "2", "--duration", "6s", "--linger", "90s"]);
    let (dir, addrs, prom) = (&fleet.dir, fleet.addrs.clone(), fleet.prom.clone());

    // Every instance is discovered and up.
    let up = wait_for("five instances up", Duration::from_secs(60), || {
        let got = http::get(&prom, "/-/ready").ok().filter(|r| r.status == 200).map(|_| query(&prom, "up == 1"))?;
        (got.len() == N).then_some(got)
    });
    let mut instances: Vec<String> =
        up.iter().map(|s| s["metric"]["instance"].as_str().unwrap_or_default().to_owned()).collect();
    instances.sort();
    let mut want = addrs.clone();
    want.sort();
    assert_eq!(instances, want);

    // The demos finish; their counts stop changing and stay served.
    let mut own_total = 0u64;
    for i in 0..N {
        let log = dir.path().join(format!("demo-{i}.log"));
        let writes = wait_for(&format!("demo {i}'s summary"), Duration::from_secs(60), || {
            common::summary_writes(&std::fs::read_to_string(&log).ok()?)
        });
        own_total += writes;
    }
    let own: Vec<f64> = addrs.iter().map(|a| own_sum(a, "checkpoint_writes_total")).collect();
    assert_eq!(own.iter().sum::<f64>(), own_total as f64, "each /metrics agrees with its summary");

    // Once Prometheus has scraped the final counts, the fleet aggregate (the
    // dashboard's "Total writes" panel with All) is their sum, exactly.
    let all = |expr: &str| expr.replace("$instance", ".*");
    let total_panel = r#"sum(checkpoint_writes_total{instance=~"$instance"})"#;
    wait_for("the final counts scraped", Duration::from_secs(30), || {
        (scalar(&prom, &all(total_panel)) == Some(own_total as f64)).then_some(())
    });
    // ... and one instance picked in the variable shows that instance's own.
    for (addr, own) in addrs.iter().zip(&own) {
        let one = total_panel.replace("$instance", &addr.replace('.', "\\\\."));
        assert_eq!(scalar(&prom, &one), Some(*own), "{addr}");
        assert_eq!(scalar(&prom, &format!("up{{instance=\"{addr}\"}}")), Some(1.0), "{addr} still up");
    }
    // Histogram buckets summed by `le` across instances are the sum of
    // each instance's own buckets (what fleet quantiles are computed from).
    let own_inf: f64 = addrs
        .iter()
        .map(|a| {
            let r = http::get(a, "/metrics").unwrap();
            r.body
                .lines()
                .filter(|l| l.starts_with("checkpoint_write_duration_seconds_bucket{") && l.contains(r#"le="+Inf""#))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        })
        .sum();
    assert_eq!(own_inf, own_total as f64);
    let fleet_inf = scalar(
        &prom,
        &all(r#"sum by (le) (checkpoint_write_duration_seconds_bucket{instance=~"$instance",le="+Inf"})"#),
    );
    assert_eq!(fleet_inf, Some(own_total as f64));
    let p99 = scalar(
        &prom,
        &all(
            r#"histogram_quantile(0.99, sum by (le) (checkpoint_write_duration_seconds_bucket{instance=~"$instance"}))"#,
        ),
    );
    assert!(p99.is_some_and(|v| v.is_finite() && v > 0.0), "a fleet P99 from summed buckets: {p99:?}");
}

/// Stopping the fleet is bounded: a demo that ignores SIGTERM is killed
/// after `FLEET_STOP_GRACE`, and the script exits leaving no process
/// behind (the signal goes to the script alone, not to its group).
#[test]
fn a_demo_that_ignores_sigterm_is_killed_when_the_fleet_stops() {
    require("prometheus", "prometheus");
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("stubborn.pid");
    let stubborn = dir.path().join("stubborn-demo.sh");
    std::fs::write(&stubborn, "#!/bin/bash\ntrap '' TERM\necho $$ > \"$STUBBORN_PID\"\nexec sleep 300\n").unwrap();
    let executable = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&stubborn, executable).unwrap();
    let mut group = ChildGuard::new();
    let script = group.spawn_group(
        "run-fleet.sh",
        Command::new("bash")
            .arg(format!("{ROOT}/deploy/run-fleet.sh"))
            .arg("1")
            .env("HOTMETER_DEMO", &stubborn)
            .env("STUBBORN_PID", &pid_file)
            .env("HOTMETER_FLEET_DIR", dir.path())
            .env("FLEET_PROMETHEUS", free_addr())
            .env("FLEET_PORTS", free_port().to_string())
            .env("FLEET_STOP_GRACE", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let pid: i32 = wait_for("the stubborn demo", Duration::from_secs(20), || {
        std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
    });
    let alive = |pid: i32| {
        Command::new("kill").args(["-0", &pid.to_string()]).stderr(Stdio::null()).status().unwrap().success()
    };
    assert!(alive(pid));
    std::thread::sleep(Duration::from_secs(1));
    let status = Command::new("kill").args(["-TERM", &script.id().to_string()]).status().unwrap();
    assert!(status.success());
    wait_for("the script to exit", Duration::from_secs(10), || script.try_wait().unwrap());
    assert!(!alive(pid), "the demo that ignored SIGTERM outlived the fleet");
}

/// A fleet on one database (issue #25): `run-fleet.sh 3 --store
/// postgres://...` runs three demos into one throwaway PostgreSQL. Its
/// rows equal the sum of the instances' own successful-write counters, each
/// instance's rows are its own (`--writer-id demo-I`), and the fleet's
/// Prometheus sees all three on the `postgres` backend.
#[test]
fn three_instances_share_one_postgres() {
    const SHARED: usize = 3;
    let pg = hotmeter_testkit::Postgres::start();
    let url = pg.url();
    let fleet = Fleet::start(
        SHARED,
        &["--rate", "100", "--workers", "2", "--duration", "5s", "--linger", "60s", "--store", &url],
    );
    let (dir, addrs, prom) = (&fleet.dir, fleet.addrs.clone(), fleet.prom.clone());
    // Each demo finishes with its own accounting checked ("all accounted
    // for": its rows, by writer id, are its successful writes).
    for i in 0..SHARED {
        let log = dir.path().join(format!("demo-{i}.log"));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let text = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("write latency") {
                break text;
            }
            assert!(std::time::Instant::now() < deadline, "no summary from demo {i}:\n{text}");
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(text.contains("all accounted for") && text.contains("postgres://"), "{text}");
    }
    let own: Vec<f64> = addrs.iter().map(|a| own_sum(a, "checkpoint_writes_total{status=\"success\"}")).collect();
    let rows: f64 = pg.psql("SELECT COUNT(*) FROM checkpoints").trim().parse().unwrap();
    assert!(own.iter().all(|&n| n > 0.0), "{own:?}");
    assert_eq!(rows, own.iter().sum::<f64>(), "the shared table holds the fleet's successful writes");
    for (i, n) in own.iter().enumerate() {
        let mine: f64 = pg
            .psql(&format!("SELECT COUNT(*) FROM checkpoints WHERE thread_id LIKE 'demo-{i}/worker-%'"))
            .trim()
            .parse()
            .unwrap();
        assert_eq!(mine, *n, "demo-{i}'s rows are its own");
    }
    // Prometheus sees the fleet on PostgreSQL, each instance and the total.
    wait_for("the final counts scraped", Duration::from_secs(30), || {
        let on_pg = scalar(&prom, r#"count(checkpoint_store_info{backend="postgres"} == 1)"#)?;
        let total = scalar(&prom, r#"sum(checkpoint_writes_total{status="success"})"#)?;
        (on_pg == SHARED as f64 && total == rows).then_some(())
    });
}
