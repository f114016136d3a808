# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Group commit (_copy/batch) and lossless names in the registry, on tmp_path trees."""

from __future__ import annotations

import errno
import hashlib
import os

from ansible_collections.datasteward.storage.plugins.module_utils._copy import batch as batching
from ansible_collections.datasteward.storage.plugins.module_utils._copy import engine as copier
from ansible_collections.datasteward.storage.plugins.module_utils._registry.db import Journal, Registry, path_bytes, path_key


def write(path, data):
    path = os.fsencode(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)


def test_batch_copies_verifies_and_renames_many_files(tmp_path):
    src, t1, t2 = (str(tmp_path / name) for name in ("src", "t1", "t2"))
    os.mkdir(t1)
    os.mkdir(t2)
    names = [b"a/1.dat", b"a/bad\xff.dat", b"b/new\nline", b"x" * 255]
    for name in names:
        write(os.path.join(os.fsencode(src), name), name * 3)
    registry = Registry(str(tmp_path / "r.sqlite"))
    journal = Journal(registry)
    with batching.Batch(src, "sha512", journal) as batch:
        items = [batch.plan(name, [(t1, name), (t2, name)], os.lstat(os.path.join(os.fsencode(src), name))) for name in names]
        batch.journal_all()
        assert len(registry.pending()) == 2 * len(names)  # journalled before any temporary exists
        for item in items:
            batch.copy(item)
        done = batch.finish()
    assert [item.src_relpath for item in done] == names
    for item in done:
        assert item.result().digest == hashlib.sha512(item.src_relpath * 3).hexdigest()
        for target in (t1, t2):
            with open(os.path.join(os.fsencode(target), item.src_relpath), "rb") as handle:
                assert handle.read() == item.src_relpath * 3
    registry.pending_remove(journal.take_for([entry for item in done for entry in item.entries]))
    assert registry.pending() == []
    for target in (t1, t2):
        leftovers = [n for d, dummy, files in os.walk(os.fsencode(target)) for n in files if copier.is_temp_name(n)]
        assert leftovers == []


def test_batch_item_failure_is_that_items_alone(tmp_path, monkeypatch):
    """A target write that fails with EIO is a TargetFailed on that item
    (with the target's index); the other items complete."""
    src, t1, t2 = (str(tmp_path / name) for name in ("src", "t1", "t2"))
    os.mkdir(t1)
    os.mkdir(t2)
    for name in ("a.dat", "b.dat"):
        write(os.path.join(src, name), b"x" * 10)
    real_write = os.write
    state = {"writes": 0}

    def flaky_write(fd, data):
        state["writes"] += 1
        if state["writes"] == 2:  # a.dat's second target
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", flaky_write)
    with batching.Batch(src, "sha512") as batch:
        items = [batch.plan(name, [(t1, name), (t2, name)]) for name in ("a.dat", "b.dat")]
        for item in items:
            batch.copy(item)
        done = batch.finish()
    assert [item.src_relpath for item in done] == ["b.dat"]
    assert isinstance(items[0].error, copier.TargetFailed) and items[0].error.index == 1
    assert sorted(os.listdir(t1)) == ["b.dat"] and sorted(os.listdir(t2)) == ["b.dat"]  # no temporary left


def test_registry_keeps_names_losslessly(tmp_path):
    for name in (b"plain.dat", "ünï.dat".encode(), b"bad\xff", b"new\nline"):
        assert path_bytes(path_key(name)) == name
    assert path_key(b"plain.dat") == "plain.dat" and path_key(b"bad\xff") == b"bad\xff"
    registry = Registry(str(tmp_path / "r.sqlite"))
    disk, dummy = registry.ensure_disk("P1", "/mnt/P1", "primary")
    ids = registry.register_all(
        [
            (b"bad\xff", 1, 0.0, "sha512", "d", [{"disk_id": disk["id"], "role": "primary", "path": b"bad\xff", "verified_at": 1.0}]),
            ("plain", 1, 0.0, "sha512", "e", []),
        ]
    )
    assert registry.file(b"bad\xff")["id"] == ids[0] and registry.file("plain")["path"] == b"plain"
    assert registry.copies_of(ids[0])[0]["path"] == b"bad\xff"
    assert registry.file(b"bad\xfe") is None
