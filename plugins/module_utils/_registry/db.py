# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The copy registry: which disk holds which verified copy of which file.

SQLite in WAL mode with ``synchronous=FULL``; every change is one explicit
transaction with parameterised queries, so a registration is either fully
committed (file row and all its copy rows) or absent. The schema version is
SQLite's ``user_version``; :data:`MIGRATIONS` upgrades older files in place.

No AnsibleModule import; used by buffer_copy, copy_registry_info and
registry_audit.
"""

from __future__ import annotations

import os
import sqlite3
import time

SCHEMA_VERSION = 1

# Each entry upgrades the schema from version N-1 to N (index 0 -> version 1).
MIGRATIONS = (
    (
        """CREATE TABLE disks (
            id INTEGER PRIMARY KEY,
            label TEXT NOT NULL UNIQUE,
            serial TEXT,
            wwn TEXT,
            mount_point TEXT,
            role TEXT,
            full INTEGER NOT NULL DEFAULT 0,
            full_at REAL,
            added_at REAL NOT NULL
        )""",
        """CREATE TABLE files (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            size INTEGER NOT NULL,
            mtime REAL NOT NULL,
            algorithm TEXT NOT NULL,
            digest TEXT NOT NULL,
            registered_at REAL NOT NULL,
            source_removed_at REAL
        )""",
        """CREATE TABLE copies (
            id INTEGER PRIMARY KEY,
            file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
            disk_id INTEGER NOT NULL REFERENCES disks(id),
            role TEXT NOT NULL,
            path TEXT NOT NULL,
            verified_at REAL NOT NULL,
            status TEXT NOT NULL DEFAULT 'ok',
            checked_at REAL NOT NULL,
            detail TEXT,
            UNIQUE (file_id, disk_id)
        )""",
        "CREATE INDEX copies_disk ON copies(disk_id)",
        "CREATE INDEX files_mtime ON files(mtime)",
        """CREATE TABLE pending (
            id INTEGER PRIMARY KEY,
            root TEXT NOT NULL,
            path TEXT NOT NULL,
            created_at REAL NOT NULL,
            UNIQUE (root, path)
        )""",
        """CREATE TABLE audits (
            id INTEGER PRIMARY KEY,
            copy_id INTEGER NOT NULL REFERENCES copies(id) ON DELETE CASCADE,
            checked_at REAL NOT NULL,
            status TEXT NOT NULL,
            detail TEXT
        )""",
    ),
)

COPY_STATUSES = ("ok", "missing", "corrupt", "unreadable", "repaired")


def registry_argument_spec():
    """The argspec of the ``datasteward.storage._registry`` doc fragment's
    options; change both together."""
    return dict(registry=dict(type="path", required=True))


class RegistryError(Exception):
    """The registry cannot be opened, migrated or written; names the file."""

    def __init__(self, msg, path=None):
        super().__init__(msg)
        self.path = path


class Registry:
    """An open registry. ``readonly`` never creates or writes anything: an
    absent file reads as an empty registry (check mode, info module)."""

    def __init__(self, path, readonly=False):
        self.path = path
        self.readonly = readonly
        self.created = False
        self.migrated_from = None
        self.exists = os.path.exists(path)
        try:
            if readonly and not self.exists:
                self.conn = sqlite3.connect(":memory:", isolation_level=None)
                self._migrate(self.conn, 0)
            elif readonly:
                self.conn = sqlite3.connect("file:%s?mode=ro" % _uri_path(path), uri=True, isolation_level=None, timeout=30)
                self._check_version()
            else:
                parent = os.path.dirname(os.path.abspath(path))
                if not os.path.isdir(parent):
                    raise RegistryError("registry %s: directory %s does not exist" % (path, parent), path)
                self.conn = sqlite3.connect(path, isolation_level=None, timeout=30)
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=FULL")
                self.conn.execute("PRAGMA foreign_keys=ON")
                version = self._check_version()
                if version < SCHEMA_VERSION:
                    self.created = version == 0 and not self._has_tables()
                    self.migrated_from = version
                    self._migrate(self.conn, version)
        except sqlite3.Error as exc:
            raise RegistryError("registry %s: %s" % (path, exc), path)
        self.conn.row_factory = sqlite3.Row

    def _has_tables(self):
        return bool(self.conn.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0])

    def _check_version(self):
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RegistryError("registry %s has schema version %d, newer than this collection's %d; upgrade datasteward.storage"
                                % (self.path, version, SCHEMA_VERSION), self.path)
        if self.readonly and version < SCHEMA_VERSION and version != 0:
            self.migrated_from = version  # read-only: queries assume the current schema
            raise RegistryError("registry %s has schema version %d; run buffer_copy once (not in check mode) to migrate it"
                                % (self.path, version), self.path)
        return version

    @staticmethod
    def _migrate(conn, version):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for step in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[step]:
                    conn.execute(statement)
            conn.execute("PRAGMA user_version=%d" % SCHEMA_VERSION)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self):
        self.conn.close()

    # -- transactions ---------------------------------------------------
    def _write(self, statements):
        """Run ``[(sql, params), ...]`` as one committed transaction."""
        if self.readonly:
            raise RegistryError("registry %s is open read-only" % self.path, self.path)
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                results = [self.conn.execute(sql, params) for sql, params in statements]
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise RegistryError("registry %s: write failed: %s" % (self.path, exc), self.path)
        return results

    def query(self, sql, params=()):
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise RegistryError("registry %s: query failed: %s" % (self.path, exc), self.path)

    def integrity_check(self):
        """``PRAGMA integrity_check`` and ``foreign_key_check``; [] when sound."""
        problems = [row[0] for row in self.query("PRAGMA integrity_check") if row[0] != "ok"]
        problems += ["foreign key violation in %s row %s" % (row[0], row[1]) for row in self.query("PRAGMA foreign_key_check")]
        return problems

    # -- disks ----------------------------------------------------------
    def disk(self, label):
        rows = self.query("SELECT * FROM disks WHERE label = ?", (label,))
        return dict(rows[0]) if rows else None

    def disk_by_mount(self, mount_point):
        rows = self.query("SELECT * FROM disks WHERE mount_point = ? ORDER BY id", (mount_point,))
        return dict(rows[0]) if rows else None

    def disks(self):
        return [dict(row) for row in self.query("SELECT * FROM disks ORDER BY id")]

    def ensure_disk(self, label, mount_point, role):
        """Insert a disk or update where it is mounted. Returns (row, changed)."""
        row = self.disk(label)
        if row is None:
            self._write([("INSERT INTO disks (label, mount_point, role, added_at) VALUES (?, ?, ?, ?)",
                          (label, mount_point, role, time.time()))])
            return self.disk(label), True
        if row["mount_point"] != mount_point or row["role"] != role:
            self._write([("UPDATE disks SET mount_point = ?, role = ? WHERE id = ?", (mount_point, role, row["id"]))])
            return self.disk(label), True
        return row, False

    def mark_full(self, disk_id):
        self._write([("UPDATE disks SET full = 1, full_at = ? WHERE id = ? AND full = 0", (time.time(), disk_id))])

    def seed_disks(self, entries):
        """Insert or update ``{label, serial, wwn}`` entries; returns the
        labels whose rows were inserted or altered."""
        statements, changed = [], []
        now = time.time()
        for entry in entries:
            row = self.disk(entry["label"])
            if row is None:
                statements.append(("INSERT INTO disks (label, serial, wwn, added_at) VALUES (?, ?, ?, ?)",
                                   (entry["label"], entry["serial"], entry.get("wwn"), now)))
                changed.append(entry["label"])
            elif (row["serial"], row["wwn"]) != (entry["serial"], entry.get("wwn")):
                statements.append(("UPDATE disks SET serial = ?, wwn = ? WHERE id = ?", (entry["serial"], entry.get("wwn"), row["id"])))
                changed.append(entry["label"])
        if statements and not self.readonly:
            self._write(statements)
        return changed

    # -- files ----------------------------------------------------------
    def file(self, path):
        rows = self.query("SELECT * FROM files WHERE path = ?", (path,))
        return dict(rows[0]) if rows else None

    def register(self, path, size, mtime, algorithm, digest, copies, pending_ids=()):
        """One transaction: the file row, one row per copy
        (``{disk_id, role, path, verified_at}``), and the journal entries of
        its temporaries. Returns the file id."""
        now = time.time()
        statements = [("INSERT INTO files (path, size, mtime, algorithm, digest, registered_at) VALUES (?, ?, ?, ?, ?, ?)",
                       (path, size, mtime, algorithm, digest, now))]
        for copy in copies:
            statements.append(("INSERT INTO copies (file_id, disk_id, role, path, verified_at, checked_at) "
                               "VALUES ((SELECT id FROM files WHERE path = ?), ?, ?, ?, ?, ?)",
                               (path, copy["disk_id"], copy["role"], copy["path"], copy["verified_at"], copy["verified_at"])))
        statements += [("DELETE FROM pending WHERE id = ?", (pid,)) for pid in pending_ids]
        self._write(statements)
        return self.file(path)["id"]

    def mark_source_removed(self, file_id):
        self._write([("UPDATE files SET source_removed_at = ? WHERE id = ? AND source_removed_at IS NULL", (time.time(), file_id))])

    def copies_of(self, file_id):
        return [dict(row) for row in self.query(
            "SELECT copies.*, disks.label, disks.mount_point FROM copies JOIN disks ON disks.id = copies.disk_id "
            "WHERE file_id = ? ORDER BY copies.id", (file_id,))]

    # -- journal of temporaries -------------------------------------------
    def pending_add(self, root, path):
        return self.pending_add_all([(root, path)])[0]

    def pending_add_all(self, entries):
        """Journal temporaries ``[(root, path), ...]`` in one transaction."""
        now = time.time()
        cursors = self._write([("INSERT OR IGNORE INTO pending (root, path, created_at) VALUES (?, ?, ?)", (root, path, now))
                               for root, path in entries])
        return [cursor.lastrowid for cursor in cursors]

    def pending(self):
        return [dict(row) for row in self.query("SELECT * FROM pending ORDER BY id")]

    def pending_remove(self, ids):
        if ids:
            self._write([("DELETE FROM pending WHERE id = ?", (pid,)) for pid in ids])

    # -- audits -----------------------------------------------------------
    def record_check(self, copy_id, status, detail=None, verified=False):
        """Record an audit result; returns True when the copy's status changed."""
        now = time.time()
        row = self.query("SELECT status FROM copies WHERE id = ?", (copy_id,))
        old = row[0]["status"] if row else None
        statements = [("UPDATE copies SET status = ?, checked_at = ?, detail = ? WHERE id = ?", (status, now, detail, copy_id)),
                      ("INSERT INTO audits (copy_id, checked_at, status, detail) VALUES (?, ?, ?, ?)", (copy_id, now, status, detail))]
        if verified:
            statements.append(("UPDATE copies SET verified_at = ? WHERE id = ?", (now, copy_id)))
        self._write(statements)
        return old != status


