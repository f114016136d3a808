# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The disk_usage module's main(): argument handling, results and errors."""

from __future__ import annotations

from ansible_collections.datasteward.storage.plugins.modules import disk_usage


def test_default_reports_root_unchanged(run_module):
    result = run_module(disk_usage)
    assert result["changed"] is False
    assert "/" in [fs["mount"] for fs in result["filesystems"]]
    assert set(result) >= {"filesystems", "status", "alerts"}


def test_path_alias_and_check_mode(run_module, tmp_path):
    result = run_module(disk_usage, {"path": [str(tmp_path)]}, check_mode=True)
    (fs,) = result["filesystems"]
    assert fs["path"] == str(tmp_path)
    assert result["changed"] is False


def test_missing_path_fails_naming_it(run_module, tmp_path):
    result = run_module(disk_usage, {"paths": [str(tmp_path / "gone")]}, failed=True)
    assert result["msg"] == "paths: %s does not exist" % (tmp_path / "gone")


def test_bad_timeout_fails_naming_it(run_module):
    result = run_module(disk_usage, {"timeout": 0}, failed=True)
    assert result["msg"] == "timeout must be greater than 0, got 0.0"


def test_fstype_filter(run_module):
    result = run_module(disk_usage, {"fstypes": ["no-such-fstype"]})
    assert result["filesystems"] == []
    assert result["status"] == "ok"
