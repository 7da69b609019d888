//! A [tower](https://docs.rs/tower) layer that records every HTTP request a
//! service answers into a hotmeter [`Registry`]: axum, hyper and tonic
//! services alike.
//!
//! Owns: the HTTP metrics' names, labels and buckets ([`HttpMetrics`]), the
//! layer and its service ([`HttpMetricsLayer`], [`HttpMetricsService`]),
//! and the response body wrapper that measures what was sent. Must not:
//! label by anything unbounded (the raw path, a query, a header value), or
//! allocate or lock on a request beyond what the core's lock-free lookups
//! do.
//!
//! # The metrics (OpenTelemetry's HTTP server conventions, in Prometheus names)
//! | name | type | labels |
//! |---|---|---|
//! | `http_server_request_duration_seconds` | native histogram, classic buckets alongside | `http_request_method`, `http_route`, `http_response_status_code` |
//! | `http_server_active_requests` | gauge | `http_request_method` |
//! | `http_server_response_body_size_bytes` | native histogram, classic buckets alongside | `http_request_method`, `http_route`, `http_response_status_code` |
//!
//! A request's count is its duration histogram's `_count`. The method is
//! one of the nine standard ones or `_OTHER`; the route is the route
//! template the router matched (`/users/{id}`, never `/users/42`), or
//! empty when none matched (a 404), so the label sets stay bounded by the
//! application's routes; the status is the three-digit code, or `error`
//! when the inner service failed without a response. The duration runs
//! from the call to the response's head; the body size counts the bytes
//! of the body actually handed on, recorded when it ends or is dropped.
//! "Active" counts requests whose response head is not yet made.
//!
//! # Example (axum)
//! ```
//! # #[cfg(feature = "axum")]
//! # fn main() -> Result<(), hotmeter::RegistryError> {
//! let registry = hotmeter::Registry::new();
//! let app: axum::Router = axum::Router::new()
//!     .route("/users/{id}", axum::routing::get(|| async { "a user" }))
//!     // `layer` wraps each route after it is matched: the template is known.
//!     .layer(hotmeter_tower::HttpMetricsLayer::for_axum(&registry)?);
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "axum"))]
//! # fn main() {}
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use hotmeter::{Buckets, IntGauge, NativeHistogram, NativeOpts, Registry, RegistryError, StringFamily};
use http::{Method, Request, Response};

/// Metric names, without a registry namespace.
pub const REQUEST_DURATION: &str = "http_server_request_duration_seconds";
/// See the module table.
pub const ACTIVE_REQUESTS: &str = "http_server_active_requests";
/// See the module table.
pub const RESPONSE_BODY_SIZE: &str = "http_server_response_body_size_bytes";

/// OpenTelemetry's recommended bounds for `http.server.request.duration`,
/// kept as classic buckets beside the native ones.
const DURATION_BOUNDS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];
/// Classic bounds of the response size, in bytes (a factor of 4 from 64 B).
const SIZE_BOUNDS: [f64; 12] = [
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262144.0,
    1048576.0,
    4194304.0,
    16777216.0,
    67108864.0,
    268435456.0,
];

/// The HTTP server metrics, registered in one registry; shared by every
/// service the layer wraps.
#[derive(Debug)]
pub struct HttpMetrics {
    duration: StringFamily<NativeHistogram>,
    active: StringFamily<IntGauge>,
    /// `active`'s series by [`METHODS`] index, looked up once each.
    active_by_method: [OnceLock<IntGauge>; METHODS.len()],
    body_size: StringFamily<NativeHistogram>,
}

/// The method labels, standard ones first.
const METHODS: [&str; 10] = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE", "_OTHER"];

impl HttpMetrics {
    /// The in-flight gauge of the method at `METHODS[m]`.
    fn active(&self, m: usize) -> Option<&IntGauge> {
        if let Some(g) = self.active_by_method[m].get() {
            return Some(g);
        }
        let g = self.active.get(&[METHODS[m]]).ok()?;
        Some(self.active_by_method[m].get_or_init(|| g))
    }

