# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""user_usage_info where it needs root (issue 8): a real hung FUSE mount
inside the scanned tree (the timeout), and roots on other file systems and
through symlinked parents (roots by identity) against du -s -x -c."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._fs.usage import scan
from ansible_collections.datasteward.storage.plugins.modules import user_usage_info
from ansible_collections.datasteward.storage.tests.system.utils.frozen_fuse import frozen_fuse
from ansible_collections.datasteward.storage.tests.unit.utils.scan_tree import big_tree, du_bytes


@pytest.fixture(name="hung_tree")
def hung_tree_fixture(tmp_path):
    """A tree with a frozen FUSE mount inside it (at ``hung``)."""
    root = big_tree(tmp_path, dirs=6, files=20)
    with open(os.path.join(str(tmp_path), "source-file"), "wb") as handle:
        handle.write(b"x")
    with frozen_fuse(tmp_path / "fuse-source", os.path.join(root, "hung")):
        time.sleep(1.1)  # past FUSE's attribute cache: even an lstat of the mount point blocks now
        yield root


@pytest.mark.parametrize("workers, one_file_system", [(1, True), (2, False)])
def test_hung_mount_inside_the_tree_stops_at_the_timeout(hung_tree, workers, one_file_system):
    started = time.monotonic()
    result = scan([hung_tree], workers=workers, timeout=2, one_file_system=one_file_system)
    elapsed = time.monotonic() - started
    assert elapsed < 10, "the timeout did not hold"
    assert result["partial"] is True
    assert result["reading"] and all(path.startswith(hung_tree) for path in result["reading"])
    assert any(path in (hung_tree, os.path.join(hung_tree, "hung")) for path in result["reading"])
    assert multiprocessing.active_children() == []  # the stuck worker was killed and reaped


def test_module_fails_naming_the_directory_or_returns_partial(hung_tree, run_module):
    failed = run_module(user_usage_info, {"paths": [hung_tree], "timeout": 2}, failed=True)
    assert "did not finish within its timeout of 2 s; still reading: %s" % hung_tree in failed["msg"]
    assert "totals are partial" in failed["msg"] and failed["partial"] is True
    accepted = run_module(user_usage_info, {"paths": [hung_tree], "timeout": 2, "on_timeout": "partial"})
    assert accepted["partial"] is True and accepted["reading"]
    assert any("the totals are partial" in warning for warning in accepted["warnings"])


def test_roots_by_identity_match_du_of_the_distinct_roots(tmp_path, mount_tmpfs):
    """paths spelt through a symlinked parent, a nested root on another file
    system, the same root twice: every byte once, as du -s -x -c counts the
    distinct roots, and every directory listed once at the depths asked for."""
    t5 = tmp_path / "t5"
    (t5 / "real" / "sub").mkdir(parents=True)
    (t5 / "real" / "sub" / "data").write_bytes(b"x" * 1000000)
    os.symlink("real", str(t5 / "link"))
    other = str(mount_tmpfs(t5 / "real" / "mnt", "8m"))
    os.makedirs(os.path.join(other, "inside", "deeper"))
    with open(os.path.join(other, "inside", "deeper", "blob"), "wb") as handle:
        handle.write(b"y" * 300000)
    paths = [str(t5), str(t5 / "link" / "sub"), str(t5 / "link" / "mnt"), str(t5) + "/"]
    result = scan(paths, depth=1)
    distinct = [str(t5), other]
    assert result["totals"]["apparent_bytes"] == du_bytes(distinct, apparent=True)
    assert result["totals"]["allocated_bytes"] == du_bytes(distinct, apparent=False)
    listed = [(d["path"], d["depth"]) for d in result["directories"]]
    assert len(listed) == len(set(p for p, _d in listed)), listed
    assert all(depth <= 1 for _p, depth in listed)
    depth_of = dict(listed)
    assert depth_of[str(t5 / "link" / "mnt")] == 0 and depth_of[str(t5 / "link" / "mnt" / "inside")] == 1
    assert depth_of[str(t5)] == 0 and str(t5 / "real" / "mnt") not in depth_of
    counted_in = [root["counted_in"] for root in result["roots"]]
    assert counted_in == [str(t5), str(t5), str(t5 / "link" / "mnt"), str(t5)]
