# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The copy engine on real files and real (tmpfs, ext4) file systems."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._copy import engine as copier


def sha512sum(path):
    out = subprocess.run(["sha512sum", str(path)], check=True, capture_output=True, text=True).stdout
    return out.split()[0]


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


class Journal:
    def __init__(self, hook=None):
        self.entries = []
        self.hook = hook

    def add_all(self, entries):
        self.entries.extend(entries)
        if self.hook:
            self.hook()


def test_copy_two_targets_byte_for_byte(tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 17)
    src = write(tmp_path / "buf" / "d" / "e" / "f.dat", data)
    os.chmod(str(src), 0o640)
    os.utime(str(src), (1000000000, 1000000000))
    journal = Journal()
    res = copier.copy_verified(
        str(tmp_path / "buf"),
        "d/e/f.dat",
        [(str(tmp_path / "p"), "d/e/f.dat"), (str(tmp_path / "b"), "d/e/f.dat")],
        "sha512",
        journal=journal,
        chunk_size=1024 * 1024,
    )
    assert res.digest == sha512sum(src)
    assert res.size == len(data)
    for root in ("p", "b"):
        copy = tmp_path / root / "d" / "e" / "f.dat"
        assert sha512sum(copy) == sha512sum(src)
        assert copy.stat().st_mode & 0o777 == 0o640
        assert copy.stat().st_mtime == 1000000000
    assert [c["reused"] for c in res.copies] == [False, False]
    assert len(journal.entries) == 2 and all(os.path.basename(p).startswith(copier.TEMP_PREFIX) for dummy, p in journal.entries)
    assert temps(tmp_path) == []


@pytest.mark.parametrize("algorithm", copier.available_algorithms())
def test_algorithms(tmp_path, algorithm):
    data = os.urandom(100000)
    write(tmp_path / "s" / "x", data)
    res = copier.copy_verified(str(tmp_path / "s"), "x", [(str(tmp_path / "t"), "x")], algorithm)
    if algorithm == "blake3":
        from blake3 import blake3

        assert res.digest == blake3(data).hexdigest()
    else:
        assert res.digest == hashlib.new(algorithm, data).hexdigest()


def test_empty_file(tmp_path):
    write(tmp_path / "s" / "empty", b"")
    res = copier.copy_verified(str(tmp_path / "s"), "empty", [(str(tmp_path / "t"), "empty")])
    assert res.size == 0 and (tmp_path / "t" / "empty").read_bytes() == b""


def test_unknown_algorithm():
    with pytest.raises(copier.CopyError, match="unknown checksum algorithm"):
        copier.new_hasher("md5")


def test_source_symlink_refused(tmp_path):
    write(tmp_path / "secret", b"x")
    (tmp_path / "s").mkdir()
    os.symlink(str(tmp_path / "secret"), str(tmp_path / "s" / "link"))
    with pytest.raises(copier.UnsafePath, match="symlink"):
        copier.copy_verified(str(tmp_path / "s"), "link", [(str(tmp_path / "t"), "link")])
    assert not (tmp_path / "t" / "link").exists()


def test_source_swapped_for_a_fifo_refused_without_blocking(tmp_path):
    """A FIFO with no writer would block a plain open(2) forever; the copy refuses it at once."""
    (tmp_path / "s").mkdir()
    os.mkfifo(str(tmp_path / "s" / "pipe"))
    with pytest.raises(copier.UnsafePath, match="not a regular file"):
        copier.copy_verified(str(tmp_path / "s"), "pipe", [(str(tmp_path / "t"), "pipe")])
    assert not (tmp_path / "t" / "pipe").exists()


def test_symlinked_target_dir_not_followed(tmp_path):
    write(tmp_path / "s" / "sub" / "f", b"data")
    (tmp_path / "elsewhere").mkdir()
    os.symlink(str(tmp_path / "elsewhere"), str(tmp_path / "t" / "sub"))
    with pytest.raises(copier.UnsafePath, match="symlink"):
        copier.copy_verified(str(tmp_path / "s"), "sub/f", [(str(tmp_path / "t"), "sub/f")])
    assert os.listdir(str(tmp_path / "elsewhere")) == []


