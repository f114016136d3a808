# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""old_files' module parameters with their documented defaults, for the
engine's tests and benchmark (the module's argspec fills these in)."""

from __future__ import annotations


def params(root, **kwargs):
    """The parameters of an old_files run on ``root``; ``kwargs`` override."""
    base = dict(
        path=str(root),
        age="30d",
        age_stamp="mtime",
        min_size="0",
        owners=None,
        exclude_owners=[],
        excludes=[],
        protect=[],
        state="reported",
        dest=None,
        host_folder="node1",
        order="largest",
        max_files=None,
        max_bytes=None,
        free_bytes=None,
        manifest_dir=str(root) + ".manifests",
        manifest=None,
        remove_empty_dirs=False,
        max_listed=1000,
    )
    base.update(kwargs)
    return base
