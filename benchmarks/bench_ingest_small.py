# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""buffer_copy on many small files (group commit) against `cp -a`.

Buffer: 20,000 files of 1 KiB and 2,000 of 64 KiB in 100 directories (quick:
a tenth). Two targets. Reference, doing the same verification work: `cp -a`
of the buffer to each target; `sync`; the copies' cached pages dropped
(posix_fadvise DONTNEED on every copy); one `sha512sum` over every copy.
Ours: one buffer_copy run (sha512, default batches), which hashes the source
too and commits every file to the registry before it is done.

Two rows: the buffer and both targets on tmpfs (fsync is free there, the
comparison is pure CPU), and on ext4 file systems in loop images on the
machine's disk. Needs root (mounts); a row that cannot be set up is
reported as not run.
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
sys.path[:0] = [str(REPO / ".collections"), str(REPO)]

from ansible_collections.datasteward.storage.plugins.module_utils._jobs.ingest import IngestOptions, IngestRun  # noqa: E402

TARGETS = {"tmpfs": 2.5, "ext4": 1.5}


def make_buffer(root, quick):
    small, medium = (2000, 200) if quick else (20000, 2000)
    past = time.time() - 3600
    files = []
    for index in range(small + medium):
        size = 1024 if index < small else 64 * 1024
        rel = "d%03d/f%05d.dat" % (index % 100, index)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(str(path), "wb") as handle:
            handle.write(os.urandom(size))
        os.utime(str(path), (past, past))
        files.append(rel)
    return files


def evict_tree(root):
    for dirpath, dummy, names in os.walk(str(root)):
        for name in names:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def reference(buf, targets):
    for target in targets:
        subprocess.run(["cp", "-a", str(buf) + "/.", str(target)], check=True)
    subprocess.run(["sync"], check=True)
    for target in targets:
        evict_tree(target)
    find = subprocess.Popen(["find"] + [str(t) for t in targets] + ["-type", "f", "-print0"], stdout=subprocess.PIPE)
    out = subprocess.run(["xargs", "-0", "sha512sum"], stdin=find.stdout, check=True, capture_output=True).stdout
    find.wait()
    return out.count(b"\n")


def ours(buf, targets, registry):
    opts = IngestOptions(str(buf), [str(targets[0])], [str(targets[1])], str(registry), settle_seconds=0)
    result = IngestRun(opts).execute()
    if result["failed_files"] or result["conflict_files"]:
        raise RuntimeError("buffer_copy did not copy cleanly: %r" % {k: v for k, v in result.items() if k != "files"})
    return result["copied_files"]


class Mounts:
    """tmpfs or ext4-in-a-loop-image mounts under a work directory."""

    def __init__(self, workdir, kind):
        self.workdir = workdir
        self.kind = kind
        self.points = []

    def mount(self, name, size_mib):
        point = self.workdir / name
        point.mkdir(parents=True, exist_ok=True)
        if self.kind == "tmpfs":
            cmd = ["mount", "-t", "tmpfs", "-o", "size=%dm" % size_mib, "tmpfs", str(point)]
        else:
            image = self.workdir / (name + ".img")
            with open(str(image), "wb") as handle:
                handle.truncate(size_mib * 1024 * 1024)
            subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", str(image)], check=True, capture_output=True)
            cmd = ["mount", "-o", "loop", str(image), str(point)]
        subprocess.run(cmd, check=True, capture_output=True)
        self.points.append(point)
        return point

    def clear(self, point):
        for entry in os.listdir(str(point)):
            if entry == "lost+found":
                continue
            path = point / entry
            shutil.rmtree(str(path)) if path.is_dir() else path.unlink()
        subprocess.run(["sync"], check=True)

    def close(self):
        for point in reversed(self.points):
            subprocess.run(["umount", "-l", str(point)], check=False, capture_output=True)
        for image in self.workdir.glob("*.img"):
            image.unlink()


def one_row(workdir, kind, quick):
    mounts = Mounts(workdir / kind, kind)
    try:
        buf = mounts.mount("buffer", 400)
        targets = [mounts.mount("t1", 400), mounts.mount("t2", 400)]
        files = make_buffer(buf, quick)
        subprocess.run(["sync"], check=True)
        started = time.perf_counter()
        count = reference(buf, targets)
        ref_s = time.perf_counter() - started
        if count != 2 * len(files):
            raise RuntimeError("reference hashed %d copies, expected %d" % (count, 2 * len(files)))
        for target in targets:
            mounts.clear(target)
        registry = workdir / ("registry-%s.sqlite" % kind)
        started = time.perf_counter()
        copied = ours(buf, targets, registry)
        ours_s = time.perf_counter() - started
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(str(registry) + suffix):
                os.unlink(str(registry) + suffix)
    finally:
        mounts.close()
    ratio = ours_s / ref_s
    return {
        "name": "buffer_copy small files, %s (2 targets)" % kind,
        "ours_s": round(ours_s, 3),
        "reference": "cp -a x2; sync; drop cache; sha512sum of every copy",
        "reference_s": round(ref_s, 3),
        "ratio": round(ratio, 3),
        "target": "<= %s" % TARGETS[kind],
        "ok": ratio <= TARGETS[kind],
        "notes": "%d files copied (%.0f files/s); registry on the machine's disk" % (copied, copied / ours_s),
    }


def run(workdir: Path, quick: bool = False) -> list:
    rows = []
    for kind in ("tmpfs", "ext4"):
        try:
            rows.append(one_row(Path(workdir), kind, quick))
        except (OSError, subprocess.CalledProcessError, RuntimeError) as exc:
            rows.append(
                {
                    "name": "buffer_copy small files, %s" % kind,
                    "ours_s": float("nan"),
                    "reference": "cp -a x2; sync; sha512sum",
                    "reference_s": float("nan"),
                    "ratio": float("nan"),
                    "target": "<= %s" % TARGETS[kind],
                    "ok": False,
                    "notes": "not run: %s" % exc,
                }
            )
    return rows


if __name__ == "__main__":
    import json
    import tempfile

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR", "/var/tmp")) as tmp:
        for row in run(Path(tmp), quick="--quick" in sys.argv):
            print(json.dumps(row))
