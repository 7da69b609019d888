//! The checkpoint store contract: what a checkpoint is, what can go wrong,
//! and the [`CheckpointStore`] trait every store implements.
//!
//! Owns: [`Checkpoint`], [`CheckpointError`], thread-id validation and the
//! trait (put / get / list, as an agent framework's checkpointer has).
//! Must not: know any implementation, or swallow an error — every failure
//! reaches the caller unchanged.

use std::fmt;

/// One stored checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The thread (worker, agent conversation, ...) it belongs to.
    pub thread_id: String,
    /// Its id, increasing within the store: later checkpoints have larger ids.
    pub checkpoint_id: i64,
    /// When it was written, in milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// The state, opaque bytes.
    pub state: Vec<u8>,
}

/// Longest thread id accepted, in bytes.
pub const MAX_THREAD_ID: usize = 256;

/// Why a checkpoint operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The thread id is empty, longer than [`MAX_THREAD_ID`] bytes, or
    /// holds a NUL character (which PostgreSQL's text cannot store).
    InvalidThreadId {
        /// The id given.
        thread_id: String,
    },
    /// The database failed (I/O, full disk, locked, corrupt...).
    Sqlite(rusqlite::Error),
    /// The PostgreSQL server refused or failed the statement, or the
    /// connection broke (its error says which, with the server's SQLSTATE
    /// when it answered).
    Postgres(r2d2_postgres::postgres::Error),
    /// No PostgreSQL connection could be had from the pool in time (the
    /// server is down or every connection is busy).
    Pool(r2d2_postgres::r2d2::Error),
    /// A fault injected by [`FaultInjectingStore`](crate::FaultInjectingStore).
    Injected {
        /// The write's sequence number in the injector.
        write: u64,
    },
    /// The blocking task running an async call panicked or was cancelled.
    Task(tokio::task::JoinError),
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::InvalidThreadId { thread_id } => {
                write!(f, "invalid thread id {thread_id:?}: must be 1 to {MAX_THREAD_ID} bytes, without NUL")
            }
            CheckpointError::Sqlite(_) => f.write_str("checkpoint database error"),
            CheckpointError::Postgres(_) => f.write_str("checkpoint database error (PostgreSQL)"),
            CheckpointError::Pool(_) => f.write_str("no PostgreSQL connection for the checkpoint store"),
            CheckpointError::Injected { write } => write!(f, "injected checkpoint write fault (write #{write})"),
            CheckpointError::Task(_) => f.write_str("checkpoint task failed"),
        }
    }
}

impl std::error::Error for CheckpointError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CheckpointError::Sqlite(e) => Some(e),
            CheckpointError::Task(e) => Some(e),
            CheckpointError::Postgres(e) => Some(e),
            CheckpointError::Pool(e) => Some(e),
            CheckpointError::InvalidThreadId { .. } | CheckpointError::Injected { .. } => None,
        }
    }
}

impl From<r2d2_postgres::postgres::Error> for CheckpointError {
    fn from(e: r2d2_postgres::postgres::Error) -> Self {
        CheckpointError::Postgres(e)
    }
}

impl From<rusqlite::Error> for CheckpointError {
    fn from(e: rusqlite::Error) -> Self {
        CheckpointError::Sqlite(e)
    }
}

/// Now, in milliseconds since the Unix epoch: a checkpoint's `created_at_ms`
/// in every store.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) fn validate_thread_id(thread_id: &str) -> Result<(), CheckpointError> {
    if thread_id.is_empty() || thread_id.len() > MAX_THREAD_ID || thread_id.contains('\0') {
        return Err(CheckpointError::InvalidThreadId { thread_id: thread_id.to_owned() });
    }
    Ok(())
}

/// A store of checkpoints keyed by thread id. Implementations are blocking
/// and shareable between threads; [`AsyncCheckpointStore`](crate::AsyncCheckpointStore) runs them from
/// async code.
pub trait CheckpointStore: Send + Sync + 'static {
    /// Writes a new checkpoint for `thread_id` and returns its id. When this
    /// returns `Ok`, the checkpoint is stored with the store's durability.
    fn put(&self, thread_id: &str, state: &[u8]) -> Result<i64, CheckpointError>;

    /// The latest checkpoint of `thread_id`, if it has any.
    fn get(&self, thread_id: &str) -> Result<Option<Checkpoint>, CheckpointError>;

    /// Up to `limit` checkpoints of `thread_id`, newest first.
    fn list(&self, thread_id: &str, limit: usize) -> Result<Vec<Checkpoint>, CheckpointError>;

    /// Bytes the store occupies on disk, if it is file-backed.
    fn file_size_bytes(&self) -> Option<u64> {
        None
    }

    /// Connections in use and the pool's size, if the store has a
    /// connection pool.
    fn pool_usage(&self) -> Option<(u32, u32)> {
        None
    }
}
