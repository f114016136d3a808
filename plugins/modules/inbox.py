#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: inbox
short_description: Hand completed uploads over from an upload inbox to their destinations, verified, never overwriting
version_added: 0.1.0
description:
  - Uploaders put a folder into the inbox O(path) under a dot-prefixed name (C(.study-42)) and rename it (C(study-42)) when
    the upload is complete. An entry is ready when its name does not start with a dot and nothing in it changed for
    O(settle_seconds).
  - A ready entry whose name does not match O(name_pattern), whose destination (O(dest) rendered with the named groups of
    the name) is not inside O(dest_root), or whose uploader (the owner of the folder) no rule of O(allowed) lets deliver
    there, is moved to O(failed) with a C(<name>.reason) file beside it.
  - Every other ready entry is renamed atomically into O(processing), its files are copied to the destination through the
    collection's verified copy engine (temporary name in the target directory, fsync, re-read from disk and compared,
    rename), and it is moved to O(done). A name already taken in O(done) or O(failed) gets a C(.2), C(.3)... suffix.
  - Nothing is overwritten. A file already at the destination with the same content is recognised and not stored again;
    one with other content is kept and the new file is stored beside it as C(name.v2), C(name.v3)...
    An entry moved back from O(done) into the inbox is therefore delivered again as new versions where it differs.
  - Symlinks inside an upload are never followed (reported in RV(processed[].skipped), not copied), nor are devices, FIFOs
    and sockets. A hard-linked file owned by someone other than the uploader refuses the whole entry. Any failure moves
    the entry to O(failed) with its reason; the other entries go on.
  - Entries left in O(processing) by a killed run are resumed at the start of the next one (files already delivered are
    recognised, temporaries of the killed copy are removed). One run at a time holds a lock on O(processing); a run that
    finds it taken changes nothing and returns RV(locked=true).
  - Delivered files are owned by the user running the module, get O(mode) and O(group); directories created get
    O(directory_mode). Modification times are kept.
author:
  - datasteward.storage maintainers (@datasteward)
extends_documentation_fragment:
  - datasteward.storage._attributes
attributes:
  check_mode:
    support: full
    details:
      - Reports the entries that would be delivered, refused, resumed and removed, with the version names the files would
        get; moves, copies and removes nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - A second run finds the delivered entries in O(done) and an empty inbox, and reports no change.
