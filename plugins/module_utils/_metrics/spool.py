# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Push JSON documents to an HTTP endpoint through a private, bounded spool.

Every document is first written to the spool (a directory of mode 0700 owned
by the running user; files of mode 0600 written to a temporary name, fsynced,
renamed, directory fsynced), then the spool is sent oldest first. A file is
removed only after a 2xx answer; at the first failure (connection refused,
timeout, connection closed, any other status) sending stops and the rest
waits for the next run. Before sending, the spool is cut to its bounds: files
older than ``max_age_seconds``, then the oldest beyond ``max_files``, then the
oldest beyond ``max_bytes`` are dropped, each one reported with the bound that
dropped it.

The directory is opened with O_NOFOLLOW and every file operation is relative
to its descriptor, so neither the spool nor a file in it is ever reached
through a symlink. A run holds an exclusive flock on the directory. The HTTP
call is injected (``send(body) -> (status, error)``).
"""

from __future__ import annotations

import collections
import errno
import fcntl
import os
import re
import stat
import time

from ansible_collections.datasteward.storage.plugins.module_utils._metrics.snapshot import MetricsError

NAME = re.compile(r"^(\d{16})-([0-9a-f]{8})\.json$")
TEMP_PREFIX = ".tmp-"
DIR_MODE = 0o700
FILE_MODE = 0o600
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_AGE_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

Entry = collections.namedtuple("Entry", "name size timestamp_ms")
Limits = collections.namedtuple("Limits", "max_files max_bytes max_age_seconds")


def parse_age(text, option="max_age"):
    """Seconds of an age such as ``90``, ``30m``, ``12h``, ``7d`` or ``2w``."""
    match = _AGE.match(str(text))
    if match is None:
        raise MetricsError("%s must be a number of seconds with an optional unit s, m, h, d or w, got %r" % (option, text))
    return float(match.group(1)) * _AGE_UNITS[match.group(2)]


def check_limits(limits):
    for name in ("max_files", "max_bytes"):
        if getattr(limits, name) < 1:
            raise MetricsError("%s must be at least 1, got %s" % (name, getattr(limits, name)))
    if limits.max_age_seconds <= 0:
        raise MetricsError("max_age must be more than 0 seconds, got %s" % limits.max_age_seconds)


def apply_bounds(entries, limits, now_ms):
    """(kept, dropped) where dropped is [(entry, reason)], oldest dropped first."""
    kept, dropped = [], []
    for entry in entries:
        if now_ms - entry.timestamp_ms > limits.max_age_seconds * 1000:
            dropped.append((entry, "age"))
        else:
            kept.append(entry)
    while len(kept) > limits.max_files:
        dropped.append((kept.pop(0), "count"))
    while kept and sum(e.size for e in kept) > limits.max_bytes:
        dropped.append((kept.pop(0), "bytes"))
    return kept, dropped


class Spool:
    """The spool directory, opened (and created) without following symlinks."""

    def __init__(self, path, clock=time.time, token=None):
        self.path = path
        self.clock = clock
        self.token = token or (lambda: os.urandom(4).hex())
        self.fd = None
        self.created = False
        self.mode_fixed = False

    def open(self, create=True, lock_timeout=10.0):
        """Open (create when missing) and lock; False when missing and not ``create``."""
        if not os.path.lexists(self.path):
            self.created = True  # or would be, in check mode
            if not create:
                return False
            os.makedirs(self.path, mode=DIR_MODE)
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError as exc:
            if os.path.islink(self.path) or exc.errno == errno.ELOOP:
                reason = "is a symlink"
            else:
                reason = "is not a directory" if exc.errno == errno.ENOTDIR else "cannot be opened: %s" % exc.strerror
            raise MetricsError("spool_dir %s %s" % (self.path, reason))
        self._check_owner_and_mode(create)
        self._lock(lock_timeout)
        return True

    def _check_owner_and_mode(self, fix):
        st = os.fstat(self.fd)
        if st.st_uid != os.geteuid():
            raise MetricsError("spool_dir %s is owned by uid %d, not by the user running the module (uid %d)" % (self.path, st.st_uid, os.geteuid()))
        if stat.S_IMODE(st.st_mode) != DIR_MODE:
            self.mode_fixed = True
            if fix:
                os.fchmod(self.fd, DIR_MODE)

    def _lock(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() >= deadline:
                    raise MetricsError("spool_dir %s is locked by another run (waited %g s)" % (self.path, timeout))
                time.sleep(0.05)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _names(self):
        return sorted(os.listdir(self.fd)) if self.fd is not None else []

    def entries(self):
        """Spooled files, oldest first (names sort by time); other names are ignored."""
        result = []
        for name in self._names():
            match = NAME.match(name)
            if match is None:
                continue
            try:
                st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                result.append(Entry(name, st.st_size, int(match.group(1))))
        return result

    def stale_temporaries(self):
        return [name for name in self._names() if name.startswith(TEMP_PREFIX)]

    def remove(self, name):
        os.unlink(name, dir_fd=self.fd)
        os.fsync(self.fd)

    def new_name(self, now_ms=None):
        return "%016d-%s.json" % (int(self.clock() * 1000) if now_ms is None else now_ms, self.token())

    def add(self, body, name):
        """Store ``body`` as ``name``: temporary file, fsync, rename, fsync the directory."""
        tmp = TEMP_PREFIX + name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE, dir_fd=self.fd)
        try:
            os.fchmod(fd, FILE_MODE)
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp, dir_fd=self.fd)
            raise
        os.close(fd)
        os.rename(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        os.fsync(self.fd)
        return Entry(name, len(body), int(NAME.match(name).group(1)))

    def read(self, name):
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=self.fd)
        with os.fdopen(fd, "rb") as handle:
            return handle.read()


def _result(spool):
    return {
        "spool_created": spool.created,
        "spool_mode_fixed": spool.mode_fixed,
        "payload_file": None,
        "stale_temporaries_removed": 0,
        "dropped": [],
        "sent": [],
        "pending": [],
        "pending_bytes": 0,
        "status_code": None,
        "error": None,
    }


def _send_all(spool, kept, send, result):
    """Send oldest first; remove each after a 2xx; stop at the first failure."""
    for position, entry in enumerate(kept):
        status, error = send(spool.read(entry.name))
        result["status_code"] = status
        if status is not None and 200 <= status < 300:
            spool.remove(entry.name)
            result["sent"].append(entry.name)
            continue
        result["error"] = error or "HTTP %s" % status
        return kept[position:]
    return []


def _dropped(dropped, now_ms):
    return [{"name": e.name, "reason": reason, "size_bytes": e.size, "age_seconds": round((now_ms - e.timestamp_ms) / 1000.0, 3)} for e, reason in dropped]


def push(spool, body, limits, send, check_mode=False, lock_timeout=10.0):
    """Spool ``body`` (bytes, or None to send only what waits), cut the spool to
    ``limits`` and send it. In check mode nothing is written or sent: the
    result is the plan (``sent`` lists what would be sent)."""
    check_limits(limits)
    now_ms = int(spool.clock() * 1000)
    with spool:
        spool.open(create=not check_mode, lock_timeout=lock_timeout)
        result = _result(spool)
        stale = spool.stale_temporaries()
        result["stale_temporaries_removed"] = len(stale)
        if not check_mode:
            for name in stale:
                os.unlink(name, dir_fd=spool.fd)
        entries = spool.entries()
        if body is not None:
            name = result["payload_file"] = spool.new_name(now_ms)
            entries.append(Entry(name, len(body), now_ms) if check_mode else spool.add(body, name))
        kept, dropped = apply_bounds(entries, limits, now_ms)
        result["dropped"] = _dropped(dropped, now_ms)
        if check_mode:
            result["sent"] = [e.name for e in kept]
            pending = []
        else:
            for entry, _reason in dropped:
                spool.remove(entry.name)
            pending = _send_all(spool, kept, send, result)
        result["pending"] = [e.name for e in pending]
        result["pending_bytes"] = sum(e.size for e in pending)
    result["changed"] = bool(
        result["spool_created"] or result["spool_mode_fixed"] or body is not None or result["dropped"] or result["sent"] or result["stale_temporaries_removed"]
    )
    return result
