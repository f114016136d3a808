# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Disk labels: which disk of a series a mount point holds.

A disk names itself with a ``.datasteward-disk`` file at its root (first
word); without one its label is the mount point's basename. Used by the
ingest and audit jobs and by copy_registry_info. No AnsibleModule.
"""

from __future__ import annotations

import errno
import os
import stat

LABEL_FILE = ".datasteward-disk"


class DiskLabelError(Exception):
    """A disk's label file exists but cannot be read (I/O error, not a
    regular file); ``path`` names it."""

    def __init__(self, msg, path=None):
        super().__init__(msg)
        self.path = path


def disk_label(mount_point):
    """The first word of ``<mount_point>/.datasteward-disk`` if that regular
    file exists, else the mount point's basename. A label file that exists
    but cannot be read, or is not a regular file, raises DiskLabelError:
    guessing the basename instead could file the disk's copies under
    another disk."""
    path = os.path.join(mount_point, LABEL_FILE)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return os.path.basename(os.path.normpath(mount_point))
        why = "it is a symlink" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
        raise DiskLabelError("cannot read the disk label %s: %s" % (path, why), path)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DiskLabelError("cannot read the disk label %s: it is not a regular file" % path, path)
        words = os.read(fd, 256).decode("utf-8", "replace").split()
    except OSError as exc:
        raise DiskLabelError("cannot read the disk label %s: %s" % (path, exc.strerror or exc), path)
    finally:
        os.close(fd)
    return words[0] if words else os.path.basename(os.path.normpath(mount_point))


def disk_label_or_none(mount_point):
    """:func:`disk_label`, or None when the label file cannot be read (for
    readers that only compare labels: an unreadable disk is not that disk)."""
    try:
        return disk_label(mount_point)
    except DiskLabelError:
        return None
