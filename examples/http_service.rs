//! An axum HTTP service instrumented by `hotmeter-tower`: every request
//! counted by method, route template and status, its duration and its
//! response size, served with everything else on `/metrics`.
//!
//! `cargo run -p hotmeter-examples --example http_service -- [ADDR] [SECONDS]`

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use hotmeter::Registry;
use hotmeter_tower::HttpMetricsLayer;

/// The application's routes, instrumented, and `/metrics`.
fn app(registry: Registry) -> Result<Router, hotmeter::RegistryError> {
    let api = Router::new()
        .route("/users/{id}", get(|Path(id): Path<u32>| async move { format!("user {id}\n") }))
        .route("/health", get(|| async { "ok\n" }))
        .layer(HttpMetricsLayer::for_axum(&registry)?);
    Ok(api.route("/metrics", get(metrics)).with_state(registry))
}

async fn metrics(State(registry): State<Registry>) -> String {
    let mut text = Vec::new();
    hotmeter_exporter::encode_text(&registry, &mut text);
    String::from_utf8_lossy(&text).into_owned()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8080".into());
    let seconds: u64 = std::env::args().nth(2).map_or(Ok(3600), |s| s.parse())?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("serving http://{}/users/1 and /metrics for {seconds} s", listener.local_addr()?);
    let server = axum::serve(listener, app(Registry::new())?);
    tokio::select! {
        served = server => served?,
        () = tokio::time::sleep(Duration::from_secs(seconds)) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests through the real server show up in its own `/metrics`.
    #[test]
    fn requests_are_counted_by_route_template_and_status() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        rt.spawn(async move { axum::serve(listener, app(Registry::new()).unwrap()).await.unwrap() });
        for id in 0..25 {
            assert_eq!(hotmeter_testkit::http::get(&addr, &format!("/users/{id}")).unwrap().status, 200);
        }
        assert_eq!(hotmeter_testkit::http::get(&addr, "/users/x").unwrap().status, 400);
        assert_eq!(hotmeter_testkit::http::get(&addr, "/health").unwrap().status, 200);
        let body = hotmeter_testkit::http::get(&addr, "/metrics").unwrap().body;
        for line in [
            "http_server_request_duration_seconds_count{http_request_method=\"GET\",http_route=\"/users/{id}\",http_response_status_code=\"200\"} 25\n",
            "http_server_request_duration_seconds_count{http_request_method=\"GET\",http_route=\"/users/{id}\",http_response_status_code=\"400\"} 1\n",
            "http_server_request_duration_seconds_count{http_request_method=\"GET\",http_route=\"/health\",http_response_status_code=\"200\"} 1\n",
        ] {
            assert!(body.contains(line), "no {line:?} in\n{body}");
        }
        drop(rt);
    }
}
