# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A wedged drive: its smartctl hangs (and forks, as smartctl may). The SMART
engine reports it with the timeout, reads the others, and leaves no smartctl
running. The recordings are real drives' (fake_smartctl's HANG file makes one
of them hang); the module run as a process is in tests/system/smart."""

from __future__ import annotations

import os
import time

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._disks import smart as _smart
from ansible_collections.datasteward.storage.tests.unit.utils import fake_smartctl

pytestmark = pytest.mark.skipif(not _smart.HAS_PYSMART, reason="pySMART is not installed")

SINGLE = os.path.join(fake_smartctl.fixtures_root(), "singletests")
# Four recorded drives with distinct device names, in one folder.
DRIVES = {
    "sata_hdd_0_issue42": {"name": "/dev/sdau", "interface": "ata"},
    "sat_ssd_0_issue_65": {"name": "/dev/sda", "interface": "sat"},
    "nvme_1_issue_37": {"name": "/dev/nvme0", "interface": "nvme"},
    "sas_hdd_0_issue_51": {"name": "/dev/sdc", "interface": "scsi"},
}
TIMEOUT = 3.0  # a fake smartctl is a Python process: on a loaded machine (2 cores, a parallel suite) the healthy ones need room


def station(tmp_path, wedged):
    """A fake smartctl on the four drives, the ``wedged`` ones hanging."""
    folder = fake_smartctl.combine(tmp_path / "drives", [os.path.join(SINGLE, name) for name in DRIVES], wedged)
    return fake_smartctl.install(tmp_path / "bin", folder)


@pytest.fixture
def no_fake_left():
    """Yields a list to put smartctl paths in; fails the test if a process of one is left, and kills it."""
    installed = []
    yield installed
    assert [pid for smartctl in installed for pid in fake_smartctl.kill_left(smartctl)] == [], "smartctl processes left running"


def by_name(devices):
    return dict((item["name"], item) for item in devices)


def test_wedged_drives_are_reported_and_the_others_read(tmp_path, no_fake_left):
    """Two drives hang: both are reported after one timeout (read concurrently, not one after the other)."""
    smartctl = station(tmp_path, ["/dev/sdau", "/dev/sdc"])
    no_fake_left.append(smartctl)
    timeout = 2 * TIMEOUT  # room for the healthy drives on a busy machine
    started = time.monotonic()
    result = _smart.smart_info(smartctl, list(DRIVES.values()), timeout=timeout)
    elapsed = time.monotonic() - started
    drives = by_name(result["devices"])
    assert [item["name"] for item in result["devices"]] == [item["name"] for item in DRIVES.values()]
    for name in ("/dev/sdau", "/dev/sdc"):
        assert (drives[name]["health"], drives[name]["timed_out"]) == ("unknown", True)
        assert drives[name]["reasons"] == [
            "smartctl did not answer within %g s for %s (smartctl -d %s --all %s was killed): "
            "a wedged drive or controller?" % (timeout, name, drives[name]["interface"], name)
        ]
        assert drives[name]["exit_status"] is None
    for name in ("/dev/sda", "/dev/nvme0"):
        assert (drives[name]["health"], drives[name]["timed_out"]) == ("ok", False)
        assert drives[name]["serial"]
    assert result["warnings"] == []
    # one after the other, the two wedged drives alone would take two timeouts
    assert elapsed < 2 * timeout, elapsed
    assert fake_smartctl.running_fakes(smartctl) == []


def test_a_wedged_drive_blocking_the_scan(tmp_path, no_fake_left):
    """--scan-open opens every drive and hangs on the wedged one; --scan lists them without opening, each is read on its own."""
    smartctl = station(tmp_path, ["/dev/sdau"])
    no_fake_left.append(smartctl)
    result = _smart.smart_info(smartctl, timeout=TIMEOUT)
    drives = by_name(result["devices"])
    assert sorted(drives) == sorted(item["name"] for item in DRIVES.values())
    assert drives["/dev/sdau"]["timed_out"] is True
    assert drives["/dev/sdau"]["reasons"][0].startswith("smartctl did not answer within 3 s for /dev/sdau (smartctl -d test /dev/sdau")
    # the types smartctl --scan guessed from the names (scsi) were detected again when each drive was read
    assert [(name, drives[name]["interface"], drives[name]["health"]) for name in ("/dev/sda", "/dev/nvme0", "/dev/sdc")] == [
        ("/dev/sda", "sat", "ok"),
        ("/dev/nvme0", "nvme", "ok"),
        ("/dev/sdc", "scsi", "ok"),
    ]
    assert result["warnings"] == [
        "smartctl --scan-open did not answer within 3 s (it opens every drive: one that hangs blocks it); "
        "the drives were listed with smartctl --scan, which opens none, and each was read with its device "
        "type detected (-d test)"
    ]
    assert fake_smartctl.running_fakes(smartctl) == []


def test_selftests_start_on_the_others(tmp_path, no_fake_left):
    smartctl = station(tmp_path, ["/dev/nvme0"])
    no_fake_left.append(smartctl)
    result = _smart.start_selftests(smartctl, list(DRIVES.values()), "short", timeout=TIMEOUT)
    drives = by_name(result["devices"])
    assert drives["/dev/nvme0"]["state"] == "failed" and drives["/dev/nvme0"]["timed_out"] is True
    assert drives["/dev/nvme0"]["message"] == (
        "smartctl did not answer within 3 s for /dev/nvme0 (smartctl -d nvme --all /dev/nvme0 was killed): a wedged drive or controller?"
    )
    assert [drives[name]["state"] for name in ("/dev/sdau", "/dev/sda", "/dev/sdc")] == ["running", "started", "started"]
    assert result["failed"] == [drives["/dev/nvme0"]] and result["changed"] is True
    assert fake_smartctl.running_fakes(smartctl) == []


def test_selftest_start_that_hangs(tmp_path, no_fake_left):
    """The drive answers its queries but hangs on -t: the test may or may not have started, and the result says so."""
    smartctl = station(tmp_path, ["/dev/sda -t"])
    no_fake_left.append(smartctl)
    result = _smart.start_selftests(smartctl, [DRIVES["sat_ssd_0_issue_65"], DRIVES["nvme_1_issue_37"]], "short", timeout=TIMEOUT)
    drive, other = result["devices"]
    assert (drive["state"], drive["timed_out"], drive["changed"], drive["serial"]) == ("failed", True, False, "30087840294")
    assert drive["message"] == (
        "smartctl did not answer within 3 s for /dev/sda (smartctl -d sat -t short /dev/sda was killed): "
        "a wedged drive or controller?; the test may or may not have started: read the drive with smart_info later"
    )
    assert (other["state"], result["changed"]) == ("started", True)
    assert fake_smartctl.running_fakes(smartctl) == []


def test_deadline_is_per_drive_not_per_call(tmp_path):
    """A drive whose every call is slow runs out of its one budget; the calls after the deadline are not made."""
    smartctl = station(tmp_path, [])
    made = []

    def slow(args, timeout):
        """smartctl 0.3 s slower than the recording, within the time left."""
        made.append(args[1:])
        time.sleep(0.3)
        return _smart.run_smartctl(args, max(timeout - 0.3, 0.001))

    facts, device = _smart.read_device(smartctl, "/dev/sda", None, run_command=slow, timeout=0.5)
    assert device is None and facts["timed_out"] is True
    assert facts["unread"].startswith("smartctl did not answer within 0.5 s for /dev/sda (")
    assert len(made) <= 2, made
    # a call that found no time left was never started: the reason does not say it was killed
    facts, device = _smart.read_device(smartctl, "/dev/sda", None, run_command=slow, timeout=0.2)
    assert facts["unread"] == ("smartctl did not answer within 0.2 s for /dev/sda (smartctl -d test /dev/sda was killed): a wedged drive or controller?")
    recording = _smart.RecordingSmartctl(smartctl, slow, timeout=0.001)
    time.sleep(0.01)
    with pytest.raises(_smart.CommandTimeout) as caught:
        recording.generic_call(["-d", "test", "/dev/sda"])
    assert _smart.timeout_reason("/dev/sda", caught.value) == (
        "smartctl did not answer within 0.001 s for /dev/sda (no time was left for smartctl -d test /dev/sda): a wedged drive or controller?"
    )


@pytest.mark.parametrize("timeout", [0, -1])
def test_bad_timeout_names_the_option(timeout):
    with pytest.raises(_smart.SmartError, match=r"^timeout must be greater than 0 \(seconds a drive gets for its smartctl calls\)"):
        _smart.smart_info("/bin/true", [{"name": "/dev/sda"}], timeout=timeout)
    with pytest.raises(_smart.SmartError, match=r"^timeout must be greater than 0"):
        _smart.start_selftests("/bin/true", [{"name": "/dev/sda"}], timeout=timeout)


def test_fake_answers_scan_and_type_detection_in_smartctls_words(tmp_path):
    """What the fake says where the recordings stop (--scan, -d test), checked against real recordings of both."""
    smartctl = station(tmp_path, [])
    rc, out, dummy = _smart.run_smartctl([smartctl, "--scan"], 10)
    assert (rc, out.decode().splitlines()) == (
        0,
        [
            "/dev/sdau -d scsi # /dev/sdau, SCSI device",
            "/dev/sda -d scsi # /dev/sda, SCSI device",
            "/dev/nvme0 -d nvme # /dev/nvme0, NVMe device",
            "/dev/sdc -d scsi # /dev/sdc, SCSI device",
        ],
    )
    rc, out, dummy = _smart.run_smartctl([smartctl, "-d", "test", "/dev/sdau"], 10)
    assert out.decode().splitlines()[-2:] == ["/dev/sdau: Device of type 'ata' [ATA] detected", "/dev/sdau: Device of type 'ata' [ATA] opened"]
    # the recorded one is replayed as it is
    with open(os.path.join(SINGLE, "sat_ssd_0_issue_65", "_-d_test__dev_sda"), "rb") as handle:
        assert _smart.run_smartctl([smartctl, "-d", "test", "/dev/sda"], 10)[1] == handle.read()


def test_smartctl_that_cannot_run_is_an_error_not_a_drive_problem(tmp_path):
    """An executable smartctl whose interpreter is missing: the module fails naming it, for the scan and for named drives."""
    broken = tmp_path / "smartctl"
    broken.write_text("#!/nonexistent/interpreter\n")
    broken.chmod(0o755)
    for devices in (None, [{"name": "/dev/sda", "interface": "sat"}, {"name": "/dev/sdb"}]):
        with pytest.raises(_smart.SmartError) as caught:
            _smart.smart_info(str(broken), devices, timeout=TIMEOUT)
        assert str(caught.value) == "cannot run %s: No such file or directory" % broken
