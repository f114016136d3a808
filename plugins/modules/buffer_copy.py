#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: buffer_copy
short_description: Copy a data buffer to primary and backup disks with verification and a registry
version_added: 0.1.0
description:
  - Copies every settled file found under O(src) to the current disk of the O(primary) set and the current disk of the O(backup) set,
    at the same relative path, and records the file and both copies in an SQLite registry.
  - "Per file: one read of the source hashes it and writes both copies to temporary names in the target directories; each copy is
    flushed, its cached pages are dropped and it is re-read from the disk and compared; only then is it renamed to its final name
    and the directory fsynced. A committed registry transaction then records the file and both copies."
  - "Files are copied in batches (see O(batch_files), O(batch_bytes), O(batch_seconds)): the temporaries of a batch are journalled in
    one transaction, written, flushed with one C(syncfs) per disk, re-read and verified from both disks in parallel, renamed; then
    one transaction registers the whole batch, and only then are its buffer files removed. While a batch is re-read from the disks,
    the next batch is already read and written (its temporaries), so the verification (in a separate process per disk) overlaps
    the reading."
  - With O(remove_source=true) a buffer file is deleted only after that transaction committed, and only if it did not change since it was read.
  - Before a batch is registered and before its buffer files are removed, every target disk is checked to still be the mounted disk
    it was (mount point, device and label). A disk unmounted or replaced during the copy is reported; its copies are not registered
    and the buffer files are kept.
  - A disk that fails in a way that is about the disk (I/O error, read-only file system, out of space, a mount that went away) is taken
    out of the run at its first such failure and reported in RV(disks_unusable) (out of space in RV(disks_full)); the next disk of its
    series takes over and the file is retried there.
  - Any file name the kernel accepts is copied, registered (non-UTF-8 names are stored losslessly) and removed like any other; in
    results and messages non-UTF-8 bytes are shown as C(\xNN). A file of the buffer whose name starts with C(.dstmp.) (reserved for
    the engine's temporaries) is skipped and reported in RV(scan_errors).
  - The current disk of a set is the first one, in list order, that is not full. A disk that cannot take the next file is marked full
    in the registry and never written again. A full disk may be unmounted and shelved.
  - "A disk's label is the first word of the file C(.datasteward-disk) at its root if present, else the mount point's basename."
  - A file already registered under the same relative path with the same digest is skipped (and removed from the buffer with
    O(remove_source=true)); with another digest it is a conflict, kept in the buffer and reported, and the run goes on.
  - A rerun after a crash or kill finishes what was left; temporaries of the killed run are removed, nothing is registered twice.
    A verified copy the killed run did not register is reused, or removed once its file is registered on other disks; while its
    file is not registered at all it is kept, with a warning.
  - Symlinks are never followed, neither in the buffer nor on the disks, and neither tree is left for another file system.
  - The registry file is locked for the run; a second concurrent run fails with a clear message.
author:
  - datasteward.storage maintainers (@datasteward)
extends_documentation_fragment:
  - datasteward.storage._attributes
  - datasteward.storage._registry
attributes:
  check_mode:
    support: full
    details:
      - Reports the exact plan (files, target disks and paths, disks that would be marked full) and changes nothing, not even the registry.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - A second run with no new buffer files copies nothing and reports no change.
options:
  src:
    description:
      - The buffer directory, searched recursively.
    type: path
    required: true
  patterns:
    description:
      - Shell globs; a file is taken when one matches. The collection's one rule, as in M(ansible.builtin.find) - a pattern
        without C(/) matches the file's name, a pattern with C(/) matches its path relative to O(src) (C(*) does not cross C(/),
        C(**) does).
      - Empty takes every file.
    type: list
    elements: str
    default: []
  excludes:
    description:
      - Shell globs (same rule as O(patterns)) of entries to leave out; an excluded directory is not entered.
    type: list
    elements: str
    default: []
  primary:
    description:
      - Mount points of the primary disk series, used in this order.
    type: list
    elements: path
    required: true
  backup:
    description:
      - Mount points of the backup disk series, used in this order. None may be in O(primary).
    type: list
    elements: path
    required: true
  registry:
    description:
      - The SQLite registry file. Created with its schema when absent; older schemas are migrated. Its directory must exist.
      - It must be a regular file (or absent) and, with its C(-wal), C(-shm) and C(-journal) files, outside O(src) and outside every disk
        of O(primary) and O(backup).
  checksum_algorithm:
    description:
      - Hash used to verify copies and recorded in the registry.
      - V(blake3) needs the Python package C(blake3) on the managed host; it is much faster than the others.
    type: str
    default: sha512
    choices: [sha512, sha256, blake2b, blake3]
  remove_source:
    description:
      - Delete a buffer file once both copies are verified and registered (or it was already registered with the same digest).
      - A registered file is kept in the buffer, with a warning, while the last M(datasteward.storage.registry_audit) found one
        of its copies missing, corrupt or unreadable.
      - A file registered in an earlier run is removed only after every registered copy of it has been read again from its
        disk and matched its digest; a copy that does not, or whose disk is not present, keeps the buffer file.
    type: bool
    default: false
  settle_seconds:
    description:
      - A file whose modification or change time is more recent than this many seconds is still being written; it is left for the next run.
    type: int
    default: 60
  min_free_bytes:
    description:
      - Space to keep free on every disk. A disk whose free space minus this cannot take the next file is marked full.
    type: int
    default: 0
  require_mount:
    description:
      - Refuse a target that is not a mount point, so a missing drive never sends data into the root file system.
      - When true, the primary and backup disks must also be different file systems.
    type: bool
    default: true
  max_files:
    description:
      - Copy at most this many files in this run; the rest are reported as deferred.
    type: int
  max_bytes:
    description:
      - Copy at most this many bytes in this run; a file that would exceed it is deferred.
    type: int
  batch_files:
    description:
      - At most this many files per batch (one flush per disk, one verification pass and one registry transaction per batch).
      - V(1) copies, verifies and registers file by file.
    type: int
    default: 1000
  batch_bytes:
    description:
      - A batch ends before the file that would take it over this many bytes (a larger file is a batch of its own).
    type: int
    default: 268435456
  batch_seconds:
    description:
      - A batch stops taking files after copying for this many seconds; what is done is flushed, verified and registered.
    type: float
    default: 30.0
  disk_map:
    description:
      - Seeds the registry's disks table with serial numbers and WWNs.
      - Either the path of a file with one C(LABEL SERIAL WWN) line per drive, or a list of dicts with C(label), C(serial) and C(wwn) keys.
    type: raw
