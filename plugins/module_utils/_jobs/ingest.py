# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Verified ingest (buffer_copy): buffer -> primary and backup disk series.

Files are copied in batches (bounded by count, bytes and time) with
:class:`_copy.batch.Batch`: temporaries journalled in one transaction,
written, flushed once per disk, re-read from disk in parallel, renamed; then
every target disk is checked to still be the mounted disk it was, the
batch's files and copies are registered in one committed transaction, and
only then (``remove_source``) are the buffer files removed, each re-checked
first. A disk that fails (I/O error, read-only, gone) leaves the run and the
next disk of its series takes over; the file is retried there. Two batches
are alive at once: while one batch's copies are re-read from disk (threads),
the next batch is read and written (:meth:`_Ingest.copy_all`). No AnsibleModule.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import stat
import time

from ansible_collections.datasteward.storage.plugins.module_utils._copy import batch as batching
from ansible_collections.datasteward.storage.plugins.module_utils._copy import engine as copier
from ansible_collections.datasteward.storage.plugins.module_utils._disks.diskmap import DiskMapError, load_disk_map
from ansible_collections.datasteward.storage.plugins.module_utils._disks.labels import DiskLabelError, disk_label_or_none
from ansible_collections.datasteward.storage.plugins.module_utils._fs import walk as walker
from ansible_collections.datasteward.storage.plugins.module_utils._fs.match import Match, MatchError
from ansible_collections.datasteward.storage.plugins.module_utils._jobs.ingest_disks import (  # noqa: F401 (IngestError re-exported)
    SLACK_BYTES,
    Disks,
    DiskSet,
    IngestError,
    NoDiskLeft,
)
from ansible_collections.datasteward.storage.plugins.module_utils._jobs.sweep import sweep_pending
from ansible_collections.datasteward.storage.plugins.module_utils._registry.db import SIDE_FILES, Journal, Registry, RegistryError
from ansible_collections.datasteward.storage.plugins.module_utils._registry.lock import Lock

REPORT_LIMIT = 1000
# Open directories a batch may hold (source and target directories).
MAX_BATCH_DIRS = 256
COUNT_KEYS = ("copied", "skipped", "conflicts", "failed", "removed", "deferred", "unsettled")


