# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""buffer_copy's main() on plain directories as disks (require_mount: false):
bad input named, check/apply/re-apply/check. On real tmpfs disks, with faults
(SIGKILL, full disks, changing sources): tests/system/ingest/test_buffer_copy.py."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from ansible_collections.datasteward.storage.plugins.modules import buffer_copy
from ansible_collections.datasteward.storage.tests.unit.utils.module_runner import run_module_process


@pytest.fixture
def buf(tmp_path):
    path = tmp_path / "buffer"
    path.mkdir()
    return path


def base_args(tmp_path, buf, primary, backup, **extra):
    args = {"src": str(buf), "primary": primary, "backup": backup, "registry": str(tmp_path / "registry.sqlite"), "settle_seconds": 0}
    args.update(extra)
    return args


@pytest.mark.parametrize(
    "args,needle",
    [
        ({"src": "/nonexistent/buffer"}, "src /nonexistent/buffer does not exist"),
        ({"backup": ["P1"]}, "listed in both primary and backup"),
        ({"max_files": -1}, "max_files must not be negative"),
        ({"disk_map": "/nonexistent/map"}, "disk_map: disk_map: cannot read /nonexistent/map"),
        ({"disk_map": [{"label": "P01"}]}, "missing serial"),
        ({"registry": ""}, "registry must be"),
        ({"primary": [None]}, "primary[0] must be a mount point path"),
        ({"backup": [""]}, "backup[0] must be a mount point path"),
        ({"batch_files": 0}, "batch_files must be at least 1"),
        ({"batch_seconds": float("nan")}, "batch_seconds must be a positive number"),
        ({"registry": "{buf}/registry.sqlite"}, "registry {buf}/registry.sqlite is inside src"),
        ({"registry": "{P1}/registry.sqlite"}, "registry {P1}/registry.sqlite is on disk {P1}"),
        ({"registry": "{tmp}/fifo"}, "registry {tmp}/fifo: {tmp}/fifo is a FIFO, not a regular file"),
        ({"registry": "{tmp}/dir"}, "is a directory, not a regular file"),
        ({"backup": ["{P1}/inner"]}, "disk {P1}/inner is inside disk {P1}"),
    ],
)
def test_bad_input_named(tmp_path, buf, args, needle):
    (tmp_path / "P1" / "inner").mkdir(parents=True)
    (tmp_path / "B1").mkdir()
    (tmp_path / "dir").mkdir()
    os.mkfifo(str(tmp_path / "fifo"))
    full = base_args(tmp_path, buf, [str(tmp_path / "P1")], [str(tmp_path / "B1")], require_mount=False)
    if args.get("backup") == ["P1"]:
        args = {"backup": [str(tmp_path / "P1")]}
    names = {"buf": str(buf), "P1": str(tmp_path / "P1"), "tmp": str(tmp_path)}
    args = {
        key: [v.format(**names) if isinstance(v, str) else v for v in value]
        if isinstance(value, list) and key != "disk_map"
        else value.format(**names)
        if isinstance(value, str)
        else value
        for key, value in args.items()
    }
    needle = needle.format(**names)
    full.update(args)
    res = run_module_process(tmp_path, "buffer_copy", full, failed=True)
    assert res["failed"] and needle in res["msg"], res["msg"]


def test_check_apply_reapply_check_on_plain_directories(run_module, tmp_path, buf):
    for name in ("P1", "B1"):
        (tmp_path / name).mkdir()
    data = os.urandom(5000)
    (buf / "night").mkdir()
    (buf / "night" / "a.dat").write_bytes(data)
    past = time.time() - 3600
    os.utime(str(buf / "night" / "a.dat"), (past, past))
    args = base_args(tmp_path, buf, [str(tmp_path / "P1")], [str(tmp_path / "B1")], require_mount=False)

    planned = run_module(buffer_copy, args, check_mode=True)
    assert planned["changed"] and planned["copied_files"] == 1 and planned["registry_created"]
    assert not (tmp_path / "registry.sqlite").exists() and not (tmp_path / "P1" / "night").exists()

    applied = run_module(buffer_copy, args)
    assert applied["changed"] and applied["copied_files"] == 1 and applied["copied_bytes"] == 5000
    for disk in ("P1", "B1"):
        assert hashlib.sha512((tmp_path / disk / "night" / "a.dat").read_bytes()).hexdigest() == hashlib.sha512(data).hexdigest()

    again = run_module(buffer_copy, args)
    assert not again["changed"] and again["copied_files"] == 0 and again["skipped_files"] == 1
    assert not run_module(buffer_copy, args, check_mode=True)["changed"]


def test_same_excludes_select_the_same_files_in_user_usage_info_and_buffer_copy(tmp_path, buf):
    """One meaning of ``excludes`` in the collection: the files buffer_copy
    copies are the files user_usage_info counts, for the same list."""
    for name in ("P1", "B1"):
        (tmp_path / name).mkdir()
    past = time.time() - 3600
    for rel in ("a.dat", "a.tmp", "cache/b.dat", "night/cache/c.dat", "night/d.dat", "night/e.tmp", "keep/cachefile"):
        path = buf / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 10)
        os.utime(str(path), (past, past))
    excludes = ["*.tmp", "cache"]
    usage = run_module_process(tmp_path, "user_usage_info", {"paths": [str(buf)], "excludes": excludes})
    copied = run_module_process(
        tmp_path, "buffer_copy", dict(base_args(tmp_path, buf, [str(tmp_path / "P1")], [str(tmp_path / "B1")], require_mount=False), excludes=excludes)
    )
    assert sorted(f["path"] for f in copied["files"]) == ["a.dat", "keep/cachefile", "night/d.dat"]
    assert sum(user["files"] for user in usage["users"]) == copied["copied_files"] == 3
