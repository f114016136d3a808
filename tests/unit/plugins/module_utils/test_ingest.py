# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ingest engine (buffer_copy) in-process, on plain directories as disks."""

from __future__ import annotations

import errno
import os
import signal
import time

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._copy import engine as copier
from ansible_collections.datasteward.storage.plugins.module_utils._fs.match import Match
from ansible_collections.datasteward.storage.plugins.module_utils._jobs import ingest
from ansible_collections.datasteward.storage.plugins.module_utils._jobs.audit import audit
from ansible_collections.datasteward.storage.plugins.module_utils._jobs.ingest import IngestError, buffer_copy
from ansible_collections.datasteward.storage.plugins.module_utils._registry.db import Journal, Registry


@pytest.fixture
def tree(tmp_path):
    for name in ("buffer", "P1", "P2", "B1"):
        (tmp_path / name).mkdir()
    return tmp_path


def make_file(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    past = time.time() - 3600
    os.utime(str(path), (past, past))
    return path


def run(tree, primary=("P1",), backup=None, **extra):
    args = {
        "src": str(tree / "buffer"),
        "primary": [str(tree / p) for p in primary],
        "backup": backup or [str(tree / "B1")],
        "registry": str(tree / "registry.sqlite"),
        "settle_seconds": 0,
        "require_mount": False,
    }
    args.update(extra)
    return buffer_copy(**args)


def test_vanished_buffer_directory_is_unsettled_and_the_run_goes_on(tree, monkeypatch):
    make_file(tree / "buffer" / "a" / "x.dat", b"x" * 100)
    make_file(tree / "buffer" / "b" / "y.dat", b"y" * 100)
    scan = ingest.scan_buffer

    def scan_then_remove(*args, **kwargs):
        found = scan(*args, **kwargs)
        os.unlink(str(tree / "buffer" / "a" / "x.dat"))
        os.rmdir(str(tree / "buffer" / "a"))
        return found

    monkeypatch.setattr(ingest, "scan_buffer", scan_then_remove)
    result, warnings = run(tree)
    assert [(f["path"], f["status"]) for f in result["files"]] == [("a/x.dat", "unsettled"), ("b/y.dat", "copied")]
    assert "a/x.dat vanished before it could be read" in result["files"][0]["msg"]
    assert (tree / "P1" / "b" / "y.dat").read_bytes() == b"y" * 100 and not (tree / "P1" / "a").exists()


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
@pytest.mark.parametrize("check_mode", [True, False])
def test_source_registered_earlier_is_removed_only_after_its_copies_verify_again(tree, check_mode, damage):
    """Registered without remove_source, then a copy is lost or damaged on its
    disk (no audit has seen it): removing the source re-reads every copy
    first, keeps the source, and records what it found."""
    src = make_file(tree / "buffer" / "n" / "a.dat", b"a" * 5000)
    result, dummy = run(tree)
    assert result["copied_files"] == 1
    copy = tree / "B1" / "n" / "a.dat"
    if damage == "missing":
        copy.unlink()
    else:
        copy.write_bytes(b"b" * 5000)

    result, warnings = run(tree, remove_source=True, check_mode=check_mode)
    assert src.read_bytes() == b"a" * 5000
    assert result["removed_files"] == 0 and not result["changed"]
    assert result["files"][0]["msg"].startswith("%s kept in the buffer: its copy on B1 is %s" % (src, damage))
    assert any("kept in the buffer" in warning for warning in warnings)
    registry = Registry(str(tree / "registry.sqlite"))
    statuses = dict((c["label"], c["status"]) for c in registry.copies_of(registry.file("n/a.dat")["id"]))
    registry.close()
    assert statuses == {"P1": "ok", "B1": "ok" if check_mode else damage}

    # registry_audit repairs the copy from its verified twin; then the source goes
    audit_result, dummy = audit(str(tree / "registry.sqlite"), repair=True, require_mount=False)
    assert audit_result["repaired_copies"] == 1
    assert copy.read_bytes() == b"a" * 5000
    result, dummy = run(tree, remove_source=True, check_mode=check_mode)
    assert result["removed_files"] == 1 and src.exists() == check_mode


def test_source_registered_earlier_is_kept_while_a_copy_disk_is_away(tree):
    src = make_file(tree / "buffer" / "a.dat", b"a" * 100)
    run(tree)
    (tree / "B1").rename(tree / "B1-shelved")
    (tree / "B2").mkdir()
    result, dummy = run(tree, remove_source=True, backup=[str(tree / "B2")])
    assert src.exists() and result["removed_files"] == 0
    assert "its copy on B1 cannot be verified now" in result["files"][0]["msg"]


@pytest.mark.parametrize("check_mode", [True, False])
def test_source_kept_while_a_registered_copy_is_bad(tree, check_mode):
    src = make_file(tree / "buffer" / "a.dat", b"a" * 100)
    result, dummy = run(tree)
    assert result["copied_files"] == 1 and src.exists()
    registry = Registry(str(tree / "registry.sqlite"))
    copy_id = registry.copies_of(registry.file("a.dat")["id"])[1]["id"]
    registry.record_check(copy_id, "corrupt", "digest mismatch")
    registry.close()

    result, warnings = run(tree, remove_source=True, check_mode=check_mode)
    assert src.exists() and result["removed_files"] == 0 and not result["changed"]
    assert result["files"][0]["status"] == "skipped" and not result["files"][0]["removed"]
    assert "a.dat kept in the buffer: its registered copy on B1 is corrupt" in result["files"][0]["msg"]
    assert any("is corrupt" in warning for warning in warnings)

    registry = Registry(str(tree / "registry.sqlite"))
    registry.record_check(copy_id, "ok", verified=True)
    registry.close()
    result, dummy = run(tree, remove_source=True, check_mode=check_mode)
    assert result["removed_files"] == 1 and result["changed"] and src.exists() == check_mode


def crash_after_rename(tree, relpath, primary):
    """What a run killed between the renames and the registry commit leaves:
    journal rows for both temporaries, verified final copies, no file row."""
    registry = Registry(str(tree / "registry.sqlite"))
    journal = Journal(registry)
    copier.copy_verified(str(tree / "buffer"), relpath, [(str(tree / primary), relpath), (str(tree / "B1"), relpath)], journal=journal)
    assert len(registry.pending()) == 2
    return registry


def test_orphan_on_a_disk_marked_full_is_swept_once_registered_elsewhere(tree):
    make_file(tree / "buffer" / "d" / "a.dat", b"a" * 1000)
    run(tree)  # creates the registry and the disks
    make_file(tree / "buffer" / "d" / "b.dat", b"b" * 1000)
    registry = crash_after_rename(tree, "d/b.dat", "P1")
    registry.mark_full(registry.disk("P1")["id"])
    registry.close()

    result, warnings = run(tree, primary=("P1", "P2"), check_mode=True)
    assert (tree / "P1" / "d" / "b.dat").exists() and len(Registry(str(tree / "registry.sqlite")).pending()) == 2

    result, warnings = run(tree, primary=("P1", "P2"))
    assert [(f["path"], f["status"]) for f in result["files"]] == [("d/a.dat", "skipped"), ("d/b.dat", "copied")]
    assert [c["reused"] for c in result["files"][1]["copies"]] == [False, True]  # P2 new, B1 the crash's copy
    assert result["stale_temporaries_removed"] == 1 and not warnings
    assert not (tree / "P1" / "d" / "b.dat").exists() and (tree / "P1" / "d" / "a.dat").exists()
    registry = Registry(str(tree / "registry.sqlite"))
    assert registry.pending() == [] and {c["label"] for c in registry.copies_of(registry.file("d/b.dat")["id"])} == {"P2", "B1"}


def test_orphan_of_an_unregistered_file_is_kept(tree):
    make_file(tree / "buffer" / "a.dat", b"a" * 1000)
    run(tree, max_files=0)
    crash_after_rename(tree, "a.dat", "P1").close()
    os.unlink(str(tree / "buffer" / "a.dat"))  # the copies are now the only ones

    for dummy in range(2):
        result, warnings = run(tree)
        assert (tree / "P1" / "a.dat").read_bytes() == b"a" * 1000 and (tree / "B1" / "a.dat").exists()
        assert result["stale_temporaries_removed"] == 0
        assert sorted(warnings) == [
            "%s: verified copy left by an interrupted run, its file not registered yet; kept" % (tree / disk / "a.dat") for disk in ("B1", "P1")
        ]
        assert len(Registry(str(tree / "registry.sqlite")).pending()) == 2


def test_crash_rerun_on_the_same_disks_reuses_the_copies(tree):
    make_file(tree / "buffer" / "a.dat", b"a" * 1000)
    run(tree, max_files=0)
    crash_after_rename(tree, "a.dat", "P1").close()
    result, warnings = run(tree)
    assert result["copied_files"] == 1 and [c["reused"] for c in result["files"][0]["copies"]] == [True, True]
    assert result["stale_temporaries_removed"] == 0 and not warnings
    assert Registry(str(tree / "registry.sqlite")).pending() == []


def test_two_disks_with_the_same_label_are_refused_before_any_work(tree):
    for name in ("primary/01", "backup/01"):
        (tree / name).mkdir(parents=True)
    make_file(tree / "buffer" / "a.dat", b"a" * 100)
    with pytest.raises(IngestError) as info:
        run(tree, primary=("primary/01",), backup=[str(tree / "backup" / "01")])
    msg = str(info.value)
    assert "%s and %s both have the label 01" % (tree / "primary" / "01", tree / "backup" / "01") in msg
    assert "put a .datasteward-disk file" in msg
    assert os.listdir(str(tree / "primary" / "01")) == [] and os.listdir(str(tree / "backup" / "01")) == []
    assert not (tree / "registry.sqlite").exists() and (tree / "buffer" / "a.dat").exists()

    (tree / "backup" / "01" / ".datasteward-disk").write_text("B01\n")
    result, dummy = run(tree, primary=("primary/01",), backup=[str(tree / "backup" / "01")])
    assert result["copied_files"] == 1 and {d["label"] for d in result["disks_used"]} == {"01", "B01"}


def test_a_label_still_present_at_its_registered_mount_point_is_refused_elsewhere(tree):
    (tree / "B2").mkdir()
    (tree / "B2" / ".datasteward-disk").write_text("P1\n")  # a copy of P1's label, e.g. a cloned disk
    make_file(tree / "buffer" / "a.dat", b"a" * 100)
    run(tree)
    make_file(tree / "buffer" / "b.dat", b"b" * 100)
    with pytest.raises(IngestError) as info:
        run(tree, primary=("P2",), backup=[str(tree / "B2")])
    assert "%s and %s both have the label P1" % (tree / "P1", tree / "B2") in str(info.value)
    registry = Registry(str(tree / "registry.sqlite"))
    assert (registry.disk("P1")["mount_point"], registry.disk("P1")["role"]) == (str(tree / "P1"), "primary")
    assert not (tree / "B2" / "b.dat").exists()
    # A disk that moved (nothing with its label left at the old place) is fine.
    (tree / "P1" / ".datasteward-disk").write_text("P1\n")
    os.rename(str(tree / "P1"), str(tree / "P1-old"))
    result, dummy = run(tree, primary=("P2",), backup=[str(tree / "P1-old")])
    assert result["copied_files"] == 1


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_label_file_that_cannot_be_read_is_named(tree, kind):
    """A label file that exists but is no regular file is an error naming it,
    not a silent fall-back to the basename (which could file the disk's
    copies under another disk), and a FIFO never blocks the run."""
    label = tree / "P1" / ".datasteward-disk"
    os.mkdir(str(label)) if kind == "directory" else os.mkfifo(str(label))
    make_file(tree / "buffer" / "a.dat", b"a" * 100)
    with pytest.raises(IngestError) as info:
        run(tree)
    assert "no primary disk can take %s" % (tree / "buffer" / "a.dat") in str(info.value)
    assert "%s unusable: cannot read the disk label %s: it is not a regular file" % (tree / "P1", label) in str(info.value)
    assert info.value.result["disks_unusable"] == [
        {"label": None, "mount_point": str(tree / "P1"), "role": "primary", "reason": "cannot read the disk label %s: it is not a regular file" % label}
    ]
    assert (tree / "buffer" / "a.dat").exists() and os.listdir(str(tree / "B1")) == []
    # The next disk of the set takes the file.
    result, warnings = run(tree, primary=("P1", "P2"))
    assert result["copied_files"] == 1 and (tree / "P2" / "a.dat").exists()
    assert [d["mount_point"] for d in result["disks_unusable"]] == [str(tree / "P1")]
    assert any("primary disk %s not used in this run: cannot read the disk label %s" % (tree / "P1", label) in w for w in warnings)


def test_label_read_error_is_named(tree, monkeypatch):
    (tree / "P1" / ".datasteward-disk").write_text("P01\n")

    def dead_disk(fd, size):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "read", dead_disk)
    result, warnings = run(tree)  # nothing to copy: reported, the run is fine
    assert result["disks_unusable"] == [
        {
            "label": None,
            "mount_point": str(tree / "P1"),
            "role": "primary",
            "reason": "cannot read the disk label %s: Input/output error" % (tree / "P1" / ".datasteward-disk"),
        }
    ]


