# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Python lint and format with ruff (settings in ruff.toml) on plugins/,
tests/ and benchmarks/.

The lint (pyflakes, pycodestyle), the import order (isort rules) and the
formatter's layout all fail on a finding; `make format` applies the last two.
FORMAT_ENFORCED = False turns the layout into an expected failure that names
how many files are left (for a one-time reformat while branches are in flight)."""

from __future__ import annotations

import subprocess

import pytest

from tests.checks.conftest import BIN, REPO, run_tool

PATHS = ["plugins", "tests", "benchmarks"]
FORMAT_ENFORCED = True
# The layout checks: import order (isort rules) and the formatter.
LAYOUT = [
    ["check", "--no-cache", "--output-format", "concise", "--select", "I"],
    ["format", "--no-cache", "--check", "--output-format", "concise"],
]


def test_ruff_lint():
    run_tool([BIN / "ruff", "check", "--no-cache", "--output-format", "concise"] + PATHS, cwd=REPO, timeout=300)


def test_ruff_layout():
    if FORMAT_ENFORCED:
        for args in LAYOUT:
            run_tool([BIN / "ruff"] + args + PATHS, cwd=REPO, timeout=300)
        return
    pending = set()
    for args in LAYOUT:
        proc = subprocess.run([str(BIN / "ruff")] + args + PATHS, cwd=REPO, capture_output=True, encoding="utf-8", errors="replace", timeout=300, check=False)
        found = [
            line.split(":", 1)[0]
            for line in proc.stdout.splitlines()
            if line.endswith(("File would be reformatted", "Import block is un-sorted or un-formatted"))
        ]
        if proc.returncode not in (0, 1) or (proc.returncode == 1 and not found):
            pytest.fail("ruff %s exited %d:\n%s" % (args[0], proc.returncode, proc.stdout + proc.stderr), pytrace=False)
        pending.update(found)
    if pending:
        pytest.xfail("%d Python files not in ruff's layout yet (import order, format); `make format` once the branches in flight are merged" % len(pending))
