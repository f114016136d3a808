# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The SMART engine on recorded output of real drives, replayed by tests/unit/utils/fake_smartctl.py."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._disks import smart as _smart
from ansible_collections.datasteward.storage.tests.unit.utils import fake_smartctl

ROOT = fake_smartctl.fixtures_root()
SINGLE = fake_smartctl.fixture_folders("singletests")
LISTING = fake_smartctl.fixture_folders("listingtests")

pytestmark = pytest.mark.skipif(not _smart.HAS_PYSMART, reason="pySMART is not installed")


def folder_of(kind, name):
    return os.path.join(ROOT, kind, name)


def device_json(folder):
    with open(os.path.join(folder, "device.json"), "r", encoding="utf-8") as handle:
        return json.load(handle)


def skip_if_incomplete(folder):
    dangling = fake_smartctl.dangling_links(folder)
    if dangling:
        pytest.skip("the recording is a git symlink stand-in for a file pySMART's dataset does not include: %s" % ", ".join(dangling))


def copy_fixture(tmp_path, name, kind="singletests"):
    """A writable copy of one recording folder, with a fake smartctl pointed at it."""
    folder = tmp_path / name
    shutil.copytree(folder_of(kind, name), str(folder))
    for path in folder.iterdir():
        path.chmod(0o644)
    folder.chmod(0o755)
    return folder, fake_smartctl.install(tmp_path / "bin", folder)


def edit(folder, pattern, replacement, count=1):
    """Edit every smartctl recording in ``folder`` (a regex substitution per line); fail if nothing matched."""
    done = 0
    for path in folder.iterdir():
        if not path.name.startswith("_-"):
            continue
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        new, hits = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        if hits:
            path.write_text(new, encoding="utf-8", errors="surrogateescape")
            done += hits
    assert done >= count, "nothing matched %r in %s" % (pattern, folder)


def calls_of(smartctl):
    """The fake's log of smartctl calls (it keeps it beside the wrapper)."""
    path = os.path.join(os.path.dirname(smartctl), "calls.log")
    with open(path, "r", encoding="utf-8") as handle:
        return handle.read()


def devices_of(folder):
    data = device_json(str(folder))
    return [{"name": data["name"], "interface": data.get("interface")}]


def read_one(folder, smartctl, **kwargs):
    return _smart.smart_info(smartctl, devices_of(folder), **kwargs)["devices"][0]


# --------------------------------------------------------------------------
# every recorded drive


def test_recordings_are_in_the_collection():
    """The recordings ship inside the collection (no test reads anything beside the checkout)."""
    assert (len(SINGLE), len(LISTING)) == (27, 4), ROOT
    assert os.path.isfile(os.path.join(ROOT, "LICENSE")) and os.path.isfile(os.path.join(ROOT, "SOURCE.md"))


@pytest.mark.parametrize("name", SINGLE)
def test_single_drive_reports_what_pysmart_recorded(tmp_path, name):
    folder = folder_of("singletests", name)
    skip_if_incomplete(folder)
    expected = device_json(folder)["values"]
    smartctl = fake_smartctl.install(tmp_path, folder, state_dir=tmp_path)
    facts = read_one(folder, smartctl)

    for ours, theirs in (("model", "model"), ("serial", "serial"), ("firmware", "firmware"), ("assessment", "assessment"), ("temperature_c", "temperature")):
        assert facts[ours] == expected.get(theirs), ours
    assert facts["capacity_bytes"] == (expected.get("size") or None)
    assert facts["exit_status"] == 0
    assert facts["exit_status_flags"] == []
    if expected.get("smart_capable"):
        # Every recorded drive is healthy.
        assert (facts["health"], facts["reasons"]) == ("ok", [])
    else:
        # RAID volumes: smartctl sees no SMART; we say so instead of "ok".
        assert facts["health"] == "unknown"
        assert "SMART is not available" in facts["reasons"][0]
    if expected.get("interface") == "nvme":
        assert facts["nvme"]["critical_warning"] == 0
        assert facts["attributes"] == []
    for attr in facts["attributes"]:
        assert expected["attributes"][attr["id"]]["raw"] == attr["raw"]
        assert expected["attributes"][attr["id"]]["when_failed"] == attr["when_failed"]
    assert len(facts["self_tests"]) == min(len(expected.get("tests") or []), _smart.SELF_TESTS_REPORTED)