def test_io_error_on_a_target_takes_the_disk_out_and_the_next_disk_takes_over(tree, monkeypatch):
    """EIO on P1 is about the disk: P1 leaves the run at its first failure
    (reported with the cause), the file is retried on P2, nothing is lost."""
    make_file(tree / "buffer" / "a.dat", b"a" * 100)
    make_file(tree / "buffer" / "b.dat", b"b" * 100)
    real_stat = os.stat
    p1 = str(tree / "P1")

    def stat_with_eio(path, *args, **kwargs):
        fd = kwargs.get("dir_fd")
        if fd is not None and os.fsdecode(path) == "a.dat" and os.readlink("/proc/self/fd/%d" % fd) == p1:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat_with_eio)
    result, warnings = run(tree, primary=("P1", "P2"))
    assert sorted((f["path"], f["status"]) for f in result["files"]) == [("a.dat", "copied"), ("b.dat", "copied")]
    assert [(d["mount_point"], d["role"]) for d in result["disks_unusable"]] == [(p1, "primary")]
    assert "cannot stat %s: Input/output error" % (tree / "P1" / "a.dat") in result["disks_unusable"][0]["reason"]
    assert (tree / "P2" / "a.dat").read_bytes() == b"a" * 100  # b.dat (same batch) verified on P1 before P1 failed
    assert not (tree / "P1" / "a.dat").exists()
    assert Registry(str(tree / "registry.sqlite")).pending() == []
    assert any("primary disk %s not used in this run" % p1 in warning for warning in warnings)


