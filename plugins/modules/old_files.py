#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: old_files
short_description: Find, relocate, delete or restore old files in a directory tree, safely
version_added: 0.1.0
description:
  - Walks the tree O(path) once and selects the regular files whose O(age_stamp) is at least O(age) old, at least
    O(min_size) large, of the wanted owners, neither excluded nor protected. With O(state=reported) it only reports
    them; with O(state=relocated) it moves them to O(dest), mirroring the path below O(path) under a per-host folder;
    with O(state=absent) it deletes them; with O(state=restored) it moves the files an earlier run relocated back to
    where they were, from that run's O(manifest).
  - The walk never follows a symlink, never leaves O(path) or its file system (a nested mount is not entered), and
    reports unreadable directories, vanished entries and other problems without stopping.
  - Every action is taken relative to the open parent directory (C(unlinkat), C(linkat)), which is reopened one
    component at a time without following symlinks and checked to be the directory the walk saw; the file is
    re-checked (same inode, size and modification time, still old enough) right before. A file changed since it was
    selected is left alone and listed in RV(skipped).
  - Relocation on the same file system is a hard link into the relocation area followed by the removal of the
    original (an existing file of that name is never overwritten). To another file system it goes through the
    collection's verified copy engine, keeping owner, group, mode and time stamps; the original is removed only
    after the copy was read back from disk and matched. A full destination stops the run with the file being moved
    intact, and the module fails naming O(dest).
  - Every action is recorded in a manifest (one JSON object per line) in O(manifest_dir), a batch of records (at most
    256, those of one directory) per write; a relocation's records are written before its originals are removed,
    the records of a batch of deletes right after that batch and before the next one, so a crash leaves a valid file
    and loses at most the records of the batch of deletes under way (see C(docs/old_files.md)).
  - Without O(max_files), O(max_bytes) and O(free_bytes), each directory is planned and acted on in turn, the
    subdirectories of O(path) split between two worker processes; with a limit, the whole tree is planned first
    and the plan is applied by one process.
  - A relocation removes the stale temporaries (C(.dstmp.*)) that a killed earlier run left in the relocation
    directories it writes to (RV(temps_removed)).
extends_documentation_fragment:
  - datasteward.storage._attributes
attributes:
  check_mode:
    support: full
    details:
      - Returns the exact list of files that would be acted on (with the same ordering and limits) and changes nothing.
  diff_mode:
    support: full
    details:
      - Lists the paths acted on (C(before)) and where they went (C(after)).
  idempotent:
    support: full
    details:
      - A second run finds nothing left to act on and reports no change.
options:
  path:
    description:
      - The tree to work on. It must be a directory, not a symlink.
    type: path
    required: true
  age:
    description:
      - Files whose O(age_stamp) is at least this old are selected.
      - Plain seconds or a number with a unit C(s), C(m), C(h), C(d) or C(w), for example V(90d) or V(2w).
    type: str
    default: 90d
  age_stamp:
    description:
      - Which time stamp decides the age. V(max) takes the newest of the three, as C(tmpwatch) combines them.
    type: str
    choices: [atime, mtime, ctime, max]
    default: mtime
  min_size:
    description:
      - Only files of at least this size, in bytes or with a unit (V(10M), V(1G)).
    type: str
    default: "0"
  owners:
    description:
      - Only files of these owners (user names or uids). Default all owners.
    type: list
    elements: str
  exclude_owners:
    description:
      - Never files of these owners (user names or uids).
    type: list
    elements: str
    default: []
  excludes:
    description:
      - Entries to skip (not selected, directories not descended into), by the collection's match rule, as
        M(ansible.builtin.find) - a pattern without C(/) matches the entry's name at any depth, a pattern with C(/)
        the path relative to O(path) (C(*) does not cross C(/), C(**) does).
    type: list
    elements: str
    default: []
  protect:
    description:
      - Paths that are never touched, by the same match rule as O(excludes). A protected directory is not descended
        into, so nothing below it is counted as old, and its parent is never removed by O(remove_empty_dirs).
    type: list
    elements: str
    default: []
  state:
    description:
      - V(reported) finds and reports only. V(relocated) moves the files to O(dest). V(absent) deletes them.
        V(restored) moves the files listed in O(manifest) back.
    type: str
    choices: [reported, relocated, absent, restored]
    default: reported
  dest:
    description:
      - The relocation area (an existing directory, outside O(path)); a file C(path/a/b) goes to
        C(dest/<host_folder>/a/b). Directories are created with the mode and owner of the originals.
      - Required with O(state=relocated). Give each tree its own O(dest) or O(host_folder).
    type: path
  host_folder:
    description:
      - The per-host folder under O(dest). Default the host's short name.
    type: str
  order:
    description:
      - Which files go first when a limit stops the run. V(largest) largest first, older first among equal sizes;
        V(oldest) oldest first; V(path) by path.
    type: str
    choices: [largest, oldest, path]
    default: largest
  max_files:
    description:
      - Act on at most this many files per run.
    type: int
  max_bytes:
    description:
      - Act on at most this many bytes (apparent size) per run, in bytes or with a unit.
    type: str
  free_bytes:
    description:
      - Stop once the files acted on hold at least this much allocated space, in bytes or with a unit; a caller that
        wants the file system back under a target passes what is over it.
    type: str
  manifest_dir:
    description:
      - Where each run that acts writes its manifest, C(old_files-<host>-<state>-<time>-<pid>.jsonl), mode 0600.
    type: path
    default: /var/lib/datasteward/old_files
  manifest:
    description:
      - The manifest of the run to undo. Required with O(state=restored).
    type: path
  remove_empty_dirs:
    description:
      - Remove the directories the run left empty, bottom-up; never O(path) itself, never a protected one.
    type: bool
    default: false
  max_listed:
    description:
      - Return at most this many entries in RV(files) and RV(skipped); the counts always cover everything.
    type: int
    default: 1000
