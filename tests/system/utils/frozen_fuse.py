# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A real hung file system: bindfs with its daemon stopped (SIGSTOP)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._fs import mounts as fsu


@contextlib.contextmanager
def frozen_fuse(source, mount):
    """Mount ``source`` on ``mount`` with bindfs, stop its daemon and yield
    the mount point (str): every statfs, stat, open or readdir on it then
    blocks, exactly like a mount of a dead NFS server. Skips the test without
    bindfs, /dev/fuse or root. Afterwards: SIGCONT, lazy unmount, daemon ended."""
    if shutil.which("bindfs") is None or os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        pytest.skip("needs bindfs (Debian package bindfs, installed by make test), /dev/fuse and root")
    os.makedirs(str(source), exist_ok=True)
    os.makedirs(str(mount), exist_ok=True)
    daemon = subprocess.Popen(["bindfs", "-f", str(source), str(mount)])
    try:
        for dummy in range(100):
            if any(m.mount_point == str(mount) for m in fsu.read_mounts()):
                break
            time.sleep(0.05)
        else:
            pytest.fail("bindfs did not mount %s" % mount)
        os.kill(daemon.pid, signal.SIGSTOP)
        yield str(mount)
    finally:
        os.kill(daemon.pid, signal.SIGCONT)
        subprocess.run(["umount", "-l", str(mount)], check=False)
        daemon.terminate()
        daemon.wait(10)
