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

import math
import os
import sqlite3
import stat
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

# Files SQLite keeps beside the registry; none may be anything but a regular file.
SIDE_FILES = ("", "-wal", "-shm", "-journal")
_PATH_COLUMNS = ("path", "file_path")


def path_key(path):
    """How a file name is stored: valid UTF-8 as TEXT (as always), any other
    bytes as a BLOB, so every name the kernel accepts round-trips exactly."""
    raw = path if isinstance(path, bytes) else os.fsencode(path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def path_bytes(value):
    """A stored name (TEXT or BLOB) back as bytes."""
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")


def _row(row):
    out = dict(row)
    for column in _PATH_COLUMNS:
        if out.get(column) is not None:
            out[column] = path_bytes(out[column])
    if out.get("root") is not None:  # a mount point: str, as options give it
        out["root"] = os.fsdecode(path_bytes(out["root"]))
    return out


def check_registry_path(path):
    """Refuse a ``registry`` that SQLite could hang on or misuse: empty, a
    directory, a FIFO or device (the registry and its -wal/-shm/-journal)."""
    if not path:
        raise RegistryError("registry must be the path of an SQLite file, got an empty string", path)
    for suffix in SIDE_FILES:
        name = path + suffix
        try:
            st = os.stat(name)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise RegistryError("registry %s: cannot stat %s: %s" % (path, name, exc.strerror or exc), path)
        if not stat.S_ISREG(st.st_mode):
            raise RegistryError("registry %s: %s is %s, not a regular file; give registry the path of an SQLite file" % (path, name, _kind(st.st_mode)), path)


def _kind(mode):
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


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
        self.immutable = False
        check_registry_path(path)
        self.exists = os.path.exists(path)
        try:
            if readonly and not self.exists:
                self.conn = sqlite3.connect(":memory:", isolation_level=None)
                self._migrate(self.conn, 0)
            elif readonly:
                self._open_readonly(path)
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

    def _open_readonly(self, path):
        """``mode=ro``; where that fails (read-only media without the -shm
        file of a WAL registry) ``immutable=1``, which reads the file as it is."""
        try:
            self.conn = sqlite3.connect("file:%s?mode=ro" % _uri_path(path), uri=True, isolation_level=None, timeout=30)
            self._check_version()
            return
        except sqlite3.OperationalError as exc:
            first = exc
        try:
            self.conn = sqlite3.connect("file:%s?mode=ro&immutable=1" % _uri_path(path), uri=True, isolation_level=None)
            self._check_version()
        except sqlite3.Error as exc:
            raise RegistryError("registry %s cannot be opened read-only: %s (as immutable: %s)" % (path, first, exc), path)
        self.immutable = True

    def _has_tables(self):
        return bool(self.conn.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0])

    def _check_version(self):
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RegistryError(
                "registry %s has schema version %d, newer than this collection's %d; upgrade datasteward.storage" % (self.path, version, SCHEMA_VERSION),
                self.path,
            )
        if self.readonly and version < SCHEMA_VERSION and version != 0:
            self.migrated_from = version  # read-only: queries assume the current schema
            raise RegistryError("registry %s has schema version %d; run buffer_copy once (not in check mode) to migrate it" % (self.path, version), self.path)
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
            self._write([("INSERT INTO disks (label, mount_point, role, added_at) VALUES (?, ?, ?, ?)", (label, mount_point, role, time.time()))])
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
                statements.append(
                    ("INSERT INTO disks (label, serial, wwn, added_at) VALUES (?, ?, ?, ?)", (entry["label"], entry["serial"], entry.get("wwn"), now))
                )
                changed.append(entry["label"])
            elif (row["serial"], row["wwn"]) != (entry["serial"], entry.get("wwn")):
                statements.append(("UPDATE disks SET serial = ?, wwn = ? WHERE id = ?", (entry["serial"], entry.get("wwn"), row["id"])))
                changed.append(entry["label"])
        if statements and not self.readonly:
            self._write(statements)
        return changed

    # -- files ----------------------------------------------------------
    def file(self, path):
        """The file row of a path (str or bytes), paths as bytes; None if absent."""
        rows = self.query("SELECT * FROM files WHERE path = ?", (path_key(path),))
        return _row(rows[0]) if rows else None

    def register(self, path, size, mtime, algorithm, digest, copies, pending_ids=()):
        """One transaction: the file row, one row per copy
        (``{disk_id, role, path, verified_at}``), and the journal entries of
        its temporaries. Returns the file id."""
        return self.register_all([(path, size, mtime, algorithm, digest, copies)], pending_ids)[0]

    def register_all(self, files, pending_ids=()):
        """Group commit: ``[(path, size, mtime, algorithm, digest, copies), ...]``
        and the journal entries of their temporaries in ONE transaction.
        Returns the file ids, in order."""
        now = time.time()
        if self.readonly:
            raise RegistryError("registry %s is open read-only" % self.path, self.path)
        ids = []
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                for path, size, mtime, algorithm, digest, copies in files:
                    cur = self.conn.execute(
                        "INSERT INTO files (path, size, mtime, algorithm, digest, registered_at) VALUES (?, ?, ?, ?, ?, ?)",
                        (path_key(path), size, mtime, algorithm, digest, now),
                    )
                    ids.append(cur.lastrowid)
                    self.conn.executemany(
                        "INSERT INTO copies (file_id, disk_id, role, path, verified_at, checked_at) VALUES (?, ?, ?, ?, ?, ?)",
                        [(cur.lastrowid, copy["disk_id"], copy["role"], path_key(copy["path"]), copy["verified_at"], copy["verified_at"]) for copy in copies],
                    )
                self.conn.executemany("DELETE FROM pending WHERE id = ?", [(pid,) for pid in pending_ids])
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise RegistryError("registry %s: write failed: %s" % (self.path, exc), self.path)
        return ids

    def mark_source_removed(self, file_id):
        self.mark_sources_removed([file_id])

    def mark_sources_removed(self, file_ids):
        """Record, in one transaction, that these files' sources were removed."""
        if file_ids:
            now = time.time()
            self._write([("UPDATE files SET source_removed_at = ? WHERE id = ? AND source_removed_at IS NULL", (now, fid)) for fid in file_ids])

    def copies_of(self, file_id):
        return [
            _row(row)
            for row in self.query(
                "SELECT copies.*, disks.label, disks.mount_point FROM copies JOIN disks ON disks.id = copies.disk_id WHERE file_id = ? ORDER BY copies.id",
                (file_id,),
            )
        ]

    # -- journal of temporaries -------------------------------------------
    def pending_add(self, root, path):
        return self.pending_add_all([(root, path)])[0]

    def pending_add_all(self, entries):
        """Journal temporaries ``[(root, path), ...]`` in one transaction."""
        now = time.time()
        cursors = self._write(
            [("INSERT OR IGNORE INTO pending (root, path, created_at) VALUES (?, ?, ?)", (path_key(root), path_key(path), now)) for root, path in entries]
        )
        return [cursor.lastrowid for cursor in cursors]

    def pending(self):
        """Journal rows; ``root`` and ``path`` as bytes."""
        return [_row(row) for row in self.query("SELECT * FROM pending ORDER BY id")]

    def pending_remove(self, ids):
        if ids:
            self._write([("DELETE FROM pending WHERE id = ?", (pid,)) for pid in ids])

    # -- audits -----------------------------------------------------------
    def copies_to_audit(self, labels=None, verified_before=None):
        """Every copy with its disk label and file (path, size, algorithm,
        digest), optionally only on ``labels`` or last verified before a time."""
        sql = (
            "SELECT c.id, c.path, c.role, c.status, c.verified_at, c.file_id, d.label, f.path AS file_path, f.size, f.algorithm, "
            "f.digest FROM copies c JOIN disks d ON d.id = c.disk_id JOIN files f ON f.id = c.file_id"
        )
        where, params = [], []
        if labels:
            where.append("d.label IN (%s)" % ", ".join("?" for dummy in labels))
            params += list(labels)
        if verified_before is not None:
            where.append("c.verified_at < ?")
            params.append(verified_before)
        return [_row(row) for row in self.query(sql + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY c.id", params)]

    def record_check(self, copy_id, status, detail=None, verified=False):
        """Record an audit result; returns True when the copy's status changed."""
        now = time.time()
        row = self.query("SELECT status FROM copies WHERE id = ?", (copy_id,))
        old = row[0]["status"] if row else None
        statements = [
            ("UPDATE copies SET status = ?, checked_at = ?, detail = ? WHERE id = ?", (status, now, detail, copy_id)),
            ("INSERT INTO audits (copy_id, checked_at, status, detail) VALUES (?, ?, ?, ?)", (copy_id, now, status, detail)),
        ]
        if verified:
            statements.append(("UPDATE copies SET verified_at = ? WHERE id = ?", (now, copy_id)))
        self._write(statements)
        return old != status


class Journal:
    """Adapter for the copy engine: records each temporary before it exists.

    Rows leave the journal only when the caller says so: :meth:`take` (every
    row not kept), or, for batches, :meth:`take_for` (the rows of registered
    files plus the :meth:`forget`-ten rows of discarded temporaries). A row
    whose temporary could not be removed (:meth:`keep`) always stays."""

    def __init__(self, registry):
        self.registry = registry
        self.ids = []
        self.entries = {}
        self.kept = set()
        self.forgotten = []

    def add_all(self, entries):
        ids = self.registry.pending_add_all(entries)
        self.entries.update(zip([tuple(entry) for entry in entries], ids))
        self.ids.extend(ids)

    def keep(self, entries):
        """Temporaries still on disk (their unlink failed): their rows stay for a later sweep."""
        self.kept |= {self.entries.get(tuple(entry)) for entry in entries}
        self.ids = [pid for pid in self.ids if pid not in self.kept]

    def ids_of(self, entries):
        ids = [self.entries.get(tuple(entry)) for entry in entries]
        return [pid for pid in ids if pid is not None and pid not in self.kept]

    def forget(self, entries):
        """These temporaries were discarded (or never made): drop their rows with the next commit."""
        self.forgotten += self.ids_of(entries)

    def take(self):
        ids, self.ids = self.ids, []
        return [pid for pid in ids if pid not in self.kept]

    def take_for(self, entries):
        ids = self.ids_of(entries) + [pid for pid in self.forgotten if pid not in self.kept]
        self.forgotten = []
        return ids

    def flush_forgotten(self):
        ids = self.take_for([])
        if ids:
            self.registry.pending_remove(ids)


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
        number = float(value)
    except (TypeError, ValueError):
        number = None
    if number is not None:
        if math.isnan(number) or math.isinf(number):
            raise RegistryError("%s: %r is not a finite number of epoch seconds" % (name, value))
        return number
    try:
        when = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise RegistryError("%s: %r is not a date (YYYY-MM-DD), a date and time (YYYY-MM-DDTHH:MM:SS) or epoch seconds" % (name, value))
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


SQLITE_INT_MAX = 2**63 - 1


def check_limit(limit, name="limit"):
    """A count option SQLite can take: 0 .. 2**63-1."""
    if limit is not None and not 0 <= limit <= SQLITE_INT_MAX:
        raise RegistryError("%s must be between 0 and %d, got %s" % (name, SQLITE_INT_MAX, limit))


def _display(path):
    return path_bytes(path).decode("utf-8", "backslashreplace")


def find_files(registry, patterns=None, since=None, until=None, labels=None, limit=1000, date_field="mtime"):
    """Registered files matching every given filter, with their copies.
    Returns ``(files, matched)``; ``files`` holds at most ``limit`` entries.
    Names are shown with non-UTF-8 bytes as ``\\xNN``."""
    check_limit(limit)
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
        where.append(
            "EXISTS (SELECT 1 FROM copies c JOIN disks d ON d.id = c.disk_id WHERE c.file_id = f.id AND d.label IN (%s))" % ", ".join("?" for dummy in labels)
        )
        params += list(labels)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    matched = registry.query("SELECT count(*) FROM files f" + clause, params)[0][0]
    rows = registry.query("SELECT f.* FROM files f" + clause + " ORDER BY f.path LIMIT ?", params + [int(limit)])
    files = []
    for row in rows:
        copies = [
            {
                "label": c["label"],
                "role": c["role"],
                "path": _display(c["path"]),
                "mount_point": c["mount_point"],
                "verified_at": c["verified_at"],
                "checked_at": c["checked_at"],
                "status": c["status"],
            }
            for c in registry.copies_of(row["id"])
        ]
        files.append(
            {
                "path": _display(row["path"]),
                "size_bytes": row["size"],
                "mtime": row["mtime"],
                "checksum_algorithm": row["algorithm"],
                "digest": row["digest"],
                "registered_at": row["registered_at"],
                "source_removed_at": row["source_removed_at"],
                "copies": copies,
            }
        )
    return files, matched


def disk_summary(registry, labels=None, statvfs=os.statvfs, label_of=None, is_mount=os.path.ismount):
    """Per disk: identity, fill flag, registered files and bytes, and live
    capacity when it is mounted where the registry last saw it."""
    stats = {
        row["disk_id"]: row
        for row in registry.query(
            "SELECT c.disk_id, count(*) AS files, coalesce(sum(f.size), 0) AS bytes, "
            "sum(CASE WHEN c.status = 'ok' THEN 0 ELSE 1 END) AS problems "
            "FROM copies c JOIN files f ON f.id = c.file_id GROUP BY c.disk_id"
        )
    }
    out = []
    for disk in registry.disks():
        if labels and disk["label"] not in labels:
            continue
        row = stats.get(disk["id"])
        entry = {
            "label": disk["label"],
            "serial": disk["serial"],
            "wwn": disk["wwn"],
            "mount_point": disk["mount_point"],
            "role": disk["role"],
            "full": bool(disk["full"]),
            "full_at": disk["full_at"],
            "file_count": row["files"] if row else 0,
            "registered_bytes": row["bytes"] if row else 0,
            "problem_copies": row["problems"] if row else 0,
            "mounted": False,
            "total_bytes": None,
            "available_bytes": None,
        }
        mount_point = disk["mount_point"]
        if mount_point and is_mount(mount_point) and (label_of is None or label_of(mount_point) == disk["label"]):
            try:
                st = statvfs(mount_point)
                entry.update(mounted=True, total_bytes=st.f_blocks * st.f_frsize, available_bytes=st.f_bavail * st.f_frsize)
            except OSError:
                pass
        out.append(entry)
    return out
