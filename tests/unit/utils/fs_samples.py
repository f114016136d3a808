# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A sample /proc/self/mountinfo and a statvfs result with chosen counts, for
the file system usage engine's tests (unit and system)."""

from __future__ import annotations

MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
31 23 0:28 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw
40 27 8:17 / /mnt/with\\040space rw,noatime - xfs /dev/sdb1 rw,attr2
41 27 0:50 / /data rw,relatime - ext4 /dev/sdc1 rw
42 27 0:51 / /data rw,relatime - nfs4 nas:/export rw,vers=4.2
43 42 0:52 / /data/scratch rw,relatime - tmpfs tmpfs rw,size=1024k
"""


class FakeStat:
    """An os.statvfs_result stand-in with chosen counts (for the arithmetic)."""

    def __init__(self, **fields):
        self.__dict__.update(dict(f_frsize=4096, f_bsize=4096, f_blocks=0, f_bfree=0, f_bavail=0, f_files=0, f_ffree=0))
        self.__dict__.update(fields)
