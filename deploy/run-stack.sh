#!/usr/bin/env bash
# Starts the whole local stack on loopback: the hotmeter demo (:9898),
# Prometheus (:9090, seven days of history), Alertmanager (:9093) and a
# webhook receiver (:9099) that prints every notification. Ctrl-C stops all
# of them. Extra arguments go to the demo, e.g. to make HighErrorRate fire:
#
#   bash deploy/run-stack.sh --error-rate 0.05
#
# Needs Debian's `prometheus` and `prometheus-alertmanager` packages and
# python3. State (TSDB, Alertmanager data, the demo's SQLite file) goes to
# $HOTMETER_STACK_DIR (default: target/stack).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
command -v python3 >/dev/null || missing+=(python3)
if ((${#missing[@]})); then
    echo "run-stack: missing ${missing[*]}; install with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi

state="${HOTMETER_STACK_DIR:-target/stack}"
mkdir -p "$state/prometheus" "$state/alertmanager"
logs="$state/logs"
mkdir -p "$logs"

echo "building the demo..."
cargo build --release -p hotmeter-demo

pids=()
stop() {
    trap - INT TERM EXIT
    echo
    echo "stopping the stack..."
    # The demo first (SIGTERM: it drains and prints its summary), then the rest.
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop INT TERM EXIT

python3 deploy/webhook.py 9099 &
pids+=($!)
prometheus-alertmanager --config.file=deploy/alertmanager.yml --web.listen-address=127.0.0.1:9093 \
    --cluster.listen-address= --storage.path="$state/alertmanager" >"$logs/alertmanager.log" 2>&1 &
pids+=($!)
prometheus --config.file=deploy/prometheus.yml --storage.tsdb.path="$state/prometheus" \
    --storage.tsdb.retention.time=7d --web.listen-address=127.0.0.1:9090 >"$logs/prometheus.log" 2>&1 &
pids+=($!)

cat <<MSG
stack on loopback (logs in $logs):
  demo metrics   http://127.0.0.1:9898/metrics
  Prometheus     http://127.0.0.1:9090   (alerts: /alerts, targets: /targets)
  Alertmanager   http://127.0.0.1:9093
  webhook        notifications print below as [warning] / [critical] lines
Ctrl-C stops everything.
MSG
./target/release/hotmeter-demo --db "$state/demo.db" "$@" &
pids=($! "${pids[@]}")
wait "${pids[0]}" || true
