#!/usr/bin/env python3
"""Turns criterion's estimates under target/criterion into the markdown
tables of BENCHMARKS.md: ns/op (median), ratio to the floor row of the
group, and hotmeter's ratio to the fastest peer. Reads only; run it after
`cargo bench -p hotmeter-benches`.

`report.py [ROOT [PREFIX]]`: the tables of every group under ROOT whose id
starts with PREFIX.

`report.py --spread RUN1 RUN2 [PREFIX]`: one row per group, two runs (each
a copy of target/criterion) side by side: hotmeter's time, the fastest
peer's, how many times faster hotmeter is in each run, and the floor.

`report.py --current LTO1 LTO2 DEFAULT1 DEFAULT2`: BENCHMARKS.md's current
table (benches/current.sh): one row per group, both profiles, two runs
each; then hotmeter's own ratios the goals name (native against classic
observe, the facade against its floor)."""
import json
import pathlib
import sys

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else "target/criterion")
OURS = ("hotmeter",)


def estimate_ns(bench_dir, stat="median"):
    est = json.loads((bench_dir / "new" / "estimates.json").read_text())
    return est[stat]["point_estimate"]


def groups(root=None, stat="median"):
    """Criterion stores group 'a/b/c' as directory 'a_b_c'; benchmark.json names it.
    Returns {group: {function: (ns by `stat`, median or mean; output bytes or None)}}."""
    out = {}
    for bench_json in (root or ROOT).rglob("new/benchmark.json"):
        meta = json.loads(bench_json.read_text())
        throughput = (meta.get("throughput") or {}).get("Bytes")
        ns = estimate_ns(bench_json.parent.parent, stat)
        out.setdefault(meta["group_id"], {})[meta["function_id"]] = (ns, throughput)
    return out


def fmt_ns(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns:.2f} ns"


def main(prefix=""):
    found = groups()
    if not found:
        sys.exit(f"no criterion results under {ROOT}: run `cargo bench -p hotmeter-benches` first")
    for group in sorted(g for g in found if g.startswith(prefix)):
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


def spread(run1, run2, prefix=""):
    """One row per group: hotmeter and the fastest peer in two runs."""
    runs = [groups(pathlib.Path(run1)), groups(pathlib.Path(run2))]
    print("| group | hotmeter | fastest peer | hotmeter is x faster | floor |")
    print("|---|---:|---:|---:|---:|")
    for group in sorted(set(runs[0]) | set(runs[1])):
        if not group.startswith(prefix):
            continue
        cells = {"hm": [], "peer": [], "ratio": [], "floor": []}
        for r in runs:
            rows = {k: v[0] for k, v in r.get(group, {}).items()}
            # hotmeter's row: `hotmeter`, else its first `hotmeter_*` row.
            hm = rows.get("hotmeter") or next((v for k, v in sorted(rows.items()) if k.startswith(OURS)), None)
            peers = {k: v for k, v in rows.items() if not k.startswith(OURS) and not k.startswith("floor")}
            best = min(peers.items(), key=lambda kv: kv[1]) if peers else None
            floor = next((v for k, v in rows.items() if k.startswith("floor")), None)
            cells["hm"].append(fmt_ns(hm) if hm else "–")
            cells["peer"].append(f"{fmt_ns(best[1])} `{best[0]}`" if best else "–")
            cells["ratio"].append(f"{best[1] / hm:.2f}" if best and hm else "–")
            cells["floor"].append(fmt_ns(floor) if floor else "–")
        print(f"| `{group}` | " + " | ".join(" / ".join(v) for v in cells.values()) + " |")


def current(lto1, lto2, default1, default2):
    """One row per group, both profiles, two runs each."""
    profiles = [[groups(pathlib.Path(p)) for p in (lto1, lto2)], [groups(pathlib.Path(p)) for p in (default1, default2)]]

    def pick(rows):
        hm = rows.get("hotmeter") or next((v for k, v in sorted(rows.items()) if k.startswith(OURS)), None)
        peers = {k: v for k, v in rows.items() if not k.startswith(OURS) and not k.startswith("floor")}
        best = min(peers.items(), key=lambda kv: kv[1]) if peers else None
        return hm, best

    print("| operation | LTO: hotmeter | LTO: fastest peer | LTO: x faster | default: hotmeter | default: fastest peer | default: x faster |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    names = sorted(set().union(*(r.keys() for runs in profiles for r in runs)))
    for group in names:
        cells = []
        for runs in profiles:
            hm_cells, peer_cells, ratio_cells, peer_names = [], [], [], set()
            for r in runs:
                hm, best = pick({k: v[0] for k, v in r.get(group, {}).items()})
                hm_cells.append(fmt_ns(hm) if hm else "–")
                peer_cells.append(fmt_ns(best[1]) if best else "–")
                ratio_cells.append(f"{best[1] / hm:.2f}" if best and hm else "–")
                if best:
                    peer_names.add(best[0])
            names_note = f" `{'`, `'.join(sorted(peer_names))}`" if peer_names else ""
            cells += [" / ".join(hm_cells), " / ".join(peer_cells) + names_note, " / ".join(ratio_cells)]
        print(f"| `{group}` | " + " | ".join(cells) + " |")
    own = [
        ("native_histogram_observe/1thread", "hotmeter", "hotmeter_classic_histogram", "native observe / classic observe (goal: at most 1.5)"),
        ("facade/counter_macro_with_label/1thread", "hotmeter_metrics", "floor_facade_cached_noop_handle", "facade counter / facade floor (goal: at most 1.3)"),
        ("facade/histogram_macro_record/1thread", "hotmeter_metrics", "floor_facade_cached_noop_handle", "facade histogram / facade floor (goal: at most 1.3)"),
    ]
    print()
    print("| hotmeter's own ratio | LTO | default |")
    print("|---|---:|---:|")
    for group, a, b, label in own:
        cells = []
        for runs in profiles:
            vals = []
            for r in runs:
                rows = {k: v[0] for k, v in r.get(group, {}).items()}
                vals.append(f"{rows[a] / rows[b]:.2f}" if a in rows and b in rows else "–")
            cells.append(" / ".join(vals))
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--current":
        current(*sys.argv[2:6])
    elif len(sys.argv) > 1 and sys.argv[1] == "--spread":
        spread(*sys.argv[2:5])
    else:
        main(sys.argv[2] if len(sys.argv) > 2 else "")
