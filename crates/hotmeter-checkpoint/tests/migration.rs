//! A live migration from a SQLite file into PostgreSQL (issue #25), against
//! a throwaway cluster of the test's own: copies resume where they stopped
//! and never twice, verification catches a changed row, two migrations of
//! one file exclude each other, and a cut-over under four busy writers
//! loses nothing and keeps every thread's latest checkpoint its latest.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hotmeter::OwnedValue;
use hotmeter_checkpoint::{
    CheckpointStore, CutoverStore, Migration, MigrationError, PostgresStore, SqliteStore, migrated_to,
};
use hotmeter_testkit::Postgres;

/// A file of `rows` checkpoints; every tenth state stored as text, as a
/// writer other than `SqliteStore` may have left it (copied as its bytes).
fn sqlite_with(dir: &std::path::Path, rows: usize) -> std::path::PathBuf {
    let path = dir.join("c.db");
    let store = SqliteStore::open(&path).unwrap();
    for i in 0..rows {
        store.put(&format!("t{}", i % 3), format!("state {i}").as_bytes()).unwrap();
    }
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("UPDATE checkpoints SET state = CAST(state AS TEXT) WHERE checkpoint_id % 10 = 0", [])
        .unwrap();
    path
}

fn copies(pg: &Postgres, source_id: &str) -> (u64, u64) {
    let out = pg.psql(&format!(
        "SELECT COUNT(*), COUNT(DISTINCT migrated_id) FROM checkpoints WHERE migrated_from = '{source_id}'"
    ));
    let mut it = out.trim().split('|').map(|n| n.parse::<u64>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

#[test]
fn a_copy_resumes_where_it_stopped_and_verifies() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite_with(dir.path(), 1234);
    let target = PostgresStore::connect(&pg.url()).unwrap();

    let first = Migration::open(&path, target.clone()).unwrap().batch_rows(100);
    let id = first.source_id().to_owned();
    assert!(id.starts_with("sqlite-"), "{id}");
    let mut copied = 0;
    for _ in 0..3 {
        copied += first.copy_batch().unwrap().copied;
    }
    assert_eq!(copied, 300);
    // A second migration of the same file is refused while one runs.
    let busy = Migration::open(&path, target.clone()).unwrap_err();
    assert!(matches!(&busy, MigrationError::Busy { source_id } if *source_id == id), "{busy:?}");
    drop(first);

    // The next one resumes after row 300: nothing twice, nothing skipped.
    let second = Migration::open(&path, target.clone()).unwrap().batch_rows(500);
    assert_eq!(second.source_id(), id, "the file keeps its store id");
    let p = second.copy_batch().unwrap();
    assert_eq!((p.copied, p.remaining, p.last_id), (500, 434, 800));
    let mut seen = Vec::new();
    assert_eq!(second.copy_all(|p| seen.push(p.remaining)).unwrap(), 434);
    assert_eq!(seen, [0]);
    assert_eq!(second.copy_batch().unwrap(), hotmeter_checkpoint::Progress { copied: 0, remaining: 0, last_id: 1234 });
    let v = second.verify().unwrap();
    assert!(v.is_exact(), "{v}");
    assert_eq!((v.source_rows, v.target_rows, v.up_to_id), (1234, 1234, 1234));
    assert_eq!(copies(&pg, &id), (1234, 1234));
    let text_state = pg.psql(&format!(
        "SELECT encode(state, 'escape') FROM checkpoints WHERE migrated_from = '{id}' AND migrated_id = 10"
    ));
    assert_eq!(text_state.trim(), "state 9", "a text state is copied as its bytes");
    // The copies are not rows written through a store.
    assert_eq!(target.count_written("").unwrap(), 0);
    assert_eq!(target.count().unwrap(), 1234);

    // A changed row is caught by the checksum, however small the change.
    pg.psql(&format!("UPDATE checkpoints SET state = 'state 7!' WHERE migrated_from = '{id}' AND migrated_id = 8"));
    let v = second.verify().unwrap();
    assert!(!v.is_exact() && v.source_rows == v.target_rows, "{v}");
    assert!(second.verify_range(8, 1234).unwrap().is_exact(), "the rows after it still match");
    // A cut-over refuses to switch on a mismatch: writers stay on SQLite.
    let store = CutoverStore::sqlite(Arc::new(SqliteStore::open(&path).unwrap()));
    let err = store.cut_over(&second).unwrap_err();
    assert!(matches!(err, MigrationError::Mismatch(_)), "{err:?}");
    assert_eq!(store.backend(), "sqlite");
    assert_eq!(migrated_to(&path).unwrap(), None);
}

#[test]
fn a_missing_file_or_table_is_an_error_and_nothing_is_created() {
    let pg = Postgres::start();
    let target = PostgresStore::connect(&pg.url()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.db");
    assert!(matches!(Migration::open(&missing, target.clone()), Err(MigrationError::Store(_))));
    assert!(!missing.exists(), "the source is never created");
    assert_eq!(migrated_to(&missing).unwrap(), None);
    let empty = dir.path().join("empty.db");
    rusqlite::Connection::open(&empty).unwrap().execute_batch("CREATE TABLE other (x INTEGER)").unwrap();
    let err = Migration::open(&empty, target).unwrap_err();
    assert!(matches!(err, MigrationError::Store(_)), "{err:?}");
}

#[test]
fn a_cut_over_under_busy_writers_loses_nothing() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite_with(dir.path(), 2000);
    let registry = hotmeter::Registry::new();
    let target = PostgresStore::connect(&pg.url()).unwrap();
    let migration = Migration::open(&path, target.clone()).unwrap().batch_rows(200).with_metrics(&registry).unwrap();
    let store = Arc::new(CutoverStore::sqlite(Arc::new(SqliteStore::open(&path).unwrap())));

    // Four writers, each remembering every checkpoint it was told is stored.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let thread = format!("writer-{w}");
                let mut stored = Vec::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) || stored.len() < 20 {
                    let state = format!("{w}:{i}");
                    store.put(&thread, state.as_bytes()).unwrap();
                    stored.push(state);
                    i += 1;
                }
                stored
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(300));
    migration.copy_all(|_| {}).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let cut = store.cut_over(&migration).unwrap();
    assert_eq!(store.backend(), "postgres");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let stored: HashMap<String, Vec<String>> =
        writers.into_iter().enumerate().map(|(w, h)| (format!("writer-{w}"), h.join().unwrap())).collect();

    // Every source row copied once, identical.
    assert!(cut.verification.is_exact(), "{}", cut.verification);
    let sqlite = SqliteStore::open(&path).unwrap();
    let in_sqlite = sqlite.count().unwrap();
    assert_eq!(cut.verification.source_rows, in_sqlite);
    assert_eq!(copies(&pg, migration.source_id()), (in_sqlite, in_sqlite));
    // Every acknowledged write is in PostgreSQL once: copied or written.
    let acknowledged: u64 = stored.values().map(|v| v.len() as u64).sum();
    assert_eq!(in_sqlite - 2000 + target.count_written("").unwrap(), acknowledged);
    assert!(target.count_written("writer-").unwrap() > 0, "writers went on after the switch");
    for (thread, states) in &stored {
        // Each thread's history, newest first, is what it wrote, in order.
        let listed: Vec<String> = store
            .list(thread, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|c| String::from_utf8(c.state).unwrap())
            .rev()
            .collect();
        assert_eq!(&listed, states, "{thread}");
    }
    // The file says where its checkpoints went; a second cut-over refuses.
    let mark = migrated_to(&path).unwrap().expect("sealed");
    assert!(mark.starts_with(&format!("postgres://postgres@127.0.0.1:{}/postgres at ", pg.port())), "{mark}");
    assert!(matches!(store.cut_over(&migration), Err(MigrationError::NotOnSqlite)));

    // Progress is metrics.
    let snap = registry.snapshot();
    let copied = match snap.value("checkpoint_migration_rows_copied_total", &[]) {
        Some(OwnedValue::Counter(n)) => *n,
        other => panic!("{other:?}"),
    };
    assert_eq!(copied, in_sqlite);
    assert_eq!(snap.value("checkpoint_migration_rows_remaining", &[]), Some(&OwnedValue::IntGauge(0)));
    // Done (the refused second cut-over changes nothing).
    assert_eq!(snap.value("checkpoint_migration_phase", &["done"]), Some(&OwnedValue::IntGauge(1)));
    assert_eq!(snap.value("checkpoint_migration_phase", &["failed"]), Some(&OwnedValue::IntGauge(0)));
    match snap.value("checkpoint_migration_pause_seconds", &[]) {
        Some(OwnedValue::Gauge(s)) => assert!((*s - cut.pause.as_secs_f64()).abs() < 1e-9, "{s}"),
        other => panic!("{other:?}"),
    }
}

