//! The dashboard routes over loopback: the page and its assets with their
//! security headers, the history JSON the sampler fills, the application's
//! sources, authentication on every route, and the switch that turns it off.

#![cfg(feature = "dashboard")]

use std::time::{Duration, Instant};

use hotmeter_exporter::{Auth, DASHBOARD_CSP, Exporter, HistoryConfig};
use hotmeter_testkit::raw::{self, get};

fn fast_history() -> HistoryConfig {
    HistoryConfig { interval: Duration::from_millis(100), samples: 50, ..HistoryConfig::default() }
}

/// Polls the history until it holds `n` samples (the sampler runs on its
/// own task), at most 10 s.
fn history_with(addr: std::net::SocketAddr, n: u64, auth: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(addr, "/dashboard/history?window=1", auth);
        assert_eq!(r.status, 200, "{}", r.text());
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("history is JSON");
        if v["samples"].as_u64().unwrap_or(0) >= n {
            return v;
        }
        assert!(Instant::now() < deadline, "the sampler took no {n} samples: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn page_assets_history_and_sources() {
    let registry = hotmeter::Registry::new();
    let jobs = registry.counter("jobs_total", "Jobs <b>run</b>.").unwrap();
    let spaces = registry.labeled_family("space_depth", "Depth.", &["space"], hotmeter::IntGauge::new).unwrap();
    spaces.with(&["<img src=x onerror=alert(1)>"], |g| g.set(4)).unwrap();
    let server = Exporter::new(registry)
        .listen("127.0.0.1:0".parse().unwrap())
        .history(fast_history())
        .dashboard_source("Report", "/report", || b"{\"ok\":true}".to_vec())
        .dashboard_source("Nested", "/dashboard/nested", || b"{\"nested\":1}".to_vec())
        .start()
        .unwrap();
    let addr = server.local_addr();

    for (path, kind) in [
        ("/dashboard", "text/html; charset=utf-8"),
        ("/dashboard/", "text/html; charset=utf-8"),
        ("/dashboard/app.js", "text/javascript; charset=utf-8"),
        ("/dashboard/app.css", "text/css; charset=utf-8"),
        ("/dashboard/sources", "application/json"),
        ("/dashboard/history", "application/json"),
    ] {
        let r = get(addr, path, "");
        assert_eq!((r.status, r.header("content-type")), (200, Some(kind)), "{path}");
        assert_eq!(r.header("content-security-policy"), Some(DASHBOARD_CSP), "{path}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
    }
    assert!(!DASHBOARD_CSP.contains("unsafe-inline") && DASHBOARD_CSP.starts_with("default-src 'self'"));
    let page = get(addr, "/dashboard", "").text();
    assert!(page.contains("src=\"/dashboard/app.js\""), "{page}");
    // Gzipped when asked, and the same bytes once inflated.
    let plain = get(addr, "/dashboard/app.js", "").body;
    let zipped = get(addr, "/dashboard/app.js", "Accept-Encoding: gzip\r\n");
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));
    let mut inflated = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&zipped.body[..]), &mut inflated).unwrap();
    assert_eq!(inflated, plain);
    assert!(zipped.body.len() < plain.len() / 2);
    // Unknown dashboard paths are 404s that still carry the headers.
    let r = get(addr, "/dashboard/nope", "");
    assert_eq!((r.status, r.header("x-content-type-options")), (404, Some("nosniff")));

    let sources: serde_json::Value = serde_json::from_slice(&get(addr, "/dashboard/sources", "").body).unwrap();
    assert_eq!(
        sources,
        serde_json::json!({"sources": [
            {"title": "Report", "path": "/report"},
            {"title": "Nested", "path": "/dashboard/nested"},
        ]})
    );
    assert_eq!(get(addr, "/report", "").text(), "{\"ok\":true}");
    // A source under /dashboard/ is served, not hidden by the page's routes.
    let nested = get(addr, "/dashboard/nested", "");
    assert_eq!((nested.status, nested.text()), (200, "{\"nested\":1}".to_owned()));

    // Counters as rates: with a window longer than the ring, the latest
    // rate runs from the oldest sample, so rate × time between them is the
    // 5 jobs counted in between.
    history_with(addr, 2, "");
    jobs.inc_by(5);
    let seen = history_with(addr, 4, "")["samples"].as_u64().unwrap();
    history_with(addr, seen + 2, "");
    let after: serde_json::Value =
        serde_json::from_slice(&get(addr, "/dashboard/history?window=3600", "").body).unwrap();
    let series = after["series"].as_array().unwrap();
    let job = series.iter().find(|s| s["name"] == "jobs_total").expect("jobs_total in the history");
    assert_eq!((job["type"].as_str(), job["help"].as_str()), (Some("counter"), Some("Jobs <b>run</b>.")));
    let times = after["times"].as_array().unwrap();
    let span = (times.last().unwrap().as_u64().unwrap() - times[0].as_u64().unwrap()) as f64 / 1000.0;
    let rate = job["values"].as_array().unwrap().last().unwrap().as_f64().unwrap();
    assert!((rate * span - 5.0).abs() < 0.2, "rate {rate}/s over {span} s");
    let space = series.iter().find(|s| s["name"] == "space_depth").unwrap();
    assert_eq!(space["labels"]["space"], "<img src=x onerror=alert(1)>");
    assert_eq!(space["values"].as_array().unwrap().last().unwrap().as_f64(), Some(4.0));
    assert_eq!(after["capacity"], 50);
    assert_eq!(after["memory_bound_bytes"].as_u64(), Some(fast_history().memory_bound() as u64));
    // Incremental: only samples after `since`.
    let last = after["times"].as_array().unwrap().last().unwrap().as_u64().unwrap();
    let r = get(addr, &format!("/dashboard/history?since={last}"), "");
    let newer: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(newer["times"].as_array().unwrap().iter().all(|t| t.as_u64().unwrap() > last), "{newer}");
    // Bad queries are refused by name, not panicked on.
    let r = get(addr, "/dashboard/history?window=0", "");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("window"), "{}", r.text());
    assert_eq!(get(addr, "/dashboard/history?since=yesterday", "").status, 400);
    server.shutdown();
}

