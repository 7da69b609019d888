//! The PostgreSQL checkpoint store: a network database many processes can
//! share, behind the same [`CheckpointStore`] trait as SQLite (so the same
//! `MonitoredStore` times and counts its writes by outcome).
//!
//! Owns: the connection pool, the schema and the durability setting. Must
//! not: acknowledge a write before the server has committed it with the
//! chosen durability, retry on its own (a failed write is the caller's to
//! see and count), or record metrics.
//!
//! Crates: the synchronous `postgres` client (the trait is blocking, as
//! SQLite's is; `AsyncCheckpointStore` runs it from async code) in an `r2d2`
//! pool, both through `r2d2_postgres`, the pool manager of the same
//! maintainers' family. No TLS: the store is meant for a server on a
//! trusted network or loopback (a URL with `sslmode=require` is refused by
//! the first connection, which [`PostgresStore::connect`] makes at once).
//!
//! A `put` whose connection breaks after the server committed but before
//! it answered returns an error although the row exists (as with any
//! client of a network database): a caller that retries such a write may
//! store it twice.

use std::time::Duration;

use r2d2_postgres::PostgresConnectionManager;
use r2d2_postgres::postgres::{Config, NoTls, Row};
use r2d2_postgres::r2d2::{self, Pool, PooledConnection};

use crate::sqlite::Durability;
use crate::store::{Checkpoint, CheckpointError, CheckpointStore, now_ms, validate_thread_id};

/// How a [`PostgresStore`] connects: pool size, how long a writer waits for
/// a connection, and durability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostgresOptions {
    /// Connections kept at most (default 4: one per writer thread of the
    /// demo's pool).
    pub pool_size: u32,
    /// How long a call waits for a free connection before it fails with
    /// [`CheckpointError::Pool`] (default 5 s).
    pub connection_timeout: Duration,
    /// [`Durability::Full`] (the default): `synchronous_commit = on`, a
    /// commit returns after the server flushed its WAL. `Normal`:
    /// `synchronous_commit = off`, a server crash may lose the latest
    /// commits (never corrupt the database).
    pub durability: Durability,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions { pool_size: 4, connection_timeout: Duration::from_secs(5), durability: Durability::Full }
    }
}

/// A [`CheckpointStore`] in a PostgreSQL database (table `checkpoints`,
/// created if missing).
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: Pool<PostgresConnectionManager<NoTls>>,
    /// How the pool connects, kept for a migration's dedicated connection.
    config: std::sync::Arc<Config>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/db`, or key=value
    /// form) with the default options, and creates the schema if missing.
    pub fn connect(url: &str) -> Result<Self, CheckpointError> {
        Self::connect_with(url, PostgresOptions::default())
    }

    /// [`connect`](Self::connect) with these options.
    pub fn connect_with(url: &str, options: PostgresOptions) -> Result<Self, CheckpointError> {
        let mut config: Config = url.parse().map_err(CheckpointError::Postgres)?;
        let synchronous_commit = match options.durability {
            Durability::Full => "on",
            Durability::Normal => "off",
        };
        // Appended to any `options` the URL gives, so the durability is the
        // store's whatever the server's default.
        let options_given = config.get_options().map(str::to_owned);
        let setting = format!("-c synchronous_commit={synchronous_commit}");
        config.options(&options_given.map_or_else(|| setting.clone(), |given| format!("{given} {setting}")));
        // r2d2 refuses a zero timeout (it panics): the shortest it takes.
        let timeout = options.connection_timeout.max(Duration::from_millis(1));
        config.connect_timeout(timeout);
        // One connection first, outside the pool: a misconfiguration (no
        // such role or database, TLS required) fails here with the server's
        // own error and SQLSTATE, where the pool would report only a
        // timeout. It creates the schema if missing.
        let mut first = config.connect(NoTls)?;
        // The schema statements take table locks even when there is nothing
        // to create, and would wait behind any open reader while every
        // writer waits behind them: they run only when something is
        // missing. And `IF NOT EXISTS` is not safe against itself (two
        // processes creating the table at once may both try, a fleet
        // starting on an empty database): one at a time, under a
        // transaction lock, checked again under it.
        if !schema_complete(&mut first)? {
            let mut tx = first.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
            if !schema_complete(&mut tx)? {
                tx.batch_execute(SCHEMA)?;
            }
            tx.commit()?;
        }
        drop(first);
        let pool = r2d2::Pool::builder()
            .max_size(options.pool_size.max(1))
            .min_idle(Some(0))
            .connection_timeout(timeout)
            // Failures go to the caller as errors, not to r2d2's log.
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(PostgresConnectionManager::new(config.clone(), NoTls));
        Ok(PostgresStore { pool, config: std::sync::Arc::new(config) })
    }

    /// Checkpoints stored, every thread's.
    pub fn count(&self) -> Result<u64, CheckpointError> {
        let n: i64 = self.conn()?.query_one("SELECT COUNT(*) FROM checkpoints", &[])?.try_get(0)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Checkpoints written through a store (not copied in by a
    /// [`Migration`](crate::Migration)) whose thread id starts with
    /// `prefix` (`""`: every thread's). Reads the whole table: for
    /// accounting at the end of a run, not for a hot path.
    pub fn count_written(&self, prefix: &str) -> Result<u64, CheckpointError> {
        let n: i64 = self
            .conn()?
            .query_one(
                "SELECT COUNT(*) FROM checkpoints WHERE migrated_from IS NULL AND starts_with(thread_id, $1)",
                &[&prefix],
            )?
            .try_get(0)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// `postgres://USER@HOST:PORT/DB` as configured, never with a
    /// password: for logs and for the mark a migration leaves.
    pub fn describe(&self) -> String {
        use r2d2_postgres::postgres::config::Host;
        let c = &self.config;
        let host = match c.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".to_owned(),
        };
        let port = c.get_ports().first().copied().unwrap_or(5432);
        let user = c.get_user().unwrap_or("");
        let db = c.get_dbname().unwrap_or(user);
        format!("postgres://{user}@{host}:{port}/{db}")
    }

    /// A connection of its own, outside the pool, with the store's
    /// settings: a migration holds one for its whole run (and its
    /// advisory lock with it) without taking a writer's.
    pub(crate) fn dedicated(&self) -> Result<r2d2_postgres::postgres::Client, CheckpointError> {
        Ok(self.config.connect(NoTls)?)
    }

    /// The durability the server applies to this store's commits (every
    /// `synchronous_commit` but `off` waits for the local WAL flush).
    pub fn durability(&self) -> Result<Durability, CheckpointError> {
        let setting: String = self.conn()?.query_one("SHOW synchronous_commit", &[])?.try_get(0)?;
        Ok(if setting == "off" { Durability::Normal } else { Durability::Full })
    }

    fn conn(&self) -> Result<PooledConnection<PostgresConnectionManager<NoTls>>, CheckpointError> {
        self.pool.get().map_err(CheckpointError::Pool)
    }
}

