# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fixity audits of registered copies (registry_audit).

Each selected copy is re-read from its disk (cached pages dropped first) and
hashed; the result is recorded in the registry. With ``repair`` a missing or
corrupt copy is restored from a twin that verified in the same run, through
the same verified copy protocol buffer_copy uses. No AnsibleModule here.
"""

from __future__ import annotations

import os
import random
import time

from ansible_collections.datasteward.storage.plugins.module_utils._copy import engine as copier
from ansible_collections.datasteward.storage.plugins.module_utils._disks.labels import DiskLabelError, disk_label
from ansible_collections.datasteward.storage.plugins.module_utils._jobs.sweep import sweep_pending
from ansible_collections.datasteward.storage.plugins.module_utils._registry.db import Journal, Registry, RegistryError
from ansible_collections.datasteward.storage.plugins.module_utils._registry.lock import Lock

REPORT_LIMIT = 1000


class AuditError(Exception):
    """Bad input or an unusable registry; names the option or file."""

    def __init__(self, msg, path=None):
        super().__init__(msg)
        self.path = path


def _disk_mounts(registry, mount_points, require_mount, is_mount, warnings):
    """label -> mount point for every disk that is present now; a disk whose
    label cannot be read is left out (its copies are unavailable) with a warning."""
    found = {}
    candidates = list(mount_points or []) + [d["mount_point"] for d in registry.disks() if d["mount_point"]]
    for mount_point in candidates:
        if (require_mount and not is_mount(mount_point)) or not os.path.isdir(mount_point):
            continue
        try:
            label = disk_label(mount_point)
        except DiskLabelError as exc:
            if str(exc) not in warnings:
                warnings.append("%s; its copies count as unavailable" % exc)
            continue
        found.setdefault(label, mount_point)
    return found


def audit(
    registry,
    sample_size=None,
    older_than_days=None,
    labels=None,
    mount_points=None,
    repair=False,
    require_mount=True,
    check_mode=False,
    is_mount=os.path.ismount,
    clock=time.time,
    rng=None,
):
    """Run one audit; returns ``(result, warnings)``. Raises AuditError."""
    for name, value in (("sample_size", sample_size), ("older_than_days", older_than_days)):
        if value is not None and value < 0:
            raise AuditError("%s must not be negative, got %s" % (name, value))
    if not os.path.exists(registry):
        raise AuditError("registry %s does not exist; buffer_copy creates it" % registry, registry)
    try:
        reg = Registry(registry, readonly=check_mode)
    except RegistryError as exc:
        raise AuditError(str(exc), registry)
    lock = None
    try:
        if not check_mode:
            try:
                lock = Lock(registry).acquire()
            except RegistryError as exc:
                raise AuditError(str(exc), registry)
        return _audit(reg, sample_size, older_than_days, labels, mount_points, repair, require_mount, check_mode, is_mount, clock, rng or random.Random())
    except RegistryError as exc:
        raise AuditError(str(exc), registry)
    except OSError as exc:  # nothing in _audit should let one through; never a traceback
        raise AuditError("%s: %s" % (exc.filename or registry, exc.strerror or exc), exc.filename or registry)
    finally:
        if lock is not None:
            lock.release()
        reg.close()


class _Tally:
    """Counters, problems and warnings of one audit."""

    def __init__(self, reg, mounts, repair, check_mode):
        self.reg = reg
        self.mounts = mounts
        self.repair = repair
        self.check_mode = check_mode
        self.counts = {key: 0 for key in ("checked", "ok", "missing", "corrupt", "unreadable", "unavailable", "repaired", "repair_failed")}
        self.checked_bytes = 0
        self.problems = []
        self.warnings = []
        self.changed = False
        self.verified_ok = {}  # copy id -> True for copies that verified in this run

    def record(self, row, status, detail=None):
        if self.check_mode:
            self.changed = self.changed or row["status"] != status
        else:
            self.changed = self.reg.record_check(row["id"], status, detail, verified=status == "ok") or self.changed

    def check(self, row):
        mount_point = self.mounts.get(row["label"])
        if mount_point is None:
            self.counts["unavailable"] += 1
            return
        status, detail = copier.check_copy(mount_point, row["path"], row["algorithm"], row["digest"])
        self.counts["checked"] += 1
        self.counts[status] += 1
        if status != "unreadable":
            self.checked_bytes += row["size"]
        self.record(row, status, detail)
        if status == "ok":
            self.verified_ok[row["id"]] = True
            return
        entry = {
            "path": copier.display(row["file_path"]),
            "label": row["label"],
            "role": row["role"],
            "disk_path": copier.display(os.path.join(copier.fsbytes(mount_point), row["path"])),
            "status": status,
            "detail": detail,
            "repaired": False,
        }
        self.warnings.append(detail)
        if self.repair and status in ("missing", "corrupt"):
            self.try_repair(row, mount_point, entry)
        if len(self.problems) < REPORT_LIMIT:
            self.problems.append(entry)

    def try_repair(self, row, mount_point, entry):
        done, why = _repair(self.reg, row, mount_point, self.mounts, self.verified_ok, self.check_mode)
        entry["repaired"] = done
        if done:
            self.counts["repaired"] += 1
            self.changed = True
            entry["repair_source"] = why
        else:
            self.counts["repair_failed"] += 1
            entry["repair_error"] = why
            self.warnings.append("cannot repair %s: %s" % (entry["disk_path"], why))


def _audit(reg, sample_size, older_than_days, labels, mount_points, repair, require_mount, check_mode, is_mount, clock, rng):
    now = clock()
    warnings = []
    mounts = _disk_mounts(reg, mount_points, require_mount, is_mount, warnings)
    stale, swept = sweep_pending(reg, require_mount, is_mount, check_mode, warnings)
    rows = reg.copies_to_audit(labels, None if older_than_days is None else now - older_than_days * 86400.0)
    if sample_size is not None and sample_size < len(rows):
        rows = sorted(rng.sample(rows, sample_size), key=lambda row: row["id"])
    tally = _Tally(reg, mounts, repair, check_mode)
    started = time.time()
    for row in rows:
        tally.check(row)
    elapsed = time.time() - started
    counts, checked_bytes = tally.counts, tally.checked_bytes
    result = {
        "changed": bool(swept) or bool(stale) or tally.changed,
        "checked_copies": counts["checked"],
        "ok_copies": counts["ok"],
        "missing_copies": counts["missing"],
        "corrupt_copies": counts["corrupt"],
        "unreadable_copies": counts["unreadable"],
        "unavailable_copies": counts["unavailable"],
        "repaired_copies": counts["repaired"],
        "repair_failed_copies": counts["repair_failed"],
        "checked_bytes": checked_bytes,
        "throughput_mbps": round(checked_bytes / elapsed / 1e6, 1) if elapsed > 0 and checked_bytes else 0.0,
        "problems": tally.problems,
        "disks_present": sorted(mounts),
        "stale_temporaries_removed": stale,
    }
    return result, warnings + tally.warnings


def _repair(reg, row, mount_point, mounts, verified_ok, check_mode):
    """Restore a bad copy from a twin verified now. ``(done, source_or_error)``."""
    twins = [twin for twin in reg.copies_of(row["file_id"]) if twin["id"] != row["id"]]
    for twin in twins:
        twin_mount = mounts.get(twin["label"])
        if twin_mount is None:
            continue
        if not verified_ok.get(twin["id"]):
            status, dummy = copier.check_copy(twin_mount, twin["path"], row["algorithm"], row["digest"])
            if status != "ok":
                continue
            verified_ok[twin["id"]] = True
        source = copier.display(os.path.join(copier.fsbytes(twin_mount), twin["path"]))
        if check_mode:
            return True, source
        journal = Journal(reg)
        try:
            copier.copy_verified(
                twin_mount, twin["path"], [(mount_point, row["path"])], row["algorithm"], expect_digest=row["digest"], replace=True, journal=journal
            )
        except copier.CopyError as exc:
            reg.pending_remove(journal.take())
            return False, str(exc)
        reg.pending_remove(journal.take())
        reg.record_check(row["id"], "ok", "repaired from %s" % source, verified=True)
        return True, source
    return False, "no verified twin copy is available (twin disks absent or bad too)"