class Journal:
    """Adapter for the copy engine: records each temporary before it exists."""

    def __init__(self, registry):
        self.registry = registry
        self.ids = []
        self.entries = {}

    def add_all(self, entries):
        ids = self.registry.pending_add_all(entries)
        self.entries.update(zip([tuple(entry) for entry in entries], ids))
        self.ids.extend(ids)

    def keep(self, entries):
        """Temporaries still on disk (their unlink failed): :meth:`take`
        leaves their entries out, so the rows stay for a later sweep."""
        kept = {self.entries.get(tuple(entry)) for entry in entries}
        self.ids = [pid for pid in self.ids if pid not in kept]

    def take(self):
        ids, self.ids = self.ids, []
        return ids


def _uri_path(path):
    from urllib.parse import quote
    return quote(os.path.abspath(path))


def parse_when(value, name):
    """``2024-06-01``, ``2024-06-01T12:00:00`` (UTC unless an offset is
    given) or seconds since the epoch, to an epoch float."""
    import datetime
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    try:
        when = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise RegistryError("%s: %r is not a date (YYYY-MM-DD), a date and time (YYYY-MM-DDTHH:MM:SS) or epoch seconds" % (name, value))
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


def find_files(registry, patterns=None, since=None, until=None, labels=None, limit=1000, date_field="mtime"):
    """Registered files matching every given filter, with their copies.
    Returns ``(files, matched)``; ``files`` holds at most ``limit`` entries."""
    where, params = [], []
    if patterns:
        where.append("(%s)" % " OR ".join("f.path GLOB ?" for dummy in patterns))
        params += list(patterns)
    column = "f.registered_at" if date_field == "registered" else "f.mtime"
    if since is not None:
        where.append("%s >= ?" % column)
        params.append(since)
    if until is not None:
        where.append("%s < ?" % column)
        params.append(until)
    if labels:
        where.append("EXISTS (SELECT 1 FROM copies c JOIN disks d ON d.id = c.disk_id WHERE c.file_id = f.id AND d.label IN (%s))"
                     % ", ".join("?" for dummy in labels))
        params += list(labels)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    matched = registry.query("SELECT count(*) FROM files f" + clause, params)[0][0]
    rows = registry.query("SELECT f.* FROM files f" + clause + " ORDER BY f.path LIMIT ?", params + [int(limit)])
    files = []
    for row in rows:
        copies = [{"label": c["label"], "role": c["role"], "path": c["path"], "mount_point": c["mount_point"],
                   "verified_at": c["verified_at"], "checked_at": c["checked_at"], "status": c["status"]}
                  for c in registry.copies_of(row["id"])]
        files.append({"path": row["path"], "size_bytes": row["size"], "mtime": row["mtime"], "checksum_algorithm": row["algorithm"],
                      "digest": row["digest"], "registered_at": row["registered_at"], "source_removed_at": row["source_removed_at"],
                      "copies": copies})
    return files, matched


