//! Command-line options: parsing, validation, and the help text.
//!
//! Owns: every option's name, default and range. Must not: start anything.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hotmeter_streaming::Durability;

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
        }
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub(crate) enum Command {
    Run(Options),
    Help,
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
    -h, --help         print this help

Stop with Ctrl-C (or --duration): submission stops, queued work is drained,
and a summary is printed.",
        rate = DEFAULT_RATE,
        workers = DEFAULT_WORKERS,
        db = d.db.display(),
        listen = d.listen,
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
    let mut o = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let arg = arg.into_string().map_err(CliError::NotUnicode)?;
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        if name == "-h" || name == "--help" {
            return Ok(Command::Help);
        }
        let option: &'static str = match name.as_str() {
            "--rate" => "--rate",
            "--workers" => "--workers",
            "--duration" => "--duration",
            "--db" => "--db",
            "--error-rate" => "--error-rate",
            "--listen" => "--listen",
            "--namespace" => "--namespace",
            "--sync" => "--sync",
            _ => return Err(CliError::Unknown(arg)),
        };
        let value = match inline {
            Some(v) => v,
            None => args.next().ok_or(CliError::MissingValue(option))?.into_string().map_err(CliError::NotUnicode)?,
        };
        let bad = |expected| CliError::BadValue { option, value: value.clone(), expected };
        match option {
            "--rate" => {
                o.rate = value
                    .parse()
                    .ok()
                    .filter(|r: &f64| (0.1..=1_000_000.0).contains(r))
                    .ok_or_else(|| bad("a number from 0.1 to 1000000"))?;
            }
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
            "--db" => {
                if value.is_empty() {
                    return Err(bad("a file path"));
                }
                o.db = PathBuf::from(&value);
            }
            "--error-rate" => {
                o.error_rate = value
                    .parse()
                    .ok()
                    .filter(|r: &f64| (0.0..=1.0).contains(r))
                    .ok_or_else(|| bad("a fraction from 0 to 1, e.g. 0.05"))?;
            }
            "--listen" => o.listen = value.parse().map_err(|_| bad("IP:PORT, e.g. 127.0.0.1:9898"))?,
            "--namespace" => {
                let ok = !value.is_empty()
                    && value.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
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
            _ => unreachable!("every option above is matched"),
        }
    }
    Ok(Command::Run(o))
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
    }
}
