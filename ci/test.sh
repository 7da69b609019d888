#!/usr/bin/env bash
# The whole test suite, runnable on a fresh machine that has only the Rust
# toolchain: formatting, lints, unit/stress/doc tests, the loom models,
# benchmark compilation and the docs. Each step prints its name and time.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Bounded model checking keeps the loom step to a few minutes on 2 cores.
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"

suite_start=$(date +%s)
results=$(mktemp)
trap 'rm -f "$results"' EXIT
step() {
    printf '\n==> [%4ss] %s\n' "$(( $(date +%s) - suite_start ))" "$*"
}

step "toolchain components (rustfmt, clippy)"
if command -v rustup >/dev/null 2>&1; then
    rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi
cargo --version

step "system packages (promtool, from Debian's prometheus)"
if ! command -v promtool >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
promtool --version 2>&1 | head -n 1

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (unit, stress, allocation, doc tests)"
cargo test --workspace --locked 2>&1 | tee -a "$results"

step "loom models (LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS)"
RUSTFLAGS="--cfg hotmeter_loom" cargo test -p loom-tests --release --locked --target-dir target/loom 2>&1 | tee -a "$results"

step "benchmarks compile (cargo bench --no-run)"
cargo bench --workspace --no-run --locked

step "docs (-D warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

step "all steps passed"
# One closing line over every test binary above (unit, stress, doc, loom).
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$results"
