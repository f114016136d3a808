#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: disk_usage
short_description: Report space and inode usage of file systems, as df does
version_added: 0.1.0
description:
  - Reports size, used, available and reserved bytes and inode counts of mounted file systems, with the same arithmetic as
    C(df -B1) and C(df -i), and grades each one V(ok), V(warning), V(critical) or V(error) against thresholds.
  - Without O(paths) it reports every mounted file system that is not a pseudo file system (proc, sysfs, cgroup, devtmpfs, devpts and the like).
  - Each file system is queried in its own thread with a deadline, so a hung one (a dead NFS server) is reported with status V(error)
    after O(timeout) seconds while the others are still reported.
  - An information module in all but name; its short name is kept because users call it ad hoc as C(ansible all -m disk_usage).
  - It needs nothing on the managed host but Python.
author:
  - datasteward.storage maintainers (@datasteward)
extends_documentation_fragment:
  - datasteward.storage._attributes
  - datasteward.storage._attributes.INFO_MODULE
options:
  path:
    description:
      - One path whose file system to report, taken as it is (a comma in it is part of the name). A path inside a mount reports the
        file system that holds it, with the path as asked in RV(filesystems[].path).
      - A path that does not exist fails the module with a message naming it.
      - Mutually exclusive with O(paths). When both are omitted, every mounted file system that is not a pseudo file system is reported.
    type: path
  paths:
    description:
      - Paths whose file systems to report, as O(path) does for one; each is reported once, in the order given.
      - A path that does not exist fails the module with a message naming it.
      - As a string, the list is split at commas; give a path that contains a comma as O(path), or as a YAML list.
    type: list
    elements: path
  fstypes:
    description:
      - Only report file systems of these types (for example V(ext4), V(xfs), V(nfs4)).
      - When no mounted file system (or none of those holding O(path) or O(paths)) has one of these types, the module fails,
        naming the types that are mounted.
    type: list
    elements: str
  exclude_fstypes:
    description:
      - Never report file systems of these types (for example V(tmpfs), V(squashfs)).
      - When this leaves no file system to report, the module fails, naming the types that are mounted.
    type: list
    elements: str
  warn_percent:
    description:
      - Space used, in percent as df computes it, at or above which a file system is in V(warning).
    type: int
    default: 80
  critical_percent:
    description:
      - Space used, in percent, at or above which a file system is V(critical).
    type: int
    default: 90
  inodes_warn_percent:
    description:
      - Inodes used, in percent as C(df -i) computes it, at or above which a file system is in V(warning).
    type: int
    default: 80
  inodes_critical_percent:
    description:
      - Inodes used, in percent, at or above which a file system is V(critical).
    type: int
    default: 90
  timeout:
    description:
      - Seconds to wait for each file system to answer before reporting it with status V(error).
    type: float
    default: 5
notes:
  - Pseudo file systems are still reported when asked for by O(path), O(paths) or O(fstypes).
  - Type filters that select no file system fail the module rather than warn. In an alerting play (C(failed_when) on RV(status))
    a warning is easily missed and RV(status) would be V(ok) with nothing checked, so a typo (V(ext3) for V(ext4), V(nfs) for
    V(nfs4)) or a data disk that is no longer mounted would pass silently. Plays run across hosts with different file systems
    should filter by type on each host's own list.
  - When several file systems are mounted on one directory only the one on top is reported, as df does.
  - A file system that hangs leaves one blocked thread behind for the lifetime of the module process only.
seealso:
  - module: ansible.builtin.setup
    description: Its C(mounts) facts list mounts with sizes, without thresholds or a deadline per file system.
"""

EXAMPLES = r"""
- name: Report every real file system of the host
  datasteward.storage.disk_usage:
  register: du

- name: Fail when a data disk is nearly full
  ansible.builtin.assert:
    that: du.status not in ['critical', 'error']
    fail_msg: "{{ du.alerts | join('; ') }}"

- name: The file system that holds the telescope data directory, stricter thresholds
  datasteward.storage.disk_usage:
    path: /data/telescope
    warn_percent: 70
    critical_percent: 85

