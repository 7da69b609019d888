//! The checkpoint store contract, one suite run against both stores:
//! SQLite in a temporary file and PostgreSQL in a throwaway cluster of the
//! test's own (Debian's `postgresql`, `initdb` and `pg_ctl` in a temporary
//! folder, loopback, a free port; the test kit's `Postgres`).

use std::sync::Arc;

use hotmeter_checkpoint::{
    CheckpointError, CheckpointStore, Durability, MAX_THREAD_ID, PostgresOptions, PostgresStore, SqliteStore,
};
use hotmeter_testkit::Postgres;

/// Every promise of `CheckpointStore`, against `store` (empty at first).
fn contract(store: Arc<dyn CheckpointStore>, backend: &str) {
    // Nothing yet.
    assert_eq!(store.get("t1").unwrap(), None, "{backend}");
    assert!(store.list("t1", 10).unwrap().is_empty(), "{backend}");

    // Ids increase; the latest is `get`; `list` is newest first, limited.
    let a = store.put("t1", b"one").unwrap();
    let b = store.put("t1", b"two").unwrap();
    let other = store.put("t2", b"other").unwrap();
    assert!(a < b && b < other, "{backend}: {a} {b} {other}");
    let latest = store.get("t1").unwrap().unwrap();
    assert_eq!((latest.thread_id.as_str(), latest.checkpoint_id, &latest.state[..]), ("t1", b, &b"two"[..]));
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    assert!((now_ms - 60_000..=now_ms).contains(&latest.created_at_ms), "{backend}: {}", latest.created_at_ms);
    let states: Vec<Vec<u8>> = store.list("t1", 10).unwrap().into_iter().map(|c| c.state).collect();
    assert_eq!(states, [b"two".to_vec(), b"one".to_vec()], "{backend}");
    assert_eq!(store.list("t1", 1).unwrap().len(), 1, "{backend}");
    assert!(store.list("t1", 0).unwrap().is_empty(), "{backend}");
    assert_eq!(store.get("t2").unwrap().unwrap().state, b"other", "{backend}: threads apart");

    // State is opaque bytes: every byte value, empty, and a megabyte.
    let every_byte: Vec<u8> = (0..=255u8).collect();
    for state in [every_byte, Vec::new(), vec![0xa5; 1 << 20]] {
        store.put("bytes", &state).unwrap();
        assert_eq!(store.get("bytes").unwrap().unwrap().state, state, "{backend}: {} bytes", state.len());
    }

    // Thread ids: any UTF-8 up to the limit, quotes and markup included;
    // empty, too long or with a NUL is a typed error, never a panic.
    for id in ["'; DROP TABLE checkpoints; --", "<b>\"x\"</b>\\", "zürich ✓", &"x".repeat(MAX_THREAD_ID)] {
        let n = store.put(id, id.as_bytes()).unwrap();
        let got = store.get(id).unwrap().unwrap();
        assert_eq!((got.checkpoint_id, got.thread_id.as_str()), (n, id), "{backend}");
    }
    for bad in [String::new(), "x".repeat(MAX_THREAD_ID + 1), "a\0b".to_owned()] {
        assert!(matches!(store.put(&bad, b"x"), Err(CheckpointError::InvalidThreadId { .. })), "{backend}: {bad:?}");
        assert!(matches!(store.get(&bad), Err(CheckpointError::InvalidThreadId { .. })), "{backend}: {bad:?}");
        assert!(matches!(store.list(&bad, 1), Err(CheckpointError::InvalidThreadId { .. })), "{backend}: {bad:?}");
    }

    // Four writers at once: every checkpoint stored once, each thread's ids
    // increasing in the order it wrote them.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                let thread = format!("writer-{w}");
                (0..50).map(|i| store.put(&thread, format!("{w}:{i}").as_bytes()).unwrap()).collect::<Vec<i64>>()
            })
        })
        .collect();
    for (w, writer) in writers.into_iter().enumerate() {
        let ids = writer.join().unwrap();
        assert!(ids.windows(2).all(|p| p[0] < p[1]), "{backend}: writer {w}");
        let stored = store.list(&format!("writer-{w}"), 100).unwrap();
        assert_eq!(stored.len(), 50, "{backend}");
        let mut states: Vec<String> = stored.iter().map(|c| String::from_utf8(c.state.clone()).unwrap()).collect();
        states.reverse();
        assert_eq!(states, (0..50).map(|i| format!("{w}:{i}")).collect::<Vec<_>>(), "{backend}");
    }
}

