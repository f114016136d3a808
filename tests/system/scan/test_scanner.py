# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The scanner engine where it needs root: trees with several owners (per-user
and per-group sums against GNU find), tmpfs mounts inside the tree, scans as
user nobody (permission errors, the process limit) and a killed worker."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._fs import usage as _scanner
from ansible_collections.datasteward.storage.plugins.module_utils._fs.usage import ScanError, scan
from ansible_collections.datasteward.storage.tests.system.utils.as_nobody import run_as_nobody
from ansible_collections.datasteward.storage.tests.unit.utils import scan_tree
from ansible_collections.datasteward.storage.tests.unit.utils.scan_tree import COUNTS, UNKNOWN_UID, build_tree, du_bytes, find_sums
from ansible_collections.datasteward.storage.tests.unit.utils.scan_tree import big_tree as _big_tree
from ansible_collections.datasteward.storage.tests.unit.utils.scan_tree import by_key as _by

IS_ROOT = os.geteuid() == 0


@pytest.fixture(name="tree")
def tree_fixture(tmp_path):
    """The test tree with several owners (alice 1001, bob 1002, a uid without a name)."""
    return build_tree(tmp_path)


def test_users_and_groups_match_find(tree):
    result = scan([tree], workers=2)
    users = _by(result, "users", "uid")
    groups = _by(result, "groups", "gid")
    for owners, key in ((users, "%U"), (groups, "%G")):
        expected = find_sums(tree, key=key)
        assert sorted(owners) == sorted(expected)
        for owner, counter in expected.items():
            assert dict((k, owners[owner][k]) for k in COUNTS) == dict((k, counter[k]) for k in COUNTS), owner
    assert sum(u["files"] for u in result["users"]) == result["totals"]["files"]


def test_old_files_match_find(tree):
    result = scan([tree], age="90d")
    expected = find_sums(tree, older_days=90)
    users = _by(result, "users", "uid")
    for uid, user in users.items():
        assert user["old_files"] == expected[uid]["files"], uid
        assert user["old_apparent_bytes"] == expected[uid]["apparent_bytes"], uid
        assert user["old_allocated_bytes"] == expected[uid]["allocated_bytes"], uid
    # alice: old.log (200 d), older.log (400 d), sparse.img (120 d), linked.bin (300 d, once)
    assert users[1001]["old_files"] == 4
    assert users[1001]["old_apparent_bytes"] == 5000 + 7000 + 50 * 1024 * 1024 + 65536
    assert scan([tree], age="1000d")["totals"]["old_files"] == 0


def test_unknown_uid_reported_by_number(tree):
    result = scan([tree])
    ghost = _by(result, "users", "uid")[UNKNOWN_UID]
    assert ghost["name"] is None
    assert ghost["files"] == 1 and ghost["dirs"] == 1
    assert _by(result, "groups", "gid")[scan_tree.UNKNOWN_GID]["name"] is None
    assert _by(result, "users", "uid")[0]["name"] == "root"


def test_symlinks_counted_never_followed(tree):
    result = scan([tree])
    users = _by(result, "users", "uid")
    # to-usr, loop, a, b, up (root); to-outside (root, made by root); dangling (bob)
    assert users[0]["symlinks"] == 6
    assert users[1002]["symlinks"] == 1
    assert users[0]["others"] == 1  # the fifo
    # /usr is large: following it would blow the totals far past du's.
    assert result["totals"]["apparent_bytes"] == du_bytes(tree, apparent=True)


def test_hard_links_counted_once(tree):
    result = scan([tree], top=100)
    totals = result["totals"]
    # linked.bin has 4 links in the tree, outside-link.bin 1 (its twin is outside).
    assert totals["duplicate_links"] == 3
    assert totals["hardlinked_inodes"] == 2
    alice = _by(result, "users", "uid")[1001]
    linked = [f for f in alice["largest"] if f["bytes"] == 65536]
    assert [f["path"] for f in linked] == [os.path.join(tree, "bob", "link-to-shared.bin")]  # smallest path wins


