#!/usr/bin/env bash
# BENCHMARKS.md's current table: every operation issue #24 names, hotmeter
# beside every peer in one criterion process per file, in both profiles
# (`bench`: LTO and one codegen unit; `release` as a dependent's
# `cargo build --release` gives it: no LTO, 16 codegen units), two runs
# each. Prints the Markdown table on stdout, progress on stderr. About 40
# minutes on 2 vCPUs; run it on an otherwise idle machine.
#
#   bash benches/current.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=${BENCH_OUT:-target/bench-current}
mkdir -p "$out"
# render.rs builds only the groups a plain (non-regex) filter names.
# BENCH_ARGS overrides criterion's times (default: --warm-up-time 1 --measurement-time 2).
read -r -a args <<< "${BENCH_ARGS:---warm-up-time 1 --measurement-time 2}"
filters=(
    "record:^(counter_inc/(1thread|2threads)|histogram_observe/(1thread|2threads)|native_histogram_observe/1thread)/"
    "scale:^labeled_inc/string_lookup_every_call/(8|1000|100000)_series/"
    "render:short_id/1000_series"
    "facade:^facade/"
)
for profile in bench release-default; do
    profile_args=()
    if [ "$profile" = release-default ]; then
        export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
        profile_args=(--profile release)
    else
        unset CARGO_PROFILE_RELEASE_LTO CARGO_PROFILE_RELEASE_CODEGEN_UNITS
    fi
    cargo bench -p hotmeter-benches "${profile_args[@]}" --bench record --bench scale --bench render --bench facade --no-run >&2
    for run in 1 2; do
        rm -rf target/criterion "$out/$profile-run$run"
        for entry in "${filters[@]}"; do
            bench=${entry%%:*}
            echo "$profile run $run of 2: $bench" >&2
            cargo bench -p hotmeter-benches "${profile_args[@]}" --bench "$bench" -- "${args[@]}" "${entry#*:}" \
                > "$out/$profile-run$run-$bench.log" 2>&1
        done
        cp -r target/criterion "$out/$profile-run$run"
    done
done
echo "- **Date:** $(date -u +%Y-%m-%d). **CPU:** \`$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')\`, $(nproc) CPUs. **Rust:** $(rustc --version | cut -d' ' -f2). **Command:** \`bash benches/current.sh\` (criterion \`${args[*]}\`)."
echo
python3 benches/report.py --current "$out/bench-run1" "$out/bench-run2" "$out/release-default-run1" "$out/release-default-run2"