notes:
  - Copies are re-read with C(posix_fadvise(POSIX_FADV_DONTNEED)) after C(fsync), which makes the kernel drop the clean cached pages so
    the verification read comes from the device. On tmpfs the pages are the storage and stay.
  - Ownership, mode and modification time of the source are copied (ownership only when running as root).
seealso:
  - module: datasteward.storage.copy_registry_info
  - module: datasteward.storage.registry_audit
"""

EXAMPLES = r"""
- name: Move tonight's data to the primary and backup drives
  datasteward.storage.buffer_copy:
    src: /buffer
    patterns: ["*.g3", "*.dat"]
    primary: [/mnt/P01, /mnt/P02, /mnt/P03]
    backup: [/mnt/B01, /mnt/B02, /mnt/B03]
    registry: /var/lib/datasteward/registry.sqlite
    disk_map: /etc/datasteward/disk-map
    min_free_bytes: 10000000000
    remove_source: true
  register: ingest

- name: Alert when nothing new arrived for a day
  ansible.builtin.debug:
    msg: "No new data for {{ ingest.newest_file_age_seconds }} s"
  when: ingest.newest_file_age_seconds is not none and ingest.newest_file_age_seconds > 86400

- name: Show what would be copied where
  datasteward.storage.buffer_copy:
    src: /buffer
    primary: [/mnt/P01, /mnt/P02]
    backup: [/mnt/B01, /mnt/B02]
    registry: /var/lib/datasteward/registry.sqlite
  check_mode: true
"""

RETURN = r"""
copied_files:
  description: Files copied, verified and registered in this run (or that would be, in check mode).
  returned: always
  type: int
  sample: 12
copied_bytes:
  description: Total size of the RV(copied_files).
  returned: always
  type: int
  sample: 4294967296
skipped_files:
  description: Files already registered with the same content.
  returned: always
  type: int
  sample: 3
skipped_bytes:
  description: Total size of the RV(skipped_files).
  returned: always
  type: int
  sample: 1048576
conflict_files:
  description: Buffer files whose path is registered with other content, or whose target path holds other data; kept in the buffer.
  returned: always
  type: int
  sample: 0
conflict_bytes:
  description: Total size of the RV(conflict_files).
  returned: always
  type: int
  sample: 0
failed_files:
  description: Files that could not be copied or verified (unreadable, vanished, read-back mismatch, I/O error); kept in the buffer.
  returned: always
  type: int
  sample: 0
failed_bytes:
  description: Total size of the RV(failed_files).
  returned: always
  type: int
  sample: 0
removed_files:
  description: Buffer files deleted (or that would be) after their copies were registered.
  returned: always
  type: int
  sample: 12
removed_bytes:
  description: Total size of the RV(removed_files).
  returned: always
  type: int
  sample: 4294967296
deferred_files:
  description: Files left for the next run because of O(max_files) or O(max_bytes).
  returned: always
  type: int
  sample: 0
deferred_bytes:
  description: Total size of the RV(deferred_files).
  returned: always
  type: int
  sample: 0
unsettled_files:
  description: Files still being written (changed within O(settle_seconds), or modified while copied); left for the next run.
  returned: always
  type: int
  sample: 1
throughput_mbps:
  description: Copied bytes per second of copying, verification included, in MB/s (10^6 bytes).
  returned: always
  type: float
  sample: 412.5
copy_seconds:
  description: Seconds spent copying and verifying.
  returned: always
  type: float
  sample: 10.41
