# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The inbox hand-off against what it replaces, on the same upload.

Upload: 5,000 files of mixed sizes, 1 GiB in all (quick: 500 files, ~100 MiB),
in one entry. Ours: one run of the inbox engine (rename into processing,
walk, copy every file through the verified copy engine: write, fsync, drop
the cached pages, re-read and hash, rename; then the move to done).
Reference: `rsync -a` of the same folder, `sync`, the copies' cached pages
dropped, then `sha512sum` of every copy, so both sides read the copies back
from the device. Before each side the page cache is dropped
(/proc/sys/vm/drop_caches when writable, else DONTNEED on every source).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO / ".collections"), str(REPO), str(HERE)]

from bench_copy import drop_caches, evict  # noqa: E402  (the same cache drop as the copy benchmark)

from ansible_collections.datasteward.storage.plugins.module_utils._jobs import inbox as engine  # noqa: E402

KIB = 1024
MIB = 1024 * KIB
# (count, size): a few large series, many small files; 5,000 files, ~1 GiB.
MIX = ((20, 32 * MIB), (80, 4 * MIB), (900, 64 * KIB), (4000, 4 * KIB))


def make_upload(root, scale=1):
    files = []
    block = os.urandom(8 * MIB)
    for count, size in MIX:
        count = max(1, count // scale)
        for index in range(count):
            rel = "series%02d/%s-%04d.dcm" % (index % 16, size // KIB, index)
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(str(path), "wb") as handle:
                left = size
                while left:
                    chunk = min(left, len(block))
                    handle.write(os.urandom(64) + block[64:chunk] if chunk > 64 else os.urandom(chunk))
                    left -= chunk
            files.append(rel)
    return files


def reference(src, dest, files):
    subprocess.run(["rsync", "-a", "%s/" % src, "%s/" % dest], check=True)
    copies = [str(dest / rel) for rel in files]
    subprocess.run(["sync"], check=True)
    evict(copies)
    for start in range(0, len(copies), 500):
        subprocess.run(["sha512sum"] + copies[start : start + 500], check=True, stdout=subprocess.DEVNULL)


def layout(workdir):
    base = workdir / "up"
    for name in ("inbox", "processing", "done", "failed", "study"):
        (base / name).mkdir(parents=True, exist_ok=True)
    return base


def ours(base):
    params = {
        "path": str(base / "inbox"),
        "name_pattern": r"^(?P<study>[a-z]+)-(?P<id>[0-9]+)$",
        "dest": str(base / "study" / "{study}" / "raw-{id}"),
        "dest_root": str(base / "study"),
        "allowed": [{"users": [str(os.getuid())]}],
        "settle_seconds": 0,
    }
    result = engine.run_inbox(params)
    if len(result["processed"]) != 1 or result["failed_entries"]:
        raise RuntimeError("the hand-off did not go through: %r" % result["failed_entries"])
    return result["processed"][0]


def run(workdir: Path, quick: bool = False) -> list:
    workdir = Path(workdir)
    shutil.rmtree(str(workdir / "up"), ignore_errors=True)
    base = layout(workdir)
    entry = base / "inbox" / "bench-1"
    files = make_upload(entry, 10 if quick else 1)
    size = sum((entry / rel).stat().st_size for rel in files)
    sources = [entry / rel for rel in files]
    ref_dest = workdir / "rsync-dest"
    try:
        shutil.rmtree(str(ref_dest), ignore_errors=True)
        how = drop_caches(sources)
        started = time.perf_counter()
        reference(entry, ref_dest, files)
        ref_s = time.perf_counter() - started
        shutil.rmtree(str(ref_dest), ignore_errors=True)

        drop_caches(sources)
        started = time.perf_counter()
        item = ours(base)
        ours_s = time.perf_counter() - started
        if len(item["versions"]) != len(files):
            raise RuntimeError("%d of %d files delivered" % (len(item["versions"]), len(files)))
    finally:
        shutil.rmtree(str(ref_dest), ignore_errors=True)
        shutil.rmtree(str(workdir / "up"), ignore_errors=True)
    ratio = ours_s / ref_s
    return [
        {
            "name": "inbox hand-off (verified, sha512)",
            "ours_s": round(ours_s, 3),
            "reference": "rsync -a; sync; sha512sum of the copies from disk",
            "reference_s": round(ref_s, 3),
            "ratio": round(ratio, 3),
            "target": "<= 1.0",
            "ok": ratio <= 1.0,
            "notes": "%d files, %.2f GiB; ours %.0f MB/s, reference %.0f MB/s; cache drop: %s"
            % (len(files), size / 1024.0**3, size / ours_s / 1e6, size / ref_s / 1e6, how),
        }
    ]


if __name__ == "__main__":
    import json
    import tempfile

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR", "/var/tmp")) as tmp:
        for row in run(Path(tmp), quick="--quick" in sys.argv):
            print(json.dumps(row))
