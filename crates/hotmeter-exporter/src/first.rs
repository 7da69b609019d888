//! Waiting for whichever of two futures finishes first, in a fixed order of
//! priority: all the server needs of `tokio::select!`, without tokio's
//! `macros` feature, whose proc macro brings `syn` and 4 more crates into
//! every build of this crate (docs/benchmarks-history.md, "Dependency weight").
//!
//! Owns: [`first`] and its result, [`First`]. Must not: know about
//! connections, routes or the dashboard.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;

/// Which future finished first, with its output.
pub(crate) enum First<A, B> {
    A(A),
    B(B),
}

/// Runs `a` and `b` together until one finishes, then drops the other (as
/// `tokio::select!` does). At every wake-up `a` is polled before `b`, so
/// when both are ready `a` wins: pass first what must never be starved by
/// the other being always ready (a stop signal before an accept).
pub(crate) async fn first<A: Future, B: Future>(a: A, b: B) -> First<A::Output, B::Output> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    poll_fn(move |cx| {
        if let Poll::Ready(out) = a.as_mut().poll(cx) {
            return Poll::Ready(First::A(out));
        }
        if let Poll::Ready(out) = b.as_mut().poll(cx) {
            return Poll::Ready(First::B(out));
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_first_to_finish_wins_and_a_wins_a_tie() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async {
            let slow = tokio::time::sleep(Duration::from_secs(60));
            assert!(matches!(first(slow, async { 7 }).await, First::B(7)));
            assert!(matches!(first(async { 1 }, async { 2 }).await, First::A(1)), "a tie goes to a");
            let (tx, mut rx) = tokio::sync::watch::channel(false);
            let waiter = first(rx.changed(), tokio::time::sleep(Duration::from_secs(60)));
            let signal = async {
                tokio::task::yield_now().await;
                tx.send(true).unwrap();
            };
            let (won, ()) = tokio::join!(waiter, signal);
            assert!(matches!(won, First::A(Ok(()))), "woken by the signal, not the timer");
        });
    }
}