@dataclasses.dataclass
class IngestOptions:
    """The options of one run (buffer_copy's argspec, plus internals)."""

    src: str
    primary: list
    backup: list
    registry: str
    patterns: list = dataclasses.field(default_factory=list)
    excludes: list = dataclasses.field(default_factory=list)
    checksum_algorithm: str = "sha512"
    remove_source: bool = False
    settle_seconds: int = 60
    min_free_bytes: int = 0
    require_mount: bool = True
    max_files: int = None
    max_bytes: int = None
    disk_map: object = None
    batch_files: int = 1000
    batch_bytes: int = 256 * 1024 * 1024
    batch_seconds: float = 30
    check_mode: bool = False
    report_limit: int = REPORT_LIMIT

    def __post_init__(self):
        self.patterns = list(self.patterns or [])
        self.excludes = list(self.excludes or [])
        self.min_free_bytes = self.min_free_bytes or 0

    def validate(self):
        """Option checks that need no file system; messages name the option."""
        for name in ("src", "registry"):
            if getattr(self, name) in (None, ""):
                raise IngestError("%s must be a path, got %r" % (name, getattr(self, name)))
        for name in ("primary", "backup"):
            value = getattr(self, name)
            if not value:
                raise IngestError("%s needs at least one disk mount point" % name)
            for index, item in enumerate(value):
                if item in (None, "") or not isinstance(item, str):
                    raise IngestError("%s[%d] must be a mount point path, got %r" % (name, index, item))
        both = set(self.primary) & set(self.backup)
        if both:
            raise IngestError("%s listed in both primary and backup; a backup must be another disk" % ", ".join(sorted(both)))
        if self.checksum_algorithm not in copier.available_algorithms():
            raise IngestError(
                "checksum_algorithm %s is not available on this host (available: %s)" % (self.checksum_algorithm, ", ".join(copier.available_algorithms()))
            )
        for name in ("max_files", "max_bytes", "min_free_bytes", "settle_seconds"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise IngestError("%s must not be negative, got %s" % (name, value))
        for name in ("batch_files", "batch_bytes"):
            if getattr(self, name) < 1:
                raise IngestError("%s must be at least 1, got %s" % (name, getattr(self, name)))
        if not self.batch_seconds > 0:
            raise IngestError("batch_seconds must be a positive number, got %s" % self.batch_seconds)


def scan_buffer(src, match, errors):
    """Regular files under ``src`` selected by ``match`` (the collection's
    one rule, :mod:`_fs.match`), as sorted ``(relpath bytes, lstat)`` pairs,
    through the one walker (:mod:`_fs.walk`): never a symlink followed, never
    another file system entered. What is skipped goes to ``errors`` as
    ``{"path", "msg"}``: walk issues, symlinks, special files, and files named
    like the copy engine's temporaries."""
    base = copier.fsbytes(src)
    found = []

    def skip(relpath, msg):
        where = walker.display(os.path.join(base, relpath))
        errors.append({"path": where, "msg": "%s %s" % (where, msg)})

    def on_error(issue):
        if issue.kind != walker.NON_UTF8:
            skip(issue.relpath, issue.message)

    with walker.walk_dirs(src, match=match, on_error=on_error) as dirs:
        for directory in dirs:
            for name, st in directory.entries:
                relpath = directory.relpath + b"/" + name if directory.relpath else name
                if stat.S_ISREG(st.st_mode):
                    if not match.selected(relpath):
                        continue
                    if copier.is_temp_name(name):
                        skip(
                            relpath,
                            "skipped: names starting with %s are reserved for the copy engine's temporaries; rename it to have it copied" % copier.TEMP_PREFIX,
                        )
                        continue
                    found.append((relpath, st))
                elif stat.S_ISLNK(st.st_mode):
                    skip(relpath, "is a symlink; not followed")
                elif not stat.S_ISDIR(st.st_mode):
                    skip(relpath, "is not a regular file (a FIFO, socket or device); skipped")
    found.sort(key=lambda item: item[0])
    return found


def _inside(path, root):
    """Whether real path ``path`` is ``root`` or below it."""
    return path == root or path.startswith(root.rstrip("/") + "/")


class IngestRun:
    """State and result of one buffer_copy run: ``IngestRun(options,
    is_mount=..., statvfs=..., clock=...)`` (the collaborators are injected
    for tests)."""

    def __init__(self, options, is_mount=os.path.ismount, statvfs=os.statvfs, clock=time.time):
        self.opts = options
        self.is_mount = is_mount
        self.statvfs = statvfs
        self.clock = clock
        self.changed = False
        self.planned = {}
        self.disks_full = []
        self.warnings = []
        self.errors = []
        self.files = []
        self.truncated = False
        self.counts = {key: 0 for key in COUNT_KEYS}
        self.bytes = {key: 0 for key in COUNT_KEYS if key != "unsettled"}
        self.copy_seconds = 0.0
        self.stale = 0
        self.registry_created = False
        self.newest_age = None
        self.registry = None
        self.disks = Disks(self)
        self.sets = []

    # -- validation -------------------------------------------------------
    def validate(self):
        opts = self.opts
        opts.validate()
        if not os.path.isdir(opts.src):
            raise IngestError("src %s does not exist or is not a directory" % opts.src, opts.src)
        src_real = os.path.realpath(opts.src)
        disks = [(mp, os.path.realpath(mp)) for mp in opts.primary + opts.backup]
        for mount_point, real in disks:
            if _inside(real, src_real) or _inside(src_real, real):
                raise IngestError("disk %s and src %s overlap; targets must be outside the buffer and vice versa" % (mount_point, opts.src), mount_point)
            for other, other_real in disks:
                if other != mount_point and other_real != real and _inside(real, other_real):
                    raise IngestError("disk %s is inside disk %s; every disk of primary and backup must be its own tree" % (mount_point, other), mount_point)
        self._validate_registry_place(src_real, disks)
        self.disks.validate_labels(opts.primary + opts.backup, lambda mp: "primary" if mp in opts.primary else "backup")

    def _validate_registry_place(self, src_real, disks):
        """The registry, its -wal/-shm/-journal files and its lock (the file
        itself) must be outside src (they would be copied and removed) and
        outside every disk (they would be shelved with it)."""
        registry = self.opts.registry
        real = os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(registry))), os.path.basename(registry))
        for suffix in SIDE_FILES:
            if _inside(real + suffix, src_real):
                raise IngestError(
                    "registry %s is inside src %s: the run would copy it and remove it from the buffer; keep the registry "
                    "outside the buffer" % (registry, self.opts.src),
                    registry,
                )
            for mount_point, disk_real in disks:
                if _inside(real + suffix, disk_real):
                    raise IngestError(
                        "registry %s is on disk %s: keep the registry off the disk series (it would leave with the disk)" % (registry, mount_point), registry
                    )

    # -- stale temporaries -------------------------------------------------------
    def clean_pending(self, final=False):
        """Sweep the journal before the copies and, outside check mode, again
        after them. Warnings come from the last sweep only."""
        if final and self.opts.check_mode:
            return
        removed, done = sweep_pending(
            self.registry, self.opts.require_mount, self.is_mount, self.opts.check_mode, self.warnings if final or self.opts.check_mode else None
        )
        self.stale += removed
        if removed or done:
            self.changed = True

    # -- reporting ------------------------------------------------------------
    def outcome(self, relpath, status, size, msg=None, copies=None, removed=False):
        key = {"conflict": "conflicts"}.get(status, status)
        self.counts[key] += 1
        if key in self.bytes:
            self.bytes[key] += size
        if msg and status in ("conflict", "failed"):
            self.warnings.append(msg)
        if len(self.files) >= self.opts.report_limit:
            self.truncated = True
            return
        entry = {"path": copier.display(relpath), "status": status, "size_bytes": size, "removed": removed, "copies": copies or []}
        if msg:
            entry["msg"] = msg
        self.files.append(entry)

    def count_removed(self, size):
        self.counts["removed"] += 1
        self.bytes["removed"] += size

    def result(self):
        res = {"changed": self.changed}
        for key in COUNT_KEYS:
            name = "conflict" if key == "conflicts" else key
            res["%s_files" % name] = self.counts[key]
            if key in self.bytes:
                res["%s_bytes" % name] = self.bytes[key]
        res.update(
            {
                "throughput_mbps": round(self.bytes["copied"] / self.copy_seconds / 1e6, 1) if self.copy_seconds > 0 else 0.0,
                "copy_seconds": round(self.copy_seconds, 3),
                "disks_used": self.disks.used,
                "disks_full": self.disks_full,
                "disks_unusable": self.disks.unusable_list,
                "files": self.files,
                "files_truncated": self.truncated,
                "newest_file_age_seconds": self.newest_age,
                "stale_temporaries_removed": self.stale,
                "registry_created": self.registry_created,
                "scan_errors": self.errors,
                "checksum_algorithm": self.opts.checksum_algorithm,
            }
        )
        return res

    # -- the run ----------------------------------------------------------------
    def execute(self):
        self.validate()
        entries = self._disk_map()
        try:
            self.registry = Registry(self.opts.registry, readonly=self.opts.check_mode)
        except RegistryError as exc:
            raise IngestError(str(exc), self.opts.registry)
        self.registry_created = not self.registry.exists
        if self.registry.created or self.registry.migrated_from or self.registry_created:
            self.changed = True
        lock = None
        try:
            if not self.opts.check_mode:
                lock = Lock(self.opts.registry).acquire()
            if entries and self.registry.seed_disks(entries):
                self.changed = True
            self.clean_pending()
            self._copy_all()
            self.clean_pending(final=True)
        except (RegistryError, copier.CopyError, DiskLabelError) as exc:
            raise IngestError(str(exc), getattr(exc, "path", None), result=self.result())
        except IngestError as exc:
            exc.result = self.result()
            raise
        except OSError as exc:  # nothing above should let one through; never a traceback
            where = exc.filename or self.opts.src
            raise IngestError("%s: %s" % (copier.display(where), exc.strerror or exc), where, result=self.result())
        finally:
            if lock is not None:
                lock.release()
            self.registry.close()
        return self.result()

    def _disk_map(self):
        if not self.opts.disk_map:
            return None
        try:
            return load_disk_map(self.opts.disk_map)
        except DiskMapError as exc:
            raise IngestError("disk_map: %s" % exc)

    def _scan(self):
        try:
            found = scan_buffer(self.opts.src, Match(self.opts.patterns, self.opts.excludes), self.errors)
        except MatchError as exc:
            raise IngestError(str(exc))
        except walker.WalkError as exc:
            raise IngestError("src: %s" % exc, self.opts.src)
        for item in self.errors:
            self.warnings.append(item["msg"])
        if found:
            newest = max(max(st.st_mtime, st.st_ctime) for dummy, st in found)
            self.newest_age = max(0, int(self.clock() - newest))
        return found

    def _copy_all(self):
        found = self._scan()
        now = self.clock()
        self.sets = [DiskSet("primary", self.opts.primary, self), DiskSet("backup", self.opts.backup, self)]
        for disk_set in self.sets:
            disk_set.precheck()
        todo = collections.deque()
        for relpath, st in found:
            if max(st.st_mtime, st.st_ctime) > now - self.opts.settle_seconds:
                self.counts["unsettled"] += 1
                continue
            reg = self.registry.file(relpath)
            if reg is not None:
                _Registered(self).handle(relpath, st, reg)
            else:
                todo.append((relpath, st, 0))
        if self.opts.check_mode:
            _Planner(self).plan_all(todo)
        else:
            _Ingest(self).copy_all(todo)

    def set_of(self, role):
        return self.sets[0] if role == "primary" else self.sets[1]

    def choose_disks(self, relpath, size):
        """The current disk of each series for a file; IngestError when a
        series has none left."""
        try:
            return [disk_set.choose(size) for disk_set in self.sets]
        except NoDiskLeft as exc:
            where = copier.display(os.path.join(copier.fsbytes(self.opts.src), relpath))
            raise IngestError("%s; run stopped here, that file was not touched (add or mount the next disk)" % exc.describe(where), where)

    def copies_of(self, relpath, disks):
        return [{"role": d["role"], "label": d["label"], "path": copier.display(os.path.join(copier.fsbytes(d["mount_point"]), relpath))} for d in disks]

    def over_limits(self, files, size_bytes, size):
        opts = self.opts
        return (opts.max_files is not None and files >= opts.max_files) or (opts.max_bytes is not None and size_bytes + size > opts.max_bytes)


