# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The copy registry on real SQLite files."""

from __future__ import annotations

import sqlite3
import time

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._disks.diskmap import load_disk_map
from ansible_collections.datasteward.storage.plugins.module_utils._registry import db as registry_mod
from ansible_collections.datasteward.storage.plugins.module_utils._registry.db import Registry, RegistryError
from ansible_collections.datasteward.storage.plugins.module_utils._registry.lock import Lock


def test_create_schema_wal(tmp_path):
    reg = Registry(str(tmp_path / "r.sqlite"))
    assert reg.created and reg.migrated_from == 0
    assert reg.query("PRAGMA journal_mode")[0][0] == "wal"
    assert reg.query("PRAGMA user_version")[0][0] == registry_mod.SCHEMA_VERSION
    assert reg.integrity_check() == []
    reg.close()
    again = Registry(str(tmp_path / "r.sqlite"))
    assert not again.created and again.migrated_from is None
    again.close()


def test_readonly_absent_creates_nothing(tmp_path):
    reg = Registry(str(tmp_path / "r.sqlite"), readonly=True)
    assert reg.file("x") is None and reg.disks() == []
    reg.close()
    assert not (tmp_path / "r.sqlite").exists()


def test_readonly_refuses_writes(tmp_path):
    Registry(str(tmp_path / "r.sqlite")).close()
    reg = Registry(str(tmp_path / "r.sqlite"), readonly=True)
    with pytest.raises(RegistryError, match="read-only"):
        reg.ensure_disk("P01", "/mnt/P01", "primary")


def test_newer_schema_refused(tmp_path):
    conn = sqlite3.connect(str(tmp_path / "r.sqlite"))
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(RegistryError, match="schema version 99, newer"):
        Registry(str(tmp_path / "r.sqlite"))


def test_missing_directory_named(tmp_path):
    with pytest.raises(RegistryError, match="does not exist"):
        Registry(str(tmp_path / "nodir" / "r.sqlite"))


def test_not_a_database(tmp_path):
    (tmp_path / "r.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(RegistryError, match="r.sqlite"):
        Registry(str(tmp_path / "r.sqlite"))


def test_migration_runs_each_step(tmp_path, monkeypatch):
    """A version-1 file gains the objects a (test-only) version 2 adds."""
    Registry(str(tmp_path / "r.sqlite")).close()
    monkeypatch.setattr(registry_mod, "MIGRATIONS", registry_mod.MIGRATIONS + (("ALTER TABLE files ADD COLUMN note TEXT",),))
    monkeypatch.setattr(registry_mod, "SCHEMA_VERSION", 2)
    reg = Registry(str(tmp_path / "r.sqlite"))
    assert reg.migrated_from == 1 and not reg.created
    assert "note" in [row[1] for row in reg.query("PRAGMA table_info(files)")]
    assert reg.query("PRAGMA user_version")[0][0] == 2


def test_register_is_one_transaction(tmp_path):
    reg = Registry(str(tmp_path / "r.sqlite"))
    p, dummy = reg.ensure_disk("P01", "/mnt/P01", "primary")
    b, dummy = reg.ensure_disk("B01", "/mnt/B01", "backup")
    now = time.time()
    name = "it's \"odd\"; DROP TABLE files; --.dat"
    copies = [
        {"disk_id": p["id"], "role": "primary", "path": name, "verified_at": now},
        {"disk_id": b["id"], "role": "backup", "path": name, "verified_at": now},
    ]
    pid = reg.pending_add("/mnt/P01", ".dstmp.x.1")
    file_id = reg.register(name, 10, 1.5, "sha512", "ab" * 64, copies, [pid])
    assert reg.file(name)["digest"] == "ab" * 64
    assert [c["label"] for c in reg.copies_of(file_id)] == ["P01", "B01"]
    assert reg.pending() == []
    # A second registration of the same path fails as a whole: no stray copy rows.
    with pytest.raises(RegistryError, match="UNIQUE"):
        reg.register(name, 10, 1.5, "sha512", "cd" * 64, copies)
    assert len(reg.query("SELECT * FROM copies")) == 2
    assert reg.integrity_check() == []


def test_disks_and_seed(tmp_path):
    reg = Registry(str(tmp_path / "r.sqlite"))
    row, changed = reg.ensure_disk("P01", "/mnt/P01", "primary")
    assert changed and row["full"] == 0
    assert reg.ensure_disk("P01", "/mnt/P01", "primary")[1] is False
    assert reg.ensure_disk("P01", "/mnt/x", "primary")[1] is True
    reg.mark_full(row["id"])
    assert reg.disk("P01")["full"] == 1 and reg.disk("P01")["full_at"]
    mapfile = tmp_path / "disk-map"
    mapfile.write_text("# label serial wwn\nP01 ZA12JCHM 0x5000c500858bfea7\nP02 ZA12JCHN 0x5000c500858bfea8\n")
    entries = load_disk_map(str(mapfile))
    assert reg.seed_disks(entries) == ["P01", "P02"]
    assert reg.seed_disks(entries) == []
    assert reg.disk("P02")["serial"] == "ZA12JCHN" and reg.disk("P01")["mount_point"] == "/mnt/x"
    assert reg.disk_by_mount("/mnt/x")["label"] == "P01"


def test_record_check_reports_status_changes(tmp_path):
    reg = Registry(str(tmp_path / "r.sqlite"))
    p, dummy = reg.ensure_disk("P01", "/mnt/P01", "primary")
    file_id = reg.register("f", 1, 1.0, "sha512", "00", [{"disk_id": p["id"], "role": "primary", "path": "f", "verified_at": 1.0}])
    copy_id = reg.copies_of(file_id)[0]["id"]
    assert reg.record_check(copy_id, "ok", verified=True) is False
    assert reg.copies_of(file_id)[0]["verified_at"] > 1.0
    assert reg.record_check(copy_id, "corrupt", "digest mismatch") is True
    assert reg.record_check(copy_id, "corrupt", "digest mismatch") is False
    assert len(reg.query("SELECT * FROM audits")) == 3


def test_journal_adapter(tmp_path):
    reg = Registry(str(tmp_path / "r.sqlite"))
    journal = registry_mod.Journal(reg)
    journal.add_all([("/mnt/P01", "a/.dstmp.f.1"), ("/mnt/B01", "a/.dstmp.f.2")])
    assert [row["root"] for row in reg.pending()] == ["/mnt/P01", "/mnt/B01"]
    reg.pending_remove(journal.take())
    assert reg.pending() == [] and journal.take() == []


def test_lock_is_exclusive(tmp_path):
    path = tmp_path / "reg"
    path.write_bytes(b"")
    first = Lock(str(path)).acquire()
    with pytest.raises(RegistryError, match="locked by another run"):
        Lock(str(path)).acquire()
    first.release()
    Lock(str(path)).acquire().release()