/// Rows another writer left that PostgreSQL cannot hold are a typed error
/// naming the row; everything before it is copied.
#[test]
fn an_unmovable_row_is_named_and_stops_the_copy_there() {
    let pg = Postgres::start();
    let target = PostgresStore::connect(&pg.url()).unwrap();
    for (bad, reason) in [
        ("UPDATE checkpoints SET thread_id = 'a' || char(0) || 'b' WHERE checkpoint_id = 11", "NUL"),
        ("UPDATE checkpoints SET thread_id = CAST(x'ff00' AS TEXT) WHERE checkpoint_id = 11", "UTF-8"),
        ("UPDATE checkpoints SET thread_id = x'6869' WHERE checkpoint_id = 11", "not text"),
        ("UPDATE checkpoints SET created_at_ms = 1.5 WHERE checkpoint_id = 11", "integer"),
        ("UPDATE checkpoints SET state = NULL WHERE checkpoint_id = 11", "bytes"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = sqlite_with(dir.path(), 30);
        rusqlite::Connection::open(&path).unwrap().execute_batch(bad).ok();
        if bad.contains("NULL") {
            // The table refuses a NULL state: make a column without the constraint.
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute_batch(
                "ALTER TABLE checkpoints RENAME TO old;
                 CREATE TABLE checkpoints (checkpoint_id INTEGER PRIMARY KEY AUTOINCREMENT, thread_id TEXT, created_at_ms INTEGER, state BLOB);
                 INSERT INTO checkpoints SELECT * FROM old; DROP TABLE old;
                 UPDATE checkpoints SET state = NULL WHERE checkpoint_id = 11;",
            )
            .unwrap();
        }
        let migration = Migration::open(&path, target.clone()).unwrap().batch_rows(4);
        let err = migration.copy_all(|_| {}).unwrap_err();
        match &err {
            MigrationError::UnmovableRow { checkpoint_id: 11, reason: why } => assert!(why.contains(reason), "{why}"),
            other => panic!("{bad}: {other:?}"),
        }
        assert!(err.to_string().contains("source row 11"), "{err}");
        assert_eq!(copies(&pg, migration.source_id()), (8, 8), "{bad}: the batches before it");
        // It stays refused (and says so again), never skipped.
        assert!(matches!(migration.copy_batch(), Err(MigrationError::UnmovableRow { checkpoint_id: 11, .. })));
    }
}

/// A batch ends at its byte budget (PostgreSQL takes at most 1 GiB in one
/// message), and a connection lost with the server comes back by itself.
#[test]
fn batches_keep_to_their_bytes_and_a_lost_connection_comes_back() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.db");
    let store = SqliteStore::open(&path).unwrap();
    for i in 0..40u8 {
        store.put("t", &vec![i; 1 << 20]).unwrap();
    }
    let target = PostgresStore::connect(&pg.url()).unwrap();
    let migration = Migration::open(&path, target).unwrap().batch_bytes(4 << 20);
    let p = migration.copy_batch().unwrap();
    assert_eq!((p.copied, p.remaining), (4, 36), "four 1 MiB states make a 4 MiB batch");

    pg.stop();
    assert!(migration.copy_batch().is_err(), "the server is down");
    pg.start_again();
    let total = migration.copy_all(|_| {}).unwrap();
    assert_eq!(total, 36, "copied on a new connection, from where it stopped");
    assert!(migration.verify().unwrap().is_exact());
    // The new connection took the file's lock again.
    let other = PostgresStore::connect(&pg.url()).unwrap();
    assert!(matches!(Migration::open(&path, other), Err(MigrationError::Busy { .. })));
}

