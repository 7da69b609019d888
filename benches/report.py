#!/usr/bin/env python3
"""Turns criterion's estimates under target/criterion into the markdown
tables of BENCHMARKS.md: ns/op (median), ratio to the floor row of the
group, and hotmeter's ratio to the fastest peer. Reads only; run it after
`cargo bench -p hotmeter-benches`."""
import json
import pathlib
import sys

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
OURS = ("hotmeter",)


def median_ns(bench_dir):
    est = json.loads((bench_dir / "new" / "estimates.json").read_text())
    return est["median"]["point_estimate"]


def groups():
    """Criterion stores group 'a/b/c' as directory 'a_b_c'; benchmark.json names it."""
    out = {}
    for bench_json in ROOT.rglob("new/benchmark.json"):
        meta = json.loads(bench_json.read_text())
        out.setdefault(meta["group_id"], {})[meta["function_id"]] = median_ns(bench_json.parent.parent)
    return out


def main():
    found = groups()
    if not found:
        sys.exit(f"no criterion results under {ROOT}: run `cargo bench -p hotmeter-benches` first")
    for group in sorted(found):
        rows = found[group]
        floor = next((v for k, v in rows.items() if k.startswith("floor")), None)
        peers = {k: v for k, v in rows.items() if not k.startswith(OURS) and not k.startswith("floor")}
        best_peer = min(peers.items(), key=lambda kv: kv[1]) if peers else None
        print(f"\n#### `{group}`\n")
        print("| implementation | ns/op | × floor | × fastest peer |")
        print("|---|---:|---:|---:|")
        for name, ns in sorted(rows.items(), key=lambda kv: kv[1]):
            vs_floor = f"{ns / floor:.2f}" if floor else "–"
            vs_peer = f"{ns / best_peer[1]:.2f}" if best_peer else "–"
            bold = "**" if name.startswith(OURS) else ""
            print(f"| {bold}{name}{bold} | {ns:.2f} | {vs_floor} | {vs_peer} |")
        if best_peer:
            print(f"\nfastest peer: `{best_peer[0]}` ({best_peer[1]:.2f} ns)")


if __name__ == "__main__":
    main()
