# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""`make bench`: run every benchmarks/bench_*.py and print the ratios.

Each benchmark module exposes ``run(workdir, quick=False)`` returning rows:
``{"name", "ours_s", "reference", "reference_s", "ratio", "target", "ok", "notes"}``
where ``ratio`` is ours / reference, both measured in the same run on the same
data. Targets are reported, never asserted: a missed target is shown as MISSED.

Usage: python benchmarks/run.py [--quick] [--only NAME] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load(path):
    spec = importlib.util.spec_from_file_location("bench_" + path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data sets, for a smoke run")
    parser.add_argument("--only", action="append", default=[], help="run only bench_<NAME>.py (repeatable)")
    parser.add_argument("--workdir", type=Path, default=HERE / "output", help="where generated data is kept")
    args = parser.parse_args(argv)

    rows = []
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem[len("bench_") :]
        if args.only and name not in args.only:
            continue
        workdir = args.workdir / name
        workdir.mkdir(parents=True, exist_ok=True)
        print("== %s" % name, flush=True)
        started = time.monotonic()
        try:
            results = load(path).run(workdir, quick=args.quick)
        except Exception as exc:  # a broken benchmark must not hide the others
            print("   failed: %r" % exc, flush=True)
            rows.append({"name": name, "ratio": None, "target": "-", "ok": False, "notes": "failed: %r" % exc})
            continue
        for row in results:
            print("   %s" % json.dumps(row), flush=True)
        rows.extend(results)
        print("   (%.0f s)" % (time.monotonic() - started), flush=True)

    print()
    print("%-48s %10s %10s %-24s %8s %-8s %s" % ("benchmark", "ours s", "ref s", "reference", "ratio", "target", "notes"))
    for row in rows:
        ratio = "-" if row.get("ratio") is None else "%.3f" % row["ratio"]
        print(
            "%-48s %10s %10s %-24s %8s %-8s %s%s"
            % (
                row["name"],
                "%.3f" % row["ours_s"] if "ours_s" in row else "-",
                "%.3f" % row["reference_s"] if "reference_s" in row else "-",
                row.get("reference", "-")[:24],
                ratio,
                row.get("target", "-"),
                "" if row.get("ok") else "MISSED ",
                row.get("notes", ""),
            )
        )
    (args.workdir / "results.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
