//! Which checkpoint store the demo writes to: `--store sqlite:PATH` (the
//! embedded default, `--db`) or `--store postgres://...`.
//!
//! Owns: parsing and printing a store's spec (passwords never printed),
//! and [`Backend`], the one store type the pipeline is built on whichever
//! database is behind it. Must not: instrument or inject faults (the
//! pipeline wraps it in `FaultInjectingStore` and `MonitoredStore`).

use std::fmt;
use std::path::PathBuf;

use hotmeter_checkpoint::{
    Checkpoint, CheckpointError, CheckpointStore, Durability, PostgresOptions, PostgresStore, SqliteStore,
};

/// Where checkpoints go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreSpec {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL (`postgres://` or `postgresql://`).
    Postgres(String),
}

impl StoreSpec {
    /// `sqlite:PATH`, `postgres://...` or `postgresql://...`. The error
    /// never repeats the value (it may hold a password).
    pub(crate) fn parse(v: &str) -> Result<Self, String> {
        if let Some(path) = v.strip_prefix("sqlite:") {
            return if path.is_empty() { Err("expected sqlite:PATH".into()) } else { Ok(Self::Sqlite(path.into())) };
        }
        if v.starts_with("postgres://") || v.starts_with("postgresql://") {
            return Ok(Self::Postgres(v.to_owned()));
        }
        Err("expected sqlite:PATH or postgres://USER@HOST:PORT/DB".into())
    }

    /// The backend's name, as the `checkpoint_store_info` metric labels it.
    pub(crate) fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

impl fmt::Display for StoreSpec {
    /// The spec as given, with a URL's password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => f.write_str(&redacted(url)),
        }
    }
}

/// `url` with its password, in the user part (up to the last `@`) or a
/// `password=` query parameter, replaced by `***`.
pub(crate) fn redacted(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (path, query) = rest.split_once('?').map_or((rest, None), |(p, q)| (p, Some(q)));
    let path = match path.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{user}:***@{host}")
        }
        _ => path.to_owned(),
    };
    let query = query.map(|q| {
        q.split('&')
            .map(|kv| if kv.starts_with("password=") { "password=***" } else { kv })
            .collect::<Vec<_>>()
            .join("&")
    });
    match query {
        Some(q) => format!("{scheme}://{path}?{q}"),
        None => format!("{scheme}://{path}"),
    }
}

/// The store behind the demo's pipeline.
#[derive(Debug)]
pub(crate) enum Backend {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl Backend {
    /// Opens (creating the schema if missing) the store `spec` names, with
    /// `durability` (`synchronous` for SQLite, `synchronous_commit` for
    /// PostgreSQL).
    pub(crate) fn open(spec: &StoreSpec, durability: Durability) -> Result<Self, CheckpointError> {
        Ok(match spec {
            StoreSpec::Sqlite(path) => Self::Sqlite(SqliteStore::open_with(path, durability)?),
            StoreSpec::Postgres(url) => {
                Self::Postgres(PostgresStore::connect_with(url, PostgresOptions { durability, ..Default::default() })?)
            }
        })
    }

    /// Checkpoints stored, every thread's.
    pub(crate) fn count(&self) -> Result<u64, CheckpointError> {
        match self {
            Self::Sqlite(s) => s.count(),
            Self::Postgres(s) => s.count(),
        }
    }
}

impl CheckpointStore for Backend {
    fn put(&self, thread_id: &str, state: &[u8]) -> Result<i64, CheckpointError> {
        match self {
            Self::Sqlite(s) => s.put(thread_id, state),
            Self::Postgres(s) => s.put(thread_id, state),
        }
    }

    fn get(&self, thread_id: &str) -> Result<Option<Checkpoint>, CheckpointError> {
        match self {
            Self::Sqlite(s) => s.get(thread_id),
            Self::Postgres(s) => s.get(thread_id),
        }
    }

    fn list(&self, thread_id: &str, limit: usize) -> Result<Vec<Checkpoint>, CheckpointError> {
        match self {
            Self::Sqlite(s) => s.list(thread_id, limit),
            Self::Postgres(s) => s.list(thread_id, limit),
        }
    }

    fn file_size_bytes(&self) -> Option<u64> {
        match self {
            Self::Sqlite(s) => s.file_size_bytes(),
            Self::Postgres(s) => s.file_size_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_without_passwords() {
        assert_eq!(StoreSpec::parse("sqlite:/tmp/a.db"), Ok(StoreSpec::Sqlite("/tmp/a.db".into())));
        assert!(StoreSpec::parse("sqlite:").is_err());
        assert!(StoreSpec::parse("/tmp/a.db").is_err());
        assert!(StoreSpec::parse("mysql://x").is_err());
        let pg = StoreSpec::parse("postgres://app:s3cret@db:5432/ckpt").unwrap();
        assert_eq!(pg.to_string(), "postgres://app:***@db:5432/ckpt");
        assert_eq!(pg.backend(), "postgres");
        for (url, shown) in [
            ("postgres://app:p@ss@db/x", "postgres://app:***@db/x"),
            ("postgres://app@db/x?password=s3cret&sslmode=disable", "postgres://app@db/x?password=***&sslmode=disable"),
        ] {
            assert_eq!(StoreSpec::parse(url).unwrap().to_string(), shown);
        }
        let plain = StoreSpec::parse("postgresql://app@db/ckpt").unwrap();
        assert_eq!(plain.to_string(), "postgresql://app@db/ckpt");
    }
}
