//! Instant PromQL queries against a Prometheus-compatible HTTP API
//! (`/api/v1/query`), through the one client of [`http`].
//!
//! Owns: sending a query and reading its result vector. Must not: hide a
//! failed query: a refused connection, a non-200 answer or a status other
//! than `success` fails the test with the query and the body.

use serde_json::Value;

use crate::http;

/// An instant query's result vector (empty when nothing matches); panics
/// when Prometheus cannot be asked or refuses the query.
pub fn query(prom: &str, q: &str) -> Vec<Value> {
    let r = http::get_with(prom, "/api/v1/query", &[("query", q)]).expect("query Prometheus");
    let (status, body) = (r.status, r.body);
    assert_eq!(status, 200, "query {q}: {body}");
    let v: Value = serde_json::from_str(&body).expect("JSON from Prometheus");
    assert_eq!(v["status"], "success", "{q}: {body}");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// The value of a query whose result vector holds one series;
/// `None` when it returns no series, or several.
pub fn scalar(prom: &str, q: &str) -> Option<f64> {
    match &query(prom, q)[..] {
        [one] => one["value"][1].as_str().and_then(|v| v.parse().ok()),
        _ => None,
    }
}
