#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: user_usage_info
short_description: Per-user, per-group and per-directory usage and old files of a directory tree
version_added: 0.1.0
description:
  - Scans one or more directory trees with one C(lstat) per entry and returns, per owner, the number of files,
    directories and symlinks, the apparent size (sum of C(st_size)) and the allocated size (sum of C(st_blocks) x 512),
    how much of it is older than O(age), and the largest and oldest files.
  - The totals equal those of GNU C(du -s -x --apparent-size -B1) and C(du -s -x -B1) on the same roots.
  - Symlinks are never followed (a symlink counts as a symlink; its target is not visited, even when it is a root).
    A file with several hard links is counted once. Unknown uids and gids are reported by number.
  - Unreadable directories, entries that vanish during the scan and names that are not valid UTF-8 are counted
    and listed (the first 50 of each), never fatal.
  - Trees of any depth are read (each directory is opened relative to its parent, never by its full path, so paths
    longer than C(PATH_MAX) are no limit), a directory swapped for a symlink or another directory during the scan is
    reported and not followed.
  - Memory stays bounded whatever the number of files; only inodes with more than one hard link are remembered.
    The result grows with O(max_owners), O(top) and O(depth), not with the number of files.
extends_documentation_fragment:
  - datasteward.storage._attributes
  - datasteward.storage._attributes.INFO_MODULE
  - datasteward.storage._match
