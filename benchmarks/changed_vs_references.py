"""Changed methods against CE and the clean set alone, from the stored rows of ``benchmarks/defaults.py``.

After a change to a method's defaults, its rows of ``benchmarks/results/defaults/`` are rerun; this
script reads them (no training) and writes, per setting, the method's last-epoch test accuracy (mean over
the stored seeds) beside ``ce`` and ``clean_only`` and whether it beats each:

    python benchmarks/changed_vs_references.py --methods l2b emlc --out benchmarks/results/changed_l2b_emlc.md
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import defaults  # noqa: E402
import suite  # noqa: E402

REFERENCES = ("ce", "clean_only")


def table(method: str, last: dict[tuple[str, str], float], seeds: dict[tuple[str, str], int]) -> list[str]:
    lines = [
        f"## {method}",
        "",
        "| setting | seeds | last acc | ce | clean_only | > ce | > clean_only |",
        "|---|---:|---:|---:|---:|:---:|:---:|",
    ]
    for setting in defaults.SETTINGS:
        keys = [(setting, name) for name in (method, *REFERENCES)]
        if any(key not in last for key in keys):
            continue
        own, *refs = (100 * last[key] for key in keys)
        cells = " | ".join(f"{ref:.1f}" for ref in refs)
        marks = " | ".join("yes" if own > ref else "no" for ref in refs)
        lines.append(f"| {setting} | {seeds[keys[0]]} | {own:.1f} | {cells} | {marks} |")
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    lines = [
        f"# {', '.join(args.methods)} from their defaults against CE and the clean set alone",
        "",
        "Written by `python benchmarks/changed_vs_references.py` from the stored, current rows of "
        "`benchmarks/defaults.py` (commands in [defaults.md](defaults.md)). Last-epoch test accuracy in %, "
        "mean over the stored seeds; `clean_only`: CE on the 1,000 clean samples alone.",
        "",
    ]
    records, _ = suite.current_records(defaults.STORE, defaults.ROWS)
    last = defaults._means(records, lambda summary: summary.get("last_test_acc"))
    seeds = Counter((r["setting"], r["method"]) for r in records)
    for method in args.methods:
        lines += table(method, last, seeds)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
