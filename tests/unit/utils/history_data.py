# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Generated module results for history tests and the benchmark: module
results shaped as disk_usage, user_usage_info, smart_info and buffer_copy
return them, for several hosts over several days, with known linear growth."""

from __future__ import annotations

DAY = 86400
GiB = 1 << 30
T0 = 1780000000 - 1780000000 % DAY + 3600  # a day start + 1 h (UTC)


def disk_result(day, host_index=0, rate=GiB, capacity=1000 * GiB, base=100 * GiB, mounts=("/", "/scratch")):
    """disk_usage: ``/scratch`` grows by ``rate`` a day, ``/`` stays flat."""
    filesystems = []
    for i, mount in enumerate(mounts):
        used = base + (rate * day + host_index * GiB if mount == "/scratch" else 0) + i
        avail = capacity - used
        pct = -(-100 * used // capacity)
        filesystems.append(
            {
                "path": mount,
                "mount": mount,
                "device": "/dev/vd%s" % "abc"[i % 3],
                "fstype": "ext4",
                "total_bytes": capacity,
                "used_bytes": used,
                "available_bytes": avail,
                "used_percent": pct,
                "inodes_total": 1000000,
                "inodes_used": 1000 + day * 10,
                "inodes_used_percent": 1,
                "status": "critical" if pct >= 90 else "warning" if pct >= 80 else "ok",
                "error": None,
            }
        )
    return {"changed": False, "filesystems": filesystems, "status": "ok", "alerts": []}


def user_growth(uid, host_index):
    """Bytes a day user ``uid`` grows on host ``host_index``."""
    return ((uid * 7919 + host_index * 104729) % 97) * 1000


def usage_result(day, host_index=0, users=5, groups=2, top=True):
    """user_usage_info: user ``uid`` holds ``1e6 * uid + day * user_growth``."""
    entries = []
    for uid in range(1000, 1000 + users):
        used = 1000000 * (uid - 999) + day * user_growth(uid, host_index)
        entry = {
            "uid": uid,
            "name": "user%d" % uid,
            "files": 100 + day,
            "dirs": 3,
            "symlinks": 0,
            "others": 0,
            "apparent_bytes": used,
            "allocated_bytes": used,
            "old_files": 10,
            "old_apparent_bytes": used // 10,
            "old_allocated_bytes": used // 10,
        }
        if top:
            entry["largest"] = [{"path": "/scratch/user%d/big.h5" % uid, "bytes": used // 2, "allocated_bytes": used // 2, "age_seconds": 86400}]
            entry["oldest"] = [{"path": "/scratch/user%d/old.tar" % uid, "bytes": 1000, "allocated_bytes": 4096, "age_seconds": 400 * 86400}]
        entries.append(entry)
    group_entries = [
        {"gid": 100 + g, "name": "grp%d" % g, "files": 10, "allocated_bytes": 5000000 * (g + 1) + day * 1000, "old_files": 0, "old_allocated_bytes": 0}
        for g in range(groups)
    ]
    dirs = [
        {
            "path": "/scratch",
            "depth": 0,
            "files": 100 * users,
            "allocated_bytes": sum(e["allocated_bytes"] for e in entries),
            "old_files": 10 * users,
            "old_allocated_bytes": sum(e["old_allocated_bytes"] for e in entries),
        }
    ]
    return {
        "changed": False,
        "users": entries,
        "groups": group_entries,
        "directories": dirs,
        "totals": {"files": 100 * users, "allocated_bytes": dirs[0]["allocated_bytes"], "seconds": 0.1},
        "errors": [],
    }


def smart_result(day):
    """smart_info: one drive whose reallocated sectors grow by 2 a day, one healthy NVMe."""
    return {
        "changed": False,
        "missing": [],
        "unmapped": [],
        "devices": [
            {
                "name": "/dev/sda",
                "model": "WDC WD40EFRX",
                "serial": "WD-1234",
                "label": "P01",
                "temperature_c": 30 + day % 3,
                "power_on_hours": 1000 + 24 * day,
                "health": "warning" if day else "ok",
                "reasons": ["Reallocated_Sector_Ct raw %d" % (2 * day)] if day else [],
                "attributes": [
                    {"id": 5, "name": "Reallocated_Sector_Ct", "raw": str(2 * day), "raw_int": 2 * day, "value": 100},
                    {"id": 9, "name": "Power_On_Hours", "raw_int": 1000 + 24 * day},
                ],
                "nvme": None,
                "scsi": None,
            },
            {
                "name": "/dev/nvme0",
                "model": "Samsung 980",
                "serial": "S64",
                "label": None,
                "temperature_c": 40,
                "power_on_hours": 500,
                "health": "ok",
                "reasons": [],
                "attributes": [],
                "nvme": {"percentage_used": 1, "media_errors": 0, "available_spare": 100},
                "scsi": None,
            },
        ],
    }


def ingest_result(day, failed=0):
    return {
        "changed": True,
        "copied_files": 10 + day,
        "copied_bytes": (10 + day) * 1000000,
        "skipped_files": 0,
        "skipped_bytes": 0,
        "conflict_files": 0,
        "conflict_bytes": 0,
        "failed_files": failed,
        "failed_bytes": 0,
        "removed_files": 0,
        "removed_bytes": 0,
        "deferred_files": 0,
        "deferred_bytes": 0,
        "unsettled_files": 0,
        "throughput_mbps": 120.5,
        "copy_seconds": 3.2,
        "newest_file_age_seconds": 3600,
        "disks_used": [{"label": "P01", "mount_point": "/mnt/P01", "role": "primary"}],
        "disks_full": [],
        "disks_unusable": [],
        "files": [{"path": "x"}],
        "files_truncated": False,
        "checksum_algorithm": "sha512",
        # copy_registry_info's disks, as the data_manager role adds them
        "disks": [
            {
                "label": "P01",
                "role": "primary",
                "full": False,
                "mounted": True,
                "file_count": 100 + day,
                "registered_bytes": day * GiB,
                "total_bytes": 4000 * GiB,
                "available_bytes": (4000 - 100 - day) * GiB,
            },
            {
                "label": "B01",
                "role": "backup",
                "full": True,
                "mounted": False,
                "file_count": 5000,
                "registered_bytes": 3900 * GiB,
                "total_bytes": None,
                "available_bytes": None,
            },
        ],
    }


def fleet_records(hosts=3, days=21, users=5):
    """``[(host, source, ts, result)]`` for ``hosts`` hosts over ``days`` days."""
    records = []
    for day in range(days):
        for h in range(hosts):
            host = "host%02d" % h
            ts = T0 + day * DAY
            records.append((host, "disk_usage", ts, disk_result(day, h)))
            records.append((host, "user_usage_info", ts, usage_result(day, h, users=users)))
            if h == 0:
                records.append((host, "smart_info", ts, smart_result(day)))
                records.append((host, "buffer_copy", ts, ingest_result(day, failed=1 if day == days - 1 else 0)))
    return records
