# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The copy engine across real file systems: a target directory on another
tmpfs, a tmpfs that fills up mid-file, a mount inside the scanned buffer."""

from __future__ import annotations

import os

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._copy import engine as copier
from ansible_collections.datasteward.storage.plugins.module_utils._fs.match import Match
from ansible_collections.datasteward.storage.plugins.module_utils._fs.walk import WalkError
from ansible_collections.datasteward.storage.plugins.module_utils._jobs.ingest import scan_buffer


@pytest.fixture(autouse=True)
def target_roots(tmp_path):
    """Targets are disk roots, which exist (the engine never creates one)."""
    for name in ("t", "u", "p", "b", "ok"):
        (tmp_path / name).mkdir()


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def temps(root):
    return [os.path.join(d, f) for d, dummy, files in os.walk(str(root)) for f in files if f.startswith(copier.TEMP_PREFIX)]


def test_target_subdir_on_other_filesystem_refused(tmp_path, mount_tmpfs):
    write(tmp_path / "s" / "sub" / "f", b"data")
    mount_tmpfs(tmp_path / "t" / "sub", "1m")
    with pytest.raises(copier.UnsafePath, match="another file system"):
        copier.copy_verified(str(tmp_path / "s"), "sub/f", [(str(tmp_path / "t"), "sub/f")])
    assert os.listdir(str(tmp_path / "t" / "sub")) == []


def test_target_fills_up_mid_file(tmp_path, mount_tmpfs):
    small = mount_tmpfs(tmp_path / "small", "1m")
    write(tmp_path / "s" / "big", os.urandom(3 * 1024 * 1024))
    with pytest.raises(copier.TargetFull) as info:
        copier.copy_verified(str(tmp_path / "s"), "big", [(str(tmp_path / "ok"), "big"), (str(small), "big")], chunk_size=256 * 1024)
    assert info.value.index == 1
    assert os.listdir(str(small)) == []
    assert not (tmp_path / "ok" / "big").exists()
    assert temps(tmp_path) == []


def test_buffer_scan(tmp_path, mount_tmpfs):
    root = tmp_path / "buf"
    write(root / "a.dat", b"1")
    write(root / "sub" / "b.dat", b"2")
    write(root / "sub" / "c.log", b"3")
    write(root / "sub" / copier.temp_name("x.dat"), b"4")
    write(root / copier.temp_name("y"), b"6")
    os.symlink(str(root / "a.dat"), str(root / "link.dat"))
    os.symlink(str(tmp_path), str(root / "dirlink"))
    mount_tmpfs(root / "mnt", "1m")
    write(root / "mnt" / "other.dat", b"5")
    errors = []
    found = scan_buffer(str(root), Match(["*.dat"], ["c.*"]), errors)
    assert [rel for rel, dummy in found] == [b"a.dat", b"sub/b.dat"]
    messages = " ".join(e["msg"] for e in errors)
    assert "link.dat is a symlink" in messages and "dirlink is a symlink" in messages
    assert "another file system" in messages
    found = scan_buffer(str(root), Match(None, None), errors)
    assert "reserved for the copy engine's temporaries" in " ".join(e["msg"] for e in errors)
    with pytest.raises(WalkError):
        scan_buffer(str(tmp_path / "missing"), Match(), [])
