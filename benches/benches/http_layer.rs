//! What `hotmeter-tower`'s layer adds to one HTTP request: a tower service
//! that answers a 13-byte body at once, called and its body read to the
//! end, bare and wrapped in `HttpMetricsLayer` (method, route template and
//! status labels; a native-histogram duration and body size, the
//! in-flight gauge). Two route shapes: one route, and 100 routes taken in
//! turn (100 label sets). No network: the layer's own cost, not hyper's.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use hotmeter::Registry;
use hotmeter_tower::{HttpMetricsLayer, Route};
use http::{Request, Response};
use http_body::Body;
use http_body_util::Full;
use tower_layer::Layer;
use tower_service::Service;

/// The inner service: answers at once.
#[derive(Clone)]
struct Hello;

impl Service<Request<()>> for Hello {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, _: Request<()>) -> Self::Future {
        std::future::ready(Ok(Response::new(Full::new(Bytes::from_static(b"hello, world\n")))))
    }
}

/// One request: ready, call, the response, every body frame; the bytes read.
fn request<S, B>(service: &mut S, req: Request<()>) -> usize
where
    S: Service<Request<()>, Response = Response<B>, Error = Infallible>,
    B: Body<Data = Bytes>,
{
    let mut cx = Context::from_waker(Waker::noop());
    let Poll::Ready(Ok(())) = service.poll_ready(&mut cx) else { unreachable!() };
    let Poll::Ready(Ok(response)) = pin!(service.call(req)).poll(&mut cx) else { unreachable!() };
    let mut body = pin!(response.into_body());
    let mut read = 0;
    while let Poll::Ready(Some(Ok(frame))) = body.as_mut().poll_frame(&mut cx) {
        read += frame.data_ref().map_or(0, Bytes::len);
    }
    read
}

/// Routes as the router would hand them over: shared templates.
fn routes(n: usize) -> Vec<Route> {
    (0..n).map(|i| Route::Shared(format!("/api/v1/resource{i}/{{id}}").into())).collect()
}

fn http_layer(c: &mut Criterion) {
    let mut g = c.benchmark_group("http_layer");
    for n in [1usize, 100] {
        let templates = routes(n);
        let mut bare = Hello;
        let mut i = 0usize;
        g.bench_function(format!("bare/{n}_routes"), |b| {
            b.iter(|| {
                i = (i + 1) % n;
                let mut req = Request::new(());
                req.extensions_mut().insert(templates[i].clone());
                black_box(request(&mut bare, req))
            })
        });
        let registry = Registry::new();
        let layer = HttpMetricsLayer::new(&registry, |ext| ext.get::<Route>().cloned()).unwrap();
        let mut measured = layer.layer(Hello);
        assert_eq!(request(&mut measured, Request::new(())), 13);
        g.bench_function(format!("hotmeter_tower/{n}_routes"), |b| {
            b.iter(|| {
                i = (i + 1) % n;
                let mut req = Request::new(());
                req.extensions_mut().insert(templates[i].clone());
                black_box(request(&mut measured, req))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, http_layer);
criterion_main!(benches);