#[test]
fn sqlite_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(Arc::new(SqliteStore::open(dir.path().join("c.db")).unwrap()), "sqlite");
}

#[test]
fn postgres_keeps_the_contract_durably_and_reports_a_server_gone() {
    let pg = Postgres::start();
    let store = PostgresStore::connect(&pg.url()).unwrap();
    assert_eq!(store.durability().unwrap(), Durability::Full, "synchronous_commit = on");
    contract(Arc::new(store.clone()), "postgres");
    // Every checkpoint the contract wrote is a row, once.
    let rows: u64 = pg.psql("SELECT COUNT(*) FROM checkpoints").trim().parse().unwrap();
    assert_eq!(store.count().unwrap(), rows);
    assert_eq!(rows, 3 + 3 + 4 + 4 * 50);
    let relaxed = PostgresStore::connect_with(
        &pg.url(),
        PostgresOptions { durability: Durability::Normal, ..Default::default() },
    )
    .unwrap();
    assert_eq!(relaxed.durability().unwrap(), Durability::Normal);

    // Monitored as SQLite is: each write counted by outcome.
    let registry = hotmeter::Registry::new();
    let monitored = hotmeter_checkpoint::MonitoredStore::new(store.clone(), &registry).unwrap();
    monitored.put("m", b"counted").unwrap();

    // The server stopped: a typed error, within the connection timeout,
    // counted as an error by the monitor.
    drop(pg);
    assert!(monitored.put("m", b"lost").is_err());
    let snap = registry.snapshot();
    assert_eq!(snap.value("checkpoint_writes_total", &["success"]), Some(&hotmeter::OwnedValue::Counter(1)));
    assert_eq!(snap.value("checkpoint_writes_total", &["error"]), Some(&hotmeter::OwnedValue::Counter(1)));
    let started = std::time::Instant::now();
    let err = store.put("t1", b"lost").unwrap_err();
    assert!(matches!(err, CheckpointError::Postgres(_) | CheckpointError::Pool(_)), "{err:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "{:?}", started.elapsed());
    assert!(!err.to_string().is_empty());
}

/// Review findings: a zero connection timeout, a role that does not
/// exist, and a table of that name with other column types are typed
/// errors, never panics; a misconfiguration says what the server said.
#[test]
fn postgres_misconfigurations_are_typed_errors() {
    let pg = Postgres::start();
    let zero = PostgresOptions { connection_timeout: std::time::Duration::ZERO, ..Default::default() };
    assert!(PostgresStore::connect_with(&pg.url(), zero).is_ok(), "a zero timeout is the shortest one");
    let nobody = pg.url().replacen("postgres@", "nobody@", 1);
    let err = PostgresStore::connect(&nobody).unwrap_err();
    let CheckpointError::Postgres(e) = &err else { panic!("{err:?}") };
    assert!(e.as_db_error().is_some_and(|db| db.message().contains("nobody")), "{e:?}");
    pg.psql("DROP TABLE checkpoints; CREATE TABLE checkpoints (checkpoint_id SERIAL PRIMARY KEY, thread_id TEXT NOT NULL, created_at_ms BIGINT NOT NULL, state BYTEA NOT NULL)");
    let store = PostgresStore::connect(&pg.url()).unwrap();
    assert!(matches!(store.put("t", b"x"), Err(CheckpointError::Postgres(_))));
    assert!(matches!(store.get("t"), Err(CheckpointError::Postgres(_))));
    assert!(matches!(store.list("t", 5), Err(CheckpointError::Postgres(_))));
}

#[test]
fn a_bad_postgres_url_is_a_typed_error() {
    assert!(matches!(PostgresStore::connect("postgres://[bad"), Err(CheckpointError::Postgres(_))));
    // Nothing listens there: refused at once, not a hang.
    let closed = hotmeter_testkit::ClosedPort::new();
    let url = format!("postgres://postgres@{}/postgres", closed.addr());
    let options = PostgresOptions { connection_timeout: std::time::Duration::from_secs(2), ..Default::default() };
    assert!(matches!(PostgresStore::connect_with(&url, options), Err(CheckpointError::Postgres(_))));
}

/// PostgreSQL stopped for 10 s under two writers, then started again:
/// every failed write is an error, counted once by the monitor; no write is
/// counted twice; the store recovers by itself (its pool reconnects), with
/// nothing for the caller to reset.
#[test]
fn postgres_stopped_for_10_s_while_writing_recovers_by_itself() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};
    let pg = Postgres::start();
    let registry = hotmeter::Registry::new();
    let options = PostgresOptions { connection_timeout: Duration::from_secs(1), ..Default::default() };
    let store = PostgresStore::connect_with(&pg.url(), options).unwrap();
    let store = Arc::new(hotmeter_checkpoint::MonitoredStore::new(store, &registry).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (store, done, ok, failed) = (store.clone(), done.clone(), ok.clone(), failed.clone());
            std::thread::spawn(move || {
                let until = Instant::now() + Duration::from_secs(90);
                while !done.load(Ordering::Relaxed) && Instant::now() < until {
                    match store.put(&format!("writer-{w}"), b"state") {
                        Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        })
        .collect();
    hotmeter_testkit::wait_for("writes before the outage", Duration::from_secs(30), || {
        (ok.load(Ordering::Relaxed) >= 20).then_some(())
    });
    pg.stop();
    let down = Instant::now();
    let ok_at_stop = ok.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(10));
    let failed_while_down = failed.load(Ordering::Relaxed);
    // At most the writes on the wire when it stopped got through.
    assert!(ok.load(Ordering::Relaxed) <= ok_at_stop + 2, "writes succeeded while the server was down");
    assert!(failed_while_down > 0, "no write failed in {:?} down", down.elapsed());
    pg.start_again();
    let ok_at_start = ok.load(Ordering::Relaxed);
    hotmeter_testkit::wait_for("writes to succeed again, by themselves", Duration::from_secs(30), || {
        (ok.load(Ordering::Relaxed) >= ok_at_start + 20).then_some(())
    });
    done.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let snap = registry.snapshot();
    assert_eq!(snap.value("checkpoint_writes_total", &["success"]), Some(&hotmeter::OwnedValue::Counter(ok)));
    assert_eq!(snap.value("checkpoint_writes_total", &["error"]), Some(&hotmeter::OwnedValue::Counter(failed)));
    // Every acknowledged write is a row, once; a write cut off by the stop
    // may have committed without its answer (at most one per writer).
    let rows: u64 = pg.psql("SELECT COUNT(*) FROM checkpoints").trim().parse().unwrap();
    assert!((ok..=ok + 2).contains(&rows), "{rows} rows for {ok} acknowledged writes");
}

/// A fleet starting on an empty database: eight stores connecting at once
/// all create (or find) the schema; none fails on the other's `CREATE`
/// (PostgreSQL's `IF NOT EXISTS` alone races with itself).
#[test]
fn stores_connecting_at_once_to_an_empty_database_all_succeed() {
    let pg = Postgres::start();
    for round in 0..3 {
        let db = format!("fleet{round}");
        pg.psql(&format!("CREATE DATABASE {db}"));
        let url = format!("{}/{db}", pg.url().strip_suffix("/postgres").unwrap());
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let stores: Vec<_> = (0..8)
            .map(|_| {
                let (url, barrier) = (url.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    PostgresStore::connect(&url)
                })
            })
            .collect();
        for (i, s) in stores.into_iter().enumerate() {
            let store = s.join().unwrap().unwrap_or_else(|e| panic!("round {round}, store {i}: {e:?}"));
            store.put(&format!("s{i}"), b"x").unwrap();
        }
        assert_eq!(PostgresStore::connect(&url).unwrap().count().unwrap(), 8);
    }
}

/// A store connecting to a database whose schema is complete takes no lock
/// on the table: neither it nor the writers already running wait behind a
/// long reader (the schema statements would, and every writer behind them).
#[test]
fn connecting_does_not_wait_behind_a_reader() {
    let pg = Postgres::start();
    let first = PostgresStore::connect(&pg.url()).unwrap();
    first.put("t", b"x").unwrap();
    std::thread::scope(|s| {
        // The test kit's psql panics when the statement fails.
        let reader = s.spawn(|| pg.psql("BEGIN; SELECT COUNT(*) FROM checkpoints; SELECT pg_sleep(4); COMMIT;"));
        std::thread::sleep(std::time::Duration::from_millis(700));
        let t = std::time::Instant::now();
        let second = PostgresStore::connect(&pg.url()).unwrap();
        assert!(t.elapsed() < std::time::Duration::from_secs(2), "connecting took {:?}", t.elapsed());
        let t = std::time::Instant::now();
        first.put("t", b"y").unwrap();
        second.put("t", b"z").unwrap();
        assert!(t.elapsed() < std::time::Duration::from_secs(2), "writing took {:?}", t.elapsed());
        reader.join().unwrap();
    });
}
