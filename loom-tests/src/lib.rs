//! loom models of every lock-free structure in hotmeter live in `tests/`.
//!
//! Run them with:
//! ```text
//! RUSTFLAGS="--cfg hotmeter_loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test -p loom-tests --release --target-dir target/loom
//! ```
//! Without the cfg every test file compiles to nothing, so a plain
//! `cargo test --workspace` stays fast. Each structure also has a
//! `#[should_panic]` model of a deliberately broken variant, which proves
//! that loom can see the class of bug the real one is built to avoid.
