//! Debian's Prometheus, Pushgateway and Alertmanager, each started on a
//! loopback port with its files in a folder of its own and returned once
//! it answers `/-/ready`.
//!
//! Owns: the command lines (config file, storage folder, listen address,
//! feature flags), the readiness wait, and the processes' lifetimes (each
//! killed when its handle drops). Must not: skip when a binary is
//! missing: it fails naming the package (the test command installs them).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::{ChildGuard, free_addr, http, require, wait_for};

/// How long a launched server may take to answer `/-/ready`.
const READY_LIMIT: Duration = Duration::from_secs(60);

/// Waits (at most `limit`) until `GET {addr}/-/ready` answers 200.
fn wait_ready(name: &str, addr: &str, limit: Duration) {
    wait_for(&format!("{name} ready"), limit, || http::is_ok(addr, "/-/ready").then_some(()));
}

/// A log file in `dir`, appended to (a restarted server adds to it).
fn log_file(dir: &Path, name: &str) -> File {
    File::options().create(true).append(true).open(dir.join(format!("{name}.log"))).unwrap()
}

/// A running Prometheus, killed (and reaped) on drop; start one with
/// [`Prometheus::builder`].
#[derive(Debug)]
pub struct Prometheus {
    addr: String,
    _process: ChildGuard,
    /// The folder of its files when the builder was given none; removed
    /// after the process.
    _dir: Option<TempDir>,
}

impl Prometheus {
    /// A Prometheus named `name` (in messages and file names): by default
    /// no scrape targets (`scrape_interval: 1m`), a free loopback port, and
    /// its files in a temporary folder of its own.
    pub fn builder(name: &str) -> PrometheusBuilder {
        PrometheusBuilder {
            name: name.to_owned(),
            config: "global:\n  scrape_interval: 1m\n".to_owned(),
            features: Vec::new(),
            flags: Vec::new(),
            dir: None,
            addr: None,
        }
    }

    /// Its `host:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }
}

/// How to start a [`Prometheus`].
#[derive(Debug, Clone)]
pub struct PrometheusBuilder {
    name: String,
    config: String,
    features: Vec<String>,
    flags: Vec<String>,
    dir: Option<PathBuf>,
    addr: Option<String>,
}

impl PrometheusBuilder {
    /// The whole configuration file (YAML), instead of the default.
    pub fn config(mut self, yaml: impl Into<String>) -> Self {
        self.config = yaml.into();
        self
    }

    /// A configuration that scrapes `target` as job `job` every second.
    pub fn scrape(self, job: &str, target: &str) -> Self {
        self.config(format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
        ))
    }

    /// `--web.enable-remote-write-receiver`: takes remote_write at `/api/v1/write`.
    pub fn remote_write_receiver(self) -> Self {
        self.flag("--web.enable-remote-write-receiver")
    }

    /// Adds `feature` to the one `--enable-feature=` flag
    /// (`native-histograms`, `exemplar-storage`, ...).
    pub fn feature(mut self, feature: &str) -> Self {
        self.features.push(feature.to_owned());
        self
    }

    /// Any other flag, as written (`--storage.tsdb.retention.time=7d`).
    pub fn flag(mut self, flag: &str) -> Self {
        self.flags.push(flag.to_owned());
        self
    }

    /// Keeps its files in `dir` (kept after the process ends, so a second
    /// Prometheus of the same name restarts on the same data):
    /// `{name}.yml`, `{name}-data/`, `{name}.log`.
    pub fn dir(mut self, dir: &Path) -> Self {
        self.dir = Some(dir.to_owned());
        self
    }

    /// Listens on `addr` (`host:port`) instead of a free loopback port.
    pub fn listen(mut self, addr: &str) -> Self {
        self.addr = Some(addr.to_owned());
        self
    }

    /// Starts Debian's `prometheus` and waits (at most 60 s) until it is
    /// ready; fails when it is not installed.
    pub fn start(self) -> Prometheus {
        require("prometheus", "prometheus");
        let owned = if self.dir.is_none() { Some(tempfile::tempdir().unwrap()) } else { None };
        let dir = self.dir.clone().unwrap_or_else(|| owned.as_ref().unwrap().path().to_owned());
        let name = &self.name;
        let addr = self.addr.clone().unwrap_or_else(free_addr);
        let config = dir.join(format!("{name}.yml"));
        std::fs::write(&config, &self.config).unwrap();
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join(format!("{name}-data")).display()))
            .args(&self.flags);
        if !self.features.is_empty() {
            cmd.arg(format!("--enable-feature={}", self.features.join(",")));
        }
        cmd.arg(format!("--web.listen-address={addr}")).stdout(Stdio::null()).stderr(log_file(&dir, name));
        let mut process = ChildGuard::new();
        process.spawn(name, &mut cmd);
        wait_ready(name, &addr, READY_LIMIT);
        Prometheus { addr, _process: process, _dir: owned }
    }
}

/// A running `prometheus-pushgateway` on a free loopback port, killed on drop.
#[derive(Debug)]
pub struct Pushgateway {
    addr: String,
    _process: ChildGuard,
}

impl Pushgateway {
    /// Starts Debian's `prometheus-pushgateway` and waits (at most 30 s)
    /// until it is ready; fails when it is not installed.
    pub fn start() -> Pushgateway {
        require("prometheus-pushgateway", "prometheus-pushgateway");
        let addr = free_addr();
        let mut process = ChildGuard::new();
        process.spawn(
            "pushgateway",
            Command::new("prometheus-pushgateway")
                .arg(format!("--web.listen-address={addr}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        wait_ready("the Pushgateway", &addr, Duration::from_secs(30));
        Pushgateway { addr, _process: process }
    }

    /// Its `host:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }
}

/// A running `prometheus-alertmanager` on a free loopback port, with
/// clustering off and its files in a temporary folder; killed on drop.
#[derive(Debug)]
pub struct Alertmanager {
    addr: String,
    _process: ChildGuard,
    _dir: TempDir,
}

impl Alertmanager {
    /// Starts Debian's `prometheus-alertmanager` with the configuration
    /// `yaml` and waits (at most 60 s) until it is ready; fails when it is
    /// not installed.
    pub fn start(yaml: &str) -> Alertmanager {
        require("prometheus-alertmanager", "prometheus-alertmanager");
        let dir = tempfile::tempdir().unwrap();
        let addr = free_addr();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, yaml).unwrap();
        let mut process = ChildGuard::new();
        process.spawn(
            "alertmanager",
            Command::new("prometheus-alertmanager")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.path={}", dir.path().join("data").display()))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--cluster.listen-address=")
                .stdout(Stdio::null())
                .stderr(log_file(dir.path(), "alertmanager")),
        );
        wait_ready("alertmanager", &addr, READY_LIMIT);
        Alertmanager { addr, _process: process, _dir: dir }
    }

    /// Its `host:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }
}
