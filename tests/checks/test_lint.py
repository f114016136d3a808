# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ansible-lint (production profile), the changelog fragments, and the build."""

from __future__ import annotations

import tarfile

from tests.checks.conftest import BIN, run_tool


def test_lint(collection_copy):
    # the copy sits in .build/ansible_collections/datasteward/storage
    run_tool([BIN / "ansible-lint", "--profile", "production", "--offline", "--nocolor"],
             cwd=collection_copy, timeout=600, env={"ANSIBLE_COLLECTIONS_PATH": str(collection_copy.parents[2])})


def test_changelog_fragments(collection_copy):
    run_tool([BIN / "antsibull-changelog", "lint"], cwd=collection_copy)


def test_collection_builds_without_local_state(collection_copy, tmp_path):
    run_tool([BIN / "ansible-galaxy", "collection", "build", "--output-path", tmp_path], cwd=collection_copy)
    (artifact,) = tmp_path.glob("datasteward-storage-*.tar.gz")
    with tarfile.open(artifact) as tar:
        names = tar.getnames()
    assert "plugins/modules/disk_usage.py" in names
    leaked = [n for n in names if n.split("/")[0] in (".venv", ".collections", ".build", ".ci", "inventory")]
    assert not leaked, "build_ignore lets local state into the artifact: %s" % leaked[:5]
