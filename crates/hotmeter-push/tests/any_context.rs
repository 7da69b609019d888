//! Issue 22: every public entry point of the push clients (remote_write's
//! start, push_now, shutdown and drop; the Pushgateway's push, push_add and
//! delete) works the same from a plain thread, from a multi-threaded tokio
//! runtime and from a current-thread one: none blocks on or nests a
//! runtime, so none panics in async code.

use std::time::Duration;

use hotmeter::Registry;
use hotmeter_push::{GroupingKey, Pushgateway, RemoteWrite};
use hotmeter_testkit::receiver;

/// Runs every entry point once against loopback receivers; returns what
/// each receiver got, by method and path.
fn every_entry_point(context: &str) -> Vec<(String, String)> {
    let registry = Registry::new();
    registry.counter("jobs_total", "Jobs.").unwrap().inc_by(3);
    let (write_addr, writes) = receiver::scripted(vec![(204, "")]);
    let (gateway_addr, gateway) = receiver::scripted(vec![(200, "")]);

    let writer = RemoteWrite::new(format!("http://{write_addr}/api/v1/write"))
        .interval(Duration::from_secs(3600))
        .start(&registry)
        .unwrap_or_else(|e| panic!("{context}: start: {e}"));
    writer.push_now();
    let stats = writer.shutdown(Duration::from_secs(10));
    assert!(stats.sent > 0 && stats.accounted(), "{context}: {stats:?}");
    // Dropping a running client shuts it down too.
    drop(RemoteWrite::new(format!("http://{write_addr}/api/v1/write")).start(&registry).unwrap());

    let pushgateway = Pushgateway::new(&format!("http://{gateway_addr}")).unwrap();
    let key = GroupingKey::new("batch").unwrap();
    pushgateway.push(&registry, &key).unwrap_or_else(|e| panic!("{context}: push: {e}"));
    pushgateway.push_add(&registry, &key).unwrap_or_else(|e| panic!("{context}: push_add: {e}"));
    pushgateway.delete(&key).unwrap_or_else(|e| panic!("{context}: delete: {e}"));

    let mut got: Vec<_> = writes.lock().unwrap().iter().map(|r| (r.method.clone(), r.path.clone())).collect();
    got.extend(gateway.lock().unwrap().iter().map(|r| (r.method.clone(), r.path.clone())));
    got
}

fn expected(got: &[(String, String)], context: &str) {
    let methods: Vec<_> = got.iter().map(|(m, p)| format!("{m} {p}")).collect();
    assert!(methods.iter().filter(|m| *m == "POST /api/v1/write").count() >= 2, "{context}: {methods:?}");
    for m in ["PUT /metrics/job/batch", "POST /metrics/job/batch", "DELETE /metrics/job/batch"] {
        assert!(methods.iter().any(|got| got == m), "{context}: no {m} in {methods:?}");
    }
}

#[test]
fn from_a_plain_thread() {
    let got = std::thread::spawn(|| every_entry_point("plain thread")).join().unwrap();
    expected(&got, "plain thread");
}

#[test]
fn from_a_multi_thread_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let got = rt.block_on(async { every_entry_point("multi-thread runtime") });
    expected(&got, "multi-thread runtime");
    let got = rt.block_on(async { tokio::spawn(async { every_entry_point("spawned task") }).await.unwrap() });
    expected(&got, "spawned task");
}

#[test]
fn from_a_current_thread_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let got = rt.block_on(async { every_entry_point("current-thread runtime") });
    expected(&got, "current-thread runtime");
}

/// The old names still compile (deprecated), and are the same types.
#[test]
#[allow(deprecated)]
fn old_names_are_aliases() {
    fn same<T>(_: Option<T>, _: Option<T>) {}
    same::<hotmeter_push::RemoteWriteHandle>(None::<hotmeter_push::RemoteWriter>, None);
}
