# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ansible-lint (production profile) and the changelog fragments (the build: test_release.py)."""

from __future__ import annotations

from tests.checks.conftest import BIN, run_tool


def test_lint(collection_copy):
    # the copy sits in .build/ansible_collections/datasteward/storage
    run_tool(
        [BIN / "ansible-lint", "--profile", "production", "--offline", "--nocolor"],
        cwd=collection_copy,
        timeout=600,
        env={"ANSIBLE_COLLECTIONS_PATH": str(collection_copy.parents[2])},
    )


def test_changelog_fragments(collection_copy):
    run_tool([BIN / "antsibull-changelog", "lint"], cwd=collection_copy)
