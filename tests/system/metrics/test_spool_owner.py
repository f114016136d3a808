# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The spool as root: a spool directory owned by another user is refused
(moved here from the unit tests, which need no root; the rest of the spool's
tests are in tests/unit/plugins/module_utils/_metrics/test_spool.py)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._metrics.snapshot import MetricsError
from ansible_collections.datasteward.storage.tests.unit.plugins.module_utils._metrics.test_spool import Server, run


def test_a_spool_of_another_user_is_refused(tmp_path):
    os.chown(str(tmp_path), 65534, 65534)
    with pytest.raises(MetricsError, match="owned by uid 65534, not by the user running the module"):
        run(tmp_path, b"doc", Server())
