# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""SMART engine: drive facts through pySMART, self-tests, a deadline per drive.

pySMART parses smartctl's text output; its ``Smartctl`` wrapper is pointed at
a configurable smartctl and, here, runs smartctl through an injected
``run_command`` (by default ``_disks/process.run_with_deadline``: its own
session, killed with its whole process group at the deadline), recording every
call so smartctl's exit-status bitmask and raw lines stay available. Each
drive gets ``timeout`` seconds for all its smartctl calls; drives are read
concurrently (at most ``MAX_PARALLEL`` at once), so a wedged drive delays the
others by at most its timeout. The verdict is ``_disks/health.py``. No
AnsibleModule import.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import re
import time
import traceback
import warnings

from ansible_collections.datasteward.storage.plugins.module_utils._disks.diskmap import (
    DiskMapError,
    load_disk_map,
    normalize_wwn,
)
from ansible_collections.datasteward.storage.plugins.module_utils._disks.health import assess
from ansible_collections.datasteward.storage.plugins.module_utils._disks.process import (
    C_LOCALE,
    CommandTimeout,
    run_with_deadline,
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

TEST_TYPES = ("short", "long", "conveyance")

# Seconds a drive gets for all its smartctl calls (smartctl's own command
# timeouts are of the same order; a drive spinning up takes 10-20 s).
DEFAULT_TIMEOUT = 60.0
# Drives read at once: enough that a wedged drive or two do not hold up the
# rest, few enough not to flood one controller with pass-through commands.
MAX_PARALLEL = 8

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

# smartctl options that act on the drive rather than read it.
WRITING_OPTIONS = frozenset(("-t", "--test", "-X", "--abort", "-s", "--smart", "-o", "--offlineauto", "-S", "--saveauto"))

SELF_TESTS_REPORTED = 5


class SmartError(Exception):
    """Bad input or an unusable smartctl; the message names the option or device and the cause."""


def run_smartctl(args, timeout):
    """Run smartctl the way the modules do (no shell, C locale, its own session, a deadline): (rc, stdout, stderr)."""
    return run_with_deadline(args, timeout, C_LOCALE)


def _text(data):
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data


class RecordingSmartctl(Smartctl):
    """pySMART's Smartctl, running smartctl through ``run_command`` under one deadline, keeping every call.

    pySMART repeats its queries: every ``Device.update()`` (the constructor,
    ``get_selftest_result()``, ``run_selftest()``) runs ``--all`` again and,
    for ATA and SCSI drives, its interface probes (``-l sataphy``,
    ``-l sasphy``). One instance serves one drive for a moment, so a query it
    has already run is answered from memory until a call that changes the drive
    (``-t``, ``-X``, ``-s``, ...) is made.

    All calls share ``timeout`` seconds from the instance's creation. A call
    that misses the deadline raises CommandTimeout (its process group killed);
    so does every later call, and ``timed_out`` keeps the first one, because
    pySMART swallows the exceptions of some of its calls.
    """

    def __init__(self, smartctl_path, run_command=None, options=None, timeout=DEFAULT_TIMEOUT):
        # pySMART's own constructor; options are extra smartctl arguments
        # (``-n standby``) that pySMART passes on its --all/--info queries.
        super(RecordingSmartctl, self).__init__(smartctl_path=smartctl_path, options=list(options or []))
        self.run_command = run_command or run_smartctl
        self.calls = []
        self._answers = {}
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.timed_out = None

    def _run(self, args):
        if self.timed_out is not None:
            raise self.timed_out
        try:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise CommandTimeout(args, self.timeout, killed=False)
            return self.run_command(args, remaining)
        except CommandTimeout as exc:
            # Report the drive's budget, not what was left of it for this call.
            self.timed_out = CommandTimeout(args, self.timeout, exc.stuck, exc.killed)
            raise self.timed_out
        except OSError as exc:  # not one drive's problem: no drive can be read
            raise SmartError("cannot run %s: %s" % (args[0], exc.strerror or exc))

    def _exec(self, cmd):
        args = [str(part) for part in cmd]
        key = tuple(args)
        if key in self._answers:
            lines, rc = self._answers[key]
            return list(lines), rc
        rc, out, err = self._run(args)
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


def timeout_reason(name, exc):
    """What to report for a drive whose smartctl missed its deadline."""
    call = "smartctl %s" % " ".join(exc.argv[1:])
    reason = "smartctl did not answer within %g s for %s (%s): a wedged drive or controller?" % (
        exc.timeout,
        name,
        call + " was killed" if exc.killed else "no time was left for " + call,
    )
    if exc.stuck:
        reason += "; pid %s did not exit after SIGKILL (stuck in the kernel)" % ", ".join(str(pid) for pid in exc.stuck)
    return reason


def smart_argument_spec(**options):
    """The argument spec of a SMART module: the options of the ``datasteward.storage._smart``
    doc fragment (``smartctl_path``, ``devices``, ``timeout``) plus the module's own ``options``."""
    spec = dict(
        smartctl_path=dict(type="path"),
        devices=dict(
            type="list",
            elements="dict",
            options=dict(
                name=dict(type="str", required=True),
                interface=dict(type="str"),
            ),
        ),
        timeout=dict(type="float", default=DEFAULT_TIMEOUT),
    )
    spec.update(options)
    return spec


def require_root(module_name, euid=None):
    """Raise SmartError unless running as root: smartctl needs raw access to the drives."""
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        raise SmartError("%s must run as root (become: true): smartctl needs raw access to the drives; running as uid %d" % (module_name, euid))


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
        raise SmartError(
            "smartctl was not found on the PATH or in /sbin, /usr/sbin, /usr/local/sbin: install the smartmontools package "
            "(Debian/Ubuntu: apt-get install smartmontools; RHEL/Fedora: dnf install smartmontools), or set smartctl_path"
        )
    return found


def decode_exit_status(status):
    """smartctl's exit-status bitmask as the list of meanings of the bits set."""
    if not status or status < 0:
        return []
    return ["bit %d: %s" % (bit, text) for bit, text in EXIT_STATUS_BITS if status & (1 << bit)]


def check_timeout(timeout, option="timeout"):
    if timeout is None or timeout <= 0:
        raise SmartError("%s must be greater than 0 (seconds a drive gets for its smartctl calls), got %s" % (option, timeout))


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
                raise SmartError(
                    "%s[%d] (%s): interface %r is not a smartctl device type pySMART knows (for example ata, sat, scsi, "
                    "nvme, usbjmicron, megaraid,N, sat+megaraid,N)" % (option, index, name, interface)
                )
        checked.append({"name": name, "interface": interface})
    return checked


def _check_acknowledge_raw(item, option, index):
    raw = item.get("raw")
    if raw is None or isinstance(raw, bool):
        raise SmartError("%s[%d]: raw (the acknowledged raw value) is required" % (option, index))
    try:
        raw = int(raw)
    except (TypeError, ValueError):
        raise SmartError("%s[%d]: raw must be an integer, got %r" % (option, index, item.get("raw")))
    if raw < 0:
        raise SmartError("%s[%d]: raw must not be negative, got %d" % (option, index, raw))
    return raw


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
        raw = _check_acknowledge_raw(item, option, index)
        checked.append({"serial": serial, "device": device, "attribute": attribute.lower(), "raw": raw})
    return checked


# --------------------------------------------------------------------------
# which drives


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


def _scan(smartctl_path, run_command, timeout, option):
    """parse_scan of ``smartctl <option>``; SmartError when it fails and finds nothing."""
    smartctl = RecordingSmartctl(smartctl_path, run_command, timeout=timeout)
    lines, rc = smartctl.generic_call([option])
    found = parse_scan(lines)
    if not found and rc:
        call = smartctl.calls[-1]
        raise SmartError("smartctl %s failed (exit status %d): %s" % (option, rc, (call["stderr"] or "\n".join(lines)).strip()))
    return found


def scan_devices(smartctl_path, run_command=None, timeout=DEFAULT_TIMEOUT):
    """Every device ``smartctl --scan-open`` finds, and the warnings to give: ([{'name', 'interface'}], [str]).

    --scan-open opens every drive, so one wedged drive blocks it. Past the
    deadline the drives are listed with ``--scan``, which opens none; the
    device type ``scsi`` it guesses from a ``/dev/sdX`` name is dropped, so
    each drive's type is detected when it is read (``-d test``), under that
    drive's own deadline.
    """
    try:
        return _scan(smartctl_path, run_command, timeout, "--scan-open"), []
    except CommandTimeout:
        pass
    try:
        found = _scan(smartctl_path, run_command, timeout, "--scan")
    except CommandTimeout:
        raise SmartError("smartctl --scan-open did not answer within %g s, nor did smartctl --scan: name the drives with devices" % timeout)
    for item in found:
        if item["interface"] == "scsi":
            item["interface"] = None
    return found, [
        "smartctl --scan-open did not answer within %g s (it opens every drive: one that hangs blocks it); the drives were "
        "listed with smartctl --scan, which opens none, and each was read with its device type detected (-d test)" % timeout
    ]


def wanted_devices(smartctl_path, devices, run_command, timeout):
    """The checked ``devices``, else the scanned ones: (devices, warnings)."""
    if devices:
        return check_devices(devices), []
    return scan_devices(smartctl_path, run_command, timeout)


def map_drives(read_one, items, workers=MAX_PARALLEL):
    """``read_one(item)`` for every item, at most ``workers`` at once; results in the order of ``items``.

    pySMART's warnings are silenced here, in the calling thread: the filter
    list is shared by all threads, and ``catch_warnings`` inside each worker
    would restore it in whatever order the workers finish.
    """
    if not items:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
            return list(pool.map(read_one, items))


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
        "name": name,
        "interface": interface,
        "model": None,
        "serial": None,
        "wwn": None,
        "firmware": None,
        "capacity_bytes": None,
        "rotation_rate": None,
        "is_ssd": None,
        "smart_capable": None,
        "smart_enabled": None,
        "assessment": None,
        "assessment_text": None,
        "temperature_c": None,
        "power_on_hours": None,
        "attributes": [],
        "nvme": None,
        "scsi": None,
        "self_tests": [],
        "self_test_running": False,
        "self_test_progress_percent": None,
        "standby": False,
        "timed_out": False,
        "exit_status": None,
        "exit_status_flags": [],
        "label": None,
        "health": "unknown",
        "reasons": [],
        "acknowledged": [],
    }