def test_relpath_escape_refused(tmp_path):
    with pytest.raises(copier.UnsafePath):
        copier.split_relpath("../x")
    with pytest.raises(copier.UnsafePath):
        copier.split_relpath("/etc/passwd")


def test_existing_identical_copy_is_verified_and_reused(tmp_path):
    write(tmp_path / "s" / "f", b"same")
    write(tmp_path / "t" / "f", b"same")
    res = copier.copy_verified(str(tmp_path / "s"), "f", [(str(tmp_path / "t"), "f"), (str(tmp_path / "u"), "f")])
    assert [c["reused"] for c in res.copies] == [True, False]


def test_existing_different_copy_is_a_conflict_and_kept(tmp_path):
    write(tmp_path / "s" / "f", b"new")
    write(tmp_path / "t" / "f", b"old")
    with pytest.raises(copier.TargetConflict, match="other content"):
        copier.copy_verified(str(tmp_path / "s"), "f", [(str(tmp_path / "u"), "f"), (str(tmp_path / "t"), "f")])
    assert (tmp_path / "t" / "f").read_bytes() == b"old"
    assert temps(tmp_path) == []
    assert not (tmp_path / "u" / "f").exists()  # nothing renamed before every copy verified


def test_replace_with_expected_digest(tmp_path):
    write(tmp_path / "s" / "f", b"good")
    write(tmp_path / "t" / "f", b"bad!")
    good = hashlib.sha512(b"good").hexdigest()
    copier.copy_verified(str(tmp_path / "s"), "f", [(str(tmp_path / "t"), "f")], replace=True, expect_digest=good)
    assert (tmp_path / "t" / "f").read_bytes() == b"good"
    with pytest.raises(copier.VerifyFailed):
        copier.copy_verified(str(tmp_path / "s"), "f", [(str(tmp_path / "t"), "f")], replace=True, expect_digest="0" * 128)


def test_vanished_source_directory(tmp_path):
    """A buffer directory removed between scan and copy is a vanished source,
    not an OSError escaping the engine."""
    (tmp_path / "s").mkdir()
    with pytest.raises(copier.SourceVanished, match="s/gone/a.dat vanished"):
        copier.copy_verified(str(tmp_path / "s"), "gone/a.dat", [(str(tmp_path / "t"), "gone/a.dat")])
    with pytest.raises(copier.SourceVanished, match="s/gone/a.dat vanished"):
        copier.hash_file(str(tmp_path / "s"), "gone/a.dat", "sha512")
    assert temps(tmp_path / "t") == [] and not (tmp_path / "t" / "gone").exists()


def test_hash_file_read_error_is_a_copy_error(tmp_path, monkeypatch):
    """An I/O error reading a file (dead disk) names the file; no raw OSError."""
    write(tmp_path / "s" / "a.dat", b"x" * 100)

    def broken(*args):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(copier.os, "preadv", broken)
    monkeypatch.setattr(copier.os, "pread", broken)
    with pytest.raises(copier.CopyError, match="cannot read .*s/a.dat: Input/output error"):
        copier.hash_file(str(tmp_path / "s"), "a.dat", "sha512")


def test_source_modified_during_copy(tmp_path):
    src = write(tmp_path / "s" / "f", os.urandom(50000))

    def modify():
        with open(str(src), "ab") as handle:
            handle.write(b"more")

    with pytest.raises(copier.SourceChanged, match="modified while it was copied"):
        copier.copy_verified(str(tmp_path / "s"), "f", [(str(tmp_path / "t"), "f")], journal=Journal(modify))
    assert not (tmp_path / "t" / "f").exists()
    assert temps(tmp_path) == []