def test_io_error_on_the_last_disk_fails_the_file_and_the_run_goes_on(tree, monkeypatch):
    make_file(tree / "buffer" / "a.dat", b"a" * 100)
    real_stat = os.stat

    def stat_with_eio(path, *args, **kwargs):
        if kwargs.get("dir_fd") is not None and os.fsdecode(path) == "a.dat":
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat_with_eio)
    with pytest.raises(IngestError, match="no primary disk can take"):
        run(tree)
    assert (tree / "buffer" / "a.dat").exists() and not (tree / "P1" / "a.dat").exists()
    assert Registry(str(tree / "registry.sqlite")).pending() == []


def test_engine_never_lets_a_bare_oserror_through(tree, monkeypatch):
    """fstat of an open file on a dying disk: a named CopyError, not a traceback."""
    make_file(tree / "buffer" / "a.dat", b"a" * 100)
    real_fstat = os.fstat
    calls = []

    def fstat_with_eio(fd):
        calls.append(fd)
        if len(calls) == 3:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_fstat(fd)

    monkeypatch.setattr(os, "fstat", fstat_with_eio)
    with pytest.raises(copier.CopyError) as info:
        copier.copy_verified(str(tree / "buffer"), "a.dat", [(str(tree / "P1"), "a.dat")])
    assert "Input/output error" in str(info.value) and info.value.path
    assert sorted(os.listdir(str(tree / "P1"))) == []


