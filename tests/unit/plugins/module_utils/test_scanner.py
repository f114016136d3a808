# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The scanner engine on real trees, checked against GNU du and find."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sysconfig
import time

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._fs import usage as _scanner
from ansible_collections.datasteward.storage.plugins.module_utils._fs.usage import ScanError, parse_age, scan

from tests.utils import scan_tree
from tests.utils.as_nobody import run_as_nobody
from tests.utils.scan_tree import UNKNOWN_UID, build_tree, du_bytes, du_depth, find_sums

COUNTS = ("files", "dirs", "symlinks", "others", "apparent_bytes", "allocated_bytes")
IS_ROOT = os.geteuid() == 0


@pytest.fixture(name="tree")
def tree_fixture(tmp_path):
    if not IS_ROOT:
        pytest.skip("building trees with several owners needs root")
    return build_tree(tmp_path)


def _comparable(result):
    """The result without timings, for comparing scans with each other."""
    result = json.loads(json.dumps(result))
    for key in ("seconds", "entries_per_second", "examined", "duplicate_links"):
        result["totals"].pop(key)
    result.pop("shard")
    return result


def _by(result, section, key):
    return dict((item[key], item) for item in result[section])


def _big_tree(base, dirs=40, files=60):
    """Enough entries for the workers to split tasks, with hard links across
    the subtrees that different workers scan."""
    root = os.path.join(str(base), "big")
    first = None
    for d in range(dirs):
        sub = os.path.join(root, "d%02d" % d, "sub")
        os.makedirs(sub)
        for f in range(files):
            path = os.path.join(sub, "f%03d" % f)
            with open(path, "wb") as handle:
                handle.write(b"z" * ((d * files + f) % 5000))
            if IS_ROOT:
                os.chown(path, 2000 + d % 3, 3000 + f % 2)
        if first is None:
            first = os.path.join(sub, "f000")
        else:
            os.link(first, os.path.join(sub, "link-to-first"))
        os.link(os.path.join(sub, "f001"), os.path.join(root, "d%02d" % d, "link-up"))
    return root


# ----------------------------------------------------------------- options

@pytest.mark.parametrize("text, seconds", [
    ("90d", 90 * 86400), ("12h", 43200), ("2w", 14 * 86400), ("30m", 1800), ("45s", 45),
    ("3600", 3600), (" 7D ", 7 * 86400), (0, 0), (120, 120),
])
def test_parse_age(text, seconds):
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["3x", "d", "-5", "1.5d", "90 days"])
def test_parse_age_rejects(text):
    with pytest.raises(ScanError, match="^age: "):
        parse_age(text)


@pytest.mark.parametrize("kwargs, option", [
    (dict(age_stamp="birth"), "age_stamp"),
    (dict(top=-1), "top"),
    (dict(depth=-1), "depth"),
    (dict(workers=0), "workers"),
    (dict(shard_count=0), "shard_count"),
    (dict(shard_index=3, shard_count=3), "shard_index"),
    (dict(shard_index=-1, shard_count=2), "shard_index"),
    (dict(excludes=[""]), "excludes"),
])
def test_bad_options_name_the_option(tmp_path, kwargs, option):
    with pytest.raises(ScanError, match="^%s: " % option):
        scan([str(tmp_path)], **kwargs)


def test_missing_root_names_the_path(tmp_path):
    with pytest.raises(ScanError, match="paths: .*/nope does not exist"):
        scan([str(tmp_path / "nope")])


# ------------------------------------------------------- du and find agree

@pytest.mark.parametrize("workers", [1, 2])
def test_totals_match_du(tree, workers):
    result = scan([tree], workers=workers)
    totals = result["totals"]
    assert totals["apparent_bytes"] == du_bytes(tree, apparent=True)
    assert totals["allocated_bytes"] == du_bytes(tree, apparent=False)
    assert totals["errors"] == 0
    json.dumps(result)  # everything serialisable, odd names included


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


def test_symlink_root_is_not_followed(tree, tmp_path):
    link = str(tmp_path / "root-link")
    os.symlink(tree, link)
    result = scan([link])
    assert result["totals"]["symlinks"] == 1 and result["totals"]["files"] == 0
    assert result["totals"]["apparent_bytes"] == du_bytes(link, apparent=True)


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


def test_odd_names_listed_and_serialisable(tree):
    result = scan([tree], top=100)
    assert result["totals"]["non_utf8_names"] == 1
    assert result["non_utf8_names"] == [os.path.join(tree, "bob", "caf\\xe9-latin1.txt")]
    paths = [f["path"] for u in result["users"] for f in u["largest"]]
    assert os.path.join(tree, "alice", "new\nline.txt") in paths
    assert os.path.join(tree, "bob", "caf\\xe9-latin1.txt") in paths
    json.dumps(result, ensure_ascii=False).encode("utf-8")


