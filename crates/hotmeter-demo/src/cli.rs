//! Command-line options: parsing, validation, and the help text (clap).
//!
//! Owns: every option's name, default and range, declared once on the clap
//! structs below, and the conversion into the [`Options`] the demo runs
//! with. Must not: start anything.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand};
use hotmeter_checkpoint::Durability;

use crate::store::StoreSpec;
use hotmeter_checkpoint::decision::{Deployment, MigrationThresholds, PrometheusSource, ScaleThresholds};

/// Everything `hotmeter-demo` can be told.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Options {
    pub(crate) rate: f64,
    pub(crate) workers: usize,
    pub(crate) duration: Option<Duration>,
    pub(crate) db: PathBuf,
    /// Where checkpoints go: `--store`, or the SQLite file `--db`.
    pub(crate) store: StoreSpec,
    pub(crate) error_rate: f64,
    pub(crate) listen: SocketAddr,
    pub(crate) namespace: Option<String>,
    pub(crate) sync: Durability,
    /// Memory spaces added to the three built-in ones (each takes a tenth
    /// as much traffic as the busiest).
    pub(crate) extra_spaces: Vec<String>,
    /// A file holding the bearer token every route but /healthz requires.
    pub(crate) bearer_token_file: Option<PathBuf>,
    /// How often the running demo logs a migration decision (None: never).
    pub(crate) decide_every: Option<Duration>,
    pub(crate) decision_log: PathBuf,
    pub(crate) deployment: Deployment,
    pub(crate) thresholds: MigrationThresholds,
    /// The PostgreSQL store's decision thresholds (scale out or not).
    pub(crate) scale_thresholds: ScaleThresholds,
    /// Push every snapshot to this remote_write receiver (None: only serve).
    pub(crate) remote_write: Option<String>,
    pub(crate) remote_write_interval: Duration,
    /// Export every snapshot to this OTLP/HTTP receiver (None: none).
    pub(crate) otlp: Option<String>,
    pub(crate) otlp_interval: Duration,
    /// The `job` external label of pushed series.
    pub(crate) job: String,
    /// The `instance` external label (None: the address the exporter serves on).
    pub(crate) instance: Option<String>,
    /// Keep serving /metrics this long after the summary (final counts stay scrapeable).
    pub(crate) linger: Option<Duration>,
    /// Churning memory spaces: how many appear per second (None: none).
    pub(crate) tenant_churn: Option<f64>,
    /// Retire memory spaces idle this long (None: only churning ones, at once).
    pub(crate) idle_timeout: Option<Duration>,
    /// How long a retired space's series stay in /metrics with their final values.
    pub(crate) retired_linger: Duration,
    /// Names this demo's checkpoint threads `ID/worker-N` (None: `worker-N`).
    pub(crate) writer_id: Option<String>,
    /// The PostgreSQL store a migration moves the SQLite checkpoints to.
    pub(crate) migrate_to: Option<StoreSpec>,
    /// Start that migration when a periodic decision says MIGRATE NOW.
    pub(crate) migrate_on_decision: bool,
}

/// Everything `hotmeter-demo migrate` can be told.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MigrateOptions {
    /// The SQLite file.
    pub(crate) from: PathBuf,
    /// The PostgreSQL store.
    pub(crate) to: StoreSpec,
    pub(crate) batch_rows: usize,
    /// Serve the progress metrics here (None: do not serve).
    pub(crate) listen: Option<SocketAddr>,
}

/// `hotmeter-demo decide`: where the inputs come from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Source {
    /// Run the pipeline for `window` and decide from its own counters.
    InProcess,
    /// Ask the Prometheus server at this URL.
    Prometheus(String),
}

/// Everything `hotmeter-demo decide` can be told.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DecideOptions {
    pub(crate) run: Options,
    pub(crate) source: Source,
    /// In process: how long to run; Prometheus: the rate window.
    pub(crate) window: Duration,
}

/// What the command line asks for (`--help` is answered by clap).
#[derive(Debug, PartialEq)]
pub(crate) enum Command {
    Run(Options),
    Decide(DecideOptions),
    Migrate(MigrateOptions),
    /// Print the Prometheus rules generated from the demo's SLOs.
    SloRules,
}

const ABOUT: &str = "\
hotmeter-demo: an instrumented streaming pipeline you can run and watch.

A synthetic generator submits observations for three memory spaces; a worker
pool processes them in adaptive batches and writes one checkpoint per batch to
a SQLite file; hotmeter serves every metric to Prometheus while a status line
shows writes/s, error %, P99 write latency, queue depth and backpressure.";

const AFTER_HELP: &str = "\
Stop with Ctrl-C (or --duration): submission stops, queued work is drained,
and a summary is printed. While it runs, open /dashboard on the same address
in a browser for live panels; GET /slos returns the SLO report and /decision
the latest migration decision as JSON.";

