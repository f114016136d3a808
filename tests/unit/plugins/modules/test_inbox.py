# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The inbox module: argspec, errors as fail_json, check mode, a real process."""

from __future__ import annotations

import os

from ansible_collections.datasteward.storage.plugins.modules import inbox
from ansible_collections.datasteward.storage.tests.unit.utils.inbox_samples import Layout
from ansible_collections.datasteward.storage.tests.unit.utils.module_runner import run_module_process


def args_for(layout, **extra):
    args = {
        "path": layout.inbox,
        "dest": os.path.join(layout.study, "{study}", "raw"),
        "dest_root": layout.study,
        "allowed": [{"users": [str(os.getuid())]}],
        "settle_seconds": 0,
    }
    args.update(extra)
    return args


def test_delivers_then_reports_no_change(tmp_path, run_module):
    layout = Layout(tmp_path)
    layout.upload("foo-1", {"a": b"1"})
    plan = run_module(inbox, args_for(layout), check_mode=True)
    assert plan["changed"] and layout.listing("inbox") == ["foo-1"]
    result = run_module(inbox, args_for(layout))
    assert result["changed"] and [p["name"] for p in result["processed"]] == ["foo-1"]
    again = run_module(inbox, args_for(layout))
    assert not again["changed"]


def test_bad_option_fails_naming_it(tmp_path, run_module):
    layout = Layout(tmp_path)
    result = run_module(inbox, args_for(layout, name_pattern="(x"), failed=True)
    assert "name_pattern" in result["msg"]
    result = run_module(inbox, args_for(layout, dest_root=str(tmp_path / "nope")), failed=True)
    assert "dest_root" in result["msg"] and result["path"] == str(tmp_path / "nope")


def test_as_a_process_with_an_undecodable_name(tmp_path):
    layout = Layout(tmp_path)
    layout.upload(b"foo-2", {b"r\xff": b"x"})
    result = run_module_process(tmp_path, "inbox", args_for(layout))
    assert result["processed"][0]["versions"][0]["path"].endswith("raw/r\\xff")