@pytest.mark.parametrize("name", LISTING)
def test_listing_finds_every_device(tmp_path, name):
    folder = folder_of("listingtests", name)
    skip_if_incomplete(folder)
    smartctl = fake_smartctl.install(tmp_path, folder, state_dir=tmp_path)
    result = _smart.smart_info(smartctl)
    with open(os.path.join(folder, "_--scan-open"), "r", encoding="utf-8") as handle:
        first = handle.read()
    assert len(result["devices"]) == device_json(folder)["count"]
    for facts in result["devices"]:
        assert facts["name"] in first or first.startswith("../")
        assert facts["serial"] and facts["model"]
        assert facts["health"] == "ok", facts["reasons"]
    assert result["missing"] == [] and result["unmapped"] == []


def test_listing_with_a_git_symlink_stand_in_is_followed(tmp_path):
    """win10_01's files are git's text stand-ins for symlinks into singletests/."""
    folder = folder_of("listingtests", "win10_01")
    smartctl = fake_smartctl.install(tmp_path, folder, state_dir=tmp_path)
    (facts,) = _smart.smart_info(smartctl)["devices"]
    assert facts["model"] == "WDS100T3X0C-00SJG0"


# --------------------------------------------------------------------------
# failing drives: edited copies of real recordings


def test_reallocated_sectors_warn(tmp_path):
    folder, smartctl = copy_fixture(tmp_path, "sata_hdd_0_issue42")
    edit(folder, r"^(  5 Reallocated_Sector_Ct .*-\s+)0$", r"\g<1>8")
    facts = read_one(folder, smartctl)
    assert facts["health"] == "warning"
    assert facts["reasons"] == ["Reallocated_Sector_Ct (5) raw value is 8"]
    assert [a["raw_int"] for a in facts["attributes"] if a["id"] == 5] == [8]


def test_pending_and_uncorrectable_sectors_warn(tmp_path):
    folder, smartctl = copy_fixture(tmp_path, "sata_hdd_0_issue42")
    edit(folder, r"^(197 Current_Pending_Sector .*-\s+)0$", r"\g<1>16")
    edit(folder, r"^(187 Reported_Uncorrect .*-\s+)0$", r"\g<1>2")
    facts = read_one(folder, smartctl)
    assert facts["health"] == "warning"
    assert sorted(facts["reasons"]) == ["Current_Pending_Sector (197) raw value is 16", "Reported_Uncorrect (187) raw value is 2"]


def test_acknowledged_counter_is_quiet_until_it_grows(tmp_path):
    folder, smartctl = copy_fixture(tmp_path, "sata_hdd_0_issue42")
    edit(folder, r"^(  5 Reallocated_Sector_Ct .*-\s+)0$", r"\g<1>8")
    acknowledge = [{"serial": "00008AXB", "attribute": "Reallocated_Sector_Ct", "raw": 8}]
    facts = read_one(folder, smartctl, acknowledge=acknowledge)
    assert (facts["health"], facts["reasons"]) == ("ok", [])
    assert facts["acknowledged"] == [{"attribute": "Reallocated_Sector_Ct (5)", "raw": 8, "acknowledged_raw": 8}]

    # by attribute ID and device name, too
    facts = read_one(folder, smartctl, acknowledge=[{"device": "/dev/sdau", "attribute": "5", "raw": 8}])
    assert facts["health"] == "ok"

    # another drive's acknowledgement does not count
    facts = read_one(folder, smartctl, acknowledge=[{"serial": "OTHER", "attribute": "5", "raw": 8}])
    assert facts["health"] == "warning"

    edit(folder, r"^(  5 Reallocated_Sector_Ct .*-\s+)8$", r"\g<1>12")
    facts = read_one(folder, smartctl, acknowledge=acknowledge)
    assert facts["health"] == "warning"
    assert facts["reasons"] == ["Reallocated_Sector_Ct (5) raw value 12 grew past the acknowledged 8"]
    assert facts["acknowledged"] == []


