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

#[cfg(hotmeter_loom)]
std::thread_local! {
    /// The first violated expectation of the model running on this thread.
    static VIOLATION: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Notes a violated expectation instead of panicking inside the model.
///
/// A panic inside a model that runs `crossbeam-epoch` unwinds while its
/// collector (a loom `lazy_static`) and deferred garbage still hold loom
/// objects; loom then aborts the process while cleaning up, which a
/// mutation run cannot tell from a crash. Models of the epoch code note
/// what they find here and [`checked`] panics once loom has returned.
#[cfg(hotmeter_loom)]
pub fn expect(ok: bool, what: impl FnOnce() -> String) {
    if !ok {
        VIOLATION.with(|v| {
            let mut v = v.borrow_mut();
            if v.is_none() {
                *v = Some(what());
            }
        });
    }
}

/// Runs `model` under `builder`, then fails with the first expectation
/// it violated in any execution (see [`expect`]).
///
/// The model's body runs on a thread of its own, spawned and joined in
/// each execution: `crossbeam-epoch`'s per-thread participant then starts
/// afresh every execution (on loom's model thread itself it carries state
/// from one execution to the next, which loom reports as a model that is
/// not deterministic).
#[cfg(hotmeter_loom)]
pub fn checked(builder: loom::model::Builder, model: impl Fn() + Sync + Send + 'static) {
    VIOLATION.with(|v| v.borrow_mut().take());
    let _ = hotmeter::__loom::take_violation();
    let model = std::sync::Arc::new(model);
    builder.check(move || {
        let model = model.clone();
        loom::thread::spawn(move || model()).join().expect("the model's thread panicked");
    });
    if let Some(what) = VIOLATION.with(|v| v.borrow_mut().take()) {
        panic!("{what}");
    }
    if let Some(what) = hotmeter::__loom::take_violation() {
        panic!("{what}");
    }
}
