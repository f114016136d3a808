# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The walker as user nobody: real permission errors are issues, the rest
of the tree is still walked (root ignores permission bits)."""

from __future__ import annotations

import os
import shutil

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._fs.walk import walk
from ansible_collections.datasteward.storage.tests.system.utils.as_nobody import run_as_nobody
from ansible_collections.datasteward.storage.tests.unit.utils.scan_tree import world_readable_base


def _walk_as_nobody(root):
    def run():
        with walk(root) as walker:
            paths = sorted(os.fsdecode(entry.relpath) for entry in walker)
        return {"paths": paths, "issues": [[os.fsdecode(i.relpath), i.kind, i.message] for i in walker.issues]}

    return run_as_nobody(run)


def test_unreadable_and_unsearchable_directories_are_issues_not_fatal():
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to user nobody")
    base = world_readable_base()
    try:
        root = os.path.join(base, "tree")
        for name, mode in (("private", 0o700), ("listonly", 0o744), ("open", 0o755)):
            os.makedirs(os.path.join(root, name))
            with open(os.path.join(root, name, "file"), "wb") as handle:
                handle.write(b"x")
            os.chmod(os.path.join(root, name), mode)
        result = _walk_as_nobody(root)
        assert result["paths"] == ["", "listonly", "open", "open/file", "private"]
        assert sorted((path, kind) for path, kind, _message in result["issues"]) == [("listonly", "unreadable"), ("private", "unreadable")]
        messages = dict((path, message) for path, _kind, message in result["issues"])
        assert messages["private"] == "cannot be read: Permission denied"
        assert messages["listonly"] == "its entries cannot be examined: Permission denied"
    finally:
        shutil.rmtree(base)