class _Registered:
    """A buffer file already in the registry: skip it, or (remove_source)
    remove it once every registered copy verifies again from its disk."""

    def __init__(self, run):
        self.run = run

    def handle(self, relpath, st, reg):
        run = self.run
        path = copier.display(os.path.join(copier.fsbytes(run.opts.src), relpath))
        if reg["size"] != st.st_size:
            run.outcome(
                relpath,
                "conflict",
                st.st_size,
                "%s differs from the registered file of that path (size %d, registered %d); kept" % (path, st.st_size, reg["size"]),
            )
            return
        if not run.opts.remove_source and st.st_mtime == reg["mtime"]:
            run.outcome(relpath, "skipped", st.st_size)
            return
        if run.opts.remove_source and self._audit_says_bad(path, reg, relpath, st):
            return
        try:
            digest, dummy, seen = copier.hash_file(run.opts.src, relpath, reg["algorithm"], from_disk=False)
        except copier.CopyError as exc:
            run.outcome(relpath, "failed", st.st_size, str(exc))
            return
        if digest != reg["digest"]:
            run.outcome(relpath, "conflict", st.st_size, "%s differs from the registered file of that path (%s digest); kept" % (path, reg["algorithm"]))
            return
        removed, msg = False, None
        if run.opts.remove_source:
            removed, msg = self._remove_verified(path, relpath, seen, reg)
        if removed:
            run.count_removed(st.st_size)
        run.outcome(relpath, "skipped", st.st_size, msg, removed=removed)

    def _audit_says_bad(self, path, reg, relpath, st):
        bad = [c for c in self.run.registry.copies_of(reg["id"]) if c["status"] not in ("ok", "repaired")]
        if not bad:
            return False
        msg = "%s kept in the buffer: its registered copy on %s is %s (last audit); repair it with registry_audit first" % (
            path,
            bad[0]["label"],
            bad[0]["status"],
        )
        self.run.warnings.append(msg)
        self.run.outcome(relpath, "skipped", st.st_size, msg)
        return True

    def _remove_verified(self, path, relpath, seen, reg):
        run = self.run
        msg = self._unverified_copy(path, reg)
        if msg:
            run.warnings.append(msg)
            return False, msg
        run.changed = True
        if run.opts.check_mode:
            return True, None
        try:
            copier.remove_file(run.opts.src, relpath, seen)
        except copier.CopyError as exc:
            run.warnings.append(str(exc))
            return False, str(exc)
        run.registry.mark_source_removed(reg["id"])
        return True, None

    def _unverified_copy(self, path, reg):
        """Verify every registered copy from its disk; None when all match,
        else why the buffer file must be kept."""
        run = self.run
        for copy in run.registry.copies_of(reg["id"]):
            mount_point = copy["mount_point"]
            if not run.disks.present(mount_point) or disk_label_or_none(mount_point) != copy["label"]:
                return "%s kept in the buffer: its copy on %s cannot be verified now (disk not at %s)" % (path, copy["label"], mount_point)
            status, detail = copier.check_copy(mount_point, copy["path"], reg["algorithm"], reg["digest"])
            if not run.opts.check_mode:
                run.registry.record_check(copy["id"], status, detail, verified=status == "ok")
            if status != "ok":
                return "%s kept in the buffer: its copy on %s is %s (%s)" % (path, copy["label"], status, detail)
        return None


