# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The user_usage_info module where it needs root: atime warnings from a real
noatime tmpfs, and a run by ansible over a tree with several owners."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from ansible_collections.datasteward.storage.plugins.modules import user_usage_info
from ansible_collections.datasteward.storage.tests.unit.utils.scan_tree import build_tree, du_bytes

REPO = pathlib.Path(__file__).resolve().parents[3]


@pytest.fixture(name="tree")
def tree_fixture(tmp_path):
    return build_tree(tmp_path)


def test_atime_warning_is_an_ansible_warning(run_module, tmp_path, mount_tmpfs):
    point = mount_tmpfs(tmp_path / "mnt", "1m", "noatime")
    result = run_module(user_usage_info, {"paths": [str(point)], "age_stamp": "atime"})
    assert len(result["warnings"]) == 1 and "noatime" in result["warnings"][0]


def test_real_ansible_run(tree):
    """The module as ansible runs it: AnsiballZ, module_utils shipped along, JSON out."""
    env = dict(os.environ, ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_NOCOLOR="1")
    args = json.dumps({"paths": [tree], "top": 2, "depth": 1, "workers": 2, "age": "90d"})
    out = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible"), "localhost", "-m", "datasteward.storage.user_usage_info", "-a", args],
        cwd=str(REPO),
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    head, _sep, body = out.stdout.partition(" => ")
    assert head.strip() == "localhost | SUCCESS", out.stdout
    result = json.loads(body)
    assert result["changed"] is False
    assert result["totals"]["apparent_bytes"] == du_bytes(tree, apparent=True)
    assert result["non_utf8_names"] == [os.path.join(tree, "bob", "caf\\xe9-latin1.txt")]
    assert {u["uid"] for u in result["users"]} >= {0, 1001, 1002}
