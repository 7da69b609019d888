//! Command-line options: parsing, validation, and the help text.
//!
//! Owns: every option's name, default and range. Must not: start anything.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hotmeter_checkpoint::Durability;
use hotmeter_checkpoint::decision::{Deployment, MigrationThresholds};

/// Everything `hotmeter-demo` can be told.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Options {
    pub(crate) rate: f64,
    pub(crate) workers: usize,
    pub(crate) duration: Option<Duration>,
    pub(crate) db: PathBuf,
    pub(crate) error_rate: f64,
    pub(crate) listen: SocketAddr,
    pub(crate) namespace: Option<String>,
    pub(crate) sync: Durability,
    /// How often the running demo logs a migration decision (None: never).
    pub(crate) decide_every: Option<Duration>,
    pub(crate) decision_log: PathBuf,
    pub(crate) deployment: Deployment,
    pub(crate) thresholds: MigrationThresholds,
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

pub(crate) const DEFAULT_RATE: f64 = 50.0;
pub(crate) const DEFAULT_WORKERS: usize = 4;

impl Default for Options {
    fn default() -> Self {
        Options {
            rate: DEFAULT_RATE,
            workers: DEFAULT_WORKERS,
            duration: None,
            db: std::env::temp_dir().join("hotmeter-demo.db"),
            error_rate: 0.0,
            listen: hotmeter_exporter::DEFAULT_LISTEN.parse().expect("valid default address"),
            namespace: None,
            sync: Durability::Full,
            decide_every: Some(Duration::from_secs(30)),
            decision_log: std::env::temp_dir().join("hotmeter-decisions.jsonl"),
            deployment: Deployment::SingleServer,
            thresholds: MigrationThresholds::default(),
        }
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub(crate) enum Command {
    Run(Options),
    Decide(DecideOptions),
    /// Print the Prometheus rules generated from the demo's SLOs.
    SloRules,
    Help,
    DecideHelp,
}

/// A command line that cannot be run.
#[derive(Debug, PartialEq)]
pub(crate) enum CliError {
    Unknown(String),
    MissingValue(&'static str),
    BadValue { option: &'static str, value: String, expected: &'static str },
    NotUnicode(OsString),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Unknown(a) => write!(f, "unknown argument {a:?}"),
            CliError::MissingValue(o) => write!(f, "{o} needs a value"),
            CliError::BadValue { option, value, expected } => {
                write!(f, "invalid value {value:?} for {option}: expected {expected}")
            }
            CliError::NotUnicode(a) => write!(f, "argument {a:?} is not valid UTF-8"),
        }
    }
}

impl std::error::Error for CliError {}

pub(crate) fn usage() -> String {
    let d = Options::default();
    format!(
        "\
hotmeter-demo: an instrumented streaming pipeline you can run and watch.

A synthetic generator submits observations for three memory spaces; a worker
pool processes them in adaptive batches and writes one checkpoint per batch to
a SQLite file; hotmeter serves every metric to Prometheus while a status line
shows writes/s, error %, P99 write latency, queue depth and backpressure.

USAGE:
    hotmeter-demo [OPTIONS]

OPTIONS:
    --rate N           observations per second to generate, 0.1 to 1000000 (default {rate})
    --workers N        worker threads, 1 to 256 (default {workers})
    --duration TIME    stop after TIME: seconds, or a number with s, m or h (default: run until Ctrl-C)
    --db PATH          SQLite checkpoint file, created if missing (default {db})
    --error-rate R     fraction of checkpoint writes to fail on purpose, 0 to 1, to test alerts (default 0)
    --listen ADDR      where to serve /metrics, IP:PORT; port 0 picks a free one (default {listen})
    --namespace NAME   prefix every metric name with NAME_, e.g. engram (default: none)
    --sync MODE        SQLite commit durability: full (fsync every commit) or normal (default full)
{decision_options}
    -h, --help         print this help

Stop with Ctrl-C (or --duration): submission stops, queued work is drained,
and a summary is printed. While it runs, GET /slos on the same address
returns the SLO report as JSON.

OTHER COMMANDS:
    hotmeter-demo decide [OPTIONS]   measure and print the migration decision (see `decide --help`)
    hotmeter-demo slo-rules          print the Prometheus rules generated from the demo's SLOs
                                     (the source of alerts/slo.yml)",
        rate = DEFAULT_RATE,
        workers = DEFAULT_WORKERS,
        db = d.db.display(),
        listen = d.listen,
        decision_options = decision_options(),
    )
}

fn decision_options() -> String {
    let d = Options::default();
    let t = MigrationThresholds::default();
    format!(
        "\
    --decide-every TIME   log a migration decision this often, from the last 5 minutes; 0 turns it off (default 30s)
    --decision-log PATH   append decisions to this JSON-lines file (default {log})
    --deployment KIND     single-server or multi-server, an input of the decision (default single-server)
    --max-error-percent P migrate now above P% failed writes (default {err})
    --migrate-writes N    migrate now above N writes/s (default {migrate})
    --plan-writes N       plan a migration above N writes/s (default {plan})
    --plan-file-size B    plan a migration above B bytes of database (default {size})",
        log = d.decision_log.display(),
        err = t.error_rate_percent(),
        migrate = t.migrate_writes_per_second(),
        plan = t.plan_writes_per_second(),
        size = t.plan_file_size_bytes(),
    )
}

pub(crate) fn decide_usage() -> String {
    format!(
        "\
hotmeter-demo decide: measure checkpoint writes and decide whether a single
SQLite file is still enough (MIGRATE NOW / PLAN MIGRATION / SQLITE SUFFICIENT).

USAGE:
    hotmeter-demo decide [OPTIONS]

SOURCES:
    --source in-process   run the pipeline for --window and decide from its own counters (the default;
                          takes the pipeline options of `hotmeter-demo --help`: --rate, --error-rate, --db, ...)
    --source prometheus   ask a Prometheus server that scrapes the demo (rates over --window)
    --prometheus URL      the server (default http://127.0.0.1:9090)
    --window TIME         in-process: how long to measure (default 10s); prometheus: the rate window (default 5m)

DECISION:
{decision_options}

Prints the measured inputs and the decision, and appends it to the decision log.
Exits 0 with a decision, 1 when the inputs cannot be had (a Prometheus that is
down, slow or without data is an error, never a silent \"sufficient\"), 2 on bad options.",
        decision_options = decision_options()
    )
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

/// Parses the arguments after the program name.
pub(crate) fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, CliError> {
    let mut args = args.into_iter().peekable();
    if args.peek().is_some_and(|a| a == "slo-rules") {
        args.next();
        return match args.next() {
            None => Ok(Command::SloRules),
            Some(extra) => Err(CliError::Unknown(extra.to_string_lossy().into_owned())),
        };
    }
    let decide = args.peek().is_some_and(|a| a == "decide");
    if decide {
        args.next();
    }
    let mut o = Options::default();
    let mut source_name = "in-process".to_owned();
    let mut url = "http://127.0.0.1:9090".to_owned();
    let mut window: Option<Duration> = None;
    let (mut err_pct, mut migrate, mut plan, mut size) = {
        let t = MigrationThresholds::default();
        (t.error_rate_percent(), t.migrate_writes_per_second(), t.plan_writes_per_second(), t.plan_file_size_bytes())
    };
    while let Some(arg) = args.next() {
        let arg = arg.into_string().map_err(CliError::NotUnicode)?;
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        if name == "-h" || name == "--help" {
            return Ok(if decide { Command::DecideHelp } else { Command::Help });
        }
        const RUN: &[&str] = &[
            "--rate",
            "--workers",
            "--duration",
            "--db",
            "--error-rate",
            "--listen",
            "--namespace",
            "--sync",
            "--decide-every",
            "--decision-log",
            "--deployment",
            "--max-error-percent",
            "--migrate-writes",
            "--plan-writes",
            "--plan-file-size",
        ];
        const DECIDE: &[&str] = &["--source", "--prometheus", "--window"];
        let Some(option) = RUN.iter().chain(if decide { DECIDE } else { &[] }).find(|o| **o == name).copied() else {
            return Err(CliError::Unknown(arg));
        };
        let value = match inline {
            Some(v) => v,
            None => args.next().ok_or(CliError::MissingValue(option))?.into_string().map_err(CliError::NotUnicode)?,
        };
        let bad = |expected| CliError::BadValue { option, value: value.clone(), expected };
        let number = |lo: f64, hi: f64, expected| {
            value.parse::<f64>().ok().filter(|v| (lo..=hi).contains(v)).ok_or_else(|| bad(expected))
        };
        match option {
            "--rate" => o.rate = number(0.1, 1_000_000.0, "a number from 0.1 to 1000000")?,
            "--workers" => {
                o.workers = value
                    .parse()
                    .ok()
                    .filter(|w| (1..=256).contains(w))
                    .ok_or_else(|| bad("a whole number from 1 to 256"))?;
            }
            "--duration" => {
                o.duration = Some(
                    parse_duration(&value)
                        .ok_or_else(|| bad("a positive time such as 30, 30s, 5m or 1h (at most 30 days)"))?,
                );
            }
            "--db" | "--decision-log" => {
                if value.is_empty() {
                    return Err(bad("a file path"));
                }
                if option == "--db" {
                    o.db = PathBuf::from(&value);
                } else {
                    o.decision_log = PathBuf::from(&value);
                }
            }
            "--error-rate" => o.error_rate = number(0.0, 1.0, "a fraction from 0 to 1, e.g. 0.05")?,
            "--listen" => o.listen = value.parse().map_err(|_| bad("IP:PORT, e.g. 127.0.0.1:9898"))?,
            "--namespace" => {
                let ok = value.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !ok {
                    return Err(bad("a metric name prefix: letters, digits and _, not starting with a digit"));
                }
                o.namespace = Some(value);
            }
            "--sync" => {
                o.sync = match value.as_str() {
                    "full" => Durability::Full,
                    "normal" => Durability::Normal,
                    _ => return Err(bad("full or normal")),
                };
            }
            "--decide-every" => {
                o.decide_every = if value == "0" {
                    None
                } else {
                    Some(parse_duration(&value).ok_or_else(|| bad("a time such as 30s or 5m, or 0 for never"))?)
                };
            }
            "--deployment" => o.deployment = value.parse().map_err(|_| bad("single-server or multi-server"))?,
            "--max-error-percent" => err_pct = number(0.0, 100.0, "a percentage from 0 to 100")?,
            "--migrate-writes" => migrate = number(0.0, f64::MAX, "a number of writes per second >= 0")?,
            "--plan-writes" => plan = number(0.0, f64::MAX, "a number of writes per second >= 0")?,
            "--plan-file-size" => size = value.parse().map_err(|_| bad("a whole number of bytes"))?,
            "--source" => {
                if !["in-process", "prometheus"].contains(&value.as_str()) {
                    return Err(bad("in-process or prometheus"));
                }
                source_name = value;
            }
            "--prometheus" => {
                hotmeter_checkpoint::decision::PrometheusSource::new(&value)
                    .map_err(|_| bad("an http:// URL with a port, e.g. http://127.0.0.1:9090"))?;
                url = value;
            }
            "--window" => window = Some(parse_duration(&value).ok_or_else(|| bad("a time such as 10s or 5m"))?),
            _ => unreachable!("every listed option is matched"),
        }
    }
    o.thresholds = MigrationThresholds::new(err_pct, migrate, plan, size).map_err(|_| CliError::BadValue {
        option: "--plan-writes",
        value: plan.to_string(),
        expected: "at most --migrate-writes",
    })?;
    if !decide {
        return Ok(Command::Run(o));
    }
    let source = if source_name == "prometheus" { Source::Prometheus(url) } else { Source::InProcess };
    let window = window.unwrap_or(match source {
        Source::InProcess => Duration::from_secs(10),
        Source::Prometheus(_) => Duration::from_secs(300),
    });
    Ok(Command::Decide(DecideOptions { run: o, source, window }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Command, CliError> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn defaults_and_every_option() {
        assert_eq!(run(&[]), Ok(Command::Run(Options::default())));
        let Ok(Command::Run(o)) = run(&[
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
        ]) else {
            panic!("should parse")
        };
        assert_eq!(o.rate, 120.5);
        assert_eq!(o.workers, 8);
        assert_eq!(o.duration, Some(Duration::from_secs(120)));
        assert_eq!(o.db, PathBuf::from("/tmp/x.db"));
        assert_eq!(o.error_rate, 0.05);
        assert_eq!(o.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(o.namespace.as_deref(), Some("engram"));
        assert_eq!(o.sync, Durability::Normal);
        assert_eq!(
            run(&["--duration", "1.5"])
                .map(|c| matches!(c, Command::Run(o) if o.duration == Some(Duration::from_millis(1500)))),
            Ok(true)
        );
        assert_eq!(run(&["--help"]), Ok(Command::Help));
        assert_eq!(run(&["--rate", "5", "-h"]), Ok(Command::Help));
    }

    #[test]
    fn bad_options_are_explained() {
        assert_eq!(run(&["--bogus"]), Err(CliError::Unknown("--bogus".into())));
        assert_eq!(run(&["--rate"]), Err(CliError::MissingValue("--rate")));
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
        ] {
            match run(args) {
                Err(CliError::BadValue { option: o, .. }) => assert_eq!(o, option, "{args:?}"),
                other => panic!("{args:?} gave {other:?}"),
            }
        }
        assert!(usage().contains("--error-rate R"));
        assert_eq!(run(&["--source", "prometheus"]), Err(CliError::Unknown("--source".into())), "decide-only");
        assert!(matches!(run(&["--plan-writes", "200"]), Err(CliError::BadValue { .. })), "plan above migrate");
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
        assert_eq!(run(&["decide", "--help"]), Ok(Command::DecideHelp));
        assert!(matches!(run(&["decide", "--source", "psychic"]), Err(CliError::BadValue { option: "--source", .. })));
        assert!(matches!(run(&["decide", "--prometheus", "localhost"]), Err(CliError::BadValue { .. })));
        assert!(decide_usage().contains("--source prometheus"));
        assert!(matches!(run(&["--decide-every", "0"]), Ok(Command::Run(o)) if o.decide_every.is_none()));
    }
}
