//! Checking exposition with Prometheus' own `promtool check metrics`, for
//! tests (ours and users').
//!
//! Owns: running `promtool` on bytes and turning its verdict into a typed
//! result. Must not: be used on a serving path (it starts a process).

use std::io::Write;
use std::process::{Command, Stdio};

/// Why [`check_metrics`] did not accept the exposition.
#[derive(Debug)]
#[non_exhaustive]
pub enum PromtoolError {
    /// `promtool` is not on `PATH` (Debian: package `prometheus`).
    NotInstalled,
    /// Starting or talking to `promtool` failed.
    Io(std::io::Error),
    /// `promtool` ran and rejected the input.
    Rejected {
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed on stdout.
        stdout: String,
        /// What it printed on stderr (the problems found).
        stderr: String,
    },
}

impl std::fmt::Display for PromtoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotInstalled => write!(f, "promtool is not installed (Debian package `prometheus`)"),
            Self::Io(e) => write!(f, "running promtool failed: {e}"),
            Self::Rejected { status, stdout, stderr } => {
                write!(f, "promtool rejected the exposition ({status}): {stderr}{stdout}")
            }
        }
    }
}

impl std::error::Error for PromtoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Runs `promtool check metrics` on `exposition` (Prometheus text format)
/// and returns `Ok` only if it passes, lint checks included.
pub fn check_metrics(exposition: &[u8]) -> Result<(), PromtoolError> {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(PromtoolError::NotInstalled),
        Err(e) => return Err(PromtoolError::Io(e)),
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(exposition).map_err(PromtoolError::Io)?;
    }
    let out = child.wait_with_output().map_err(PromtoolError::Io)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(PromtoolError::Rejected {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}
