//! The kit's own helpers do what their docs say: guards stop what they
//! started (a process group with its children), the scripted receiver
//! records and answers, `wait_for` names what it waited for, and each
//! launcher's server answers once started.

use std::process::{Command, Stdio};
use std::time::Duration;

use hotmeter_testkit::{Alertmanager, ChildGuard, Prometheus, Pushgateway, http, promql, receiver, wait_for, which};

fn alive(pid: u32) -> bool {
    Command::new("kill").args(["-0", &pid.to_string()]).stderr(Stdio::null()).status().unwrap().success()
}

#[test]
fn a_guard_stops_its_children_and_a_group_takes_its_grandchildren() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("grandchild.pid");
    let (plain, script, grandchild);
    {
        let mut guard = ChildGuard::new();
        plain = guard.spawn("sleep", Command::new("sleep").arg("300")).id();
        // A script with a background child of its own: the group takes both.
        let run = format!("sleep 300 & echo $! > {}; wait", pid_file.display());
        script = guard.spawn_group("script", Command::new("bash").arg("-c").arg(run)).id();
        grandchild = wait_for("the grandchild's pid", Duration::from_secs(10), || {
            std::fs::read_to_string(&pid_file).ok()?.trim().parse::<u32>().ok()
        });
        assert!(alive(plain) && alive(script) && alive(grandchild));
    }
    // The guard reaped its children; init reaps the grandchild.
    assert!(!alive(plain) && !alive(script));
    wait_for("the grandchild gone", Duration::from_secs(5), || (!alive(grandchild)).then_some(()));
}

#[test]
fn kill_stops_one_child_by_name() {
    let mut guard = ChildGuard::new();
    guard.spawn("a", Command::new("sleep").arg("300"));
    let b = guard.spawn("b", Command::new("sleep").arg("300")).id();
    guard.kill("b");
    assert!(!alive(b));
    assert!(guard.child("a").try_wait().unwrap().is_none(), "a still runs");
}

#[test]
#[should_panic(expected = "waiting for the impossible")]
fn wait_for_names_what_it_waited_for() {
    wait_for("the impossible", Duration::from_millis(300), || None::<()>);
}

#[test]
fn the_scripted_receiver_records_and_answers_in_order() {
    let (addr, got) = receiver::scripted(vec![(503, "Retry-After: 1\r\n"), (200, "")]);
    assert_eq!(http::get(&addr, "/first").unwrap().status, 503);
    let second = http::get_as(&addr, "/second", &[("q", "a b")], Some("t")).unwrap();
    assert_eq!((second.status, second.body.as_str()), (200, "no"));
    assert_eq!(http::get(&addr, "/third").unwrap().status, 200, "the last answer repeats");
    let got = got.lock().unwrap();
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/first", "/second?q=a%20b", "/third"]);
    assert_eq!(got[1].header("authorization"), Some("Bearer t"));
    assert_eq!(got[1].method, "GET");
}

#[test]
fn which_finds_a_binary_on_path_and_not_a_missing_one() {
    assert!(which("sh").is_some_and(|p| p.is_absolute()));
    assert_eq!(which("hotmeter-no-such-binary"), None);
}

#[test]
fn prometheus_starts_ready_and_answers_promql() {
    let prometheus = Prometheus::builder("kit").remote_write_receiver().feature("native-histograms").start();
    assert_eq!(promql::scalar(prometheus.addr(), "vector(42)"), Some(42.0));
    assert_eq!(promql::query(prometheus.addr(), "up").len(), 0, "no scrape targets");
    let flags = http::get(prometheus.addr(), "/api/v1/status/flags").unwrap().body;
    assert!(flags.contains(r#""web.enable-remote-write-receiver":"true""#), "{flags}");
    assert!(flags.contains(r#""enable-feature":"native-histograms""#), "{flags}");
}

#[test]
fn pushgateway_and_alertmanager_start_ready() {
    let pushgateway = Pushgateway::start();
    assert!(http::is_ok(pushgateway.addr(), "/-/ready"));
    let alertmanager = Alertmanager::start("route:\n  receiver: none\nreceivers:\n  - name: none\n");
    assert!(http::is_ok(alertmanager.addr(), "/-/ready"));
}