def test_disk_whose_free_space_cannot_be_read_is_skipped_for_the_run(tree):
    make_file(tree / "buffer" / "a.dat", b"a" * 100)
    make_file(tree / "buffer" / "b.dat", b"b" * 100)
    calls = []

    def statvfs(path):
        calls.append(path)
        if path == str(tree / "P1"):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return os.statvfs(path)

    result, warnings = run(tree, primary=("P1", "P2"), statvfs=statvfs)
    assert result["copied_files"] == 2 and (tree / "P2" / "a.dat").exists() and (tree / "P2" / "b.dat").exists()
    why = "cannot read free space of %s: Input/output error" % (tree / "P1")
    assert result["disks_unusable"] == [{"label": "P1", "mount_point": str(tree / "P1"), "role": "primary", "reason": why}]
    assert warnings == ["primary disk %s not used in this run: %s" % (tree / "P1", why)]
    assert calls.count(str(tree / "P1")) == 1 and result["disks_full"] == []
    assert not Registry(str(tree / "registry.sqlite")).disk("P1")  # not marked full, not registered

    make_file(tree / "buffer" / "c.dat", b"c" * 100)
    with pytest.raises(IngestError) as info:
        run(tree, statvfs=statvfs)  # P1 is the only primary: a clean stop naming it
    assert "no primary disk can take %s" % (tree / "buffer" / "c.dat") in str(info.value) and why in str(info.value)
    assert info.value.result["disks_unusable"][0]["mount_point"] == str(tree / "P1") and (tree / "buffer" / "c.dat").exists()


