# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every integration target under tests/integration/targets, one test each,
through ansible-test on this machine (targets need root and are destructive:
they mount file systems and write outside the tree)."""

from __future__ import annotations

import pytest

from tests.checks.conftest import BIN, REPO, run_tool

TARGETS = (
    sorted(
        path.name
        for path in (REPO / "tests" / "integration" / "targets").iterdir()
        if path.is_dir() and not path.name.startswith("setup_") and "hidden" not in (path / "aliases").read_text(encoding="utf-8").split()
    )
    if (REPO / "tests" / "integration" / "targets").is_dir()
    else []
)


@pytest.mark.parametrize("target", TARGETS)
def test_integration(collection_copy, target):
    run_tool(
        [BIN / "ansible-test", "integration", "--color", "no", "--local", "--python", "3.11", "--allow-destructive", "--allow-root", target],
        cwd=collection_copy,
        timeout=900,
    )
