#!/usr/bin/env bash
# What a user pays to depend on each hotmeter crate, beside the peers: the
# number of crates compiled (normal and build dependencies, the crate
# itself included, the empty program that uses it not) and the cold build
# time of that program, dev and release, each from an empty target
# directory. Every configuration is a scratch binary outside the workspace,
# as a user's program would be; hotmeter's crates by path, peers from the
# registry at the versions in Cargo.lock (or the newest, when not in it).
#
#   bash benches/dependency-weight.sh [OUT_DIR]     # default /tmp/hotmeter-dependency-weight
#   ONLY=exporter bash benches/dependency-weight.sh # only the rows whose label matches
#
# Prints one Markdown row per configuration. Times are wall clock on this
# machine with `cargo build -j$(nproc)`; run it on a quiet machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-/tmp/hotmeter-dependency-weight}
mkdir -p "$out"
c="$root/crates"

configs=(
  "hotmeter|hotmeter = { path = \"$c/hotmeter\" }"
  "hotmeter-format|hotmeter-format = { path = \"$c/hotmeter-format\" }"
  "hotmeter-exporter|hotmeter-exporter = { path = \"$c/hotmeter-exporter\" }"
  "hotmeter-exporter, no default features|hotmeter-exporter = { path = \"$c/hotmeter-exporter\", default-features = false }"
  "hotmeter-push|hotmeter-push = { path = \"$c/hotmeter-push\" }"
  "hotmeter-push, no default features (no TLS)|hotmeter-push = { path = \"$c/hotmeter-push\", default-features = false }"
  "hotmeter-metrics + hotmeter-exporter|hotmeter-metrics = { path = \"$c/hotmeter-metrics\" }
hotmeter-exporter = { path = \"$c/hotmeter-exporter\" }"
  "hotmeter-tower|hotmeter-tower = { path = \"$c/hotmeter-tower\" }"
  "prometheus-client 0.26|prometheus-client = \"0.26\""
  "prometheus 0.14 (tikv)|prometheus = \"0.14\""
  "metrics 0.24 + metrics-exporter-prometheus 0.18|metrics = \"0.24\"
metrics-exporter-prometheus = \"0.18\""
)

printf '| dependency | crates compiled | cold `cargo build` | cold `cargo build --release` |\n|---|---:|---:|---:|\n'
i=0
for entry in "${configs[@]}"; do
  i=$((i + 1))
  label=${entry%%|*}
  deps=${entry#*|}
  if [[ -n "${ONLY:-}" && ! "$label" =~ $ONLY ]]; then continue; fi
  dir="$out/p$i"
  rm -rf "$dir"
  mkdir -p "$dir/src"
  printf '[package]\nname = "weight-%s"\nversion = "0.0.0"\nedition = "2024"\n\n[dependencies]\n%s\n\n[workspace]\n' "$i" "$deps" >"$dir/Cargo.toml"
  echo 'fn main() {}' >"$dir/src/main.rs"
  cp "$root/Cargo.lock" "$dir/Cargo.lock"
  (cd "$dir" && cargo fetch -q) >&2
  # Every package the program compiles, itself excluded.
  crates=$(cd "$dir" && cargo tree -q -e normal,build --prefix none --format '{p}' | sed 's/ (\*)$//' | sort -u | grep -vc "^weight-$i ")
  times=()
  for profile in dev release; do
    rm -rf "$dir/target"
    echo "building: $label ($profile)" >&2
    start=$(date +%s%N)
    (cd "$dir" && cargo build -q --profile "$profile") >&2
    tenths=$((($(date +%s%N) - start) / 100000000))
    times+=("$((tenths / 10)).$((tenths % 10)) s")
  done
  rm -rf "$dir/target"
  printf '| %s | %s | %s | %s |\n' "$label" "$crates" "${times[0]}" "${times[1]}"
done
