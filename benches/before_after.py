"""Table for before-after.sh: each hotmeter benchmark's mean in the two
rounds, before and after, and after/before per round.

    python3 benches/before_after.py DIR   (DIR holds before1 after1 before2 after2)
"""
import json
import os
import sys


def means(root):
    """{group/function: mean ns} from one criterion directory."""
    found = {}
    for dirpath, _dirs, files in os.walk(root):
        if os.path.basename(dirpath) == "new" and "estimates.json" in files:
            with open(os.path.join(dirpath, "estimates.json")) as f:
                est = json.load(f)
            with open(os.path.join(dirpath, "benchmark.json")) as f:
                bench = json.load(f)
            found[bench["full_id"]] = est["mean"]["point_estimate"]
    return found


def fmt(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns:.2f} ns"


def main():
    root = sys.argv[1]
    runs = {name: means(os.path.join(root, name)) for name in ("before1", "after1", "before2", "after2")}
    ids = sorted(set(runs["before1"]) & set(runs["after1"]))
    print("| benchmark | before 1 | after 1 | after/before 1 | before 2 | after 2 | after/before 2 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for i in ids:
        cells = [i]
        for r in ("1", "2"):
            b, a = runs["before" + r].get(i), runs["after" + r].get(i)
            if b is None or a is None:
                cells += ["", "", ""]
            else:
                cells += [fmt(b), fmt(a), f"{a / b:.2f}"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