def disk_summary(registry, labels=None, statvfs=os.statvfs, label_of=None, is_mount=os.path.ismount):
    """Per disk: identity, fill flag, registered files and bytes, and live
    capacity when it is mounted where the registry last saw it."""
    stats = {row["disk_id"]: row for row in registry.query(
        "SELECT c.disk_id, count(*) AS files, coalesce(sum(f.size), 0) AS bytes, "
        "sum(CASE WHEN c.status = 'ok' THEN 0 ELSE 1 END) AS problems "
        "FROM copies c JOIN files f ON f.id = c.file_id GROUP BY c.disk_id")}
    out = []
    for disk in registry.disks():
        if labels and disk["label"] not in labels:
            continue
        row = stats.get(disk["id"])
        entry = {"label": disk["label"], "serial": disk["serial"], "wwn": disk["wwn"], "mount_point": disk["mount_point"],
                 "role": disk["role"], "full": bool(disk["full"]), "full_at": disk["full_at"],
                 "file_count": row["files"] if row else 0, "registered_bytes": row["bytes"] if row else 0,
                 "problem_copies": row["problems"] if row else 0,
                 "mounted": False, "total_bytes": None, "available_bytes": None}
        mount_point = disk["mount_point"]
        if mount_point and is_mount(mount_point) and (label_of is None or label_of(mount_point) == disk["label"]):
            try:
                st = statvfs(mount_point)
                entry.update(mounted=True, total_bytes=st.f_blocks * st.f_frsize, available_bytes=st.f_bavail * st.f_frsize)
            except OSError:
                pass
        out.append(entry)
    return out
