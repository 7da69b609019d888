//! A throwaway PostgreSQL cluster, the store work's receiver: `initdb` in
//! a temporary folder, `pg_ctl start` on a free loopback port, `pg_ctl
//! stop` on drop.
//!
//! Owns: finding the server binaries (on `PATH`, else the newest
//! `/usr/lib/postgresql/*/bin`), running them as an unprivileged user when
//! the test runs as root (`initdb` refuses root: the folder is handed to
//! `postgres`, else `nobody`, and each command runs through `runuser`),
//! and the cluster's lifetime. Must not: touch any cluster but its own, nor
//! listen anywhere but on 127.0.0.1 and a socket in its folder.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

use crate::{free_port, which};

/// The cluster's superuser; it connects without a password (`trust`).
pub const POSTGRES_USER: &str = "postgres";

/// A running PostgreSQL cluster of its own, stopped (`-m immediate`) on
/// drop and its folder removed.
#[derive(Debug)]
pub struct Postgres {
    port: u16,
    bin: PathBuf,
    data: PathBuf,
    /// The OS user the server runs as, when the tests run as root.
    run_as: Option<String>,
    /// The server's options (`pg_ctl -o`), for a start again.
    options: String,
    dir: TempDir,
}

/// The folder holding `initdb`, `pg_ctl` and `psql`.
fn bin_dir() -> PathBuf {
    if let Some(initdb) = which("initdb") {
        let resolved = std::fs::canonicalize(&initdb).unwrap_or(initdb);
        return resolved.parent().unwrap().to_owned();
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    versions.sort_by_key(|bin| bin.parent().and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok()).unwrap_or(0));
    versions.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL not found: no `initdb` on PATH or in /usr/lib/postgresql/*/bin (install Debian's postgresql)"
        )
    })
}

/// The user to run the server as: none unless this process is root.
fn unprivileged_user() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().expect("run `id -u`");
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return None;
    }
    let exists = |user: &str| Command::new("id").arg(user).output().is_ok_and(|o| o.status.success());
    let user = ["postgres", "nobody"].into_iter().find(|u| exists(u)).expect("a `postgres` or `nobody` user");
    Some(user.to_owned())
}

/// Runs `cmd` to its end (as `run_as` when given); panics with its output
/// when it fails.
fn run(run_as: Option<&str>, program: &Path, args: &[&str]) -> Output {
    let mut cmd = match run_as {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    };
    let out = cmd.args(args).output().unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed ({}):\n{}{}",
        program.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Postgres {
    /// Creates a cluster (`initdb`, superuser [`POSTGRES_USER`], `trust`
    /// authentication, UTF-8, no locale) and starts it on a free port of
    /// 127.0.0.1, waiting (at most 60 s) until it accepts connections.
    pub fn start() -> Postgres {
        Postgres::launch(false)
    }

    /// [`start`](Self::start) with `fsync` on (the server's default): for
    /// measuring durable commits, where the tests' clusters skip the sync
    /// for speed.
    pub fn start_durable() -> Postgres {
        Postgres::launch(true)
    }

    fn launch(fsync: bool) -> Postgres {
        let bin = bin_dir();
        let run_as = unprivileged_user();
        let dir = tempfile::tempdir().unwrap();
        if let Some(user) = &run_as {
            let out = Command::new("chown").arg("-R").arg(user).arg(dir.path()).output().expect("run chown");
            assert!(out.status.success(), "chown {user}: {}", String::from_utf8_lossy(&out.stderr));
        }
        let data = dir.path().join("data");
        let path = |p: &Path| p.to_str().expect("a UTF-8 temporary path").to_owned();
        run(
            run_as.as_deref(),
            &bin.join("initdb"),
            &["-D", &path(&data), "-U", POSTGRES_USER, "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"],
        );
        let port = free_port();
        let fsync = if fsync { "on" } else { "off" };
        let options = format!("-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync={fsync}", path(dir.path()));
        let postgres = Postgres { port, bin, data, run_as, options, dir };
        postgres.start_again();
        postgres
    }

    /// Stops the server (`pg_ctl stop -m fast`: connections are cut, the
    /// cluster is kept) and waits until it is down: a database outage.
    pub fn stop(&self) {
        let data = self.data.to_str().expect("a UTF-8 temporary path");
        run(self.run_as.as_deref(), &self.bin.join("pg_ctl"), &["-D", data, "-m", "fast", "-w", "-t", "60", "stop"]);
    }

    /// Stops the server as a crash would (`pg_ctl -m immediate`: no
    /// shutdown checkpoint, WAL not yet written is lost); start it again
    /// with [`start_again`](Self::start_again).
    pub fn crash(&self) {
        let data = self.data.to_str().expect("a UTF-8 temporary path");
        run(
            self.run_as.as_deref(),
            &self.bin.join("pg_ctl"),
            &["-D", data, "-m", "immediate", "-w", "-t", "60", "stop"],
        );
    }

    /// Starts the server again after [`stop`](Self::stop) (or the first
    /// time), on the same port, and waits (at most 60 s) until it accepts
    /// connections.
    pub fn start_again(&self) {
        let data = self.data.to_str().expect("a UTF-8 temporary path");
        let log = self.dir.path().join("postgres.log");
        let log = log.to_str().expect("a UTF-8 temporary path");
        run(
            self.run_as.as_deref(),
            &self.bin.join("pg_ctl"),
            &["-D", data, "-l", log, "-o", &self.options, "-w", "-t", "60", "start"],
        );
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its `host:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A libpq connection URL for the superuser's `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://{POSTGRES_USER}@127.0.0.1:{}/postgres", self.port)
    }

    /// The folder that holds its data, its log (`postgres.log`) and its
    /// Unix socket.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `sql` through `psql` (unaligned, tuples only, stopping at the
    /// first error) and returns what it printed; panics when it fails.
    pub fn psql(&self, sql: &str) -> String {
        let psql = Some(self.bin.join("psql")).filter(|p| p.is_file()).or_else(|| which("psql")).expect("`psql`");
        let out = run(None, &psql, &["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", &self.url(), "-c", sql]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(self.bin.join("pg_ctl"));
                c
            }
            None => Command::new(self.bin.join("pg_ctl")),
        };
        let _ = cmd.arg("-D").arg(&self.data).args(["-m", "immediate", "-w", "stop"]).output();
    }
}