def test_temporary_that_cannot_be_removed_keeps_its_journal_row(tree, monkeypatch):
    """A copy fails (conflict on P1) and the backup's temporary cannot be
    unlinked: its pending row stays, so a later run still finds and removes it."""
    make_file(tree / "buffer" / "a.dat", b"a" * 100)
    (tree / "P1" / "a.dat").write_bytes(b"other data")
    real_unlink = os.unlink

    def unlink_fails_for_temporaries(path, *args, **kwargs):
        if os.path.basename(os.fsdecode(path)).startswith(copier.TEMP_PREFIX):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink_fails_for_temporaries)
    result, warnings = run(tree)
    assert result["files"][0]["status"] == "conflict"
    temps = [name for name in os.listdir(str(tree / "B1")) if name.startswith(copier.TEMP_PREFIX)]
    assert len(temps) == 1
    assert [(row["root"], row["path"]) for row in Registry(str(tree / "registry.sqlite")).pending()] == [(str(tree / "B1"), os.fsencode(temps[0]))]
    assert any("stale temporary %s" % (tree / "B1" / temps[0]) in warning for warning in warnings)

    monkeypatch.setattr(os, "unlink", real_unlink)
    result, warnings = run(tree)
    assert result["stale_temporaries_removed"] == 1 and os.listdir(str(tree / "B1")) == []
    assert Registry(str(tree / "registry.sqlite")).pending() == []


def failing_unlink(real_unlink, error):
    def unlink(path, *args, **kwargs):
        if os.fsdecode(path).startswith(copier.TEMP_PREFIX):
            raise error
        return real_unlink(path, *args, **kwargs)

    return unlink


