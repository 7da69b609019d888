//! The routes: what each request is answered. `/metrics` with content
//! negotiation and gzip, `/metrics/json`, `/healthz`, `/readyz`, the
//! dashboard's routes (answered by `dashboard`), the application's extra
//! read-only routes, and the limits and authentication checked first.
//!
//! Owns: [`MetricsService`], the request handler as a hyper service, and
//! every status, header and body it answers. Must not: touch recording
//! paths, or render on the runtime's reactor: rendering reads the registry
//! through [`hotmeter::Registry::collect`] on a blocking thread, so a large
//! scrape never stalls it. Knows nothing of sockets or connections
//! (`listener` wraps this service for those).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::config::{Auth, Exporter};
use super::state::Shared;
#[cfg(feature = "dashboard")]
use crate::dashboard;
use crate::gzip;
use crate::{JSON_CONTENT_TYPE, Negotiated, Offered, encode_json, encode_negotiated, negotiate};

impl Exporter {
    /// A hyper service answering every route, to mount in your own server.
    /// Readiness starts false; flip it with [`MetricsService::set_ready`].
    pub fn service(self) -> MetricsService {
        MetricsService { shared: self.shared().0 }
    }
}

/// The request handler as a hyper service: every route, negotiation, gzip,
/// limits and authentication. Cheap to clone.
#[derive(Clone)]
pub struct MetricsService {
    pub(super) shared: Arc<Shared>,
}

impl std::fmt::Debug for MetricsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsService").finish_non_exhaustive()
    }
}

impl MetricsService {
    /// Sets what `/readyz` answers.
    pub fn set_ready(&self, ready: bool) {
        self.shared.ready.store(ready, Ordering::Relaxed);
    }

    /// The dashboard's sampler, for a service mounted in your own server
    /// ([`Exporter::serve`] and [`Exporter::start`] run it themselves):
    /// spawn it on your runtime and it fills the history once per
    /// interval, forever. Returns at once when the dashboard is off.
    // Not an `async fn`: the future owns what it needs and outlives `self`.
    #[cfg_attr(not(feature = "dashboard"), allow(clippy::manual_async_fn))]
    pub fn history_sampler(&self) -> impl Future<Output = ()> + Send + 'static {
        #[cfg(feature = "dashboard")]
        let (dashboard, registry) = (self.shared.dashboard.clone(), self.shared.registry.clone());
        async move {
            #[cfg(feature = "dashboard")]
            if let Some(d) = dashboard {
                dashboard::sample_loop(d, registry, None).await;
            }
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for MetricsService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move { Ok(handle(shared, req.method().clone(), req.uri(), req.headers()).await) })
    }
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// Whether `path` is one of the dashboard's (`/dashboard`, `/dashboard/...`).
#[cfg(feature = "dashboard")]
fn is_dashboard_path(path: &str) -> bool {
    path == "/dashboard" || path.starts_with("/dashboard/")
}

/// The whole routing decision, given the parts of a request it needs.
/// Every answer to a dashboard path, refusals included (401, 405, 413,
/// 404), carries the dashboard's security headers.
async fn handle(
    shared: Arc<Shared>,
    method: Method,
    uri: &hyper::Uri,
    headers: &hyper::HeaderMap,
) -> Response<Full<Bytes>> {
    #[cfg(feature = "dashboard")]
    let dashboard = shared.dashboard.is_some() && is_dashboard_path(uri.path());
    #[allow(unused_mut)]
    let mut r = answer(shared, method, uri, headers).await;
    #[cfg(feature = "dashboard")]
    if dashboard {
        dashboard::secure(&mut r);
    }
    r
}