const DECIDE_ABOUT: &str = "\
Measure checkpoint writes and decide whether a single SQLite file is still
enough (MIGRATE NOW / PLAN MIGRATION / SQLITE SUFFICIENT); with --store
postgres://..., whether one PostgreSQL server is (SCALE OUT NOW / PLAN
SCALE-OUT / POSTGRESQL SUFFICIENT, from errors, p99 write latency and pool use)";

const DECIDE_AFTER_HELP: &str = "\
Prints the measured inputs and the decision, and appends it to the decision log.
Exits 0 with a decision, 1 when the inputs cannot be had (a Prometheus that is
down, slow or without data is an error, never a silent \"sufficient\"), 2 on bad options.";

const MIGRATE_ABOUT: &str = "\
Copy every checkpoint of a SQLite file into PostgreSQL, in batches of one
transaction each, then verify the copy by count and SHA-256 checksum";

const MIGRATE_AFTER_HELP: &str = "\
Writers may keep writing to the file meanwhile: the copy takes what is there,
and running it again copies only what came since. Killed at any point (even
kill -9), it resumes where the last committed batch ended; no row is copied
twice. To move writers for good, stop them, run migrate once more, and start
them with --store postgres://... (or let a running demo do it all with
--migrate-to URL --migrate-on-decision). Exits 0 when the copy is verified,
1 on an error or a mismatch, 2 on bad options.";

#[derive(Debug, Parser)]
#[command(name = "hotmeter-demo", about = ABOUT, after_help = AFTER_HELP, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Measure and print the migration decision (see `decide --help`)
    #[command(long_about = DECIDE_ABOUT, after_help = DECIDE_AFTER_HELP)]
    Decide(Box<DecideArgs>),
    /// Copy a SQLite checkpoint file into PostgreSQL, resumably, and verify it (see `migrate --help`)
    #[command(long_about = MIGRATE_ABOUT, after_help = MIGRATE_AFTER_HELP)]
    Migrate(MigrateArgs),
    /// Print the Prometheus rules generated from the demo's SLOs (the source of alerts/slo.yml)
    SloRules,
}

pub(crate) const DEFAULT_RATE: f64 = 50.0;
pub(crate) const DEFAULT_WORKERS: usize = 4;

fn default_db() -> PathBuf {
    std::env::temp_dir().join("hotmeter-demo.db")
}

fn default_decision_log() -> PathBuf {
    std::env::temp_dir().join("hotmeter-decisions.jsonl")
}

/// The pipeline's options, shared by the main job and `decide`.
#[derive(Debug, Args)]
struct RunArgs {
    /// Observations per second to generate, 0.1 to 1000000
    #[arg(long, value_name = "N", default_value_t = DEFAULT_RATE, allow_negative_numbers = true, value_parser = rate)]
    rate: f64,
    /// Worker threads, 1 to 256
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WORKERS, allow_negative_numbers = true, value_parser = workers)]
    workers: usize,
    /// Stop after TIME: seconds, or a number with s, m or h (default: run until Ctrl-C)
    #[arg(long, value_name = "TIME", allow_negative_numbers = true, value_parser = positive_duration)]
    duration: Option<Duration>,
    /// SQLite checkpoint file, created if missing
    #[arg(long, value_name = "PATH", default_value_os_t = default_db(), value_parser = file_path)]
    db: PathBuf,
    /// Checkpoint store: sqlite:PATH, or postgres://USER@HOST:PORT/DB (default: the SQLite file --db)
    // Checked in `into_options`, not by a value parser: clap would repeat a
    // refused value, password included, in its message.
    #[arg(long, value_name = "SPEC", conflicts_with = "db")]
    store: Option<String>,
    /// Fraction of checkpoint writes to fail on purpose, 0 to 1, to test alerts
    #[arg(long, value_name = "R", default_value_t = 0.0, allow_negative_numbers = true, value_parser = fraction)]
    error_rate: f64,
    /// Where to serve /metrics, IP:PORT; port 0 picks a free one
    #[arg(long, value_name = "ADDR", default_value = hotmeter_exporter::DEFAULT_LISTEN, value_parser = listen_addr)]
    listen: SocketAddr,
    /// Prefix every metric name with NAME_, e.g. engram (default: none)
    #[arg(long, value_name = "NAME", value_parser = namespace)]
    namespace: Option<String>,
    /// SQLite commit durability: full (fsync every commit) or normal
    #[arg(long, value_name = "MODE", default_value = "full", value_parser = sync_mode)]
    sync: Durability,
    /// Add a memory space (tenant) named NAME to the three built-in ones; repeatable
    #[arg(long = "memory-space", value_name = "NAME", value_parser = space_name)]
    extra_spaces: Vec<String>,
    /// Require `Authorization: Bearer <token>` on every route but /healthz, the token read from PATH
    #[arg(long, value_name = "PATH", value_parser = file_path)]
    bearer_token_file: Option<PathBuf>,
    #[command(flatten)]
    decision: DecisionArgs,
    #[command(flatten)]
    push: PushArgs,
    #[command(flatten)]
    churn: ChurnArgs,
    #[command(flatten)]
    migration: MigrationArgs,
}

