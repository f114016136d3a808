# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""smart_info's main() against recorded drives replayed by a fake smartctl
(without smartctl installed and as user nobody: tests/system/smart)."""

from __future__ import annotations

import functools
import os
import shutil

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._disks.smart import HAS_PYSMART
from ansible_collections.datasteward.storage.plugins.modules import smart_info
from ansible_collections.datasteward.storage.tests.unit.utils import fake_smartctl

ROOT = fake_smartctl.fixtures_root()

pytestmark = pytest.mark.skipif(not HAS_PYSMART, reason="pySMART is not installed")


def fixture(kind, name):
    return os.path.join(ROOT, kind, name)


@pytest.fixture
def run(run_module):
    return functools.partial(run_module, smart_info)


def test_reads_every_scanned_drive(run, tmp_path):
    smartctl = fake_smartctl.install(tmp_path, fixture("listingtests", "linux_01"))
    result = run({"smartctl_path": smartctl})
    assert result["changed"] is False
    (drive,) = result["devices"]
    assert (drive["name"], drive["interface"], drive["model"], drive["health"]) == ("/dev/nvme0", "nvme", "KBG30ZMV256G TOSHIBA", "ok")
    assert drive["exit_status"] == 0
    assert result["missing"] == [] and result["unmapped"] == []


def test_check_mode_reads_too(run, tmp_path):
    smartctl = fake_smartctl.install(tmp_path, fixture("singletests", "sata_hdd_0_issue42"))
    result = run({"smartctl_path": smartctl, "devices": [{"name": "/dev/sdau", "interface": "ata"}]}, check_mode=True)
    assert result["changed"] is False
    assert result["devices"][0]["serial"] == "00008AXB"


def test_disk_map_and_acknowledge_through_the_module(run, tmp_path):
    folder = tmp_path / "fixture"
    shutil.copytree(fixture("singletests", "sata_hdd_0_issue42"), str(folder))
    recording = folder / "_-d_ata_--all__dev_sdau"
    recording.chmod(0o644)
    text = recording.read_text()
    recording.write_text(
        text.replace(
            "  5 Reallocated_Sector_Ct   0x0033   100   100   010    Pre-fail  Always       -       0",
            "  5 Reallocated_Sector_Ct   0x0033   100   100   010    Pre-fail  Always       -       8",
        )
    )
    smartctl = fake_smartctl.install(tmp_path / "bin", folder)
    disk_map = tmp_path / "disk-map"
    disk_map.write_text("P01 00008AXB 0x5000c500a4847915\nP02 ZA12JCHM 0x5000c500858bfea7\n")
    args = {"smartctl_path": smartctl, "devices": [{"name": "/dev/sdau", "interface": "ata"}], "disk_map": str(disk_map)}
    result = run(args)
    (drive,) = result["devices"]
    assert (drive["label"], drive["health"]) == ("P01", "warning")
    assert result["missing"] == [{"label": "P02", "serial": "ZA12JCHM", "wwn": "0x5000c500858bfea7"}]

    args["acknowledge"] = [{"serial": "00008AXB", "attribute": 5, "raw": 8}]
    result = run(args)
    assert result["devices"][0]["health"] == "ok"
    assert result["devices"][0]["acknowledged"] == [{"attribute": "Reallocated_Sector_Ct (5)", "raw": 8, "acknowledged_raw": 8}]


def test_bad_smartctl_path_names_the_option(run, tmp_path):
    result = run({"smartctl_path": str(tmp_path / "nope")}, failed=True)
    assert result["msg"] == "smartctl_path: %s does not exist" % (tmp_path / "nope")


def test_bad_interface_names_the_device(run, tmp_path):
    smartctl = fake_smartctl.install(tmp_path, fixture("listingtests", "linux_01"))
    result = run({"smartctl_path": smartctl, "devices": [{"name": "/dev/sda", "interface": "floppy"}]}, failed=True)
    assert result["msg"].startswith("devices[0] (/dev/sda): interface 'floppy' is not a smartctl device type")


def test_acknowledge_needs_serial_or_device(run, tmp_path):
    smartctl = fake_smartctl.install(tmp_path, fixture("listingtests", "linux_01"))
    result = run({"smartctl_path": smartctl, "acknowledge": [{"attribute": "5", "raw": 1}]}, failed=True)
    assert "one of the following is required: serial, device" in result["msg"]
    assert "acknowledge" in result["msg"]


def test_bad_disk_map_names_the_line(run, tmp_path):
    smartctl = fake_smartctl.install(tmp_path, fixture("listingtests", "linux_01"))
    disk_map = tmp_path / "disk-map"
    disk_map.write_text("P01 ZA12JCHM 0x5000c500858bfea7 extra\n")
    result = run({"smartctl_path": smartctl, "disk_map": str(disk_map)}, failed=True)
    assert result["msg"] == "%s line 1: expected 'LABEL SERIAL WWN', got 'P01 ZA12JCHM 0x5000c500858bfea7 extra'" % disk_map