notes:
  - Speed, measured by C(make bench) against the reference tools in the same run, is quoted in C(docs/old_files.md).
seealso:
  - module: datasteward.storage.user_usage_info
  - module: ansible.builtin.find
author:
  - datasteward.storage maintainers (@datasteward)
"""

EXAMPLES = r"""
- name: What on scratch is older than 90 days
  datasteward.storage.old_files:
    path: /scratch
    age: 90d
  register: old

- name: Relocate files unused for half a year to the archive area, largest first, at most 500 GiB per run
  datasteward.storage.old_files:
    path: /scratch
    age: 26w
    age_stamp: max
    state: relocated
    dest: /archive/relocated
    max_bytes: 500G
    exclude_owners: [root]
    protect:
      - shared/reference
  register: moved

- name: Undo that run
  datasteward.storage.old_files:
    path: /scratch
    state: restored
    manifest: "{{ moved.manifest }}"

- name: Delete old temporary files, removing directories left empty
  datasteward.storage.old_files:
    path: /scratch/tmp
    age: 14d
    state: absent
    remove_empty_dirs: true
"""

RETURN = r"""
files:
  description:
    - The files acted on (in check mode, and with O(state=reported), the ones that would be), at most O(max_listed),
      in the order of O(order) (O(state=restored) - manifest order); RV(totals) counts them all.
  returned: always
  type: list
  elements: dict
  sample:
    - path: /scratch/alice/run1/out.h5
      bytes: 1073741824
      uid: 1000
      owner: alice
      age_days: 120.5
      dest: /archive/relocated/node1/alice/run1/out.h5
users:
  description:
    - Per owner, the files and bytes acted on (with O(state=reported) and in check mode, eligible or planned), sorted
      by uid; C(name) is V(null) for a uid without passwd entry. C(fingerprint) identifies the set of paths.
  returned: always
  type: list
  elements: dict
  sample:
    - uid: 1000
      name: alice
      files: 12
      bytes: 5368709120
      fingerprint: 3f9a0c1d2e4b5a69
totals:
  description:
    - C(files) and C(bytes) acted on (planned in check mode), C(matched) (every file old enough and selected by the
      filters), C(selected) (the plan after limits), C(examined) (entries seen), C(protected), C(skipped),
      C(errors), C(dirs_removed).
  returned: always
  type: dict
  sample: {files: 12, bytes: 5368709120, matched: 40, selected: 12, examined: 1520, protected: 3, skipped: 0, errors: 0,
           dirs_removed: 0}
skipped:
  description: Files that were selected but left alone, with the reason (changed since selected, vanished, ...).
  returned: always
  type: list
  elements: dict
  sample:
    - path: /scratch/bob/log.txt
      reason: modified since it was selected
errors:
  description: Problems of the walk (unreadable directories, vanished entries, other file systems not entered), the first 100.
  returned: always
  type: list
  elements: dict
  sample:
    - path: /scratch/carol/private
      kind: unreadable
      error: Permission denied
dirs_removed:
  description: Directories removed because the run left them empty (O(remove_empty_dirs)).
  returned: always
  type: list
  elements: str
  sample: [/scratch/alice/run1]
temps_removed:
  description:
    - Stale temporaries of the copy engine (names starting with C(.dstmp.)) that an earlier, killed relocation left
      in the relocation directories this run wrote to, and that this run removed (regular files older than its start
      only).
  returned: always
  type: int
  sample: 0
manifest:
  description: The manifest this run wrote, or V(null) when it acted on nothing.
  returned: always
  type: str
  sample: /var/lib/datasteward/old_files/old_files-node1-relocated-20261202T010000Z-4242.jsonl
dest_root:
  description: Where relocated files go (O(dest)/O(host_folder)), or V(null).
  returned: always
  type: str
  sample: /archive/relocated/node1
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.datasteward.storage.plugins.module_utils._jobs import old_files as job


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            age=dict(type="str", default="90d"),
            age_stamp=dict(type="str", choices=list(job.AGE_STAMPS), default="mtime"),
            min_size=dict(type="str", default="0"),
            owners=dict(type="list", elements="str"),
            exclude_owners=dict(type="list", elements="str", default=[]),
            excludes=dict(type="list", elements="str", default=[]),
            protect=dict(type="list", elements="str", default=[]),
            state=dict(type="str", choices=list(job.STATES), default="reported"),
            dest=dict(type="path"),
            host_folder=dict(type="str"),
            order=dict(type="str", choices=list(job.ORDERS), default="largest"),
            max_files=dict(type="int"),
            max_bytes=dict(type="str"),
            free_bytes=dict(type="str"),
            manifest_dir=dict(type="path", default="/var/lib/datasteward/old_files"),
            manifest=dict(type="path"),
            remove_empty_dirs=dict(type="bool", default=False),
            max_listed=dict(type="int", default=1000),
        ),
        required_if=[("state", "relocated", ["dest"]), ("state", "restored", ["manifest"])],
        supports_check_mode=True,
    )
    try:
        result = job.run(job.options_from_params(module.params), check_mode=module.check_mode, diff=module._diff)
    except job.OldFilesError as exc:
        module.fail_json(msg=str(exc))
    for warning in result.pop("warnings"):
        module.warn(warning)
    if result.pop("stopped", None):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