/// Moving the checkpoints to PostgreSQL while the pipeline runs.
#[derive(Debug, Args)]
struct MigrationArgs {
    /// Name this demo's checkpoint threads ID/worker-N, so several demos can share one database
    /// (default: worker-N)
    #[arg(long, value_name = "ID", value_parser = writer_id)]
    writer_id: Option<String>,
    /// The PostgreSQL store to migrate the SQLite checkpoints to, postgres://USER@HOST:PORT/DB
    /// (with --migrate-on-decision; a file already migrated there starts on it)
    // Checked in `into_options`: clap would repeat a refused value.
    #[arg(long, value_name = "URL")]
    migrate_to: Option<String>,
    /// When a periodic decision says MIGRATE NOW, copy the checkpoints to --migrate-to while
    /// writing on, then switch the writers over (injected errors stop with SQLite)
    #[arg(long, requires = "migrate_to")]
    migrate_on_decision: bool,
}

/// `migrate`: the source, the target and how.
#[derive(Debug, Args)]
struct MigrateArgs {
    /// The SQLite file, sqlite:PATH
    #[arg(long, value_name = "SPEC")]
    from: String,
    /// The PostgreSQL store, postgres://USER@HOST:PORT/DB
    #[arg(long, value_name = "URL")]
    to: String,
    /// Rows per transaction, 1 to 100000
    #[arg(long, value_name = "N", default_value_t = hotmeter_checkpoint::DEFAULT_BATCH_ROWS, value_parser = batch_rows)]
    batch: usize,
    /// Serve the progress metrics on /metrics here, IP:PORT (default: none)
    #[arg(long, value_name = "ADDR", value_parser = listen_addr)]
    listen: Option<SocketAddr>,
}

/// Memory spaces that come and go.
#[derive(Debug, Args)]
struct ChurnArgs {
    /// Add RATE short-lived memory spaces (churn-1, churn-2, ...) per second; each takes traffic for
    /// 4/RATE s, then falls silent and is retired (default: none)
    #[arg(long, value_name = "RATE", value_parser = churn_rate)]
    tenant_churn: Option<f64>,
    /// Retire any memory space that received nothing for TIME (default: spaces live until retired)
    #[arg(long, value_name = "TIME", value_parser = positive_duration)]
    idle_timeout: Option<Duration>,
    /// Keep a retired memory space's series, with their final values, in /metrics for TIME after
    /// its last observation, so every scraper and --remote-write sees them
    #[arg(long, value_name = "TIME", default_value = "30s", value_parser = positive_duration)]
    retired_linger: Duration,
}

/// Pushing instead of (or beside) being scraped.
#[derive(Debug, Args)]
struct PushArgs {
    /// Also push every snapshot to this Prometheus remote_write receiver, e.g.
    /// http://127.0.0.1:9090/api/v1/write (default: none, only serve /metrics)
    #[arg(long, value_name = "URL", value_parser = remote_write_url)]
    remote_write: Option<String>,
    /// How often to push with --remote-write
    #[arg(long, value_name = "TIME", default_value = "15s", value_parser = positive_duration)]
    remote_write_interval: Duration,
    /// Also export to this OTLP/HTTP receiver (protobuf), the full path included, e.g.
    /// http://127.0.0.1:4318/v1/metrics; --job is the service.name, --instance the
    /// service.instance.id
    #[arg(long, value_name = "URL", value_parser = otlp_url)]
    otlp: Option<String>,
    /// How often to export with --otlp
    #[arg(long, value_name = "TIME", default_value = "15s", value_parser = positive_duration)]
    otlp_interval: Duration,
    /// The `job` label of pushed series
    #[arg(long, value_name = "NAME", default_value = "hotmeter-demo")]
    job: String,
    /// The `instance` label of pushed series (default: the address /metrics is served on)
    #[arg(long, value_name = "NAME")]
    instance: Option<String>,
    /// After the summary, keep serving /metrics for TIME so a last scrape sees the final counts
    /// (default: none; Ctrl-C ends it early)
    #[arg(long, value_name = "TIME", value_parser = positive_duration)]
    linger: Option<Duration>,
}

/// How often to decide; `None` never.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Every(Option<Duration>);

