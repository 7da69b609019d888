#!/usr/bin/env bash
# hotmeter's own figures before and after a change, for changes that must
# not move them (refactors): builds REV (default: the merge base with
# origin's main, or HEAD~1) in a temporary worktree and the working tree
# here, then runs the hotmeter entries of the given benchmark files
# alternately, REV, HEAD, REV, HEAD, so drift on a shared machine shows as
# disagreement between the two pairs rather than as a change. Peers are
# left out: their figures cannot move with our code.
#
#   bash benches/before-after.sh REV [bench ...]      (default benches: record labels)
#   FILTER=render_text/counters/short/1000_series bash benches/before-after.sh REV render
#
# FILTER (default `hotmeter`) is criterion's filter; the render benchmarks
# name their groups by workload and their functions by library, so give
# them a group's name (their peers then run too, in the same process).
#
# Environment: PROFILE=bench (default: LTO, one codegen unit) or
# PROFILE=release-default (no LTO, 16 codegen units: what a dependent
# crate's `cargo build --release` gives hotmeter). Prints a Markdown table
# on stdout, progress on stderr. Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: before-after.sh REV [bench ...]}
shift
benches=("$@")
[ "${#benches[@]}" -gt 0 ] || benches=(record labels)
args=()
for b in "${benches[@]}"; do args+=(--bench "$b"); done

profile_args=()
case "${PROFILE:-bench}" in
    bench) ;;
    release-default)
        export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
        profile_args=(--profile release)
        ;;
    *) echo "PROFILE is bench or release-default" >&2; exit 2 ;;
esac

here=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
base=$(mktemp -d)/base
git worktree add --detach "$base" "$rev" >&2
trap 'git worktree remove --force "$base" >&2 || true' EXIT

timing=(-- --warm-up-time "${WARM_UP:-0.5}" --measurement-time "${MEASURE:-2}" "${FILTER:-hotmeter}")
out=$CARGO_TARGET_DIR/before-after
# The base builds into a target directory of its own. In a shared one,
# cargo names a path package's artifacts by its place in the workspace (the
# same in both trees) and judges freshness by file times, so when the two
# revisions resolve the same dependencies the working tree's build is taken
# as up to date and "after" runs the base's binary.
base_target=$CARGO_TARGET_DIR/before-after-base
rm -rf "$out"
mkdir -p "$out"
target_of() { if [ "$1" = "$base" ]; then echo "$base_target"; else echo "$CARGO_TARGET_DIR"; fi; }
for tree in "$base" "$here"; do
    echo "building $tree" >&2
    (cd "$tree" && CARGO_TARGET_DIR=$(target_of "$tree") cargo bench -p hotmeter-benches "${profile_args[@]}" "${args[@]}" --no-run >&2)
done
for round in 1 2; do
    for side in before after; do
        tree=$here
        [ "$side" = after ] || tree=$base
        target=$(target_of "$tree")
        echo "round $round: $side ($tree)" >&2
        rm -rf "$target/criterion"
        (cd "$tree" && CARGO_TARGET_DIR=$target cargo bench -p hotmeter-benches "${profile_args[@]}" "${args[@]}" "${timing[@]}" \
            > "$out/$side$round.log" 2>&1)
        # Benchmarks that are not criterion's (pipeline_paired) leave their
        # table in the log only.
        if [ -d "$target/criterion" ]; then cp -r "$target/criterion" "$out/$side$round"; fi
    done
done
echo "- **Date:** $(date -u +%Y-%m-%d). **CPU:** \`$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')\`, $(nproc) CPUs. **Profile:** ${PROFILE:-bench}. **Before:** \`$(git rev-parse --short "$rev")\`, **after:** \`$(git rev-parse --short HEAD)\`$(git diff --quiet || echo ' plus uncommitted changes')."
echo
python3 benches/before_after.py "$out"
