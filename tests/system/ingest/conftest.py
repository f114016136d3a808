# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Disks for the ingest tests: real tmpfs file systems (see tests/system/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def disks(tmp_path, mount_tmpfs):
    """disks(name=size, ...) mounts real tmpfs file systems under tmp_path; returns their paths.

    They are unmounted lazily at teardown, whatever the test did."""

    def mount(**sizes):
        return [str(mount_tmpfs(tmp_path / name, size)) for name, size in sizes.items()]

    return mount