/// The migration decision's inputs and thresholds.
#[derive(Debug, Args)]
struct DecisionArgs {
    /// Log a migration decision this often, from the last 5 minutes; 0 turns it off
    #[arg(long, value_name = "TIME", default_value = "30s", value_parser = every)]
    decide_every: Every,
    /// Append decisions to this JSON-lines file
    #[arg(long, value_name = "PATH", default_value_os_t = default_decision_log(), value_parser = file_path)]
    decision_log: PathBuf,
    /// single-server or multi-server, an input of the decision
    #[arg(long, value_name = "KIND", default_value = "single-server", value_parser = deployment)]
    deployment: Deployment,
    /// Migrate now above P% failed writes
    #[arg(long, value_name = "P", default_value_t = MigrationThresholds::default().error_rate_percent(), allow_negative_numbers = true, value_parser = percent)]
    max_error_percent: f64,
    /// Migrate now above N writes/s
    #[arg(long, value_name = "N", default_value_t = MigrationThresholds::default().migrate_writes_per_second(), allow_negative_numbers = true, value_parser = writes_per_second)]
    migrate_writes: f64,
    /// Plan a migration above N writes/s (at most --migrate-writes)
    #[arg(long, value_name = "N", default_value_t = MigrationThresholds::default().plan_writes_per_second(), allow_negative_numbers = true, value_parser = writes_per_second)]
    plan_writes: f64,
    /// Plan a migration above B bytes of database
    #[arg(long, value_name = "B", default_value_t = MigrationThresholds::default().plan_file_size_bytes())]
    plan_file_size: u64,
    /// On PostgreSQL: scale out now above a p99 write of MS milliseconds
    #[arg(long, value_name = "MS", default_value_t = ScaleThresholds::default().scale_p99_seconds() * 1e3, allow_negative_numbers = true, value_parser = milliseconds)]
    scale_p99_ms: f64,
    /// On PostgreSQL: plan a scale-out above a p99 write of MS milliseconds (at most --scale-p99-ms)
    #[arg(long, value_name = "MS", default_value_t = ScaleThresholds::default().plan_p99_seconds() * 1e3, allow_negative_numbers = true, value_parser = milliseconds)]
    plan_scale_p99_ms: f64,
    /// On PostgreSQL: scale out now above this share of the connection pool busy, 0 to 1
    #[arg(long, value_name = "R", default_value_t = ScaleThresholds::default().scale_pool_busy(), allow_negative_numbers = true, value_parser = fraction)]
    scale_pool_busy: f64,
    /// On PostgreSQL: plan a scale-out above this share of the pool busy (at most --scale-pool-busy)
    #[arg(long, value_name = "R", default_value_t = ScaleThresholds::default().plan_pool_busy(), allow_negative_numbers = true, value_parser = fraction)]
    plan_scale_pool_busy: f64,
    /// On PostgreSQL: plan a scale-out above N writes/s
    #[arg(long, value_name = "N", default_value_t = ScaleThresholds::default().plan_writes_per_second(), allow_negative_numbers = true, value_parser = writes_per_second)]
    plan_scale_writes: f64,
}

/// `decide`: where the inputs come from, plus the pipeline's options.
#[derive(Debug, Args)]
struct DecideArgs {
    /// in-process: run the pipeline for --window and decide from its own counters (takes the
    /// pipeline options below); prometheus: ask a Prometheus server that scrapes the demo
    #[arg(long, value_name = "SOURCE", default_value = "in-process", value_parser = ["in-process", "prometheus"])]
    source: String,
    /// The Prometheus server, for --source prometheus
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:9090", value_parser = prometheus_url)]
    prometheus: String,
    /// In process: how long to measure (default 10s); prometheus: the rate window (default 5m)
    #[arg(long, value_name = "TIME", allow_negative_numbers = true, value_parser = window)]
    window: Option<Duration>,
    #[command(flatten)]
    run: RunArgs,
}

fn parse_duration(s: &str) -> Option<Duration> {
    let (num, unit) = match s.char_indices().last()? {
        (i, 's') => (&s[..i], 1.0),
        (i, 'm') => (&s[..i], 60.0),
        (i, 'h') => (&s[..i], 3600.0),
        _ => (s, 1.0),
    };
    let secs = num.parse::<f64>().ok()? * unit;
    (secs.is_finite() && secs > 0.0 && secs <= 30.0 * 86_400.0).then(|| Duration::from_secs_f64(secs))
}

fn number(value: &str, lo: f64, hi: f64, expected: &str) -> Result<f64, String> {
    value.parse::<f64>().ok().filter(|v| (lo..=hi).contains(v)).ok_or_else(|| format!("expected {expected}"))
}

fn rate(v: &str) -> Result<f64, String> {
    number(v, 0.1, 1_000_000.0, "a number from 0.1 to 1000000")
}

fn churn_rate(v: &str) -> Result<f64, String> {
    number(v, 0.01, 100.0, "a number of memory spaces per second from 0.01 to 100")
}

fn workers(v: &str) -> Result<usize, String> {
    v.parse().ok().filter(|w| (1..=256).contains(w)).ok_or_else(|| "expected a whole number from 1 to 256".into())
}

fn positive_duration(v: &str) -> Result<Duration, String> {
    parse_duration(v).ok_or_else(|| "expected a positive time such as 30, 30s, 5m or 1h (at most 30 days)".into())
}