def test_journal_keep_leaves_rows_of_temporaries_still_there(tree, monkeypatch):
    """Every caller drops the rows ``journal.take()`` gives after a failure
    (here registry_audit's repair path shares the same Journal)."""
    make_file(tree / "buffer" / "a.dat", b"a" * 100)
    registry = Registry(str(tree / "registry.sqlite"))
    journal = Journal(registry)
    real_unlink = os.unlink
    monkeypatch.setattr(os, "unlink", failing_unlink(real_unlink, PermissionError(errno.EPERM, "Operation not permitted")))
    with pytest.raises(copier.VerifyFailed):
        copier.copy_verified(
            str(tree / "buffer"), "a.dat", [(str(tree / "P1"), "a.dat"), (str(tree / "B1"), "a.dat")], expect_digest="0" * 128, journal=journal
        )
    assert journal.take() == [] and len(registry.pending()) == 2
    monkeypatch.setattr(os, "unlink", real_unlink)
    # ENOENT counts as gone: the rows of temporaries that vanished are dropped.
    journal = Journal(registry)
    monkeypatch.setattr(os, "unlink", failing_unlink(real_unlink, FileNotFoundError(errno.ENOENT, "gone")))
    with pytest.raises(copier.VerifyFailed):
        copier.copy_verified(str(tree / "buffer"), "a.dat", [(str(tree / "P2"), "a.dat")], expect_digest="0" * 128, journal=journal)
    assert len(journal.take()) == 1


def test_check_mode_predicts_existing_targets_like_the_real_run(tree):
    make_file(tree / "buffer" / "same.dat", b"s" * 100)
    make_file(tree / "buffer" / "other.dat", b"o" * 100)
    make_file(tree / "buffer" / "new.dat", b"n" * 100)
    (tree / "P1" / "same.dat").write_bytes(b"s" * 100)  # a crash's verified copy
    (tree / "B1" / "other.dat").write_bytes(b"x" * 100)  # someone else's data
    predicted, dummy = run(tree, check_mode=True)
    real, dummy = run(tree)
    for result in (predicted, real):
        assert [(f["path"], f["status"]) for f in result["files"]] == [("new.dat", "copied"), ("other.dat", "conflict"), ("same.dat", "copied")]
        assert [c["reused"] for c in result["files"][2]["copies"]] == [True, False]
        assert "%s already exists with other content" % (tree / "B1" / "other.dat") in result["files"][1]["msg"]
    assert (tree / "B1" / "other.dat").read_bytes() == b"x" * 100


def test_check_mode_remove_source_hashes_a_registered_file_first(tree):
    src = make_file(tree / "buffer" / "a.dat", b"a" * 100)
    run(tree)
    mtime = src.stat().st_mtime
    src.write_bytes(b"b" * 100)  # same size and mtime, other content
    os.utime(str(src), (mtime, mtime))
    for check_mode in (True, False):
        result, dummy = run(tree, remove_source=True, check_mode=check_mode)
        assert result["conflict_files"] == 1 and result["removed_files"] == 0 and not result["changed"] and src.exists()


def test_buffer_scan_without_mounts(tmp_path):
    """The buffer scan through the one walker and the one match rule (the
    nested-tmpfs case is in tests/system/copy)."""
    root = tmp_path / "buf"
    for rel, data in (("a.dat", b"1"), ("sub/b.dat", b"2"), ("sub/c.log", b"3"), ("sub/" + copier.temp_name("x.dat"), b"4"), ("skip/d.dat", b"5")):
        make_file(root / rel, data)
    make_file(root / os.fsdecode(b"bad\xff.dat"), b"6")
    os.symlink(str(root / "a.dat"), str(root / "link.dat"))
    os.symlink(str(tmp_path), str(root / "dirlink"))
    os.mkfifo(str(root / "pipe.dat"))
    errors = []
    found = ingest.scan_buffer(str(root), Match(["*.dat"], ["c.*", "skip"]), errors)
    assert [rel for rel, dummy in found] == [b"a.dat", b"bad\xff.dat", b"sub/b.dat"]
    messages = " ".join(e["msg"] for e in errors)
    assert "link.dat is a symlink" in messages and "dirlink is a symlink" in messages and "pipe.dat is not a regular file" in messages
    assert len(errors) == 3


def test_temp_prefixed_user_file_is_reported_not_silently_skipped(tree):
    make_file(tree / "buffer" / ".dstmp.mine", b"user data")
    result, warnings = run(tree)
    assert result["copied_files"] == 0 and (tree / "buffer" / ".dstmp.mine").exists()
    assert any(".dstmp.mine skipped: names starting with .dstmp. are reserved" in w for w in warnings)
    assert result["scan_errors"][0]["path"] == str(tree / "buffer" / ".dstmp.mine")


