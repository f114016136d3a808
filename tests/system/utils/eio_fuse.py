# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A small FUSE layer that passes a directory through and returns EIO on demand.

``python eio_fuse.py BACKING MOUNTPOINT FLAG`` mounts BACKING at MOUNTPOINT
(foreground); while the file FLAG exists, every read, write and flush of a
file returns EIO. A loop device over an image file in it is a disk that
starts dying when the test says so (device-mapper's ``error`` target is not
available here). Uses fusepy (requirements.txt).
"""

from __future__ import annotations

import errno
import os
import sys

from fuse import FUSE, FuseOSError, Operations  # pylint: disable=import-error


class EioPassthrough(Operations):
    def __init__(self, backing, flag):
        self.backing = backing
        self.flag = flag

    def _path(self, path):
        return os.path.join(self.backing, path.lstrip("/"))

    def _check(self):
        if os.path.exists(self.flag):
            raise FuseOSError(errno.EIO)

    def getattr(self, path, fh=None):
        st = os.lstat(self._path(path))
        return {key: getattr(st, key) for key in ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink", "st_size", "st_uid")}

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._path(path))

    def open(self, path, flags):
        return os.open(self._path(path), flags)

    def read(self, path, size, offset, fh):
        self._check()
        return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        self._check()
        return os.pwrite(fh, data, offset)

    def truncate(self, path, length, fh=None):
        os.truncate(self._path(path), length)

    def flush(self, path, fh):
        self._check()
        return 0

    def fsync(self, path, datasync, fh):
        self._check()
        os.fsync(fh)
        return 0

    def release(self, path, fh):
        os.close(fh)
        return 0


if __name__ == "__main__":
    FUSE(EioPassthrough(sys.argv[1], sys.argv[3]), sys.argv[2], foreground=True, nothreads=False, allow_other=True)
