# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""old_files attack trees that need root and real kernel things: a nested
mount, relocation to another file system (owner, group, mode, times kept,
verified restore), a destination that fills up, a read-only part, a part
nobody may read, and SIGKILL during relocation."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._copy import engine as copier
from ansible_collections.datasteward.storage.plugins.module_utils._jobs import old_files as job
from ansible_collections.datasteward.storage.tests.system.utils.as_nobody import NOBODY, run_as_nobody
from ansible_collections.datasteward.storage.tests.system.utils.kills import KillClock
from ansible_collections.datasteward.storage.tests.unit.utils.module_runner import module_command, run_module_process
from ansible_collections.datasteward.storage.tests.unit.utils.old_files_params import params

DAY = 86400


def put(path, data, age_days=300, owner=None, mode=0o640):
    path = os.fsencode(str(path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)
    if owner is not None:
        os.chown(path, *owner)
    when = time.time() - age_days * DAY
    os.utime(path, (when - 5, when))
    return path


def sha(path):
    with open(path, "rb") as handle:
        return hashlib.sha512(handle.read()).hexdigest()


def run(root, check_mode=False, **kwargs):
    return job.run(job.options_from_params(params(root, **kwargs)), check_mode=check_mode)


def test_nested_mount_is_not_entered(tmp_path, mount_tmpfs):
    root = tmp_path / "scratch"
    put(root / "own.dat", b"o")
    mount_tmpfs(root / "mnt", "1m")
    put(root / "mnt/theirs.dat", b"t")
    result = run(root, state="absent", remove_empty_dirs=True)
    assert result["totals"]["files"] == 1 and (root / "mnt/theirs.dat").exists()
    assert [e["kind"] for e in result["errors"]] == ["other_fs"]


def test_relocation_to_another_file_system_keeps_metadata_and_restores_verified(tmp_path, mount_tmpfs):
    root = tmp_path / "scratch"
    dest = mount_tmpfs(tmp_path / "dest", "16m")
    files = {}
    for index in range(6):
        rel = "u%d/run/f%d.dat" % (index % 2, index)
        files[rel] = put(root / rel, os.urandom(50000 + index), owner=(1001 + index % 2, 2001), mode=0o604)
        os.chown(root / ("u%d" % (index % 2)), 1001 + index % 2, 2001)
        os.chmod(root / ("u%d" % (index % 2)), 0o750)
    digests = {rel: sha(path) for rel, path in files.items()}  # reading moves the atime: stat after
    before = {rel: (os.stat(path), digests[rel]) for rel, path in files.items()}
    moved = run(root, state="relocated", dest=str(dest))
    assert moved["totals"]["files"] == 6 and moved["skipped"] == []
    for rel, (st, digest) in before.items():
        copy = dest / "node1" / rel
        got = os.stat(copy)  # before the test reads it (which moves its atime)
        assert not (root / rel).exists() and sha(copy) == digest
        assert (got.st_uid, got.st_gid, got.st_mode, got.st_mtime_ns, got.st_atime_ns) == (st.st_uid, st.st_gid, st.st_mode, st.st_mtime_ns, st.st_atime_ns)
    top = os.stat(dest / "node1/u1")
    assert (top.st_uid, top.st_mode & 0o777) == (1002, 0o750)  # directories mirrored like the originals
    assert {u["uid"]: u["files"] for u in moved["users"]} == {1001: 3, 1002: 3}
    back = run(root, state="restored", manifest=moved["manifest"])
    assert back["totals"]["files"] == 6 and all(f["verified"] for f in back["files"])
    for rel, (st, digest) in before.items():
        got = os.stat(root / rel)
        assert sha(root / rel) == digest and (got.st_uid, got.st_mode, got.st_mtime_ns) == (st.st_uid, st.st_mode, st.st_mtime_ns)
        assert not (dest / "node1" / rel).exists()


def test_full_destination_stops_with_the_original_intact(tmp_path, mount_tmpfs):
    root = tmp_path / "scratch"
    dest = mount_tmpfs(tmp_path / "dest", "1m")
    digests = {}
    for index in range(5):
        digests["f%d" % index] = sha(put(root / ("f%d" % index), os.urandom(300 * 1024), age_days=300 + index))
    result = run_module_process(
        tmp_path,
        "old_files",
        dict(path=str(root), age="30d", state="relocated", dest=str(dest), host_folder="node1", manifest_dir=str(tmp_path / "manifests"), order="oldest"),
        failed=True,
    )
    assert result["msg"].startswith("dest: %s is full; stopped with " % dest), result["msg"]
    assert result["changed"] is True and 1 <= result["totals"]["files"] < 5
    for name, digest in digests.items():
        here, there = root / name, dest / "node1" / name
        assert here.exists() != there.exists(), name
        assert sha(here if here.exists() else there) == digest
    assert not [n for n in os.listdir(dest / "node1") if n.startswith(copier.TEMP_PREFIX)]
    with open(result["manifest"]) as handle:
        assert len(handle.read().splitlines()) == result["totals"]["files"]


def test_read_only_part_is_reported_and_the_rest_done(tmp_path):
    root = tmp_path / "scratch"
    put(root / "rw/a.dat", b"a")
    put(root / "ro/b.dat", b"b")
    subprocess.run(["mount", "--bind", str(root / "ro"), str(root / "ro")], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(root / "ro")], check=True)
        result = run(root, state="absent")
    finally:
        subprocess.run(["umount", "-l", str(root / "ro")], check=False)
    assert result["totals"]["files"] == 1 and not (root / "rw/a.dat").exists()
    assert (root / "ro/b.dat").exists()
    assert [s["path"] for s in result["skipped"]] == [str(root / "ro/b.dat")]
    assert "Read-only file system" in result["skipped"][0]["reason"]


