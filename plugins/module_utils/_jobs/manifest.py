# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The old_files manifest: one JSON object per line, one file per run.

Each record is written with one ``write(2)`` to a file opened ``O_APPEND``
before the run goes on, so a crash of the process leaves a valid file that
ends with the last action (at most a cut last line, which
:func:`read_manifest` skips and reports). The file is fsynced at least every
``SYNC_SECONDS`` and at the end, so a power loss loses at most that much of
the record, never the file's validity. Paths are
stored as ``os.fsdecode`` strings: JSON escapes the surrogates of non-UTF-8
bytes (``\\udcff``) and ``os.fsencode`` turns them back into the same bytes.
No AnsibleModule.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import time

_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
SYNC_SECONDS = 1.0


class ManifestError(Exception):
    """The manifest cannot be written or read; the message names the file."""


def utc_now(clock=None):
    """ISO 8601 UTC time stamp (seconds) of ``clock()`` or now."""
    when = clock() if clock is not None else datetime.datetime.now(datetime.timezone.utc).timestamp()
    return datetime.datetime.fromtimestamp(when, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_quote = json.encoder.encode_basestring_ascii  # the C encoder json.dumps uses for str
quote = _quote


def _value(value):
    if isinstance(value, str):
        return _quote(value)
    if value is None or isinstance(value, bool):
        return "null" if value is None else ("true" if value else "false")
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, separators=(",", ":"))


def encode(record):
    """The members of ``record`` as JSON text (``"key":value,...``), for
    :meth:`Manifest.append_encoded`."""
    return ",".join(["%s:%s" % (_quote(key), _value(value)) for key, value in record.items()])


def to_line(record, stamp):
    """One JSON object (``record`` plus ``time``), ASCII, with its newline;
    the same text json.dumps makes, at a fraction of its cost per call."""
    items = ["%s:%s" % (_quote(key), _value(value)) for key, value in record.items()]
    items.append('"time":%s' % _quote(stamp))
    return "{" + ",".join(items) + "}\n"


class Manifest:
    """Appends records to ``<directory>/old_files-<host>-<time>-<pid>.jsonl``;
    the file is created on the first record only (a run that acts on nothing
    leaves no file)."""

    def __init__(self, directory, host, state, clock=None):
        self.directory = directory
        stamp = utc_now(clock).replace("-", "").replace(":", "")
        self.path = os.path.join(directory, "old_files-%s-%s-%s-%d.jsonl" % (_SAFE.sub("_", host), state, stamp, os.getpid()))
        self.clock = clock
        self.records = 0
        self._fd = None
        self._sync_due = 0.0  # the first record is synced with the directory entry
        self._dir_synced = False
        self._stamp_second, self._stamp_text = None, None

    def _open(self):
        """Create the file; a name taken already (a run of the same process
        in the same second) gets a ``.N`` suffix."""
        base, number = self.path[: -len(".jsonl")], 1
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            while self._fd is None:
                try:
                    self._fd = os.open(self.path, _FLAGS, 0o600)
                except FileExistsError:
                    number += 1
                    if number > 100:
                        raise
                    self.path = "%s.%d.jsonl" % (base, number)
        except OSError as exc:
            raise ManifestError("manifest_dir: cannot create the manifest %s: %s" % (self.path, exc.strerror or exc))

    def append(self, record):
        """Write one record durably (``time`` is added)."""
        if self._fd is None:
            self._open()
        data = to_line(record, self._stamp()).encode("ascii")
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(0, "short write (%d of %d bytes)" % (written, len(data)))
            if time.monotonic() >= self._sync_due:
                self.sync()
        except OSError as exc:
            raise ManifestError("cannot write the manifest %s: %s" % (self.path, exc.strerror or exc))
        self.records += 1

    def append_encoded(self, bodies):
        """Write many records with one ``write(2)``: ``bodies`` are their JSON
        members already encoded (``"key":value,...``, see :func:`encode`);
        ``time`` is added. A crash leaves either none or all of them (or a cut
        last line, which :func:`read_manifest` skips)."""
        if not bodies:
            return
        if self._fd is None:
            self._open()
        tail = ',"time":%s}\n' % _quote(self._stamp())
        data = ("{" + (tail + "{").join(bodies) + tail).encode("ascii")
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            if time.monotonic() >= self._sync_due:
                self.sync()
        except OSError as exc:
            raise ManifestError("cannot write the manifest %s: %s" % (self.path, exc.strerror or exc))
        self.records += len(bodies)

    def open(self):
        """Create the file now (before workers are forked, so that they all
        append to the one file); :meth:`remove_if_empty` undoes it."""
        if self._fd is None:
            self._open()

    def remove_if_empty(self):
        """Remove the file made by :meth:`open` when no record was written."""
        if self._fd is not None and self.records == 0 and os.fstat(self._fd).st_size == 0:
            os.close(self._fd)
            self._fd = None
            os.unlink(self.path)

    def _stamp(self):
        """utc_now(), formatted once per second."""
        second = int(self.clock() if self.clock is not None else time.time())
        if second != self._stamp_second:
            self._stamp_second, self._stamp_text = second, utc_now(lambda: second)
        return self._stamp_text

    def sync(self):
        """fsync the file (and, the first time, its directory)."""
        os.fsync(self._fd)
        if not self._dir_synced:
            dfd = os.open(self.directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
            self._dir_synced = True
        self._sync_due = time.monotonic() + SYNC_SECONDS

    def close(self):
        if self._fd is not None:
            try:
                self.sync()
            except OSError as exc:
                raise ManifestError("cannot write the manifest %s: %s" % (self.path, exc.strerror or exc))
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def read_manifest(path):
    """``(records, problems)``: every complete record of the file in order,
    and a line per line that could not be read (a cut last line after a crash)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise ManifestError("manifest: cannot read %s: %s" % (path, exc.strerror or exc))
    records, problems = [], []
    for number, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("ascii"))
            if not isinstance(record, dict) or "action" not in record:
                raise ValueError("not a manifest record")
        except ValueError as exc:
            problems.append("%s line %d skipped: %s" % (path, number, exc))
            continue
        records.append(record)
    return records, problems