/// [`handle`] without the dashboard's headers.
async fn answer(
    shared: Arc<Shared>,
    method: Method,
    uri: &hyper::Uri,
    headers: &hyper::HeaderMap,
) -> Response<Full<Bytes>> {
    let path = uri.path();
    let head = method == Method::HEAD;
    if method != Method::GET && !head {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let declared_body = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared_body.is_some_and(|n| n > shared.limits.max_body_bytes) {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
    }
    if path == "/healthz" {
        return strip(head, plain(StatusCode::OK, "ok\n"));
    }
    if let Some(auth) = &shared.auth
        && !authorized(auth, headers)
    {
        let mut r = plain(StatusCode::UNAUTHORIZED, "unauthorized\n");
        let challenge = match auth {
            Auth::Bearer(_) => "Bearer realm=\"hotmeter\"",
            Auth::BasicEncoded(_) => "Basic realm=\"hotmeter\"",
        };
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        return r;
    }
    let response = match path {
        "/readyz" => {
            if shared.ready.load(Ordering::Relaxed) {
                plain(StatusCode::OK, "ready\n")
            } else {
                plain(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }
        "/metrics" => {
            let chosen = negotiate(&accept_header(headers), METRICS_FORMATS);
            let gzip = accepts_gzip(headers);
            let s = shared.clone();
            let rendered = tokio::task::spawn_blocking(move || {
                let mut written = chosen;
                let body = render(&s, |r, out| written = encode_metrics(r, chosen, out), gzip);
                (written, body)
            })
            .await;
            match rendered {
                Ok((written, body)) => body_response(written.content_type(), body),
                Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, "render failed\n"),
            }
        }
        "/metrics/json" => {
            let s = shared.clone();
            match tokio::task::spawn_blocking(move || render(&s, encode_json, false)).await {
                Ok(body) => body_response(JSON_CONTENT_TYPE, body),
                Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, "render failed\n"),
            }
        }
        #[cfg(feature = "dashboard")]
        p if dashboard::serves(p) && shared.dashboard.is_some() => {
            let gzip = accepts_gzip(headers);
            let d = shared.dashboard.as_ref().map(Arc::clone);
            match d {
                Some(d) => match dashboard::respond(&d, p, uri.query(), gzip).await {
                    Some(r) => r,
                    None => plain(StatusCode::NOT_FOUND, "not found\n"),
                },
                None => plain(StatusCode::NOT_FOUND, "not found\n"),
            }
        }
        p => match shared.routes.iter().find(|r| r.path == p) {
            Some(route) => {
                let render = route.render.clone();
                match tokio::task::spawn_blocking(move || render()).await {
                    Ok(body) => {
                        let mut r = Response::new(Full::new(Bytes::from(body)));
                        if let Ok(v) = HeaderValue::from_str(&route.content_type) {
                            r.headers_mut().insert(header::CONTENT_TYPE, v);
                        }
                        r
                    }
                    Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, "render failed\n"),
                }
            }
            None => plain(StatusCode::NOT_FOUND, "not found\n"),
        },
    };
    strip(head, response)
}

// ---------------------------------------------------------------------------
// What `/metrics` can produce: every format negotiation knows, protobuf
// only when this crate writes it (its own feature, whatever features
// another crate turned on in hotmeter-format).
const METRICS_FORMATS: Offered = if cfg!(feature = "protobuf") { Offered::ALL } else { Offered::TEXT };

/// Writes `chosen` and returns what was written (for `Content-Type`).
fn encode_metrics(registry: &hotmeter::Registry, chosen: Negotiated, out: &mut Vec<u8>) -> Negotiated {
    match chosen.format {
        #[cfg(feature = "protobuf")]
        crate::ExpositionFormat::Protobuf => {
            hotmeter_format::encode_protobuf_escaped(registry, chosen.escaping, out);
            chosen
        }
        _ => encode_negotiated(registry, chosen, out),
    }
}
// ---------------------------------------------------------------------------

/// Every `Accept` header of a request, joined with `,` (RFC 9110 allows a
/// list header to be split over several lines); non-ASCII ones are ignored.
fn accept_header(headers: &hyper::HeaderMap) -> String {
    let mut joined = String::new();
    for value in headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()) {
        if !joined.is_empty() {
            joined.push(',');
        }
        joined.push_str(value);
    }
    joined
}

/// A rendered body and whether it is gzipped.
struct Body {
    bytes: Bytes,
    gzipped: bool,
}

/// Renders into the shared, reused buffer and returns the bytes, gzipped
/// when `gzip` and the `gzip` feature are on.
fn render(shared: &Shared, encode: impl FnOnce(&hotmeter::Registry, &mut Vec<u8>), gzip: bool) -> Body {
    let mut buf = shared.buffer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    buf.clear();
    encode(&shared.registry, &mut buf);
    match gzip.then(|| gzip::compress(&buf, gzip::Effort::Fast)).flatten() {
        Some(z) => Body { bytes: Bytes::from(z), gzipped: true },
        None => Body { bytes: Bytes::copy_from_slice(&buf), gzipped: false },
    }
}

fn body_response(content_type: &'static str, body: Body) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.bytes));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if body.gzipped {
        r.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    r.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
    r
}

/// HEAD: the same headers (including the length), no body.
fn strip(head: bool, r: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    if !head {
        return r;
    }
    let (mut parts, body) = r.into_parts();
    let len = http_body_util::BodyExt::boxed(body);
    if let Some(n) = hyper::body::Body::size_hint(&len).exact()
        && let Ok(v) = HeaderValue::from_str(&n.to_string())
    {
        parts.headers.insert(header::CONTENT_LENGTH, v);
    }
    Response::from_parts(parts, Full::new(Bytes::new()))
}

/// Whether the request takes a gzipped body (never without the `gzip`
/// feature).
fn accepts_gzip(headers: &hyper::HeaderMap) -> bool {
    headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).is_some_and(gzip::accepted)
}

fn authorized(auth: &Auth, headers: &hyper::HeaderMap) -> bool {
    let Some(given) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let (scheme, expected) = match auth {
        Auth::Bearer(t) => ("Bearer ", t),
        Auth::BasicEncoded(b) => ("Basic ", b),
    };
    given.strip_prefix(scheme).is_some_and(|g| constant_time_eq(g.trim().as_bytes(), expected.as_bytes()))
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert_eq!(format!("{:?}", Auth::Bearer("secret".into())), "Auth::Bearer(..)");
    }
}
