# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """The O(registry) option of buffer_copy, copy_registry_info and
    registry_audit. Paired with ``registry_argument_spec()`` in
    ``plugins/module_utils/_registry/db.py``: change both together. A module
    may override the description to say how it treats an absent file."""

    DOCUMENTATION = r"""
options:
  registry:
    description:
      - The SQLite copy registry written by M(datasteward.storage.buffer_copy).
    type: path
    required: true
"""
