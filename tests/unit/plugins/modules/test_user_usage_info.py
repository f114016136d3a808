# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The user_usage_info module's main(), in-process (tests/system/scan runs it for real by ansible)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.datasteward.storage.plugins.modules import user_usage_info
from ansible_collections.datasteward.storage.tests.unit.utils.scan_tree import build_tree, du_bytes


@pytest.fixture(name="tree")
def tree_fixture(tmp_path):
    return build_tree(tmp_path, owners=False)


def test_scan_in_check_mode_unchanged(run_module, tree):
    result = run_module(user_usage_info, {"paths": [tree], "workers": 2}, check_mode=True)
    assert result["changed"] is False
    assert set(result) == {
        "changed",
        "users",
        "groups",
        "directories",
        "totals",
        "errors",
        "non_utf8_names",
        "shard",
        "users_omitted",
        "groups_omitted",
        "roots",
        "partial",
        "reading",
    }
    assert result["totals"]["allocated_bytes"] == du_bytes(tree, apparent=False)
    assert "warnings" not in result
    json.dumps(result)


@pytest.mark.parametrize(
    "args, message",
    [
        (dict(age="soon"), "age: cannot parse 'soon'"),
        (dict(shard_index=2, shard_count=2), "shard_index: must be between 0 and shard_count - 1 (1), got 2"),
        (dict(workers=0), "workers: must be 1 or more, got 0"),
        (dict(top=-3), "top: must be 0 or more, got -3"),
    ],
)
def test_bad_options_fail_naming_the_option(run_module, tmp_path, args, message):
    result = run_module(user_usage_info, dict(args, paths=[str(tmp_path)]), failed=True)
    assert result["msg"].startswith(message)


def test_missing_path_fails_naming_it(run_module, tmp_path):
    result = run_module(user_usage_info, {"paths": [str(tmp_path / "gone")]}, failed=True)
    assert result["msg"] == "paths: %s does not exist" % (tmp_path / "gone")
