#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_audit
short_description: Re-hash registered copies, record fixity, and repair bad copies from their twins
version_added: 0.1.0
description:
  - Re-reads copies recorded by M(datasteward.storage.buffer_copy) from their disks (cached pages dropped first, so the data comes
    from the device) and compares them with the registered digest.
  - Selects all copies, or those not verified for O(older_than_days) days, optionally a random O(sample_size) of them, optionally
    only on the disks named in O(labels).
  - Records each result in the registry (copy status, time, and an audit history row) and reports missing, corrupt and unreadable copies.
  - With O(repair=true), a missing or corrupt copy is restored from a twin copy that verified in the same run, through the same
    verified copy protocol as M(datasteward.storage.buffer_copy) (temporary file, fsync, read back from disk, rename).
  - Copies on disks that are not present are counted as unavailable, not as missing.
  - "A disk is found at the mount point the registry last saw it at, or at one of O(mount_points), and is recognised by its label:
    the first word of C(.datasteward-disk) at its root if present, else the mount point's basename."
author:
  - datasteward.storage maintainers (@datasteward)
extends_documentation_fragment:
  - datasteward.storage._attributes
  - datasteward.storage._registry
attributes:
  check_mode:
    support: full
    details:
      - Hashes the copies and reports what would be recorded and repaired; writes nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - Only a change of a copy's status or a repair counts as a change; refreshing the verification time of a good copy does not.
options:
  registry:
    description:
      - The registry file written by M(datasteward.storage.buffer_copy). It must exist.
  sample_size:
    description:
      - Check a random sample of this many of the selected copies. Omitted checks them all.
    type: int
  older_than_days:
    description:
      - Only copies whose last successful verification is older than this many days.
    type: int
  labels:
    description:
      - Only copies on the disks with these labels.
    type: list
    elements: str
    default: []
  mount_points:
    description:
      - Extra places to look for disks (for example a shelved drive mounted somewhere else for the audit).
    type: list
    elements: path
    default: []
  repair:
    description:
      - Restore missing and corrupt copies from a verified twin.
    type: bool
    default: false
  require_mount:
    description:
      - Only use disk locations that are mount points.
    type: bool
    default: true
seealso:
  - module: datasteward.storage.buffer_copy
  - module: datasteward.storage.copy_registry_info
"""

EXAMPLES = r"""
- name: Monthly fixity check of copies not verified for 30 days, repairing what can be repaired
  datasteward.storage.registry_audit:
    registry: /var/lib/datasteward/registry.sqlite
    older_than_days: 30
    repair: true
  register: audit

- name: Fail when copies are bad and could not be repaired
  ansible.builtin.assert:
    that: audit.repair_failed_copies == 0 and audit.unreadable_copies == 0
    fail_msg: "{{ audit.problems }}"

- name: Spot-check 100 random copies on the current pair of disks
  datasteward.storage.registry_audit:
    registry: /var/lib/datasteward/registry.sqlite
    labels: [P07, B07]
    sample_size: 100
"""

RETURN = r"""
checked_copies:
  description: Copies that were read and hashed.
  returned: always
  type: int
  sample: 100
ok_copies:
  description: Copies that matched their registered digest.
  returned: always
  type: int
  sample: 98
missing_copies:
  description: Copies whose file is gone from a present disk.
  returned: always
  type: int
  sample: 1
corrupt_copies:
  description: Copies whose content does not match the registered digest.
  returned: always
  type: int
  sample: 1
unreadable_copies:
  description: Copies that could not be read (I/O error, changing while read).
  returned: always
  type: int
  sample: 0
unavailable_copies:
  description: Selected copies on disks that are not present.
  returned: always
  type: int
  sample: 250
repaired_copies:
  description: Missing or corrupt copies restored from a verified twin (or that would be, in check mode).
  returned: always
  type: int
  sample: 2
repair_failed_copies:
  description: Missing or corrupt copies that could not be restored.
  returned: always
  type: int
  sample: 0
checked_bytes:
  description: Bytes hashed.
  returned: always
  type: int
  sample: 107374182400
throughput_mbps:
  description: Hashing rate in MB/s (10^6 bytes).
  returned: always
  type: float
  sample: 480.2
problems:
  description: The missing, corrupt and unreadable copies, at most 1000.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: Registered path of the file.
      type: str
      sample: 2024/06/01/run_0001.g3
    label:
      description: Disk label of the bad copy.
      type: str
      sample: P01
    role:
      description: V(primary) or V(backup).
      type: str
      sample: primary
    disk_path:
      description: Where the copy was looked for.
      type: str
      sample: /mnt/P01/2024/06/01/run_0001.g3
    status:
      description: V(missing), V(corrupt) or V(unreadable).
      type: str
      sample: corrupt
    detail:
      description: What was found.
      type: str
      sample: sha512 digest 3a... does not match the registered 9f...
    repaired:
      description: Whether it was (or would be) restored.
      type: bool
      sample: true
    repair_source:
      description: The twin it was restored from.
      type: str
      returned: when repaired
      sample: /mnt/B01/2024/06/01/run_0001.g3
    repair_error:
      description: Why it could not be restored.
      type: str
      returned: when O(repair=true) and the repair failed
      sample: no verified twin copy is available (twin disks absent or bad too)
disks_present:
  description: Labels of the disks found.
  returned: always
  type: list
  elements: str
  sample: [B01, P01]
stale_temporaries_removed:
  description:
    - Temporaries of an interrupted copy or repair that were removed (or would be).
    - Also counts unregistered duplicate copies left by an interrupted M(datasteward.storage.buffer_copy) run, as there.
  returned: always
  type: int
  sample: 0
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.datasteward.storage.plugins.module_utils._jobs.audit import AuditError, audit
from ansible_collections.datasteward.storage.plugins.module_utils._registry.db import registry_argument_spec


def main():
    module = AnsibleModule(
        argument_spec=dict(
            registry_argument_spec(),
            sample_size=dict(type="int"),
            older_than_days=dict(type="int"),
            labels=dict(type="list", elements="str", default=[]),
            mount_points=dict(type="list", elements="path", default=[]),
            repair=dict(type="bool", default=False),
            require_mount=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    try:
        result, warnings = audit(check_mode=module.check_mode, **module.params)
    except AuditError as exc:
        module.fail_json(msg=str(exc), path=exc.path)
    for warning in warnings[:20]:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