class _Planner:
    """Check mode: what the real run would do, file by file, reads only."""

    def __init__(self, run):
        self.run = run

    def plan_all(self, todo):
        run = self.run
        files = size_bytes = 0
        for relpath, st, dummy in todo:
            if run.over_limits(files, size_bytes, st.st_size):
                run.outcome(relpath, "deferred", st.st_size, "left for the next run (max_files/max_bytes)")
                continue
            if self.plan(relpath, st.st_size):
                files += 1
                size_bytes += st.st_size

    def plan(self, relpath, size):
        run = self.run
        disks = run.choose_disks(relpath, size)
        copies = run.copies_of(relpath, disks)
        problem = self._predict_targets(relpath, disks, copies)
        if problem is not None:
            run.outcome(relpath, problem[0], size, problem[1], copies=copies)
            return False
        for disk in disks:
            run.planned[disk["mount_point"]] = run.planned.get(disk["mount_point"], 0) + size + SLACK_BYTES
        run.changed = True
        run.outcome(relpath, "copied", size, copies=copies, removed=run.opts.remove_source)
        if run.opts.remove_source:
            run.count_removed(size)
        return True

    def _predict_targets(self, relpath, disks, copies):
        """What the real run would find at the final names: the same content
        is reused, other content is a conflict. ``(status, msg)`` or None."""
        run = self.run
        src_digest = None
        for disk, copy in zip(disks, copies):
            path = copy["path"]
            try:
                existing = copier.regular_file_stat(disk["mount_point"], relpath)
                if existing is None:
                    copy["reused"] = False
                    if os.path.lexists(os.path.join(copier.fsbytes(disk["mount_point"]), relpath)):
                        return "conflict", "%s exists and is not a regular file; buffer file kept" % path
                    continue
                if src_digest is None:
                    src_digest = copier.hash_file(run.opts.src, relpath, run.opts.checksum_algorithm, from_disk=False)[0]
                got = copier.hash_file(disk["mount_point"], relpath, run.opts.checksum_algorithm, from_disk=False)[0]
            except copier.CopyError as exc:
                return "failed", str(exc)
            if got != src_digest:
                return "conflict", "%s already exists with other content (%s %s, source %s); buffer file kept" % (
                    path,
                    run.opts.checksum_algorithm,
                    got,
                    src_digest,
                )
            copy["reused"] = True
        return None


