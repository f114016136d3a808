# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The file system usage engine where it needs root: a frozen FUSE mount (a
hung file system, for real) and the thread limit of user nobody."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._fs import mounts as fsu
from ansible_collections.datasteward.storage.tests.system.utils.as_nobody import run_as_nobody
from ansible_collections.datasteward.storage.tests.system.utils.frozen_fuse import frozen_fuse
from ansible_collections.datasteward.storage.tests.unit.utils.fs_samples import MOUNTINFO, FakeStat

REPO = Path(__file__).resolve().parents[3]


def test_no_thread_for_a_file_system_is_an_error_not_a_traceback():
    """With the process limit reached no thread can start (as user nobody,
    RLIMIT_NPROC counts threads): every file system is reported in error."""
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to user nobody (root ignores RLIMIT_NPROC)")
    result = run_as_nobody(lambda: fsu.disk_usage(mounts=fsu.parse_mountinfo(MOUNTINFO), statvfs=lambda path: FakeStat()), nproc=1)
    assert {fs["status"] for fs in result["filesystems"]} == {"error"}
    assert result["filesystems"][0]["error"].startswith("statfs failed: cannot start a thread to query it: ")


@pytest.fixture
def frozen_fuse_mount(tmp_path):
    """A real FUSE file system (bindfs) whose daemon is stopped with SIGSTOP:
    every statfs on it blocks, exactly like a mount of a dead NFS server
    (test_blocking_statfs_is_abandoned_at_the_deadline covers the deadline
    without bindfs)."""
    with frozen_fuse(tmp_path / "source", tmp_path / "hung") as mount:
        yield mount


def test_hung_file_system_is_an_error_after_the_timeout(frozen_fuse_mount):
    started = time.monotonic()
    result = fsu.disk_usage(timeout=1)
    elapsed = time.monotonic() - started
    by_mount = dict((fs["mount"], fs) for fs in result["filesystems"])
    hung = by_mount[frozen_fuse_mount]
    assert hung["status"] == "error"
    assert hung["error"] == "statfs did not answer within 1 s (hung file system?)"
    assert by_mount["/"]["status"] in ("ok", "warning", "critical")
    assert result["status"] == "error"
    assert any(frozen_fuse_mount in line for line in result["alerts"])
    assert elapsed < 30, "the deadline did not hold"  # the call returned; it would block forever otherwise


def test_hung_path_given_explicitly_does_not_block(frozen_fuse_mount):
    result = fsu.disk_usage(paths=[frozen_fuse_mount + "/deeper", "/"], timeout=1)
    hung, root = result["filesystems"]
    assert hung["mount"] == frozen_fuse_mount and hung["status"] == "error"
    assert root["mount"] == "/" and root["error"] is None


def test_module_process_does_not_hang_on_a_hung_mount(frozen_fuse_mount):
    """The whole module, run by Ansible, returns and reports the others."""
    bindir = Path(sys.executable).parent
    proc = subprocess.run(
        [str(bindir / "ansible"), "localhost", "-m", "datasteward.storage.disk_usage", "-a", "timeout=1", "-o"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=dict(os.environ, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.oneline"),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.split("=>", 1)[1])
    statuses = dict((fs["mount"], fs["status"]) for fs in result["filesystems"])
    assert statuses[frozen_fuse_mount] == "error"
    assert statuses["/"] != "error"
