# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ansible-test sanity, with empty ignore files, on the controller Python, and
the compile and import tests (modules and module_utils load and import only
what they may) on every other target Python this machine has."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

import pytest

from tests.checks.conftest import BIN, REPO, run_tool

TARGET_PYTHONS = ("3.8", "3.9", "3.10", "3.12", "3.13")


def find_python(version):
    """An interpreter for ``version``: on PATH, or installed by pyenv."""
    candidates = [shutil.which("python%s" % version)]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/%s.*/bin/python%s" % (version, version))))
    for candidate in candidates:
        if candidate and subprocess.run([candidate, "-c", "pass"], capture_output=True, check=False).returncode == 0:
            return candidate
    return None


def test_ignore_files_are_empty():
    for path in (REPO / "tests" / "sanity").glob("ignore-*.txt"):
        assert path.read_text().strip() == "", "%s must stay empty: fix the code instead" % path.name


def test_sanity(collection_copy):
    run_tool([BIN / "ansible-test", "sanity", "--color", "no", "--python", "3.11"], cwd=collection_copy, timeout=1200)


@pytest.mark.parametrize("version", TARGET_PYTHONS)
def test_sanity_other_python(collection_copy, version, tmp_path):
    interpreter = find_python(version)
    if interpreter is None:
        pytest.skip("no Python %s on this machine" % version)
    (tmp_path / ("python%s" % version)).symlink_to(interpreter)
    run_tool(
        [BIN / "ansible-test", "sanity", "--color", "no", "--test", "compile", "--test", "import", "--python", version],
        cwd=collection_copy,
        env={"PATH": "%s:%s:%s" % (tmp_path, BIN, os.environ.get("PATH", ""))},
    )
