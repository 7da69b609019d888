//! Moving a SQLite store's checkpoints into PostgreSQL while they keep
//! being written, and switching the writers over.
//!
//! Owns: the copy ([`Migration`]: batches, where to resume, verification
//! by count and checksum), the switch ([`CutoverStore`]: the store the
//! writers use, SQLite until a cut-over, PostgreSQL after) and the
//! `checkpoint_migration_*` metrics' values. Must not: delete or change a
//! source row, acknowledge a copy the server has not committed, or switch
//! the writers before every source row is in PostgreSQL and verified.
//!
//! # How a copy stays exact
//! Each batch is one PostgreSQL transaction. A copied row keeps its source
//! file's store id and its SQLite id (`migrated_from`, `migrated_id`) under
//! a unique index, so a batch cut off by `kill -9` is rolled back by the
//! server and a batch sent twice inserts nothing the second time. The next
//! copy resumes after the largest `migrated_id` of that source: SQLite
//! hands out ids in commit order (one writer at a time), so no row below it
//! can appear later. A session advisory lock keeps two migrations of one
//! file from running at once; the server drops it with a killed process's
//! connection.
//!
//! # The cut-over
//! [`CutoverStore::cut_over`] first verifies what is already copied, then
//! holds the writers for as long as the last rows take to copy and verify
//! (the pause is measured and returned; at most the hold limit, each
//! statement bounded by it on the server), records in the SQLite file where
//! it went (so a restart cannot write to it again by mistake), and points
//! the writers at PostgreSQL. Every row is checked before the switch; the
//! switch itself cannot fail. Rows written after it get larger ids than
//! every copied row, so each thread's latest checkpoint stays its latest.
//! A failure leaves the writers on SQLite, nothing lost: run it again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use r2d2_postgres::postgres::Client;
use r2d2_postgres::postgres::fallible_iterator::FallibleIterator;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::metrics::{MigrationHandles, MigrationPhase};
use crate::postgres::PostgresStore;
use crate::sqlite::SqliteStore;
use crate::store::{Checkpoint, CheckpointError, CheckpointStore, now_ms};

/// Rows copied per transaction unless told otherwise.
pub const DEFAULT_BATCH_ROWS: usize = 500;

/// Bytes of state per transaction unless told otherwise: a batch ends
/// early once its states reach this (PostgreSQL takes at most 1 GiB in
/// one message).
pub const DEFAULT_BATCH_BYTES: usize = 32 << 20;

/// The largest state a migration copies (PostgreSQL's `bytea` holds up to
/// 1 GiB; a row must also fit one message).
pub const MAX_STATE_BYTES: usize = 256 << 20;

/// How long a cut-over may hold the writers unless told otherwise.
pub const DEFAULT_HOLD_LIMIT: Duration = Duration::from_secs(5);

/// Why a migration step failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum MigrationError {
    /// Reading the source, writing the target or the connection failed.
    Store(CheckpointError),
    /// Another migration of the same source file holds its lock.
    Busy {
        /// The source file's store id.
        source_id: String,
    },
    /// The source and the copy differ (count or checksum): nothing was
    /// switched.
    Mismatch(Box<Verification>),
    /// The store is not on SQLite (already cut over, or opened on
    /// PostgreSQL).
    NotOnSqlite,
    /// A source row PostgreSQL cannot hold as it is (a thread id that is
    /// not UTF-8 text or holds NUL, a time that is not an integer, a state
    /// that is missing or over [`MAX_STATE_BYTES`]): fix or delete it in the
    /// file, then run the migration again. Nothing after it is copied.
    UnmovableRow {
        /// The row's id in the file.
        checkpoint_id: i64,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The cut-over held the writers longer than its limit (PostgreSQL
    /// slow, or a lock on the table): they were released, still on SQLite.
    HoldTooLong {
        /// The limit ([`Migration::hold_limit`]).
        limit: Duration,
    },
    /// The migration copies another file than the one the store writes.
    OtherSource {
        /// The store's file.
        store: PathBuf,
        /// The migration's source file.
        migration: PathBuf,
    },
}

impl std::fmt::Display for MigrationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MigrationError::Store(_) => f.write_str("checkpoint migration failed"),
            MigrationError::Busy { source_id } => {
                write!(f, "another migration of store {source_id} is running (its PostgreSQL advisory lock is held)")
            }
            MigrationError::Mismatch(v) => write!(f, "the copy differs from its source: {v}"),
            MigrationError::NotOnSqlite => f.write_str("the store is not on SQLite: nothing to cut over"),
            MigrationError::UnmovableRow { checkpoint_id, reason } => {
                write!(f, "source row {checkpoint_id} cannot be copied: {reason} (fix or delete it in the file)")
            }
            MigrationError::HoldTooLong { limit } => write!(
                f,
                "the cut-over would hold the writers over {} ms: released, still on SQLite (try again)",
                limit.as_millis()
            ),
            MigrationError::OtherSource { store, migration } => {
                write!(f, "the store writes {} but the migration copies {}", store.display(), migration.display())
            }
        }
    }
}