options:
  paths:
    description:
      - Roots to scan. Roots are told apart by identity (device and inode of their real location), however they are
        spelt, symlinked parents included; a root that is the same directory as another, or that the scan of another
        root reaches anyway (under it, on the same file system when O(one_file_system) is set), is counted once,
        inside the other (RV(roots) says where). A root under another one but on another file system is scanned on its
        own, as C(du -x) does, and listed under its own path in RV(directories).
      - A root that is itself a symlink is counted as a symlink and not followed.
    type: list
    elements: path
    required: true
  one_file_system:
    description:
      - Do not count or descend into entries on other file systems than their root, as C(du -x).
    type: bool
    default: true
  age:
    description:
      - Regular files whose O(age_stamp) is older than this are counted as old.
      - Plain seconds or a number with a unit C(s), C(m), C(h), C(d) or C(w), for example V(90d), V(12h) or V(2w).
    type: str
    default: 90d
  age_stamp:
    description:
      - Which time stamp decides the age of a file.
      - With V(atime) the result carries a warning when a root's file system is mounted C(noatime) or C(relatime),
        because the access time is then not updated on every read.
    type: str
    choices: [atime, mtime, ctime]
    default: mtime
  top:
    description:
      - How many of the largest and of the oldest regular files to return per user. V(0) returns none.
    type: int
    default: 10
  depth:
    description:
      - Return totals for every directory down to this depth below each root (V(0) only the roots).
    type: int
    default: 1
  workers:
    description:
      - Number of parallel scan processes. Defaults to the number of CPUs the module may run on.
      - V(1) scans in the module's own process (unless O(timeout) is set; then the scan always runs in a worker
        process, so that it can be stopped).
      - At most 4 per CPU the module may run on; a larger value is lowered to that, with a warning (more workers
        only add memory, each one being a copy of the module's process).
    type: int
  timeout:
    description:
      - Seconds the whole scan may take. Unset means no limit.
      - When the time is up, workers that are still reading (for example blocked by a hung NFS or FUSE mount, which
        no signal but SIGKILL interrupts) are killed; the result has RV(partial=true) and names the directories
        that were being read in RV(reading).
      - What happens then is O(on_timeout).
    type: int
  on_timeout:
    description:
      - V(fail) (the default) fails the task with a message naming the directories being read; the partial result is
        returned along with it.
      - V(partial) returns the partial result as a success, with a warning.
    type: str
    choices: [fail, partial]
    default: fail
  max_owners:
    description:
      - At most this many users and this many groups are returned in RV(users) and RV(groups), those with the most
        allocated space first. RV(totals) still count every owner; RV(users_omitted) and RV(groups_omitted) say how
        many were left out.
      - V(0) returns no users or groups, only the totals.
    type: int
    default: 200
  shard_index:
    description:
      - Which part of the scan this host does, from V(0) to O(shard_count) minus one.
      - Every shard lists the whole tree but counts only the inodes whose inode number hashes to its index, so
        several hosts that mount one shared file system each do part of the C(stat) work, and the totals of
        all shards add up exactly to those of a whole scan (hard links included).
    type: int
    default: 0
  shard_count:
    description:
      - Number of parts the scan is split into (see O(shard_index)). V(1) scans everything.
    type: int
    default: 1
notes:
  - Speed, measured by C(make bench) on a generated tree of 505,051 entries with a warm cache on a 2-CPU host
    (GNU du 9.1, Python 3.11); ratios are scan time over reference time in the same run, see C(docs/user_usage_info.md).
  - Versus C(du -s -x -B1) the ratio was 0.94 to 0.97 with 2 workers (about 710,000 entries/s; 1.01 when the time to
    start Python is counted too) and 1.8 with one worker. Versus the walk of the scratch monitor this module replaces,
    doing its per-file work (listdir, isfile, getatime, getsize, stat and getpwuid per file), 0.095 to 0.099 (about
    10x faster); versus only the size-counting skeleton of that walk (listdir, isfile, getsize), 0.25 (4x).
    Peak memory about 15 MiB per process.
  - The scan reads the trees through the collection's one walker (each directory opened with C(O_NOFOLLOW) relative
    to its parent's descriptor and checked to be the directory listed), so a directory swapped for a symlink or
    another directory during the scan is reported, not followed.
seealso:
  - module: datasteward.storage.disk_usage
author:
  - datasteward.storage maintainers (@datasteward)
"""

EXAMPLES = r"""
- name: Who holds what on scratch, and how much of it is older than 90 days
  datasteward.storage.user_usage_info:
    paths:
      - /scratch
  register: scratch_usage

- name: Show the five biggest holders of old data
  ansible.builtin.debug:
    msg: "{{ item.name | default(item.uid, true) }}: {{ item.old_allocated_bytes | human_readable }} old"
  loop: "{{ (scratch_usage.users | sort(attribute='old_allocated_bytes', reverse=true))[:5] }}"

- name: Ages by access time, per project directory two levels down, skipping caches
  datasteward.storage.user_usage_info:
    paths:
      - /data/projects
    age: 26w
    age_stamp: atime
    depth: 2
    top: 20
    excludes:
      - .cache
      - "*.tmp"

- name: At most ten minutes, even if an NFS server under /data hangs; partial totals are fine
  datasteward.storage.user_usage_info:
    paths:
      - /data
    timeout: 600
    on_timeout: partial
    max_owners: 20
    excludes:
      - /projects/*/cache
  register: data_usage

- name: Split the scan of a shared file system over the hosts that mount it
  datasteward.storage.user_usage_info:
    paths:
      - /shared/lab
    shard_index: "{{ ansible_play_hosts_all.index(inventory_hostname) }}"
    shard_count: "{{ ansible_play_hosts_all | length }}"
  register: part
"""

RETURN = r"""
users:
  description:
    - One entry per owner (uid), the most allocated space first (ties by uid), at most O(max_owners).
  returned: always
  type: list
  elements: dict
  contains:
    uid:
      description: Numeric user id.
      type: int
      sample: 1000
    name:
      description: User name, or V(null) when the uid has no passwd entry.
      type: str
      sample: alice
    files:
      description: Regular files (a hard-linked file once).
      type: int
      sample: 1523
    dirs:
      description: Directories, the roots included.
      type: int
      sample: 12
    symlinks:
      description: Symbolic links (counted, never followed).
      type: int
      sample: 3
    others:
      description: FIFOs, sockets and device nodes.
      type: int
      sample: 0
    apparent_bytes:
      description: Sum of C(st_size) of all entries of the user, directories and symlinks included.
      type: int
      sample: 104857600
    allocated_bytes:
      description: Sum of C(st_blocks) x 512 of all entries of the user.
      type: int
      sample: 104902656
    old_files:
      description: Regular files older than O(age).
      type: int
      sample: 800
    old_apparent_bytes:
      description: Apparent size of the old files.
      type: int
      sample: 52428800
    old_allocated_bytes:
      description: Allocated size of the old files.
      type: int
      sample: 52453376
    largest:
      description: The O(top) largest regular files of the user by apparent size, largest first.
      type: list
      elements: dict
      sample:
        - path: /scratch/alice/run1/out.h5
          bytes: 1073741824
          allocated_bytes: 1073745920
          age_seconds: 8640000
    oldest:
      description: The O(top) regular files of the user with the oldest O(age_stamp), oldest first.
      type: list
      elements: dict
      sample:
        - path: /scratch/alice/old.log
          bytes: 2048
          allocated_bytes: 4096
          age_seconds: 31536000
groups:
  description:
    - The same counters as RV(users) per group (gid and name, V(null) if unknown), without RV(users[].largest) and
      RV(users[].oldest); the most allocated space first, at most O(max_owners).
  returned: always
  type: list
  elements: dict
  sample:
    - gid: 100
      name: users
      <<: &counters
        files: 1523
        dirs: 12
        symlinks: 3
        others: 0
        apparent_bytes: 104857600
        allocated_bytes: 104902656
        old_files: 800
        old_apparent_bytes: 52428800
        old_allocated_bytes: 52453376
directories:
  description:
    - Totals of each directory down to O(depth) below each root (the whole subtree, as C(du --max-depth)), with its
      C(path) and C(depth) and the same counters as RV(users).
    - A file with several hard links counts in the directory of its smallest path.
  returned: always
  type: list
  elements: dict
  sample:
    - path: /scratch
      depth: 0
      <<: *counters
totals:
  description:
    - The counters of RV(users) for the whole scan, plus C(entries) (unique entries counted), C(examined) (entries
      stat'ed, every hard link included), C(duplicate_links) (links of a file counted once and skipped),
      C(hardlinked_inodes), C(errors) (all problems), C(unreadable), C(vanished), C(non_utf8_names), C(seconds)
      and C(entries_per_second).
  returned: always
  type: dict
  sample:
    <<: *counters
    entries: 1538
    examined: 1540
    duplicate_links: 2
    hardlinked_inodes: 1
    errors: 1
    unreadable: 1
    vanished: 0
    non_utf8_names: 0
    seconds: 0.012
    entries_per_second: 128333
errors:
  description: The first 50 problems of each kind (unreadable directories, vanished entries, other errors), with C(path) and C(error).
  returned: always
  type: list
  elements: dict
  sample:
    - path: /scratch/bob/private
      error: "unreadable: cannot be read: Permission denied"
non_utf8_names:
  description: The first 50 paths whose names are not valid UTF-8, invalid bytes backslash-escaped.
  returned: always
  type: list
  elements: str
  sample:
    - /scratch/carol/caf\xe9.txt
users_omitted:
  description: How many users are counted in RV(totals) but not listed in RV(users) (see O(max_owners)).
  returned: always
  type: int
  sample: 0
groups_omitted:
  description: How many groups are counted in RV(totals) but not listed in RV(groups) (see O(max_owners)).
  returned: always
  type: int
  sample: 0
roots:
  description:
    - Each path of O(paths) as given, its real location, and the root whose scan counts it (itself, or the root it is
      the same directory as or lies inside).
  returned: always
  type: list
  elements: dict
  sample:
    - path: /scratch
      real_path: /scratch
      counted_in: /scratch
    - path: /home/alice/scratch-link/alice
      real_path: /scratch/alice
      counted_in: /scratch
partial:
  description:
    - Whether the scan stopped at O(timeout) before it was done; the totals then cover only what was read.
  returned: always
  type: bool
  sample: false
reading:
  description:
    - When RV(partial), the directories that workers were still reading when they were stopped (a hung file system is
      usually there).
  returned: always
  type: list
  elements: str
  sample: []
shard:
  description: The part of the scan this result covers.
  returned: always
  type: dict
  sample:
    index: 0
    count: 1
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.datasteward.storage.plugins.module_utils._fs.match import match_argument_spec
from ansible_collections.datasteward.storage.plugins.module_utils._fs.usage import ScanError, scan


def _timeout_message(params, result):
    reading = ", ".join(result["reading"])
    return (
        "the scan of %s did not finish within its timeout of %d s; still reading: %s (a hung file system?). "
        "The totals are partial; set on_timeout=partial to accept them" % (", ".join(params["paths"]), params["timeout"], reading)
    )


def main():
    module = AnsibleModule(
        argument_spec=dict(
            paths=dict(type="list", elements="path", required=True),
            one_file_system=dict(type="bool", default=True),
            age=dict(type="str", default="90d"),
            age_stamp=dict(type="str", choices=["atime", "mtime", "ctime"], default="mtime"),
            top=dict(type="int", default=10),
            depth=dict(type="int", default=1),
            workers=dict(type="int"),
            shard_index=dict(type="int", default=0),
            shard_count=dict(type="int", default=1),
            timeout=dict(type="int"),
            on_timeout=dict(type="str", choices=["fail", "partial"], default="fail"),
            max_owners=dict(type="int", default=200),
            **match_argument_spec(),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        result = scan(
            params["paths"],
            excludes=params["excludes"],
            one_file_system=params["one_file_system"],
            age=params["age"],
            age_stamp=params["age_stamp"],
            top=params["top"],
            depth=params["depth"],
            workers=params["workers"],
            shard_index=params["shard_index"],
            shard_count=params["shard_count"],
            timeout=params["timeout"],
            max_owners=params["max_owners"],
        )
    except ScanError as exc:
        module.fail_json(msg=str(exc))
    for warning in result.pop("warnings"):
        module.warn(warning)
    if result["partial"]:
        if params["on_timeout"] == "fail":
            module.fail_json(msg=_timeout_message(params, result), changed=False, **result)
        module.warn(_timeout_message(params, result).split(". The totals")[0] + "; the totals are partial")
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
