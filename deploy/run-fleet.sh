#!/usr/bin/env bash
# Starts a fleet on loopback: N hotmeter demos, each on its own port, and one
# Prometheus that discovers them through file_sd (a targets file written
# here) and evaluates the alert rules, so dashboards and rules see N
# instances. Ctrl-C stops everything; so does the end of the demos' own
# --duration (and --linger). Extra arguments go to every demo:
#
#   bash deploy/run-fleet.sh 5 --rate 40 --duration 10m
#
# Each demo keeps its checkpoints in a SQLite file of its own, unless the
# options name one shared store, a fleet on one database:
#
#   bash deploy/run-fleet.sh 3 --store postgres://app@db.internal:5432/checkpoints
#
# Every demo writes as writer demo-I (threads demo-I/worker-N), so the
# instances' checkpoints never mix and each can account for its own rows.
#
# Dashboards: point Grafana at the Prometheus below; the `instance`
# variable picks All or one.
#
# Environment (all optional):
#   HOTMETER_FLEET_DIR       state: TSDB, databases, logs (default target/fleet)
#   HOTMETER_DEMO            the demo binary (default: cargo build --release)
#   FLEET_PROMETHEUS         Prometheus' address (default 127.0.0.1:9090)
#   FLEET_PORTS              the demos' ports, space separated (default 9901..)
#   FLEET_SCRAPE_INTERVAL    default 5s
#   FLEET_STOP_GRACE         seconds a stopping process gets before SIGKILL (default 15)
#
# Needs Debian's `prometheus` package.
set -euo pipefail
cd "$(dirname "$0")/.."

n="${1:-}"
if ! [[ "$n" =~ ^[0-9]+$ ]] || ((n < 1 || n > 100)); then
    echo "usage: bash deploy/run-fleet.sh N [demo options...]   (N from 1 to 100)" >&2
    exit 2
fi
shift
if ! command -v prometheus >/dev/null; then
    echo "run-fleet: missing prometheus; install with: sudo apt-get install -y prometheus" >&2
    exit 1
fi

if ! [[ "${FLEET_STOP_GRACE:-15}" =~ ^[0-9]+$ ]]; then
    echo "run-fleet: FLEET_STOP_GRACE must be whole seconds" >&2
    exit 2
fi

state="${HOTMETER_FLEET_DIR:-target/fleet}"
mkdir -p "$state/prometheus"
state="$(cd "$state" && pwd)"
prom="${FLEET_PROMETHEUS:-127.0.0.1:9090}"
read -r -a ports <<<"${FLEET_PORTS:-$(seq -s ' ' 9901 $((9900 + n)))}"
if ((${#ports[@]} < n)); then
    echo "run-fleet: FLEET_PORTS names ${#ports[@]} ports for $n demos" >&2
    exit 2
fi

demo="${HOTMETER_DEMO:-}"
if [ -z "$demo" ]; then
    echo "building the demo..."
    cargo build --release -p hotmeter-demo
    demo=target/release/hotmeter-demo
fi

pids=()
stop() {
    trap - INT TERM EXIT
    # Demos first (SIGTERM: each drains and prints its summary), then Prometheus.
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    # Bounded: whatever still runs FLEET_STOP_GRACE seconds later is killed.
    local waited=0 alive
    while ((waited < ${FLEET_STOP_GRACE:-15} * 10)); do
        alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
        waited=$((waited + 1))
    done
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop INT TERM EXIT

# The file_sd targets: one entry per demo, each its own `instance`.
targets=""
for ((i = 0; i < n; i++)); do
    targets+="${targets:+, }\"127.0.0.1:${ports[i]}\""
done
printf '[{"targets": [%s], "labels": {"fleet": "local"}}]\n' "$targets" >"$state/targets.json.tmp"
mv "$state/targets.json.tmp" "$state/targets.json"

root="$(pwd)"
cat >"$state/prometheus.yml" <<YML
global:
  scrape_interval: ${FLEET_SCRAPE_INTERVAL:-5s}
  evaluation_interval: ${FLEET_SCRAPE_INTERVAL:-5s}
rule_files:
  - $root/alerts/checkpoints.yml
  - $root/alerts/streaming.yml
  - $root/alerts/slo.yml
scrape_configs:
  - job_name: hotmeter-demo
    file_sd_configs:
      - files: ["$state/targets.json"]
        refresh_interval: 5s
YML

# A --store among the options replaces the per-demo SQLite files.
shared_store=0
for arg in "$@"; do
    case "$arg" in --store | --store=*) shared_store=1 ;; esac
done
demo_pids=()
for ((i = 0; i < n; i++)); do
    own_db=(--db "$state/demo-$i.db")
    ((shared_store)) && own_db=()
    "$demo" --listen "127.0.0.1:${ports[i]}" "${own_db[@]}" --writer-id "demo-$i" --decide-every 0 \
        --decision-log "$state/decisions-$i.jsonl" "$@" >"$state/demo-$i.log" 2>&1 &
    demo_pids+=($!)
done
pids+=("${demo_pids[@]}")
prometheus --config.file="$state/prometheus.yml" --storage.tsdb.path="$state/prometheus" \
    --web.listen-address="$prom" >"$state/prometheus.log" 2>&1 &
pids+=($!)

echo "fleet of $n on loopback (state and logs in $state):"
for ((i = 0; i < n; i++)); do echo "  demo $i      http://127.0.0.1:${ports[i]}/metrics"; done
echo "  Prometheus  http://$prom   (targets from $state/targets.json)"
echo "Ctrl-C stops everything."
wait "${demo_pids[@]}" || true
