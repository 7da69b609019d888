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
    """Criterion stores group 'a/b/c' as directory 'a_b_c'; benchmark.json names it.
    Returns {group: {function: (median ns, output bytes or None)}}."""
    out = {}
    for bench_json in ROOT.rglob("new/benchmark.json"):
        meta = json.loads(bench_json.read_text())
        throughput = (meta.get("throughput") or {}).get("Bytes")
        out.setdefault(meta["group_id"], {})[meta["function_id"]] = (median_ns(bench_json.parent.parent), throughput)
    return out


def fmt_ns(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns:.2f} ns"


def main():
    found = groups()
    if not found:
        sys.exit(f"no criterion results under {ROOT}: run `cargo bench -p hotmeter-benches` first")
    for group in sorted(found):
        rows = {k: v[0] for k, v in found[group].items()}
        bytes_out = {k: v[1] for k, v in found[group].items()}
        floor = next((v for k, v in rows.items() if k.startswith("floor")), None)
        peers = {k: v for k, v in rows.items() if not k.startswith(OURS) and not k.startswith("floor")}
        best_peer = min(peers.items(), key=lambda kv: kv[1]) if peers else None
        with_bytes = any(bytes_out.values())
        print(f"\n#### `{group}`\n")
        print("| implementation | time/op | × floor | × fastest peer |" + (" output | MB/s |" if with_bytes else ""))
        print("|---|---:|---:|---:|" + ("---:|---:|" if with_bytes else ""))
        for name, ns in sorted(rows.items(), key=lambda kv: kv[1]):
            vs_floor = f"{ns / floor:.2f}" if floor else "–"
            vs_peer = f"{ns / best_peer[1]:.2f}" if best_peer else "–"
            bold = "**" if name.startswith(OURS) else ""
            extra = ""
            if with_bytes:
                b = bytes_out.get(name) or 0
                extra = f" {b / 1024:.0f} KiB | {b / ns * 1e3:.0f} |"
            print(f"| {bold}{name}{bold} | {fmt_ns(ns)} | {vs_floor} | {vs_peer} |{extra}")
        if best_peer:
            print(f"\nfastest peer: `{best_peer[0]}` ({fmt_ns(best_peer[1])})")


if __name__ == "__main__":
    main()