def test_path_patterns_follow_the_collection_rule(tree):
    """A pattern with '/' matches the path relative to src (as everywhere in the collection)."""
    make_file(tree / "buffer" / "2024" / "a.dat", b"a")
    make_file(tree / "buffer" / "2025" / "b.dat", b"b")
    result, dummy = run(tree, patterns=["2024/*.dat"])
    assert [f["path"] for f in result["files"]] == ["2024/a.dat"]


class Mark:
    """A flag that forked processes see: a file that exists once set."""

    def __init__(self, path):
        self.path = str(path)

    def set(self):
        with open(self.path, "a"):
            pass

    def is_set(self):
        return os.path.exists(self.path)

    def wait(self, timeout):
        """True once set; False after ``timeout`` seconds (a bound, not a timing)."""
        deadline = time.monotonic() + timeout
        while not self.is_set():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True


def next_batch_reads(monkeypatch, names, where):
    """Marks: one set when the source of one of ``names`` starts being
    read, one when the last of them is written."""
    reading, written = Mark(where / "reading"), Mark(where / "written")
    real_start = copier.start_copy

    def start_copy(src_root, src_relpath, *args, **kwargs):
        if src_relpath in names:
            reading.set()
        copy = real_start(src_root, src_relpath, *args, **kwargs)
        if src_relpath == names[-1]:
            written.set()
        return copy

    monkeypatch.setattr(copier, "start_copy", start_copy)
    return reading, written


def test_the_next_batch_is_read_while_the_batch_before_is_verified(tree, monkeypatch):
    """Two-stage pipeline, small files too: the re-reads of batch 1 run in
    forked processes (one per disk) and wait there until this process reads
    a source of batch 2 (a bounded wait that fails the test, no timing);
    every file still ends registered."""
    for name in "abcd":
        make_file(tree / "buffer" / ("%s.dat" % name), name.encode() * 100)
    reading_next, dummy = next_batch_reads(monkeypatch, (b"c.dat", b"d.dat"), tree)
    real_verify = copier.verify_copy
    seen, parent = tree / "seen", os.getpid()

    def verify_copy(tgt, *args, **kwargs):
        if tgt.relpath in (b"a.dat", b"b.dat"):
            with open(str(seen), "a") as out:  # written by the verifying child
                out.write("%s %s %s\n" % (tgt.relpath.decode(), reading_next.wait(60), os.getpid() != parent))
        return real_verify(tgt, *args, **kwargs)

    monkeypatch.setattr(copier, "verify_copy", verify_copy)
    result, dummy = run(tree, batch_files=2, remove_source=True)
    assert sorted(seen.read_text().splitlines()) == ["a.dat True True"] * 2 + ["b.dat True True"] * 2
    assert [(f["path"], f["status"], f["removed"]) for f in result["files"]] == [("%s.dat" % n, "copied", True) for n in "abcd"]
    registry = Registry(str(tree / "registry.sqlite"))
    assert registry.pending() == [] and all(registry.file(("%s.dat" % n).encode()) is not None for n in "abcd")
    assert not any((tree / "buffer" / ("%s.dat" % n)).exists() for n in "abcd")


def test_a_verifying_process_that_dies_fails_its_copies_and_keeps_the_sources(tree, monkeypatch):
    """The child re-reading P1's copies is killed: those files are failed
    (not renamed, not registered, sources kept), the run goes on and a
    second run copies them."""
    for name in "ab":
        make_file(tree / "buffer" / ("%s.dat" % name), name.encode() * 100)
    real_verify, parent, p1 = copier.verify_copy, os.getpid(), str(tree / "P1")

    def verify_copy(tgt, *args, **kwargs):
        if os.getpid() != parent and tgt.root == p1:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_verify(tgt, *args, **kwargs)

    monkeypatch.setattr(copier, "verify_copy", verify_copy)
    result, dummy = run(tree, primary=("P1", "P2"), remove_source=True)
    assert [(f["path"], f["status"]) for f in result["files"]] == [("a.dat", "failed"), ("b.dat", "failed")]
    assert "could not be verified" in result["files"][0]["msg"] and "ended without a result" in result["files"][0]["msg"]
    assert sorted(os.listdir(str(tree / "buffer"))) == ["a.dat", "b.dat"]
    assert not [name for name in os.listdir(p1) if name.endswith(".dat")]
    monkeypatch.setattr(copier, "verify_copy", real_verify)
    again, dummy = run(tree, primary=("P1", "P2"), remove_source=True)
    assert [(f["path"], f["status"], f["removed"]) for f in again["files"]] == [("a.dat", "copied", True), ("b.dat", "copied", True)]