/// A table lock in PostgreSQL during the cut-over holds the writers for at
/// most the hold limit; they are released on SQLite and the next cut-over
/// succeeds. The lock is taken while the cut-over checks the bulk of the
/// copy (writers still free), so it meets the hold.
#[test]
fn a_locked_table_holds_the_writers_no_longer_than_the_limit() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    drop(SqliteStore::open(&path).unwrap());
    {
        let mut c = rusqlite::Connection::open(&path).unwrap();
        let tx = c.transaction().unwrap();
        let mut stmt =
            tx.prepare("INSERT INTO checkpoints (thread_id, created_at_ms, state) VALUES ('t', ?1, ?2)").unwrap();
        for i in 0..60_000i64 {
            stmt.execute(rusqlite::params![i, format!("state {i}").as_bytes()]).unwrap();
        }
        drop(stmt);
        tx.commit().unwrap();
    }
    let registry = hotmeter::Registry::new();
    let target = PostgresStore::connect(&pg.url()).unwrap();
    let migration =
        Migration::open(&path, target).unwrap().hold_limit(Duration::from_millis(500)).with_metrics(&registry).unwrap();
    let store = Arc::new(CutoverStore::sqlite(Arc::new(SqliteStore::open(&path).unwrap())));
    migration.copy_all(|_| {}).unwrap();

    // A writer adds rows, so the cut-over has a tail to copy.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut worst = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let t = std::time::Instant::now();
                store.put("w", b"x").unwrap();
                worst = worst.max(t.elapsed());
                std::thread::sleep(Duration::from_millis(5));
            }
            worst
        })
    };
    // Once the cut-over checks the bulk, another session locks the table
    // against writes for 6 s (reads go on): far longer than the check.
    let err = std::thread::scope(|s| {
        let locker = s.spawn(|| {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while registry.snapshot().value("checkpoint_migration_phase", &["cutting_over"])
                != Some(&OwnedValue::IntGauge(1))
            {
                assert!(std::time::Instant::now() < deadline, "the cut-over never began");
                std::thread::sleep(Duration::from_millis(2));
            }
            // The test kit's psql panics when the statement fails.
            pg.psql("BEGIN; LOCK TABLE checkpoints IN SHARE MODE; SELECT pg_sleep(6); COMMIT;");
        });
        let err = store.cut_over(&migration).unwrap_err();
        locker.join().unwrap();
        err
    });
    stop.store(true, Ordering::Relaxed);
    let worst = writer.join().unwrap();
    assert!(
        matches!(&err, MigrationError::HoldTooLong { .. } | MigrationError::Store(_)),
        "the lock timeout or the limit: {err:?}"
    );
    assert_eq!(store.backend(), "sqlite", "released on SQLite: {err}");
    assert!(worst < Duration::from_millis(1500), "a writer waited {worst:?} (limit 500 ms)");
    assert_eq!(migrated_to(&path).unwrap(), None, "not sealed");
    let snap = registry.snapshot();
    assert_eq!(snap.value("checkpoint_migration_phase", &["failed"]), Some(&OwnedValue::IntGauge(1)));
    // With the lock gone, the next cut-over goes through, every row once.
    let cut = store.cut_over(&migration).unwrap();
    assert!(cut.verification.is_exact(), "{}", cut.verification);
    assert_eq!(cut.verification.source_rows, SqliteStore::open(&path).unwrap().count().unwrap());
    assert_eq!(store.backend(), "postgres");
}