def test_largest_and_oldest(tree):
    result = scan([tree], top=2)
    alice = _by(result, "users", "uid")[1001]
    assert [os.path.basename(f["path"]) for f in alice["largest"]] == ["sparse.img", "big.bin"]
    assert alice["largest"][0]["bytes"] == 50 * 1024 * 1024
    assert alice["largest"][0]["allocated_bytes"] < 1024 * 1024  # sparse
    assert [os.path.basename(f["path"]) for f in alice["oldest"]] == ["older.log", "link-to-shared.bin"]
    assert 399 * 86400 < alice["oldest"][0]["age_seconds"] < 401 * 86400
    assert scan([tree], top=0)["users"][0]["largest"] == []


def test_excludes(tree):
    whole = scan([tree])
    by_name = scan([tree], excludes=["*.log", "bob"])
    users = _by(by_name, "users", "uid")
    assert users[1001]["files"] == _by(whole, "users", "uid")[1001]["files"] - 2
    assert users[1002]["files"] == 1  # deeper/deepfile only
    # A pattern with '/' is the path relative to the root (a leading '/' is the root).
    for pattern in ("shared/*", "/shared/*"):
        by_path = scan([tree], excludes=[pattern])
        assert os.path.join(tree, "shared") in _by(by_path, "directories", "path")
        assert _by(by_path, "directories", "path")[os.path.join(tree, "shared")]["dirs"] == 1
    # ... never the absolute path: that would depend on where the tree is mounted.
    assert scan([tree], excludes=[os.path.join(tree, "shared")])["totals"]["entries"] == whole["totals"]["entries"]


@pytest.fixture(name="mounted")
def mounted_fixture(tree, mount_tmpfs):
    point = str(mount_tmpfs(os.path.join(tree, "alice", "mnt"), "8m", "noatime"))
    with open(os.path.join(point, "on-tmpfs.bin"), "wb") as handle:
        handle.write(b"t" * 100000)
    return point


def test_nested_mount(tree, mounted):
    inside = scan([tree], one_file_system=True)
    assert inside["totals"]["apparent_bytes"] == du_bytes(tree, apparent=True, one_file_system=True)
    assert inside["totals"]["allocated_bytes"] == du_bytes(tree, apparent=False, one_file_system=True)
    across = scan([tree], one_file_system=False, workers=2)
    assert across["totals"]["apparent_bytes"] == du_bytes(tree, apparent=True, one_file_system=False)
    assert across["totals"]["allocated_bytes"] == du_bytes(tree, apparent=False, one_file_system=False)
    assert across["totals"]["files"] == inside["totals"]["files"] + 1
    # du -x leaves out the mount point directory itself, and so do we.
    assert across["totals"]["dirs"] == inside["totals"]["dirs"] + 1


def test_root_on_another_file_system_under_another_root(tree, mounted):
    """A root given explicitly is scanned even when it is a mount under
    another root; without one_file_system the outer scan covers it once."""
    for one_fs in (True, False):
        both = scan([tree, mounted], one_file_system=one_fs)
        assert both["totals"]["apparent_bytes"] == du_bytes([tree, mounted], apparent=True, one_file_system=one_fs)
        assert both["totals"]["allocated_bytes"] == du_bytes([tree, mounted], apparent=False, one_file_system=one_fs)
    assert mounted in _by(scan([tree, mounted]), "directories", "path")


def test_atime_warnings(tree, mounted, mount_tmpfs):
    result = scan([mounted], age_stamp="atime")
    assert len(result["warnings"]) == 1 and "noatime" in result["warnings"][0] and mounted in result["warnings"][0]
    assert scan([mounted], age_stamp="mtime")["warnings"] == []
    point = str(mount_tmpfs(os.path.join(tree, "strict"), "1m", "relatime"))
    assert "relatime" in scan([point], age_stamp="atime")["warnings"][0]
    subprocess.run(["mount", "-o", "remount,strictatime", point], check=True)
    assert scan([point], age_stamp="atime")["warnings"] == []


def _scan_as_nobody(root, nproc=None, **kwargs):
    """The scan as user nobody, for real permission errors (and limits)."""
    return run_as_nobody(lambda: scan([root], **kwargs), nproc)


