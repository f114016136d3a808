#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: copy_registry_info
short_description: Which disks hold which files, from the copy registry
version_added: 0.1.0
description:
  - Reads the registry written by M(datasteward.storage.buffer_copy) and returns the registered files that match the filters, each
    with its copies (disk label, role, path, last verification and audit status), and a summary per disk.
  - Opens the registry read-only; never creates or changes it. On read-only media (a registry copied to a shelved disk or a DVD)
    where SQLite cannot open a WAL registry read-only, it is opened as immutable (the file as it is, without its C(-wal) file).
  - A O(registry) that is not a regular file (a FIFO, a directory) is refused, naming it.
  - File names that are not UTF-8 are shown with their bytes as C(\xNN).
author:
  - datasteward.storage maintainers (@datasteward)
extends_documentation_fragment:
  - datasteward.storage._attributes
  - datasteward.storage._attributes.INFO_MODULE
  - datasteward.storage._registry
options:
  registry:
    description:
      - The registry file. An absent file reads as an empty registry.
  patterns:
    description:
      - SQLite GLOB patterns (case-sensitive; C(*) also matches C(/)) on the registered path, relative to the buffer.
        A file is returned when one matches.
    type: list
    elements: str
    default: []
  since:
    description:
      - Only files whose date (see O(date_field)) is at or after this. C(YYYY-MM-DD), C(YYYY-MM-DDTHH:MM:SS) (UTC unless an offset
        is given) or seconds since the epoch.
    type: str
  until:
    description:
      - Only files whose date is before this; same formats as O(since).
    type: str
  date_field:
    description:
      - The date O(since) and O(until) apply to, the file's modification time or the time it was registered.
    type: str
    default: mtime
    choices: [mtime, registered]
  labels:
    description:
      - Only files with a copy on one of the disks with these labels; also limits RV(disks).
    type: list
    elements: str
    default: []
  limit:
    description:
      - Return at most this many files (RV(matched) still counts them all). From V(0) to V(9223372036854775807).
    type: int
    default: 1000
seealso:
  - module: datasteward.storage.buffer_copy
  - module: datasteward.storage.registry_audit
"""

EXAMPLES = r"""
- name: Which drives hold the data of 1 June 2024?
  datasteward.storage.copy_registry_info:
    registry: /var/lib/datasteward/registry.sqlite
    patterns: ["2024/06/01/*"]
  register: where

- name: Files registered on P03 during June
  datasteward.storage.copy_registry_info:
    registry: /var/lib/datasteward/registry.sqlite
    labels: [P03]
    since: "2024-06-01"
    until: "2024-07-01"
    date_field: registered

- name: Fill and file counts of every disk
  datasteward.storage.copy_registry_info:
    registry: /var/lib/datasteward/registry.sqlite
    limit: 0
"""

RETURN = r"""
files:
  description: Matching registered files, by path, at most O(limit).
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: Path relative to the buffer and to each disk.
      type: str
      sample: 2024/06/01/run_0001.g3
    size_bytes:
      description: File size.
      type: int
      sample: 1048576
    mtime:
      description: Modification time of the source, seconds since the epoch.
      type: float
      sample: 1717200000.0
    checksum_algorithm:
      description: Hash algorithm of RV(files[].digest).
      type: str
      sample: sha512
    digest:
      description: Hex digest of the content.
      type: str
      sample: 9f685c5b16...
    registered_at:
      description: When the file and its copies were registered.
      type: float
      sample: 1717203600.0
    source_removed_at:
      description: When the buffer file was removed, or null.
      type: float
      sample: 1717203601.0
    copies:
      description: The copies of the file.
      type: list
      elements: dict
      sample: [{"label": "P01", "role": "primary", "path": "2024/06/01/run_0001.g3", "mount_point": "/mnt/P01",
                "verified_at": 1717203600.0, "checked_at": 1717203600.0, "status": "ok"}]
matched:
  description: Number of files matching the filters.
  returned: always
  type: int
  sample: 42
truncated:
  description: Whether RV(files) was cut at O(limit).
  returned: always
  type: bool
  sample: false
disks:
  description: Every disk the registry knows (only those in O(labels) when given).
  returned: always
  type: list
  elements: dict
  contains:
    label:
      description: Disk label.
      type: str
      sample: P01
    serial:
      description: Serial number, from a disk map; null when unknown.
      type: str
      sample: ZA12JCHM
    wwn:
      description: World wide name, from a disk map; null when unknown.
      type: str
      sample: "0x5000c500858bfea7"
    mount_point:
      description: Where the disk was last mounted.
      type: str
      sample: /mnt/P01
    role:
      description: V(primary) or V(backup); null for a disk only known from a disk map.
      type: str
      sample: primary
    full:
      description: Whether it is marked full (never written again).
      type: bool
      sample: true
    full_at:
      description: When it was marked full, or null.
      type: float
      sample: 1717203600.0
    file_count:
      description: Registered copies on it.
      type: int
      sample: 10234
    registered_bytes:
      description: Bytes of the registered copies on it.
      type: int
      sample: 3999999999999
    problem_copies:
      description: Copies on it whose last audit found them missing, corrupt or unreadable.
      type: int
      sample: 0
    mounted:
      description: Whether it is mounted where it was last seen (checked by label).
      type: bool
      sample: true
    total_bytes:
      description: File system size when mounted, else null.
      type: int
      sample: 4000787030016
    available_bytes:
      description: Free space when mounted, else null.
      type: int
      sample: 787030016
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.datasteward.storage.plugins.module_utils._disks.labels import disk_label_or_none
from ansible_collections.datasteward.storage.plugins.module_utils._registry.db import (
    Registry,
    RegistryError,
    check_limit,
    disk_summary,
    find_files,
    parse_when,
    registry_argument_spec,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            registry_argument_spec(),
            patterns=dict(type="list", elements="str", default=[]),
            since=dict(type="str"),
            until=dict(type="str"),
            date_field=dict(type="str", default="mtime", choices=["mtime", "registered"]),
            labels=dict(type="list", elements="str", default=[]),
            limit=dict(type="int", default=1000),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        check_limit(params["limit"])
        since = parse_when(params["since"], "since")
        until = parse_when(params["until"], "until")
        registry = Registry(params["registry"], readonly=True)
        try:
            files, matched = find_files(registry, params["patterns"], since, until, params["labels"], params["limit"], params["date_field"])
            disks = disk_summary(registry, params["labels"], label_of=disk_label_or_none)
        finally:
            registry.close()
    except RegistryError as exc:
        module.fail_json(msg=str(exc), path=exc.path)
    module.exit_json(changed=False, files=files, matched=matched, truncated=matched > len(files), disks=disks)


if __name__ == "__main__":
    main()
