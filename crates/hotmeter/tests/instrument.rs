//! One-line instrumentation against a hand-instrumented twin: same metrics
//! for sync and async functions, `Ok` and `Err`, and futures dropped before
//! completion (cancelled, not success).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use hotmeter::{Counter, Family, Histogram, Instrumented, Opts, Outcome, OwnedValue, Registry};

/// The hand-written twin of `Instrumented::run`.
struct Hand {
    calls: Family<Outcome, Counter>,
    latency: Histogram,
}

impl Hand {
    fn register(registry: &Registry, name: &str) -> Self {
        let calls = registry
            .register(Opts::new(format!("{name}_calls_total"), "Twin."), hotmeter::Family::new(Counter::new))
            .unwrap();
        let latency = registry
            .register(
                Opts::new(format!("{name}_duration_seconds"), "Twin.").unit(hotmeter::Unit::SECONDS),
                Histogram::with_default_buckets(),
            )
            .unwrap();
        Self { calls, latency }
    }

    fn run<T, E>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let start = Instant::now();
        let r = f();
        self.latency.observe_duration(start.elapsed());
        self.calls.get(if r.is_ok() { Outcome::Success } else { Outcome::Error }).inc();
        r
    }
}

fn outcome_counts(registry: &Registry, name: &str) -> Vec<(String, u64)> {
    let snap = registry.snapshot();
    let fam = snap.family(&format!("{name}_calls_total")).expect("family");
    fam.series
        .iter()
        .map(|s| match s.value {
            OwnedValue::Counter(c) => (s.labels[0].1.clone(), c),
            ref other => panic!("{other:?}"),
        })
        .collect()
}

fn latency_count(registry: &Registry, name: &str) -> u64 {
    match registry.snapshot().value(&format!("{name}_duration_seconds"), &[]) {
        Some(OwnedValue::Histogram { count, .. }) => *count,
        other => panic!("{other:?}"),
    }
}

#[test]
fn sync_matches_the_hand_written_twin() {
    let registry = Registry::new();
    let auto = Instrumented::register(&registry, "auto", "Twin.").unwrap();
    let hand = Hand::register(&registry, "hand");
    for i in 0..10u32 {
        let body = || if i % 3 == 0 { Err(format!("failed {i}")) } else { Ok(i) };
        let a = auto.run(body);
        let h = hand.run(body);
        assert_eq!(a, h, "the result passes through unchanged");
    }
    assert_eq!(outcome_counts(&registry, "auto"), outcome_counts(&registry, "hand"));
    assert_eq!(
        outcome_counts(&registry, "auto"),
        vec![("cancelled".to_owned(), 0), ("error".to_owned(), 4), ("success".to_owned(), 6)]
    );
    assert_eq!(latency_count(&registry, "auto"), 10);
    assert_eq!(latency_count(&registry, "hand"), 10);
    assert_eq!(auto.run_infallible(|| 5), 5);
    assert_eq!(auto.calls(Outcome::Success), 7);
}

/// Pending once, then ready: lets a test drop a future mid-flight.
struct YieldOnce(bool);
impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

#[test]
fn async_ok_err_and_cancelled() {
    let registry = Registry::new();
    let auto = Instrumented::register(&registry, "op", "Async op.").unwrap();
    let ok: Result<u8, &str> = block_on(auto.run_async(async {
        YieldOnce(false).await;
        Ok(1)
    }));
    assert_eq!(ok, Ok(1));
    let err: Result<u8, &str> = block_on(auto.run_async(async { Err("no") }));
    assert_eq!(err, Err("no"));
    // Poll once (it is pending), then drop it: cancelled, not success.
    {
        let fut = auto.run_async(async {
            YieldOnce(false).await;
            Ok::<u8, &str>(2)
        });
        let mut fut = std::pin::pin!(fut);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
    }
    assert_eq!(auto.calls(Outcome::Success), 1);
    assert_eq!(auto.calls(Outcome::Error), 1);
    assert_eq!(auto.calls(Outcome::Cancelled), 1);
    assert_eq!(auto.latency().snapshot().count(), 3);
    // A future never polled records nothing: the call never started.
    drop(auto.run_async(async { Ok::<u8, &str>(3) }));
    assert_eq!(auto.latency().snapshot().count(), 3);
}

#[test]
fn a_panicking_body_is_not_a_success() {
    let registry = Registry::new();
    let auto = Instrumented::register(&registry, "boom", "Panics.").unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        auto.run(|| -> Result<(), ()> { panic!("body panicked") })
    }));
    assert!(r.is_err(), "the panic propagates unchanged");
    assert_eq!(auto.calls(Outcome::Cancelled), 1);
    assert_eq!(auto.calls(Outcome::Success), 0);
}
