# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""smart_info and smart_selftest run as real processes (as Ansible runs them,
as root) on a station whose drive hangs: they return, report that drive with
the timeout and the others as usual, and leave no smartctl behind."""

from __future__ import annotations

import os
import time

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._disks.smart import HAS_PYSMART
from ansible_collections.datasteward.storage.tests.unit.utils import fake_smartctl
from ansible_collections.datasteward.storage.tests.unit.utils.module_runner import run_module_process

pytestmark = pytest.mark.skipif(not HAS_PYSMART, reason="pySMART is not installed")

SINGLE = os.path.join(fake_smartctl.fixtures_root(), "singletests")
RECORDINGS = ("sata_hdd_0_issue42", "sat_ssd_0_issue_65", "nvme_1_issue_37")  # /dev/sdau, /dev/sda, /dev/nvme0


@pytest.fixture
def station(tmp_path):
    """A fake smartctl on three recorded drives, /dev/sdau wedged; any of its processes left fails the test (and is killed)."""
    folder = fake_smartctl.combine(tmp_path / "drives", [os.path.join(SINGLE, name) for name in RECORDINGS], ["/dev/sdau"])
    smartctl = fake_smartctl.install(tmp_path / "bin", folder)
    yield smartctl
    assert fake_smartctl.kill_left(smartctl) == [], "smartctl processes left running"


def by_name(devices):
    return dict((item["name"], item) for item in devices)


def test_smart_info_reports_the_wedged_drive_and_the_others(tmp_path, station):
    started = time.monotonic()
    result = run_module_process(tmp_path, "smart_info", {"smartctl_path": station, "timeout": 1})
    elapsed = time.monotonic() - started
    drives = by_name(result["devices"])
    assert sorted(drives) == ["/dev/nvme0", "/dev/sda", "/dev/sdau"]
    assert (drives["/dev/sdau"]["health"], drives["/dev/sdau"]["timed_out"]) == ("unknown", True)
    assert drives["/dev/sdau"]["reasons"][0].startswith("smartctl did not answer within 1 s for /dev/sdau")
    assert [(drives[name]["health"], drives[name]["timed_out"]) for name in ("/dev/sda", "/dev/nvme0")] == [("ok", False)] * 2
    # the scan itself hung on the drive: said once, as a warning
    assert "smartctl --scan-open did not answer within 1 s (it opens every drive: one that hangs blocks it)" in str(result["warnings"])
    assert result["changed"] is False
    assert fake_smartctl.running_fakes(station) == []
    assert elapsed < 60, "the deadline did not hold"  # the fake sleeps for 600 s


def test_smart_selftest_starts_the_others_and_fails_naming_the_drive(tmp_path, station):
    devices = [{"name": "/dev/sdau", "interface": "ata"}, {"name": "/dev/sda", "interface": "sat"}, {"name": "/dev/nvme0", "interface": "nvme"}]
    result = run_module_process(tmp_path, "smart_selftest", {"smartctl_path": station, "devices": devices, "timeout": 1}, failed=True)
    assert result["msg"].startswith(
        "could not start the short self-test on /dev/sdau (failed: smartctl did not answer within 1 s "
        "for /dev/sdau (smartctl -d ata --all /dev/sdau was killed)"
    )
    assert [(item["name"], item["state"], item["timed_out"]) for item in result["devices"]] == [
        ("/dev/sdau", "failed", True),
        ("/dev/sda", "started", False),
        ("/dev/nvme0", "started", False),
    ]
    assert result["changed"] is True
    assert fake_smartctl.running_fakes(station) == []


def test_bad_timeout_fails_naming_the_option(tmp_path, station):
    result = run_module_process(tmp_path, "smart_info", {"smartctl_path": station, "timeout": 0}, failed=True)
    assert result["msg"] == "timeout must be greater than 0 (seconds a drive gets for its smartctl calls), got 0.0"