fn window(v: &str) -> Result<Duration, String> {
    parse_duration(v).ok_or_else(|| "expected a time such as 10s or 5m".into())
}

fn every(v: &str) -> Result<Every, String> {
    if v == "0" {
        return Ok(Every(None));
    }
    parse_duration(v).map(|d| Every(Some(d))).ok_or_else(|| "expected a time such as 30s or 5m, or 0 for never".into())
}

fn file_path(v: &str) -> Result<PathBuf, String> {
    if v.is_empty() { Err("expected a file path".into()) } else { Ok(PathBuf::from(v)) }
}

fn fraction(v: &str) -> Result<f64, String> {
    number(v, 0.0, 1.0, "a fraction from 0 to 1, e.g. 0.05")
}

fn percent(v: &str) -> Result<f64, String> {
    number(v, 0.0, 100.0, "a percentage from 0 to 100")
}

fn milliseconds(v: &str) -> Result<f64, String> {
    number(v, 0.0, 3_600_000.0, "a number of milliseconds >= 0")
}

fn writes_per_second(v: &str) -> Result<f64, String> {
    number(v, 0.0, f64::MAX, "a number of writes per second >= 0")
}

fn listen_addr(v: &str) -> Result<SocketAddr, String> {
    v.parse().map_err(|_| format!("expected IP:PORT, e.g. {}", hotmeter_exporter::DEFAULT_LISTEN))
}

fn namespace(v: &str) -> Result<String, String> {
    let ok = v.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(v.to_owned())
    } else {
        Err("expected a metric name prefix: letters, digits and _, not starting with a digit".into())
    }
}

fn space_name(v: &str) -> Result<String, String> {
    if v.is_empty() || v.len() > hotmeter_streaming::MAX_SPACE_NAME || v.chars().any(char::is_control) {
        Err(format!("expected 1 to {} bytes without control characters", hotmeter_streaming::MAX_SPACE_NAME))
    } else {
        Ok(v.to_owned())
    }
}

fn writer_id(v: &str) -> Result<String, String> {
    if v.is_empty() || v.len() > 64 || v.chars().any(|c| c.is_control() || c == '/') {
        Err("expected 1 to 64 bytes without control characters or /".into())
    } else {
        Ok(v.to_owned())
    }
}

fn batch_rows(v: &str) -> Result<usize, String> {
    v.parse()
        .ok()
        .filter(|n| (1..=100_000).contains(n))
        .ok_or_else(|| "expected a whole number from 1 to 100000".into())
}

/// A store spec from the command line, refused without repeating it (it
/// may hold a password); `want` says which backend the option takes.
fn store_option(option: &str, v: &str, want: Option<&str>) -> Result<StoreSpec, clap::Error> {
    let refuse =
        |why: String| Cli::command().error(ErrorKind::ValueValidation, format!("invalid value for '{option}': {why}"));
    let spec = StoreSpec::parse(v).map_err(refuse)?;
    match want {
        Some(backend) if spec.backend() != backend => Err(refuse(format!("expected a {backend} store"))),
        _ => Ok(spec),
    }
}

fn sync_mode(v: &str) -> Result<Durability, String> {
    Durability::ALL.into_iter().find(|d| d.as_str() == v).ok_or_else(|| "expected full or normal".into())
}

fn deployment(v: &str) -> Result<Deployment, String> {
    v.parse().map_err(|_| "expected single-server or multi-server".into())
}

fn remote_write_url(v: &str) -> Result<String, String> {
    let ok = ["http://", "https://"].iter().any(|p| v.strip_prefix(p).is_some_and(|rest| !rest.is_empty()));
    if ok {
        Ok(v.to_owned())
    } else {
        Err("expected an http:// or https:// URL, e.g. http://127.0.0.1:9090/api/v1/write".into())
    }
}

fn otlp_url(v: &str) -> Result<String, String> {
    remote_write_url(v).map_err(|_| "expected an http:// or https:// URL, e.g. http://127.0.0.1:4318/v1/metrics".into())
}

fn prometheus_url(v: &str) -> Result<String, String> {
    PrometheusSource::new(v)
        .map(|_| v.to_owned())
        .map_err(|_| "expected an http:// URL with a port, e.g. http://127.0.0.1:9090".into())
}

