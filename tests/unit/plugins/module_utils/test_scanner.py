# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The scanner engine on real trees, checked against GNU du and find (no root:
trees of one owner; tests/system/scan has several owners, mounts and nobody)."""

from __future__ import annotations

import json
import os
import subprocess
import sysconfig
import time

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._fs import usage as _scanner
from ansible_collections.datasteward.storage.plugins.module_utils._fs.usage import ScanError, parse_age, scan
from ansible_collections.datasteward.storage.tests.unit.utils.deep_tree import deep_tree, remove_tree
from ansible_collections.datasteward.storage.tests.unit.utils.scan_tree import COUNTS, build_tree, du_bytes, du_depth, find_sums
from ansible_collections.datasteward.storage.tests.unit.utils.scan_tree import big_tree as _big_tree
from ansible_collections.datasteward.storage.tests.unit.utils.scan_tree import by_key as _by


@pytest.fixture(name="tree")
def tree_fixture(tmp_path):
    """The test tree owned by whoever runs the test: per-owner sums over
    several owners are in tests/system/scan (they need root to chown)."""
    return build_tree(tmp_path, owners=False)


def _comparable(result):
    """The result without timings, for comparing scans with each other."""
    result = json.loads(json.dumps(result))
    for key in ("seconds", "entries_per_second", "examined", "duplicate_links"):
        result["totals"].pop(key)
    result.pop("shard")
    result.pop("roots")
    return result


# ----------------------------------------------------------------- options


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("90d", 90 * 86400),
        ("12h", 43200),
        ("2w", 14 * 86400),
        ("30m", 1800),
        ("45s", 45),
        ("3600", 3600),
        (" 7D ", 7 * 86400),
        (0, 0),
        (120, 120),
    ],
)
def test_parse_age(text, seconds):
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["3x", "d", "-5", "1.5d", "90 days"])
def test_parse_age_rejects(text):
    with pytest.raises(ScanError, match="^age: "):
        parse_age(text)


@pytest.mark.parametrize(
    "kwargs, option",
    [
        (dict(age_stamp="birth"), "age_stamp"),
        (dict(top=-1), "top"),
        (dict(depth=-1), "depth"),
        (dict(workers=0), "workers"),
        (dict(shard_count=0), "shard_count"),
        (dict(shard_index=3, shard_count=3), "shard_index"),
        (dict(shard_index=-1, shard_count=2), "shard_index"),
        (dict(excludes=[""]), "excludes"),
    ],
)
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


def test_symlink_root_is_not_followed(tree, tmp_path):
    link = str(tmp_path / "root-link")
    os.symlink(tree, link)
    result = scan([link])
    assert result["totals"]["symlinks"] == 1 and result["totals"]["files"] == 0
    assert result["totals"]["apparent_bytes"] == du_bytes(link, apparent=True)


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
    parts = [scan([root], depth=2, top=3, workers=2, shard_index=i, shard_count=shard_count) for i in range(shard_count)]
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


# ------------------------------------------------------------- errors


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


def test_vanished_directory_reported(tree):
    """A directory handed out as a task (listed by its parent) and removed
    before it is read: reported, and the other task still scanned."""
    roots = _scanner.resolve_roots([tree])
    cfg = _scanner._Config(1, True, 3, 0, 8, 0, 1, None, roots)  # pylint: disable=protected-access
    partial = _scanner._Partial()  # pylint: disable=protected-access
    alice = os.lstat(os.path.join(tree, "alice"))
    gone = os.path.join(tree, "gone")
    os.mkdir(gone)
    was = os.lstat(gone)
    os.rmdir(gone)
    tasks = [(0, (b"alice", alice.st_dev, alice.st_ino, 1), None), (0, (b"gone", was.st_dev, was.st_ino, 1), None)]
    assert _scanner._scan_tasks(tasks, cfg, partial) == []  # pylint: disable=protected-access
    assert partial.vanished_count == 1 and partial.vanished == [(0, b"gone")]
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
                [e for e in result["errors"] if not e["error"].startswith(("vanished", "unreadable"))]
            )
            assert totals["files"] <= 30 * 100 + 30
        root = _big_tree(tmp_path / str(_attempt), dirs=30, files=100)


# ------------------------------------------- depth, roots, bounds (issue 8)


@pytest.fixture(name="deep")
def deep_fixture(tmp_path):
    root = os.path.join(str(tmp_path), "deep")
    yield root
    remove_tree(root)


@pytest.mark.parametrize("levels, name", [(3000, b"d"), (45, b"n" * 200)])
def test_tree_deeper_than_path_max_matches_du(deep, levels, name):
    """3,000 levels, and a path of 9,000 bytes: every entry is counted (the
    scanner used to open directories by their full path and lose them)."""
    entries = deep_tree(deep, levels, name=name)
    for workers in (1, 2):
        result = scan([deep], workers=workers, depth=2)
        totals = result["totals"]
        assert totals["errors"] == 0 and result["errors"] == []
        assert totals["entries"] == entries + 1
        assert totals["apparent_bytes"] == du_bytes(deep, apparent=True)
        assert totals["allocated_bytes"] == du_bytes(deep, apparent=False)


def test_root_through_a_symlinked_parent_is_counted_once(tmp_path):
    """paths: [t5, t5/link/sub] with link -> real: the second root is inside
    the first (by identity, not by spelling)."""
    t5 = tmp_path / "t5"
    (t5 / "real" / "sub").mkdir(parents=True)
    (t5 / "real" / "sub" / "data").write_bytes(b"x" * 1000000)
    os.symlink("real", str(t5 / "link"))
    result = scan([str(t5), str(t5 / "link" / "sub")], workers=1)
    assert result["totals"]["apparent_bytes"] == du_bytes([str(t5)], apparent=True)
    assert result["totals"]["allocated_bytes"] == du_bytes([str(t5)], apparent=False)
    assert result["roots"][1] == {"path": str(t5 / "link" / "sub"), "real_path": str(t5 / "real" / "sub"), "counted_in": str(t5)}
    paths = [d["path"] for d in result["directories"]]
    assert len(paths) == len(set(paths)) and all(d["depth"] <= 1 for d in result["directories"])


def test_max_owners_bounds_the_lists_not_the_totals(tree):
    whole = scan([tree])
    none = scan([tree], max_owners=0)
    assert none["users"] == [] and none["groups"] == []
    assert none["users_omitted"] == len(whole["users"]) and none["groups_omitted"] == len(whole["groups"])
    assert none["totals"]["allocated_bytes"] == whole["totals"]["allocated_bytes"]
    one = scan([tree], max_owners=1)
    assert one["users"][0]["uid"] == max(whole["users"], key=lambda u: u["allocated_bytes"])["uid"]
    assert one["users_omitted"] == len(whole["users"]) - 1
    sizes = [u["allocated_bytes"] for u in whole["users"]]
    assert sizes == sorted(sizes, reverse=True)  # largest first


def test_workers_are_clamped_with_a_warning(tree):
    result = scan([tree], workers=10000)
    assert len(result["warnings"]) == 1
    assert result["warnings"][0].startswith("workers: 10000 is more than %d per CPU" % _scanner.WORKERS_PER_CPU)
    assert result["totals"]["apparent_bytes"] == du_bytes(tree, apparent=True)


@pytest.mark.parametrize("workers", [1, 2])
def test_timeout_that_is_not_reached_changes_nothing(tree, workers):
    now = time.time()
    timed = scan([tree], workers=workers, timeout=60, now=now)
    assert timed["partial"] is False and timed["reading"] == []
    assert _comparable(timed) == _comparable(scan([tree], workers=workers, now=now))


def test_bad_timeout_and_max_owners_name_the_option(tmp_path):
    with pytest.raises(ScanError, match="^timeout: "):
        scan([str(tmp_path)], timeout=0)
    with pytest.raises(ScanError, match="^max_owners: "):
        scan([str(tmp_path)], max_owners=-1)


def test_big_directory_is_split_among_the_workers(tmp_path, monkeypatch):
    """A directory past BIG_DIR_BYTES is scanned in slices by inode number,
    one per worker: the same totals as one process, every entry once."""
    root = _big_tree(tmp_path, dirs=3, files=200)
    monkeypatch.setattr(_scanner, "BIG_DIR_BYTES", 1)  # every directory is "big"
    monkeypatch.setattr(_scanner, "_PRESCAN", 1)
    now = time.time()
    single = scan([root], workers=1, depth=2, top=5, now=now)
    for workers in (2, 3):
        assert _comparable(scan([root], workers=workers, depth=2, top=5, now=now)) == _comparable(single), workers
    assert single["totals"]["apparent_bytes"] == du_bytes(root, apparent=True)


@pytest.mark.parametrize("workers", [1, 2])
def test_timeout_reached_between_directories_gives_a_partial_result(tmp_path, workers):
    """No hung mount: the walks stop by themselves at the deadline, nothing
    new is started, and the result says where they stopped."""
    root = _big_tree(tmp_path, dirs=20, files=30)
    result = scan([root], workers=workers, timeout=0.001)
    assert result["partial"] is True
    assert result["reading"] and all(path.startswith(root) for path in result["reading"])
    assert result["totals"]["entries"] < scan([root], workers=1)["totals"]["entries"]