/// The copy's commits are durable even into a store opened with
/// `Durability::Normal` (`synchronous_commit = off`): a server crash right
/// after a cut-over keeps every row the seal vouches for.
#[test]
fn a_cut_over_survives_a_server_crash_whatever_the_store_durability() {
    let pg = Postgres::start();
    // WAL written late: a commit without a flush is lost in a crash.
    pg.psql("ALTER SYSTEM SET wal_writer_delay = '10s'");
    pg.psql("SELECT pg_reload_conf()");
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite_with(dir.path(), 50);
    let options = hotmeter_checkpoint::PostgresOptions {
        durability: hotmeter_checkpoint::Durability::Normal,
        ..Default::default()
    };
    let target = PostgresStore::connect_with(&pg.url(), options).unwrap();
    pg.psql("CHECKPOINT");
    let migration = Migration::open(&path, target).unwrap();
    let store = CutoverStore::sqlite(Arc::new(SqliteStore::open(&path).unwrap()));
    let cut = store.cut_over(&migration).unwrap();
    assert_eq!(cut.verification.source_rows, 50);
    let id = migration.source_id().to_owned();
    drop(migration);
    pg.crash();
    pg.start_again();
    assert_eq!(copies(&pg, &id), (50, 50), "the sealed file's rows survived the crash");
}