def test_failed_assessment_is_failing_and_keeps_the_exit_status(tmp_path):
    folder, smartctl = copy_fixture(tmp_path, "sat_ssd_0_issue_65")
    edit(folder, r"self-assessment test result: PASSED", "self-assessment test result: FAILED!")
    # smartctl's exit status for a failing drive: bit 3 (DISK FAILING)
    (folder / "exit_status.json").write_text(json.dumps({"_-d_sat_--all__dev_sda": 8}))
    facts = read_one(folder, smartctl)
    assert facts["assessment"] == "FAIL"
    assert facts["assessment_text"] == "FAILED!"
    assert facts["health"] == "failing"
    assert facts["exit_status"] == 8
    assert facts["exit_status_flags"] == ["bit 3: SMART status check returned DISK FAILING"]
    assert facts["reasons"][0] == "the drive's SMART self-assessment failed: FAILED!"
    assert "bit 3" in facts["reasons"][1]


def test_scsi_health_status_not_ok_is_failing(tmp_path):
    folder, smartctl = copy_fixture(tmp_path, "sas_hdd_0_issue_51")
    edit(folder, r"SMART Health Status: OK", "SMART Health Status: FIRMWARE IMPENDING FAILURE TOO MANY BLOCK REASSIGNS [asc=5d, ascq=64]")
    facts = read_one(folder, smartctl)
    assert (facts["assessment"], facts["health"]) == ("FAIL", "failing")


def test_scsi_grown_defects_warn(tmp_path):
    folder, smartctl = copy_fixture(tmp_path, "sas_hdd_0_issue_51")
    edit(folder, r"^Elements in grown defect list: 0", "Elements in grown defect list: 3")
    facts = read_one(folder, smartctl)
    assert facts["scsi"]["grown_defects"] == 3
    assert (facts["health"], facts["reasons"]) == ("warning", ["elements in grown defect list raw value is 3"])
    facts = read_one(folder, smartctl, acknowledge=[{"serial": "8DG3J2ZD", "attribute": "grown_defects", "raw": 3}])
    assert facts["health"] == "ok"


def test_attribute_failing_now_and_in_the_past(tmp_path):
    folder, smartctl = copy_fixture(tmp_path, "sata_hdd_0_issue42")
    edit(folder, r"^(  5 Reallocated_Sector_Ct\s+0x0033\s+)100(\s+)100(\s+010\s+Pre-fail\s+Always\s+)-(\s+)0$", r"\g<1>005\g<2>005\g<3>FAILING_NOW\g<4>1900")
    facts = read_one(folder, smartctl)
    assert facts["health"] == "failing"
    assert "attribute Reallocated_Sector_Ct (5) is failing now: value 5, threshold 10" in facts["reasons"]

    folder, smartctl = copy_fixture(tmp_path / "past", "sata_hdd_0_issue42")
    edit(folder, r"^(  3 Spin_Up_Time\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+)-", r"\g<1>In_the_past")
    facts = read_one(folder, smartctl)
    assert facts["assessment"] == "WARN"
    assert facts["health"] == "warning"
    assert facts["reasons"] == ["attribute Spin_Up_Time (3) failed in the past: worst 89, threshold 0"]


@pytest.mark.parametrize(
    "value, health, reason",
    [
        ("0x04", "failing", "NVMe critical warning 0x04: NVM subsystem reliability has been degraded due to significant media related errors"),
        ("0x08", "failing", "NVMe critical warning 0x08: media has been placed in read only mode"),
        ("0x02", "warning", "NVMe critical warning 0x02: temperature is above an over-temperature threshold or below an under-temperature threshold"),
    ],
)
def test_nvme_critical_warning(tmp_path, value, health, reason):
    folder, smartctl = copy_fixture(tmp_path, "nvme_1_issue_37")
    edit(folder, r"^Critical Warning:(\s+)0x00", r"Critical Warning:\g<1>" + value)
    facts = read_one(folder, smartctl)
    assert facts["nvme"]["critical_warning"] == int(value, 16)
    assert (facts["health"], facts["reasons"]) == (health, [reason])


