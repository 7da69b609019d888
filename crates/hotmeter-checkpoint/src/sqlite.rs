//! The SQLite checkpoint store: one file, WAL mode, durable commits by default.
//!
//! Owns: the connection, the schema and the durability setting. Must not:
//! acknowledge a write before it is committed with the chosen durability,
//! or record metrics (wrap it in a `MonitoredStore`).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use crate::store::{Checkpoint, CheckpointError, CheckpointStore, now_ms, validate_thread_id};

/// How hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: a commit returns after the WAL is synced, so a
    /// power loss keeps every acknowledged checkpoint. The default, so the
    /// write ceiling users see is the real one.
    #[default]
    Full,
    /// `synchronous=NORMAL`: the WAL is synced at checkpoints only; a power
    /// loss may lose the latest commits (never corrupt the file). Faster.
    Normal,
}

impl Durability {
    /// Every mode, strongest first.
    pub const ALL: [Durability; 2] = [Durability::Full, Durability::Normal];

    /// `full` or `normal`: SQLite's name for the `synchronous` setting.
    pub const fn as_str(self) -> &'static str {
        match self {
            Durability::Full => "full",
            Durability::Normal => "normal",
        }
    }
}

/// A [`CheckpointStore`] in one SQLite file (bundled SQLite, WAL mode).
///
/// One connection behind a mutex: a single-file database has one writer at
/// a time anyway, so concurrent `put`s queue here rather than on SQLite's
/// busy handler. That is the ceiling the capacity alerts watch.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens or creates the database at `path` with durable commits.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CheckpointError> {
        Self::open_with(path, Durability::Full)
    }

    /// Opens or creates the database at `path` with this durability.
    pub fn open_with(path: impl AsRef<Path>, durability: Durability) -> Result<Self, CheckpointError> {
        let path = path.as_ref().to_path_buf();
        let conn = Connection::open(&path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        debug_assert_eq!(mode.to_ascii_lowercase(), "wal");
        conn.pragma_update(
            None,
            "synchronous",
            match durability {
                Durability::Full => "FULL",
                Durability::Normal => "NORMAL",
            },
        )?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS checkpoints (
                 checkpoint_id INTEGER PRIMARY KEY AUTOINCREMENT,
                 thread_id     TEXT    NOT NULL,
                 created_at_ms INTEGER NOT NULL,
                 state         BLOB    NOT NULL
             );
             CREATE INDEX IF NOT EXISTS checkpoints_by_thread ON checkpoints (thread_id, checkpoint_id);",
        )?;
        Ok(SqliteStore { conn: Mutex::new(conn), path })
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checkpoints stored, over all threads.
    pub fn count(&self) -> Result<u64, CheckpointError> {
        let n: i64 = self.conn().query_row("SELECT COUNT(*) FROM checkpoints", [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Checkpoints whose thread id starts with `prefix` (`""`: all).
    pub fn count_prefix(&self, prefix: &str) -> Result<u64, CheckpointError> {
        let n: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM checkpoints WHERE substr(thread_id, 1, length(?1)) = ?1",
            [prefix],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The durability setting in force (`synchronous` read back from SQLite).
    pub fn durability(&self) -> Result<Durability, CheckpointError> {
        let level: i64 = self.conn().query_row("PRAGMA synchronous", [], |r| r.get(0))?;
        Ok(if level >= 2 { Durability::Full } else { Durability::Normal })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the connection leaves no half-written state
        // SQLite did not roll back, so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Checkpoint> {
    Ok(Checkpoint { checkpoint_id: r.get(0)?, thread_id: r.get(1)?, created_at_ms: r.get(2)?, state: r.get(3)? })
}

impl CheckpointStore for SqliteStore {
    fn put(&self, thread_id: &str, state: &[u8]) -> Result<i64, CheckpointError> {
        validate_thread_id(thread_id)?;
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("INSERT INTO checkpoints (thread_id, created_at_ms, state) VALUES (?1, ?2, ?3)")?;
        stmt.execute(params![thread_id, now_ms(), state])?;
        Ok(conn.last_insert_rowid())
    }

    fn get(&self, thread_id: &str) -> Result<Option<Checkpoint>, CheckpointError> {
        validate_thread_id(thread_id)?;
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT checkpoint_id, thread_id, created_at_ms, state FROM checkpoints
             WHERE thread_id = ?1 ORDER BY checkpoint_id DESC LIMIT 1",
        )?;
        Ok(stmt.query_row(params![thread_id], row).optional()?)
    }

    fn list(&self, thread_id: &str, limit: usize) -> Result<Vec<Checkpoint>, CheckpointError> {
        validate_thread_id(thread_id)?;
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT checkpoint_id, thread_id, created_at_ms, state FROM checkpoints
             WHERE thread_id = ?1 ORDER BY checkpoint_id DESC LIMIT ?2",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![thread_id, limit], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn file_size_bytes(&self) -> Option<u64> {
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        Some(size(&self.path) + size(Path::new(&wal)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_list_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("c.db")).unwrap();
        assert_eq!(store.durability().unwrap(), Durability::Full);
        assert_eq!(store.get("t1").unwrap(), None);
        let a = store.put("t1", b"one").unwrap();
        let b = store.put("t1", b"two").unwrap();
        store.put("t2", b"other").unwrap();
        assert!(b > a);
        let latest = store.get("t1").unwrap().unwrap();
        assert_eq!((latest.checkpoint_id, latest.state.as_slice()), (b, &b"two"[..]));
        let all: Vec<Vec<u8>> = store.list("t1", 10).unwrap().into_iter().map(|c| c.state).collect();
        assert_eq!(all, [b"two".to_vec(), b"one".to_vec()]);
        assert_eq!(store.list("t1", 1).unwrap().len(), 1);
        assert_eq!(store.count().unwrap(), 3);
        assert!(store.file_size_bytes().unwrap() > 0);
    }

    #[test]
    fn reopen_keeps_data_and_normal_durability_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        SqliteStore::open(&path).unwrap().put("t", b"x").unwrap();
        let store = SqliteStore::open_with(&path, Durability::Normal).unwrap();
        assert_eq!(store.durability().unwrap(), Durability::Normal);
        assert_eq!(store.count().unwrap(), 1);
    }

    #[test]
    fn bad_thread_ids_and_bad_paths_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("c.db")).unwrap();
        assert!(matches!(store.put("", b"x"), Err(CheckpointError::InvalidThreadId { .. })));
        assert!(matches!(store.get(&"x".repeat(300)), Err(CheckpointError::InvalidThreadId { .. })));
        let err = SqliteStore::open(dir.path().join("missing-dir").join("c.db")).unwrap_err();
        assert!(matches!(err, CheckpointError::Sqlite(_)), "{err:?}");
        assert!(std::error::Error::source(&err).is_some());
    }
}
