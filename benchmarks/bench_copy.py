# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""buffer_copy's engine against the script it replaces, on the same data.

Buffer: >= 2 GiB of random data in files of mixed sizes (quick: ~96 MiB).
Two targets. Reference: the script-style sequence per file, `sha512sum src;
cp src t1; cp src t2; sha512sum t1 t2`, made to do the same verification
work as ours: the copies are flushed (`sync FILE`) and their cached pages
dropped (posix_fadvise DONTNEED) before they are hashed, so both read the
copies back from the device. Before each side runs, the page cache is
dropped (/proc/sys/vm/drop_caches when writable, else DONTNEED on every
source), so both read the source from the device too.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO / ".collections"), str(REPO)]

from ansible_collections.datasteward.storage.plugins.module_utils._jobs.ingest import IngestOptions, IngestRun  # noqa: E402

MIB = 1024 * 1024
# (size, share of the bytes) of the buffer: a few large raw files, many small ones.
MIX = ((256 * MIB, 0.40), (32 * MIB, 0.30), (4 * MIB, 0.20), (256 * 1024, 0.07), (16 * 1024, 0.03))


def make_buffer(root, total, scale=1):
    rng = random.Random(1)
    block = os.urandom(8 * MIB)
    files = []
    for size, share in MIX:
        size //= scale
        count = max(1, int(total * share) // size)
        for index in range(count):
            rel = "%s/f%04d-%d.dat" % ("d%d" % (size // 1024), index, size)
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(str(path), "wb") as handle:
                left = size
                while left:
                    # a fresh random prefix per chunk, so no two files or chunks are equal
                    chunk = min(left, len(block))
                    start = rng.randrange(0, len(block) - chunk + 1)
                    handle.write(os.urandom(64) + block[start + 64 : start + chunk] if chunk > 64 else os.urandom(chunk))
                    left -= chunk
            files.append(rel)
    past = time.time() - 3600
    for rel in files:
        os.utime(str(root / rel), (past, past))
    return sorted(files)


def drop_caches(paths):
    subprocess.run(["sync"], check=True)
    try:
        with open("/proc/sys/vm/drop_caches", "w") as handle:
            handle.write("3\n")
        return "drop_caches"
    except OSError:
        evict(paths)
        return "fadvise"


def evict(paths):
    for path in paths:
        fd = os.open(str(path), os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def reference(buf, files, targets):
    """The script-style sequence, per file, with from-disk verification."""
    for rel in files:
        src = str(buf / rel)
        digest = subprocess.run(["sha512sum", src], check=True, capture_output=True, text=True).stdout.split()[0]
        copies = []
        for target in targets:
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["cp", src, str(dest)], check=True)
            copies.append(str(dest))
        subprocess.run(["sync"] + copies, check=True)
        evict(copies)
        out = subprocess.run(["sha512sum"] + copies, check=True, capture_output=True, text=True).stdout.split()
        if out[0::2] != [digest] * len(copies):
            raise RuntimeError("reference copy of %s does not match" % rel)


def ours(buf, targets, registry, algorithm):
    run = IngestRun(
        IngestOptions(str(buf), [str(targets[0])], [str(targets[1])], str(registry), checksum_algorithm=algorithm, settle_seconds=0, require_mount=False)
    )
    result = run.execute()
    if result["copied_files"] == 0 or result["failed_files"] or result["conflict_files"]:
        raise RuntimeError("buffer_copy did not copy cleanly: %r" % {k: v for k, v in result.items() if k != "files"})
    return result


def reset(workdir):
    for name in ("t1", "t2"):
        shutil.rmtree(str(workdir / name), ignore_errors=True)
        (workdir / name).mkdir()
    for suffix in ("", "-wal", "-shm"):
        try:
            os.unlink(str(workdir / ("registry.sqlite" + suffix)))
        except FileNotFoundError:
            pass


def run(workdir: Path, quick: bool = False) -> list:
    workdir = Path(workdir)
    buf = workdir / "buffer"
    total = 96 * MIB if quick else 2 * 1024 * MIB + 256 * MIB
    shutil.rmtree(str(buf), ignore_errors=True)
    files = make_buffer(buf, total, 4 if quick else 1)
    size = sum((buf / rel).stat().st_size for rel in files)
    targets = [workdir / "t1", workdir / "t2"]
    sources = [buf / rel for rel in files]
    rows = []
    try:
        ref_cold, how = _timed(lambda: reference(buf, files, targets), workdir, sources, cold=True)
        ref_warm, dummy = _timed(lambda: reference(buf, files, targets), workdir, sources, cold=False)
        timings = {}
        for algorithm, cold in (("sha512", True), ("sha512", False), ("blake3", True)):
            try:
                timings[(algorithm, cold)], dummy = _timed(lambda: ours(buf, targets, workdir / "registry.sqlite", algorithm), workdir, sources, cold)
            except Exception as exc:  # blake3 missing: report, do not fail the table
                timings[(algorithm, cold)] = exc
    finally:
        reset(workdir)
        shutil.rmtree(str(buf), ignore_errors=True)
        for name in ("t1", "t2"):
            shutil.rmtree(str(workdir / name), ignore_errors=True)

    note = "%d files, %.2f GiB, 2 targets; cache drop: %s" % (len(files), size / 1024.0**3, how)
    for (algorithm, cold), target in ((("sha512", True), 0.45), (("sha512", False), 0.5), (("blake3", True), None)):
        ref_s = ref_cold if cold else ref_warm
        ours_s = timings.get((algorithm, cold))
        name = "buffer_copy %s, source %s (verified, 2 targets)" % (algorithm, "cold" if cold else "in page cache")
        if not isinstance(ours_s, float):
            rows.append(
                {
                    "name": name,
                    "ours_s": float("nan"),
                    "reference": "sha512sum+cp+cp+sync+sha512sum",
                    "reference_s": ref_s,
                    "ratio": float("nan"),
                    "target": "info" if target is None else "<= %s" % target,
                    "ok": target is None,
                    "notes": "not run: %s" % ours_s,
                }
            )
            continue
        ratio = ours_s / ref_s
        rows.append(
            {
                "name": name,
                "ours_s": round(ours_s, 3),
                "reference": "script-style sha512sum; cp x2; sync; sha512sum x2 (sha512)",
                "reference_s": round(ref_s, 3),
                "ratio": round(ratio, 3),
                "target": "info" if target is None else "<= %s" % target,
                "ok": target is None or ratio <= target,
                "notes": "ours %.0f MB/s, reference %.0f MB/s; %s" % (size / ours_s / 1e6, size / ref_s / 1e6, note),
            }
        )
    return rows


def _timed(call, workdir, sources, cold):
    """Seconds of ``call`` on fresh targets, the sources dropped from the
    page cache first (``cold``) or read into it."""
    reset(workdir)
    how = drop_caches(sources)
    if not cold:
        for path in sources:
            with open(str(path), "rb") as handle:
                while handle.read(8 * MIB):
                    pass
        how = "source in page cache"
    started = time.perf_counter()
    call()
    return time.perf_counter() - started, how


if __name__ == "__main__":
    import json
    import tempfile

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR", "/var/tmp")) as tmp:
        for row in run(Path(tmp), quick="--quick" in sys.argv):
            print(json.dumps(row))
