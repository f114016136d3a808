# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The user_usage_info module's main(), in-process and run for real by ansible."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from ansible_collections.datasteward.storage.plugins.modules import user_usage_info

from tests.utils.scan_tree import build_tree, du_bytes

REPO = pathlib.Path(__file__).resolve().parents[4]


@pytest.fixture(name="tree")
def tree_fixture(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("building trees with several owners needs root")
    return build_tree(tmp_path)


def test_scan_in_check_mode_unchanged(run_module, tree):
    result = run_module(user_usage_info, {"paths": [tree], "workers": 2}, check_mode=True)
    assert result["changed"] is False
    assert set(result) == {"changed", "users", "groups", "directories", "totals", "errors", "non_utf8_names", "shard"}
    assert result["totals"]["allocated_bytes"] == du_bytes(tree, apparent=False)
    assert "warnings" not in result
    json.dumps(result)


@pytest.mark.parametrize("args, message", [
    (dict(age="soon"), "age: cannot parse 'soon'"),
    (dict(shard_index=2, shard_count=2), "shard_index: must be between 0 and shard_count - 1 (1), got 2"),
    (dict(workers=0), "workers: must be 1 or more, got 0"),
    (dict(top=-3), "top: must be 0 or more, got -3"),
])
def test_bad_options_fail_naming_the_option(run_module, tmp_path, args, message):
    result = run_module(user_usage_info, dict(args, paths=[str(tmp_path)]), failed=True)
    assert result["msg"].startswith(message)


def test_missing_path_fails_naming_it(run_module, tmp_path):
    result = run_module(user_usage_info, {"paths": [str(tmp_path / "gone")]}, failed=True)
    assert result["msg"] == "paths: %s does not exist" % (tmp_path / "gone")


def test_atime_warning_is_an_ansible_warning(run_module, tmp_path):
    point = tmp_path / "mnt"
    point.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,noatime", "tmpfs", str(point)], check=False).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        result = run_module(user_usage_info, {"paths": [str(point)], "age_stamp": "atime"})
    finally:
        subprocess.run(["umount", str(point)], check=True)
    assert len(result["warnings"]) == 1 and "noatime" in result["warnings"][0]


def test_real_ansible_run(tree):
    """The module as ansible runs it: AnsiballZ, module_utils shipped along, JSON out."""
    env = dict(os.environ, ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_NOCOLOR="1")
    args = json.dumps({"paths": [tree], "top": 2, "depth": 1, "workers": 2, "age": "90d"})
    out = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible"), "localhost", "-m",
         "datasteward.storage.user_usage_info", "-a", args],
        cwd=str(REPO), env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    head, _sep, body = out.stdout.partition(" => ")
    assert head.strip() == "localhost | SUCCESS", out.stdout
    result = json.loads(body)
    assert result["changed"] is False
    assert result["totals"]["apparent_bytes"] == du_bytes(tree, apparent=True)
    assert result["non_utf8_names"] == [os.path.join(tree, "bob", "caf\\xe9-latin1.txt")]
    assert {u["uid"] for u in result["users"]} >= {0, 1001, 1002}
