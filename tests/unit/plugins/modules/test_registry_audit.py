# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""registry_audit and copy_registry_info run as real processes on bad input and
an absent registry. Over a registry filled on real tmpfs disks:
tests/system/ingest/test_registry_audit.py."""

from __future__ import annotations

from ansible_collections.datasteward.storage.tests.unit.utils.module_runner import run_module_process


def test_audit_bad_input(tmp_path):
    res = run_module_process(tmp_path, "registry_audit", {"registry": str(tmp_path / "none.sqlite")}, failed=True)
    assert res["failed"] and "registry %s does not exist" % (tmp_path / "none.sqlite") in res["msg"]
    (tmp_path / "r.sqlite").write_bytes(b"garbage" * 1000)
    res = run_module_process(tmp_path, "registry_audit", {"registry": str(tmp_path / "r.sqlite")}, failed=True)
    assert res["failed"] and "r.sqlite" in res["msg"]


def test_info_bad_input_and_absent_registry(tmp_path):
    res = run_module_process(tmp_path, "copy_registry_info", {"registry": str(tmp_path / "none.sqlite")})
    assert res["matched"] == 0 and res["disks"] == [] and not (tmp_path / "none.sqlite").exists()
    res = run_module_process(tmp_path, "copy_registry_info", {"registry": str(tmp_path / "none.sqlite"), "since": "yesterday"}, failed=True)
    assert res["failed"] and "since: 'yesterday' is not a date" in res["msg"]


def test_info_refuses_bad_limits_dates_and_registries(tmp_path):
    """None of these is a traceback or a hang: each names the option."""
    import os

    registry = str(tmp_path / "none.sqlite")
    for args, needle in (
        ({"limit": 18446744073709551616}, "limit must be between 0 and 9223372036854775807"),
        ({"limit": -1}, "limit must be between 0"),
        ({"since": "nan"}, "since: 'nan' is not a finite number"),
        ({"until": "inf"}, "until: 'inf' is not a finite number"),
    ):
        res = run_module_process(tmp_path, "copy_registry_info", dict(args, registry=registry), failed=True)
        assert res["failed"] and needle in res["msg"], res["msg"]
    os.mkfifo(str(tmp_path / "fifo"))
    res = run_module_process(tmp_path, "copy_registry_info", {"registry": str(tmp_path / "fifo")}, failed=True)
    assert res["failed"] and "registry %s: %s is a FIFO, not a regular file" % (tmp_path / "fifo", tmp_path / "fifo") in res["msg"]
    res = run_module_process(tmp_path, "registry_audit", {"registry": str(tmp_path / "fifo")}, failed=True)
    assert res["failed"] and "is a FIFO, not a regular file" in res["msg"]
    (tmp_path / "r.sqlite").write_bytes(b"")
    os.mkfifo(str(tmp_path / "r.sqlite-wal"))
    res = run_module_process(tmp_path, "copy_registry_info", {"registry": str(tmp_path / "r.sqlite")}, failed=True)
    assert res["failed"] and "r.sqlite-wal is a FIFO" in res["msg"]