class _Unread(Exception):
    """The drive cannot be read (further); the message says why."""


def _set_exit_status(facts, rc):
    facts["exit_status"] = rc
    facts["exit_status_flags"] = decode_exit_status(rc)


def _refuse_to_wake(smartctl, name, interface, facts):
    """With ``standby``, ask with ``-n standby`` first: pySMART follows its --all
    query with others that do not pass -n (-l sataphy, -l sasphy) and would wake the drive."""
    asleep = _power_mode(smartctl.all(name, interface))
    if asleep:
        facts["standby"] = True
        _set_exit_status(facts, smartctl.calls[-1]["rc"])
        raise _Unread("%s is in %s mode; not woken up because standby is set" % (name, asleep))


def _open_device(smartctl, name, interface):
    """pySMART's Device for one drive."""
    try:
        return Device(name, interface=interface, smartctl=smartctl)
    except (CommandTimeout, SmartError):
        raise
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # pySMART raises whatever its parsers hit on output it does not
        # expect; one such drive must not hide the others.
        raise _Unread("pySMART could not parse the smartctl output for %s: %s: %s" % (name, type(exc).__name__, exc))


def _main_query(smartctl, name, facts):
    """pySMART's --all (or --info) call; without one, why the device type could not be detected."""
    call = smartctl.last_call("--all") or smartctl.last_call("--info")
    if call is not None:
        return call
    probe = smartctl.last_call("test")
    if probe:
        _set_exit_status(facts, probe["rc"])
    reason = _open_failure(probe["lines"], probe["stderr"]) if probe else None
    raise _Unread(reason or "smartctl could not detect the device type of %s (smartctl -d test failed)" % name)


