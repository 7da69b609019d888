#!/usr/bin/env bash
# Instructions per operation on hotmeter's hot paths (examples/instructions.rs)
# in REV and in the working tree, under callgrind: a count that does not
# move with the machine's load, for changes that must not move the hot
# paths. Each operation runs at two iteration counts and the difference is
# divided by the difference in iterations, so set-up cancels out.
#
#   bash benches/instructions.sh REV
#
# Both profiles: `bench` (LTO, one codegen unit) and `release-default` (no
# LTO, 16 codegen units: what a dependent's `cargo build --release` gives).
# Needs valgrind (Debian's package). Prints a Markdown table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: instructions.sh REV}
here=$PWD
target=${CARGO_TARGET_DIR:-$here/target}
# REV builds in a target directory of its own: cargo names a workspace
# member's artifacts by its path relative to the workspace root, so REV's
# crates built into the working tree's directory would overwrite the
# working tree's, with newer timestamps, and later builds there would take
# them for current (a stale core, a missing function).
base=$(mktemp -d)/base
git worktree add --detach "$base" "$rev" >&2
trap 'git worktree remove --force "$base" >&2 || true' EXIT
# The example may be newer than REV: the same file measures both.
mkdir -p "$base/benches/examples"
cp benches/examples/instructions.rs "$base/benches/examples/instructions.rs"

ops=(counter_inc:1000000 string_lookup:200000 histogram_observe:1000000 native_observe:1000000 render_counters_1000:20 render_histograms_1000:5 render_protobuf_1000:20)
count() { # binary op n -> instructions
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1" "$2" "$3" 2>&1 \
        | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
declare -A per
for profile in bench release-default; do
    for side in before after; do
        tree=$here
        export CARGO_TARGET_DIR=$target
        if [ "$side" = before ]; then
            tree=$base
            export CARGO_TARGET_DIR=$target/instructions-base
        fi
        if [ "$profile" = bench ]; then
            (cd "$tree" && cargo build --profile bench -p hotmeter-benches --example instructions >&2)
            bin=$CARGO_TARGET_DIR/release/examples/instructions
        else
            (cd "$tree" && CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
                cargo build --release -p hotmeter-benches --example instructions >&2)
            bin=$CARGO_TARGET_DIR/release/examples/instructions
        fi
        for entry in "${ops[@]}"; do
            op=${entry%%:*}
            n=${entry##*:}
            echo "$profile $side $op" >&2
            a=$(count "$bin" "$op" "$n")
            b=$(count "$bin" "$op" $((2 * n)))
            per[$profile,$side,$op]=$(python3 -c "print(f'{($b - $a) / $n:.1f}')")
        done
    done
done
echo "- **Date:** $(date -u +%Y-%m-%d). **CPU:** \`$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')\`. **Before:** \`$(git rev-parse --short "$rev")\`, **after:** \`$(git rev-parse --short HEAD)\`$(git diff --quiet || echo ' plus uncommitted changes'). Instructions per operation (callgrind)."
echo
echo "| operation | bench: before | after | after/before | release-default: before | after | after/before |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for entry in "${ops[@]}"; do
    op=${entry%%:*}
    row="| $op"
    for profile in bench release-default; do
        b=${per[$profile,before,$op]}
        a=${per[$profile,after,$op]}
        row="$row | $b | $a | $(python3 -c "print(f'{$a / $b:.3f}')")"
    done
    echo "$row |"
done
