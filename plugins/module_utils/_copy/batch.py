# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Group commit for many files: the copy engine's steps, a batch at a time.

A :class:`Batch` copies files as :func:`engine.copy_verified` does, but
runs each step once for the whole batch: the temporaries of every file are
journalled in one call, written (source read once per file), then flushed
with one ``syncfs(2)`` per target file system (``fsync`` of every file where
``syncfs`` is missing), then re-read from disk and verified (hashed again,
or with ``keep_data`` a small file compared byte for byte with the source's
bytes read once), then renamed, then each directory is fsynced once. The caller then commits every verified
file in one transaction and only after that removes sources.

:meth:`Batch.finish` runs the last steps in a row; a pipeline splits it:
:meth:`Batch.start_verify` flushes and starts the re-reads, the caller
reads and writes the next batch meanwhile, then :meth:`Batch.complete`
waits for them and renames. The re-reads of several disks, or of a batch
verified in the background, run in forked child processes, one per disk
(:mod:`_proc.forked`): they only read the copies and send back each one's
digest and error, so they run on the other CPUs whatever the file sizes
(threads would take turns at the interpreter lock over the many short
system calls of small files), and a child that dies fails its copies.

A final name still only ever holds a verified copy; a kill at any instant
leaves temporaries (journalled first, swept by the next run) or verified
final copies (reused by the next run). No AnsibleModule.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

from ansible_collections.datasteward.storage.plugins.module_utils._copy import engine
from ansible_collections.datasteward.storage.plugins.module_utils._proc import forked


def _load_syncfs():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        func = libc.syncfs
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int]
    func.restype = ctypes.c_int
    return func


_SYNCFS = _load_syncfs()


