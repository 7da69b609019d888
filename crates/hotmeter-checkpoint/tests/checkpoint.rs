//! The checkpoint store behind `MonitoredStore`: counted exactly, errors
//! returned unchanged, the metric agreeing with the rows in the file.

use std::sync::Arc;

use hotmeter::{OwnedValue, Registry};
use hotmeter_checkpoint::metrics as names;
use hotmeter_checkpoint::{CheckpointError, CheckpointStore, FaultInjectingStore, MonitoredStore, SqliteStore};

/// Rows counted through a separate connection: what a person inspecting
/// the file would see.
fn rows_in_file(path: &std::path::Path) -> u64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM checkpoints", [], |r| r.get(0)).unwrap();
    n as u64
}

#[test]
fn successes_equal_rows_and_injected_errors_are_counted_and_returned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoints.db");
    let registry = Registry::new();
    let faulty = FaultInjectingStore::new(SqliteStore::open(&path).unwrap(), 0.1, 42).unwrap();
    let store = Arc::new(MonitoredStore::new(faulty, &registry).unwrap());

    const THREADS: usize = 4;
    const WRITES: usize = 150;
    let (ok, injected): (u64, u64) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = store.clone();
                s.spawn(move || {
                    let (mut ok, mut injected) = (0u64, 0u64);
                    for i in 0..WRITES {
                        match store.put(&format!("worker-{t}"), format!("state {i}").as_bytes()) {
                            Ok(_) => ok += 1,
                            Err(CheckpointError::Injected { .. }) => injected += 1,
                            Err(e) => panic!("unexpected error: {e}"),
                        }
                    }
                    (ok, injected)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    });
    assert_eq!(ok + injected, (THREADS * WRITES) as u64);
    assert!(injected > 0 && ok > 0);
    assert_eq!(store.inner().injected(), injected, "every injected fault reached the caller");

    let snap = registry.snapshot();
    assert_eq!(snap.value(names::CHECKPOINT_WRITES, &["success"]), Some(&OwnedValue::Counter(ok)));
    assert_eq!(snap.value(names::CHECKPOINT_WRITES, &["error"]), Some(&OwnedValue::Counter(injected)));
    assert_eq!(rows_in_file(&path), ok, "checkpoint_writes_total{{status=\"success\"}} == rows in the file");
    match snap.value(names::CHECKPOINT_WRITE_DURATION, &[]) {
        Some(OwnedValue::NativeHistogram { native, bounds, counts }) => {
            let hotmeter::native::NativeBuckets { count, zero_count, positive, .. } = native;
            assert_eq!(*count, ok + injected, "every write timed, failed ones too");
            assert_eq!(bounds.as_slice(), names::CHECKPOINT_WRITE_BUCKETS, "classic buckets alongside");
            assert_eq!(counts.iter().sum::<u64>(), *count, "classic buckets count the same writes");
            assert_eq!(zero_count + positive.iter().map(|b| b.1).sum::<u64>(), *count);
        }
        other => panic!("duration is {other:?}"),
    }
    match snap.value(names::CHECKPOINT_FILE_SIZE, &[]) {
        Some(OwnedValue::IntGauge(n)) => assert!(*n > 4096, "file size {n}"),
        other => panic!("file size is {other:?}"),
    }
    // The latest checkpoint of each thread is readable through the wrapper.
    let latest = store.get("worker-0").unwrap().expect("worker-0 wrote something");
    assert!(latest.state.starts_with(b"state "));
}

#[test]
fn real_database_errors_are_counted_and_returned_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let registry = Registry::new();
    let store = MonitoredStore::new(SqliteStore::open(&path).unwrap(), &registry).unwrap();
    store.put("t", b"ok").unwrap();
    // Sabotage the table behind the store's back: inserts now fail in SQLite.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("DROP TABLE checkpoints; CREATE TABLE checkpoints (x INTEGER NOT NULL)")
        .unwrap();
    let err = store.put("t", b"fails").unwrap_err();
    assert!(matches!(err, CheckpointError::Sqlite(_)), "{err:?}");
    assert!(matches!(store.put("", b"x"), Err(CheckpointError::InvalidThreadId { .. })));
    assert_eq!(store.successes(), 1);
    assert_eq!(store.errors(), 2);
}

#[test]
fn fault_rates_are_validated_and_converge() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [-0.1, 1.5, f64::NAN] {
        assert!(FaultInjectingStore::new(SqliteStore::open(dir.path().join("x.db")).unwrap(), bad, 1).is_err());
    }
    let none = FaultInjectingStore::new(SqliteStore::open(dir.path().join("n.db")).unwrap(), 0.0, 1).unwrap();
    let all = FaultInjectingStore::new(SqliteStore::open(dir.path().join("a.db")).unwrap(), 1.0, 1).unwrap();
    for _ in 0..20 {
        assert!(none.put("t", b"x").is_ok());
        assert!(all.put("t", b"x").is_err());
    }
    assert_eq!(none.inner().count().unwrap(), 20);
    assert_eq!(all.inner().count().unwrap(), 0, "a failed write stores nothing");
}

#[test]
fn async_use_records_like_blocking_use() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new();
    let faulty = FaultInjectingStore::new(SqliteStore::open(dir.path().join("c.db")).unwrap(), 1.0, 7).unwrap();
    let failing = MonitoredStore::new(faulty, &registry).unwrap().into_async();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        assert!(matches!(failing.put("t", b"x".to_vec()).await, Err(CheckpointError::Injected { write: 0 })));
        assert_eq!(failing.get("t").await.unwrap(), None);
    });
    let store =
        MonitoredStore::new(SqliteStore::open(dir.path().join("d.db")).unwrap(), &registry).unwrap().into_async();
    rt.block_on(async {
        let id = store.put("t", b"x".to_vec()).await.unwrap();
        assert_eq!(store.get("t").await.unwrap().unwrap().checkpoint_id, id);
        assert_eq!(store.list("t", 5).await.unwrap().len(), 1);
    });
    let snap = registry.snapshot();
    // Both stores share the registry's checkpoint metrics.
    assert_eq!(snap.value(names::CHECKPOINT_WRITES, &["success"]), Some(&OwnedValue::Counter(1)));
    assert_eq!(snap.value(names::CHECKPOINT_WRITES, &["error"]), Some(&OwnedValue::Counter(1)));
}
