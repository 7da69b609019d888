#!/usr/bin/env bash
# Every table of BENCHMARKS.md's issue-13 and issue-14 sections from one command: the
# timing benchmarks (hotmeter beside every peer, one criterion process per
# file) run twice, each run's results kept apart, then one row per group
# with both runs side by side; then the memory tables. Prints Markdown on
# stdout and progress on stderr. Takes about 30 minutes on 2 vCPUs; run it
# on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${BENCH_OUT:-target/bench-runs}
mkdir -p "$out"
benches=(--bench record --bench labels --bench render --bench render_protobuf --bench render_formats --bench facade --bench scale --bench push)
cargo bench -p hotmeter-benches "${benches[@]}" --no-run >&2

for run in 1 2; do
    echo "run $run of 2: timing (criterion, --warm-up-time 0.3 --measurement-time 1)" >&2
    rm -rf target/criterion "$out/run$run"
    cargo bench -p hotmeter-benches "${benches[@]}" -- --warm-up-time 0.3 --measurement-time 1 \
        > "$out/run$run.log" 2>&1
    cp -r target/criterion "$out/run$run"
done

echo "- **Date:** $(date -u +%Y-%m-%d). **CPU:** \`$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')\`, $(nproc) CPUs. **Rust:** $(rustc --version | cut -d' ' -f2)."
echo
echo "### Two runs, hotmeter against the fastest peer (run 1 / run 2)"
echo
python3 benches/report.py --spread "$out/run1" "$out/run2"
echo
for run in 1 2; do
    echo "### Run $run: native histograms and hotmeter's own cost per exposition format"
    python3 benches/report.py "$out/run$run" native_histogram_observe
    python3 benches/report.py "$out/run$run" render_formats
    echo
done
echo "### Memory"
cargo bench -p hotmeter-benches --bench memory 2>/dev/null