impl std::error::Error for MigrationError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MigrationError::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<CheckpointError> for MigrationError {
    fn from(e: CheckpointError) -> Self {
        MigrationError::Store(e)
    }
}

impl From<rusqlite::Error> for MigrationError {
    fn from(e: rusqlite::Error) -> Self {
        MigrationError::Store(e.into())
    }
}

impl From<r2d2_postgres::postgres::Error> for MigrationError {
    fn from(e: r2d2_postgres::postgres::Error) -> Self {
        MigrationError::Store(e.into())
    }
}

/// Where a copy stands after a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Rows this batch inserted (a row already there is not counted).
    pub copied: u64,
    /// Source rows after the last one copied: what is left right now.
    pub remaining: u64,
    /// The largest source id now in PostgreSQL (0: none yet).
    pub last_id: i64,
}

/// Source and copy compared over a range of source ids: rows and a SHA-256
/// over every row's id, thread, time and state, in id order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Source ids above this one...
    pub after_id: i64,
    /// ...up to and including this one.
    pub up_to_id: i64,
    /// Rows in the source in that range.
    pub source_rows: u64,
    /// Rows copied from this source in that range.
    pub target_rows: u64,
    /// The source rows' checksum (hex).
    pub source_checksum: String,
    /// The copies' checksum (hex).
    pub target_checksum: String,
}

impl Verification {
    /// Same count and same checksum.
    pub fn is_exact(&self) -> bool {
        self.source_rows == self.target_rows && self.source_checksum == self.target_checksum
    }
}

impl std::fmt::Display for Verification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "source {} rows sha256 {}, copy {} rows sha256 {} (ids {}..={})",
            self.source_rows,
            short(&self.source_checksum),
            self.target_rows,
            short(&self.target_checksum),
            self.after_id + 1,
            self.up_to_id
        )
    }
}

fn short(hex: &str) -> &str {
    hex.get(..16).unwrap_or(hex)
}

/// A copy of one SQLite checkpoint file into a PostgreSQL store, resumable
/// and exact.
///
/// Each batch is one PostgreSQL transaction. A copied row keeps its source
/// file's store id and its SQLite id (columns `migrated_from`,
/// `migrated_id`) under a unique index, so a batch cut off by `kill -9` is
/// rolled back by the server and a batch sent twice inserts nothing the
/// second time. A copy resumes after the largest `migrated_id` of its
/// source: SQLite hands out ids in commit order, so no row below it can
/// appear later (rows deleted from PostgreSQL below it are not copied
/// again). A session advisory lock keeps two migrations of one file apart
/// ([`MigrationError::Busy`]); the server drops it with a killed process's
/// connection. Source rows are never changed; the file only gains a
/// `hotmeter_store` table (its store id, and where a cut-over sent it).
///
/// ```no_run
/// use hotmeter_checkpoint::{Migration, PostgresStore};
/// let target = PostgresStore::connect("postgres://app@127.0.0.1:5432/ckpt")?;
/// let migration = Migration::open("checkpoints.db", target)?;
/// while migration.copy_batch()?.remaining > 0 {}
/// let check = migration.verify()?;
/// assert!(check.is_exact(), "{check}");
/// # Ok::<(), hotmeter_checkpoint::MigrationError>(())
/// ```
pub struct Migration {
    source: Mutex<Connection>,
    source_path: PathBuf,
    source_id: String,
    target: PostgresStore,
    client: Mutex<Client>,
    batch_rows: usize,
    batch_bytes: usize,
    hold_limit: Duration,
    handles: Option<MigrationHandles>,
    started: Instant,
}

