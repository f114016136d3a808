# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The journal sweep: finish what interrupted copy runs left on the disks.

Every temporary a copy creates is journalled in the registry's ``pending``
table first (see ``_registry.db.Journal``). The ingest and audit jobs sweep
that journal at the start (and ingest again at the end) of a run. No
AnsibleModule.
"""

from __future__ import annotations

import os

from ansible_collections.datasteward.storage.plugins.module_utils._copy import engine as copier
from ansible_collections.datasteward.storage.plugins.module_utils._disks.labels import DiskLabelError, disk_label


def sweep_pending(registry, require_mount, is_mount, check_mode, warnings=None):
    """Finish the journal of interrupted runs (buffer_copy or a repair) on
    every present disk, whichever disk is current now.

    A temporary is removed. A temporary that was already renamed left a
    verified final copy: when the registry has it as a copy, or has no file of
    that path yet (the copy is then the only one, or this run reuses it), the
    row stays until a later sweep; when its file is registered on other disks
    and the copy hashes to the registered digest, it is a duplicate nothing
    accounts for, and it is removed. ``warnings`` (a list) receives a line
    per row left. Returns ``(removed, rows_done)``."""
    removed, done = 0, []
    for row in registry.pending():
        root, path = os.fsdecode(row["root"]), row["path"]
        if require_mount and not is_mount(root):
            continue  # that disk is not here; sweep it when it is
        final = copier.final_of_temp(path)
        try:
            gone = copier.remove_temp(root, path, dry_run=check_mode)
            if final is not None and not gone:
                keep, gone = _orphan(registry, root, final, check_mode)
                if keep:
                    if warnings is not None:
                        warnings.append("%s: %s" % (copier.display(os.path.join(os.fsencode(root), final)), keep))
                    continue
        except (copier.CopyError, DiskLabelError, OSError) as exc:
            if warnings is not None:
                warnings.append("stale temporary %s: %s" % (copier.display(os.path.join(os.fsencode(root), path)), getattr(exc, "strerror", None) or exc))
            continue
        removed += 1 if gone else 0
        done.append(row["id"])
    if done and not check_mode:
        registry.pending_remove(done)
    return removed, done


def _orphan(registry, root, final, check_mode):
    """``(why it is kept or None, removed)`` for ``root/final``, the final
    name of a temporary that an interrupted run may have renamed."""
    reg = registry.file(final)
    if reg is not None:
        disk = registry.disk(disk_label(root))
        if disk is not None and any(c["disk_id"] == disk["id"] and c["path"] == final for c in registry.copies_of(reg["id"])):
            return None, False  # registered: the journal entry is merely stale
    if copier.regular_file_stat(root, final) is None:
        return None, False
    if reg is None:
        return "verified copy left by an interrupted run, its file not registered yet; kept", False
    digest, dummy, seen = copier.hash_file(root, final, reg["algorithm"])
    if digest != reg["digest"]:
        return "left by an interrupted run and holds other data than the registered file; kept", False
    if not check_mode:
        copier.remove_file(root, final, seen)
    return None, True