def syncfs(fd):
    """``syncfs(2)`` of the file system holding ``fd``; False when the C
    library has none (then the caller fsyncs every file). Raises OSError."""
    if _SYNCFS is None:
        return False
    if _SYNCFS(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return True


class Item:
    """One file of a batch: what the caller planned and what happened."""

    def __init__(self, src_relpath, targets, expect_stat=None, data=None):
        self.src_relpath = src_relpath
        self.targets = targets  # [(root, relpath), ...]
        self.expect_stat = expect_stat
        self.data = data  # the caller's
        self.tokens = None
        self.entries = []  # journal entries of its temporaries
        self.renamed = False  # a verified copy reached its final name
        self.copy = None
        self.error = None  # the CopyError that ended this file
        self.report = None  # the caller's outcome

    @property
    def ok(self):
        return self.error is None and self.copy is not None

    def result(self):
        return self.copy.result()


def check_pairs(pairs, algorithm):
    """Re-read the copies ``pairs`` (``[(item, target), ...]``, one disk)
    from disk: ``[(position, digest read back, CopyError or None), ...]``
    for those checked (an item already failed is not)."""
    out = []
    for position, (item, tgt) in enumerate(pairs):
        if item.error is not None:
            continue
        try:
            out.append((position, engine.verify_copy(tgt, algorithm, item.copy.digest, size=item.copy.size, data=item.copy.data), None))
        except engine.CopyError as exc:
            out.append((position, tgt.digest, exc))
    return out


class Check:
    """The re-reads of one disk's copies of a batch: done here, or under way
    in a forked child (which inherits the open directories and the bytes
    kept), or here after all when no process could be had."""

    def __init__(self, pairs, outcomes=None, child=None):
        self.pairs = pairs
        self.outcomes = outcomes
        self.child = child

    @classmethod
    def inline(cls, pairs, algorithm):
        return cls(pairs, outcomes=check_pairs(pairs, algorithm))

    @classmethod
    def forked(cls, pairs, algorithm):
        child = forked.start(functools.partial(check_pairs, pairs, algorithm))
        return cls.inline(pairs, algorithm) if child is None else cls(pairs, child=child)

    def apply(self):
        """Wait for the re-reads; set each target's digest read back and each
        failed item's error (a child that died fails all of its copies)."""
        if self.child is not None:
            got, self.child = self.child.wait(), None
            self.outcomes = got.get("ok")
            if self.outcomes is None:
                error = engine.VerifyFailed("the copies on %s could not be verified: %s" % (engine.display(self.pairs[0][1].root), got["failed"]))
                self.outcomes = [(position, None, error) for position in range(len(self.pairs))]
        for position, digest, error in self.outcomes:
            item, tgt = self.pairs[position]
            tgt.digest = digest
            if error is not None:
                item.error = item.error or error


class Verification:
    """The re-reads of a batch's copies, one :class:`Check` per disk."""

    def __init__(self, items, checks):
        self.items = items
        self.checks = checks

    def wait(self):
        """Until every re-read is done, its outcome on the items."""
        checks, self.checks = self.checks, []
        for check in checks:
            check.apply()


class Batch:
    """Copy a batch of files to their targets with one flush, one parallel
    verification pass and one rename pass. Use as a context manager (the
    open directories are closed at the end).

    ``journal``: as for :func:`engine.copy_verified`; ``add_all`` is called
    once for the whole batch (:meth:`journal_all`)."""

    def __init__(self, src_root, algorithm="sha512", journal=None, preserve=True, use_syncfs=True, keep_data=False):
        self.src_root = src_root
        self.keep_data = keep_data  # compare small copies with the source's bytes kept in memory (a small batch)
        self.algorithm = algorithm
        self.journal = journal
        self.preserve = preserve
        self.use_syncfs = use_syncfs and _SYNCFS is not None
        self.dirs = engine.DirCache()
        self.items = []
        self.bytes = 0
        self.verification = None  # the re-reads under way (start_verify)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Wait for re-reads under way, discard what was not completed and close the directories."""
        if self.verification is not None:
            self.verification.wait()
        for item in self.items:
            if item.copy is not None:
                engine.discard(item.copy)
        self.dirs.close()

    def plan(self, src_relpath, targets, expect_stat=None, data=None):
        """Add a file; its temporaries get names now (journalled by :meth:`journal_all`)."""
        item = Item(src_relpath, targets, expect_stat, data)
        item.tokens = [engine.temp_name(engine.split_relpath(relpath)[-1]) for dummy, relpath in targets]
        self.items.append(item)
        return item

    def journal_all(self):
        """Journal every planned temporary in one call."""
        entries = []
        for item in self.items:
            item.entries = [(root, engine.temp_relpath(relpath, token)) for (root, relpath), token in zip(item.targets, item.tokens)]
            entries += item.entries
        if self.journal is not None and entries:
            self.journal.add_all(entries)

    def copy(self, item):
        """Read the source of ``item`` once and write its temporaries (not
        flushed). A CopyError is stored on the item, never raised."""
        try:
            item.copy = engine.start_copy(
                self.src_root,
                item.src_relpath,
                item.targets,
                self.algorithm,
                expect_stat=item.expect_stat,
                journal=self.journal,
                preserve=self.preserve,
                dirs=self.dirs,
                tokens=item.tokens,
            )
            self.bytes += item.copy.size
            if not self.keep_data:
                item.copy.data = None
            engine.close_temps(item.copy, flush=not self.use_syncfs)
        except engine.CopyError as exc:
            item.error = exc
            if item.copy is not None:
                engine.discard(item.copy)
                item.copy = None

    def finish(self):
        """Flush, verify and rename every copied item; the items that failed
        carry their error. Returns the items that are complete."""
        return self.complete(self.start_verify())

    def start_verify(self, background=False):
        """Flush every copied item and start re-reading the copies from disk,
        one child process per disk (inline for one disk unless
        ``background``: then the caller goes on meanwhile). Returns the
        :class:`Verification` that :meth:`complete` waits for."""
        live = [item for item in self.items if item.ok]
        self._flush(live)
        live = [item for item in live if item.ok]
        self.verification = Verification(live, self._start_checks(live, background))
        return self.verification

    def complete(self, verification):
        """Wait for the re-reads, then rename every verified copy and make the
        renames durable. Returns the items that are complete."""
        verification.wait()
        self.verification = None
        for item in verification.items:
            if item.error is not None:
                self._fail(item, item.error)
        renamed = []
        for item in verification.items:
            if not item.ok:
                continue
            try:
                renamed += engine.rename_into_place(item.copy, fsync_dir=False)
                item.renamed = True
            except engine.CopyError as exc:
                item.renamed = any(tgt.temp is None and tgt.existing is None for tgt in item.copy.targets)
                self._fail(item, exc)
        self._fsync_dirs(renamed)
        return [item for item in self.items if item.ok]

    def drop(self, item, exc):
        """Give up a copied item before its verification (its temporaries are removed)."""
        self._fail(item, exc)

    def _fail(self, item, exc):
        item.error = item.error or exc
        if item.copy is not None:
            engine.discard(item.copy)

    def _by_root(self, items, want):
        """``{root: [(item, target), ...]}`` for the targets ``want`` selects."""
        groups = {}
        for item in items:
            for tgt in item.copy.targets:
                if want(tgt):
                    groups.setdefault(engine.fsbytes(tgt.root), []).append((item, tgt))
        return groups

    def _flush(self, items):
        if not self.use_syncfs:
            return
        for pairs in self._by_root(items, lambda tgt: tgt.temp is not None).values():
            item, tgt = pairs[0]
            try:
                syncfs(tgt.dir_fd)
            except OSError as exc:
                error = tgt.failed("flush to disk", exc)
                for other, dummy in pairs:
                    self._fail(other, error)

    def _start_checks(self, items, background):
        """Re-read every copy from its disk: inline for one disk unless
        ``background``, else one forked process per disk (see
        :mod:`_proc.forked`: many small files are short system calls that
        threads would take turns at); returns the :class:`Check` of each disk."""
        groups = list(self._by_root(items, lambda tgt: tgt.temp is not None or tgt.existing is not None).values())
        if len(groups) == 1 and not background:
            return [Check.inline(groups[0], self.algorithm)]
        return [Check.forked(pairs, self.algorithm) for pairs in groups]

    def _fsync_dirs(self, targets):
        """Make the renames durable: one ``syncfs`` per target file system
        (or an fsync of each directory)."""
        groups = {}
        for tgt in targets:
            key = engine.fsbytes(tgt.root) if self.use_syncfs else tgt.dir_fd
            groups.setdefault(key, tgt)
        for tgt in groups.values():
            try:
                if self.use_syncfs:
                    syncfs(tgt.dir_fd)
                else:
                    os.fsync(tgt.dir_fd)
            except OSError as exc:
                error = tgt.failed("flush the directory of", exc)
                for item in self.items:
                    if item.ok and any(self._same_group(other, tgt) for other in item.copy.targets):
                        item.error = error  # renamed but not durable: not registered (the journal keeps it)

    def _same_group(self, one, other):
        if self.use_syncfs:
            return engine.fsbytes(one.root) == engine.fsbytes(other.root)
        return one.dir_fd == other.dir_fd

    def sync_sources(self, relpaths):
        """Make the removal of these sources durable: one ``syncfs`` of the
        buffer (or an fsync of each of their directories)."""
        fds = {self.dirs.get(self.src_root, engine.split_relpath(relpath)[:-1]) for relpath in relpaths}
        if self.use_syncfs and fds:
            syncfs(next(iter(fds)))
            return
        for fd in fds:
            os.fsync(fd)