/// The advisory lock key schema creation holds (`hotmeter` in ASCII).
const SCHEMA_LOCK: i64 = 0x686f_746d_6574_6572;

/// The table, created if missing. A table of that name with other column
/// types makes every read of it a typed error, never a panic.
///
/// `migrated_from` and `migrated_id` are set on rows a
/// [`Migration`](crate::Migration) copied in (the source file's store id
/// and the row's id there; `NULL` on rows written through a store): their
/// unique index makes each source row land once however often a copy is
/// cut off and resumed, and tells where to resume.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS checkpoints (
         checkpoint_id BIGSERIAL PRIMARY KEY,
         thread_id     TEXT   NOT NULL,
         created_at_ms BIGINT NOT NULL,
         state         BYTEA  NOT NULL
     );
     ALTER TABLE checkpoints ADD COLUMN IF NOT EXISTS migrated_from TEXT,
                             ADD COLUMN IF NOT EXISTS migrated_id BIGINT;
     CREATE INDEX IF NOT EXISTS checkpoints_by_thread ON checkpoints (thread_id, checkpoint_id);
     CREATE UNIQUE INDEX IF NOT EXISTS checkpoints_migrated ON checkpoints (migrated_from, migrated_id);";

/// Whether the table the store's statements reach (`checkpoints` on the
/// search path) exists with its migration columns and both indexes on it
/// (read from the catalog, which takes no lock on the table).
fn schema_complete(c: &mut impl r2d2_postgres::postgres::GenericClient) -> Result<bool, CheckpointError> {
    let row = c.query_one(
        "SELECT to_regclass('checkpoints') IS NOT NULL
            AND (SELECT COUNT(*) FROM pg_attribute
                 WHERE attrelid = to_regclass('checkpoints') AND NOT attisdropped
                   AND attname IN ('migrated_from', 'migrated_id')) = 2
            AND (SELECT COUNT(*) FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                 WHERE i.indrelid = to_regclass('checkpoints')
                   AND ic.relname IN ('checkpoints_by_thread', 'checkpoints_migrated')) = 2",
        &[],
    )?;
    Ok(row.try_get(0)?)
}

fn checkpoint(r: &Row) -> Result<Checkpoint, CheckpointError> {
    Ok(Checkpoint {
        checkpoint_id: r.try_get(0)?,
        thread_id: r.try_get(1)?,
        created_at_ms: r.try_get(2)?,
        state: r.try_get(3)?,
    })
}

impl CheckpointStore for PostgresStore {
    fn put(&self, thread_id: &str, state: &[u8]) -> Result<i64, CheckpointError> {
        validate_thread_id(thread_id)?;
        // One statement: PostgreSQL commits it on its own, with the
        // session's `synchronous_commit`, before answering.
        let row = self.conn()?.query_one(
            "INSERT INTO checkpoints (thread_id, created_at_ms, state) VALUES ($1, $2, $3) RETURNING checkpoint_id",
            &[&thread_id, &now_ms(), &state],
        )?;
        Ok(row.try_get(0)?)
    }

    fn get(&self, thread_id: &str) -> Result<Option<Checkpoint>, CheckpointError> {
        validate_thread_id(thread_id)?;
        let row = self.conn()?.query_opt(
            "SELECT checkpoint_id, thread_id, created_at_ms, state FROM checkpoints
             WHERE thread_id = $1 ORDER BY checkpoint_id DESC LIMIT 1",
            &[&thread_id],
        )?;
        row.as_ref().map(checkpoint).transpose()
    }

    fn list(&self, thread_id: &str, limit: usize) -> Result<Vec<Checkpoint>, CheckpointError> {
        validate_thread_id(thread_id)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.conn()?.query(
            "SELECT checkpoint_id, thread_id, created_at_ms, state FROM checkpoints
             WHERE thread_id = $1 ORDER BY checkpoint_id DESC LIMIT $2",
            &[&thread_id, &limit],
        )?;
        rows.iter().map(checkpoint).collect()
    }

    /// Connections in use and the pool's size: `busy / size` is how
    /// saturated the pool is (an input of the scale-out decision).
    fn pool_usage(&self) -> Option<(u32, u32)> {
        let state = self.pool.state();
        Some((state.connections.saturating_sub(state.idle_connections), self.pool.max_size()))
    }
}
