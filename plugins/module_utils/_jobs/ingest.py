# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Verified ingest (buffer_copy): buffer -> primary and backup disk series.

Per file: pick the current disk of each set (the first one not full), copy
with the verified protocol of :mod:`_copy.engine`, register the file and both
copies in one committed transaction, and only then (``remove_source``) delete
the buffer file after re-checking it did not change. No AnsibleModule here.
"""

from __future__ import annotations

import os
import time

from ansible_collections.datasteward.storage.plugins.module_utils._copy import engine as copier
from ansible_collections.datasteward.storage.plugins.module_utils._disks.diskmap import DiskMapError, load_disk_map
from ansible_collections.datasteward.storage.plugins.module_utils._disks.labels import LABEL_FILE, DiskLabelError, disk_label, disk_label_or_none
from ansible_collections.datasteward.storage.plugins.module_utils._jobs.sweep import sweep_pending
from ansible_collections.datasteward.storage.plugins.module_utils._registry.db import Journal, Registry, RegistryError
from ansible_collections.datasteward.storage.plugins.module_utils._registry.lock import Lock

REPORT_LIMIT = 1000
# Room kept per file beyond its size: block rounding plus a directory block.
SLACK_BYTES = 64 * 1024


class IngestError(Exception):
    """Bad input, or a run that cannot go on; ``result`` holds what was done."""

    def __init__(self, msg, path=None, result=None):
        super().__init__(msg)
        self.path = path
        self.result = result


class NoDiskLeft(Exception):
    """A disk set has no disk that can take the next file."""

    def __init__(self, role, size, reasons):
        super().__init__(role)
        self.role = role
        self.size = size
        self.reasons = reasons

    def describe(self, path):
        return "no %s disk can take %s (%d bytes): %s" % (self.role, path, self.size, "; ".join(self.reasons) or "no disks given")


class DiskSet:
    """One series of disks (primary or backup), filled in order."""

    def __init__(self, role, mount_points, registry, run):
        self.role = role
        self.mount_points = list(mount_points)
        self.registry = registry
        self.run = run
        self.full = set()      # mount points found full in this run
        self.checked = {}      # mount point -> disk dict, once usable

    def _describe(self, mount_point):
        label = self.run.label_of(mount_point)
        row = self.registry.disk(label)
        return label, row

    def _present(self, mount_point, reasons):
        """``(label, row)`` of a disk that may be written, None for one that
        is marked full; raises IngestError for a missing drive."""
        mounted = self.run.is_mount(mount_point)
        label, row = self._describe(mount_point)
        if row is None and not mounted:
            row = self.registry.disk_by_mount(mount_point)
        if row is not None and row["full"]:
            self.full.add(mount_point)
            reasons.append("%s (%s) marked full in the registry" % (mount_point, row["label"]))
            return None
        if self.run.require_mount and not mounted:
            raise IngestError("%s disk %s is not a mount point (drive missing or not mounted); refusing to write into the "
                              "file system beneath it" % (self.role, mount_point), mount_point)
        if not os.path.isdir(mount_point):
            raise IngestError("%s disk %s does not exist or is not a directory" % (self.role, mount_point), mount_point)
        return label, row

    def _usable(self, mount_point, reasons):
        """:meth:`_present`, or None for a disk unusable in this run (its
        label cannot be read), which is reported once."""
        if mount_point in self.run.unusable:
            reasons.append("%s unusable: %s" % (mount_point, self.run.unusable[mount_point]))
            return None
        try:
            return self._present(mount_point, reasons)
        except DiskLabelError as exc:
            self.run.mark_unusable(mount_point, self.role, str(exc))
            reasons.append("%s unusable: %s" % (mount_point, exc))
            return None

    def precheck(self):
        """Before any work: the current disk of the set must be present."""
        for mount_point in self.mount_points:
            if self._usable(mount_point, []) is not None:
                return

    def choose(self, size):
        """The disk (dict with label, mount_point, id) that takes ``size``
        bytes next; marks disks that cannot as full."""
        reasons = []
        for mount_point in self.mount_points:
            if mount_point in self.full:
                reasons.append("%s full" % mount_point)
                continue
            present = self._usable(mount_point, reasons)
            if present is None:
                continue
            label, row = present
            try:
                st = self.run.statvfs(mount_point)
            except OSError as exc:  # a dead disk: not this run's, the next one may do
                why = "cannot read free space of %s: %s" % (mount_point, exc.strerror or exc)
                self.run.mark_unusable(mount_point, self.role, why, label)
                reasons.append("%s unusable: %s" % (mount_point, why))
                continue
            free = st.f_bavail * st.f_frsize - self.run.min_free_bytes - self.run.planned.get(mount_point, 0)
            if free < size + SLACK_BYTES:
                self.mark_full(mount_point, label, row, "%d bytes free (after min_free_bytes), next file needs %d" % (free, size))
                reasons.append("%s (%s) full" % (mount_point, label))
                continue
            disk = self.checked.get(mount_point)
            if disk is None:
                disk = self.run.use_disk(label, mount_point, self.role, row)
                self.checked[mount_point] = disk
            return disk
        raise NoDiskLeft(self.role, size, reasons)

    def mark_full(self, mount_point, label, row=None, why=""):
        self.full.add(mount_point)
        self.checked.pop(mount_point, None)
        self.run.disks_full.append({"label": label, "mount_point": mount_point, "role": self.role, "reason": why})
        if row is None:
            row = self.registry.disk(label)
        if self.run.check_mode:
            self.run.changed = True
            return
        if row is None:
            row, dummy = self.registry.ensure_disk(label, mount_point, self.role)
        self.registry.mark_full(row["id"])
        self.run.changed = True


class IngestRun:
    """State and result of one buffer_copy run."""

    def __init__(self, src, primary, backup, registry, patterns=None, excludes=None, checksum_algorithm="sha512",
                 remove_source=False, settle_seconds=60, min_free_bytes=0, require_mount=True, max_files=None,
                 max_bytes=None, disk_map=None, check_mode=False, report_limit=REPORT_LIMIT,
                 is_mount=os.path.ismount, statvfs=os.statvfs, clock=time.time):
        self.src = src
        self.primary = primary or []
        self.backup = backup or []
        self.registry_path = registry
        self.patterns = patterns or []
        self.excludes = excludes or []
        self.algorithm = checksum_algorithm
        self.remove_source = remove_source
        self.settle_seconds = settle_seconds
        self.min_free_bytes = min_free_bytes or 0
        self.require_mount = require_mount
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.disk_map = disk_map
        self.check_mode = check_mode
        self.report_limit = report_limit
        self.is_mount = is_mount
        self.statvfs = statvfs
        self.clock = clock
        self.changed = False
        self.planned = {}
        self.disks_full = []
        self.disks_used = []
        self.warnings = []
        self.errors = []
        self.files = []
        self.truncated = False
        self.counts = {key: 0 for key in ("copied", "skipped", "conflicts", "failed", "removed", "deferred", "unsettled")}
        self.bytes = {key: 0 for key in ("copied", "skipped", "conflicts", "failed", "removed", "deferred")}
        self.copy_seconds = 0.0
        self.stale = 0
        self.registry_created = False
        self.newest_age = None
        self.registry = None
        self.labels = {}       # mount point -> label, read once per run
        self.unusable = {}     # mount point -> why it cannot be used in this run
        self.disks_unusable = []

    def mark_unusable(self, mount_point, role, reason, label=None):
        """Leave a disk out of this run (dead, unreadable label), reported
        in ``disks_unusable`` and as a warning; its set goes on with the next."""
        if mount_point in self.unusable:
            return
        self.unusable[mount_point] = reason
        self.disks_unusable.append({"label": label, "mount_point": mount_point, "role": role, "reason": reason})
        self.warnings.append("%s disk %s not used in this run: %s" % (role, mount_point, reason))

    def label_of(self, mount_point):
        """The disk label at ``mount_point``, read once per run."""
        if mount_point not in self.labels:
            self.labels[mount_point] = disk_label(mount_point)
        return self.labels[mount_point]

    # -- validation -------------------------------------------------------
    def validate(self):
        if not os.path.isdir(self.src):
            raise IngestError("src %s does not exist or is not a directory" % self.src, self.src)
        if not self.primary or not self.backup:
            raise IngestError("primary and backup each need at least one disk mount point")
        both = set(self.primary) & set(self.backup)
        if both:
            raise IngestError("%s listed in both primary and backup; a backup must be another disk" % ", ".join(sorted(both)))
        if self.algorithm not in copier.available_algorithms():
            raise IngestError("checksum_algorithm %s is not available on this host (available: %s)"
                              % (self.algorithm, ", ".join(copier.available_algorithms())))
        for name in ("max_files", "max_bytes", "min_free_bytes", "settle_seconds"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise IngestError("%s must not be negative, got %s" % (name, value))
        src_real = os.path.realpath(self.src)
        for mount_point in self.primary + self.backup:
            real = os.path.realpath(mount_point)
            if real == src_real or real.startswith(src_real.rstrip("/") + "/") or src_real.startswith(real.rstrip("/") + "/"):
                raise IngestError("disk %s and src %s overlap; targets must be outside the buffer and vice versa" % (mount_point, self.src),
                                  mount_point)
        self.validate_labels()

    def validate_labels(self):
        """Before any work: the disks present now (primary and backup) must
        carry distinct labels, or their copies would be registered on one disk
        row (and the second copy of a file refused by the registry)."""
        seen = {}
        for mount_point in self.primary + self.backup:
            if (self.require_mount and not self.is_mount(mount_point)) or not os.path.isdir(mount_point):
                continue  # not written in this run (missing, or a shelved full disk)
            try:
                label = self.label_of(mount_point)
            except DiskLabelError as exc:
                self.mark_unusable(mount_point, "primary" if mount_point in self.primary else "backup", str(exc))
                continue
            other = seen.get(label)
            if other is not None and os.path.realpath(other) != os.path.realpath(mount_point):
                raise IngestError("disks %s and %s both have the label %s; every disk needs its own label: put a %s file holding a "
                                  "unique label at the root of each disk" % (other, mount_point, label, LABEL_FILE), mount_point)
            seen[label] = mount_point

    # -- disks ----------------------------------------------------------------
    def use_disk(self, label, mount_point, role, row):
        self._check_moved(label, mount_point, row)
        if self.check_mode:
            if row is None or row["mount_point"] != mount_point or row["role"] != role:
                self.changed = True
            disk = {"label": label, "mount_point": mount_point, "role": role, "id": row["id"] if row else None}
        else:
            row, changed = self.registry.ensure_disk(label, mount_point, role)
            self.changed = self.changed or changed
            disk = {"label": label, "mount_point": mount_point, "role": role, "id": row["id"]}
        for other in self.disks_used:
            if other["label"] == label and other["mount_point"] != mount_point:
                raise IngestError("disks %s and %s both have the label %s; every disk needs its own label: put a %s file holding a "
                                  "unique label at the root of each disk" % (other["mount_point"], mount_point, label, LABEL_FILE),
                                  mount_point)
        if mount_point not in [d["mount_point"] for d in self.disks_used]:
            self.disks_used.append({"label": label, "mount_point": mount_point, "role": role})
        if self.require_mount:
            for other in self.disks_used:
                if other["mount_point"] != mount_point and _same_fs(other["mount_point"], mount_point):
                    raise IngestError("disks %s and %s are the same file system; primary and backup copies must be on different disks"
                                      % (other["mount_point"], mount_point), mount_point)
        return disk

    def _check_moved(self, label, mount_point, row):
        """A registered disk seen at another mount point has moved, unless its
        recorded mount point still holds a disk with that label: then two
        disks share it and the registry would mix them up."""
        if row is None or not row["mount_point"] or row["mount_point"] == mount_point:
            return
        old = row["mount_point"]
        if (self.require_mount and not self.is_mount(old)) or not os.path.isdir(old):
            return
        if os.path.realpath(old) == os.path.realpath(mount_point) or (self.require_mount and _same_fs(old, mount_point)):
            return  # the same disk (a bind mount, or another path to it)
        old_label = disk_label_or_none(old)
        if old_label == label:
            raise IngestError("disks %s and %s both have the label %s (the registry knows it at %s); every disk needs its own label: "
                              "put a %s file holding a unique label at the root of each disk" % (old, mount_point, label, old, LABEL_FILE),
                              mount_point)

    # -- stale temporaries -------------------------------------------------------
    def clean_pending(self, final=False):
        """Sweep the journal before the copies and, outside check mode, again
        after them: a copy this run registered elsewhere makes an orphan of an
        interrupted run removable. Warnings come from the last sweep only."""
        if final and self.check_mode:
            return
        removed, done = sweep_pending(self.registry, self.require_mount, self.is_mount, self.check_mode,
                                      self.warnings if final or self.check_mode else None)
        self.stale += removed
        if removed or done:
            self.changed = True

    # -- reporting ------------------------------------------------------------
    def outcome(self, relpath, status, size, msg=None, copies=None, removed=False):
        key = {"conflict": "conflicts"}.get(status, status)
        self.counts[key] += 1
        if key in self.bytes:
            self.bytes[key] += size
        if msg and status in ("conflict", "failed"):
            self.warnings.append(msg)
        if len(self.files) >= self.report_limit:
            self.truncated = True
        else:
            entry = {"path": relpath, "status": status, "size_bytes": size, "removed": removed, "copies": copies or []}
            if msg:
                entry["msg"] = msg
            self.files.append(entry)

    def result(self):
        res = {"changed": self.changed}
        for key in ("copied", "skipped", "conflicts", "failed", "removed", "deferred", "unsettled"):
            name = "conflict" if key == "conflicts" else key
            res["%s_files" % name] = self.counts[key]
            if key in self.bytes:
                res["%s_bytes" % name] = self.bytes[key]
        res.update({
            "throughput_mbps": round(self.bytes["copied"] / self.copy_seconds / 1e6, 1) if self.copy_seconds > 0 else 0.0,
            "copy_seconds": round(self.copy_seconds, 3),
            "disks_used": self.disks_used,
            "disks_full": self.disks_full,
            "disks_unusable": self.disks_unusable,
            "files": self.files,
            "files_truncated": self.truncated,
            "newest_file_age_seconds": self.newest_age,
            "stale_temporaries_removed": self.stale,
            "registry_created": self.registry_created,
            "scan_errors": self.errors,
            "checksum_algorithm": self.algorithm,
        })
        return res

    # -- the run ----------------------------------------------------------------
    def execute(self):
        self.validate()
        entries = None
        if self.disk_map:
            try:
                entries = load_disk_map(self.disk_map)
            except DiskMapError as exc:
                raise IngestError("disk_map: %s" % exc)
        try:
            self.registry = Registry(self.registry_path, readonly=self.check_mode)
        except RegistryError as exc:
            raise IngestError(str(exc), self.registry_path)
        self.registry_created = not self.registry.exists
        if self.registry.created or self.registry.migrated_from or self.registry_created:
            self.changed = True
        lock = None
        try:
            if not self.check_mode:
                lock = Lock(self.registry_path).acquire()
            if entries:
                if self.registry.seed_disks(entries):
                    self.changed = True
            self.clean_pending()
            self._copy_all()
            self.clean_pending(final=True)
        except (RegistryError, copier.CopyError, DiskLabelError) as exc:
            raise IngestError(str(exc), getattr(exc, "path", None), result=self.result())
        except IngestError as exc:
            exc.result = self.result()
            raise
        except OSError as exc:  # nothing above should let one through; never a traceback
            where = exc.filename or self.src
            raise IngestError("%s: %s" % (where, exc.strerror or exc), where, result=self.result())
        finally:
            if lock is not None:
                lock.release()
            self.registry.close()
        return self.result()

    def _copy_all(self):
        try:
            found = copier.scan_tree(self.src, self.patterns, self.excludes, self.errors)
        except copier.CopyError as exc:
            raise IngestError(str(exc), self.src)
        for item in self.errors:
            self.warnings.append(item["msg"])
        now = self.clock()
        if found:
            newest = max(max(st.st_mtime, st.st_ctime) for dummy, st in found)
            self.newest_age = max(0, int(now - newest))
        sets = [DiskSet("primary", self.primary, self.registry, self), DiskSet("backup", self.backup, self.registry, self)]
        for disk_set in sets:
            disk_set.precheck()
        copied_files = 0
        copied_bytes = 0
        for relpath, st in found:
            if max(st.st_mtime, st.st_ctime) > now - self.settle_seconds:
                self.counts["unsettled"] += 1
                continue
            reg = self.registry.file(relpath)
            if reg is not None:
                self._registered(relpath, st, reg)
                continue
            if (self.max_files is not None and copied_files >= self.max_files) or (
                    self.max_bytes is not None and copied_bytes + st.st_size > self.max_bytes):
                self.outcome(relpath, "deferred", st.st_size, "left for the next run (max_files/max_bytes)")
                continue
            if self._copy_one(relpath, st, sets):
                copied_files += 1
                copied_bytes += st.st_size

    def _predict_targets(self, relpath, disks, copies):
        """Check mode: what the real run would find at the final names. An
        existing file is hashed with the source (reads only): the same
        content is reused, other content is a conflict. Returns
        ``(status, msg)`` of a file that would not be copied, else None."""
        src_digest = None
        for disk, copy in zip(disks, copies):
            path = copy["path"]
            try:
                existing = copier.regular_file_stat(disk["mount_point"], relpath)
                if existing is None:
                    copy["reused"] = False
                    if os.path.lexists(path):
                        return "conflict", "%s exists and is not a regular file; buffer file kept" % path
                    continue
                if src_digest is None:
                    src_digest = copier.hash_file(self.src, relpath, self.algorithm, from_disk=False)[0]
                got = copier.hash_file(disk["mount_point"], relpath, self.algorithm, from_disk=False)[0]
            except copier.CopyError as exc:
                return "failed", str(exc)
            if got != src_digest:
                return "conflict", "%s already exists with other content (%s %s, source %s); buffer file kept" % (
                    path, self.algorithm, got, src_digest)
            copy["reused"] = True
        return None

    def _registered(self, relpath, st, reg):
        path = os.path.join(self.src, relpath)
        if reg["size"] != st.st_size:
            self.outcome(relpath, "conflict", st.st_size, "%s differs from the registered file of that path (size %d, registered %d); kept"
                         % (path, st.st_size, reg["size"]))
            return
        if not self.remove_source:
            if st.st_mtime == reg["mtime"]:
                self.outcome(relpath, "skipped", st.st_size)
                return
        else:
            bad = [c for c in self.registry.copies_of(reg["id"]) if c["status"] not in ("ok", "repaired")]
            if bad:
                msg = "%s kept in the buffer: its registered copy on %s is %s (last audit); repair it with registry_audit first" % (
                    path, bad[0]["label"], bad[0]["status"])
                self.warnings.append(msg)
                self.outcome(relpath, "skipped", st.st_size, msg)
                return
        try:
            digest, dummy, seen = copier.hash_file(self.src, relpath, reg["algorithm"], from_disk=False)
        except copier.CopyError as exc:
            self.outcome(relpath, "failed", st.st_size, str(exc))
            return
        if digest != reg["digest"]:
            self.outcome(relpath, "conflict", st.st_size, "%s differs from the registered file of that path (%s digest); kept"
                         % (path, reg["algorithm"]))
            return
        removed = False
        msg = None
        if self.remove_source:
            # Registered in an earlier run: its copies were verified then, but a
            # copy may have gone since. Re-read every one from its disk first.
            msg = self._unverified_copy(path, reg)
            if msg:
                self.warnings.append(msg)
        if self.remove_source and not msg and not self.check_mode:
            removed, msg = self._remove(relpath, seen, reg["id"])
        elif self.remove_source and not msg:
            removed = True
            self.changed = True
        if removed:
            self.counts["removed"] += 1
            self.bytes["removed"] += st.st_size
        self.outcome(relpath, "skipped", st.st_size, msg, removed=removed)

    def _unverified_copy(self, path, reg):
        """Verify every registered copy of a registered file from its disk;
        None when all match, else why the buffer file must be kept. Results
        are recorded in the registry (not in check mode)."""
        for copy in self.registry.copies_of(reg["id"]):
            mount_point = copy["mount_point"]
            present = os.path.isdir(mount_point) and (self.is_mount(mount_point) or not self.require_mount)
            if not present or disk_label_or_none(mount_point) != copy["label"]:
                return "%s kept in the buffer: its copy on %s cannot be verified now (disk not at %s)" % (
                    path, copy["label"], mount_point)
            status, detail = copier.check_copy(mount_point, copy["path"], reg["algorithm"], reg["digest"])
            if not self.check_mode:
                self.registry.record_check(copy["id"], status, detail, verified=status == "ok")
            if status != "ok":
                return "%s kept in the buffer: its copy on %s is %s (%s)" % (path, copy["label"], status, detail)
        return None

    def _remove(self, relpath, seen, file_id):
        try:
            copier.remove_file(self.src, relpath, seen)
        except copier.CopyError as exc:
            self.warnings.append(str(exc))
            return False, str(exc)
        self.registry.mark_source_removed(file_id)
        self.changed = True
        return True, None

    def _copy_one(self, relpath, st, sets):
        size = st.st_size
        for attempt in range(len(self.primary) + len(self.backup) + 1):
            try:
                disks = [disk_set.choose(size) for disk_set in sets]
            except NoDiskLeft as exc:
                raise IngestError("%s; run stopped here, that file was not touched (add or mount the next disk)"
                                  % exc.describe(os.path.join(self.src, relpath)), os.path.join(self.src, relpath))
            copies = [{"role": d["role"], "label": d["label"], "path": os.path.join(d["mount_point"], relpath)} for d in disks]
            if self.check_mode:
                problem = self._predict_targets(relpath, disks, copies)
                if problem is not None:
                    status, msg = problem
                    self.outcome(relpath, status, size, msg, copies=copies)
                    return False
                for disk in disks:
                    self.planned[disk["mount_point"]] = self.planned.get(disk["mount_point"], 0) + size + SLACK_BYTES
                self.changed = True
                self.outcome(relpath, "copied", size, copies=copies, removed=self.remove_source)
                if self.remove_source:
                    self.counts["removed"] += 1
                    self.bytes["removed"] += size
                return True
            journal = Journal(self.registry)
            started = time.time()
            try:
                result = copier.copy_verified(self.src, relpath, [(d["mount_point"], relpath) for d in disks], self.algorithm,
                                              expect_stat=st, journal=journal)
            except copier.TargetFull as exc:
                self.registry.pending_remove(journal.take())
                bad = disks[exc.index] if exc.index is not None else None
                if bad is None:
                    self.outcome(relpath, "failed", size, str(exc))
                    return False
                disk_set = sets[0] if bad["role"] == "primary" else sets[1]
                disk_set.mark_full(bad["mount_point"], bad["label"], None, "filled up while copying %s (%s)" % (relpath, exc))
                continue
            except (copier.SourceChanged, copier.SourceVanished) as exc:
                self.registry.pending_remove(journal.take())
                self.outcome(relpath, "unsettled", size, "%s; left for the next run" % exc)
                return False
            except copier.TargetConflict as exc:
                self.registry.pending_remove(journal.take())
                self.outcome(relpath, "conflict", size, "%s; buffer file kept" % exc, copies=copies)
                return False
            except copier.CopyError as exc:
                self.registry.pending_remove(journal.take())
                self.outcome(relpath, "failed", size, str(exc), copies=copies)
                return False
            finally:
                self.copy_seconds += time.time() - started
            rows = [{"disk_id": d["id"], "role": d["role"], "path": relpath, "verified_at": c["verified_at"]}
                    for d, c in zip(disks, result.copies)]
            file_id = self.registry.register(relpath, result.size, result.source_stat.st_mtime, self.algorithm, result.digest, rows,
                                             journal.take())
            self.changed = True
            for copy, done in zip(copies, result.copies):
                copy["reused"] = done["reused"]
            removed, msg = False, None
            if self.remove_source:
                removed, msg = self._remove(relpath, result.source_stat, file_id)
                if removed:
                    self.counts["removed"] += 1
                    self.bytes["removed"] += size
            self.outcome(relpath, "copied", size, msg, copies=copies, removed=removed)
            return True
        self.outcome(relpath, "failed", size, "%s: gave up after disks kept filling up" % os.path.join(self.src, relpath))
        return False


def _same_fs(a, b):
    try:
        return os.stat(a).st_dev == os.stat(b).st_dev
    except OSError:
        return False


def buffer_copy(**kwargs):
    """Run one ingest; returns ``(result, warnings)``. Raises IngestError."""
    run = IngestRun(**kwargs)
    result = run.execute()
    return result, run.warnings
