# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""registry_audit and copy_registry_info run as real processes over a registry
that buffer_copy filled on real tmpfs disks."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from ansible_collections.datasteward.storage.tests.unit.utils.module_runner import run_module_process


def sha512(path):
    return hashlib.sha512(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def station(tmp_path, mount_tmpfs):
    """A buffer copied to P1/B1 (real tmpfs, unmounted by mount_tmpfs whatever
    happens); returns (registry, p1, b1, digests)."""
    for name in ("P1", "B1"):
        mount_tmpfs(tmp_path / name, "16m")
    Path(tmp_path / "P1" / ".datasteward-disk").write_text("P01\n")
    buf = tmp_path / "buffer"
    digests = {}
    for rel, size in (("2024/06/01/a.dat", 300000), ("2024/06/01/b.dat", 1000), ("2024/06/02/c.dat", 5000)):
        (buf / rel).parent.mkdir(parents=True, exist_ok=True)
        (buf / rel).write_bytes(os.urandom(size))
        os.utime(str(buf / rel), (1717200000, 1717200000 if "06/01" in rel else 1717300000))
        digests[rel] = sha512(buf / rel)
    registry = str(tmp_path / "registry.sqlite")
    res = run_module_process(
        tmp_path,
        "buffer_copy",
        {
            "src": str(buf),
            "primary": [str(tmp_path / "P1")],
            "backup": [str(tmp_path / "B1")],
            "registry": registry,
            "settle_seconds": 0,
            "remove_source": True,
        },
    )
    assert res["copied_files"] == 3
    return registry, str(tmp_path / "P1"), str(tmp_path / "B1"), digests


def test_clean_audit_is_idempotent(tmp_path, station):
    registry, dummy, dummy2, dummy3 = station
    res = run_module_process(tmp_path, "registry_audit", {"registry": registry})
    assert not res["changed"] and res["checked_copies"] == 6 and res["ok_copies"] == 6 and res["problems"] == []
    assert res["disks_present"] == ["B1", "P01"]


def test_corrupt_and_missing_found_and_repaired(tmp_path, station):
    registry, p1, b1, digests = station
    corrupt = Path(p1, "2024/06/01/a.dat")
    data = bytearray(corrupt.read_bytes())
    data[12345] ^= 0x01  # one flipped bit
    corrupt.write_bytes(bytes(data))
    Path(b1, "2024/06/02/c.dat").unlink()

    res = run_module_process(tmp_path, "registry_audit", {"registry": registry, "repair": True}, check_mode=True)
    assert res["changed"] and res["corrupt_copies"] == 1 and res["missing_copies"] == 1 and res["repaired_copies"] == 2
    assert sha512(corrupt) != digests["2024/06/01/a.dat"] and not Path(b1, "2024/06/02/c.dat").exists()

    res = run_module_process(tmp_path, "registry_audit", {"registry": registry})
    assert res["changed"] and res["corrupt_copies"] == 1 and res["missing_copies"] == 1 and res["repaired_copies"] == 0
    assert {(p["label"], p["status"]) for p in res["problems"]} == {("P01", "corrupt"), ("B1", "missing")}
    assert not run_module_process(tmp_path, "registry_audit", {"registry": registry})["changed"]  # same findings: no change
    info = run_module_process(tmp_path, "copy_registry_info", {"registry": registry})
    assert {d["label"]: d["problem_copies"] for d in info["disks"]} == {"P01": 1, "B1": 1}

    res = run_module_process(tmp_path, "registry_audit", {"registry": registry, "repair": True})
    assert res["changed"] and res["repaired_copies"] == 2 and res["repair_failed_copies"] == 0
    assert sha512(corrupt) == digests["2024/06/01/a.dat"]
    assert sha512(Path(b1, "2024/06/02/c.dat")) == digests["2024/06/02/c.dat"]
    res = run_module_process(tmp_path, "registry_audit", {"registry": registry, "repair": True})
    assert not res["changed"] and res["ok_copies"] == 6
    conn = sqlite3.connect(registry)
    assert conn.execute("SELECT count(*) FROM copies WHERE status != 'ok'").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM audits WHERE detail LIKE 'repaired from %'").fetchone()[0] == 2


def test_both_copies_bad_cannot_be_repaired(tmp_path, station):
    registry, p1, b1, dummy = station
    Path(p1, "2024/06/01/b.dat").write_bytes(b"x")
    Path(b1, "2024/06/01/b.dat").unlink()
    res = run_module_process(tmp_path, "registry_audit", {"registry": registry, "repair": True})
    assert res["repair_failed_copies"] == 2 and "no verified twin" in res["problems"][0]["repair_error"]


def test_selection_sample_age_labels_and_absent_disk(tmp_path, station):
    registry, p1, dummy, dummy2 = station
    res = run_module_process(tmp_path, "registry_audit", {"registry": registry, "sample_size": 2})
    assert res["checked_copies"] == 2
    assert run_module_process(tmp_path, "registry_audit", {"registry": registry, "older_than_days": 1})["checked_copies"] == 0
    assert run_module_process(tmp_path, "registry_audit", {"registry": registry, "labels": ["P01"]})["checked_copies"] == 3
    subprocess.run(["umount", p1], check=True)
    res = run_module_process(tmp_path, "registry_audit", {"registry": registry})
    assert res["unavailable_copies"] == 3 and res["missing_copies"] == 0 and res["checked_copies"] == 3


def test_info_queries(tmp_path, station):
    registry, p1, b1, digests = station
    res = run_module_process(tmp_path, "copy_registry_info", {"registry": registry})
    assert not res["changed"] and res["matched"] == 3 and not res["truncated"]
    first = res["files"][0]
    assert first["path"] == "2024/06/01/a.dat" and first["digest"] == digests[first["path"]]
    assert sorted((c["label"], c["role"]) for c in first["copies"]) == [("B1", "backup"), ("P01", "primary")]
    assert first["source_removed_at"] is not None
    disks = {d["label"]: d for d in res["disks"]}
    assert disks["P01"]["file_count"] == 3 and disks["P01"]["registered_bytes"] == 306000 and disks["P01"]["mounted"]
    assert disks["P01"]["total_bytes"] == 16 * 1024 * 1024

    assert run_module_process(tmp_path, "copy_registry_info", {"registry": registry, "patterns": ["2024/06/01/*"]})["matched"] == 2
    res = run_module_process(tmp_path, "copy_registry_info", {"registry": registry, "since": "2024-06-02", "until": "2024-06-03"})
    assert [f["path"] for f in res["files"]] == ["2024/06/02/c.dat"]
    res = run_module_process(tmp_path, "copy_registry_info", {"registry": registry, "since": str(time.time() - 3600), "date_field": "registered"})
    assert res["matched"] == 3
    res = run_module_process(tmp_path, "copy_registry_info", {"registry": registry, "labels": ["B1"], "limit": 1})
    assert res["matched"] == 3 and len(res["files"]) == 1 and res["truncated"] and [d["label"] for d in res["disks"]] == ["B1"]
    assert run_module_process(tmp_path, "copy_registry_info", {"registry": registry, "labels": ["X9"]})["matched"] == 0


def test_unreadable_label_file_is_reported_not_a_traceback(tmp_path, station):
    """A label file that is a directory (a real OSError path: it cannot be
    read as a label) makes that disk unavailable with a warning, for the
    audit and the info module alike; the other disk is still audited."""
    registry, p1, b1, dummy = station
    os.unlink(os.path.join(p1, ".datasteward-disk"))
    os.mkdir(os.path.join(p1, ".datasteward-disk"))
    res = run_module_process(tmp_path, "registry_audit", {"registry": registry})
    assert res["disks_present"] == ["B1"] and res["ok_copies"] == 3 and res["unavailable_copies"] == 3
    assert "cannot read the disk label %s" % os.path.join(p1, ".datasteward-disk") in str(res["warnings"])
    res = run_module_process(tmp_path, "copy_registry_info", {"registry": registry})
    assert {d["label"]: d["mounted"] for d in res["disks"]} == {"P01": False, "B1": True}