def test_nvme_spare_below_threshold_wear_and_media_errors(tmp_path):
    folder, smartctl = copy_fixture(tmp_path, "nvme_1_issue_37")
    edit(folder, r"^Available Spare:(\s+)100%", r"Available Spare:\g<1>5%")
    edit(folder, r"^Percentage Used:(\s+)0%", r"Percentage Used:\g<1>95%")
    edit(folder, r"^Media and Data Integrity Errors:(\s+)0", r"Media and Data Integrity Errors:\g<1>7")
    facts = read_one(folder, smartctl)
    assert facts["health"] == "failing"
    assert facts["reasons"] == [
        "NVMe available spare 5% is below its threshold 10%",
        "media and data integrity errors raw value is 7",
        "NVMe percentage used 95% is over the wear limit 90%",
    ]
    facts = read_one(folder, smartctl, limits={"wear_limit": 96})
    assert "NVMe percentage used 95% is over the wear limit 90%" not in facts["reasons"]


def test_sata_ssd_wear(tmp_path):
    """An ATA SSD's remaining-life attribute counting down past the wear limit
    (this drive's threshold for it is 0, so smartctl itself raises nothing)."""
    folder, smartctl = copy_fixture(tmp_path, "sata_ssd_0_issue_49")
    assert read_one(folder, smartctl)["health"] == "ok"
    edit(folder, r"^(177 Wear_Leveling_Count\s+\S+\s+)100(\s+)100", r"\g<1>007\g<2>007")
    facts = read_one(folder, smartctl)
    assert facts["is_ssd"] is True
    assert (facts["health"], facts["reasons"]) == (
        "warning",
        ["SSD wear: attribute Wear_Leveling_Count (177) is at 7, about 93% of the rated life used, over the wear limit 90%"],
    )
    assert read_one(folder, smartctl, limits={"wear_limit": 95})["health"] == "ok"


def test_temperature_limits(tmp_path):
    smartctl = fake_smartctl.install(tmp_path, folder_of("singletests", "sata_hdd_0_issue42"), state_dir=tmp_path)
    folder = folder_of("singletests", "sata_hdd_0_issue42")
    facts = read_one(folder, smartctl, limits={"temperature_limit_hdd": 35})
    assert (facts["health"], facts["reasons"]) == ("warning", ["temperature 38 C is over the limit 35 C"])
    # the SSD limit does not apply to a rotating drive
    assert read_one(folder, smartctl, limits={"temperature_limit_ssd": 35})["health"] == "ok"


def test_failed_self_test_warns(tmp_path):
    folder, smartctl = copy_fixture(tmp_path, "sata_hdd_0_issue42")
    edit(
        folder,
        r"^# 1  Extended offline    Self-test routine in progress 30%       252         -",
        "# 1  Extended offline    Completed: read failure       90%       252         123456789",
    )
    facts = read_one(folder, smartctl)
    assert facts["health"] == "warning"
    assert facts["reasons"] == ["last self-test (Extended offline at 252 h) did not pass: Completed: read failure"]


# --------------------------------------------------------------------------
# unreadable drives, standby, scanning


def test_one_unreadable_device_does_not_hide_the_others(tmp_path):
    folder, smartctl = copy_fixture(tmp_path, "sata_hdd_0_issue42")
    result = _smart.smart_info(smartctl, [{"name": "/dev/sdz", "interface": "ata"}, {"name": "/dev/sdau", "interface": "ata"}])
    missing, present = result["devices"]
    assert missing["health"] == "unknown"
    assert missing["reasons"] == ["Smartctl open device: /dev/sdz failed: No such device"]
    assert missing["exit_status"] == 2
    assert present["health"] == "ok" and present["serial"] == "00008AXB"


def test_unparsable_output_is_unknown_not_a_crash(tmp_path):
    folder, smartctl = copy_fixture(tmp_path, "nvme_1_issue_37")
    edit(folder, r"^Power On Hours:(\s+)15", r"Power On Hours:\g<1>fifteen")
    facts = read_one(folder, smartctl)
    assert facts["health"] == "unknown"
    assert facts["reasons"][0].startswith("pySMART could not parse the smartctl output for /dev/nvme0: ValueError")