@pytest.mark.parametrize("workers", [1, 2])
def test_unreadable_directory_reported_not_fatal(workers):
    if not IS_ROOT:
        pytest.skip("needs root to drop to user nobody")
    base = scan_tree.world_readable_base()
    try:
        tree = build_tree(base)
        private = os.path.join(tree, "alice", "private")
        os.mkdir(private, 0o700)
        for name in ("a", "b"):
            with open(os.path.join(private, name), "wb") as handle:
                handle.write(b"secret" * 1000)
        result = _scan_as_nobody(tree, workers=workers)
        assert result["totals"]["unreadable"] == 1
        assert result["errors"] == [{"path": private, "error": "unreadable: cannot be read: Permission denied"}]
        # GNU du as the same user skips the same directory's contents.
        assert result["totals"]["apparent_bytes"] == du_bytes(tree, apparent=True, user="nobody")
        assert result["totals"]["allocated_bytes"] == du_bytes(tree, apparent=False, user="nobody")
        assert result["totals"]["apparent_bytes"] < scan([tree])["totals"]["apparent_bytes"]
    finally:
        shutil.rmtree(base)


def _import_worker_machinery():
    """The scan as nobody runs the interpreter of a venv under /root, which
    nobody cannot read: import what the workers need while still root."""
    for name in ("pool", "sharedctypes", "queues", "synchronize", "popen_fork"):
        importlib.import_module("multiprocessing." + name)


def test_workers_that_cannot_start_fall_back_to_one_process(monkeypatch):
    """With the process limit reached (fork fails with EAGAIN), the scan is
    done in the module's own process, with a warning, and gives the same totals."""
    if not IS_ROOT:
        pytest.skip("needs root to drop to user nobody (root ignores RLIMIT_NPROC)")
    base = scan_tree.world_readable_base()
    try:
        tree = build_tree(base)
        _import_worker_machinery()
        monkeypatch.setattr(_scanner, "_PRESCAN", 1)  # leave work for the workers
        expected = _scan_as_nobody(tree, workers=1)
        limited = _scan_as_nobody(tree, nproc=1, workers=2)
        assert limited["totals"]["apparent_bytes"] == expected["totals"]["apparent_bytes"]
        assert limited["totals"]["entries"] == expected["totals"]["entries"]
        assert len(limited["warnings"]) == 1
        assert limited["warnings"][0].startswith("could not start 2 scan workers (")
    finally:
        shutil.rmtree(base)


def test_shards_report_each_error_once():
    """Every shard lists every directory, but an unreadable directory or an
    odd name is reported by one shard only, so the shards' errors add up."""
    if not IS_ROOT:
        pytest.skip("needs root to drop to user nobody")
    base = scan_tree.world_readable_base()
    try:
        tree = build_tree(base)
        os.mkdir(os.path.join(tree, "alice", "private"), 0o700)
        whole = _scan_as_nobody(tree)
        parts = [_scan_as_nobody(tree, shard_index=index, shard_count=3) for index in range(3)]
        assert whole["totals"]["unreadable"] == 1 and whole["totals"]["non_utf8_names"] == 1
        for counter in ("unreadable", "non_utf8_names", "errors", "vanished"):
            assert sum(part["totals"][counter] for part in parts) == whole["totals"][counter], counter
        assert [error for part in parts for error in part["errors"]] == whole["errors"]
    finally:
        shutil.rmtree(base)


def test_killed_worker_is_an_error_not_a_hang(tmp_path, monkeypatch):
    """A worker killed from outside (as the OOM killer would) makes the scan
    fail with a clear message instead of waiting forever for its result."""
    root = _big_tree(tmp_path, dirs=4, files=10)
    monkeypatch.setattr(_scanner, "_PRESCAN", 1)
    monkeypatch.setattr(_scanner, "_WATCH_SECONDS", 0.2)
    real_task = _scanner._worker_task  # pylint: disable=protected-access

    def dying_task(tasks):
        if any(start is not None and start[0].endswith(b"d02") for _root, start, _slice in tasks):
            os.kill(os.getpid(), 9)
        return real_task(tasks)

    # Tasks reach the workers by name: let the name find the dying one.
    dying_task.__module__ = _scanner.__name__
    dying_task.__qualname__ = dying_task.__name__ = "_worker_task"
    monkeypatch.setattr(_scanner, "_worker_task", dying_task)
    with pytest.raises(ScanError, match="scan worker process .* died"):
        scan([root], workers=2)
