# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The system suite: tests that need root and real kernel things (tmpfs and
bind mounts, FUSE, SIGKILL, other uids). `make test` runs it as root in the
same pytest session as tests/unit; `ansible-test units` never sees it.

Without root every test here is skipped with one reason (pytest's -ra summary
lists it), never half-run. Mounts go through ``mount_tmpfs``, which unmounts
lazily whatever happens, including when the test's own setup fails.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from ansible_collections.datasteward.storage.tests.unit.utils.module_runner import patch_exits, run_in_process

REPO = Path(__file__).resolve().parents[2]
NEEDS_ROOT = "the system suite needs root (mounts, FUSE, other uids): run `make test` as root"


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.skip(reason=NEEDS_ROOT))


@pytest.fixture
def run_module(monkeypatch):
    """``run_module(module, args, failed=False, check_mode=False)`` runs ``module.main()``
    in-process, as in tests/unit/plugins/modules/conftest.py."""
    patch_exits(monkeypatch)
    return run_in_process


def umount_lazily(path):
    """Detach ``path`` (lazy: a busy or hung mount goes too); a path that is not mounted is fine."""
    subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@pytest.fixture
def mount_tmpfs():
    """``mount_tmpfs(path, size="8m", options=None)`` mounts a real tmpfs on ``path`` (created if
    missing) and returns ``path``; every mount made is unmounted lazily at teardown, in reverse
    order, even when the test or the rest of its setup failed."""
    mounted = []

    def mount(path, size="8m", options=None):
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        opts = "size=%s" % size + ("," + options if options else "")
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            pytest.skip("cannot mount tmpfs here: %s" % proc.stderr.strip())
        mounted.append(path)
        return path

    try:
        yield mount
    finally:
        for path in reversed(mounted):
            umount_lazily(path)


def mount_points_under(base):
    """Mount points at or below ``base`` (from /proc/self/mountinfo), deepest first."""
    with open("/proc/self/mountinfo", "r", encoding="utf-8", errors="surrogateescape") as handle:
        points = [re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4]) for line in handle]
    base = str(base)
    return sorted((p for p in points if p == base or p.startswith(base + "/")), key=len, reverse=True)


@pytest.fixture(autouse=True)
def no_leaked_mounts(tmp_path):
    """After each test (and its fixtures' teardown): nothing may stay mounted
    under its tmp_path; a leak is detached lazily and fails the test."""
    yield
    leaked = mount_points_under(tmp_path)
    for point in leaked:
        umount_lazily(point)
    if leaked:
        pytest.fail("mounts left behind (now detached): %s" % ", ".join(leaked), pytrace=False)
