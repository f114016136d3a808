# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Our health verdict for one drive, from the facts ``_disks/smart.py`` read.

One rule per function, each adding its reasons to a ``_Verdict``; ``assess``
runs them in the order the reasons are reported. Plain Python, no pySMART and
no AnsibleModule.
"""

from __future__ import annotations

# ATA attributes whose raw value counts damage: any non-zero value warns.
ATA_COUNTERS = {
    5: "Reallocated_Sector_Ct",
    187: "Reported_Uncorrect",
    188: "Command_Timeout",
    197: "Current_Pending_Sector",
    198: "Offline_Uncorrectable",
}

# NVMe SMART/Health log, Critical Warning bits.
NVME_CRITICAL_WARNINGS = (
    (0x01, "available spare capacity has fallen below the threshold"),
    (0x02, "temperature is above an over-temperature threshold or below an under-temperature threshold"),
    (0x04, "NVM subsystem reliability has been degraded due to significant media related errors"),
    (0x08, "media has been placed in read only mode"),
    (0x10, "volatile memory backup device has failed"),
    (0x20, "persistent memory region has become read-only or unreliable"),
)
NVME_TEMPERATURE_WARNING = 0x02
NVME_SPARE_WARNING = 0x01

# ATA attributes whose normalised value is the remaining rated life of an SSD in
# percent: Wear_Leveling_Count, Percent_Lifetime_Remain, SSD_Life_Left,
# Media_Wearout_Indicator.
SSD_LIFE_ATTRIBUTES = frozenset((177, 202, 231, 233))
DEFAULT_LIMITS = {"temperature_limit_hdd": 60, "temperature_limit_ssd": 70, "wear_limit": 90}


class _Verdict:
    """The reasons found so far: failing, warning, and the acknowledged counters."""

    def __init__(self):
        self.failing = []
        self.warning = []
        self.acknowledged = []

    def result(self):
        if self.failing:
            return "failing", self.failing + self.warning, self.acknowledged
        if self.warning:
            return "warning", self.warning, self.acknowledged
        return "ok", [], self.acknowledged


def _exit_status(facts, verdict, limits, acknowledge):
    status = facts["exit_status"] or 0
    if facts["assessment"] == "FAIL":
        verdict.failing.append("the drive's SMART self-assessment failed: %s" % (facts["assessment_text"] or "FAILED"))
    if status & 0x08:
        verdict.failing.append("smartctl exit status %d, bit 3: SMART status check returned DISK FAILING" % status)
    if status & 0x10:
        verdict.failing.append("smartctl exit status %d, bit 4: prefail attributes found <= threshold" % status)
    if status & 0x20:
        verdict.warning.append("smartctl exit status %d, bit 5: some attributes have been <= threshold in the past" % status)


def _attribute_flags(facts, verdict, limits, acknowledge):
    for attr in facts["attributes"]:
        when = attr["when_failed"] or "-"
        if when == "FAILING_NOW":
            verdict.failing.append("attribute %s (%d) is failing now: value %s, threshold %s" % (attr["name"], attr["id"], attr["value"], attr["thresh"]))
        elif when == "In_the_past":
            verdict.warning.append("attribute %s (%d) failed in the past: worst %s, threshold %s" % (attr["name"], attr["id"], attr["worst"], attr["thresh"]))
        elif when != "-":
            verdict.warning.append("attribute %s (%d) says it failed %r" % (attr["name"], attr["id"], when))


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


def _damage_counters(facts, verdict, limits, acknowledge):
    for keys, label, raw in _counters(facts):
        known = _acknowledged_raw(facts, keys, acknowledge)
        if known is not None and raw <= known:
            verdict.acknowledged.append({"attribute": label, "raw": raw, "acknowledged_raw": known})
        elif known is not None:
            verdict.warning.append("%s raw value %d grew past the acknowledged %d" % (label, raw, known))
        else:
            verdict.warning.append("%s raw value is %d" % (label, raw))


def _ssd_wear(facts, verdict, limits, acknowledge):
    if not facts["is_ssd"]:
        return
    for attr in facts["attributes"]:
        # Normalised values of these count down from 100 as the rated life is used.
        if attr["id"] in SSD_LIFE_ATTRIBUTES and isinstance(attr["value"], int) and 0 <= attr["value"] <= 100:
            used = 100 - attr["value"]
            if used > limits["wear_limit"]:
                verdict.warning.append(
                    "SSD wear: attribute %s (%d) is at %d, about %d%% of the rated life used, over the wear limit %d%%"
                    % (attr["name"], attr["id"], attr["value"], used, limits["wear_limit"])
                )


def _nvme_health(facts, verdict, limits, acknowledge):
    nvme = facts["nvme"]
    if not nvme:
        return
    critical = nvme["critical_warning"] or 0
    for bit, text in NVME_CRITICAL_WARNINGS:
        if critical & bit:
            (verdict.warning if bit == NVME_TEMPERATURE_WARNING else verdict.failing).append("NVMe critical warning 0x%02x: %s" % (bit, text))
    spare, threshold = nvme["available_spare"], nvme["available_spare_threshold"]
    if spare is not None and threshold is not None and spare < threshold and not critical & NVME_SPARE_WARNING:
        verdict.failing.append("NVMe available spare %d%% is below its threshold %d%%" % (spare, threshold))
    used = nvme["percentage_used"]
    if used is not None and used > limits["wear_limit"]:
        verdict.warning.append("NVMe percentage used %d%% is over the wear limit %d%%" % (used, limits["wear_limit"]))


def _temperature(facts, verdict, limits, acknowledge):
    temperature = facts["temperature_c"]
    limit = limits["temperature_limit_ssd"] if facts["is_ssd"] else limits["temperature_limit_hdd"]
    if temperature is not None and temperature > limit:
        verdict.warning.append("temperature %d C is over the limit %d C" % (temperature, limit))


def _last_self_test(facts, verdict, limits, acknowledge):
    for entry in facts["self_tests"]:
        text = (entry["status"] or "").lower()
        if "progress" in text or text == "running":
            continue
        if "fail" in text or "fatal" in text:
            verdict.warning.append("last self-test (%s at %s h) did not pass: %s" % (entry["type"], entry["hours"], entry["status"]))
        break


# The rules, in the order their reasons are reported.
RULES = (_exit_status, _attribute_flags, _damage_counters, _ssd_wear, _nvme_health, _temperature, _last_self_test)


def assess(facts, acknowledge=None, limits=None):
    """Our verdict for one drive: (health, reasons, acknowledged)."""
    if facts.get("unread"):
        return "unknown", [facts["unread"]], []
    limits = dict(DEFAULT_LIMITS, **(limits or {}))
    verdict = _Verdict()
    for rule in RULES:
        rule(facts, verdict, limits, acknowledge or [])
    return verdict.result()