    /// Registers (or finds) the metrics of the module table in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, RegistryError> {
        let labels = ["http_request_method", "http_route", "http_response_status_code"];
        let duration_opts = NativeOpts::new().classic(Buckets::new(DURATION_BOUNDS)?);
        let size_opts = NativeOpts::new().classic(Buckets::new(SIZE_BOUNDS)?);
        Ok(Self {
            duration: registry.labeled_family(
                REQUEST_DURATION,
                "Duration of HTTP server requests, to the response head.",
                &labels,
                move || NativeHistogram::new(duration_opts.clone()),
            )?,
            // Built here, not by `labeled_family`: a registry's default
            // idle timeout must not expire gauges whose handles are kept.
            active: registry.register(
                hotmeter::Opts::new(ACTIVE_REQUESTS, "HTTP server requests whose response head is not made yet."),
                StringFamily::new(&["http_request_method"], IntGauge::new),
            )?,
            active_by_method: Default::default(),
            body_size: registry.labeled_family(
                RESPONSE_BODY_SIZE,
                "Size of HTTP server response bodies as sent.",
                &labels,
                move || NativeHistogram::new(size_opts.clone()),
            )?,
        })
    }
}

/// Finds a request's route template; `None` when it matched no route.
pub type RouteFn = Arc<dyn Fn(&http::Extensions) -> Option<Route> + Send + Sync>;

/// A request's route template, kept without copying it where the router
/// already holds it.
#[derive(Clone, Debug)]
pub enum Route {
    /// A template known when the program was built.
    Static(&'static str),
    /// A template held elsewhere, shared.
    Shared(Arc<str>),
    /// axum's matched path.
    #[cfg(feature = "axum")]
    Axum(axum::extract::MatchedPath),
}

impl Route {
    fn as_str(&self) -> &str {
        match self {
            Route::Static(s) => s,
            Route::Shared(s) => s,
            #[cfg(feature = "axum")]
            Route::Axum(p) => p.as_str(),
        }
    }
}

/// The [`tower_layer::Layer`] that wraps a service in an
/// [`HttpMetricsService`].
#[derive(Clone)]
pub struct HttpMetricsLayer {
    metrics: Arc<HttpMetrics>,
    route: RouteFn,
}

impl std::fmt::Debug for HttpMetricsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpMetricsLayer").field("metrics", &self.metrics).finish_non_exhaustive()
    }
}

impl HttpMetricsLayer {
    /// A layer recording into `registry`, with `route` telling each
    /// request's route template (from the request's extensions, where
    /// routers put it). Return a template, never the raw path: the label
    /// must stay bounded.
    pub fn new(
        registry: &Registry,
        route: impl Fn(&http::Extensions) -> Option<Route> + Send + Sync + 'static,
    ) -> Result<Self, RegistryError> {
        Ok(Self { metrics: Arc::new(HttpMetrics::register(registry)?), route: Arc::new(route) })
    }

    /// A layer for axum: the route is axum's `MatchedPath` (add it with
    /// `Router::layer`, which wraps each route after matching).
    #[cfg(feature = "axum")]
    pub fn for_axum(registry: &Registry) -> Result<Self, RegistryError> {
        Self::new(registry, |ext| ext.get::<axum::extract::MatchedPath>().cloned().map(Route::Axum))
    }
}

impl<S> tower_layer::Layer<S> for HttpMetricsLayer {
    type Service = HttpMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpMetricsService { inner, metrics: self.metrics.clone(), route: self.route.clone() }
    }
}

/// A service that records each request it passes to `S`.
#[derive(Clone)]
pub struct HttpMetricsService<S> {
    inner: S,
    metrics: Arc<HttpMetrics>,
    route: RouteFn,
}

impl<S> std::fmt::Debug for HttpMetricsService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpMetricsService").field("metrics", &self.metrics).finish_non_exhaustive()
    }
}

