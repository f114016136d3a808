# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ansible-test sanity, with empty ignore files, on the controller Python, and
the compile and import tests (modules and module_utils load and import only
what they may) on every other target Python this machine has."""

from __future__ import annotations

import functools
import glob
import os
import shutil
import subprocess

import pytest

from tests.checks.conftest import BIN, REPO, Skip, background_job

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


@background_job("test_sanity")
def sanity_job(tmp):
    return {"args": [BIN / "ansible-test", "sanity", "--color", "no", "--python", "3.11"], "timeout": 1200}


def test_sanity(background):
    background.check("test_sanity")


def other_python_job(version, tmp):
    interpreter = find_python(version)
    if interpreter is None:
        return Skip("no Python %s on this machine" % version)
    (tmp / ("python%s" % version)).symlink_to(interpreter)
    return {
        "args": [BIN / "ansible-test", "sanity", "--color", "no", "--test", "compile", "--test", "import", "--python", version],
        "env": {"PATH": "%s:%s:%s" % (tmp, BIN, os.environ.get("PATH", ""))},
        "timeout": 900,
    }


for _version in TARGET_PYTHONS:
    background_job("test_sanity_other_python[%s]" % _version)(functools.partial(other_python_job, _version))


@pytest.mark.parametrize("version", TARGET_PYTHONS)
def test_sanity_other_python(background, version):
    background.check("test_sanity_other_python[%s]" % version)