/// The seal holds for every writer of the file, in any process: a store
/// that was not cut over gets an error, never a row stranded in the file.
/// And a writer in another process during the hold waits, or the hold
/// gives up within its limit.
#[test]
fn the_seal_refuses_every_later_writer_and_other_writers_hold_within_the_limit() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite_with(dir.path(), 20);
    let target = PostgresStore::connect(&pg.url()).unwrap();
    let migration = Migration::open(&path, target).unwrap().hold_limit(Duration::from_millis(300));
    let store = CutoverStore::sqlite(Arc::new(SqliteStore::open(&path).unwrap()));
    // Another connection holds the file's write lock for 2 s.
    let locker = {
        let path = path.clone();
        std::thread::spawn(move || {
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute_batch("BEGIN IMMEDIATE").unwrap();
            std::thread::sleep(Duration::from_secs(2));
            c.execute_batch("COMMIT").unwrap();
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let started = std::time::Instant::now();
    let err = store.cut_over(&migration).unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(1500), "{:?}: {err}", started.elapsed());
    assert_eq!(store.backend(), "sqlite", "{err}");
    assert_eq!(migrated_to(&path).unwrap(), None);
    locker.join().unwrap();

    let other = SqliteStore::open(&path).unwrap();
    other.put("elsewhere", b"before the seal").unwrap();
    let cut = store.cut_over(&migration).unwrap();
    assert_eq!(cut.verification.source_rows, 21, "the other writer's row was copied");
    let late = other.put("elsewhere", b"after the seal");
    assert!(late.is_err(), "a write to a sealed file is refused: {late:?}");
    assert_eq!(SqliteStore::open(&path).unwrap().count().unwrap(), 21, "nothing stranded");
}

/// Rows whose ids a copy never reaches (0 and below, written by another
/// tool) are refused, at open and when they appear later.
#[test]
fn non_positive_ids_are_refused() {
    let pg = Postgres::start();
    let target = PostgresStore::connect(&pg.url()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite_with(dir.path(), 10);
    let insert = |id: i64| {
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute("INSERT INTO checkpoints VALUES (?1, 't', 0, x'00')", [id])
            .unwrap();
    };
    let migration = Migration::open(&path, target.clone()).unwrap();
    insert(-7);
    let store = CutoverStore::sqlite(Arc::new(SqliteStore::open(&path).unwrap()));
    assert!(matches!(store.cut_over(&migration), Err(MigrationError::UnmovableRow { checkpoint_id: -7, .. })));
    assert_eq!(store.backend(), "sqlite");
    drop(migration);
    insert(0);
    assert!(matches!(Migration::open(&path, target), Err(MigrationError::UnmovableRow { checkpoint_id: -7, .. })));
}

/// A hold limit beyond what PostgreSQL's settings take is clamped, and the
/// schema is checked on the table the statements reach (a search path that
/// finds an incomplete `checkpoints` first gets it completed).
#[test]
fn a_huge_hold_limit_and_a_search_path_schema() {
    let pg = Postgres::start();
    PostgresStore::connect(&pg.url()).unwrap();
    pg.psql(
        "CREATE SCHEMA app; CREATE TABLE app.checkpoints (checkpoint_id BIGSERIAL PRIMARY KEY, thread_id TEXT NOT NULL,
         created_at_ms BIGINT NOT NULL, state BYTEA NOT NULL, migrated_from TEXT, migrated_id BIGINT)",
    );
    let url = format!("{}?options=-c%20search_path%3Dapp%2Cpublic", pg.url());
    let target = PostgresStore::connect(&url).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite_with(dir.path(), 10);
    let migration = Migration::open(&path, target).unwrap().hold_limit(Duration::from_secs(30 * 86_400));
    let store = CutoverStore::sqlite(Arc::new(SqliteStore::open(&path).unwrap()));
    let cut = store.cut_over(&migration).unwrap();
    assert!(cut.verification.is_exact());
    let in_app: u64 = pg.psql("SELECT COUNT(*) FROM app.checkpoints").trim().parse().unwrap();
    assert_eq!(in_app, 10, "copied into the table the search path reaches");
}