def _check_readable(device, call, name, facts):
    """Raise _Unread for a sleeping drive or one smartctl could not open."""
    asleep = _power_mode(call["lines"])
    if asleep:
        facts["standby"] = True
        raise _Unread("%s is in %s mode; not woken up because standby is set" % (name, asleep))
    if call["rc"] & 0x03:
        reason = _open_failure(call["lines"], call["stderr"])
        if reason or not device.model:
            stderr = call["stderr"].strip()
            raise _Unread(
                reason
                or "smartctl could not read %s (exit status %d: %s)%s"
                % (name, call["rc"], "; ".join(decode_exit_status(call["rc"] & 0x03)), ": " + stderr if stderr else "")
            )


def _identity(device, lines):
    return {
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
    }


def _ata_attributes(device):
    return [
        {
            "id": attr.num,
            "name": attr.name,
            "value": attr.value_int,
            "worst": attr.worst,
            "thresh": attr.thresh,
            "type": attr.type,
            "updated": attr.updated,
            "when_failed": attr.when_failed,
            "raw": attr.raw,
            "raw_int": attr.raw_int,
        }
        for attr in device.attributes
        if attr is not None
    ]


def _nvme_log(nvme):
    return {
        "critical_warning": nvme.criticalWarning,
        "available_spare": nvme.availableSpare,
        "available_spare_threshold": nvme.availableSpareThreshold,
        "percentage_used": nvme.percentageUsed,
        "media_errors": nvme.integrityErrors,
        "error_log_entries": nvme.errorEntries,
        "unsafe_shutdowns": nvme.unsafeShutdowns,
        "power_cycles": nvme.powerCycles,
        "errors": [
            {"num": err.num, "error_count": err.errCount, "sqid": err.sqId, "cmdid": err.cmdId, "status": err.status, "lba": err.lba, "nsid": err.nsid}
            for err in nvme.errors
        ],
    }