impl RunArgs {
    fn into_options(self) -> Result<Options, clap::Error> {
        let store = match &self.store {
            Some(spec) => store_option("--store <SPEC>", spec, None)?,
            None => StoreSpec::Sqlite(self.db.clone()),
        };
        let migrate_to = match &self.migration.migrate_to {
            Some(url) => Some(store_option("--migrate-to <URL>", url, Some("postgres"))?),
            None => None,
        };
        if migrate_to.is_some() && store.backend() != "sqlite" {
            return Err(Cli::command().error(
                ErrorKind::ArgumentConflict,
                "--migrate-to moves a SQLite store's checkpoints: the store is already PostgreSQL",
            ));
        }
        let d = self.decision;
        let thresholds =
            MigrationThresholds::new(d.max_error_percent, d.migrate_writes, d.plan_writes, d.plan_file_size).map_err(
                |_| {
                    Cli::command().error(
                        ErrorKind::ValueValidation,
                        format!(
                            "invalid value '{}' for '--plan-writes <N>': expected at most --migrate-writes ({})",
                            d.plan_writes, d.migrate_writes
                        ),
                    )
                },
            )?;
        let scale_thresholds = ScaleThresholds::new(
            d.max_error_percent,
            d.scale_p99_ms / 1e3,
            d.plan_scale_p99_ms / 1e3,
            d.scale_pool_busy,
            d.plan_scale_pool_busy,
            d.plan_scale_writes,
        )
        .map_err(|_| {
            Cli::command().error(
                ErrorKind::ValueValidation,
                format!(
                    "a planning level above its scale-out level: --plan-scale-p99-ms {} (at most --scale-p99-ms {}), \
                     --plan-scale-pool-busy {} (at most --scale-pool-busy {})",
                    d.plan_scale_p99_ms, d.scale_p99_ms, d.plan_scale_pool_busy, d.scale_pool_busy
                ),
            )
        })?;
        Ok(Options {
            rate: self.rate,
            workers: self.workers,
            duration: self.duration,
            store,
            db: self.db,
            error_rate: self.error_rate,
            listen: self.listen,
            namespace: self.namespace,
            sync: self.sync,
            extra_spaces: self.extra_spaces,
            bearer_token_file: self.bearer_token_file,
            decide_every: d.decide_every.0,
            decision_log: d.decision_log,
            deployment: d.deployment,
            thresholds,
            scale_thresholds,
            remote_write: self.push.remote_write,
            remote_write_interval: self.push.remote_write_interval,
            otlp: self.push.otlp,
            otlp_interval: self.push.otlp_interval,
            job: self.push.job,
            instance: self.push.instance,
            linger: self.push.linger,
            tenant_churn: self.churn.tenant_churn,
            idle_timeout: self.churn.idle_timeout,
            retired_linger: self.churn.retired_linger,
            writer_id: self.migration.writer_id,
            migrate_to,
            migrate_on_decision: self.migration.migrate_on_decision,
        })
    }
}

