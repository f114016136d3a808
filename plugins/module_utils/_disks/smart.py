# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""SMART engine: drive facts through pySMART, our health verdict, self-tests.

pySMART parses smartctl's text output; its ``Smartctl`` wrapper is pointed at
a configurable smartctl and, here, runs smartctl through an injected
``run_command`` (AnsibleModule.run_command in the modules, subprocess in the
unit tests), recording every call so smartctl's exit-status bitmask and raw
lines stay available. No AnsibleModule import.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import traceback
import warnings

from ansible_collections.datasteward.storage.plugins.module_utils._disks.diskmap import (
    DiskMapError,
    load_disk_map,
    normalize_wwn,
)

try:
    from pySMART import Device
    from pySMART.interface import NvmeAttributes, SCSIAttributes
    from pySMART.smartctl import Smartctl
    from pySMART.utils import smartctl_isvalid_type
except ImportError:
    HAS_PYSMART = False
    PYSMART_IMPORT_ERROR = traceback.format_exc()
    Device = NvmeAttributes = SCSIAttributes = None
    Smartctl = object
    smartctl_isvalid_type = None
else:
    HAS_PYSMART = True
    PYSMART_IMPORT_ERROR = None

# pySMART logs through the "pySMART" logger; without a handler Python would
# print its warnings on the module's stderr.
logging.getLogger("pySMART").addHandler(logging.NullHandler())

C_LOCALE = {"LANG": "C", "LC_ALL": "C", "LC_MESSAGES": "C"}

HEALTH_ORDER = ("ok", "warning", "failing", "unknown")
TEST_TYPES = ("short", "long", "conveyance")

# ATA attributes whose raw value counts damage: any non-zero value warns.
ATA_COUNTERS = {
    5: "Reallocated_Sector_Ct",
    187: "Reported_Uncorrect",
    188: "Command_Timeout",
    197: "Current_Pending_Sector",
    198: "Offline_Uncorrectable",
}

# smartctl(8), RETURN VALUES: bit -> meaning.
EXIT_STATUS_BITS = (
    (0, "command line did not parse"),
    (1, "device open failed, device did not return an IDENTIFY DEVICE structure, or device is in a low-power mode"),
    (2, "some SMART or other ATA command to the disk failed, or there was a checksum error in a SMART data structure"),
    (3, "SMART status check returned DISK FAILING"),
    (4, "prefail attributes found <= threshold"),
    (5, "SMART status check returned DISK OK but some (usage or prefail) attributes have been <= threshold at some time in the past"),
    (6, "the device error log contains records of errors"),
    (7, "the device self-test log contains records of errors"),
)

# NVMe SMART/Health log, Critical Warning bits.
NVME_CRITICAL_WARNINGS = (
    (0x01, "available spare capacity has fallen below the threshold"),
    (0x02, "temperature is above an over-temperature threshold or below an under-temperature threshold"),
    (0x04, "NVM subsystem reliability has been degraded due to significant media related errors"),
    (0x08, "media has been placed in read only mode"),
    (0x10, "volatile memory backup device has failed"),
    (0x20, "persistent memory region has become read-only or unreliable"),
)

# smartctl options that act on the drive rather than read it.
WRITING_OPTIONS = frozenset(("-t", "--test", "-X", "--abort", "-s", "--smart", "-o", "--offlineauto", "-S", "--saveauto"))

# ATA attributes whose normalised value is the remaining rated life of an SSD in
# percent: Wear_Leveling_Count, Percent_Lifetime_Remain, SSD_Life_Left,
# Media_Wearout_Indicator.
SSD_LIFE_ATTRIBUTES = frozenset((177, 202, 231, 233))
DEFAULT_LIMITS = {"temperature_limit_hdd": 60, "temperature_limit_ssd": 70, "wear_limit": 90}
SELF_TESTS_REPORTED = 5


class SmartError(Exception):
    """Bad input or an unusable smartctl; the message names the option or device and the cause."""


def default_run_command(args):
    """Run a command the way the modules do (no shell, C locale); return (rc, stdout bytes, stderr bytes)."""
    env = dict(os.environ)
    env.update(C_LOCALE)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out, err = proc.communicate()
    return proc.returncode, out, err


def _text(data):
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data