impl std::fmt::Debug for Migration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migration")
            .field("source_path", &self.source_path)
            .field("source_id", &self.source_id)
            .field("target", &self.target.describe())
            .field("batch_rows", &self.batch_rows)
            .finish_non_exhaustive()
    }
}

impl Migration {
    /// Opens the SQLite file at `source` (it must exist and hold a
    /// checkpoint table; it is never created here), gives it a store id if
    /// it has none, and takes the migration lock of that id on `target`.
    pub fn open(source: impl AsRef<Path>, target: PostgresStore) -> Result<Self, MigrationError> {
        let source_path = source.as_ref().to_path_buf();
        let conn = Connection::open_with_flags(
            &source_path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let below: Option<i64> =
            conn.query_row("SELECT MIN(checkpoint_id) FROM checkpoints WHERE checkpoint_id <= 0", [], |r| r.get(0))?;
        if let Some(checkpoint_id) = below {
            return Err(MigrationError::UnmovableRow { checkpoint_id, reason: "its id is not positive" });
        }
        let source_id = store_id(&conn, &source_path)?;
        let client = connect_locked(&target, &source_id)?;
        Ok(Migration {
            source: Mutex::new(conn),
            source_path,
            source_id,
            target,
            client: Mutex::new(client),
            batch_rows: DEFAULT_BATCH_ROWS,
            batch_bytes: DEFAULT_BATCH_BYTES,
            hold_limit: DEFAULT_HOLD_LIMIT,
            handles: None,
            started: Instant::now(),
        })
    }

    /// Rows per transaction (default [`DEFAULT_BATCH_ROWS`], at least 1).
    pub fn batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }

    /// Bytes of state per transaction (default [`DEFAULT_BATCH_BYTES`]): a
    /// batch ends early once its states reach this; it always holds at
    /// least one row.
    pub fn batch_bytes(mut self, bytes: usize) -> Self {
        self.batch_bytes = bytes.max(1);
        self
    }

    /// How long a cut-over may hold the writers (default
    /// [`DEFAULT_HOLD_LIMIT`]): each statement it runs meanwhile is limited
    /// to it on the server (`statement_timeout`, `lock_timeout`), and past
    /// it the writers are released on SQLite
    /// ([`MigrationError::HoldTooLong`]). A server that stops answering at
    /// all (a frozen process, a black-holed network) is not bounded by it.
    pub fn hold_limit(mut self, limit: Duration) -> Self {
        self.hold_limit = limit.max(Duration::from_millis(1));
        self
    }

    /// Publishes the copy's progress on `registry`:
    /// `checkpoint_migration_rows_copied_total`, `..._rows_remaining`,
    /// `..._duration_seconds`, `..._phase{phase}` and, after a cut-over,
    /// `..._pause_seconds` (names in [`metrics`](crate::metrics)).
    pub fn with_metrics(mut self, registry: &hotmeter::Registry) -> Result<Self, hotmeter::RegistryError> {
        let handles = MigrationHandles::register(registry)?;
        handles.set_phase(MigrationPhase::Copying);
        self.handles = Some(handles);
        Ok(self)
    }

    /// The source file.
    pub fn source_path(&self) -> &Path {
        &self.source_path
    }

    /// The source file's store id (kept in its `hotmeter_store` table; the
    /// copies carry it in `migrated_from`).
    pub fn source_id(&self) -> &str {
        &self.source_id
    }

    /// The store the rows go to.
    pub fn target(&self) -> &PostgresStore {
        &self.target
    }

    /// Copies the next batch (one transaction) and says what is left.
    pub fn copy_batch(&self) -> Result<Progress, MigrationError> {
        let result = self.copy_batch_inner();
        if result.is_err() {
            self.set_phase(MigrationPhase::Failed);
        }
        result
    }

