# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""buffer_copy run as a real process on real tmpfs disks, including faults
(SIGKILL at random moments, disks filling up, sources changing)."""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._copy import engine as copier
from ansible_collections.datasteward.storage.plugins.module_utils._jobs.ingest import IngestError, IngestOptions, IngestRun
from ansible_collections.datasteward.storage.plugins.module_utils._registry.lock import Lock
from ansible_collections.datasteward.storage.tests.system.utils.kills import KillClock
from ansible_collections.datasteward.storage.tests.unit.utils.module_runner import module_command, run_module_process


def sha512(path):
    return hashlib.sha512(Path(path).read_bytes()).hexdigest()


def sha512sum(path):
    return subprocess.run(["sha512sum", str(path)], check=True, capture_output=True, text=True).stdout.split()[0]


def make_file(path, size, age=3600):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    past = time.time() - age
    os.utime(str(path), (past, past))
    return path


def final_files(root):
    out = {}
    for dirpath, dummy, files in os.walk(str(root)):
        for name in files:
            if name != ".datasteward-disk":
                out[os.path.relpath(os.path.join(dirpath, name), str(root))] = os.path.join(dirpath, name)
    return out


@pytest.fixture
def buf(tmp_path):
    path = tmp_path / "buffer"
    path.mkdir()
    return path


def base_args(tmp_path, buf, primary, backup, **extra):
    args = {"src": str(buf), "primary": primary, "backup": backup, "registry": str(tmp_path / "registry.sqlite"), "settle_seconds": 0}
    args.update(extra)
    return args


def test_check_apply_reapply_check(tmp_path, buf, disks):
    p1, b1 = disks(P1="32m", B1="32m")
    Path(p1, ".datasteward-disk").write_text("P01\n")
    sources = {}
    for rel, size in (("a.dat", 1000), ("2024/06/01/b.dat", 2 * 1024 * 1024), ("2024/06/01/c.dat", 0), ("d/e/f/g.log", 4096)):
        sources[rel] = sha512sum(make_file(buf / rel, size))
    args = base_args(tmp_path, buf, [p1], [b1], patterns=["*.dat"])

    res = run_module_process(tmp_path, "buffer_copy", args, check_mode=True)
    assert res["changed"] and res["copied_files"] == 3 and res["registry_created"]
    assert {c["label"] for f in res["files"] for c in f["copies"]} == {"P01", "B1"}
    assert not (tmp_path / "registry.sqlite").exists() and final_files(p1) == {} and final_files(b1) == {}

    res = run_module_process(tmp_path, "buffer_copy", args)
    assert res["changed"] and res["copied_files"] == 3 and res["copied_bytes"] == 1000 + 2 * 1024 * 1024
    for root in (p1, b1):
        copies = final_files(root)
        assert sorted(copies) == ["2024/06/01/b.dat", "2024/06/01/c.dat", "a.dat"]
        for rel, path in copies.items():
            assert sha512sum(path) == sources[rel]
    assert (buf / "a.dat").exists()  # remove_source defaults to false

    res = run_module_process(tmp_path, "buffer_copy", args)
    assert not res["changed"] and res["copied_files"] == 0 and res["skipped_files"] == 3
    res = run_module_process(tmp_path, "buffer_copy", args, check_mode=True)
    assert not res["changed"]

    conn = sqlite3.connect(str(tmp_path / "registry.sqlite"))
    rows = conn.execute(
        "SELECT f.path, f.digest, d.label, c.role FROM files f JOIN copies c ON c.file_id = f.id JOIN disks d ON d.id = c.disk_id ORDER BY f.path, c.role"
    ).fetchall()
    assert len(rows) == 6
    assert all(digest == sources[path] for path, digest, dummy, dummy2 in rows)
    assert {(label, role) for dummy, dummy2, label, role in rows} == {("P01", "primary"), ("B1", "backup")}


def test_remove_source_and_registered_skip(tmp_path, buf, disks):
    p1, b1 = disks(P1="16m", B1="16m")
    make_file(buf / "x" / "one.dat", 5000)
    args = base_args(tmp_path, buf, [p1], [b1])
    res = run_module_process(tmp_path, "buffer_copy", args)
    assert res["copied_files"] == 1 and res["removed_files"] == 0
    # Same content back in the buffer later: registered, so skipped; removed when asked.
    res = run_module_process(tmp_path, "buffer_copy", dict(args, remove_source=True), check_mode=True)
    assert res["changed"] and res["removed_files"] == 1 and (buf / "x" / "one.dat").exists()
    res = run_module_process(tmp_path, "buffer_copy", dict(args, remove_source=True))
    assert res["changed"] and res["skipped_files"] == 1 and res["removed_files"] == 1
    assert not (buf / "x" / "one.dat").exists()
    assert not run_module_process(tmp_path, "buffer_copy", dict(args, remove_source=True))["changed"]


def test_conflict_kept_and_others_go_on(tmp_path, buf, disks):
    p1, b1 = disks(P1="16m", B1="16m")
    make_file(buf / "a.dat", 100)
    args = base_args(tmp_path, buf, [p1], [b1], remove_source=True)
    run_module_process(tmp_path, "buffer_copy", args)
    make_file(buf / "a.dat", 200)  # same path, other data
    make_file(buf / "b.dat", 300)
    res = run_module_process(tmp_path, "buffer_copy", args)
    assert res["conflict_files"] == 1 and res["copied_files"] == 1 and not (buf / "b.dat").exists()
    assert (buf / "a.dat").stat().st_size == 200
    assert [f["status"] for f in res["files"]] == ["conflict", "copied"]
    assert Path(p1, "a.dat").stat().st_size == 100


def test_not_a_mount_point_is_refused(tmp_path, buf, disks):
    (p1,) = disks(P1="8m")
    (tmp_path / "B1").mkdir()
    make_file(buf / "a.dat", 100)
    res = run_module_process(tmp_path, "buffer_copy", base_args(tmp_path, buf, [p1], [str(tmp_path / "B1")]), failed=True)
    assert res["failed"] and "backup disk %s is not a mount point" % (tmp_path / "B1") in res["msg"]
    assert os.listdir(str(tmp_path / "B1")) == [] and final_files(p1) == {}
    assert (buf / "a.dat").exists()


def test_same_file_system_twice_is_refused(tmp_path, buf, disks):
    (p1,) = disks(P1="8m")
    os.mkdir(str(tmp_path / "B1"))
    subprocess.run(["mount", "--bind", p1, str(tmp_path / "B1")], check=True)
    try:
        make_file(buf / "a.dat", 100)
        res = run_module_process(tmp_path, "buffer_copy", base_args(tmp_path, buf, [p1], [str(tmp_path / "B1")]), failed=True)
        assert res["failed"] and "same file system" in res["msg"]
    finally:
        subprocess.run(["umount", str(tmp_path / "B1")], check=False)


def test_disk_map_seeds_registry(tmp_path, buf, disks):
    p1, b1 = disks(P1="8m", B1="8m")
    Path(p1, ".datasteward-disk").write_text("P01")
    mapping = tmp_path / "disk-map"
    mapping.write_text("P01 ZA12JCHM 0x5000c500858bfea7\nB1 ZA99 0x5000c500858bfe00\n")
    args = base_args(tmp_path, buf, [p1], [b1], disk_map=str(mapping))
    assert run_module_process(tmp_path, "buffer_copy", args)["changed"]
    assert not run_module_process(tmp_path, "buffer_copy", args)["changed"]
    make_file(buf / "f.dat", 10)
    run_module_process(tmp_path, "buffer_copy", args)
    conn = sqlite3.connect(str(tmp_path / "registry.sqlite"))
    assert conn.execute("SELECT label, serial, wwn, mount_point FROM disks ORDER BY label").fetchall() == [
        ("B1", "ZA99", "0x5000c500858bfe00", b1),
        ("P01", "ZA12JCHM", "0x5000c500858bfea7", p1),
    ]


def test_disks_fill_in_order_and_run_stops_when_set_exhausted(tmp_path, buf, disks):
    p1, p2, b1 = disks(P1="4m", P2="4m", B1="64m")
    for index in range(8):
        make_file(buf / ("f%02d.dat" % index), 1024 * 1024)
    args = base_args(tmp_path, buf, [p1, p2], [b1], remove_source=True)
    res = run_module_process(tmp_path, "buffer_copy", args, check_mode=True, failed=True)
    assert res["failed"] and "no primary disk can take" in res["msg"]
    assert [d["mount_point"] for d in res["disks_full"]] == [p1, p2]
    assert final_files(p1) == {} and len(os.listdir(str(buf))) == 8

    res = run_module_process(tmp_path, "buffer_copy", args, failed=True)
    assert res["failed"] and "no primary disk can take %s" % (buf / ("f%02d.dat" % res["copied_files"])) in res["msg"]
    assert res["changed"] and 4 <= res["copied_files"] < 8
    assert len(final_files(p1)) + len(final_files(p2)) == res["copied_files"] == len(final_files(b1))
    assert len(os.listdir(str(buf))) == 8 - res["copied_files"]
    conn = sqlite3.connect(str(tmp_path / "registry.sqlite"))
    assert conn.execute("SELECT label, full FROM disks WHERE role = 'primary' ORDER BY label").fetchall() == [("P1", 1), ("P2", 1)]
    # Full disks may be shelved: unmounted, they are still known to be full.
    (p3,) = disks(P3="16m")
    subprocess.run(["umount", p1], check=True)
    res = run_module_process(tmp_path, "buffer_copy", dict(args, primary=[p1, p2, p3]))
    assert not res.get("failed") and len(os.listdir(str(buf))) == 0
    assert {d["label"] for d in res["disks_used"]} == {"P3", "B1"}


def test_target_fills_mid_file_moves_to_next_disk(tmp_path, buf, disks):
    """The free-space check is fooled (another writer, or a lying statvfs): the
    real ENOSPC mid-file marks the disk full and the file goes to the next."""
    p1, p2, b1 = disks(P1="2m", P2="16m", B1="16m")
    make_file(buf / "big.dat", 3 * 1024 * 1024)

    def generous_statvfs(path):
        real = os.statvfs(path)
        return os.statvfs_result(
            (
                real.f_bsize,
                real.f_frsize,
                real.f_blocks,
                real.f_bfree,
                real.f_bavail * 100,
                real.f_files,
                real.f_ffree,
                real.f_favail,
                real.f_flag,
                real.f_namemax,
            )
        )

    run = IngestRun(IngestOptions(str(buf), [p1, p2], [b1], str(tmp_path / "registry.sqlite"), settle_seconds=0), statvfs=generous_statvfs)
    res = run.execute()
    assert res["copied_files"] == 1
    assert [d["mount_point"] for d in res["disks_full"]] == [p1]
    assert os.listdir(p1) == []  # no partial file, no temporary
    assert sha512(Path(p2, "big.dat")) == sha512(buf / "big.dat") == sha512(Path(b1, "big.dat"))


def test_source_modified_before_copy_not_registered(tmp_path, buf, disks):
    p1, b1 = disks(P1="16m", B1="16m")
    src = make_file(buf / "live.dat", 100000)
    make_file(buf / "other.dat", 100)

    def statvfs_and_append(path):
        if src.stat().st_size == 100000:
            with open(str(src), "ab") as handle:
                handle.write(b"late data")
        return os.statvfs(path)

    run = IngestRun(IngestOptions(str(buf), [p1], [b1], str(tmp_path / "registry.sqlite"), settle_seconds=0, remove_source=True), statvfs=statvfs_and_append)
    res = run.execute()
    assert res["unsettled_files"] == 1 and res["copied_files"] == 1
    assert src.exists() and not Path(p1, "live.dat").exists()
    conn = sqlite3.connect(str(tmp_path / "registry.sqlite"))
    assert conn.execute("SELECT path FROM files").fetchall() == [("other.dat",)]


def test_settle_and_limits(tmp_path, buf, disks):
    p1, b1 = disks(P1="16m", B1="16m")
    for index in range(4):
        make_file(buf / ("f%d.dat" % index), 1000)
    time.sleep(2.2)  # settling goes by change time too, which cannot be set back
    (buf / "fresh.dat").write_bytes(b"still being written")
    args = base_args(tmp_path, buf, [p1], [b1], settle_seconds=2, max_files=2)
    res = run_module_process(tmp_path, "buffer_copy", args)
    assert res["copied_files"] == 2 and res["deferred_files"] == 2 and res["unsettled_files"] == 1
    assert res["newest_file_age_seconds"] < 2
    res = run_module_process(tmp_path, "buffer_copy", dict(args, max_files=None, max_bytes=1500))
    assert res["copied_files"] == 1 and res["deferred_files"] == 1


def test_symlinks_in_buffer_are_not_followed(tmp_path, buf, disks):
    p1, b1 = disks(P1="8m", B1="8m")
    make_file(tmp_path / "outside" / "secret.dat", 10)
    os.symlink(str(tmp_path / "outside" / "secret.dat"), str(buf / "link.dat"))
    os.symlink(str(tmp_path / "outside"), str(buf / "dirlink"))
    res = run_module_process(tmp_path, "buffer_copy", base_args(tmp_path, buf, [p1], [b1], remove_source=True))
    assert res["copied_files"] == 0 and len(res["scan_errors"]) == 2
    assert (tmp_path / "outside" / "secret.dat").exists() and final_files(p1) == {}


def test_concurrent_run_is_refused(tmp_path, buf, disks):
    p1, b1 = disks(P1="8m", B1="8m")
    args = base_args(tmp_path, buf, [p1], [b1])
    run_module_process(tmp_path, "buffer_copy", args)
    lock = Lock(str(tmp_path / "registry.sqlite")).acquire()
    try:
        res = run_module_process(tmp_path, "buffer_copy", args, failed=True)
        assert res["failed"] and "locked by another run" in res["msg"]
    finally:
        lock.release()


def test_ingest_run_out_of_disks_raises_with_partial_result(tmp_path, buf, disks):
    p1, b1 = disks(P1="1m", B1="8m")
    make_file(buf / "a.dat", 100)
    make_file(buf / "b.dat", 2 * 1024 * 1024)
    with pytest.raises(IngestError) as info:
        IngestRun(IngestOptions(str(buf), [p1], [b1], str(tmp_path / "registry.sqlite"), settle_seconds=0)).execute()
    assert info.value.result["copied_files"] == 1 and info.value.path == str(buf / "b.dat")


@pytest.mark.slow
def test_sigkill_at_random_moments(tmp_path, buf, disks):
    """>= 50 runs killed at random instants, new data arriving in between,
    then one clean run: nothing is lost, nothing is wrong on disk, the
    registry is sound."""
    rng = random.Random(int(os.environ.get("DATASTEWARD_FAULT_SEED", "20240601")))
    p1, p2, b1 = disks(P1="48m", P2="512m", B1="512m")
    sources = {}

    def arrive(count):
        for dummy in range(count):
            rel = "night%03d/%s.dat" % (len(sources) // 8, len(sources))
            size = rng.choice([0, 1, 4096, 65536, 512 * 1024, 1024 * 1024, 2 * 1024 * 1024, 4 * 1024 * 1024])
            sources[rel] = sha512(make_file(buf / rel, size))

    arrive(24)
    args = base_args(tmp_path, buf, [p1, p2], [b1], remove_source=True)
    clock = KillClock(rng)
    index = 0
    while clock.kills < 55 and index < 200:
        index += 1
        arrive(rng.choice([1, 2, 3]))
        clock.run(*module_command(tmp_path, "buffer_copy", args))
        # At every instant: every final-named file is a verified copy.
        for root in (p1, p2, b1):
            for rel, path in final_files(root).items():
                if not os.path.basename(rel).startswith(copier.TEMP_PREFIX):
                    assert sha512(path) == sources[rel], (index, path)
    assert clock.kills >= 50, (clock.kills, clock.finished)
    print("%d runs killed, %d finished, %d files" % (clock.kills, clock.finished, len(sources)))

    res = run_module_process(tmp_path, "buffer_copy", args)
    assert not res.get("failed"), res
    conn = sqlite3.connect(str(tmp_path / "registry.sqlite"))
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*) FROM pending").fetchone()[0] == 0
    registered = dict(conn.execute("SELECT path, digest FROM files"))
    copies = {}
    for path, label, role, relpath in conn.execute(
        "SELECT f.path, d.label, c.role, c.path FROM copies c JOIN files f ON f.id = c.file_id JOIN disks d ON d.id = c.disk_id"
    ):
        copies.setdefault(path, []).append((label, role, relpath))
    mounts = {"P1": p1, "P2": p2, "B1": b1}
    for rel, digest in sources.items():
        if (buf / rel).exists():
            assert sha512(buf / rel) == digest
            continue
        assert registered.get(rel) == digest, rel
        assert sorted(role for dummy, role, dummy2 in copies[rel]) == ["backup", "primary"], rel
        for label, dummy, relpath in copies[rel]:
            assert sha512(os.path.join(mounts[label], relpath)) == digest
    assert not any(os.path.exists(str(buf / rel)) for rel in sources)  # the clean run finished everything
    for root in (p1, p2, b1):
        assert not [f for f in final_files(root) if os.path.basename(f).startswith(copier.TEMP_PREFIX)]


def test_target_out_of_inodes_at_mkdir_moves_to_next_disk(tmp_path, buf, disks, mount_tmpfs):
    """A disk out of inodes refuses the target directory (ENOSPC from mkdir)
    with plenty of bytes free: it is marked full and the next disk is used."""
    p1 = str(mount_tmpfs(tmp_path / "P1", "8m", "nr_inodes=8"))
    p2, b1 = disks(P2="8m", B1="8m")
    rel = "a/b/c/d/e/f/g/h/i/deep.dat"
    make_file(buf / rel, 1000)
    make_file(buf / "z.dat", 1000)
    res = run_module_process(tmp_path, "buffer_copy", base_args(tmp_path, buf, [p1, p2], [b1]))
    assert res["copied_files"] == 2 and res["failed_files"] == 0, res
    assert [(d["mount_point"], d["role"]) for d in res["disks_full"]] == [(p1, "primary")]
    assert "No space left on device" in res["disks_full"][0]["reason"]
    assert sha512(Path(p2, rel)) == sha512(buf / rel) == sha512(Path(b1, rel))
    assert not final_files(p1)
    conn = sqlite3.connect(str(tmp_path / "registry.sqlite"))
    assert conn.execute("SELECT label, full FROM disks ORDER BY label").fetchall() == [("B1", 0), ("P1", 1), ("P2", 0)]
    assert conn.execute("SELECT count(*) FROM pending").fetchone()[0] == 0


def test_source_modified_during_its_copy_not_registered_not_removed(tmp_path, buf, disks, monkeypatch):
    """A writer appends to the source after the first chunk was read (the
    engine's read is wrapped so this happens deterministically mid-copy)."""
    p1, b1 = disks(P1="64m", B1="64m")
    src = make_file(buf / "live.dat", 3 * copier.CHUNK_SIZE + 12345)
    make_file(buf / "other.dat", 100)
    expected = hashlib.sha512(src.read_bytes() + b"late data").hexdigest()  # what the writer leaves
    ino = src.stat().st_ino
    real_readv = os.readv
    reads = []

    def readv_then_append(fd, buffers):
        count = real_readv(fd, buffers)
        if os.fstat(fd).st_ino == ino:
            reads.append(count)
            if len(reads) == 1:
                with open(str(src), "ab") as handle:
                    handle.write(b"late data")
        return count

    monkeypatch.setattr(os, "readv", readv_then_append)
    run = IngestRun(IngestOptions(str(buf), [p1], [b1], str(tmp_path / "registry.sqlite"), settle_seconds=0, remove_source=True))
    res = run.execute()
    assert len(reads) > 2 and reads[0] == copier.CHUNK_SIZE  # the copy was under way when the source changed
    assert res["unsettled_files"] == 1 and res["copied_files"] == 1 and res["removed_files"] == 1
    live = [f for f in res["files"] if f["path"] == "live.dat"][0]
    assert live["status"] == "unsettled" and not live["removed"] and "was modified while it was copied" in live["msg"]
    assert src.exists() and sha512(src) == expected  # left as the writer made it
    for root in (p1, b1):
        assert sorted(os.listdir(root)) == ["other.dat"]  # no final-named copy, no temporary
    conn = sqlite3.connect(str(tmp_path / "registry.sqlite"))
    assert conn.execute("SELECT path FROM files").fetchall() == [("other.dat",)]
    assert conn.execute("SELECT count(*) FROM pending").fetchone()[0] == 0
