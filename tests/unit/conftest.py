# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The unit tests: engines and modules, no root, no mounts, no servers.

They run in the pytest session of `make test` and under `ansible-test units`
from a plain ansible_collections/datasteward/storage tree (ansible-test uses
its own pytest configuration, not pytest.ini: what they need is registered
here). Helpers are imported by full collection name, e.g.
``ansible_collections.datasteward.storage.tests.unit.utils.fake_smartctl``.
"""

from __future__ import annotations


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