class RecordingSmartctl(Smartctl):
    """pySMART's Smartctl, running smartctl through ``run_command`` and keeping every call.

    pySMART repeats its queries: every ``Device.update()`` (the constructor,
    ``get_selftest_result()``, ``run_selftest()``) runs ``--all`` again and,
    for ATA and SCSI drives, its interface probes (``-l sataphy``,
    ``-l sasphy``). One instance serves one drive for a moment, so a query it
    has already run is answered from memory until a call that changes the drive
    (``-t``, ``-X``, ``-s``, ...) is made.
    """

    def __init__(self, smartctl_path, run_command=None, options=None):
        # pySMART's own constructor; options are extra smartctl arguments
        # (``-n standby``) that pySMART passes on its --all/--info queries.
        super(RecordingSmartctl, self).__init__(smartctl_path=smartctl_path, options=list(options or []))
        self.run_command = run_command or default_run_command
        self.calls = []
        self._answers = {}

    def _exec(self, cmd):
        args = [str(part) for part in cmd]
        key = tuple(args)
        if key in self._answers:
            lines, rc = self._answers[key]
            return list(lines), rc
        rc, out, err = self.run_command(args)
        # pySMART's own decoding (it detects the encoding: some recordings
        # use non-UTF-8 thousands separators).
        lines = self._decode_output(out) if isinstance(out, bytes) else _text(out).splitlines()
        self.calls.append({"args": args[1:], "rc": rc, "lines": lines, "stderr": _text(err)})
        if WRITING_OPTIONS.isdisjoint(args):
            self._answers[key] = (list(lines), rc)
        else:
            self._answers.clear()
        return lines, rc

    def last_call(self, *flags):
        """The most recent call whose arguments include every flag, or None."""
        for call in reversed(self.calls):
            if all(flag in call["args"] for flag in flags):
                return call
        return None


def smart_argument_spec(**options):
    """The argument spec of a SMART module: the options of the ``datasteward.storage._smart``
    doc fragment (``smartctl_path``, ``devices``) plus the module's own ``options``."""
    spec = dict(
        smartctl_path=dict(type="path"),
        devices=dict(type="list", elements="dict", options=dict(
            name=dict(type="str", required=True),
            interface=dict(type="str"),
        )),
    )
    spec.update(options)
    return spec


def require_root(module_name, euid=None):
    """Raise SmartError unless running as root: smartctl needs raw access to the drives."""
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        raise SmartError("%s must run as root (become: true): smartctl needs raw access to the drives; running as uid %d"
                         % (module_name, euid))


def find_smartctl(smartctl_path, get_bin_path):
    """The smartctl executable: the option's path, else ``get_bin_path('smartctl')`` (PATH and sbin dirs)."""
    if smartctl_path:
        if not os.path.exists(smartctl_path):
            raise SmartError("smartctl_path: %s does not exist" % smartctl_path)
        if not os.path.isfile(smartctl_path) or not os.access(smartctl_path, os.X_OK):
            raise SmartError("smartctl_path: %s is not an executable file" % smartctl_path)
        return smartctl_path
    found = get_bin_path("smartctl")
    if not found:
        raise SmartError("smartctl was not found on the PATH or in /sbin, /usr/sbin, /usr/local/sbin: install the smartmontools package "
                         "(Debian/Ubuntu: apt-get install smartmontools; RHEL/Fedora: dnf install smartmontools), or set smartctl_path")
    return found


def decode_exit_status(status):
    """smartctl's exit-status bitmask as the list of meanings of the bits set."""
    if not status or status < 0:
        return []
    return ["bit %d: %s" % (bit, text) for bit, text in EXIT_STATUS_BITS if status & (1 << bit)]


def check_devices(devices, option="devices"):
    """Validate ``devices`` (list of dicts with ``name`` and optional ``interface``)."""
    checked = []
    for index, item in enumerate(devices or []):
        name = (item.get("name") or "").strip()
        if not name:
            raise SmartError("%s[%d]: name is required (a device such as /dev/sda)" % (option, index))
        interface = item.get("interface") or None
        if interface is not None:
            interface = interface.strip()
            if HAS_PYSMART and not smartctl_isvalid_type(interface.lower()):
                raise SmartError("%s[%d] (%s): interface %r is not a smartctl device type pySMART knows (for example ata, sat, scsi, "
                                 "nvme, usbjmicron, megaraid,N, sat+megaraid,N)" % (option, index, name, interface))
        checked.append({"name": name, "interface": interface})
    return checked