/// Parses the arguments after the program name. `--help` comes back as
/// an error whose [`clap::Error::use_stderr`] is false: print it and exit 0.
pub(crate) fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, clap::Error> {
    let cli = Cli::try_parse_from(std::iter::once(OsString::from("hotmeter-demo")).chain(args))?;
    match cli.command {
        None => Ok(Command::Run(cli.run.into_options()?)),
        Some(Sub::SloRules) => Ok(Command::SloRules),
        Some(Sub::Decide(d)) => {
            let source = if d.source == "prometheus" { Source::Prometheus(d.prometheus) } else { Source::InProcess };
            let window = d.window.unwrap_or(match source {
                Source::InProcess => Duration::from_secs(10),
                Source::Prometheus(_) => Duration::from_secs(300),
            });
            Ok(Command::Decide(DecideOptions { run: d.run.into_options()?, source, window }))
        }
        Some(Sub::Migrate(m)) => {
            let from = match StoreSpec::parse(&m.from) {
                Ok(StoreSpec::Sqlite(path)) => path,
                _ => {
                    return Err(Cli::command()
                        .error(ErrorKind::ValueValidation, "invalid value for '--from <SPEC>': expected sqlite:PATH"));
                }
            };
            let to = store_option("--to <URL>", &m.to, Some("postgres"))?;
            Ok(Command::Migrate(MigrateOptions { from, to, batch_rows: m.batch, listen: m.listen }))
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::error::ContextKind;

    use super::*;

    fn run(args: &[&str]) -> Result<Command, clap::Error> {
        parse(args.iter().map(OsString::from))
    }

    /// The option a parse error names (`--rate` of `--rate <N>`).
    fn bad_option(e: &clap::Error) -> Option<String> {
        let arg = e.get(ContextKind::InvalidArg)?.to_string();
        Some(arg.split_whitespace().next()?.to_owned())
    }

    fn options(args: &[&str]) -> Options {
        match run(args) {
            Ok(Command::Run(o)) => o,
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    #[test]
    fn defaults_and_every_option() {
        let d = options(&[]);
        assert_eq!((d.rate, d.workers, d.duration, d.error_rate), (50.0, 4, None, 0.0));
        assert_eq!(d.db, std::env::temp_dir().join("hotmeter-demo.db"));
        assert_eq!(d.listen, hotmeter_exporter::DEFAULT_LISTEN.parse().unwrap());
        assert_eq!((d.namespace, d.sync), (None, Durability::Full));
        assert_eq!((d.extra_spaces.len(), d.bearer_token_file), (0, None));
        let o = options(&["--memory-space", "<img src=x>", "--memory-space=b", "--bearer-token-file", "/tmp/t"]);
        assert_eq!(o.extra_spaces, ["<img src=x>", "b"]);
        assert_eq!(o.bearer_token_file, Some(PathBuf::from("/tmp/t")));
        assert_eq!(d.decide_every, Some(Duration::from_secs(30)));
        assert_eq!(d.decision_log, std::env::temp_dir().join("hotmeter-decisions.jsonl"));
        assert_eq!((d.deployment, d.thresholds), (Deployment::SingleServer, MigrationThresholds::default()));
        let o = options(&[
            "--rate",
            "120.5",
            "--workers=8",
            "--duration",
            "2m",
            "--db",
            "/tmp/x.db",
            "--error-rate",
            "0.05",
            "--listen",
            "127.0.0.1:0",
            "--namespace",
            "engram",
            "--sync",
            "normal",
        ]);
        assert_eq!(o.rate, 120.5);
        assert_eq!(o.workers, 8);
        assert_eq!(o.duration, Some(Duration::from_secs(120)));
        assert_eq!(o.db, PathBuf::from("/tmp/x.db"));
        assert_eq!(o.error_rate, 0.05);
        assert_eq!(o.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(o.namespace.as_deref(), Some("engram"));
        assert_eq!(o.sync, Durability::Normal);
        assert_eq!(options(&["--duration", "1.5"]).duration, Some(Duration::from_millis(1500)));
        assert_eq!((d.remote_write, d.remote_write_interval), (None, Duration::from_secs(15)));
        assert_eq!((d.otlp.clone(), d.otlp_interval), (None, Duration::from_secs(15)));
        let otlp = options(&["--otlp", "http://127.0.0.1:4318/v1/metrics", "--otlp-interval", "0.5"]);
        assert_eq!(
            (otlp.otlp.as_deref(), otlp.otlp_interval),
            (Some("http://127.0.0.1:4318/v1/metrics"), Duration::from_millis(500))
        );
        assert_eq!((d.job.as_str(), d.instance, d.linger), ("hotmeter-demo", None, None));
        let p = options(&[
            "--remote-write",
            "http://127.0.0.1:9090/api/v1/write",
            "--remote-write-interval",
            "2s",
            "--job",
            "fleet",
            "--instance",
            "a:1",
            "--linger",
            "1m",
        ]);
        assert_eq!(p.remote_write.as_deref(), Some("http://127.0.0.1:9090/api/v1/write"));
        assert_eq!((p.remote_write_interval, p.linger), (Duration::from_secs(2), Some(Duration::from_secs(60))));
        assert_eq!((p.job.as_str(), p.instance.as_deref()), ("fleet", Some("a:1")));
        assert_eq!((d.tenant_churn, d.idle_timeout, d.retired_linger), (None, None, Duration::from_secs(30)));
        let c = options(&["--tenant-churn", "2.5", "--idle-timeout", "3s", "--retired-linger", "1m"]);
        assert_eq!((c.tenant_churn, c.idle_timeout), (Some(2.5), Some(Duration::from_secs(3))));
        assert_eq!(c.retired_linger, Duration::from_secs(60));
        for bad in [&["--tenant-churn", "0"][..], &["--tenant-churn", "101"], &["--tenant-churn", "NaN"]] {
            assert_eq!(bad_option(&run(bad).unwrap_err()).as_deref(), Some("--tenant-churn"), "{bad:?}");
        }
        for bad in [&["--idle-timeout", "0"][..], &["--retired-linger", "-1s"]] {
            assert!(run(bad).is_err(), "{bad:?}");
        }
        for help in [&["--help"][..], &["--rate", "5", "-h"]] {
            let e = run(help).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::DisplayHelp, "{help:?}");
            assert!(!e.use_stderr());
        }
    }

    #[test]
    fn help_lists_every_option_with_its_default() {
        let help = Cli::command().render_help().to_string();
        for option in ["--rate", "--workers", "--duration", "--db", "--error-rate", "--listen", "--namespace", "--sync"]
        {
            let line = help.lines().find(|l| l.trim_start().starts_with(option)).unwrap_or_else(|| panic!("{option}"));
            assert!(line.contains("default"), "{option} has no default in: {line}");
        }
        assert!(help.contains("--error-rate <R>"), "{help}");
        assert!(help.contains(&format!("[default: {}]", hotmeter_exporter::DEFAULT_LISTEN)), "{help}");
    }

    #[test]
    fn bad_options_are_explained() {
        assert_eq!(run(&["--bogus"]).unwrap_err().kind(), ErrorKind::UnknownArgument);
        let e = run(&["--rate"]).unwrap_err();
        assert_eq!((e.kind(), bad_option(&e).as_deref()), (ErrorKind::InvalidValue, Some("--rate")));
        for (args, option) in [
            (&["--rate", "0"][..], "--rate"),
            (&["--rate", "NaN"], "--rate"),
            (&["--workers", "0"], "--workers"),
            (&["--duration", "-3"], "--duration"),
            (&["--duration", "5x"], "--duration"),
            (&["--error-rate", "1.5"], "--error-rate"),
            (&["--listen", "localhost"], "--listen"),
            (&["--namespace", "9bad"], "--namespace"),
            (&["--namespace", "bad-name"], "--namespace"),
            (&["--sync", "off"], "--sync"),
            (&["--memory-space", ""], "--memory-space"),
            (&["--memory-space", "a\nb"], "--memory-space"),
            (&["--remote-write", "127.0.0.1:9090"], "--remote-write"),
            (&["--remote-write", "http://"], "--remote-write"),
            (&["--remote-write-interval", "0"], "--remote-write-interval"),
            (&["--otlp", "127.0.0.1:4318"], "--otlp"),
            (&["--otlp-interval", "0"], "--otlp-interval"),
        ] {
            match run(args) {
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::ValueValidation, "{args:?}: {e}");
                    assert_eq!(bad_option(&e).as_deref(), Some(option), "{args:?}: {e}");
                }
                other => panic!("{args:?} gave {other:?}"),
            }
        }
        assert_eq!(run(&["--source", "prometheus"]).unwrap_err().kind(), ErrorKind::UnknownArgument, "decide-only");
        let e = run(&["--plan-writes", "200"]).unwrap_err();
        assert!(
            e.kind() == ErrorKind::ValueValidation && e.to_string().contains("--plan-writes"),
            "plan above migrate"
        );
    }

    #[test]
    fn scale_out_thresholds() {
        let Ok(Command::Run(o)) = run(&[]) else { panic!("parses") };
        assert_eq!(o.scale_thresholds, ScaleThresholds::default());
        let Ok(Command::Run(o)) = run(&[
            "--scale-p99-ms",
            "80",
            "--plan-scale-p99-ms",
            "30",
            "--scale-pool-busy",
            "0.95",
            "--plan-scale-writes",
            "500",
        ]) else {
            panic!("parses")
        };
        let t = o.scale_thresholds;
        assert_eq!((t.scale_p99_seconds(), t.plan_p99_seconds(), t.scale_pool_busy()), (0.08, 0.03, 0.95));
        assert_eq!((t.plan_pool_busy(), t.plan_writes_per_second()), (0.7, 500.0));
        assert_eq!(run(&["--plan-scale-p99-ms", "60"]).unwrap_err().kind(), ErrorKind::ValueValidation, "above 50");
        assert_eq!(run(&["--plan-scale-pool-busy", "0.95"]).unwrap_err().kind(), ErrorKind::ValueValidation);
        assert_eq!(run(&["--scale-pool-busy", "1.5"]).unwrap_err().kind(), ErrorKind::ValueValidation);
        assert_eq!(run(&["--scale-p99-ms", "-1"]).unwrap_err().kind(), ErrorKind::ValueValidation);
    }

    #[test]
    fn decide_subcommand() {
        let Ok(Command::Decide(d)) = run(&["decide"]) else { panic!("decide parses") };
        assert_eq!((d.source, d.window), (Source::InProcess, Duration::from_secs(10)));
        let Ok(Command::Decide(d)) = run(&[
            "decide",
            "--source",
            "prometheus",
            "--prometheus",
            "http://127.0.0.1:9091",
            "--deployment",
            "multi-server",
            "--max-error-percent",
            "2",
            "--window",
            "1m",
        ]) else {
            panic!("decide parses")
        };
        assert_eq!(d.source, Source::Prometheus("http://127.0.0.1:9091".into()));
        assert_eq!(d.window, Duration::from_secs(60));
        assert_eq!(d.run.deployment, Deployment::MultiServer);
        assert_eq!(d.run.thresholds.error_rate_percent(), 2.0);
        let Ok(Command::Decide(d)) = run(&["decide", "--source", "prometheus"]) else { panic!("decide parses") };
        assert_eq!(d.window, Duration::from_secs(300));
        assert_eq!(run(&["decide", "--help"]).unwrap_err().kind(), ErrorKind::DisplayHelp);
        let e = run(&["decide", "--source", "psychic"]).unwrap_err();
        assert_eq!((e.kind(), bad_option(&e).as_deref()), (ErrorKind::InvalidValue, Some("--source")));
        let e = run(&["decide", "--prometheus", "localhost"]).unwrap_err();
        assert_eq!(bad_option(&e).as_deref(), Some("--prometheus"));
        let help = Cli::command().find_subcommand_mut("decide").unwrap().render_help().to_string();
        assert!(help.contains("--source <SOURCE>") && help.contains("[default: in-process]"), "{help}");
        assert!(matches!(run(&["--decide-every", "0"]), Ok(Command::Run(o)) if o.decide_every.is_none()));
        assert_eq!(run(&["slo-rules"]).ok(), Some(Command::SloRules));
        assert!(run(&["slo-rules", "extra"]).is_err());
    }
}
