# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""old_files' engine against the reference tools, on copies of the same tree.

1. Delete 200,000 old files among 400,000 (dirs of 100 files; quick: 20,000
   among 40,000): ours (state absent, walk + plan + re-check + unlinkat +
   manifest) against `find PATH -mtime +30 -delete`, each on its own copy of
   the tree, warm cache (each tree is walked once before), best of 3
   interleaved pairs. Target ratio <= 1.5.
2. Relocate 50,000 files (1 to 16 KiB; quick: 5,000) from one tmpfs to another
   (two file systems): ours (verified copy engine: read once, write, fsync,
   read back, compare, rename, then unlinkat of the original) against `rsync -a
   --remove-source-files SRC/ DEST/`, best of 3 interleaved pairs. Target
   ratio <= 1.2.
Needs root (tmpfs mounts) for the second; the first runs anywhere.
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

from ansible_collections.datasteward.storage.plugins.module_utils._jobs import old_files as job  # noqa: E402
from ansible_collections.datasteward.storage.tests.unit.utils.old_files_params import params as old_files_params  # noqa: E402

DAY = 86400
# Interleaved pairs per row (a fresh tree each); the best of each side counts.
REPEATS = 3


def make_tree(root, files, old_every=2, size=lambda i: 0, per_dir=100):
    """``files`` files in directories of ``per_dir``; every ``old_every``-th is 400 days old."""
    old = time.time() - 400 * DAY
    block = os.urandom(16384)
    for index in range(files):
        directory = root / ("d%04d" % (index // per_dir))
        if index % per_dir == 0:
            directory.mkdir(parents=True)
        path = str(directory / ("f%06d" % index))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            count = size(index)
            if count:
                os.write(fd, block[:count])
        finally:
            os.close(fd)
        if index % old_every == 0:
            os.utime(path, (old, old))


def warm(root):
    subprocess.run(["find", str(root), "-printf", ""], check=True)


def params(root, **kwargs):
    """The module's parameters for a benchmark run (listing in path order, 100 files shown)."""
    chosen = {"host_folder": "bench", "order": "path", "max_listed": 100}
    chosen.update(kwargs)
    return old_files_params(root, **chosen)


def timed(call):
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def delete_once(workdir, files):
    """One interleaved pair: (ours_s, find_s), each on a fresh copy of the tree."""
    ours_tree, ref_tree = workdir / "delete-ours", workdir / "delete-find"
    for tree in (ours_tree, ref_tree, Path(str(ours_tree) + ".manifests")):
        shutil.rmtree(str(tree), ignore_errors=True)
    make_tree(ours_tree, files)
    make_tree(ref_tree, files)
    os.sync()  # the trees' creation is not written back during the timed runs
    warm(ref_tree)
    ref_s, dummy = timed(lambda: subprocess.run(["find", str(ref_tree), "-mtime", "+30", "-delete"], check=True))
    warm(ours_tree)
    ours_s, result = timed(lambda: job.run(job.options_from_params(params(ours_tree, state="absent"))))
    if result["totals"]["files"] != files // 2:
        raise RuntimeError("old_files deleted %d files, expected %d" % (result["totals"]["files"], files // 2))
    left_ours = sum(len(names) for dummy, dummy2, names in os.walk(str(ours_tree)))
    left_ref = sum(len(names) for dummy, dummy2, names in os.walk(str(ref_tree)))
    if left_ours != left_ref:
        raise RuntimeError("ours left %d files, find left %d" % (left_ours, left_ref))
    for tree in (ours_tree, ref_tree, Path(str(ours_tree) + ".manifests")):
        shutil.rmtree(str(tree), ignore_errors=True)
    return ours_s, ref_s


def bench_delete(workdir, quick):
    files = 40000 if quick else 400000
    pairs = [delete_once(workdir, files) for dummy in range(1 if quick else REPEATS)]
    ours_s, ref_s = min(p[0] for p in pairs), min(p[1] for p in pairs)
    ratio = ours_s / ref_s
    return {
        "name": "old_files delete %d of %d" % (files // 2, files),
        "ours_s": ours_s,
        "reference": "find -mtime +30 -delete",
        "reference_s": ref_s,
        "ratio": ratio,
        "target": "<= 1.5",
        "ok": ratio <= 1.5,
        "notes": "warm cache, dirs of 100 files, manifest included; best of %d interleaved" % len(pairs),
    }


def mount_tmpfs(path, size):
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "bench_old_files", str(path)], check=True)


def spread_size(index):
    """1 to 16 KiB, spread over the files."""
    return 1024 + (index * 7919) % 15360


def relocate_once(workdir, files):
    """One interleaved pair: (ours_s, rsync_s), each from a fresh tmpfs tree to an empty tmpfs."""
    points = [workdir / name for name in ("src-ours", "src-rsync", "dest-ours", "dest-rsync")]
    for point in points:
        mount_tmpfs(point, "2g")
    try:
        for src in points[:2]:
            make_tree(src / "tree", files, old_every=1, size=spread_size)
            warm(src)
        ref_s, dummy = timed(lambda: subprocess.run(["rsync", "-a", "--remove-source-files", str(points[1] / "tree") + "/", str(points[3]) + "/"], check=True))
        ours_s, result = timed(
            lambda: job.run(
                job.options_from_params(params(points[0] / "tree", state="relocated", dest=str(points[2]), manifest_dir=str(workdir / "manifests")))
            )
        )
        if result["totals"]["files"] != files or result["skipped"]:
            raise RuntimeError("old_files relocated %d of %d files: %r" % (result["totals"]["files"], files, result["skipped"][:3]))
    finally:
        for point in points:
            subprocess.run(["umount", "-l", str(point)], check=False)
        shutil.rmtree(str(workdir / "manifests"), ignore_errors=True)
    return ours_s, ref_s


def bench_relocate(workdir, quick):
    files = 5000 if quick else 50000
    if os.geteuid() != 0:
        return {
            "name": "old_files relocate %d files" % files,
            "ratio": None,
            "target": "<= 1.2",
            "ok": False,
            "notes": "skipped: needs root for the tmpfs mounts",
        }
    pairs = [relocate_once(workdir, files) for dummy in range(1 if quick else REPEATS)]
    ours_s, ref_s = min(p[0] for p in pairs), min(p[1] for p in pairs)
    ratio = ours_s / ref_s
    return {
        "name": "old_files relocate %d files" % files,
        "ours_s": ours_s,
        "reference": "rsync -a --remove-source-files",
        "reference_s": ref_s,
        "ratio": ratio,
        "target": "<= 1.2",
        "ok": ratio <= 1.2,
        "notes": "tmpfs to tmpfs, our from-disk verification included; best of %d interleaved" % len(pairs),
    }


def run(workdir, quick=False):
    workdir = Path(workdir)
    return [bench_delete(workdir, quick), bench_relocate(workdir, quick)]
