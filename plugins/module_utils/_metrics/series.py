# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Our Prometheus series, built from the results of the collection's modules.

One function per source module; each returns families as ``textfile`` takes
them. Names follow the Prometheus conventions (base units, ``_bytes``,
``_seconds``, ``_ratio``, ``_total`` for counters, ``_info`` for metadata) and
each source has its own prefix, so that one ``.prom`` file per source never
repeats another's series (node_exporter rejects a series found in two files).
File systems carry node_exporter's own labels (``device``, ``fstype``,
``mountpoint``). docs/metrics.md lists every series.
"""

from __future__ import annotations

import time

FS_STATUSES = ("ok", "warning", "critical", "error")
SMART_HEALTH = ("ok", "warning", "failing", "unknown")
# buffer_copy's <outcome>_files counts (and <outcome>_bytes, except for unsettled files).
INGEST_OUTCOMES = ("copied", "skipped", "conflict", "failed", "removed", "deferred", "unsettled")
# ATA attributes exported per drive (id: name as smartctl prints it).
SMART_KEY_ATTRIBUTES = {
    5: "Reallocated_Sector_Ct",
    10: "Spin_Retry_Count",
    184: "End-to-End_Error",
    187: "Reported_Uncorrect",
    188: "Command_Timeout",
    196: "Reallocated_Event_Count",
    197: "Current_Pending_Sector",
    198: "Offline_Uncorrectable",
    199: "UDMA_CRC_Error_Count",
}
SOURCES = ("disk_usage", "user_usage_info", "smart_info", "buffer_copy")


def family(name, kind, help_text, samples, update="replace"):
    return {"name": name, "type": kind, "help": help_text, "update": update, "samples": samples}


def _sample(labels, value):
    return {"labels": labels, "value": value}


def _present(rows, key):
    """Samples of ``key`` for (labels, entry) rows where it has a value."""
    return [_sample(labels, entry[key]) for labels, entry in rows if entry.get(key) is not None]


def _fs_rows(result):
    rows, seen = [], set()
    for fs in result.get("filesystems") or []:
        if fs["mount"] in seen:
            continue
        seen.add(fs["mount"])
        entry = dict(
            fs, _space_ratio=_ratio(fs.get("used_bytes"), fs.get("available_bytes")), _inode_ratio=_ratio(fs.get("inodes_used"), fs.get("inodes_available"))
        )
        rows.append(({"device": fs["device"], "fstype": fs["fstype"], "mountpoint": fs["mount"]}, entry))
    return rows


def _ratio(used, available):
    return None if used is None or available is None or used + available <= 0 else used / float(used + available)


def disk_usage_families(result, now=None):
    """File-system usage and threshold status from M(disk_usage)."""
    rows = _fs_rows(result)
    status = [_sample(dict(labels, status=state), 1 if fs["status"] == state else 0) for labels, fs in rows for state in FS_STATUSES]
    return [
        family("datasteward_filesystem_size_bytes", "gauge", "File system size in bytes (df 1B-blocks).", _present(rows, "total_bytes")),
        family("datasteward_filesystem_used_bytes", "gauge", "Bytes in use (df Used).", _present(rows, "used_bytes")),
        family("datasteward_filesystem_avail_bytes", "gauge", "Bytes available to unprivileged users (df Available).", _present(rows, "available_bytes")),
        family("datasteward_filesystem_reserved_bytes", "gauge", "Free bytes reserved for root.", _present(rows, "reserved_bytes")),
        family("datasteward_filesystem_used_ratio", "gauge", "Used / (used + available), 0 to 1 (df Use% before rounding).", _present(rows, "_space_ratio")),
        family("datasteward_filesystem_files", "gauge", "Inodes of the file system (df -i Inodes).", _present(rows, "inodes_total")),
        family("datasteward_filesystem_files_free", "gauge", "Free inodes (df -i IFree).", _present(rows, "inodes_available")),
        family("datasteward_filesystem_files_used_ratio", "gauge", "Inodes used / (used + free), 0 to 1.", _present(rows, "_inode_ratio")),
        family("datasteward_filesystem_status", "gauge", "1 for the file system's threshold status (ok, warning, critical, error), 0 for the others.", status),
    ]


def _user_labels(user):
    return {"user": user["name"] if user.get("name") else str(user["uid"]), "uid": str(user["uid"])}


def user_usage_families(result, top=10, now=None):
    """Per-user usage of the ``top`` users by allocated bytes from M(user_usage_info)."""
    users = sorted(result.get("users") or [], key=lambda u: (-u.get("allocated_bytes", 0), u["uid"]))[:top]
    rows = [(_user_labels(user), user) for user in users]
    totals = result.get("totals") or {}
    return [
        family("datasteward_user_allocated_bytes", "gauge", "Bytes allocated to the user's entries (du).", _present(rows, "allocated_bytes")),
        family("datasteward_user_apparent_bytes", "gauge", "Apparent size of the user's entries (du --apparent-size).", _present(rows, "apparent_bytes")),
        family("datasteward_user_files", "gauge", "Regular files of the user.", _present(rows, "files")),
        family("datasteward_user_old_files", "gauge", "Regular files of the user older than the scan's age.", _present(rows, "old_files")),
        family("datasteward_user_old_allocated_bytes", "gauge", "Bytes allocated to the user's old files.", _present(rows, "old_allocated_bytes")),
        family(
            "datasteward_usage_scan_users",
            "gauge",
            "Users found by the scan (the per-user series show the top N).",
            [_sample({}, len(result.get("users") or []) + int(result.get("users_omitted") or 0))],
        ),
        family(
            "datasteward_usage_scan_entries",
            "gauge",
            "Entries counted by the scan.",
            [_sample({}, totals["entries"])] if totals.get("entries") is not None else [],
        ),
        family(
            "datasteward_usage_scan_errors", "gauge", "Problems reported by the scan (first 50 of each kind).", [_sample({}, len(result.get("errors") or []))]
        ),
        family(
            "datasteward_usage_scan_timestamp_seconds",
            "gauge",
            "When the scan's result was exported.",
            [_sample({}, round(now if now is not None else time.time(), 3))],
        ),
    ]


def _drive_labels(device):
    return {"device": device["name"], "serial": device.get("serial") or ""}


def _attribute_samples(devices):
    samples = []
    for device in devices:
        for attr in device.get("attributes") or []:
            if attr.get("id") in SMART_KEY_ATTRIBUTES and attr.get("raw_int") is not None:
                samples.append(
                    _sample(
                        dict(_drive_labels(device), attribute_id=str(attr["id"]), attribute=attr.get("name") or SMART_KEY_ATTRIBUTES[attr["id"]]),
                        attr["raw_int"],
                    )
                )
    return samples


def _sub_samples(devices, table, key, scale=1):
    return [_sample(_drive_labels(d), (d.get(table) or {})[key] * scale) for d in devices if (d.get(table) or {}).get(key) is not None]


def _smart_drive_families(devices):
    rows = [
        (
            _drive_labels(d),
            dict(
                d,
                _passed={"PASS": 1, "FAIL": 0}.get(d.get("assessment")),
                _power_on_seconds=None if d.get("power_on_hours") is None else d["power_on_hours"] * 3600,
            ),
        )
        for d in devices
    ]
    info = [
        _sample(
            {
                "device": d["name"],
                "serial": d.get("serial") or "",
                "model": d.get("model") or "",
                "wwn": d.get("wwn") or "",
                "firmware": d.get("firmware") or "",
                "interface": d.get("interface") or "",
                "label": d.get("label") or "",
            },
            1,
        )
        for d in devices
    ]
    health = [_sample(dict(labels, health=state), 1 if d.get("health") == state else 0) for labels, d in rows for state in SMART_HEALTH]
    return [
        family("datasteward_smart_device_info", "info", "Identity of a drive (model, serial, WWN, site label).", info),
        family("datasteward_smart_health", "gauge", "1 for the drive's verdict (ok, warning, failing, unknown), else 0.", health),
        family("datasteward_smart_assessment_passed", "gauge", "1 when the drive's SMART self-assessment passes, 0 when it fails.", _present(rows, "_passed")),
        family("datasteward_smart_temperature_celsius", "gauge", "Current drive temperature.", _present(rows, "temperature_c")),
        family("datasteward_smart_power_on_seconds", "gauge", "Power-on time of the drive.", _present(rows, "_power_on_seconds")),
        family("datasteward_smart_exit_status", "gauge", "smartctl's exit-status bitmask for the drive.", _present(rows, "exit_status")),
    ]


def smart_families(result, now=None):
    """Health and key attributes per drive from M(smart_info)."""
    devices = result.get("devices") or []
    return _smart_drive_families(devices) + [
        family("datasteward_smart_attribute_raw_value", "gauge", "Raw value of the ATA attributes that predict failure.", _attribute_samples(devices)),
        family("datasteward_smart_nvme_media_errors", "gauge", "NVMe media and data integrity errors.", _sub_samples(devices, "nvme", "media_errors")),
        family("datasteward_smart_nvme_critical_warning", "gauge", "NVMe critical warning bits.", _sub_samples(devices, "nvme", "critical_warning")),
        family(
            "datasteward_smart_nvme_available_spare_ratio", "gauge", "NVMe available spare, 0 to 1.", _sub_samples(devices, "nvme", "available_spare", 0.01)
        ),
        family(
            "datasteward_smart_nvme_used_ratio", "gauge", "NVMe endurance used (percentage used / 100).", _sub_samples(devices, "nvme", "percentage_used", 0.01)
        ),
        family("datasteward_smart_scsi_grown_defects", "gauge", "SCSI grown defect list entries.", _sub_samples(devices, "scsi", "grown_defects")),
        family("datasteward_smart_scsi_non_medium_errors", "gauge", "SCSI non-medium errors.", _sub_samples(devices, "scsi", "non_medium_errors")),
        family("datasteward_smart_missing_drives", "gauge", "Disk map entries with no drive present.", [_sample({}, len(result.get("missing") or []))]),
        family("datasteward_smart_unmapped_drives", "gauge", "Drives that are not in the disk map.", [_sample({}, len(result.get("unmapped") or []))]),
    ]


def ingest_families(result, now=None):
    """Ingest counters (added to the file's) and times from M(buffer_copy)."""
    now = round(now if now is not None else time.time(), 3)
    success = not result.get("failed") and not result.get("failed_files")
    files = [_sample({"outcome": o}, result.get("%s_files" % o) or 0) for o in INGEST_OUTCOMES]
    sizes = [_sample({"outcome": o}, result.get("%s_bytes" % o) or 0) for o in INGEST_OUTCOMES if o != "unsettled"]
    age = result.get("newest_file_age_seconds")
    return [
        family("datasteward_ingest_files_total", "counter", "Buffer files by outcome, over all runs.", files, "add"),
        family("datasteward_ingest_bytes_total", "counter", "Bytes of buffer files by outcome, over all runs.", sizes, "add"),
        family(
            "datasteward_ingest_copy_seconds_total",
            "counter",
            "Seconds spent copying and verifying, over all runs.",
            [_sample({}, result.get("copy_seconds") or 0)],
            "add",
        ),
        family(
            "datasteward_ingest_runs_total",
            "counter",
            "Ingest runs by result (success: no failed file).",
            [_sample({"result": "success"}, int(success)), _sample({"result": "failure"}, int(not success))],
            "add",
        ),
        family("datasteward_ingest_last_run_timestamp_seconds", "gauge", "When the last ingest run ended.", [_sample({}, now)]),
        family(
            "datasteward_ingest_last_success_timestamp_seconds",
            "gauge",
            "When the last ingest run without a failed file ended.",
            [_sample({}, now)] if success else [],
            "merge",
        ),
        family("datasteward_ingest_newest_file_age_seconds", "gauge", "Age of the newest file in the buffer.", [_sample({}, age)] if age is not None else []),
        family("datasteward_ingest_disks_full", "gauge", "Disks marked full in the last run.", [_sample({}, len(result.get("disks_full") or []))]),
        family(
            "datasteward_ingest_disks_unusable", "gauge", "Disks left out of the last run as unusable.", [_sample({}, len(result.get("disks_unusable") or []))]
        ),
    ]


def families_of(source, result, top=10, now=None):
    """The families of one source module's result."""
    if source == "user_usage_info":
        return user_usage_families(result, top=top, now=now)
    builder = {"disk_usage": disk_usage_families, "smart_info": smart_families, "buffer_copy": ingest_families}[source]
    return builder(result, now=now)
