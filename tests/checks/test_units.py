# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""tests/unit the standard way: `ansible-test units` from a plain
ansible_collections/datasteward/storage tree (the copy in .build, which has no
.collections link and no pytest.ini of ours in effect)."""

from __future__ import annotations

from tests.checks.conftest import BIN, run_tool


def test_ansible_test_units(collection_copy):
    run_tool([BIN / "ansible-test", "units", "--color", "no", "--local", "--python", "3.11"], cwd=collection_copy, timeout=1200)