def _interface_facts(device, lines, facts):
    """NVMe health log or SCSI counters, and the power-on hours each reports."""
    if isinstance(device.if_attributes, NvmeAttributes):
        facts["nvme"] = _nvme_log(device.if_attributes)
        facts["power_on_hours"] = device.if_attributes.powerOnHours
    elif isinstance(device.if_attributes, SCSIAttributes):
        counters = parse_scsi_counters(lines)
        facts["scsi"] = {"grown_defects": counters.get("grown_defects"), "non_medium_errors": counters.get("non_medium_errors")}
        if counters.get("power_on_hours") is not None:
            facts["power_on_hours"] = counters["power_on_hours"]


def _smart_unavailable(device, name):
    """Why SMART cannot be read on a drive that answered (a RAID volume, SMART off), or None."""
    if not device.smart_capable and not device.smart_enabled and device.assessment is None:
        return (
            "SMART is not available on %s (a RAID volume or a bridge that hides the drive?); "
            "name the physical drive, e.g. with interface megaraid,N or sat" % name
        )
    if not device.smart_enabled and device.assessment is None:
        return "SMART is disabled on %s; enable it with smartctl -s on %s" % (name, name)
    return None


def _read_facts(device, lines, name, facts):
    facts.update(_identity(device, lines))
    facts["self_test_running"], facts["self_test_progress_percent"] = parse_running_test(lines)
    facts["attributes"] = _ata_attributes(device)
    for attr in facts["attributes"]:
        if attr["id"] == 9 and attr["raw_int"] is not None:
            facts["power_on_hours"] = attr["raw_int"]
    _interface_facts(device, lines, facts)
    facts["self_tests"] = [
        {"num": entry.num, "type": entry.type, "status": entry.status, "remaining": entry.remain, "hours": entry.hours, "lba": entry.LBA}
        for entry in device.tests[:SELF_TESTS_REPORTED]
    ]
    unavailable = _smart_unavailable(device, name)
    if unavailable:
        facts["unread"] = unavailable


def _query(smartctl, name, interface, standby, facts):
    """Ask smartctl about one drive, step by step; the pySMART Device, or _Unread."""
    if standby:
        _refuse_to_wake(smartctl, name, interface, facts)
    device = _open_device(smartctl, name, interface)
    call = _main_query(smartctl, name, facts)
    _set_exit_status(facts, call["rc"])
    facts["interface"] = device.interface or interface
    _check_readable(device, call, name, facts)
    _read_facts(device, call["lines"], name, facts)
    return device


def read_device(smartctl_path, name, interface=None, standby=False, run_command=None, timeout=DEFAULT_TIMEOUT):
    """Facts for one drive, and pySMART's Device (None when unread).

    Never raises for a drive that cannot be read, or does not answer within
    ``timeout`` seconds: that drive gets ``unread`` set (and ``timed_out``).
    """
    facts = _empty_facts(name, interface)
    smartctl = RecordingSmartctl(smartctl_path, run_command, ["-n", "standby"] if standby else None, timeout)
    device = None
    try:
        device = _query(smartctl, name, interface, standby, facts)
    except _Unread as exc:
        facts["unread"] = str(exc)
    except CommandTimeout:
        pass  # kept in smartctl.timed_out
    if smartctl.timed_out is not None:
        # Also when pySMART swallowed the exception (its try_generic_call).
        facts.update(timed_out=True, unread=timeout_reason(name, smartctl.timed_out))
        device = None
    return facts, device


# --------------------------------------------------------------------------
# smart_info


def apply_disk_map(devices, entries):
    """Set each device's ``label`` from the disk map ``entries``; return (missing, unmapped)."""
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


def read_disk_map(disk_map):
    """The entries of ``disk_map`` (a file path or a list of dicts); SmartError naming the line or file."""
    try:
        return load_disk_map(disk_map) if isinstance(disk_map, (list, tuple)) else load_disk_map(disk_map, "disk_map")
    except DiskMapError as exc:
        raise SmartError(str(exc))


