"""Carry stored rows over a change that alters how settings are written but not what a run does.

A row of ``benchmarks/results/suite/``, ``.../defaults/`` or ``.../images/`` counts as done while its
fingerprint matches the settings the library resolves today (``suite.run_fingerprint``). A new config key
or method parameter whose default switches nothing on (``model.init: null``), or a renamed value, changes
every fingerprint without changing a single run; a rule that acts only where a condition holds (MW-Net's
warm-up waiting for a classifier above chance) changes every fingerprint and only the runs where it
holds: rerun those first (their rows then carry the new fingerprint and are left alone here). This script
moves the rows across such a change, and only the rows that were current before it:

    # 1. with the library *before* the change (a worktree of the old commit):
    PYTHONPATH=<old>/src python benchmarks/refingerprint.py --dump /tmp/old_fingerprints.json
    # 2. with the library after it:
    python benchmarks/refingerprint.py --apply /tmp/old_fingerprints.json

``--apply`` rewrites a row's fingerprint only where its stored one equals the one the old library
computed (the row was current there); stale rows stay stale. That the change is behaviour-neutral is the
developer's claim, to be checked with ``suite.py --verify`` on a row per method family.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import defaults  # noqa: E402
import images  # noqa: E402
import suite  # noqa: E402

STORES = {
    "suite": (suite.RESULTS / "suite", suite.SUITE_ROWS),
    "defaults": (defaults.STORE, defaults.ROWS),
    "images": (images.LAYOUT.store, images.ROWS),
}


def stored_rows():
    """``(key, path, row spec, row)`` for every stored row the current settings tables still know."""
    for store_name, (store, spec) in STORES.items():
        for path in sorted(store.glob("*/*.json")):
            row = json.loads(path.read_text())
            if row.get("setting") in spec.settings:
                yield f"{store_name}/{path.relative_to(store)}", path, spec, row


def dump(out: Path) -> None:
    fingerprints = {
        key: spec.fingerprint(r["setting"], r["method"], r["seed"]) for key, _, spec, r in stored_rows()
    }
    out.write_text(json.dumps(fingerprints, indent=0, sort_keys=True))
    print(f"{len(fingerprints)} fingerprints written to {out}")


def apply(old: Path) -> None:
    before = json.loads(old.read_text())
    moved = stale = 0
    for key, path, spec, row in stored_rows():
        if row.get("fingerprint") != before.get(key):
            stale += 1
            continue
        new = spec.fingerprint(row["setting"], row["method"], row["seed"])
        if new != row["fingerprint"]:
            row["fingerprint"] = new
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(row, indent=1, default=float))
            os.replace(tmp, path)  # atomic, as the suite writes its rows
            moved += 1
    print(f"{moved} rows carried over; {stale} were not current before the change and stay as they are")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dump", type=Path, help="write the current library's fingerprints of the stored rows")
    mode.add_argument("--apply", type=Path, help="carry rows current under these fingerprints over")
    args = parser.parse_args()
    dump(args.dump) if args.dump else apply(args.apply)


if __name__ == "__main__":
    main()