def test_standby_drive_is_not_woken(tmp_path):
    folder, smartctl = copy_fixture(tmp_path, "sata_hdd_0_issue42")
    (folder / "STANDBY").write_text("/dev/sdau\n")
    facts = read_one(folder, smartctl, standby=True)
    assert facts["standby"] is True
    assert facts["health"] == "unknown"
    assert facts["reasons"] == ["/dev/sdau is in STANDBY mode; not woken up because standby is set"]
    assert facts["exit_status"] == 2
    # nothing that could spin the drive up ran without -n standby
    assert calls_of(smartctl).splitlines() == ["-n standby -d ata --all /dev/sdau"]
    # without the option the drive is read (and would spin up)
    assert read_one(folder, smartctl)["serial"] == "00008AXB"


def test_interface_detected_when_not_given(tmp_path):
    folder, smartctl = copy_fixture(tmp_path, "sat_ssd_0_issue_65")
    facts = _smart.smart_info(str(smartctl), [{"name": "/dev/sda"}])["devices"][0]
    assert (facts["interface"], facts["serial"]) == ("sat", "30087840294")
    assert calls_of(smartctl).splitlines()[0] == "-d test /dev/sda"


def test_scan_failure_is_an_error(tmp_path):
    folder, smartctl = copy_fixture(tmp_path, "sata_hdd_0_issue42")
    with pytest.raises(_smart.SmartError, match=r"smartctl --scan-open failed \(exit status 1\): fake smartctl: no recording"):
        _smart.smart_info(smartctl)


def test_parse_scan_skips_open_failures():
    lines = [
        "/dev/sda -d sat # /dev/sda [SAT], ATA device",
        "# /dev/sdb -d scsi # /dev/sdb, SCSI device open failed: Permission denied",
        "/dev/bus/0 -d megaraid,16 # /dev/bus/0 [megaraid_disk_16], SCSI device",
        "",
    ]
    assert _smart.parse_scan(lines) == [{"name": "/dev/sda", "interface": "sat"}, {"name": "/dev/bus/0", "interface": "megaraid,16"}]


# --------------------------------------------------------------------------
# disk map


def test_disk_map_labels_missing_and_unmapped(tmp_path):
    folder, smartctl = copy_fixture(tmp_path, "sata_hdd_0_issue42")
    disk_map = tmp_path / "disk-map"
    disk_map.write_text("# label serial wwn\nP01 00008AXB 0x5000c500a4847915\nP02 ZA12JCHM 0x5000c500858bfea7\n")
    result = _smart.smart_info(smartctl, devices_of(folder), disk_map=str(disk_map))
    assert result["devices"][0]["label"] == "P01"
    assert result["missing"] == [{"label": "P02", "serial": "ZA12JCHM", "wwn": "0x5000c500858bfea7"}]
    assert result["unmapped"] == []

    result = _smart.smart_info(smartctl, devices_of(folder), disk_map=[{"label": "P02", "serial": "ZA12JCHM"}])
    assert result["devices"][0]["label"] is None
    assert result["unmapped"] == [{"name": "/dev/sdau", "serial": "00008AXB", "wwn": "0x5000c500a4847915", "model": "OOS12000G"}]


def test_disk_map_matches_by_wwn_when_serial_differs(tmp_path):
    """Recordings with anonymised serials still match by world wide name (smartctl prints it with spaces)."""
    folder, smartctl = copy_fixture(tmp_path, "sata_hdd_0_issue42")
    result = _smart.smart_info(smartctl, devices_of(folder), disk_map=[{"label": "P07", "serial": "OTHER", "wwn": "5 000c50 0a4847915"}])
    assert result["devices"][0]["label"] == "P07"
    assert result["missing"] == [] and result["unmapped"] == []


