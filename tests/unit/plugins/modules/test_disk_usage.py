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


def test_path_and_check_mode(run_module, tmp_path):
    result = run_module(disk_usage, {"path": str(tmp_path)}, check_mode=True)
    (fs,) = result["filesystems"]
    assert fs["path"] == str(tmp_path)
    assert result["changed"] is False


def test_path_with_a_comma_is_one_path(run_module, tmp_path):
    """path is its own option (type path), not an alias of the list option paths that a comma would split."""
    odd = tmp_path / "run 7,night 2"
    odd.mkdir()
    result = run_module(disk_usage, {"path": str(odd)})
    assert [fs["path"] for fs in result["filesystems"]] == [str(odd)]
    # in a list it is one element too
    result = run_module(disk_usage, {"paths": [str(odd), "/"]})
    assert [fs["path"] for fs in result["filesystems"]] == [str(odd), "/"]
    # a missing one is named by the option that gave it
    result = run_module(disk_usage, {"path": str(odd) + "-gone"}, failed=True)
    assert result["msg"] == "path: %s-gone does not exist" % odd


def test_path_and_paths_are_mutually_exclusive(run_module, tmp_path):
    result = run_module(disk_usage, {"path": str(tmp_path), "paths": ["/"]}, failed=True)
    assert result["msg"] == "parameters are mutually exclusive: path|paths"


def test_missing_path_fails_naming_it(run_module, tmp_path):
    result = run_module(disk_usage, {"paths": [str(tmp_path / "gone")]}, failed=True)
    assert result["msg"] == "paths: %s does not exist" % (tmp_path / "gone")


def test_bad_timeout_fails_naming_it(run_module):
    result = run_module(disk_usage, {"timeout": 0}, failed=True)
    assert result["msg"] == "timeout must be greater than 0, got 0.0"


def test_fstype_filter_that_selects_nothing_fails_naming_it(run_module):
    """A typo in an alerting play must not pass as status ok with nothing checked."""
    mounted = sorted(set(fs["fstype"] for fs in run_module(disk_usage)["filesystems"]))
    result = run_module(disk_usage, {"fstypes": ["nosuchfs"]}, failed=True)
    assert result["msg"] == "fstypes: no mounted file system has type nosuchfs (types mounted here: %s)" % ", ".join(mounted)
    result = run_module(disk_usage, {"exclude_fstypes": mounted}, failed=True)
    assert result["msg"].startswith("exclude_fstypes: %s excludes every mounted file system" % ", ".join(mounted))
    result = run_module(disk_usage, {"path": "/", "fstypes": ["nosuchfs"]}, failed=True)
    assert result["msg"].startswith("fstypes: none of the file systems holding path has type nosuchfs (their types: ")


def test_fstype_filter_selects(run_module):
    root_type = [fs["fstype"] for fs in run_module(disk_usage, {"path": "/"})["filesystems"]]
    result = run_module(disk_usage, {"fstypes": root_type + ["nosuchfs"]})
    assert result["filesystems"] and set(fs["fstype"] for fs in result["filesystems"]) == set(root_type)