def check_acknowledge(entries, option="acknowledge"):
    """Validate acknowledged counters: ``serial`` or ``device``, ``attribute`` and ``raw``."""
    checked = []
    for index, item in enumerate(entries or []):
        serial = item.get("serial")
        device = item.get("device")
        if not serial and not device:
            raise SmartError("%s[%d]: give serial (preferred) or device to say which drive the counter belongs to" % (option, index))
        attribute = str(item.get("attribute") or "").strip()
        if not attribute:
            raise SmartError("%s[%d]: attribute is required (an ATA attribute ID or name, media_errors or grown_defects)" % (option, index))
        raw = item.get("raw")
        if raw is None or isinstance(raw, bool):
            raise SmartError("%s[%d]: raw (the acknowledged raw value) is required" % (option, index))
        try:
            raw = int(raw)
        except (TypeError, ValueError):
            raise SmartError("%s[%d]: raw must be an integer, got %r" % (option, index, item.get("raw")))
        if raw < 0:
            raise SmartError("%s[%d]: raw must not be negative, got %d" % (option, index, raw))
        checked.append({"serial": serial, "device": device, "attribute": attribute.lower(), "raw": raw})
    return checked


def parse_scan(lines):
    """``smartctl --scan-open`` lines into [{'name', 'interface'}]; comment lines (open failures) are skipped."""
    found = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"^(\S+)\s+-d\s+(\S+)", line)
        if match:
            found.append({"name": match.group(1), "interface": match.group(2)})
    return found


def scan_devices(smartctl_path, run_command=None):
    """Every device ``smartctl --scan-open`` finds."""
    smartctl = RecordingSmartctl(smartctl_path, run_command)
    lines, rc = smartctl.generic_call(["--scan-open"])
    found = parse_scan(lines)
    if not found and rc:
        call = smartctl.calls[-1]
        raise SmartError("smartctl --scan-open failed (exit status %d): %s" % (rc, (call["stderr"] or "\n".join(lines)).strip()))
    return found


# --------------------------------------------------------------------------
# raw-output helpers (what pySMART does not keep)

def parse_wwn(lines):
    """The drive's world wide name: ``0x...`` (ATA LU WWN, SCSI LU id) or ``eui....`` (NVMe EUI-64)."""
    for line in lines:
        if ":" not in line:
            continue
        key, value = line.split(":", 1)
        key = key.strip()
        value = value.strip()
        if key == "LU WWN Device Id" or key == "Logical Unit id":
            text = normalize_wwn(value)
            return "0x" + text if text else None
        if re.match(r"^Namespace \d+ IEEE EUI-64$", key):
            text = normalize_wwn(value)
            return "eui." + text if text else None
    return None


def parse_assessment_text(lines):
    for line in lines:
        if "SMART overall-health self-assessment" in line or "SMART Health Status" in line:
            return line.split(":", 1)[1].strip()
    return None


def parse_running_test(lines):
    """(running, completed percent or None) from a --all output."""
    for index, line in enumerate(lines):
        if line.startswith("Self-test execution status:"):
            if "in progress" in line:
                following = lines[index + 1] if index + 1 < len(lines) else ""
                match = re.search(r"(\d+)% of test remaining", following)
                return True, (100 - int(match.group(1))) if match else None
            match = re.search(r"(\d+)% of test remaining", line)
            if match:
                return True, 100 - int(match.group(1))
        match = re.match(r"^Self-test status: \w+.* self-test in progress \((\d+)% completed\)", line)
        if match:
            return True, int(match.group(1))
    return False, None


def parse_scsi_counters(lines):
    found = {}
    for line in lines:
        match = re.match(r"^Elements in grown defect list:\s*(\d+)", line)
        if match:
            found["grown_defects"] = int(match.group(1))
        match = re.match(r"^Accumulated power on time, hours:minutes\s*(\d+):", line)
        if match:
            found["power_on_hours"] = int(match.group(1))
        match = re.match(r"^Non-medium error count:\s*(\d+)", line)
        if match:
            found["non_medium_errors"] = int(match.group(1))
    return found