def test_bad_disk_map_names_the_line(tmp_path):
    folder, smartctl = copy_fixture(tmp_path, "sata_hdd_0_issue42")
    disk_map = tmp_path / "disk-map"
    disk_map.write_text("P01 00008AXB\n")
    with pytest.raises(_smart.SmartError, match=r"disk-map line 1: expected 'LABEL SERIAL WWN'"):
        _smart.smart_info(smartctl, devices_of(folder), disk_map=str(disk_map))
    with pytest.raises(_smart.SmartError, match=r"disk_map: cannot read .*nope"):
        _smart.smart_info(smartctl, devices_of(folder), disk_map=str(tmp_path / "nope"))


# --------------------------------------------------------------------------
# input checks and smartctl lookup


def test_bad_interface_names_the_device():
    with pytest.raises(_smart.SmartError, match=r"devices\[1\] \(/dev/sdb\): interface 'bogus' is not a smartctl device type"):
        _smart.check_devices([{"name": "/dev/sda"}, {"name": "/dev/sdb", "interface": "bogus"}])
    with pytest.raises(_smart.SmartError, match=r"devices\[0\]: name is required"):
        _smart.check_devices([{"name": " "}])


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"attribute": "5", "raw": 1}, r"acknowledge\[0\]: give serial \(preferred\) or device"),
        ({"serial": "X", "raw": 1}, r"acknowledge\[0\]: attribute is required"),
        ({"serial": "X", "attribute": "5"}, r"acknowledge\[0\]: raw \(the acknowledged raw value\) is required"),
        ({"serial": "X", "attribute": "5", "raw": "many"}, r"acknowledge\[0\]: raw must be an integer"),
        ({"serial": "X", "attribute": "5", "raw": -1}, r"acknowledge\[0\]: raw must not be negative"),
    ],
)
def test_bad_acknowledge_names_the_entry(entry, message):
    with pytest.raises(_smart.SmartError, match=message):
        _smart.check_acknowledge([entry])


def test_find_smartctl(tmp_path):
    with pytest.raises(_smart.SmartError, match="install the smartmontools package"):
        _smart.find_smartctl(None, lambda name: None)
    assert _smart.find_smartctl(None, lambda name: "/usr/sbin/" + name) == "/usr/sbin/smartctl"
    with pytest.raises(_smart.SmartError, match=r"smartctl_path: .*/nope does not exist"):
        _smart.find_smartctl(str(tmp_path / "nope"), None)
    plain = tmp_path / "smartctl"
    plain.write_text("")
    with pytest.raises(_smart.SmartError, match=r"smartctl_path: .* is not an executable file"):
        _smart.find_smartctl(str(plain), None)


def test_require_root_names_the_module_and_uid():
    _smart.require_root("smart_info", euid=0)
    with pytest.raises(_smart.SmartError) as caught:
        _smart.require_root("smart_selftest", euid=65534)
    assert str(caught.value) == ("smart_selftest must run as root (become: true): smartctl needs raw access to the drives; running as uid 65534")


def test_decode_exit_status():
    assert _smart.decode_exit_status(0) == []
    assert _smart.decode_exit_status(0xC0) == [
        "bit 6: the device error log contains records of errors",
        "bit 7: the device self-test log contains records of errors",
    ]


# --------------------------------------------------------------------------
# self-tests


@pytest.mark.parametrize("name", ["sat_ssd_0_issue_65", "nvme_1_issue_37", "sas_hdd_0_issue_51"])
def test_selftest_check_mode_start_and_rerun(tmp_path, name):
    folder, smartctl = copy_fixture(tmp_path, name)
    devices = devices_of(folder)

    planned = _smart.start_selftests(smartctl, devices, "short", check_mode=True)
    assert planned["changed"] is True
    assert planned["devices"][0]["state"] == "would_start"
    assert not any(" -t " in " %s " % line for line in calls_of(smartctl).splitlines())

    started = _smart.start_selftests(smartctl, devices, "short")
    assert started["changed"] is True and started["failed"] == []
    assert started["devices"][0]["state"] == "started"
    assert started["devices"][0]["exit_status"] == 0
    assert [line for line in calls_of(smartctl).splitlines() if "-t" in line.split()] != []

    again = _smart.start_selftests(smartctl, devices, "short")
    assert again["changed"] is False
    assert again["devices"][0]["state"] == "running"
    assert again["devices"][0]["progress_percent"] == 10

    check_again = _smart.start_selftests(smartctl, devices, "short", check_mode=True)
    assert check_again["changed"] is False

    facts = read_one(folder, smartctl)
    assert (facts["self_test_running"], facts["self_test_progress_percent"]) == (True, 10)