/// The method as OpenTelemetry labels it, as an index into [`METHODS`]: a
/// standard one, else `_OTHER` (a client can send any token).
fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::DELETE => 3,
        Method::HEAD => 4,
        Method::OPTIONS => 5,
        Method::PATCH => 6,
        Method::CONNECT => 7,
        Method::TRACE => 8,
        _ => 9,
    }
}

impl<S, ReqB, ResB> tower_service::Service<Request<ReqB>> for HttpMetricsService<S>
where
    S: tower_service::Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: http_body::Body,
{
    type Response = Response<MeasuredBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let m = method_index(req.method());
        let route = (self.route)(req.extensions());
        let active = Active::start(&self.metrics, m);
        // Timed from before the inner call: a router's work in `call` counts.
        let started = Instant::now();
        ResponseFuture {
            inner: self.inner.call(req),
            started,
            request: Some(RequestLabels { metrics: self.metrics.clone(), method: METHODS[m], route }),
            active,
        }
    }
}

/// What a request is labelled by, carried to its response.
struct RequestLabels {
    metrics: Arc<HttpMetrics>,
    method: &'static str,
    route: Option<Route>,
}

impl RequestLabels {
    fn observe(&self, family: &StringFamily<NativeHistogram>, status: &str, value: f64) {
        let route = self.route.as_ref().map_or("", Route::as_str);
        // Three values for three labels: never a LabelCountError.
        let _ = family.with(&[self.method, route, status], |h| h.observe(value));
    }
}

/// One request in flight in `http_server_active_requests`, until dropped
/// (its response head made, or the request cancelled).
struct Active(Option<(Arc<HttpMetrics>, usize)>);

impl Active {
    fn start(metrics: &Arc<HttpMetrics>, m: usize) -> Self {
        match metrics.active(m) {
            Some(g) => {
                g.inc();
                Self(Some((metrics.clone(), m)))
            }
            None => Self(None),
        }
    }

    fn end(&mut self) {
        if let Some((metrics, m)) = self.0.take()
            && let Some(g) = metrics.active(m)
        {
            g.dec();
        }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.end();
    }
}

pin_project_lite::pin_project! {
    /// The future of an [`HttpMetricsService`] call.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        started: Instant,
        request: Option<RequestLabels>,
        active: Active,
    }
}

impl<F, ResB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    ResB: http_body::Body,
{
    type Output = Result<Response<MeasuredBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        let elapsed = this.started.elapsed().as_secs_f64();
        let request = this.request.take();
        // The head is made: no longer active.
        this.active.end();
        Poll::Ready(match result {
            Ok(response) => {
                let status = response.status();
                if let Some(r) = &request {
                    r.observe(&r.metrics.duration, status.as_str(), elapsed);
                }
                Ok(response.map(|body| MeasuredBody { inner: body, sent: 0, status, request }))
            }
            Err(e) => {
                if let Some(r) = &request {
                    r.observe(&r.metrics.duration, "error", elapsed);
                }
                Err(e)
            }
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that counts the bytes it hands on and records them
    /// in `http_server_response_body_size_bytes` once, when it ends or is
    /// dropped.
    pub struct MeasuredBody<B> {
        #[pin]
        inner: B,
        sent: u64,
        status: http::StatusCode,
        request: Option<RequestLabels>,
    }

    impl<B> PinnedDrop for MeasuredBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            record_size(this.request, *this.status, *this.sent);
        }
    }
}

fn record_size(request: &mut Option<RequestLabels>, status: http::StatusCode, sent: u64) {
    if let Some(r) = request.take() {
        r.observe(&r.metrics.body_size, status.as_str(), sent as f64);
    }
}

impl<B: http_body::Body> http_body::Body for MeasuredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let Some(data) = f.data_ref() {
                    *this.sent += bytes_len(data);
                }
            }
            None => record_size(this.request, *this.status, *this.sent),
            Some(Err(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn bytes_len<D: bytes::Buf>(data: &D) -> u64 {
    data.remaining() as u64
}
