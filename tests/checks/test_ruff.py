# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Python lint and format with ruff (settings in ruff.toml) on plugins/,
tests/ and benchmarks/. `make format` applies both fixes."""

from __future__ import annotations

import subprocess

import pytest

from tests.checks.conftest import BIN, REPO, run_tool

PATHS = ["plugins", "tests", "benchmarks"]

# The one-time reformat of the whole tree waits until the branches in flight
# are merged (it touches most files); `make format` does it. Then set this to
# True and the format check fails like the lint check.
FORMAT_ENFORCED = False


def test_ruff_lint():
    run_tool([BIN / "ruff", "check", "--no-cache", "--output-format", "concise"] + PATHS, cwd=REPO, timeout=300)


def test_ruff_format():
    if FORMAT_ENFORCED:
        run_tool([BIN / "ruff", "format", "--no-cache", "--check", "--output-format", "concise"] + PATHS, cwd=REPO, timeout=300)
        return
    proc = subprocess.run(
        [str(BIN / "ruff"), "format", "--no-cache", "--check", "--output-format", "concise"] + PATHS,
        cwd=REPO,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=300,
        check=False,
    )
    pending = [line for line in proc.stdout.splitlines() if line.endswith("File would be reformatted")]
    if proc.returncode not in (0, 1) or (proc.returncode == 1 and not pending):
        pytest.fail("ruff format --check exited %d:\n%s" % (proc.returncode, proc.stdout + proc.stderr), pytrace=False)
    if pending:
        pytest.xfail("%d Python files not ruff-formatted yet; `make format` once the branches in flight are merged" % len(pending))