@pytest.mark.parametrize("name, progress", [("sata_hdd_0_issue42", 70), ("nvme_win10_0_issue_64", 28)])
def test_selftest_recorded_running_is_left_alone(tmp_path, name, progress):
    folder, smartctl = copy_fixture(tmp_path, name)
    result = _smart.start_selftests(smartctl, devices_of(folder), "long")
    assert result["changed"] is False
    assert (result["devices"][0]["state"], result["devices"][0]["progress_percent"]) == ("running", progress)


def test_selftest_ata_start_reports_completion_time(tmp_path):
    folder, smartctl = copy_fixture(tmp_path, "sat_ssd_0_issue_65")
    (result,) = _smart.start_selftests(smartctl, devices_of(folder), "conveyance")["devices"]
    assert result["state"] == "started"
    assert re.match(r"^\w{3} \w{3} \d\d \d\d:\d\d:\d\d \d{4}", result["estimated_completion"])


def test_selftest_unsupported_and_unreadable_are_failures(tmp_path):
    folder, smartctl = copy_fixture(tmp_path, "nvme_1_issue_37")
    result = _smart.start_selftests(smartctl, devices_of(folder) + [{"name": "/dev/nvme9", "interface": "nvme"}], "conveyance")
    unsupported, unreadable = result["devices"]
    assert unsupported["state"] == "unsupported"
    assert unsupported["message"] == "/dev/nvme0 (Samsung SSD 970 EVO Plus 500GB) does not support the conveyance self-test"
    assert unreadable["state"] == "failed"
    assert unreadable["message"] == "Smartctl open device: /dev/nvme9 failed: No such device"
    assert result["changed"] is False and len(result["failed"]) == 2


@pytest.mark.parametrize("name", ["sat_ssd_0_issue_65", "nvme_1_issue_37", "sas_hdd_0_issue_51", "sata_hdd_0_issue42"])
def test_each_smartctl_query_runs_once_per_drive(tmp_path, name):
    """pySMART repeats --all and its interface probes (-l sataphy, -l sasphy) on every refresh; the drive is asked once."""
    folder, smartctl = copy_fixture(tmp_path, name)
    log = os.path.join(os.path.dirname(smartctl), "calls.log")
    assert _smart.smart_info(smartctl, devices_of(folder))["devices"][0]["serial"]
    calls = calls_of(smartctl).splitlines()
    assert calls and len(calls) == len(set(calls)), calls
    os.remove(log)
    _smart.start_selftests(smartctl, devices_of(folder), "short")
    calls = calls_of(smartctl).splitlines()
    assert len(calls) == len(set(calls)), calls
    assert len([line for line in calls if "-t" in line.split()]) <= 1


def test_selftest_bad_test_type():
    with pytest.raises(_smart.SmartError, match=r"test: 'offline' is not one of short, long, conveyance"):
        _smart.start_selftests("/bin/true", [{"name": "/dev/sda"}], "offline")


# --------------------------------------------------------------------------
# the real smartctl, where installed: the fake's wording is smartctl's


def test_real_smartctl_on_a_missing_device():
    real = shutil.which("smartctl") or next((p for p in ("/usr/sbin/smartctl", "/sbin/smartctl") if os.path.exists(p)), None)
    if not real:
        pytest.skip("smartctl (smartmontools) is not installed")
    facts = _smart.smart_info(real, [{"name": "/dev/datasteward-no-such-drive", "interface": "ata"}])["devices"][0]
    assert facts["health"] == "unknown"
    assert facts["reasons"] == ["Smartctl open device: /dev/datasteward-no-such-drive failed: No such device"]
    assert facts["exit_status"] == 2
