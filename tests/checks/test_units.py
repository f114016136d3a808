# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""tests/unit the standard way: `ansible-test units` from a plain
ansible_collections/datasteward/storage tree (the copy in .build, which has no
.collections link and no pytest.ini of ours in effect)."""

from __future__ import annotations

from tests.checks.conftest import BIN, background_job


@background_job("test_ansible_test_units")
def units_job(tmp):
    return {"args": [BIN / "ansible-test", "units", "--color", "no", "--local", "--python", "3.11"], "timeout": 1200}


def test_ansible_test_units(background):
    background.check("test_ansible_test_units")
