# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""smart_selftest as Ansible runs it: check mode, start, re-run, against a fake smartctl replaying real drives."""

from __future__ import annotations

import functools
import os
import shutil

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._disks.smart import HAS_PYSMART
from ansible_collections.datasteward.storage.plugins.modules import smart_selftest
from ansible_collections.datasteward.storage.tests.unit.utils import fake_smartctl

ROOT = fake_smartctl.fixtures_root()

pytestmark = pytest.mark.skipif(not HAS_PYSMART, reason="pySMART is not installed")


@pytest.fixture
def drive(tmp_path):
    """A copy of a real SATA SSD's recording (smartctl -d sat) with a fake smartctl on it."""
    source = os.path.join(ROOT, "singletests", "sat_ssd_0_issue_65")
    folder = tmp_path / "fixture"
    shutil.copytree(source, str(folder))
    return fake_smartctl.install(tmp_path / "bin", folder)


@pytest.fixture
def run(run_module):
    return functools.partial(run_module, smart_selftest)


def calls(smartctl):
    with open(os.path.join(os.path.dirname(smartctl), "calls.log"), "r", encoding="utf-8") as handle:
        return handle.read().splitlines()


def test_check_apply_reapply_check(run, drive):
    args = {"smartctl_path": drive, "devices": [{"name": "/dev/sda", "interface": "sat"}], "test": "short"}

    planned = run(args, check_mode=True)
    assert planned["changed"] is True
    assert planned["devices"][0]["state"] == "would_start"
    assert not [line for line in calls(drive) if "-t" in line.split()]

    applied = run(args)
    assert applied["changed"] is True
    (started,) = applied["devices"]
    assert (started["state"], started["serial"], started["exit_status"]) == ("started", "30087840294", 0)
    assert started["message"] == "Self-test started successfully"
    assert started["estimated_completion"]
    assert [line for line in calls(drive) if "-t" in line.split()] == ["-d sat -t short /dev/sda"]

    again = run(args)
    assert again["changed"] is False
    assert (again["devices"][0]["state"], again["devices"][0]["progress_percent"]) == ("running", 10)

    checked = run(args, check_mode=True)
    assert checked["changed"] is False
    assert len([line for line in calls(drive) if "-t" in line.split()]) == 1


def test_scanned_devices_by_default(run, tmp_path):
    source = os.path.join(ROOT, "listingtests", "linux_01")
    smartctl = fake_smartctl.install(tmp_path, source)
    result = run({"smartctl_path": smartctl, "test": "long"})
    assert [(d["name"], d["state"]) for d in result["devices"]] == [("/dev/nvme0", "started")]


def test_unsupported_test_fails_naming_the_device(run, drive, tmp_path):
    source = os.path.join(ROOT, "singletests", "nvme_1_issue_37")
    smartctl = fake_smartctl.install(tmp_path / "nvme", source)
    result = run({"smartctl_path": smartctl, "devices": [{"name": "/dev/nvme0", "interface": "nvme"}], "test": "conveyance"}, failed=True)
    assert result["msg"] == (
        "could not start the conveyance self-test on /dev/nvme0 (unsupported: /dev/nvme0 "
        "(Samsung SSD 970 EVO Plus 500GB) does not support the conveyance self-test)"
    )
    assert result["changed"] is False
    assert result["devices"][0]["state"] == "unsupported"


def test_one_bad_device_still_starts_the_others(run, drive):
    args = {"smartctl_path": drive, "devices": [{"name": "/dev/sda", "interface": "sat"}, {"name": "/dev/sdq", "interface": "sat"}]}
    result = run(args, failed=True)
    assert result["changed"] is True
    assert [d["state"] for d in result["devices"]] == ["started", "failed"]
    assert "/dev/sdq (failed: Smartctl open device: /dev/sdq failed: No such device)" in result["msg"]


def test_bad_test_choice(run):
    result = run({"test": "offline"}, failed=True)
    assert "value of test must be one of: short, long, conveyance" in result["msg"]
