//! The async adapter: a monitored store callable from async code.
//!
//! Owns: moving each call onto tokio's blocking pool. Must not: record
//! anything itself (the [`MonitoredStore`] it wraps does) or run a durable
//! commit on a reactor thread.

use crate::monitored::MonitoredStore;
use crate::store::{Checkpoint, CheckpointError, CheckpointStore};

/// A [`MonitoredStore`] for async code: each call runs on tokio's blocking
/// pool (`spawn_blocking`), so a durable commit never stalls the reactor.
/// Must be called from within a tokio runtime.
#[derive(Debug)]
pub struct AsyncCheckpointStore<S> {
    inner: MonitoredStore<S>,
}

impl<S> MonitoredStore<S> {
    /// The same store, for async callers.
    pub fn into_async(self) -> AsyncCheckpointStore<S> {
        AsyncCheckpointStore { inner: self }
    }
}

impl<S> Clone for AsyncCheckpointStore<S> {
    fn clone(&self) -> Self {
        AsyncCheckpointStore { inner: self.inner.clone() }
    }
}

impl<S: CheckpointStore> AsyncCheckpointStore<S> {
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&MonitoredStore<S>) -> Result<T, CheckpointError> + Send + 'static,
    ) -> Result<T, CheckpointError> {
        let store = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&store)).await.map_err(CheckpointError::Task)?
    }

    /// [`CheckpointStore::put`], off the async threads; recorded like a blocking put.
    pub async fn put(&self, thread_id: impl Into<String>, state: Vec<u8>) -> Result<i64, CheckpointError> {
        let thread_id = thread_id.into();
        self.blocking(move |s| s.put(&thread_id, &state)).await
    }

    /// [`CheckpointStore::get`], off the async threads.
    pub async fn get(&self, thread_id: impl Into<String>) -> Result<Option<Checkpoint>, CheckpointError> {
        let thread_id = thread_id.into();
        self.blocking(move |s| s.get(&thread_id)).await
    }

    /// [`CheckpointStore::list`], off the async threads.
    pub async fn list(&self, thread_id: impl Into<String>, limit: usize) -> Result<Vec<Checkpoint>, CheckpointError> {
        let thread_id = thread_id.into();
        self.blocking(move |s| s.list(&thread_id, limit)).await
    }

    /// The blocking store underneath.
    pub fn blocking_store(&self) -> &MonitoredStore<S> {
        &self.inner
    }
}