disks_used:
  description: Disks written to (or that would be) in this run.
  returned: always
  type: list
  elements: dict
  contains: &disk_contains
    label:
      description: Disk label.
      type: str
      sample: P01
    mount_point:
      description: Where it is mounted.
      type: str
      sample: /mnt/P01
    role:
      description: V(primary) or V(backup).
      type: str
      sample: primary
disks_full:
  description: Disks marked full in this run (or that would be).
  returned: always
  type: list
  elements: dict
  contains:
    <<: *disk_contains
    reason:
      description: Why it counts as full.
      type: str
      sample: 1048576 bytes free (after min_free_bytes), next file needs 4194304
disks_unusable:
  description:
    - Disks left out of this run at their first failure that is about the disk (I/O error, read-only file system, unmounted or
      replaced during the run, free space or label file unreadable); the next disk of their set is used instead. Also given as warnings.
  returned: always
  type: list
  elements: dict
  contains:
    label:
      description: Disk label, null when it could not be read.
      type: str
      sample: P01
    mount_point:
      description: Where it is mounted.
      type: str
      sample: /mnt/P01
    role:
      description: V(primary) or V(backup).
      type: str
      sample: primary
    reason:
      description: Why it is not used.
      type: str
      sample: "cannot write /mnt/P01/2024/06/01/run_0001.g3: Input/output error"
files:
  description: Per-file outcomes, at most 1000 (see RV(files_truncated)). Files too new to copy are only counted.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: Path relative to O(src) (and to each disk); non-UTF-8 bytes shown as C(\xNN).
      type: str
      sample: 2024/06/01/run_0001.g3
    status:
      description: One of V(copied), V(skipped), V(conflict), V(failed), V(deferred), V(unsettled).
      type: str
      sample: copied
    size_bytes:
      description: File size.
      type: int
      sample: 1048576
    removed:
      description: Whether the buffer file was (or would be) removed.
      type: bool
      sample: true
    copies:
      description: Where the copies went (copied, conflict, failed).
      type: list
      elements: dict
      sample: [{"role": "primary", "label": "P01", "path": "/mnt/P01/2024/06/01/run_0001.g3", "reused": false}]
    msg:
      description: Why a file was not copied or not removed.
      type: str
      returned: when there is something to say
      sample: /buffer/a.g3 was modified while it was copied; not registered, left in place; left for the next run
files_truncated:
  description: Whether RV(files) was cut at 1000 entries.
  returned: always
  type: bool
  sample: false
newest_file_age_seconds:
  description: Age in seconds of the newest matching file in the buffer (by modification or change time); null when the buffer is empty.
  returned: always
  type: int
  sample: 3600
stale_temporaries_removed:
  description:
    - Temporaries of an interrupted run that were removed (or would be).
    - Also counts verified copies an interrupted run renamed into place but did not register, removed once their file is
      registered with copies on other disks (after the first disk was marked full) and they hash to its digest.
  returned: always
  type: int
  sample: 0
registry_created:
  description: Whether the registry file was created (or would be).
  returned: always
  type: bool
  sample: false
scan_errors:
  description: Entries of the buffer that could not be read or were skipped (symlinks, other file systems, unreadable directories).
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/buffer/link", "msg": "/buffer/link is a symlink; not followed"}]
checksum_algorithm:
  description: The hash used.
  returned: always
  type: str
  sample: sha512
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.datasteward.storage.plugins.module_utils._jobs.ingest import IngestError, buffer_copy
from ansible_collections.datasteward.storage.plugins.module_utils._registry.db import registry_argument_spec


def main():
    module = AnsibleModule(
        argument_spec=dict(
            registry_argument_spec(),
            src=dict(type="path", required=True),
            patterns=dict(type="list", elements="str", default=[]),
            excludes=dict(type="list", elements="str", default=[]),
            primary=dict(type="list", elements="path", required=True),
            backup=dict(type="list", elements="path", required=True),
            checksum_algorithm=dict(type="str", default="sha512", choices=["sha512", "sha256", "blake2b", "blake3"]),
            remove_source=dict(type="bool", default=False),
            settle_seconds=dict(type="int", default=60),
            min_free_bytes=dict(type="int", default=0),
            require_mount=dict(type="bool", default=True),
            max_files=dict(type="int"),
            max_bytes=dict(type="int"),
            batch_files=dict(type="int", default=1000),
            batch_bytes=dict(type="int", default=268435456),
            batch_seconds=dict(type="float", default=30.0),
            disk_map=dict(type="raw"),
        ),
        supports_check_mode=True,
    )
    params = dict(module.params)
    disk_map = params["disk_map"]
    if disk_map is not None and not isinstance(disk_map, (str, list)):
        module.fail_json(msg="disk_map must be a path or a list of dicts with label, serial and wwn, got %s" % type(disk_map).__name__)
    try:
        result, warnings = buffer_copy(check_mode=module.check_mode, **params)
    except IngestError as exc:
        partial = dict(exc.result or {})
        changed = bool(partial.pop("changed", False))
        module.fail_json(msg=str(exc), path=exc.path, changed=changed, **partial)
    for warning in warnings[:20]:
        module.warn(warning)
    if len(warnings) > 20:
        module.warn("%d more warnings; see files and scan_errors" % (len(warnings) - 20))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