#[test]
fn every_dashboard_route_needs_credentials() {
    let server = Exporter::new(hotmeter::Registry::new())
        .listen("127.0.0.1:0".parse().unwrap())
        .auth(Auth::Bearer("s3cret".into()))
        .history(fast_history())
        .dashboard_source("Report", "/report", || b"{}".to_vec())
        .start()
        .unwrap();
    let addr = server.local_addr();
    let paths = [
        "/dashboard",
        "/dashboard/",
        "/dashboard/app.js",
        "/dashboard/app.css",
        "/dashboard/history",
        "/dashboard/sources",
        "/report",
    ];
    for path in paths {
        let r = get(addr, path, "");
        assert_eq!(r.status, 401, "{path}");
        if path.starts_with("/dashboard") {
            // Refusals of the dashboard's paths carry its headers too.
            assert_eq!(r.header("content-security-policy"), Some(DASHBOARD_CSP), "{path}");
            assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{path}");
            let post =
                raw::exchange(addr, format!("POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
            assert_eq!(post.status, 405, "{path}");
            assert_eq!(post.header("content-security-policy"), Some(DASHBOARD_CSP), "POST {path}");
        }
        assert!(!r.text().contains("<html"), "{path}");
        assert_eq!(get(addr, path, "Authorization: Bearer wrong\r\n").status, 401, "{path}");
        assert_eq!(get(addr, path, "Authorization: Bearer s3cret\r\n").status, 200, "{path}");
    }
    history_with(addr, 2, "Authorization: Bearer s3cret\r\n");
    server.shutdown();
}

#[test]
fn the_dashboard_can_be_turned_off() {
    let server = Exporter::new(hotmeter::Registry::new())
        .listen("127.0.0.1:0".parse().unwrap())
        .without_dashboard()
        .start()
        .unwrap();
    let addr = server.local_addr();
    for path in ["/dashboard", "/dashboard/app.js", "/dashboard/history"] {
        assert_eq!(get(addr, path, "").status, 404, "{path}");
    }
    assert_eq!(get(addr, "/metrics", "").status, 200);
    server.shutdown();
}
