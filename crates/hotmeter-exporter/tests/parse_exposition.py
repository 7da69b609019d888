"""Parses hotmeter's exposition with prometheus_client's two parsers.

Usage: parse_exposition.py CASES.json

CASES.json is a list of {"path", "parser": "text"|"openmetrics",
"samples": [[name, {label: value}, value], ...]}. Every file must parse,
and its samples (name, labels, value) must be exactly the expected ones,
in any order. Exits non-zero naming the first difference.
"""

import json
import math
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text


def key(name, labels, value):
    value = float(value)
    return (name, tuple(sorted(labels.items())), "NaN" if math.isnan(value) else value)


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        cases = json.load(f)
    for case in cases:
        with open(case["path"], encoding="utf-8") as f:
            text = f.read()
        parse = parse_openmetrics if case["parser"] == "openmetrics" else parse_text
        try:
            got = sorted(key(s.name, s.labels, s.value) for fam in parse(text) for s in fam.samples)
        except Exception as e:  # noqa: BLE001 - report any parser error with the file
            sys.exit(f"{case['path']}: {case['parser']} parser rejected it: {e!r}")
        want = sorted(key(*s) for s in case["samples"])
        if got != want:
            sys.exit(f"{case['path']}: parsed samples differ\n got: {got}\nwant: {want}")
        print(f"ok {case['path']} ({case['parser']}, {len(got)} samples)")


main()
