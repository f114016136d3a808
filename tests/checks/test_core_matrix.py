# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Sanity and units on the other supported ansible-core releases.

ansible-core 2.19 (the main venv, Python 3.11) is checked by test_sanity.py
and test_units.py. Each other core has a pinned requirements-core<X>.txt and
its own venv .venvs/core<X>, built by `make setup` with the first of the
Pythons its "# pythons:" line names. A core whose venv could not be built (no
such Python here) is skipped with a reason, which pytest's summary (-ra)
prints on a line of its own.

Sanity on these cores runs the tests whose outcome depends on the core:
ansible-doc, compile, import, validate-modules and runtime-metadata (the rest,
pylint, pep8, yamllint, ..., are the same code on every core and run once, on
2.19). The full set takes about five times as long here.
"""

from __future__ import annotations

import functools
import os
import subprocess

import pytest

from tests.checks.conftest import REPO, Skip, background_job

CORES = sorted(p.name[len("requirements-core") : -len(".txt")] for p in REPO.glob("requirements-core*.txt"))
SANITY_TESTS = ("ansible-doc", "compile", "import", "validate-modules", "runtime-metadata")


def pythons(core):
    for line in (REPO / ("requirements-core%s.txt" % core)).read_text(encoding="utf-8").splitlines():
        if line.startswith("# pythons:"):
            return line.split(":", 1)[1].split()
    return []


def core_venv(core):
    """(bin directory, Python version) of the core's venv, or a Skip saying why there is none."""
    venv = REPO / ".venvs" / ("core%s" % core)
    if not (venv / ".installed").is_file():
        return Skip(
            "ansible-core %s not tested: no Python %s on this machine (make setup builds .venvs/core%s when one is)" % (core, " or ".join(pythons(core)), core)
        )
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sys, ansible.release as r; print('%d.%d' % sys.version_info[:2], r.__version__)"],
        capture_output=True,
        encoding="utf-8",
        check=True,
    ).stdout.split()
    python, version = out
    assert version.startswith(core + "."), ".venvs/core%s has ansible-core %s: rebuild it (make setup)" % (core, version)
    return venv / "bin", python


def env_for(bin_dir):
    return {"PATH": "%s:%s" % (bin_dir, os.environ.get("PATH", ""))}


def units_job(core, tmp):
    venv = core_venv(core)
    if isinstance(venv, Skip):
        return venv
    bin_dir, python = venv
    return {"args": [bin_dir / "ansible-test", "units", "--color", "no", "--local", "--python", python], "timeout": 1200, "env": env_for(bin_dir)}


def sanity_job(core, tmp):
    venv = core_venv(core)
    if isinstance(venv, Skip):
        return venv
    bin_dir, python = venv
    tests = [arg for name in SANITY_TESTS for arg in ("--test", name)]
    return {"args": [bin_dir / "ansible-test", "sanity", "--color", "no", "--python", python] + tests, "timeout": 1200, "env": env_for(bin_dir)}


for _core in CORES:
    background_job("test_units_on_core[%s]" % _core)(functools.partial(units_job, _core))
    background_job("test_sanity_on_core[%s]" % _core)(functools.partial(sanity_job, _core))


@pytest.mark.parametrize("core", CORES)
def test_units_on_core(background, core):
    background.check("test_units_on_core[%s]" % core)


@pytest.mark.parametrize("core", CORES)
def test_sanity_on_core(background, core):
    background.check("test_sanity_on_core[%s]" % core)
