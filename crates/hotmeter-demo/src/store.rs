//! Which checkpoint store the demo writes to: `--store sqlite:PATH` (the
//! embedded default, `--db`) or `--store postgres://...`.
//!
//! Owns: parsing and printing a store's spec (passwords never printed),
//! and [`Backend`], the one store type the pipeline is built on whichever
//! database is behind it. Must not: instrument or inject faults (the
//! pipeline wraps it in `FaultInjectingStore` and `MonitoredStore`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hotmeter_checkpoint::{
    Checkpoint, CheckpointError, CheckpointStore, CutoverStore, Durability, PostgresOptions, PostgresStore, SqliteStore,
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

/// `url` with its password, in the user part or a `password=` query
/// parameter (its key percent-encoded or not), replaced by `***`. The user
/// part runs to the last `@` anywhere: a password may hold `@`, `?` or `/`
/// unencoded, and masking too much is safe where too little is not.
pub(crate) fn redacted(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    // The query starts at the first `?` after the user part (a user name
    // may hold `?` too).
    let (userinfo, hosts) = match rest.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, rest),
    };
    let (hosts, query) = hosts.split_once('?').map_or((hosts, None), |(h, q)| (h, Some(q)));
    let path = match userinfo {
        Some(userinfo) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{user}:***@{hosts}")
        }
        Some(user) => format!("{user}@{hosts}"),
        None => hosts.to_owned(),
    };
    let query = query.map(|q| {
        q.split('&')
            .map(|kv| {
                let key = kv.split('=').next().unwrap_or("");
                if percent_decoded(key).eq_ignore_ascii_case("password") { format!("{key}=***") } else { kv.to_owned() }
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    match query {
        Some(q) => format!("{scheme}://{path}?{q}"),
        None => format!("{scheme}://{path}"),
    }
}

/// `%XX` sequences decoded (bytes that are not UTF-8 kept as given).
fn percent_decoded(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

/// The store behind the demo's pipeline: a [`CutoverStore`] (SQLite until
/// a migration switches it, or PostgreSQL from the start), with what the
/// run's accounting and its migration need.
#[derive(Debug)]
pub(crate) struct Backend {
    store: CutoverStore,
    /// The SQLite file, when the run started on one.
    sqlite: Option<(PathBuf, Arc<SqliteStore>)>,
    /// PostgreSQL: the store in force, or where a migration goes.
    postgres: Option<(StoreSpec, PostgresStore)>,
    /// This demo's thread ids start with it (`""`: every thread is ours).
    prefix: String,
    /// Rows of ours in each store when the run started.
    before: (u64, u64),
    /// Where an earlier migration sent the file (its seal), when the run
    /// started on that target because of it.
    sealed: Option<String>,
}

/// Why the demo cannot open its store.
#[derive(Debug)]
pub(crate) enum OpenError {
    Store(CheckpointError),
    /// The `--migrate-to` store (named without its password) failed.
    Target(String, CheckpointError),
    /// The file was migrated (and sealed) and no `--migrate-to` says where
    /// to write instead, or it names another database (`given`).
    Migrated {
        path: PathBuf,
        to: String,
        given: Option<String>,
    },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Store(_) => f.write_str("the store failed"),
            OpenError::Target(to, _) => write!(f, "the migration target {to} failed"),
            OpenError::Migrated { path, to, given: None } => write!(
                f,
                "{} was migrated to {to}: its checkpoints live there now (run with --store postgres://..., or --migrate-to naming it)",
                path.display()
            ),
            OpenError::Migrated { path, to, given: Some(given) } => write!(
                f,
                "{} was migrated to {to}, not to {given}: its checkpoints live there (name that database)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Store(e) | OpenError::Target(_, e) => Some(e),
            OpenError::Migrated { .. } => None,
        }
    }
}

impl From<CheckpointError> for OpenError {
    fn from(e: CheckpointError) -> Self {
        OpenError::Store(e)
    }
}

impl Backend {
    /// Opens (creating the schema if missing) the store `spec` names, with
    /// `durability` (`synchronous` for SQLite, `synchronous_commit` for
    /// PostgreSQL), and the migration target `migrate_to` if any. A SQLite
    /// file a migration sealed starts on that target.
    pub(crate) fn open(
        spec: &StoreSpec,
        durability: Durability,
        migrate_to: Option<&StoreSpec>,
        writer_id: Option<&str>,
    ) -> Result<Self, OpenError> {
        let connect =
            |url: &str| PostgresStore::connect_with(url, PostgresOptions { durability, ..Default::default() });
        let prefix = writer_id.map_or_else(String::new, |id| format!("{id}/"));
        let sealed = match spec {
            StoreSpec::Sqlite(path) => hotmeter_checkpoint::migrated_to(path)?,
            StoreSpec::Postgres(_) => None,
        };
        let (store, sqlite, postgres) = match spec {
            StoreSpec::Sqlite(path) => {
                let target = match migrate_to {
                    Some(to @ StoreSpec::Postgres(url)) => {
                        Some((to.clone(), connect(url).map_err(|e| OpenError::Target(to.to_string(), e))?))
                    }
                    // The options refuse a SQLite target.
                    Some(StoreSpec::Sqlite(_)) | None => None,
                };
                let sqlite = Arc::new(SqliteStore::open_with(path, durability)?);
                match (sealed.clone(), target) {
                    // Sealed for this very database: write there.
                    (Some(to), Some(target)) if to.starts_with(&format!("{} at ", target.1.describe())) => {
                        (CutoverStore::postgres(target.1.clone()), Some((path.clone(), sqlite)), Some(target))
                    }
                    (Some(to), Some(target)) => {
                        return Err(OpenError::Migrated { path: path.clone(), to, given: Some(target.1.describe()) });
                    }
                    (Some(to), None) => return Err(OpenError::Migrated { path: path.clone(), to, given: None }),
                    (None, target) => (CutoverStore::sqlite(sqlite.clone()), Some((path.clone(), sqlite)), target),
                }
            }
            StoreSpec::Postgres(url) => {
                let store = connect(url)?;
                (CutoverStore::postgres(store.clone()), None, Some((spec.clone(), store)))
            }
        };
        let mut backend = Backend { store, sqlite, postgres, prefix, before: (0, 0), sealed };
        backend.before = backend.rows()?;
        Ok(backend)
    }

    /// Rows of ours in SQLite and in PostgreSQL (written through a store,
    /// not copied in).
    fn rows(&self) -> Result<(u64, u64), CheckpointError> {
        let sqlite = match &self.sqlite {
            Some((_, s)) => s.count_prefix(&self.prefix)?,
            None => 0,
        };
        let postgres = match &self.postgres {
            Some((_, p)) => p.count_written(&self.prefix)?,
            None => 0,
        };
        Ok((sqlite, postgres))
    }

    /// Checkpoints this run wrote, in whichever store they went to.
    pub(crate) fn rows_written(&self) -> Result<u64, CheckpointError> {
        let (sqlite, postgres) = self.rows()?;
        Ok(sqlite.saturating_sub(self.before.0) + postgres.saturating_sub(self.before.1))
    }

    /// The thread id of worker `worker`.
    pub(crate) fn thread_id(&self, worker: usize) -> String {
        format!("{}worker-{worker}", self.prefix)
    }

    /// The store in force, as people read it (a password masked).
    pub(crate) fn describe(&self) -> String {
        match (self.store.backend(), &self.sqlite, &self.postgres) {
            ("sqlite", Some((path, _)), _) => path.display().to_string(),
            (_, _, Some((spec, _))) => spec.to_string(),
            _ => self.store.backend().to_owned(),
        }
    }

    /// `sqlite` or `postgres`: the database in force.
    pub(crate) fn backend(&self) -> &'static str {
        self.store.backend()
    }

    /// The store writers use.
    pub(crate) fn cutover(&self) -> &CutoverStore {
        &self.store
    }

    /// The seal of a file an earlier migration moved, when this run writes
    /// to its target because of it (`postgres://... at <time>`).
    pub(crate) fn sealed(&self) -> Option<&str> {
        self.sealed.as_deref()
    }

    /// The SQLite file a migration would copy (None: not on SQLite).
    pub(crate) fn sqlite_path(&self) -> Option<&Path> {
        self.sqlite.as_ref().map(|(p, _)| p.as_path())
    }

    /// The migration target (or the store in force when on PostgreSQL).
    pub(crate) fn postgres(&self) -> Option<&(StoreSpec, PostgresStore)> {
        self.postgres.as_ref()
    }
}

impl CheckpointStore for Backend {
    fn put(&self, thread_id: &str, state: &[u8]) -> Result<i64, CheckpointError> {
        self.store.put(thread_id, state)
    }

    fn get(&self, thread_id: &str) -> Result<Option<Checkpoint>, CheckpointError> {
        self.store.get(thread_id)
    }

    fn list(&self, thread_id: &str, limit: usize) -> Result<Vec<Checkpoint>, CheckpointError> {
        self.store.list(thread_id, limit)
    }

    fn file_size_bytes(&self) -> Option<u64> {
        self.store.file_size_bytes()
    }

    fn pool_usage(&self) -> Option<(u32, u32)> {
        self.store.pool_usage()
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
            ("postgres://app:se?cret@db:5432/x", "postgres://app:***@db:5432/x"),
            ("postgres://app:a/b?c@d@db/x?sslmode=disable", "postgres://app:***@db/x?sslmode=disable"),
            ("postgres://app@db/x?pass%77ord=s3cret", "postgres://app@db/x?pass%77ord=***"),
            ("postgres://app@db/x?PASSWORD=s3cret", "postgres://app@db/x?PASSWORD=***"),
            ("postgres://ops?ro@db:5432/ckpt?password=s3cret", "postgres://ops?ro@db:5432/ckpt?password=***"),
            ("postgres://ops?ro:old@db/ckpt?password=s3cret", "postgres://ops?ro:***@db/ckpt?password=***"),
            ("postgres://db/ckpt?user=app&password=s3cret", "postgres://db/ckpt?user=app&password=***"),
        ] {
            assert_eq!(StoreSpec::parse(url).unwrap().to_string(), shown);
        }
        let plain = StoreSpec::parse("postgresql://app@db/ckpt").unwrap();
        assert_eq!(plain.to_string(), "postgresql://app@db/ckpt");
    }
}