    fn copy_batch_inner(&self) -> Result<Progress, MigrationError> {
        let mut client = lock(&self.client);
        if client.is_closed() {
            // The connection broke (a server restart, a batch too big for
            // it): a new one, with the lock taken again.
            *client = connect_locked(&self.target, &self.source_id)?;
        }
        let after = resume_point(&mut client, &self.source_id)?;
        let rows = {
            let source = lock(&self.source);
            let mut stmt = source.prepare_cached(
                "SELECT checkpoint_id, thread_id, created_at_ms, state FROM checkpoints
                 WHERE checkpoint_id > ?1 ORDER BY checkpoint_id LIMIT ?2",
            )?;
            let limit = i64::try_from(self.batch_rows).unwrap_or(i64::MAX);
            let mut rows = stmt.query(params![after, limit])?;
            let (mut batch, mut bytes) = (Vec::new(), 0);
            while let Some(r) = rows.next()? {
                let c = source_row(r)?;
                bytes += c.state.len() + c.thread_id.len();
                batch.push(c);
                if bytes >= self.batch_bytes {
                    break;
                }
            }
            batch
        };
        let mut copied = 0;
        let last_id = rows.last().map_or(after, |c| c.checkpoint_id);
        if !rows.is_empty() {
            let mut ids = Vec::with_capacity(rows.len());
            let mut threads = Vec::with_capacity(rows.len());
            let mut times = Vec::with_capacity(rows.len());
            let mut states = Vec::with_capacity(rows.len());
            for c in rows {
                ids.push(c.checkpoint_id);
                threads.push(c.thread_id);
                times.push(c.created_at_ms);
                states.push(c.state);
            }
            let mut tx = client.transaction()?;
            copied = tx.execute(
                "INSERT INTO checkpoints (thread_id, created_at_ms, state, migrated_from, migrated_id)
                 SELECT t, c, s, $1, i FROM UNNEST($2::BIGINT[], $3::TEXT[], $4::BIGINT[], $5::BYTEA[]) AS u(i, t, c, s)
                 ORDER BY i
                 ON CONFLICT (migrated_from, migrated_id) DO NOTHING",
                &[&self.source_id, &ids, &threads, &times, &states],
            )?;
            tx.commit()?;
        }
        drop(client);
        let remaining: i64 = lock(&self.source).query_row(
            "SELECT COUNT(*) FROM checkpoints WHERE checkpoint_id > ?1",
            [last_id],
            |r| r.get(0),
        )?;
        let progress = Progress { copied, remaining: u64::try_from(remaining).unwrap_or(0), last_id };
        if let Some(h) = &self.handles {
            h.copied.inc_by(copied);
            h.remaining.set(remaining);
            h.duration.set(self.started.elapsed().as_secs_f64());
        }
        Ok(progress)
    }

    /// Copies batches until nothing is left at the moment of asking,
    /// calling `each` after every batch. Writers may add rows meanwhile:
    /// they are left for the next call (or the cut-over).
    pub fn copy_all(&self, mut each: impl FnMut(&Progress)) -> Result<u64, MigrationError> {
        let mut total = 0;
        loop {
            let p = self.copy_batch()?;
            total += p.copied;
            each(&p);
            if p.remaining == 0 {
                return Ok(total);
            }
        }
    }

    /// Compares every copied row with its source (from the first id up to
    /// the last copied).
    pub fn verify(&self) -> Result<Verification, MigrationError> {
        let up_to = resume_point(&mut lock(&self.client), &self.source_id)?;
        self.verify_range(0, up_to)
    }

    /// Compares source ids in `after_id < id <= up_to_id`.
    pub fn verify_range(&self, after_id: i64, up_to_id: i64) -> Result<Verification, MigrationError> {
        let mut check = Check::new(after_id);
        check.extend(self, up_to_id)?;
        Ok(check.result())
    }

    /// Limits every statement of the migration's connection, and a wait
    /// for the file's write lock, to what is `left` of the hold (`None`:
    /// lifts the limits).
    fn limit_statements(&self, left: Option<Duration>) -> Result<(), MigrationError> {
        let sql = match left {
            Some(left) => {
                // PostgreSQL takes at most i32::MAX ms.
                let ms = left.as_millis().clamp(1, i32::MAX as u128);
                lock(&self.source).busy_timeout(Duration::from_millis(ms as u64))?;
                format!("SET statement_timeout = {ms}; SET lock_timeout = {ms}")
            }
            None => {
                lock(&self.source).busy_timeout(Duration::from_secs(5))?;
                "RESET statement_timeout; RESET lock_timeout".to_owned()
            }
        };
        lock(&self.client).batch_execute(&sql)?;
        Ok(())
    }

