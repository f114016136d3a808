# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Ingest at station scale on real tmpfs disks: hostile names, a disk
remounted read-only mid-run, a disk lazily unmounted during a large copy,
a registry on read-only media, and a kill storm over many small files with
batching on."""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
import subprocess
import sys
import time

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._copy import engine as copier
from ansible_collections.datasteward.storage.plugins.module_utils._jobs.ingest import IngestOptions, IngestRun
from ansible_collections.datasteward.storage.tests.system.utils.kills import KillClock
from ansible_collections.datasteward.storage.tests.unit.utils.module_runner import module_command, run_module_process

HOSTILE = [b"bad\xffname.dat", b"new\nline.dat", b"x" * 255, b"d\xe9j\xe0/vu\xff.dat", "réseau/ünï.dat".encode("utf-8")]


def make_file(path, data, age=3600):
    path = os.fsencode(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    past = time.time() - age
    os.utime(path, (past, past))
    return path


def sha512(path):
    with open(os.fsencode(path), "rb") as handle:
        return hashlib.sha512(handle.read()).hexdigest()


def args_for(tmp_path, buf, primary, backup, **extra):
    args = {"src": str(buf), "primary": primary, "backup": backup, "registry": str(tmp_path / "registry.sqlite"), "settle_seconds": 0}
    args.update(extra)
    return args


@pytest.fixture
def buf(tmp_path):
    path = tmp_path / "buffer"
    path.mkdir()
    return path


def test_hostile_names_are_copied_registered_and_removed(tmp_path, buf, disks):
    p1, b1 = disks(P1="8m", B1="8m")
    base = os.fsencode(str(buf))
    data = {}
    for index, name in enumerate(HOSTILE):
        data[name] = os.urandom(100 + index)
        make_file(os.path.join(base, name), data[name])
    make_file(os.path.join(base, b"after.dat"), b"sorts after every hostile name")  # nothing stops the rest
    res = run_module_process(tmp_path, "buffer_copy", args_for(tmp_path, buf, [p1], [b1], remove_source=True))
    assert not res.get("failed"), res
    assert res["copied_files"] == len(HOSTILE) + 1 and res["removed_files"] == len(HOSTILE) + 1, res
    shown = sorted(f["path"] for f in res["files"])
    assert "bad\\xffname.dat" in shown and "new\nline.dat" in shown and "x" * 255 in shown and "réseau/ünï.dat" in shown
    for name, content in data.items():
        for disk in (p1, b1):
            assert sha512(os.path.join(os.fsencode(disk), name)) == hashlib.sha512(content).hexdigest()
        assert not os.path.lexists(os.path.join(base, name))
    conn = sqlite3.connect(str(tmp_path / "registry.sqlite"))
    stored = {row[0] if isinstance(row[0], bytes) else row[0].encode("utf-8") for row in conn.execute("SELECT path FROM files")}
    assert stored == set(HOSTILE) | {b"after.dat"}  # losslessly
    again = run_module_process(tmp_path, "buffer_copy", args_for(tmp_path, buf, [p1], [b1], remove_source=True))
    assert not again.get("failed") and not again["changed"], again
    info = run_module_process(tmp_path, "copy_registry_info", {"registry": str(tmp_path / "registry.sqlite")})
    assert "bad\\xffname.dat" in [f["path"] for f in info["files"]]
    audit = run_module_process(tmp_path, "registry_audit", {"registry": str(tmp_path / "registry.sqlite")})
    assert audit["ok_copies"] == 2 * (len(HOSTILE) + 1), audit


def test_registered_hostile_name_survives_a_second_run_with_new_data(tmp_path, buf, disks):
    """A registered non-UTF-8 name is looked up again (skipped), a new file copied."""
    p1, b1 = disks(P1="8m", B1="8m")
    base = os.fsencode(str(buf))
    make_file(os.path.join(base, b"bad\xff.dat"), b"1")
    assert run_module_process(tmp_path, "buffer_copy", args_for(tmp_path, buf, [p1], [b1]))["copied_files"] == 1
    make_file(os.path.join(base, b"z.dat"), b"2")
    res = run_module_process(tmp_path, "buffer_copy", args_for(tmp_path, buf, [p1], [b1]))
    assert res["copied_files"] == 1 and res["skipped_files"] == 1, res


def remount_ro(path):
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)


def test_disk_remounted_read_only_mid_run_next_disk_takes_over(tmp_path, buf, disks):
    p1, p2, b1 = disks(P1="16m", P2="16m", B1="16m")
    for index in range(30):
        make_file(buf / ("f%02d.dat" % index), os.urandom(2000))
    calls = []

    def statvfs_then_remount(path):
        calls.append(path)
        if len(calls) == 26:  # planning batch 3 or 4: the batches before the one being verified are complete on P1
            remount_ro(p1)
        return os.statvfs(path)

    opts = IngestOptions(str(buf), [p1, p2], [b1], str(tmp_path / "registry.sqlite"), settle_seconds=0, remove_source=True, batch_files=4)
    res = IngestRun(opts, statvfs=statvfs_then_remount).execute()
    assert res["copied_files"] == 30 and res["failed_files"] == 0 and res["removed_files"] == 30, res
    assert [(d["mount_point"], d["role"]) for d in res["disks_unusable"]] == [(p1, "primary")]
    assert "Read-only file system" in res["disks_unusable"][0]["reason"]
    conn = sqlite3.connect(str(tmp_path / "registry.sqlite"))
    rows = conn.execute(
        "SELECT f.path, d.label FROM copies c JOIN files f ON f.id = c.file_id JOIN disks d ON d.id = c.disk_id WHERE c.role = 'primary'"
    ).fetchall()
    assert len(rows) == 30 and {label for dummy, label in rows} == {"P1", "P2"}
    for path, label in rows:
        assert sha512(os.path.join({"P1": p1, "P2": p2}[label], path)) == sha512(os.path.join(b1, path))
    assert conn.execute("SELECT full FROM disks WHERE label = 'P1'").fetchone()[0] == 0  # unusable now, not full


def test_disk_lazily_unmounted_during_a_large_copy(tmp_path, buf, disks):
    """The copy of a large file is under way when the backup disk is lazily
    unmounted: that copy is not registered, the buffer file is kept, a
    warning names the disk."""
    p1, b1 = disks(P1="64m", B1="64m")
    big = make_file(buf / "big.dat", os.urandom(3 * copier.CHUNK_SIZE + 1))
    ino = os.stat(big).st_ino
    real_readv = os.readv
    state = {"reads": 0}

    def readv_then_umount(fd, buffers):
        count = real_readv(fd, buffers)
        if os.fstat(fd).st_ino == ino:
            state["reads"] += 1
            if state["reads"] == 2:
                subprocess.run(["umount", "-l", b1], check=True)
        return count

    opts = IngestOptions(str(buf), [p1], [b1], str(tmp_path / "registry.sqlite"), settle_seconds=0, remove_source=True)
    run = IngestRun(opts)
    os.readv = readv_then_umount
    try:
        with pytest.raises(Exception) as info:
            run.execute()
    finally:
        os.readv = real_readv
    # the only backup disk left the run: the run stops with the file untouched in the buffer
    assert "no backup disk can take" in str(info.value)
    result = info.value.result
    assert result["copied_files"] == 0 and result["removed_files"] == 0
    assert [(d["mount_point"], d["role"]) for d in result["disks_unusable"]] == [(b1, "backup")]
    assert "no longer a mount point" in result["disks_unusable"][0]["reason"]
    assert any("backup disk %s" % b1 in warning for warning in run.warnings)
    assert os.path.exists(big)
    conn = sqlite3.connect(str(tmp_path / "registry.sqlite"))
    assert conn.execute("SELECT count(*) FROM files").fetchone()[0] == 0


def test_registry_on_read_only_media_is_readable(tmp_path, buf, disks, mount_tmpfs):
    p1, b1 = disks(P1="8m", B1="8m")
    media = mount_tmpfs(tmp_path / "media", "8m")
    make_file(buf / "a.dat", b"a")
    registry = str(media / "registry.sqlite")
    res = run_module_process(tmp_path, "buffer_copy", dict(args_for(tmp_path, buf, [p1], [b1]), registry=registry))
    assert res["copied_files"] == 1, res
    remount_ro(media)
    info = run_module_process(tmp_path, "copy_registry_info", {"registry": registry})
    assert not info.get("failed"), info
    assert [f["path"] for f in info["files"]] == ["a.dat"]


def final_files(root):
    out = {}
    for dirpath, dummy, files in os.walk(os.fsencode(root)):
        for name in files:
            if name != b".datasteward-disk":
                out[os.path.relpath(os.path.join(dirpath, name), os.fsencode(root))] = os.path.join(dirpath, name)
    return out


@pytest.mark.slow
def test_kill_storm_over_many_small_files_with_batching(tmp_path, buf, disks):
    """>= 50 SIGKILLs while batches of small files are copied, registered
    and removed; then a clean run: nothing lost, every final file verified,
    the registry sound and complete."""
    rng = random.Random(int(os.environ.get("DATASTEWARD_FAULT_SEED", "20261202")))
    p1, p2, b1 = disks(P1="4m", P2="160m", B1="160m")
    sources = {}

    def arrive(count):
        for dummy in range(count):
            rel = ("n%02d/%05d.dat" % (len(sources) // 200, len(sources))).encode()
            if len(sources) % 97 == 5:
                rel = rel[:-4] + b"\xff.dat"
            content = os.urandom(rng.choice([0, 1, 1024, 4096]))
            make_file(os.path.join(os.fsencode(str(buf)), rel), content)
            sources[rel] = hashlib.sha512(content).hexdigest()

    arrive(2000)  # a backlog, so that runs are killed while they work
    args = args_for(tmp_path, buf, [p1, p2], [b1], remove_source=True, batch_files=50)
    clock = KillClock(rng)
    index = 0
    while clock.kills < 50 and index < 200:
        index += 1
        arrive(rng.choice([50, 150]))
        clock.run(*module_command(tmp_path, "buffer_copy", args))
        if index % 10 == 0:
            for root in (p1, p2, b1):
                for rel, path in final_files(root).items():
                    if not copier.is_temp_name(os.path.basename(rel)):
                        assert sha512(path) == sources[rel], (index, path)
    assert clock.kills >= 50, (clock.kills, clock.finished)
    res = run_module_process(tmp_path, "buffer_copy", args)
    assert not res.get("failed"), res
    conn = sqlite3.connect(str(tmp_path / "registry.sqlite"))
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*) FROM pending").fetchone()[0] == 0
    registered = {(p if isinstance(p, bytes) else p.encode()): d for p, d in conn.execute("SELECT path, digest FROM files")}
    mounts = {"P1": p1, "P2": p2, "B1": b1}
    copies = {}
    for path, label, relpath in conn.execute("SELECT f.path, d.label, c.path FROM copies c JOIN files f ON f.id = c.file_id JOIN disks d ON d.id = c.disk_id"):
        copies.setdefault(path if isinstance(path, bytes) else path.encode(), []).append((label, relpath))
    for rel, digest in sources.items():
        assert not os.path.lexists(os.path.join(os.fsencode(str(buf)), rel)), rel  # the clean run finished everything
        assert registered.get(rel) == digest, rel
        assert len(copies[rel]) == 2
        for label, relpath in copies[rel]:
            relpath = relpath if isinstance(relpath, bytes) else relpath.encode()
            assert sha512(os.path.join(os.fsencode(mounts[label]), relpath)) == digest
    for root in (p1, p2, b1):
        assert not [f for f in final_files(root) if copier.is_temp_name(os.path.basename(f))]


@pytest.fixture
def dying_disk(tmp_path):
    """``dying_disk(name)``: an ext4 file system in an image on a loop device
    whose backing file sits on a small FUSE layer (tests/system/utils/eio_fuse.py);
    returns ``(mount point, fail)``: calling ``fail()`` makes every read and
    write of the image return EIO from then on. Everything is taken down at
    teardown whatever happened."""
    pytest.importorskip("fuse")
    made = []

    def make(name, size_mib=64):
        base = tmp_path / ("fuse-" + name)
        back, layer, point, flag = base / "back", base / "layer", tmp_path / name, base / "eio"
        for path in (back, layer, point):
            path.mkdir(parents=True)
        image = back / "disk.img"
        with open(str(image), "wb") as handle:
            handle.truncate(size_mib * 1024 * 1024)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
        helper = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "utils", "eio_fuse.py")
        proc = subprocess.Popen([sys.executable, helper, str(back), str(layer), str(flag)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        entry = {"proc": proc, "layer": layer, "point": point, "loop": None, "flag": flag}
        made.append(entry)
        for dummy in range(100):
            if os.path.exists(str(layer / "disk.img")):
                break
            time.sleep(0.05)
        else:
            pytest.skip("the FUSE layer did not come up: %s" % proc.stderr.read(2000))
        entry["loop"] = subprocess.run(["losetup", "--find", "--show", str(layer / "disk.img")], check=True, capture_output=True, text=True).stdout.strip()
        subprocess.run(["mount", entry["loop"], str(point)], check=True)
        return str(point), lambda: flag.write_bytes(b"")

    try:
        yield make
    finally:
        for entry in reversed(made):
            subprocess.run(["umount", "-l", str(entry["point"])], capture_output=True, check=False)
            if entry["loop"]:
                subprocess.run(["losetup", "-d", entry["loop"]], capture_output=True, check=False)
            if os.path.exists(str(entry["flag"])):
                os.unlink(str(entry["flag"]))
            subprocess.run(["fusermount", "-u", "-z", str(entry["layer"])], capture_output=True, check=False)
            entry["proc"].kill()
            entry["proc"].wait()


def test_disk_that_starts_returning_eio_leaves_the_run(tmp_path, buf, disks, dying_disk):
    """P1 (ext4 on a loop device over a FUSE layer) starts returning EIO
    after a few files: it is taken out at its first failure, P2 takes over,
    nothing is lost, the other files do not fail."""
    p1, fail = dying_disk("P1")
    p2, b1 = disks(P2="32m", B1="32m")
    for index in range(40):
        make_file(buf / ("n/f%02d.dat" % index), os.urandom(3000))
    calls = []

    def statvfs_then_fail(path):
        calls.append(path)
        if len(calls) == 12:
            fail()
        return os.statvfs(path)

    opts = IngestOptions(str(buf), [p1, p2], [b1], str(tmp_path / "registry.sqlite"), settle_seconds=0, remove_source=True, batch_files=5)
    res = IngestRun(opts, statvfs=statvfs_then_fail).execute()
    assert res["failed_files"] == 0 and res["copied_files"] == 40 and res["removed_files"] == 40, [f for f in res["files"] if f["status"] != "copied"]
    assert [(d["mount_point"], d["role"]) for d in res["disks_unusable"]] == [(p1, "primary")]
    assert "Input/output error" in res["disks_unusable"][0]["reason"] or "Read-only" in res["disks_unusable"][0]["reason"]
    conn = sqlite3.connect(str(tmp_path / "registry.sqlite"))
    rows = conn.execute(
        "SELECT f.path, f.digest, d.label FROM copies c JOIN files f ON f.id = c.file_id JOIN disks d ON d.id = c.disk_id WHERE c.role = 'primary'"
    ).fetchall()
    assert len(rows) == 40
    on_p2 = [(path, digest) for path, digest, label in rows if label == "P2"]
    assert on_p2 and all(sha512(os.path.join(p2, path)) == digest for path, digest in on_p2)
    assert all(sha512(os.path.join(b1, path)) == digest for path, digest, dummy in rows)
    # temporaries the dead disk would not let go stay journalled, for the sweep once it is back
    assert {root for (root,) in conn.execute("SELECT root FROM pending")} <= {p1}