class _Stage:
    """A batch between its copy and its completion: its journal, its
    re-reads under way, and the IngestError to raise once it is done."""

    def __init__(self, batch, journal, stop):
        self.batch = batch
        self.journal = journal
        self.stop = stop
        self.verification = None


class _Ingest:
    """The real run: batches of files through :class:`_copy.batch.Batch`."""

    def __init__(self, run):
        self.run = run
        self.files = 0
        self.size_bytes = 0
        self.attempts = len(run.opts.primary) + len(run.opts.backup) + 1

    def copy_all(self, todo):
        """A two-stage pipeline: while the copies of one batch are re-read
        from disk (forked processes, one per disk), the next batch is read and written;
        then the first is completed, the second flushed and its re-reads
        started, and so on."""
        started = time.time()
        pending = None
        try:
            while todo or pending is not None:
                stage = self._start(todo, waiting=pending is not None)
                if pending is not None:
                    done, pending = pending, None
                    self._complete(done, todo, stage)
                if stage is not None:
                    pending = stage
                    self._verify(stage)
        finally:
            if pending is not None:
                pending.batch.close()
            self.run.copy_seconds += time.time() - started
            self.run.planned = {}

    def _start(self, todo, waiting):
        """Plan the next batch and copy it (read each source once, write its
        temporaries, not flushed); None when nothing was planned. ``waiting``:
        a batch is being verified, whose files may yet come back."""
        run = self.run
        run.planned = {}  # the batch before is written: statvfs counts it
        journal = Journal(run.registry)
        batch = batching.Batch(run.opts.src, run.opts.checksum_algorithm, journal)
        try:
            stop = self._fill(batch, todo, waiting)
            if not batch.items:
                batch.close()
                if stop is not None:
                    raise stop
                return None
            batch.journal_all()
            deadline = time.monotonic() + run.opts.batch_seconds
            for index, item in enumerate(batch.items):
                if time.monotonic() > deadline:  # the rest waits for the next batch
                    self._put_back(batch.items[index:], todo, journal)
                    del batch.items[index:]
                    break
                batch.copy(item)
        except BaseException:
            batch.close()
            raise
        return _Stage(batch, journal, stop)

    def _fill(self, batch, todo, waiting=False):
        """Plan files into ``batch`` up to its bounds; an IngestError (no disk
        left) is returned to be raised once the batch is done. While another
        batch is ``waiting`` to complete, what depends on its outcome (a
        limit reached, no disk left) ends the batch and is decided after it."""
        run, opts = self.run, self.run.opts
        planned_bytes = 0
        dirs = set()  # each directory holds three descriptors in a batch (source and two targets); two batches are open at once
        while todo and len(batch.items) < opts.batch_files and planned_bytes < opts.batch_bytes and len(dirs) * 3 < MAX_BATCH_DIRS // 2:
            relpath, st, attempt = todo[0]
            dirs.add(os.path.dirname(relpath))
            if run.over_limits(self.files, self.size_bytes, st.st_size):
                if waiting:
                    break
                todo.popleft()
                run.outcome(relpath, "deferred", st.st_size, "left for the next run (max_files/max_bytes)")
                continue
            if batch.items and planned_bytes + st.st_size > opts.batch_bytes:
                break
            try:
                disks = run.choose_disks(relpath, st.st_size)
            except IngestError as exc:
                return None if waiting else exc
            todo.popleft()
            for disk in disks:
                run.planned[disk["mount_point"]] = run.planned.get(disk["mount_point"], 0) + st.st_size + SLACK_BYTES
            batch.plan(relpath, [(d["mount_point"], relpath) for d in disks], st, data=(disks, attempt))
            planned_bytes += st.st_size
            self.files += 1
            self.size_bytes += st.st_size
        return None

    def _verify(self, stage):
        """Flush the batch and start re-reading its copies in the background.
        Its files written to a disk that left the run meanwhile (the batch
        before found it failing) are not verified: they go back to be copied
        to the next disk."""
        run = self.run
        for item in stage.batch.items:
            for index, disk in enumerate(item.data[0] if item.ok else ()):
                why = run.disks.unusable.get(disk["mount_point"])
                if why:
                    exc = copier.TargetFailed(
                        "%s disk %s (%s) left the run while this file was written to it: %s" % (disk["role"], disk["mount_point"], disk["label"], why),
                        disk["mount_point"],
                        index,
                    )
                    stage.batch.drop(item, exc)
                    break
        stage.verification = stage.batch.start_verify(background=True)

    def _complete(self, stage, todo, following=None):
        """Wait for the batch's re-reads, rename, check its disks are still
        there, settle failures, register it in one transaction, then remove
        its sources; outcomes in file order. ``following``: the next batch,
        already written (a failing disk found here leaves it too)."""
        run, batch = self.run, stage.batch
        try:
            batch.complete(stage.verification)
            good = self._still_there(batch.items)
            self._settle_failures(batch.items, todo, stage.journal)
            ids = self._register(good, stage.journal)
            self._remove_sources(good, ids, batch)
            for item in batch.items:  # in file order
                if item.report is not None:
                    run.outcome(item.src_relpath, *item.report)
        except BaseException:
            if following is not None:
                following.batch.close()
            raise
        finally:
            batch.close()
        if stage.stop is not None:
            if following is not None:
                following.batch.close()
            raise stage.stop

    def _put_back(self, items, todo, journal):
        for item in reversed(items):
            todo.appendleft((item.src_relpath, item.expect_stat, item.data[1]))
            self.files -= 1
            self.size_bytes -= item.expect_stat.st_size
        journal.forget([entry for item in items for entry in item.entries])

    def _still_there(self, items):
        """Items whose every target disk is still the mounted disk it was;
        a disk that is not is left out of the run, its items are retried."""
        run = self.run
        gone = {}
        for item in items:
            if not item.ok:
                continue
            for disk in item.data[0]:
                if disk["mount_point"] not in gone:
                    gone[disk["mount_point"]] = run.disks.gone(disk)
                why = gone[disk["mount_point"]]
                if why:
                    item.error = item.error or copier.TargetFailed(
                        "%s disk %s (%s) changed during the copy: %s; that copy is not registered, "
                        "the buffer file is kept" % (disk["role"], disk["mount_point"], disk["label"], why),
                        disk["mount_point"],
                        item.data[0].index(disk),
                    )
        return [item for item in items if item.ok]

    def _settle_failures(self, items, todo, journal):
        """Report failed items; a disk failure takes the disk out and the
        file goes back to the queue for the next disk of the series."""
        run = self.run
        retry = []
        for item in items:
            if item.ok:
                continue
            exc = item.error
            if not item.renamed:
                journal.forget(item.entries)
            disks, attempt = item.data
            size = item.expect_stat.st_size
            self.files -= 1
            self.size_bytes -= size
            if isinstance(exc, (copier.TargetFull, copier.TargetFailed)) and exc.index is not None and self._left(disks[exc.index]):
                retry.append((item.src_relpath, item.expect_stat, attempt))  # the disk had left the run: not this file's attempt
                continue
            if isinstance(exc, (copier.TargetFull, copier.TargetFailed)) and exc.index is not None and attempt + 1 < self.attempts:
                self._disk_failed(disks[exc.index], exc, item.src_relpath)
                retry.append((item.src_relpath, item.expect_stat, attempt + 1))
                continue
            copies = run.copies_of(item.src_relpath, disks)
            if isinstance(exc, (copier.SourceChanged, copier.SourceVanished)):
                item.report = ("unsettled", size, "%s; left for the next run" % exc)
            elif isinstance(exc, copier.TargetConflict):
                item.report = ("conflict", size, "%s; buffer file kept" % exc, copies)
            elif isinstance(exc, (copier.TargetFull, copier.TargetFailed)):
                item.report = (
                    "failed",
                    size,
                    "%s: gave up after %d disks failed or filled up (%s)"
                    % (copier.display(os.path.join(copier.fsbytes(run.opts.src), item.src_relpath)), attempt + 1, exc),
                )
            else:
                item.report = ("failed", size, str(exc), copies)
        todo.extendleft(reversed(retry))

    def _left(self, disk):
        """Whether ``disk`` is out of the run already (failed or full)."""
        return disk["mount_point"] in self.run.disks.unusable or disk["mount_point"] in self.run.set_of(disk["role"]).full

    def _disk_failed(self, disk, exc, relpath):
        disk_set = self.run.set_of(disk["role"])
        if disk["mount_point"] in disk_set.full or disk["mount_point"] in self.run.disks.unusable:
            return
        if isinstance(exc, copier.TargetFull):
            disk_set.mark_full(disk["mount_point"], disk["label"], None, "filled up while copying %s (%s)" % (copier.display(relpath), exc))
        else:
            disk_set.leave(disk["mount_point"], disk["label"], str(exc))

    def _register(self, items, journal):
        """One transaction for the batch: files, copies, journal rows."""
        run = self.run
        if not items:
            journal.flush_forgotten()
            return []
        rows = []
        for item in items:
            result = item.result()
            copies = [
                {"disk_id": d["id"], "role": d["role"], "path": item.src_relpath, "verified_at": c["verified_at"]} for d, c in zip(item.data[0], result.copies)
            ]
            rows.append((item.src_relpath, result.size, result.source_stat.st_mtime, run.opts.checksum_algorithm, result.digest, copies))
        ids = run.registry.register_all(rows, journal.take_for([entry for item in items for entry in item.entries]))
        run.changed = True
        return ids

    def _remove_sources(self, items, ids, batch):
        """After the commit: re-check the disks, then remove each source
        (re-checked too) and fsync each buffer directory once."""
        run = self.run
        removed = []
        for item, file_id in zip(items, ids):
            size = item.copy.size
            copies = run.copies_of(item.src_relpath, item.data[0])
            for copy, done in zip(copies, item.result().copies):
                copy["reused"] = done["reused"]
            ok, msg = False, None
            if run.opts.remove_source:
                ok, msg = self._remove_one(item, batch)
                if ok:
                    removed.append(file_id)
                    run.count_removed(size)
            item.report = ("copied", size, msg, copies, ok)
        if removed:
            self._fsync_source_dirs(items, batch)
            run.registry.mark_sources_removed(removed)

    def _remove_one(self, item, batch):
        run = self.run
        for disk in item.data[0]:
            why = run.disks.gone(disk)
            if why:
                msg = "%s kept in the buffer: %s disk %s changed after the copy was registered: %s" % (
                    copier.display(item.copy.src_path),
                    disk["role"],
                    disk["label"],
                    why,
                )
                run.warnings.append(msg)
                return False, msg
        try:
            copier.remove_file(run.opts.src, item.src_relpath, item.copy.source_stat, dirs=batch.dirs, fsync=False)
        except copier.CopyError as exc:
            run.warnings.append(str(exc))
            return False, str(exc)
        return True, None

    def _fsync_source_dirs(self, items, batch):
        try:
            batch.sync_sources([item.src_relpath for item in items])
        except OSError as exc:  # the files are removed and registered; the buffer's flush failed
            self.run.warnings.append("cannot flush the buffer %s after removing files: %s" % (self.run.opts.src, exc.strerror or exc))


_OPTION_NAMES = frozenset(field.name for field in dataclasses.fields(IngestOptions))


def buffer_copy(**kwargs):
    """Run one ingest; returns ``(result, warnings)``. Raises IngestError.
    Keyword arguments: the :class:`IngestOptions` fields and the
    collaborators of :class:`IngestRun` (``is_mount``, ``statvfs``, ``clock``)."""
    options = IngestOptions(**{key: value for key, value in kwargs.items() if key in _OPTION_NAMES})
    run = IngestRun(options, **{key: value for key, value in kwargs.items() if key not in _OPTION_NAMES})
    result = run.execute()
    return result, run.warnings