- name: Only NFS mounts, with a short deadline for dead servers (fails if the host has no NFS mount)
  datasteward.storage.disk_usage:
    fstypes: [nfs, nfs4]
    timeout: 2

- name: The file systems of the buffer and the two disk series
  datasteward.storage.disk_usage:
    paths:
      - /data/buffer
      - /mnt/primary
      - /mnt/backup
"""

RETURN = r"""
filesystems:
  description: One entry per reported file system (per path when O(path) or O(paths) is given), in mount table order or in the order of O(paths).
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The path asked for, or the mount point when neither O(path) nor O(paths) was given.
      type: str
      sample: /data/telescope
    mount:
      description: Mount point of the file system that holds RV(filesystems[].path).
      type: str
      sample: /data
    device:
      description: Mounted device or source, as in the mount table.
      type: str
      sample: /dev/sdb1
    fstype:
      description: File system type.
      type: str
      sample: xfs
    options:
      description: Mount options (per-mount then super block options), comma-separated.
      type: str
      sample: rw,relatime,attr2,inode64
    total_bytes:
      description: Size of the file system (C(df -B1) C(1B-blocks)). V(null) with status V(error).
      type: int
      sample: 1999421276160
    used_bytes:
      description: Bytes in use (C(df -B1) C(Used)).
      type: int
      sample: 1641293828096
    available_bytes:
      description: Bytes available to unprivileged users (C(df -B1) C(Available)).
      type: int
      sample: 358127448064
    reserved_bytes:
      description: Free bytes reserved for root.
      type: int
      sample: 0
    used_percent:
      description: Used / (used + available) in percent, rounded up (C(df) C(Use%)). V(null) where df prints C(-).
      type: int
      sample: 83
    inodes_total:
      description: Inodes of the file system (C(df -i) C(Inodes)).
      type: int
      sample: 976760832
    inodes_used:
      description: Inodes in use (C(df -i) C(IUsed)).
      type: int
      sample: 1841
    inodes_available:
      description: Free inodes (C(df -i) C(IFree)).
      type: int
      sample: 976758991
    inodes_used_percent:
      description: Inodes used in percent, rounded up (C(df -i) C(IUse%)). V(null) where df prints C(-).
      type: int
      sample: 1
    status:
      description: V(ok), V(warning), V(critical) or V(error).
      type: str
      sample: warning
    error:
      description: Why the file system could not be read, when RV(filesystems[].status) is V(error); otherwise V(null).
      type: str
      sample: statfs did not answer within 5 s (hung file system?)
status:
  description: The worst status of all reported file systems (V(ok) when none is reported).
  returned: always
  type: str
  sample: warning
alerts:
  description: One readable line per file system in warning, critical or error.
  returned: always
  type: list
  elements: str
  sample:
    - "WARNING /data (/dev/sdb1): 83% space used, 333.5 GiB available"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.datasteward.storage.plugins.module_utils._fs.mounts import (
    FilesystemError,
    disk_usage,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path"),
            paths=dict(type="list", elements="path"),
            fstypes=dict(type="list", elements="str"),
            exclude_fstypes=dict(type="list", elements="str"),
            warn_percent=dict(type="int", default=80),
            critical_percent=dict(type="int", default=90),
            inodes_warn_percent=dict(type="int", default=80),
            inodes_critical_percent=dict(type="int", default=90),
            timeout=dict(type="float", default=5),
        ),
        mutually_exclusive=[["path", "paths"]],
        supports_check_mode=True,
    )
    params = module.params
    thresholds = dict((key, params[key]) for key in ("warn_percent", "critical_percent", "inodes_warn_percent", "inodes_critical_percent"))
    try:
        result = disk_usage(
            paths=[params["path"]] if params["path"] else params["paths"],
            paths_option="path" if params["path"] else "paths",
            fstypes=params["fstypes"],
            exclude_fstypes=params["exclude_fstypes"],
            thresholds=thresholds,
            timeout=params["timeout"],
        )
    except FilesystemError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="cannot read the mount table %s: %s" % (exc.filename, exc.strerror))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
