//! loom models of every lock-free structure in hotmeter live in `tests/`.
//!
//! Run them with:
//! ```text
//! RUSTFLAGS="--cfg hotmeter_loom --cfg crossbeam_loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test -p loom-tests --release --target-dir target/loom
//! ```
//! Without the cfg every test file compiles to nothing, so a plain
//! `cargo test --workspace` stays fast. Each structure also has a
//! `#[should_panic]` model of a deliberately broken variant, which proves
//! that loom can see the class of bug the real one is built to avoid.

/// Runs `f` on `n` loom threads, each with its own clone of `shared`, and
/// returns their results in spawn order once all have joined.
#[cfg(hotmeter_loom)]
pub fn on_threads<T, R>(n: usize, shared: &T, f: fn(T) -> R) -> Vec<R>
where
    T: Clone + Send + 'static,
    R: Send + 'static,
{
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let mine = shared.clone();
            loom::thread::spawn(move || f(mine))
        })
        .collect();
    handles.into_iter().map(|h| h.join().expect("a model thread panicked")).collect()
}
