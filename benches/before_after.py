"""Table for before-after.sh: each hotmeter benchmark's mean in the two
rounds, before and after, and after/before per round.

    python3 benches/before_after.py DIR   (DIR holds before1 after1 before2 after2)
"""
import pathlib
import sys

from report import fmt_ns, groups


def means(root):
    """{group/function: mean ns} from one copy of target/criterion."""
    return {f"{g}/{f}": v[0] for g, fs in groups(pathlib.Path(root), stat="mean").items() for f, v in fs.items()}


def main():
    root = pathlib.Path(sys.argv[1])
    runs = {name: means(root / name) for name in ("before1", "after1", "before2", "after2")}
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
                cells += [fmt_ns(b), fmt_ns(a), f"{a / b:.2f}"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