def _power_mode(lines):
    """The low-power mode smartctl -n found the drive in (``Device is in STANDBY mode, exit(2)``), else None."""
    for line in lines:
        match = re.match(r"^Device is in (\S+(?: \S+)*) mode, exit\(\d+\)", line)
        if match:
            return match.group(1)
    return None


def _open_failure(lines, stderr):
    for line in list(lines) + _text(stderr).splitlines():
        if "Smartctl open device" in line or "open failed" in line or "No such device" in line:
            reason = line.strip()
            if "Permission denied" in line:
                reason += " (smartctl needs root: run the task with become: true)"
            return reason
    return None


# --------------------------------------------------------------------------
# reading one device

def _empty_facts(name, interface):
    return {
        "name": name, "interface": interface, "model": None, "serial": None, "wwn": None, "firmware": None,
        "capacity_bytes": None, "rotation_rate": None, "is_ssd": None, "smart_capable": None, "smart_enabled": None,
        "assessment": None, "assessment_text": None, "temperature_c": None, "power_on_hours": None,
        "attributes": [], "nvme": None, "scsi": None, "self_tests": [], "self_test_running": False,
        "self_test_progress_percent": None, "standby": False, "exit_status": None, "exit_status_flags": [],
        "label": None, "health": "unknown", "reasons": [], "acknowledged": [],
    }