@pytest.fixture
def open_tmp():
    """A directory under /tmp that nobody can traverse (tmp_path's parents are 0700)."""
    path = tempfile.mkdtemp(prefix="datasteward-oldfiles-")
    os.chmod(path, 0o755)
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


def test_unreadable_part_is_reported_as_nobody(open_tmp):
    tmp_path = open_tmp
    root = tmp_path / "scratch"
    put(root / "mine/old.dat", b"m", owner=(NOBODY, NOBODY))
    os.chown(root / "mine", NOBODY, NOBODY)
    put(root / "private/secret.dat", b"s")
    os.chmod(root / "private", 0o700)
    manifests = tmp_path / "manifests"
    manifests.mkdir(mode=0o777)
    os.chmod(manifests, 0o777)

    def as_nobody():
        result = run(root, state="absent", manifest_dir=str(manifests))
        return {"files": result["totals"]["files"], "errors": result["errors"], "skipped": result["skipped"]}

    result = run_as_nobody(as_nobody)
    assert result["files"] == 1 and not (root / "mine/old.dat").exists()
    assert (root / "private/secret.dat").exists()
    assert [(e["path"], e["kind"]) for e in result["errors"]] == [(str(root / "private"), "unreadable")]


@pytest.mark.slow
def test_sigkill_during_relocation_loses_nothing(tmp_path, mount_tmpfs):
    rng = random.Random(int(os.environ.get("DATASTEWARD_FAULT_SEED", "20261202")))
    root = tmp_path / "scratch"
    dest = mount_tmpfs(tmp_path / "dest", "256m")
    digests = {}
    for index in range(480):  # enough that most runs are killed part way
        rel = "d%02d/f%03d.dat" % (index % 12, index)
        digests[rel] = sha(put(root / rel, os.urandom(rng.choice([0, 100, 65536, 300000]))))
    args = dict(path=str(root), age="30d", state="relocated", dest=str(dest), host_folder="node1", manifest_dir=str(tmp_path / "manifests"))
    clock = KillClock(rng)
    for dummy in range(12):
        clock.run(*module_command(tmp_path, "old_files", args))
        for rel, digest in digests.items():  # at every instant: each file whole at one place at least
            here, there = root / rel, dest / "node1" / rel
            assert (here.exists() and sha(here) == digest) or (there.exists() and sha(there) == digest), rel
    assert clock.kills >= 3, (clock.kills, clock.finished)
    final = run_module_process(tmp_path, "old_files", args)
    assert not any((root / rel).exists() for rel in digests)
    manifests = sorted(os.listdir(tmp_path / "manifests"))
    relocated = {}
    for name in manifests:
        with open(tmp_path / "manifests" / name) as handle:
            for line in handle:
                if line.endswith("\n"):
                    record = json.loads(line)
                    relocated[record["relpath"]] = record
    assert set(relocated) <= set(digests) and final["changed"] in (True, False)
    for name in manifests:
        run_module_process(tmp_path, "old_files", dict(args, state="restored", manifest=str(tmp_path / "manifests" / name)))
    missing = [rel for rel in digests if not (root / rel).exists()]
    # a file whose record a kill cut off stays in the relocation area, whole
    for rel in missing:
        assert sha(dest / "node1" / rel) == digests[rel]
    for rel in set(digests) - set(missing):
        assert sha(root / rel) == digests[rel]
    assert len(missing) <= clock.kills
