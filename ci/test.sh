#!/usr/bin/env bash
# The whole test suite, runnable on a fresh machine that has only the Rust
# toolchain: formatting, lints, unit/stress/doc tests, the loom models,
# benchmark compilation and the docs. Each step prints its name and time.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Bounded model checking keeps the loom step to a few minutes on 2 cores.
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
# Disk: a cold run must fit on a machine with little free space. Incremental
# caches (about 0.8 GB) buy nothing in a one-shot run, and full debug info is
# most of the rest; line tables keep file:line in panics and backtraces.
# Overridable for local runs that want the usual profile.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}"
export CARGO_PROFILE_TEST_DEBUG="${CARGO_PROFILE_TEST_DEBUG:-line-tables-only}"

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
# Free space where target/ goes, so a full disk is plain in the log.
df -h . | tail -n 1

step "system packages (Debian's prometheus, with promtool, prometheus-alertmanager, prometheus-pushgateway, chromium for the dashboard's browser test, postgresql for the test kit's throwaway clusters)"
missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
command -v prometheus-pushgateway >/dev/null 2>&1 || missing+=(prometheus-pushgateway)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# PostgreSQL: the test kit starts a throwaway cluster of its own (initdb and
# pg_ctl in a temporary folder, loopback, a free port), never a system one.
command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
if [ "${#missing[@]}" -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    # Install without starting the packaged services: the tests start their
    # own on loopback, and nothing should listen on all interfaces.
    made_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod +x /usr/sbin/policy-rc.d
        made_policy=1
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [ -z "$made_policy" ] || $SUDO rm -f /usr/sbin/policy-rc.d
fi
promtool --version 2>&1 | head -n 1
prometheus-alertmanager --version 2>&1 | head -n 1
prometheus-pushgateway --version 2>&1 | head -n 1
chromium --version 2>/dev/null | head -n 1
{ command -v initdb >/dev/null 2>&1 && initdb --version; } || ls /usr/lib/postgresql/*/bin/initdb

step "VictoriaMetrics (Debian 13's package, unpacked into a kept cache; the OTLP tests' receiver)"
# Debian 12 has no VictoriaMetrics and its Prometheus no OTLP receiver.
# Debian 13's victoria-metrics runs here as it is (it links libc and
# libzstd): `apt-get download` it through an apt configuration of our own
# (a trixie source on the machine's own mirror, its own lists and cache in a
# temporary folder), so the machine's sources and package lists are never
# touched, and unpack it with `dpkg -x`.
vm_cache="${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/hotmeter/victoria-metrics"
vm_bin="$vm_cache/root/usr/bin/victoria-metrics"
# `package` is written last: without it a cache is incomplete (an
# interrupted run) and is fetched again.
if [ ! -x "$vm_bin" ] || [ ! -s "$vm_cache/package" ]; then
    # The machine's own Debian mirror when a plain http(s) one is named,
    # else deb.debian.org (a `mirror+file:` or snapshot source, or none).
    mirror=""
    for list in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
        [ -z "$mirror" ] && [ -r "$list" ] || continue
        mirror=$(sed -n -e 's/^URIs: *\(https\{0,1\}:[^ ]*\/debian\)\/* *$/\1/p' \
            -e 's/^deb \(https\{0,1\}:[^ ]*\/debian\)\/* .*/\1/p' "$list" | head -n 1) || mirror=""
    done
    [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
    apt_dir=$(mktemp -d)
    chmod 755 "$apt_dir"
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/parts" "$apt_dir/deb"
    printf 'Types: deb\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$mirror" \
        > "$apt_dir/parts/trixie.sources"
    apt_opts=(-o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$apt_dir/parts"
        -o "Dir::Cache=$apt_dir/cache" -o "Acquire::Retries=3" -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false")
    echo "fetching victoria-metrics from $mirror (trixie)"
    apt-get "${apt_opts[@]}" update -qq
    (cd "$apt_dir/deb" && apt-get "${apt_opts[@]}" download victoria-metrics 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
    deb=$(ls "$apt_dir"/deb/victoria-metrics_*.deb)
    # Only the single-node server (16 MB of the package's 150).
    rm -rf "$vm_cache"
    mkdir -p "$vm_cache/root"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$vm_cache/root" ./usr/bin/victoria-metrics
    basename "$deb" > "$vm_cache/package"
    rm -rf "$apt_dir"
fi
export HOTMETER_VICTORIA_METRICS="$vm_bin"
echo "victoria-metrics from $(cat "$vm_cache/package" 2>/dev/null || echo '?') at $vm_bin"

step "Python parsers (prometheus_client, pinned; the exposition tests read our output back with it)"
python3 -c 'import prometheus_client' 2>/dev/null \
    || python3 -m pip install --user --quiet --disable-pip-version-check prometheus_client==0.22.1
python3 -c 'import prometheus_client; print("prometheus_client", prometheus_client.__version__ if hasattr(prometheus_client, "__version__") else "")'

step "Python OTLP decoder (opentelemetry-proto, pinned; the OTLP test decodes our bodies with it)"
python3 -c 'import opentelemetry.proto.collector.metrics.v1.metrics_service_pb2' 2>/dev/null \
    || python3 -m pip install --user --quiet --disable-pip-version-check opentelemetry-proto==1.45.2 protobuf==7.36.2
python3 -c 'from google.protobuf import __version__ as v; print("opentelemetry-proto with protobuf", v)'

step "alert rules, their unit tests and the local stack's configs (promtool, amtool)"
promtool check rules alerts/*.yml
promtool test rules alerts/tests/*.yml
promtool check config deploy/prometheus.yml
amtool check-config deploy/alertmanager.yml

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (unit, stress, allocation, doc tests; the demo scraped by a real Prometheus; the dashboard in headless Chromium)"
cargo test --workspace --locked 2>&1 | tee -a "$results"

step "examples: each one's main, as a user runs it (their tests ran above)"
cargo run -q --locked -p hotmeter-examples --example tokio_worker -- 127.0.0.1:0 0
facade_output=$(cargo run -q --locked -p hotmeter-examples --example metrics_facade -- 127.0.0.1:0)
grep -q '^http_requests_total{method="GET",status="200"} 490$' <<<"$facade_output"
cargo run -q --locked -p hotmeter-examples --example http_service -- 127.0.0.1:0 1
pool_output=$(cargo run -q --locked -p hotmeter-exporter --example worker_pool -- 1 127.0.0.1:0)
grep -q 'example_jobs_total' <<<"$pool_output"
# batch_job pushes to a Pushgateway: its test above pushed to a real one; here
# its main must fail cleanly (an error, exit 1) when nothing listens.
cargo build -q --locked -p hotmeter-examples --example batch_job
batch_status=0
cargo run -q --locked -p hotmeter-examples --example batch_job -- "http://127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')" 2>/dev/null || batch_status=$?
if [ "$batch_status" -ne 1 ]; then
    echo "batch_job with no Pushgateway listening exited $batch_status, not 1 (its error)" >&2
    exit 1
fi

step "the exporter's minimal build (no dashboard, gzip or protobuf): lint-clean, and served as its features test expects"
cargo clippy -p hotmeter-exporter --no-default-features --all-targets --locked -- -D warnings
cargo test -p hotmeter-exporter --no-default-features --test features --locked 2>&1 | tee -a "$results"
# hotmeter-format's protobuf turned on by another crate must not change what the exporter offers.
cargo test -p hotmeter-exporter --no-default-features --features hotmeter-format/protobuf --test features --locked 2>&1 | tee -a "$results"
cargo test -p hotmeter-format --no-default-features --locked 2>&1 | tee -a "$results"

step "loom models (LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS)"
RUSTFLAGS="--cfg hotmeter_loom --cfg crossbeam_loom" cargo test -p loom-tests --release --locked --target-dir target/loom 2>&1 | tee -a "$results"

step "loom mutation smoke: two listed mutations must be caught (all: bash loom-tests/mutate.sh)"
bash loom-tests/mutate.sh M2 M14

step "docs (-D warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

step "benchmarks compile (cargo bench --no-run)"
# Nothing after this needs the debug and loom builds: their disk goes back
# first, so the release build of the benchmarks never stacks on top of them
# (peak disk is the larger of the two, not their sum). HOTMETER_KEEP_BUILDS=1
# keeps them, for a local run with room to spare.
if [ -z "${HOTMETER_KEEP_BUILDS:-}" ]; then
    rm -rf target/debug target/loom target/loom-mutants
fi
cargo bench --workspace --no-run --locked

step "churn: 10,000,000 label sets come and go, memory stays flat (not timed; issue #21)"
cargo bench -q --locked -p hotmeter-benches --bench churn

step "all steps passed"
du -sh target 2>/dev/null || true
# One closing line over every test binary above (unit, stress, doc, loom).
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$results"