def open_device(name, interface, smartctl):
    """pySMART's Device for one drive (None if pySMART gave up), with its warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        device = Device(name, interface=interface, smartctl=smartctl)
    return device


def read_device(smartctl_path, name, interface=None, standby=False, run_command=None):
    """Facts for one drive. Never raises for a drive that cannot be read: that drive gets ``unread`` set."""
    facts = _empty_facts(name, interface)
    smartctl = RecordingSmartctl(smartctl_path, run_command, ["-n", "standby"] if standby else None)
    if standby:
        # pySMART follows its --all query with others that do not pass -n
        # (-l sataphy, -l sasphy) and would wake the drive: ask first.
        lines = smartctl.all(name, interface)
        asleep = _power_mode(lines)
        if asleep:
            call = smartctl.calls[-1]
            facts.update(standby=True, exit_status=call["rc"], exit_status_flags=decode_exit_status(call["rc"]))
            facts["unread"] = "%s is in %s mode; not woken up because standby is set" % (name, asleep)
            return facts, None
    try:
        device = open_device(name, interface, smartctl)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # pySMART raises whatever its parsers hit on output it does not
        # expect; one such drive must not hide the others.
        facts["unread"] = "pySMART could not parse the smartctl output for %s: %s: %s" % (name, type(exc).__name__, exc)
        return facts, None
    call = smartctl.last_call("--all") or smartctl.last_call("--info")
    if call is None:
        probe = smartctl.last_call("test")
        reason = _open_failure(probe["lines"], probe["stderr"]) if probe else None
        facts["unread"] = reason or "smartctl could not detect the device type of %s (smartctl -d test failed)" % name
        if probe:
            facts["exit_status"] = probe["rc"]
            facts["exit_status_flags"] = decode_exit_status(probe["rc"])
        return facts, None

    lines = call["lines"]
    facts["exit_status"] = call["rc"]
    facts["exit_status_flags"] = decode_exit_status(call["rc"])
    facts["interface"] = device.interface or interface
    asleep = _power_mode(lines)
    if asleep:
        facts["standby"] = True
        facts["unread"] = "%s is in %s mode; not woken up because standby is set" % (name, asleep)
        return facts, device
    if call["rc"] & 0x03:
        reason = _open_failure(lines, call["stderr"])
        if reason or not device.model:
            stderr = call["stderr"].strip()
            facts["unread"] = reason or "smartctl could not read %s (exit status %d: %s)%s" % (
                name, call["rc"], "; ".join(decode_exit_status(call["rc"] & 0x03)), ": " + stderr if stderr else "")
            return facts, device

    facts.update({
        "model": device.model,
        "serial": device.serial,
        "wwn": parse_wwn(lines),
        "firmware": device.firmware,
        "capacity_bytes": device.size or None,
        "rotation_rate": device.rotation_rate,
        "is_ssd": bool(device.is_ssd),
        "smart_capable": bool(device.smart_capable),
        "smart_enabled": bool(device.smart_enabled),
        "assessment": device.assessment,
        "assessment_text": parse_assessment_text(lines),
        "temperature_c": device.temperature,
    })
    running, progress = parse_running_test(lines)
    facts["self_test_running"] = running
    facts["self_test_progress_percent"] = progress

    attributes = []
    for attr in device.attributes:
        if attr is None:
            continue
        attributes.append({
            "id": attr.num, "name": attr.name, "value": attr.value_int, "worst": attr.worst, "thresh": attr.thresh,
            "type": attr.type, "updated": attr.updated, "when_failed": attr.when_failed, "raw": attr.raw,
            "raw_int": attr.raw_int,
        })
    facts["attributes"] = attributes
    for attr in attributes:
        if attr["id"] == 9 and attr["raw_int"] is not None:
            facts["power_on_hours"] = attr["raw_int"]

    nvme = device.if_attributes if isinstance(device.if_attributes, NvmeAttributes) else None
    if nvme is not None:
        facts["nvme"] = {
            "critical_warning": nvme.criticalWarning,
            "available_spare": nvme.availableSpare,
            "available_spare_threshold": nvme.availableSpareThreshold,
            "percentage_used": nvme.percentageUsed,
            "media_errors": nvme.integrityErrors,
            "error_log_entries": nvme.errorEntries,
            "unsafe_shutdowns": nvme.unsafeShutdowns,
            "power_cycles": nvme.powerCycles,
            "errors": [{"num": err.num, "error_count": err.errCount, "sqid": err.sqId, "cmdid": err.cmdId,
                        "status": err.status, "lba": err.lba, "nsid": err.nsid} for err in nvme.errors],
        }
        facts["power_on_hours"] = nvme.powerOnHours
    elif isinstance(device.if_attributes, SCSIAttributes):
        counters = parse_scsi_counters(lines)
        facts["scsi"] = {"grown_defects": counters.get("grown_defects"), "non_medium_errors": counters.get("non_medium_errors")}
        if counters.get("power_on_hours") is not None:
            facts["power_on_hours"] = counters["power_on_hours"]

    tests = []
    for entry in device.tests[:SELF_TESTS_REPORTED]:
        tests.append({"num": entry.num, "type": entry.type, "status": entry.status, "remaining": entry.remain,
                      "hours": entry.hours, "lba": entry.LBA})
    facts["self_tests"] = tests

    if not device.smart_capable and not device.smart_enabled and device.assessment is None:
        facts["unread"] = "SMART is not available on %s (a RAID volume or a bridge that hides the drive?); " \
                          "name the physical drive, e.g. with interface megaraid,N or sat" % name
    elif not device.smart_enabled and device.assessment is None:
        facts["unread"] = "SMART is disabled on %s; enable it with smartctl -s on %s" % (name, name)
    return facts, device


# --------------------------------------------------------------------------
# verdict

def _counters(facts):
    """(keys, label, raw) for every counter that warns when non-zero."""
    found = []
    for attr in facts["attributes"]:
        if attr["id"] in ATA_COUNTERS and attr["raw_int"]:
            found.append(({str(attr["id"]), attr["name"].lower()}, "%s (%d)" % (attr["name"], attr["id"]), attr["raw_int"]))
    if facts["nvme"] and facts["nvme"]["media_errors"]:
        found.append(({"media_errors"}, "media and data integrity errors", facts["nvme"]["media_errors"]))
    if facts["scsi"] and facts["scsi"]["grown_defects"]:
        found.append(({"grown_defects"}, "elements in grown defect list", facts["scsi"]["grown_defects"]))
    return found


def _acknowledged_raw(facts, keys, acknowledge):
    best = None
    for entry in acknowledge:
        if entry["serial"] and entry["serial"] != facts["serial"]:
            continue
        if not entry["serial"] and entry["device"] != facts["name"]:
            continue
        if entry["attribute"] in keys:
            best = entry["raw"] if best is None else max(best, entry["raw"])
    return best


def assess(facts, acknowledge=None, limits=None):
    """Our verdict for one drive: (health, reasons, acknowledged)."""
    limits = dict(DEFAULT_LIMITS, **(limits or {}))
    if facts.get("unread"):
        return "unknown", [facts["unread"]], []
    failing = []
    warning = []
    acknowledged = []
    status = facts["exit_status"] or 0

    if facts["assessment"] == "FAIL":
        failing.append("the drive's SMART self-assessment failed: %s" % (facts["assessment_text"] or "FAILED"))
    if status & 0x08:
        failing.append("smartctl exit status %d, bit 3: SMART status check returned DISK FAILING" % status)
    if status & 0x10:
        failing.append("smartctl exit status %d, bit 4: prefail attributes found <= threshold" % status)
    if status & 0x20:
        warning.append("smartctl exit status %d, bit 5: some attributes have been <= threshold in the past" % status)

    for attr in facts["attributes"]:
        when = attr["when_failed"] or "-"
        if when == "FAILING_NOW":
            failing.append("attribute %s (%d) is failing now: value %s, threshold %s" % (attr["name"], attr["id"], attr["value"], attr["thresh"]))
        elif when == "In_the_past":
            warning.append("attribute %s (%d) failed in the past: worst %s, threshold %s" % (attr["name"], attr["id"], attr["worst"], attr["thresh"]))
        elif when != "-":
            warning.append("attribute %s (%d) says it failed %r" % (attr["name"], attr["id"], when))

    for keys, label, raw in _counters(facts):
        known = _acknowledged_raw(facts, keys, acknowledge or [])
        if known is not None and raw <= known:
            acknowledged.append({"attribute": label, "raw": raw, "acknowledged_raw": known})
        elif known is not None:
            warning.append("%s raw value %d grew past the acknowledged %d" % (label, raw, known))
        else:
            warning.append("%s raw value is %d" % (label, raw))

    if facts["is_ssd"]:
        for attr in facts["attributes"]:
            # Normalised values of these count down from 100 as the rated life is used.
            if attr["id"] in SSD_LIFE_ATTRIBUTES and isinstance(attr["value"], int) and 0 <= attr["value"] <= 100:
                used = 100 - attr["value"]
                if used > limits["wear_limit"]:
                    warning.append("SSD wear: attribute %s (%d) is at %d, about %d%% of the rated life used, over the wear limit %d%%"
                                   % (attr["name"], attr["id"], attr["value"], used, limits["wear_limit"]))

    nvme = facts["nvme"]
    if nvme:
        critical = nvme["critical_warning"] or 0
        for bit, text in NVME_CRITICAL_WARNINGS:
            if critical & bit:
                (warning if bit == 0x02 else failing).append("NVMe critical warning 0x%02x: %s" % (bit, text))
        spare, threshold = nvme["available_spare"], nvme["available_spare_threshold"]
        if spare is not None and threshold is not None and spare < threshold and not critical & 0x01:
            failing.append("NVMe available spare %d%% is below its threshold %d%%" % (spare, threshold))
        used = nvme["percentage_used"]
        if used is not None and used > limits["wear_limit"]:
            warning.append("NVMe percentage used %d%% is over the wear limit %d%%" % (used, limits["wear_limit"]))

    temperature = facts["temperature_c"]
    limit = limits["temperature_limit_ssd"] if facts["is_ssd"] else limits["temperature_limit_hdd"]
    if temperature is not None and temperature > limit:
        warning.append("temperature %d C is over the limit %d C" % (temperature, limit))

    for entry in facts["self_tests"]:
        text = (entry["status"] or "").lower()
        if "progress" in text or text == "running":
            continue
        if "fail" in text or "fatal" in text:
            warning.append("last self-test (%s at %s h) did not pass: %s" % (entry["type"], entry["hours"], entry["status"]))
        break

    if failing:
        return "failing", failing + warning, acknowledged
    if warning:
        return "warning", warning, acknowledged
    return "ok", [], acknowledged


def apply_disk_map(devices, disk_map):
    """Set each device's ``label``; return (missing, unmapped)."""
    entries = load_disk_map(disk_map) if isinstance(disk_map, (list, tuple)) else load_disk_map(disk_map, "disk_map")
    matched = set()
    unmapped = []
    by_serial = dict((entry["serial"].strip().lower(), index) for index, entry in enumerate(entries))
    by_wwn = dict((normalize_wwn(entry["wwn"]), index) for index, entry in enumerate(entries) if entry.get("wwn"))
    for facts in devices:
        index = None
        if facts["serial"]:
            index = by_serial.get(facts["serial"].strip().lower())
        if index is None and facts["wwn"]:
            index = by_wwn.get(normalize_wwn(facts["wwn"]))
        if index is None:
            if facts["serial"] or facts["wwn"]:
                unmapped.append({"name": facts["name"], "serial": facts["serial"], "wwn": facts["wwn"], "model": facts["model"]})
            continue
        matched.add(index)
        facts["label"] = entries[index]["label"]
    missing = [dict(entry) for index, entry in enumerate(entries) if index not in matched]
    return missing, unmapped