def test_source_replaced_since_scan(tmp_path):
    src = write(tmp_path / "s" / "f", b"one")
    seen = os.lstat(str(src))
    os.unlink(str(src))
    write(tmp_path / "s" / "f", b"two")
    with pytest.raises(copier.SourceChanged, match="since it was scanned"):
        copier.copy_verified(str(tmp_path / "s"), "f", [(str(tmp_path / "t"), "f")], expect_stat=seen)


def test_vanished_source(tmp_path):
    (tmp_path / "s").mkdir()
    with pytest.raises(copier.SourceVanished, match="vanished"):
        copier.copy_verified(str(tmp_path / "s"), "gone", [(str(tmp_path / "t"), "gone")])


def test_verification_reads_from_disk_not_cache(tmp_path):
    """On ext4 the copy's pages are evicted after verification (fincore)."""
    fincore = shutil.which("fincore")
    if not fincore:
        pytest.skip("fincore (util-linux) not installed")
    fstype = subprocess.run(["stat", "-f", "-c", "%T", str(tmp_path)], capture_output=True, text=True, check=True).stdout.strip()
    if fstype in ("tmpfs", "ramfs"):
        pytest.skip("tmp_path is on %s, whose pages are its storage" % fstype)
    write(tmp_path / "s" / "f", os.urandom(8 * 1024 * 1024))
    copier.copy_verified(str(tmp_path / "s"), "f", [(str(tmp_path / "t"), "f")])
    out = subprocess.run([fincore, "-b", "-n", "-o", "RES", str(tmp_path / "t" / "f")], capture_output=True, text=True, check=True)
    assert int(out.stdout.split()[0]) < 64 * 1024


def test_hash_file_detects_change_and_symlink(tmp_path):
    write(tmp_path / "s" / "f", b"abc")
    digest, size, dummy = copier.hash_file(str(tmp_path / "s"), "f", "sha256")
    assert digest == hashlib.sha256(b"abc").hexdigest() and size == 3
    os.symlink("f", str(tmp_path / "s" / "l"))
    with pytest.raises(copier.UnsafePath):
        copier.hash_file(str(tmp_path / "s"), "l", "sha256")


def test_remove_file_rechecks(tmp_path):
    src = write(tmp_path / "s" / "d" / "f", b"abc")
    seen = os.lstat(str(src))
    src.write_bytes(b"abd")
    with pytest.raises(copier.SourceChanged):
        copier.remove_file(str(tmp_path / "s"), "d/f", seen)
    assert src.exists()
    seen = os.lstat(str(src))
    assert copier.remove_file(str(tmp_path / "s"), "d/f", seen)
    assert not src.exists()
    with pytest.raises(copier.SourceVanished):
        copier.remove_file(str(tmp_path / "s"), "d/f", seen)


def test_remove_file_never_through_symlinked_dir(tmp_path):
    victim = write(tmp_path / "victim" / "f", b"abc")
    seen = os.lstat(str(victim))
    (tmp_path / "s").mkdir()
    os.symlink(str(tmp_path / "victim"), str(tmp_path / "s" / "d"))
    with pytest.raises(copier.UnsafePath):
        copier.remove_file(str(tmp_path / "s"), "d/f", seen)
    assert victim.exists()


def test_remove_temp_only_touches_temporaries(tmp_path):
    write(tmp_path / "t" / "d" / "keep", b"x")
    name = copier.temp_name("keep")
    write(tmp_path / "t" / "d" / name, b"partial")
    with pytest.raises(copier.UnsafePath):
        copier.remove_temp(str(tmp_path / "t"), "d/keep")
    assert copier.remove_temp(str(tmp_path / "t"), "d/" + name)
    assert not copier.remove_temp(str(tmp_path / "t"), "d/" + name)
    assert not copier.remove_temp(str(tmp_path / "gone"), "d/" + name)
    assert (tmp_path / "t" / "d" / "keep").exists()


def test_temp_name_fits_name_max():
    assert len(copier.temp_name("x" * 255)) <= 255