def test_disk_failing_in_one_batch_sends_the_next_batch_written_there_to_the_next_disk(tree, monkeypatch):
    """P1 fails while batch 1 is re-read, after batch 2 was written to it:
    batch 2's files are copied again to P2, not reported failed, and none
    of their temporaries stays on P1."""
    for name in "abcd":
        make_file(tree / "buffer" / ("%s.dat" % name), name.encode() * 100)
    dummy, next_written = next_batch_reads(monkeypatch, (b"c.dat", b"d.dat"), tree)
    real_verify = copier.verify_copy
    p1 = str(tree / "P1")
    on_p1 = tree / "on_p1"

    def verify_copy(tgt, *args, **kwargs):
        if tgt.root == p1 and tgt.relpath == b"a.dat":
            assert next_written.wait(60)  # batch 2 is written to P1 too
            temps = sorted(copier.final_of_temp(name.encode()).decode() for name in os.listdir(p1) if copier.is_temp_name(name.encode()))
            on_p1.write_text(" ".join(temps))  # seen by the verifying child
            raise tgt.failed("read back", OSError(errno.EIO, os.strerror(errno.EIO)))
        return real_verify(tgt, *args, **kwargs)

    monkeypatch.setattr(copier, "verify_copy", verify_copy)
    result, warnings = run(tree, primary=("P1", "P2"), batch_files=2)
    assert sorted((f["path"], f["status"]) for f in result["files"]) == [(n + ".dat", "copied") for n in "abcd"]
    assert [(d["mount_point"], d["role"]) for d in result["disks_unusable"]] == [(p1, "primary")]
    assert on_p1.read_text().split() == ["a.dat", "b.dat", "c.dat", "d.dat"]
    assert sorted(name for name in os.listdir(p1) if name.endswith(".dat") or copier.is_temp_name(name.encode())) == ["b.dat"]  # c, d never renamed there
    assert sorted(os.listdir(str(tree / "P2"))) == ["a.dat", "c.dat", "d.dat"]
    registry = Registry(str(tree / "registry.sqlite"))
    assert registry.pending() == []
    assert [c["mount_point"] for c in registry.copies_of(registry.file(b"c.dat")["id"])] == [str(tree / "P2"), str(tree / "B1")]


def test_limit_reached_while_a_batch_is_verified_is_decided_after_it(tree, monkeypatch):
    """max_files counts the files copied: a file of batch 1 that changed
    (unsettled) gives its place back, so d is copied, not deferred, though
    batch 2 was planned before batch 1 was complete."""
    for name in "abcd":
        make_file(tree / "buffer" / ("%s.dat" % name), name.encode() * 100)
    real_start = copier.start_copy

    def start_copy(src_root, src_relpath, *args, **kwargs):
        if src_relpath == b"a.dat":
            os.utime(os.path.join(src_root, "a.dat"), (time.time() - 7200, time.time() - 7200))  # changed since the scan
        return real_start(src_root, src_relpath, *args, **kwargs)

    monkeypatch.setattr(copier, "start_copy", start_copy)
    result, dummy = run(tree, batch_files=2, max_files=3)
    assert [(f["path"], f["status"]) for f in result["files"]] == [("a.dat", "unsettled"), ("b.dat", "copied"), ("c.dat", "copied"), ("d.dat", "copied")]
    assert result["deferred_files"] == 0 and result["copied_files"] == 3
