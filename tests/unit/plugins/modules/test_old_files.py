# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The old_files module's main(), in-process (the engine: module_utils/test_old_files.py;
mounts, full disks, SIGKILL: tests/system/old_files)."""

from __future__ import annotations

import json
import os
import time

import pytest

from ansible_collections.datasteward.storage.plugins.modules import old_files

OLD = time.time() - 200 * 86400


@pytest.fixture(name="tree")
def tree_fixture(tmp_path):
    root = tmp_path / "scratch"
    (root / "a").mkdir(parents=True)
    for name in ("one", "two"):
        (root / "a" / name).write_bytes(b"x" * 100)
        os.utime(root / "a" / name, (OLD, OLD))
    (root / "fresh").write_bytes(b"new")
    (tmp_path / "dest").mkdir()
    return root


def args(tree, **kwargs):
    return dict(dict(path=str(tree), age="90d", manifest_dir=str(tree) + ".manifests", host_folder="node1"), **kwargs)


def test_reported_is_never_changed(run_module, tree):
    result = run_module(old_files, args(tree))
    assert result["changed"] is False and result["totals"]["files"] == 2
    assert set(result) == {"changed", "files", "users", "totals", "skipped", "errors", "dirs_removed", "temps_removed", "manifest", "dest_root", "msg"}
    json.dumps(result)


def test_check_apply_reapply_check(run_module, tree):
    relocate = args(tree, state="relocated", dest=str(tree.parent / "dest"), remove_empty_dirs=True)
    planned = run_module(old_files, dict(relocate, _ansible_diff=True), check_mode=True)
    assert planned["changed"] is True and len(planned["diff"]["before"].splitlines()) == 2
    assert (tree / "a/one").exists()
    done = run_module(old_files, relocate)
    assert done["changed"] is True and [f["path"] for f in done["files"]] == [f["path"] for f in planned["files"]]
    assert done["dirs_removed"] == [str(tree / "a")] and os.path.exists(done["manifest"])
    assert (tree.parent / "dest/node1/a/one").exists()
    assert run_module(old_files, relocate)["changed"] is False
    assert run_module(old_files, relocate, check_mode=True)["changed"] is False
    back = run_module(old_files, args(tree, state="restored", manifest=done["manifest"]))
    assert back["changed"] is True and (tree / "a/one").exists() and (tree / "a/two").exists()
    assert run_module(old_files, args(tree, state="restored", manifest=done["manifest"]))["changed"] is False


@pytest.mark.parametrize(
    "extra, message",
    [
        (dict(state="relocated"), "state is relocated but all of the following are missing: dest"),
        (dict(state="restored"), "state is restored but all of the following are missing: manifest"),
        (dict(age="soon"), "age: cannot parse 'soon'"),
        (dict(min_size="huge"), "min_size: "),
        (dict(max_files=-1, state="absent"), "max_files: must not be negative"),
        (dict(owners=["no_such_user_here"]), "owners: no user named 'no_such_user_here'"),
        (dict(state="relocated", dest="{tree}/a"), "dest: {tree}/a is inside path {tree}"),
        (dict(path="{tree}/missing"), "path: cannot read {tree}/missing"),
        (dict(state="restored", manifest="{tree}/none.jsonl"), "manifest: cannot read {tree}/none.jsonl"),
    ],
)
def test_bad_options_fail_naming_the_option(run_module, tree, extra, message):
    extra = {key: value.format(tree=tree) if isinstance(value, str) else value for key, value in extra.items()}
    result = run_module(old_files, args(tree, **extra), failed=True)
    assert result["msg"].startswith(message.format(tree=tree)), result["msg"]
