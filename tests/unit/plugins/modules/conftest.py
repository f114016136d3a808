# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fixtures for the module tests (see tests/unit/utils/module_runner.py)."""

from __future__ import annotations

import pytest

from ansible_collections.datasteward.storage.tests.unit.utils.module_runner import patch_exits, run_in_process


@pytest.fixture
def run_module(monkeypatch):
    """``run_module(module, args, failed=False, check_mode=False)`` runs ``module.main()`` in-process.

    Returns the result Ansible would get back and checks the run failed, or did not, as ``failed`` says.
    """
    patch_exits(monkeypatch)
    return run_in_process
