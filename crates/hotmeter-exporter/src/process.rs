//! Standard process metrics from Linux `/proc`, as an opt-in collector.
//!
//! Owns: reading `/proc/self/{stat,fd,limits}` and `/proc/stat` at scrape
//! time into `process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds` and
//! `process_start_time_seconds`, the names every Prometheus client library
//! uses. Must not: run on a recording thread (it runs in a collect-on-scrape
//! callback). On other systems, or when `/proc` cannot be read, the gauges
//! keep their last values and nothing fails.

use hotmeter::{FloatCounter, Gauge, Registry, RegistryError};

/// Clock ticks per second of `/proc` CPU times: `USER_HZ`, 100 on every
/// Linux architecture Rust supports.
const TICKS_PER_SECOND: f64 = 100.0;
/// Page size used for `rss` in `/proc/self/stat`: 4 KiB on x86_64 and the
/// common aarch64 kernels.
const PAGE_SIZE: f64 = 4096.0;

/// Registers the process metrics in `registry` and refreshes them at every
/// scrape. In a registry with a namespace they are prefixed like every
/// other metric (as client_golang's process collector does with its
/// namespace option); use an un-namespaced registry for the bare names.
///
/// ```
/// let registry = hotmeter::Registry::new();
/// hotmeter_exporter::register_process_metrics(&registry)?;
/// let snap = registry.snapshot();
/// # #[cfg(target_os = "linux")]
/// assert!(matches!(
///     snap.value("process_open_fds", &[]),
///     Some(hotmeter::OwnedValue::Gauge(n)) if *n > 0.0
/// ));
/// # Ok::<(), hotmeter::RegistryError>(())
/// ```
pub fn register_process_metrics(registry: &Registry) -> Result<(), RegistryError> {
    let cpu = registry.register(
        hotmeter::Opts::new("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.")
            .unit(hotmeter::Unit::SECONDS),
        FloatCounter::new(),
    )?;
    let rss = registry.gauge("process_resident_memory_bytes", "Resident memory size in bytes.")?;
    let vsize = registry.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.")?;
    let open_fds = registry.gauge("process_open_fds", "Number of open file descriptors.")?;
    let max_fds = registry.gauge("process_max_fds", "Maximum number of open file descriptors.")?;
    let start =
        registry.gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.")?;
    let metrics = ProcessMetrics { cpu, rss, vsize, open_fds, max_fds, start };
    metrics.refresh();
    registry.on_collect(move || metrics.refresh());
    Ok(())
}

struct ProcessMetrics {
    cpu: FloatCounter,
    rss: Gauge,
    vsize: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
    start: Gauge,
}

impl ProcessMetrics {
    fn refresh(&self) {
        if let Some(stat) = std::fs::read_to_string("/proc/self/stat").ok().and_then(|s| parse_stat(&s)) {
            self.cpu.set_max((stat.utime + stat.stime) as f64 / TICKS_PER_SECOND);
            self.vsize.set(stat.vsize as f64);
            self.rss.set(stat.rss as f64 * PAGE_SIZE);
            if let Some(boot) = std::fs::read_to_string("/proc/stat").ok().and_then(|s| boot_time(&s)) {
                self.start.set(boot as f64 + stat.starttime as f64 / TICKS_PER_SECOND);
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            // The directory handle itself is one of the entries.
            self.open_fds.set(dir.count().saturating_sub(1) as f64);
        }
        if let Some(max) = std::fs::read_to_string("/proc/self/limits").ok().and_then(|s| max_open_files(&s)) {
            self.max_fds.set(max);
        }
    }
}

#[derive(Debug, PartialEq)]
struct Stat {
    utime: u64,
    stime: u64,
    starttime: u64,
    vsize: u64,
    rss: u64,
}

/// Fields of `/proc/self/stat` after the command name (which may contain
/// spaces and parentheses, so split after the last `)`).
fn parse_stat(s: &str) -> Option<Stat> {
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); field n is f[n - 3].
    let num = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    Some(Stat { utime: num(14)?, stime: num(15)?, starttime: num(22)?, vsize: num(23)?, rss: num(24)? })
}

fn boot_time(s: &str) -> Option<u64> {
    s.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

fn max_open_files(s: &str) -> Option<f64> {
    let line = s.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    if soft == "unlimited" { Some(f64::INFINITY) } else { soft.parse().ok() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let line = "1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 9000 123456789 2048 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat { utime: 250, stime: 50, starttime: 9000, vsize: 123456789, rss: 2048 })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn parses_limits_and_boot_time() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 1048576              files\n";
        assert_eq!(max_open_files(limits), Some(1024.0));
        assert_eq!(boot_time("cpu 1 2\nbtime 1700000000\n"), Some(1_700_000_000));
    }
}