options:
  path:
    description:
      - The inbox folder uploaders write into (typically mode C(3773), setgid and sticky).
    type: path
    required: true
  processing:
    description:
      - The folder entries are renamed into while they are delivered. Defaults to C(processing) beside O(path).
      - O(path), O(processing), O(done) and O(failed) must be on one file system, and must exist.
    type: path
  done:
    description:
      - The folder delivered entries are moved to. Defaults to C(done) beside O(path).
    type: path
  failed:
    description:
      - The folder refused and failed entries are moved to, each with a C(<name>.reason) text file. Defaults to C(failed)
        beside O(path).
    type: path
  name_pattern:
    description:
      - A Python regular expression an entry name must match (C(re.search); anchor it), with named groups that O(dest) and
        O(allowed) use.
      - A trailing C(.N) that O(done) added to a name is tried away when the whole name does not match.
    type: str
    default: '^(?P<study>[a-z0-9][a-z0-9_]*)-(?P<id>[A-Za-z0-9_]+)$'
  dest:
    description:
      - The destination folder of an entry, a Python format string over the named groups of O(name_pattern), for example
        C(/study/{study}/raw-{id}). A relative result is taken relative to O(dest_root).
    type: str
    required: true
  dest_root:
    description:
      - Every rendered destination must be strictly inside this directory (after C(..) is resolved), or the entry is
        refused. It must exist. No symlink below it is ever followed.
    type: path
    required: true
  allowed:
    description:
      - Which uploader may deliver to which destination. An entry is delivered when at least one rule allows it.
    type: list
    elements: dict
    required: true
    suboptions:
      dest:
        description:
          - A shell-style glob (fnmatch; C(*) also matches C(/)) the rendered destination must match, itself a template over
            the named groups, for example C(/study/{study}/*).
        type: str
        default: '*'
      users:
        description:
          - Uploaders (user names or numeric uids; templates over the named groups) this rule allows.
        type: list
        elements: str
      groups:
        description:
          - Groups (names or numeric gids; templates, for example C(study-{study})) whose members (primary or supplementary)
            this rule allows.
        type: list
        elements: str
      require:
        description:
          - V(any), the uploader is in O(allowed[].users) or in one of O(allowed[].groups). V(all), both must hold.
        type: str
        choices: [any, all]
        default: any
  settle_seconds:
    description:
      - An entry is ready only when nothing in it (modification or change time of any file or folder) changed for this long.
    type: int
    default: 60
  mode:
    description:
      - The permissions of every delivered file, as an octal string.
    type: raw
    default: "0640"
  directory_mode:
    description:
      - The permissions of every destination directory the module creates (the setgid bit keeps the group for later files).
    type: raw
    default: "2750"
  group:
    description:
      - The group of delivered files and created directories. Defaults to the group of the directory they land in (as a
        setgid directory would give them).
    type: str
  stuck_seconds:
    description:
      - An entry still in O(processing) at the end of a run that has been there this long is reported in RV(stuck).
    type: int
    default: 3600
  keep_done_days:
    description:
      - Remove entries from O(done) that were moved there more than this many days ago (their files were delivered and
        verified). Unset keeps them for ever.
    type: int
  checksum_algorithm:
    description:
      - The digest every copy is verified with.
    type: str
    choices: [sha512, sha256, blake2b, blake3]
    default: sha512
notes:
  - Run it as root (or a user that can read every upload and write the destinations). The uploader is the owner of the
    entry folder; the copy never runs with the uploader's rights, so O(allowed) is what keeps one user out of another's study.
  - Path units and inotify miss changes made by other NFS clients and renames into place; schedule a polling run too
    (the C(datasteward.storage.inbox) role installs both).
  - docs/inbox.md describes the protocol for uploaders and the permission layout.
seealso:
  - module: datasteward.storage.buffer_copy
"""

EXAMPLES = r"""
- name: Hand over the uploads of the imaging centre
  datasteward.storage.inbox:
    path: /srv/upload/inbox
    name_pattern: '^(?P<study>[a-z0-9]+)-(?P<id>[0-9]+)$'
    dest: /study/{study}/raw-upload
    dest_root: /study
    allowed:
      - groups: ["study-{study}"]
      - users: [imaging-robot]
        dest: /study/*/raw-upload
    settle_seconds: 120
    mode: "0640"
  register: handoff

- name: Show what failed
  ansible.builtin.debug:
    msg: "{{ item.name }}: {{ item.reason }}"
  loop: "{{ handoff.failed }}"
"""

RETURN = r"""
processed:
  description: Entries delivered (in check mode, that would be), each moved to O(done).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The entry name (undecodable bytes as C(\xNN)).
      type: str
    uploader:
      description: The uploader's user name (null for a uid without one).
      type: str
    uploader_uid:
      description: The owner of the entry.
      type: int
    destination:
      description: The destination folder.
      type: str
    files:
      description: Regular files in the entry.
      type: int
    bytes:
      description: Their total size.
      type: int
    identical:
      description: Files whose content was already at the destination (not stored again).
      type: int
    versions:
      description: Files written, with their path and version (1 for the plain name, 2 for C(name.v2)...).
      type: list
      elements: dict
    skipped:
      description: Entries not copied (symlinks, devices, FIFOs, sockets), with the reason.
      type: list
      elements: dict
    created_directories:
      description: Destination directories created.
      type: list
      elements: str
    resumed:
      description: Whether the entry was left in O(processing) by an earlier run.
      type: bool
    done:
      description: Where the entry is now (not in check mode).
      type: str
  sample:
    - name: foo-17
      uploader: alice
      uploader_uid: 1001
      destination: /study/foo/raw-upload
      files: 3
      bytes: 1048576
      identical: 1
      versions: [{path: /study/foo/raw-upload/a.dcm, version: 1}, {path: /study/foo/raw-upload/b.dcm.v2, version: 2}]
      skipped: [{path: link-to-etc, reason: "a symlink, not followed"}]
      created_directories: []
      resumed: false
      done: /srv/upload/done/foo-17
failed_entries:
  description: Entries refused or failed, each moved to O(failed) (not in check mode) with its reason.
  returned: always
  type: list
  elements: dict
  sample:
    - name: bar-3
      uploader: mallory
      uploader_uid: 1002
      destination: /study/bar/raw-upload
      reason: uploader mallory (uid 1002) is not allowed to deliver to /study/bar/raw-upload (no rule of allowed matches)
      moved_to: /srv/upload/failed/bar-3
uploading:
  description: Dot-named entries (uploads in progress), with their age and the time since their last change.
  returned: always
  type: list
  elements: dict
  sample: [{name: .foo-18, age_seconds: 5400, idle_seconds: 12, uploader_uid: 1001}]
settling:
  description: Entries whose content changed within O(settle_seconds), left for a later run.
  returned: always
  type: list
  elements: dict
  sample: [{name: foo-19, idle_seconds: 20}]
stuck:
  description: Entries still in O(processing) after the run that have been there at least O(stuck_seconds).
  returned: always
  type: list
  elements: dict
  sample: [{name: foo-12, age_seconds: 7200}]
resumed:
  description: Names of the entries found in O(processing) at the start (left by a killed run) and resumed.
  returned: always
  type: list
  elements: str
  sample: [foo-16]
removed_done:
  description: Entries removed from O(done) by O(keep_done_days).
  returned: always
  type: list
  elements: str
  sample: []
errors:
  description: Problems that concern no entry, for example an old entry of O(done) that could not be removed.
  returned: always
  type: list
  elements: str
  sample: []
locked:
  description: True when another run held the lock, so this one did nothing.
  returned: always
  type: bool
  sample: false
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.datasteward.storage.plugins.module_utils._jobs.inbox import InboxError, run_inbox


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            processing=dict(type="path"),
            done=dict(type="path"),
            failed=dict(type="path"),
            name_pattern=dict(type="str", default="^(?P<study>[a-z0-9][a-z0-9_]*)-(?P<id>[A-Za-z0-9_]+)$"),
            dest=dict(type="str", required=True),
            dest_root=dict(type="path", required=True),
            allowed=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    dest=dict(type="str", default="*"),
                    users=dict(type="list", elements="str"),
                    groups=dict(type="list", elements="str"),
                    require=dict(type="str", choices=["any", "all"], default="any"),
                ),
            ),
            settle_seconds=dict(type="int", default=60),
            mode=dict(type="raw", default="0640"),
            directory_mode=dict(type="raw", default="2750"),
            group=dict(type="str"),
            stuck_seconds=dict(type="int", default=3600),
            keep_done_days=dict(type="int"),
            checksum_algorithm=dict(type="str", default="sha512", choices=["sha512", "sha256", "blake2b", "blake3"]),
        ),
        supports_check_mode=True,
    )
    try:
        result = run_inbox(module.params, check_mode=module.check_mode)
    except InboxError as exc:
        module.fail_json(msg=str(exc), path=exc.path)
    except OSError as exc:
        module.fail_json(msg="inbox %s: %s: %s" % (module.params["path"], exc.filename or "", exc.strerror or exc), path=exc.filename)
    if result["locked"]:
        module.warn("another inbox run holds the lock on %s; nothing done" % (module.params["processing"] or "processing"))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