def smart_info(smartctl_path, devices=None, standby=False, disk_map=None, acknowledge=None, limits=None, run_command=None):
    """Facts and verdicts for the given devices (default: every device smartctl --scan-open finds)."""
    wanted = check_devices(devices) if devices else scan_devices(smartctl_path, run_command)
    acknowledge = check_acknowledge(acknowledge)
    results = []
    for item in wanted:
        facts, dummy = read_device(smartctl_path, item["name"], item["interface"], standby, run_command)
        facts["health"], facts["reasons"], facts["acknowledged"] = assess(facts, acknowledge, limits)
        facts.pop("unread", None)
        results.append(facts)
    missing, unmapped = [], []
    if disk_map:
        try:
            missing, unmapped = apply_disk_map(results, disk_map)
        except DiskMapError as exc:
            raise SmartError(str(exc))
    return {"devices": results, "missing": missing, "unmapped": unmapped}


# --------------------------------------------------------------------------
# self-tests

def _selftest_one(smartctl_path, item, test, check_mode, run_command):
    result = {"name": item["name"], "interface": item["interface"], "model": None, "serial": None, "test": test,
              "state": None, "changed": False, "message": None, "progress_percent": None,
              "estimated_completion": None, "exit_status": None}
    facts, device = read_device(smartctl_path, item["name"], item["interface"], False, run_command)
    result.update({"model": facts["model"], "serial": facts["serial"], "interface": facts["interface"]})
    if facts.get("unread") or device is None:
        result.update(state="failed", message=facts.get("unread") or "could not read %s" % item["name"])
        return result
    if not device.test_capabilities.get(test):
        result.update(state="unsupported", message="%s (%s) does not support the %s self-test" % (item["name"], facts["model"], test))
        return result
    code, message, progress = device.get_selftest_result()
    if code == 1:
        result.update(state="running", message="a self-test is already in progress; not starting another",
                      progress_percent=progress if progress is not None else facts["self_test_progress_percent"])
        return result
    if check_mode:
        result.update(state="would_start", changed=True, message="would start a %s self-test (check mode)" % test)
        return result
    code, message, eta = device.run_selftest(test)
    call = device.smartctl.last_call("-t")
    result["exit_status"] = call["rc"] if call else None
    if code == 0:
        result.update(state="started", changed=True, message=message, estimated_completion=eta)
    elif code == 1:
        result.update(state="running", message="a self-test is already in progress; not starting another")
    elif code == 2:
        result.update(state="unsupported", message=message)
    else:
        output = " ".join(line.strip() for line in (call["lines"][3:] if call else []) if line.strip())
        detail = output or (call["stderr"].strip() if call else "")
        result.update(state="failed", message="smartctl did not start the %s self-test on %s (exit status %s): %s" % (
            test, item["name"], result["exit_status"], detail or message))
    return result


def start_selftests(smartctl_path, devices=None, test="short", check_mode=False, run_command=None):
    """Start ``test`` on each device not already testing. Returns {'devices': [...], 'changed': bool, 'failed': [...]}."""
    if test not in TEST_TYPES:
        raise SmartError("test: %r is not one of %s" % (test, ", ".join(TEST_TYPES)))
    wanted = check_devices(devices) if devices else scan_devices(smartctl_path, run_command)
    results = [_selftest_one(smartctl_path, item, test, check_mode, run_command) for item in wanted]
    failed = [item for item in results if item["state"] in ("failed", "unsupported")]
    return {"devices": results, "changed": any(item["changed"] for item in results), "failed": failed}
