# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """Where the usage history lives; shared by the history modules.

    Paired with ``history_argument_spec()`` in
    ``plugins/module_utils/_history/store.py``: change both together.
    """

    DOCUMENTATION = r"""
requirements:
  - psycopg (3) on the controller for O(url) (PostgreSQL); nothing extra for SQLite.
notes:
  - The history is kept on the controller; run the module with C(delegate_to=localhost) (the
    C(datasteward.storage.history) role's C(record) entry point does).
options:
  database:
    description:
      - The SQLite file of the history.
      - Defaults to C(datasteward/history.sqlite) under the controller user's data directory (E(XDG_DATA_HOME), else
        C(~/.local/share)); the directory is created (mode 0700) when the history is first written.
      - Ignored when O(url) is given.
    type: path
  url:
    description:
      - A PostgreSQL connection URL (C(postgresql://user:password@host:port/dbname)) for sites that outgrow one file.
      - The schema is created and migrated in the connection's current schema on the first write.
      - Its password never appears in messages.
    type: str
"""