def _report(facts, acknowledge, limits):
    facts["health"], facts["reasons"], facts["acknowledged"] = assess(facts, acknowledge, limits)
    facts.pop("unread", None)
    return facts


def smart_info(smartctl_path, devices=None, standby=False, disk_map=None, acknowledge=None, limits=None, run_command=None, timeout=DEFAULT_TIMEOUT):
    """Facts and verdicts for the given devices (default: every device smartctl --scan-open finds).

    Returns ``{"devices", "missing", "unmapped", "warnings"}``; bad input raises SmartError before any drive is read.
    """
    check_timeout(timeout)
    acknowledge = check_acknowledge(acknowledge)
    entries = read_disk_map(disk_map) if disk_map else None
    wanted, notes = wanted_devices(smartctl_path, devices, run_command, timeout)

    def read_one(item):
        facts, dummy = read_device(smartctl_path, item["name"], item["interface"], standby, run_command, timeout)
        return _report(facts, acknowledge, limits)

    results = map_drives(read_one, wanted)
    missing, unmapped = apply_disk_map(results, entries) if entries is not None else ([], [])
    return {"devices": results, "missing": missing, "unmapped": unmapped, "warnings": notes}


# --------------------------------------------------------------------------
# self-tests


def _selftest_result(item, test):
    return {
        "name": item["name"],
        "interface": item["interface"],
        "model": None,
        "serial": None,
        "test": test,
        "state": None,
        "changed": False,
        "message": None,
        "progress_percent": None,
        "estimated_completion": None,
        "exit_status": None,
        "timed_out": False,
    }


def _start_failure(test, name, call, message):
    output = " ".join(line.strip() for line in (call["lines"][3:] if call else []) if line.strip())
    detail = output or (call["stderr"].strip() if call else "")
    return "smartctl did not start the %s self-test on %s (exit status %s): %s" % (test, name, call["rc"] if call else None, detail or message)


def _start(result, device, test):
    """Start ``test`` (pySMART's run_selftest) and record what smartctl said."""
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
        result.update(state="failed", message=_start_failure(test, result["name"], call, message))


def _selftest_steps(result, facts, device, test, check_mode):
    if facts.get("unread") or device is None:
        result.update(state="failed", message=facts.get("unread") or "could not read %s" % result["name"])
        return
    if not device.test_capabilities.get(test):
        result.update(state="unsupported", message="%s (%s) does not support the %s self-test" % (result["name"], facts["model"], test))
        return
    code, dummy, progress = device.get_selftest_result()
    if code == 1:
        result.update(
            state="running",
            message="a self-test is already in progress; not starting another",
            progress_percent=progress if progress is not None else facts["self_test_progress_percent"],
        )
    elif check_mode:
        result.update(state="would_start", changed=True, message="would start a %s self-test (check mode)" % test)
    else:
        _start(result, device, test)


def _selftest_one(smartctl_path, item, test, check_mode, run_command, timeout):
    result = _selftest_result(item, test)
    facts, device = read_device(smartctl_path, item["name"], item["interface"], False, run_command, timeout)
    result.update({"model": facts["model"], "serial": facts["serial"], "interface": facts["interface"], "timed_out": facts["timed_out"]})
    try:
        _selftest_steps(result, facts, device, test, check_mode)
    except CommandTimeout as exc:
        # Only the -t call itself is left to time out (pySMART's other queries are answered from memory).
        result.update(
            state="failed",
            changed=False,
            timed_out=True,
            message=timeout_reason(item["name"], exc) + "; the test may or may not have started: read the drive with smart_info later",
        )
    return result


def start_selftests(smartctl_path, devices=None, test="short", check_mode=False, run_command=None, timeout=DEFAULT_TIMEOUT):
    """Start ``test`` on each device not already testing.

    Returns ``{'devices': [...], 'changed': bool, 'failed': [...], 'warnings': [...]}``.
    """
    if test not in TEST_TYPES:
        raise SmartError("test: %r is not one of %s" % (test, ", ".join(TEST_TYPES)))
    check_timeout(timeout)
    wanted, notes = wanted_devices(smartctl_path, devices, run_command, timeout)
    results = map_drives(lambda item: _selftest_one(smartctl_path, item, test, check_mode, run_command, timeout), wanted)
    failed = [item for item in results if item["state"] in ("failed", "unsupported")]
    return {"devices": results, "changed": any(item["changed"] for item in results), "failed": failed, "warnings": notes}