    /// Records in the source file that its checkpoints now live in the
    /// target (see [`migrated_to`]).
    /// A trigger then refuses every later insert into the file, from any
    /// writer or process, so no checkpoint can be stranded there.
    fn seal(&self) -> Result<(), MigrationError> {
        let source = lock(&self.source);
        source.execute(
            "INSERT OR REPLACE INTO hotmeter_store (key, value) VALUES ('migrated_to', ?1)",
            [format!("{} at {}", self.target.describe(), crate::decision::rfc3339(std::time::SystemTime::now()))],
        )?;
        source.execute_batch(
            "CREATE TRIGGER IF NOT EXISTS hotmeter_sealed BEFORE INSERT ON checkpoints
             BEGIN SELECT RAISE(ABORT, 'this checkpoint file was migrated to PostgreSQL (see hotmeter_store.migrated_to)'); END;",
        )?;
        Ok(())
    }

    fn set_phase(&self, phase: MigrationPhase) {
        if let Some(h) = &self.handles {
            h.set_phase(phase);
            h.duration.set(self.started.elapsed().as_secs_f64());
        }
    }
}

/// Where the SQLite file at `path` was migrated to, if a cut-over sealed
/// it: the target (without password) and when. A writer that finds this
/// must not write to the file any more.
pub fn migrated_to(path: impl AsRef<Path>) -> Result<Option<String>, CheckpointError> {
    let conn = Connection::open_with_flags(
        path.as_ref(),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
    );
    let conn = match conn {
        Ok(c) => c,
        // No file yet: nothing was migrated from it.
        Err(_) if !path.as_ref().exists() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let has_table: Option<i64> = conn
        .query_row("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'hotmeter_store'", [], |r| r.get(0))
        .optional()?;
    if has_table.is_none() {
        return Ok(None);
    }
    Ok(conn.query_row("SELECT value FROM hotmeter_store WHERE key = 'migrated_to'", [], |r| r.get(0)).optional()?)
}

/// A verification in progress: both sides' row counts and running
/// SHA-256s, so consecutive ranges check as one (the cut-over checks the
/// bulk while writers go on, then only the tail while they are held).
#[derive(Clone)]
struct Check {
    after_id: i64,
    up_to_id: i64,
    source_rows: u64,
    target_rows: u64,
    source: Sha256,
    target: Sha256,
}

impl Check {
    fn new(after_id: i64) -> Self {
        Check {
            after_id,
            up_to_id: after_id,
            source_rows: 0,
            target_rows: 0,
            source: Sha256::new(),
            target: Sha256::new(),
        }
    }

    /// Adds the source ids after the last one checked, up to `up_to_id`.
    fn extend(&mut self, m: &Migration, up_to_id: i64) -> Result<(), MigrationError> {
        let after_id = self.up_to_id;
        {
            let source = lock(&m.source);
            // Ids a copy never reaches (it starts after 0): refused, never
            // left behind unseen.
            let below: Option<i64> =
                source.query_row("SELECT MIN(checkpoint_id) FROM checkpoints WHERE checkpoint_id <= 0", [], |r| {
                    r.get(0)
                })?;
            if let Some(checkpoint_id) = below {
                return Err(MigrationError::UnmovableRow { checkpoint_id, reason: "its id is not positive" });
            }
            let mut stmt = source.prepare_cached(
                "SELECT checkpoint_id, thread_id, created_at_ms, state FROM checkpoints
                 WHERE checkpoint_id > ?1 AND checkpoint_id <= ?2 ORDER BY checkpoint_id",
            )?;
            let mut rows = stmt.query(params![after_id, up_to_id])?;
            while let Some(r) = rows.next()? {
                hash_row(&mut self.source, &source_row(r)?);
                self.source_rows += 1;
            }
        }
        let mut client = lock(&m.client);
        let params: [&(dyn r2d2_postgres::postgres::types::ToSql + Sync); 3] = [&m.source_id, &after_id, &up_to_id];
        let mut rows = client.query_raw(
            "SELECT migrated_id, thread_id, created_at_ms, state FROM checkpoints
             WHERE migrated_from = $1 AND migrated_id > $2 AND migrated_id <= $3 ORDER BY migrated_id",
            params,
        )?;
        while let Some(r) = rows.next()? {
            let c = Checkpoint {
                checkpoint_id: r.try_get(0)?,
                thread_id: r.try_get(1)?,
                created_at_ms: r.try_get(2)?,
                state: r.try_get(3)?,
            };
            hash_row(&mut self.target, &c);
            self.target_rows += 1;
        }
        self.up_to_id = up_to_id.max(after_id);
        Ok(())
    }

    fn result(&self) -> Verification {
        Verification {
            after_id: self.after_id,
            up_to_id: self.up_to_id,
            source_rows: self.source_rows,
            target_rows: self.target_rows,
            source_checksum: hex(&self.source.clone().finalize()),
            target_checksum: hex(&self.target.clone().finalize()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic mid-statement leaves nothing the database did not roll back.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A source row, checked for what PostgreSQL can hold. SQLite keeps what
/// any writer gave it: a state stored as text is copied as its bytes; a
/// thread id that is not UTF-8 text without NUL, a time that is not an
/// integer, or a missing or oversized state is [`MigrationError::UnmovableRow`],
/// naming the row.
fn source_row(r: &rusqlite::Row<'_>) -> Result<Checkpoint, MigrationError> {
    use rusqlite::types::ValueRef;
    let checkpoint_id: i64 = r.get(0)?;
    let unmovable = |reason| MigrationError::UnmovableRow { checkpoint_id, reason };
    let thread_id = match r.get_ref(1)? {
        ValueRef::Text(bytes) => std::str::from_utf8(bytes).map_err(|_| unmovable("its thread id is not UTF-8"))?,
        _ => return Err(unmovable("its thread id is not text")),
    };
    if thread_id.contains('\0') {
        return Err(unmovable("its thread id holds a NUL character"));
    }
    let created_at_ms = match r.get_ref(2)? {
        ValueRef::Integer(ms) => ms,
        _ => return Err(unmovable("its created_at_ms is not an integer")),
    };
    let state = match r.get_ref(3)? {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => bytes,
        _ => return Err(unmovable("its state is not bytes")),
    };
    if state.len() > MAX_STATE_BYTES {
        return Err(unmovable("its state is over 256 MiB"));
    }
    Ok(Checkpoint { checkpoint_id, thread_id: thread_id.to_owned(), created_at_ms, state: state.to_vec() })
}

/// A connection of the migration's own, holding the source's advisory lock.
/// Its commits are durable whatever the store's durability: a copy is
/// verified, and the file sealed, on the strength of them.
fn connect_locked(target: &PostgresStore, source_id: &str) -> Result<Client, MigrationError> {
    let mut client = target.dedicated()?;
    client.batch_execute("SET synchronous_commit = on")?;
    let locked: bool = client.query_one("SELECT pg_try_advisory_lock($1)", &[&lock_key(source_id)])?.try_get(0)?;
    if !locked {
        return Err(MigrationError::Busy { source_id: source_id.to_owned() });
    }
    Ok(client)
}

/// The largest source id copied so far (0: none).
fn resume_point(client: &mut Client, source_id: &str) -> Result<i64, MigrationError> {
    let row = client
        .query_one("SELECT COALESCE(MAX(migrated_id), 0) FROM checkpoints WHERE migrated_from = $1", &[&source_id])?;
    Ok(row.try_get(0)?)
}

/// The file's store id, created on first use: random enough that two
/// files never share one (time, process, path and the file's first rows).
fn store_id(conn: &Connection, path: &Path) -> Result<String, MigrationError> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS hotmeter_store (key TEXT PRIMARY KEY, value TEXT NOT NULL)")?;
    let mut seed = Sha256::new();
    seed.update(now_ms().to_le_bytes());
    seed.update(std::process::id().to_le_bytes());
    seed.update(path.as_os_str().as_encoded_bytes());
    seed.update(format!("{:?}", Instant::now()).as_bytes());
    let candidate = format!("sqlite-{}", &hex(&seed.finalize())[..20]);
    conn.execute("INSERT OR IGNORE INTO hotmeter_store (key, value) VALUES ('store_id', ?1)", [&candidate])?;
    Ok(conn.query_row("SELECT value FROM hotmeter_store WHERE key = 'store_id'", [], |r| r.get(0))?)
}

fn lock_key(source_id: &str) -> i64 {
    let digest = Sha256::digest(format!("hotmeter-migration:{source_id}").as_bytes());
    i64::from_le_bytes(digest[..8].try_into().unwrap_or([0; 8]))
}

fn hash_row(h: &mut Sha256, c: &Checkpoint) {
    h.update(c.checkpoint_id.to_le_bytes());
    h.update((c.thread_id.len() as u64).to_le_bytes());
    h.update(c.thread_id.as_bytes());
    h.update(c.created_at_ms.to_le_bytes());
    h.update((c.state.len() as u64).to_le_bytes());
    h.update(&c.state);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a cut-over did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cutover {
    /// How long writers were held: the last rows' copy and check.
    pub pause: Duration,
    /// Rows copied while they were held.
    pub copied_during_pause: u64,
    /// Every source row against its copy (one count and checksum over
    /// the whole file), checked before the switch.
    pub verification: Verification,
}

#[derive(Debug)]
enum Active {
    Sqlite(Arc<SqliteStore>),
    Postgres(PostgresStore),
}

/// The store writers use: SQLite until [`cut_over`](Self::cut_over),
/// PostgreSQL after (or from the start). Every call goes to the store in
/// force; a cut-over waits for the calls under way and holds new ones for
/// its pause.
#[derive(Debug)]
pub struct CutoverStore {
    active: RwLock<Active>,
}

impl CutoverStore {
    /// Writes to `store` until a cut-over.
    pub fn sqlite(store: Arc<SqliteStore>) -> Self {
        CutoverStore { active: RwLock::new(Active::Sqlite(store)) }
    }

    /// Writes to `store`, for good.
    pub fn postgres(store: PostgresStore) -> Self {
        CutoverStore { active: RwLock::new(Active::Postgres(store)) }
    }

    /// `sqlite` or `postgres`: the database in force.
    pub fn backend(&self) -> &'static str {
        match &*self.read() {
            Active::Sqlite(_) => "sqlite",
            Active::Postgres(_) => "postgres",
        }
    }

    /// Copies what `migration` has not copied yet, checks it, and switches
    /// the writers to its target; then checks every row. The copy done
    /// before (with [`Migration::copy_all`]) keeps the pause short.
    ///
    /// Steps: copy all (writers go on); verify what is copied (writers go
    /// on); hold the writers (a write lock every call takes for reading)
    /// for at most [`Migration::hold_limit`], copy and verify the last rows
    /// (one count and checksum over the whole file with the bulk), record
    /// the target in the file ([`migrated_to`]) and switch; release. Rows
    /// written after the switch get larger ids than every copy, so each
    /// thread's latest checkpoint stays its latest. Every fallible step
    /// comes before the switch: an `Ok` means switched, an error means the
    /// writers are still on SQLite.
    ///
    /// On an error the writers stay on SQLite and nothing is lost: run it
    /// again (it resumes).
    pub fn cut_over(&self, migration: &Migration) -> Result<Cutover, MigrationError> {
        let result = self.cut_over_inner(migration);
        match &result {
            Ok(_) => migration.set_phase(MigrationPhase::Done),
            // Refused before anything ran: the migration's phase stands.
            Err(MigrationError::NotOnSqlite | MigrationError::OtherSource { .. }) => {}
            Err(_) => migration.set_phase(MigrationPhase::Failed),
        }
        result
    }

    fn cut_over_inner(&self, migration: &Migration) -> Result<Cutover, MigrationError> {
        match &*self.read() {
            Active::Sqlite(s) => same_file(s.path(), migration.source_path())?,
            Active::Postgres(_) => return Err(MigrationError::NotOnSqlite),
        }
        migration.copy_all(|_| {})?;
        migration.set_phase(MigrationPhase::CuttingOver);
        // What is copied so far, checked while writers go on.
        let bulk_end = resume_point(&mut lock(&migration.client), &migration.source_id)?;
        let mut check = Check::new(0);
        check.extend(migration, bulk_end)?;
        if !check.result().is_exact() {
            return Err(MigrationError::Mismatch(Box::new(check.result())));
        }
        let (pause, copied_during_pause) = {
            let mut active = self.active.write().unwrap_or_else(PoisonError::into_inner);
            let held = Instant::now();
            if !matches!(*active, Active::Sqlite(_)) {
                return Err(MigrationError::NotOnSqlite);
            }
            // What is left of the hold: every step below is limited to it
            // (server statements, the file's write lock), and none starts
            // once it is spent.
            let left = || {
                migration
                    .hold_limit
                    .checked_sub(held.elapsed())
                    .filter(|d| !d.is_zero())
                    .ok_or(MigrationError::HoldTooLong { limit: migration.hold_limit })
            };
            let tail = (|| {
                migration.limit_statements(Some(left()?))?;
                // Writers of the file in other processes (or other stores)
                // wait too, from here to the seal: the last rows are the
                // last rows.
                lock(&migration.source).execute_batch("BEGIN IMMEDIATE")?;
                let mut copied = 0;
                loop {
                    migration.limit_statements(Some(left()?))?;
                    let p = migration.copy_batch()?;
                    copied += p.copied;
                    if p.remaining == 0 {
                        break;
                    }
                }
                // The rest, checked on top of the bulk: the whole file,
                // as one checksum, before anything switches.
                migration.limit_statements(Some(left()?))?;
                let end = resume_point(&mut lock(&migration.client), &migration.source_id)?;
                check.extend(migration, end)?;
                if !check.result().is_exact() {
                    return Err(MigrationError::Mismatch(Box::new(check.result())));
                }
                migration.limit_statements(Some(left()?))?;
                migration.seal()?;
                lock(&migration.source).execute_batch("COMMIT")?;
                Ok(copied)
            })();
            if tail.is_err() {
                // Not sealed: the file's writers go on.
                let source = lock(&migration.source);
                if !source.is_autocommit() {
                    let _ = source.execute_batch("ROLLBACK");
                }
            }
            // The limits are lifted whatever happened (a broken connection
            // is replaced by the next batch anyway).
            let _ = migration.limit_statements(None);
            let copied = tail?;
            *active = Active::Postgres(migration.target.clone());
            (held.elapsed(), copied)
        };
        if let Some(h) = &migration.handles {
            h.pause.set(pause.as_secs_f64());
        }
        // Every row was checked before the switch: nothing after it can
        // fail the cut-over.
        Ok(Cutover { pause, copied_during_pause, verification: check.result() })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Active> {
        self.active.read().unwrap_or_else(PoisonError::into_inner)
    }
}

fn same_file(store: &Path, migration: &Path) -> Result<(), MigrationError> {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    if canonical(store) == canonical(migration) {
        Ok(())
    } else {
        Err(MigrationError::OtherSource { store: store.to_path_buf(), migration: migration.to_path_buf() })
    }
}

impl CheckpointStore for CutoverStore {
    fn put(&self, thread_id: &str, state: &[u8]) -> Result<i64, CheckpointError> {
        match &*self.read() {
            Active::Sqlite(s) => s.put(thread_id, state),
            Active::Postgres(p) => p.put(thread_id, state),
        }
    }

    fn get(&self, thread_id: &str) -> Result<Option<Checkpoint>, CheckpointError> {
        match &*self.read() {
            Active::Sqlite(s) => s.get(thread_id),
            Active::Postgres(p) => p.get(thread_id),
        }
    }

    fn list(&self, thread_id: &str, limit: usize) -> Result<Vec<Checkpoint>, CheckpointError> {
        match &*self.read() {
            Active::Sqlite(s) => s.list(thread_id, limit),
            Active::Postgres(p) => p.list(thread_id, limit),
        }
    }

    fn file_size_bytes(&self) -> Option<u64> {
        match &*self.read() {
            Active::Sqlite(s) => s.file_size_bytes(),
            Active::Postgres(p) => p.file_size_bytes(),
        }
    }

    fn pool_usage(&self) -> Option<(u32, u32)> {
        match &*self.read() {
            Active::Sqlite(s) => s.pool_usage(),
            Active::Postgres(p) => p.pool_usage(),
        }
    }
}