def test_directories_match_du_max_depth(tree):
    for depth in (0, 1, 3):
        result = scan([tree], depth=depth)
        dirs = _by(result, "directories", "path")
        for apparent, key in ((True, "apparent_bytes"), (False, "allocated_bytes")):
            expected = du_depth(tree, depth, apparent)
            assert sorted(dirs) == sorted(expected)
            # du puts a multiply linked file in the directory it meets first;
            # we put it in its smallest path. Compare where no link is shared.
            for path in (tree, os.path.join(tree, "alice"), os.path.join(tree, "ghost")):
                if path in expected:
                    assert dirs[path][key] == expected[path], (depth, path, key)
        assert all(d["depth"] <= depth for d in result["directories"])
    deep = _by(scan([tree], depth=3), "directories", "path")[os.path.join(tree, "shared", "deep", "deeper")]
    assert deep["depth"] == 3 and deep["files"] == 1  # deepfile; l3 counts in bob/ (smallest path)


def test_excludes(tree):
    whole = scan([tree])
    by_name = scan([tree], excludes=["*.log", "bob"])
    users = _by(by_name, "users", "uid")
    assert users[1001]["files"] == _by(whole, "users", "uid")[1001]["files"] - 2
    assert users[1002]["files"] == 1  # deeper/deepfile only
    by_path = scan([tree], excludes=[os.path.join(tree, "shared") + "/*"])
    assert os.path.join(tree, "shared") in _by(by_path, "directories", "path")
    assert _by(by_path, "directories", "path")[os.path.join(tree, "shared")]["dirs"] == 1


def test_nested_roots_are_scanned_once(tree):
    now = time.time()
    once = _comparable(scan([tree], now=now))
    twice = _comparable(scan([tree, os.path.join(tree, "alice"), tree], now=now))
    assert twice == once


def test_file_root(tree):
    path = os.path.join(tree, "alice", "big.bin")
    result = scan([path])
    assert result["totals"]["files"] == 1 and result["totals"]["apparent_bytes"] == 300000


def test_python_stdlib_matches_du():
    """A real tree nobody here wrote."""
    stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"])
    result = scan([stdlib], workers=2)
    assert result["totals"]["apparent_bytes"] == du_bytes(stdlib, apparent=True)
    assert result["totals"]["allocated_bytes"] == du_bytes(stdlib, apparent=False)
    for uid, counter in find_sums(stdlib).items():
        user = _by(result, "users", "uid")[uid]
        assert dict((k, user[k]) for k in COUNTS) == dict((k, counter[k]) for k in COUNTS)


# ------------------------------------------------------ workers and shards

def test_workers_agree(tmp_path, monkeypatch):
    root = _big_tree(tmp_path)
    # Look at the "a worker is idle" flag after every entry, so the tasks are
    # split and handed round as often as possible.
    monkeypatch.setattr(_scanner, "_CHECK_EVERY", 1)
    monkeypatch.setattr(_scanner, "_PRESCAN", 1)
    now = time.time()  # the same clock for every scan, so ages compare
    single = scan([root], workers=1, depth=2, top=5, now=now)
    assert single["totals"]["apparent_bytes"] == du_bytes(root, apparent=True)
    assert single["totals"]["allocated_bytes"] == du_bytes(root, apparent=False)
    assert single["totals"]["hardlinked_inodes"] == 1 + 40
    for workers in (2, 3, 5):
        assert _comparable(scan([root], workers=workers, depth=2, top=5, now=now)) == _comparable(single), workers


@pytest.mark.parametrize("shard_count", [2, 3, 7])
def test_shards_add_up_exactly(tree, shard_count, monkeypatch):
    root = os.path.dirname(tree)
    _big_tree(root, dirs=10, files=20)
    monkeypatch.setattr(_scanner, "_PRESCAN", 50)  # and the workers take over
    whole = scan([root], depth=2, top=3, workers=2)
    parts = [scan([root], depth=2, top=3, workers=2, shard_index=i, shard_count=shard_count)
             for i in range(shard_count)]
    assert all(part["totals"]["entries"] < whole["totals"]["entries"] for part in parts)
    for section, key in (("users", "uid"), ("groups", "gid"), ("directories", "path")):
        summed = {}
        for part in parts:
            for item in part[section]:
                have = summed.setdefault(item[key], dict.fromkeys(_scanner.COUNTERS, 0))
                for counter in _scanner.COUNTERS:
                    have[counter] += item[counter]
        expected = dict((item[key], dict((c, item[c]) for c in _scanner.COUNTERS)) for item in whole[section])
        assert summed == expected, section
    for counter in _scanner.COUNTERS + ("entries", "hardlinked_inodes"):
        assert sum(part["totals"][counter] for part in parts) == whole["totals"][counter], counter
    # The top lists of the shards together hold the top list of the whole.
    for user in whole["users"]:
        merged = [f for part in parts for u in part["users"] if u["uid"] == user["uid"] for f in u["largest"]]
        merged.sort(key=lambda f: (f["bytes"], f["path"]), reverse=True)
        assert [f["bytes"] for f in merged[:3]] == [f["bytes"] for f in user["largest"]]


