# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The disk series of an ingest run: which disk of each series is current,
which are full or unusable, and whether a disk is still the one it was.

Rules: the current disk of a series is the first, in list order, that is
neither full (in the registry or found so in this run) nor unusable in this
run. A disk is unusable for the rest of the run at its first failure that
is about the disk (I/O error, read-only file system, a mount that went away,
an unreadable label); the next disk of its series takes over. No AnsibleModule.
"""

from __future__ import annotations

import os

from ansible_collections.datasteward.storage.plugins.module_utils._disks.labels import LABEL_FILE, DiskLabelError, disk_label, disk_label_or_none

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


def _same_label_msg(first, second, label, extra=""):
    return "disks %s and %s both have the label %s%s; every disk needs its own label: put a %s file holding a unique label at the root of each disk" % (
        first,
        second,
        label,
        extra,
        LABEL_FILE,
    )


def same_fs(a, b):
    try:
        return os.stat(a).st_dev == os.stat(b).st_dev
    except OSError:
        return False


class Disks:
    """What the run knows about every disk: labels (read once), disks left
    out of the run, disks in use and the device each was on when chosen."""

    def __init__(self, run):
        self.run = run
        self.labels = {}  # mount point -> label
        self.unusable = {}  # mount point -> why it cannot be used in this run
        self.devices = {}  # mount point -> st_dev when it was chosen
        self.used = []  # [{"label", "mount_point", "role"}]
        self.unusable_list = []

    def label_of(self, mount_point):
        if mount_point not in self.labels:
            self.labels[mount_point] = disk_label(mount_point)
        return self.labels[mount_point]

    def mark_unusable(self, mount_point, role, reason, label=None):
        """Leave a disk out of this run, reported in ``disks_unusable`` and
        as a warning; its set goes on with the next."""
        if mount_point in self.unusable:
            return
        self.unusable[mount_point] = reason
        self.unusable_list.append({"label": label or self.labels.get(mount_point), "mount_point": mount_point, "role": role, "reason": reason})
        self.run.warnings.append("%s disk %s not used in this run: %s" % (role, mount_point, reason))

    def present(self, mount_point):
        return os.path.isdir(mount_point) and (not self.run.opts.require_mount or self.run.is_mount(mount_point))

    def validate_labels(self, mount_points, role_of):
        """Before any work: the disks present now must carry distinct labels."""
        seen = {}
        for mount_point in mount_points:
            if not self.present(mount_point):
                continue  # not written in this run (missing, or a shelved full disk)
            try:
                label = self.label_of(mount_point)
            except DiskLabelError as exc:
                self.mark_unusable(mount_point, role_of(mount_point), str(exc))
                continue
            other = seen.get(label)
            if other is not None and os.path.realpath(other) != os.path.realpath(mount_point):
                raise IngestError(_same_label_msg(other, mount_point, label), mount_point)
            seen[label] = mount_point

    def use(self, label, mount_point, role, row):
        """Register (not in check mode) and remember the disk chosen for a file."""
        self._check_moved(label, mount_point, row)
        run = self.run
        if run.opts.check_mode:
            if row is None or row["mount_point"] != mount_point or row["role"] != role:
                run.changed = True
            disk = {"label": label, "mount_point": mount_point, "role": role, "id": row["id"] if row else None}
        else:
            row, changed = run.registry.ensure_disk(label, mount_point, role)
            run.changed = run.changed or changed
            disk = {"label": label, "mount_point": mount_point, "role": role, "id": row["id"]}
        for other in self.used:
            if other["label"] == label and other["mount_point"] != mount_point:
                raise IngestError(_same_label_msg(other["mount_point"], mount_point, label), mount_point)
        if mount_point not in [d["mount_point"] for d in self.used]:
            self.used.append({"label": label, "mount_point": mount_point, "role": role})
        if run.opts.require_mount:
            for other in self.used:
                if other["mount_point"] != mount_point and same_fs(other["mount_point"], mount_point):
                    raise IngestError(
                        "disks %s and %s are the same file system; primary and backup copies must be on different disks" % (other["mount_point"], mount_point),
                        mount_point,
                    )
        try:
            self.devices[mount_point] = os.stat(mount_point).st_dev
        except OSError as exc:
            raise IngestError("%s disk %s cannot be read: %s" % (role, mount_point, exc.strerror or exc), mount_point)
        return disk

    def _check_moved(self, label, mount_point, row):
        """A registered disk seen at another mount point has moved, unless its
        recorded mount point still holds a disk with that label."""
        if row is None or not row["mount_point"] or row["mount_point"] == mount_point:
            return
        old = row["mount_point"]
        if not self.present(old):
            return
        if os.path.realpath(old) == os.path.realpath(mount_point) or (self.run.opts.require_mount and same_fs(old, mount_point)):
            return  # the same disk (a bind mount, or another path to it)
        if disk_label_or_none(old) == label:
            raise IngestError(_same_label_msg(old, mount_point, label, " (the registry knows it at %s)" % old), mount_point)

    def gone(self, disk):
        """Why ``disk`` is no longer the mounted disk it was when chosen
        (unmounted, another device, another label), or None when it still is."""
        mount_point = disk["mount_point"]
        if self.run.opts.require_mount and not self.run.is_mount(mount_point):
            return "%s is no longer a mount point (unmounted during the run)" % mount_point
        try:
            dev = os.stat(mount_point).st_dev
        except OSError as exc:
            return "cannot stat %s: %s" % (mount_point, exc.strerror or exc)
        if dev != self.devices.get(mount_point, dev):
            return "%s now holds another file system than when the run chose it" % mount_point
        label = disk_label_or_none(mount_point)
        if label != disk["label"]:
            return "%s now has the label %s, not %s" % (mount_point, label, disk["label"])
        return None


class DiskSet:
    """One series of disks (primary or backup), filled in order."""

    def __init__(self, role, mount_points, run):
        self.role = role
        self.mount_points = list(mount_points)
        self.run = run
        self.full = set()  # mount points found full in this run
        self.checked = {}  # mount point -> disk dict, once usable
        self.seen = {}  # mount point -> (label, row) once found present (re-checked per batch by Disks.gone)

    def _present(self, mount_point, reasons):
        """``(label, row)`` of a disk that may be written, None for one that
        is marked full; raises IngestError for a missing drive."""
        run = self.run
        mounted = run.is_mount(mount_point)
        label = run.disks.label_of(mount_point)
        row = run.registry.disk(label)
        if row is None and not mounted:
            row = run.registry.disk_by_mount(mount_point)
        if row is not None and row["full"]:
            self.full.add(mount_point)
            reasons.append("%s (%s) marked full in the registry" % (mount_point, row["label"]))
            return None
        if run.opts.require_mount and not mounted:
            raise IngestError(
                "%s disk %s is not a mount point (drive missing or not mounted); refusing to write into the file system beneath it" % (self.role, mount_point),
                mount_point,
            )
        if not os.path.isdir(mount_point):
            raise IngestError("%s disk %s does not exist or is not a directory" % (self.role, mount_point), mount_point)
        return label, row

    def _usable(self, mount_point, reasons):
        """:meth:`_present`, or None for a disk unusable in this run."""
        disks = self.run.disks
        if mount_point in disks.unusable:
            reasons.append("%s unusable: %s" % (mount_point, disks.unusable[mount_point]))
            return None
        if mount_point in self.seen:
            return self.seen[mount_point]
        try:
            present = self._present(mount_point, reasons)
            if present is not None:
                self.seen[mount_point] = present
            return present
        except DiskLabelError as exc:
            disks.mark_unusable(mount_point, self.role, str(exc))
            reasons.append("%s unusable: %s" % (mount_point, exc))
            return None

    def precheck(self):
        """Before any work: the current disk of the set must be present."""
        for mount_point in self.mount_points:
            if self._usable(mount_point, []) is not None:
                return

    def _free(self, mount_point, label, reasons):
        try:
            st = self.run.statvfs(mount_point)
        except OSError as exc:  # a dead disk: not this run's, the next one may do
            why = "cannot read free space of %s: %s" % (mount_point, exc.strerror or exc)
            self.run.disks.mark_unusable(mount_point, self.role, why, label)
            reasons.append("%s unusable: %s" % (mount_point, why))
            return None
        return st.f_bavail * st.f_frsize - self.run.opts.min_free_bytes - self.run.planned.get(mount_point, 0)

    def choose(self, size):
        """The disk (dict with label, mount_point, role, id) that takes
        ``size`` bytes next; marks disks that cannot as full."""
        reasons = []
        for mount_point in self.mount_points:
            if mount_point in self.full:
                reasons.append("%s full" % mount_point)
                continue
            present = self._usable(mount_point, reasons)
            if present is None:
                continue
            label, row = present
            free = self._free(mount_point, label, reasons)
            if free is None:
                continue
            if free < size + SLACK_BYTES:
                self.mark_full(mount_point, label, row, "%d bytes free (after min_free_bytes), next file needs %d" % (free, size))
                reasons.append("%s (%s) full" % (mount_point, label))
                continue
            disk = self.checked.get(mount_point)
            if disk is None:
                disk = self.run.disks.use(label, mount_point, self.role, row)
                self.checked[mount_point] = disk
            return disk
        raise NoDiskLeft(self.role, size, reasons)

    def mark_full(self, mount_point, label, row=None, why=""):
        run = self.run
        self.full.add(mount_point)
        self.checked.pop(mount_point, None)
        self.seen.pop(mount_point, None)
        run.disks_full.append({"label": label, "mount_point": mount_point, "role": self.role, "reason": why})
        if row is None:
            row = run.registry.disk(label)
        run.changed = True
        if run.opts.check_mode:
            return
        if row is None:
            row, dummy = run.registry.ensure_disk(label, mount_point, self.role)
        run.registry.mark_full(row["id"])

    def leave(self, mount_point, label, why):
        """Take a disk out of this run (it failed); the next one takes over."""
        self.checked.pop(mount_point, None)
        self.seen.pop(mount_point, None)
        self.run.disks.mark_unusable(mount_point, self.role, why, label)