# --------------------------------------------------- mounts and errors

@pytest.fixture(name="mounted")
def mounted_fixture(tree):
    point = os.path.join(tree, "alice", "mnt")
    os.mkdir(point)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,noatime", "tmpfs", point], check=False).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        with open(os.path.join(point, "on-tmpfs.bin"), "wb") as handle:
            handle.write(b"t" * 100000)
        yield point
    finally:
        subprocess.run(["umount", point], check=True)


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


def test_same_directory_by_two_spellings_is_scanned_once(tree):
    now = time.time()
    # the tree again, through a symlinked parent (a symlink root itself would
    # be counted as a symlink, never followed)
    link = os.path.join(os.path.dirname(os.path.dirname(tree)), "parent-link")
    os.symlink(os.path.dirname(tree), link)
    try:
        once = _comparable(scan([tree], now=now))
        twice = _comparable(scan([tree, os.path.join(link, os.path.basename(tree))], now=now))
        assert twice["totals"] == once["totals"]
    finally:
        os.unlink(link)


def test_atime_warnings(tree, mounted):
    result = scan([mounted], age_stamp="atime")
    assert len(result["warnings"]) == 1 and "noatime" in result["warnings"][0] and mounted in result["warnings"][0]
    assert scan([mounted], age_stamp="mtime")["warnings"] == []
    os.makedirs(os.path.join(tree, "strict"))
    point = os.path.join(tree, "strict")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,relatime", "tmpfs", point], check=True)
    try:
        assert "relatime" in scan([point], age_stamp="atime")["warnings"][0]
        subprocess.run(["mount", "-o", "remount,strictatime", point], check=True)
        assert scan([point], age_stamp="atime")["warnings"] == []
    finally:
        subprocess.run(["umount", point], check=True)


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
        assert result["errors"] == [{"path": private, "error": "unreadable: Permission denied"}]
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


def test_vanished_directory_reported(tree):
    """A directory listed by its parent and removed before it is read: the
    scanner is handed the stack it would have had at that moment."""
    gone = os.path.join(tree, "gone")
    cfg = {"depth": 1, "one_file_system": True, "top": 3, "cutoff": 0, "stamp_index": 8,
           "shard_count": 1, "shard_index": 0, "excludes": (None, None)}
    partial = _scanner._Partial()  # pylint: disable=protected-access
    dev = os.lstat(tree).st_dev
    left = _scanner._scan_stack([(os.path.join(tree, "alice"), 1, tree, dev), (gone, 1, tree, dev)], cfg, partial)
    assert left == []
    assert partial.vanished_count == 1 and partial.vanished == [gone]
    assert partial.examined > 0  # alice was still scanned


def test_tree_removed_during_scan_is_not_fatal(tmp_path):
    """Race a real rm -rf against the scan: whatever the interleaving, no
    exception, and every entry is either counted or reported vanished."""
    root = _big_tree(tmp_path, dirs=30, files=100)
    for _attempt in range(3):
        remover = subprocess.Popen(["rm", "-rf", root])
        try:
            result = scan([root], workers=2)
        except ScanError:
            result = None  # the root itself was already gone: reported as bad input
        remover.wait()
        if result is not None:
            totals = result["totals"]
            assert totals["errors"] == totals["vanished"] + totals["unreadable"] + len(
                [e for e in result["errors"] if not e["error"].startswith(("vanished", "unreadable"))])
            assert totals["files"] <= 30 * 100 + 30
        root = _big_tree(tmp_path / str(_attempt), dirs=30, files=100)


def test_killed_worker_is_an_error_not_a_hang(tmp_path, monkeypatch):
    """A worker killed from outside (as the OOM killer would) makes the scan
    fail with a clear message instead of waiting forever for its result."""
    root = _big_tree(tmp_path, dirs=4, files=10)
    monkeypatch.setattr(_scanner, "_PRESCAN", 1)
    monkeypatch.setattr(_scanner, "_WATCH_SECONDS", 0.2)
    real_task = _scanner._worker_task  # pylint: disable=protected-access

    def dying_task(stack):
        if any(path.endswith("/d02") for path, _depth, _bucket, _dev in stack):
            os.kill(os.getpid(), 9)
        return real_task(stack)

    # Tasks reach the workers by name: let the name find the dying one.
    dying_task.__module__ = _scanner.__name__
    dying_task.__qualname__ = dying_task.__name__ = "_worker_task"
    monkeypatch.setattr(_scanner, "_worker_task", dying_task)
    with pytest.raises(ScanError, match="scan worker process .* died"):
        scan([root], workers=2)
