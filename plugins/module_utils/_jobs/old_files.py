# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The old_files job, plan then apply: check mode is the plan.

``plan()`` walks the tree once through the shared walker (``_fs/walk``:
never follows a symlink, never leaves the root's file system) and selects
the regular files old enough, large enough, of the right owners, neither
excluded nor protected, orders them (largest and oldest first by default) and
applies the per-run limits. ``apply()`` acts on exactly that list: it reopens
each parent directory from the root one component at a time with
``O_NOFOLLOW``, checks it is still the directory the walk saw, re-checks the
file with ``fstatat(dir_fd, name, AT_SYMLINK_NOFOLLOW)`` (same inode, size,
mtime, still old enough) and only then acts relative to that descriptor:
``unlinkat``, ``linkat`` + ``unlinkat`` on the same file system, or the shared
verified copy engine and ``unlinkat`` across file systems. Every action is
appended to the run's manifest (``_jobs/manifest``) before the next one.
``restore()`` moves files a manifest lists back. No AnsibleModule.
"""

from __future__ import annotations

import errno
import functools
import grp
import hashlib
import heapq
import mmap
import operator
import os
import pwd
import stat
import time
from concurrent.futures import Future

from ansible.module_utils.common.text.formatters import human_to_bytes

from ansible_collections.datasteward.storage.plugins.module_utils._copy import batch as copy_batch
from ansible_collections.datasteward.storage.plugins.module_utils._copy import engine as copier
from ansible_collections.datasteward.storage.plugins.module_utils._fs.match import Match, MatchError
from ansible_collections.datasteward.storage.plugins.module_utils._fs.usage import ScanError, parse_age
from ansible_collections.datasteward.storage.plugins.module_utils._fs.walk import display, walk_dirs
from ansible_collections.datasteward.storage.plugins.module_utils._jobs.manifest import Manifest, ManifestError, quote, read_manifest
from ansible_collections.datasteward.storage.plugins.module_utils._proc import forked

STATES = ("reported", "relocated", "absent", "restored")
AGE_STAMPS = ("atime", "mtime", "ctime", "max")
ORDERS = ("largest", "oldest", "path")
ALGORITHM = "sha512"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_O_NOATIME = getattr(os, "O_NOATIME", 0)
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG)
MAX_ERRORS = 100
STALE_MARGIN = 1.0  # seconds before the run's start a temporary must be older than to count as stale


class OldFilesError(Exception):
    """Bad input or a tree that cannot be worked on; names option/path and cause."""


class StopRun(Exception):
    """The run must stop here (a full destination); what was done stays done."""


class Skip(Exception):
    """This file is left alone; the message says why."""


class AlreadyDone(Skip):
    """Nothing to do for this file (restore: it is back already)."""


class Options:
    """The module's parameters, checked and converted (see ``from_params``)."""

    def __init__(
        self,
        path,
        age=0,
        age_stamp="mtime",
        min_size=0,
        owners=None,
        exclude_owners=None,
        excludes=None,
        protect=None,
        state="reported",
        dest=None,
        host_folder=None,
        max_files=None,
        max_bytes=None,
        free_bytes=None,
        manifest_dir=None,
        manifest=None,
        remove_empty_dirs=False,
        order="largest",
        max_listed=1000,
    ):
        self.path = os.path.abspath(path)
        self.age = age
        self.age_stamp = age_stamp
        self.min_size = min_size or 0
        self.owners = _uids("owners", owners) if owners else None
        self.exclude_owners = _uids("exclude_owners", exclude_owners or [])
        self.match = _match("excludes", excludes)
        self.protect = _match("protect", protect)
        self.state = state
        self.dest = os.path.abspath(dest) if dest else None
        self.host_folder = host_folder or os.uname().nodename.split(".")[0]
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.free_bytes = free_bytes
        self.manifest_dir = manifest_dir
        self.manifest = manifest
        self.remove_empty_dirs = remove_empty_dirs
        self.order = order
        self.max_listed = max_listed
        self._validate()

    def _validate(self):
        for name in ("max_files", "max_bytes", "free_bytes", "min_size", "max_listed"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise OldFilesError("%s: must not be negative, got %s" % (name, value))
        if "/" in self.host_folder or self.host_folder in ("", ".", ".."):
            raise OldFilesError("host_folder: %r is not a single directory name" % self.host_folder)
        if self.state == "relocated":
            _check_dest(self.path, self.dest)

    @property
    def dest_root(self):
        """Where relocated files go: ``dest/<host_folder>``."""
        return os.path.join(self.dest, self.host_folder) if self.dest else None


def _uids(option, values):
    """Names or numbers -> set of uids; an unknown name fails naming it."""
    uids = set()
    for value in values:
        text = str(value).strip()
        if text.isdigit():
            uids.add(int(text))
            continue
        try:
            uids.add(pwd.getpwnam(text).pw_uid)
        except KeyError:
            raise OldFilesError("%s: no user named %r on this host" % (option, text))
    return uids


def _match(option, patterns):
    if not patterns:
        return None
    try:
        return Match(excludes=list(patterns))
    except MatchError as exc:
        raise OldFilesError("%s: %s" % (option, exc))


def _check_dest(path, dest):
    if not dest:
        raise OldFilesError("dest: required with state=relocated")
    real_path, real_dest = os.path.realpath(path), os.path.realpath(dest)
    if real_dest == real_path or real_dest.startswith(real_path.rstrip("/") + "/"):
        raise OldFilesError("dest: %s is inside path %s; relocated files would be found again" % (dest, path))
    if real_path.startswith(real_dest.rstrip("/") + "/"):
        raise OldFilesError("dest: %s contains path %s" % (dest, path))


def stamp_of(st, age_stamp):
    """The time stamp that decides the age (``max``: the newest of the three)."""
    if age_stamp == "max":
        return max(st.st_atime, st.st_mtime, st.st_ctime)
    return getattr(st, "st_" + age_stamp)


class Names:
    """uid -> user name (None when unknown), cached."""

    def __init__(self):
        self._users = {}

    def user(self, uid):
        if uid not in self._users:
            try:
                self._users[uid] = pwd.getpwuid(uid).pw_name
            except KeyError:
                self._users[uid] = None
        return self._users[uid]


def group_name(gid):
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return None


def _join(head, name):
    return head + b"/" + name if head else name


class Candidate:
    """A selected file: its parent's relpath, name and lstat at selection."""

    __slots__ = ("dir_rel", "name", "st", "stamp")

    def __init__(self, dir_rel, name, st, stamp):
        self.dir_rel = dir_rel
        self.name = name
        self.st = st
        self.stamp = stamp

    @property
    def relpath(self):
        return _join(self.dir_rel, self.name)


class Plan:
    """What a run would act on, and what the walk saw."""

    def __init__(self, opts, now):
        self.opts = opts
        self.now = now
        self.root_st = None
        self.dirs = {}  # relpath -> fstat of the directory as walked
        self.dir_entries = {}  # relpath -> number of entries seen
        self.eligible = []  # every Candidate
        self.selected = []  # the ones to act on, in order
        self.examined = 0
        self.protected = 0
        self.errors = []
        self.error_count = 0
        self.empty_dirs = []  # directories the run would leave empty (remove_empty_dirs)
        self.matched = self.chosen = 0  # len(eligible), len(selected)

    def issue(self, issue):
        """``on_error`` of the walk."""
        self.error(issue.relpath, issue.kind, issue.message, issue.is_error)

    def error(self, relpath, kind, message, counts=True):
        self.error_count += 1 if counts else 0
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(
                {
                    "path": display(os.path.join(os.fsencode(self.opts.path), relpath) if relpath else os.fsencode(self.opts.path)),
                    "kind": kind,
                    "error": message,
                }
            )


def _root_stat(opts):
    """The lstat of ``opts.path``; OldFilesError unless it is a directory (never a symlink)."""
    try:
        st = os.lstat(os.fsencode(opts.path))
    except OSError as exc:
        raise OldFilesError("path: cannot read %s: %s" % (opts.path, exc.strerror or exc))
    if not stat.S_ISDIR(st.st_mode):
        raise OldFilesError("path: %s is %s, not a directory" % (opts.path, "a symlink (never followed)" if stat.S_ISLNK(st.st_mode) else "not a directory"))
    return st


def _walker(result, start=None, deadline=None):
    return walk_dirs(os.fsencode(result.opts.path), one_file_system=True, deadline=deadline, start=start, on_error=result.issue)


def plan(opts, now=None, deadline=None):
    """Walk ``opts.path`` and decide what to act on. Raises OldFilesError
    when the root itself cannot be opened."""
    now = time.time() if now is None else now
    result = Plan(opts, now)
    result.root_st = _root_stat(opts)
    try:
        for directory in _walker(result, deadline=deadline):
            _select_in(result, directory, result.eligible)
    except OSError as exc:
        raise OldFilesError("path: cannot walk %s: %s" % (opts.path, exc.strerror or exc))
    result.selected = _limit(_ordered(result.eligible, opts.order), opts)
    result.matched, result.chosen = len(result.eligible), len(result.selected)
    if opts.remove_empty_dirs and opts.state in ("relocated", "absent"):
        result.empty_dirs = _emptied(result)
    return result


_STAMPS = {
    "atime": operator.attrgetter("st_atime"),
    "mtime": operator.attrgetter("st_mtime"),
    "ctime": operator.attrgetter("st_ctime"),
    "max": lambda st: max(st.st_atime, st.st_mtime, st.st_ctime),
}


def _select_in(result, directory, out):
    """Select the old files of one directory (appended to ``out``); the
    walk's counts go to ``result``."""
    opts = result.opts
    rel = directory.relpath
    result.dirs[rel] = directory.st
    match, protect, exclude_owners, owners = opts.match, opts.protect, opts.exclude_owners, opts.owners
    min_size, now, age, stamp_of_st = opts.min_size, result.now, opts.age, _STAMPS[opts.age_stamp]
    temp_prefix, is_dir, is_reg, append = copier.TEMP_PREFIX.encode(), stat.S_ISDIR, stat.S_ISREG, out.append
    seen = kept = 0
    for name, st in directory.stream():
        seen += 1
        mode = st.st_mode
        if match is not None and match.excluded_entry(rel, name, is_dir(mode)):
            kept += 1  # excluded (not walked here, so that its parent is known not to become empty)
            if is_dir(mode):
                directory.prune(name)
            continue
        if protect is not None and protect.excluded_entry(rel, name, is_dir(mode)):
            result.protected += 1
            kept += 1  # a protected entry: its directory never becomes empty
            if is_dir(mode):
                directory.prune(name)
            continue
        if not is_reg(mode) or st.st_size < min_size or name.startswith(temp_prefix):
            continue
        if st.st_uid in exclude_owners or (owners is not None and st.st_uid not in owners):
            continue
        stamp = stamp_of_st(st)
        if now - stamp >= age:
            append(Candidate(rel, name, st, stamp))
    result.examined += seen
    result.dir_entries[rel] = seen + kept


_KEYS = {
    "largest": lambda c: (-c.st.st_size, c.stamp, c.relpath),
    "oldest": lambda c: (c.stamp, -c.st.st_size, c.relpath),
    "path": lambda c: c.relpath,
}


def _ordered(candidates, order):
    return sorted(candidates, key=_KEYS[order])


def _limit(candidates, opts):
    """The longest prefix within ``max_files``/``max_bytes``, stopping once
    ``free_bytes`` (allocated) is reached; ``reported`` is never limited."""
    if opts.state == "reported":
        return candidates
    chosen, total, freed = [], 0, 0
    for cand in candidates:
        if opts.max_files is not None and len(chosen) >= opts.max_files:
            break
        if opts.free_bytes is not None and freed >= opts.free_bytes:
            break
        if opts.max_bytes is not None and total + cand.st.st_size > opts.max_bytes:
            break
        chosen.append(cand)
        total += cand.st.st_size
        freed += cand.st.st_blocks * 512
    return chosen


def _emptied(result):
    """Directories (never the root) every entry of which the run removes,
    deepest first."""
    left = dict(result.dir_entries)
    for cand in result.selected:
        left[cand.dir_rel] = left.get(cand.dir_rel, 0) - 1
    emptied = []
    for rel in sorted(left, key=lambda r: (-r.count(b"/"), r)):
        if rel and left[rel] == 0:
            emptied.append(rel)
            parent = rel.rpartition(b"/")[0] if b"/" in rel else b""
            left[parent] = left.get(parent, 0) - 1
    return emptied


# --- apply -------------------------------------------------------------------


def _strerror(exc):
    return exc.strerror or str(exc)


class _Tree:
    """A tree opened at its root; directories reopened one component at a
    time with O_NOFOLLOW, never leaving the root's file system. One parent is
    kept open at a time (the apply goes directory by directory)."""

    def __init__(self, root, expect=None):
        self.root = os.fsencode(root)
        try:
            self.fd = os.open(self.root, _DIR_FLAGS)
        except OSError as exc:
            raise OldFilesError("cannot open %s: %s" % (os.fsdecode(self.root), _strerror(exc)))
        self.st = os.fstat(self.fd)
        if expect is not None and (expect.st_dev, expect.st_ino) != (self.st.st_dev, self.st.st_ino):
            os.close(self.fd)
            raise OldFilesError("path: %s was replaced since it was scanned" % os.fsdecode(self.root))
        self._cached = (None, None)

    def path(self, relpath):
        return _join(self.root.rstrip(b"/") or b"/", relpath) if relpath else self.root

    def open_dir(self, relpath, expect=None, create_like=None):
        """The fd of directory ``relpath`` (owned by the tree). ``expect``:
        the stat the walk saw; ``create_like``: relpath -> stat of the source
        directories, to create missing ones with their mode and owner."""
        if self._cached[0] == relpath:
            return self._cached[1]
        self._drop()
        fd = os.dup(self.fd)
        done = b""
        try:
            for part in relpath.split(b"/") if relpath else []:
                done = _join(done, part)
                fd = self._step(fd, part, done, create_like)
            if expect is not None:
                now = os.fstat(fd)
                if (now.st_dev, now.st_ino) != (expect.st_dev, expect.st_ino):
                    raise Skip("directory %s was replaced since it was scanned" % display(self.path(relpath)))
        except BaseException:
            os.close(fd)
            raise
        self._cached = (relpath, fd)
        return fd

    def _step(self, fd, part, done, create_like):
        try:
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            if create_like is None:
                raise Skip("directory %s vanished" % display(self.path(done)))
            child = self._create(fd, part, done, create_like.get(done))
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise Skip("%s was replaced by a symlink or a file; not followed" % display(self.path(done)))
            raise Skip("cannot open directory %s: %s" % (display(self.path(done)), _strerror(exc)))
        os.close(fd)
        if os.fstat(child).st_dev != self.st.st_dev:
            os.close(child)
            raise Skip("%s is on another file system; not entered" % display(self.path(done)))
        return child

    def _create(self, fd, part, done, like):
        mode = stat.S_IMODE(like.st_mode) if like is not None else 0o755
        try:
            os.mkdir(part, 0o700, dir_fd=fd)
        except FileExistsError:
            pass
        except OSError as exc:
            if exc.errno in _FULL:
                raise StopRun("dest: no space to create directory %s: %s" % (display(self.path(done)), _strerror(exc)))
            raise Skip("cannot create directory %s: %s" % (display(self.path(done)), _strerror(exc)))
        child = os.open(part, _DIR_FLAGS, dir_fd=fd)
        if like is not None and os.geteuid() == 0:
            os.fchown(child, like.st_uid, like.st_gid)
        os.fchmod(child, mode)
        return child

    def _drop(self):
        if self._cached[1] is not None:
            os.close(self._cached[1])
        self._cached = (None, None)

    def close(self):
        self._drop()
        os.close(self.fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class Outcome:
    """What ``apply``/``restore`` did."""

    def __init__(self):
        self.done = []  # (Candidate, action) acted on
        self.skipped = []  # {"path", "reason"}
        self.dirs_removed = []
        self.stopped = None  # message when the run stopped early
        self.manifest = None
        self.temps_removed = 0  # stale temporaries of earlier runs removed from the relocation area


def recheck(dir_fd, cand, opts, now):
    """Raise Skip unless ``cand`` is still the same, unmodified, old file."""
    try:
        cur = os.stat(cand.name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        raise Skip("vanished since it was selected")
    except OSError as exc:
        raise Skip("cannot stat: %s" % _strerror(exc))
    st = cand.st
    if not stat.S_ISREG(cur.st_mode) or cur.st_ino != st.st_ino or cur.st_dev != st.st_dev:
        raise Skip("replaced by another file since it was selected")
    if cur.st_size != st.st_size or cur.st_mtime_ns != st.st_mtime_ns:
        raise Skip("modified since it was selected")
    if now - stamp_of(cur, opts.age_stamp) < opts.age:
        raise Skip("used since it was selected (%s is recent now)" % opts.age_stamp)
    return cur


BATCH_FILES = 256  # files acted on between two manifest writes (and per relocation batch)
BATCH_BYTES = 64 * 1024 * 1024  # bytes copied per relocation batch (one syncfs, one verification pass)
WORKERS = 2  # forked workers of a run without limits (the root's subdirectories split between them)


def batches(cands):
    """``cands`` in runs of at most BATCH_FILES files and (unless one file is
    larger) BATCH_BYTES bytes."""
    run, size = [], 0
    for cand in cands:
        if run and (len(run) >= BATCH_FILES or size + cand.st.st_size > BATCH_BYTES):
            yield run
            run, size = [], 0
        run.append(cand)
        size += cand.st.st_size
    if run:
        yield run


class _Actor:
    """Acts on the selected files of one directory at a time, relative to
    that directory reopened from the root (``_Tree``), a batch at a time: the
    deletes of a batch, then their records in one manifest write; for a
    relocation, the records of a batch before its originals are removed."""

    def __init__(self, opts, tree, manifest, now, dirs):
        self.opts = opts
        self.tree = tree
        self.manifest = manifest
        self.now = now
        self.outcome = Outcome()
        self.prefix_q = quote(os.fsdecode(tree.root.rstrip(b"/") or b"/") + "/")[:-1]  # JSON-escaped per character: joins as is
        self.root_q = quote(opts.path)
        self.mover = _Mover(opts, tree, dirs, now) if opts.state == "relocated" else None

    def close(self):
        if self.mover is not None:
            self.outcome.temps_removed = self.mover.temps_removed
            self.mover.close()

    def act(self, dir_rel, dir_st, cands):
        """Act on ``cands`` (all in directory ``dir_rel``, seen as ``dir_st``); raises StopRun."""
        try:
            dir_fd = self.tree.open_dir(dir_rel, expect=dir_st)
        except Skip as exc:
            for cand in cands:
                self.skip(cand, exc)
            return
        for batch in batches(cands):
            if self.mover is None:
                self._delete(dir_fd, batch)
            else:
                self.mover.move(self, dir_fd, dir_rel, batch)

    def _delete(self, dir_fd, batch):
        opts, now, done, bodies, body = self.opts, self.now, self.outcome.done, [], self.body
        lstat, is_reg, age, stamp_of_st = os.stat, stat.S_ISREG, opts.age, _STAMPS[opts.age_stamp]
        for cand in batch:
            st = cand.st
            try:  # the re-check, inline (recheck() again only to say why not)
                cur = lstat(cand.name, dir_fd=dir_fd, follow_symlinks=False)
                same = is_reg(cur.st_mode) and cur.st_ino == st.st_ino and cur.st_dev == st.st_dev and cur.st_size == st.st_size
                fresh = same and cur.st_mtime_ns == st.st_mtime_ns and now - stamp_of_st(cur) >= age
            except OSError:
                fresh = False
            try:
                if not fresh:
                    recheck(dir_fd, cand, opts, now)
                _unlink(dir_fd, cand.name, None)
            except Skip as exc:
                self.skip(cand, exc)
                continue
            bodies.append(body(cand, '"action":"deleted"'))
            done.append((cand, "deleted"))
        self.write(bodies)

    def skip(self, cand, exc):
        self.outcome.skipped.append({"path": display(self.tree.path(cand.relpath)), "reason": str(exc)})

    def body(self, cand, head):
        """The manifest record of ``cand`` (``head``: the action's own members), encoded."""
        st, rel_q = cand.st, quote(os.fsdecode(cand.relpath))
        return '%s,"path":%s%s,"root":%s,"relpath":%s,"bytes":%d,"uid":%d,"gid":%d,"mtime":%r' % (
            head,
            self.prefix_q,
            rel_q[1:],
            self.root_q,
            rel_q,
            st.st_size,
            st.st_uid,
            st.st_gid,
            st.st_mtime,
        )

    def write(self, bodies):
        try:
            self.manifest.append_encoded(bodies)
        except ManifestError as exc:
            raise StopRun(str(exc))


def apply(the_plan, manifest, now=None, pool=None):
    """Act on ``the_plan.selected`` (state relocated or absent), directory by directory."""
    now = time.time() if now is None else now
    opts = the_plan.opts
    groups = {}
    for cand in the_plan.selected:
        groups.setdefault(cand.dir_rel, []).append(cand)
    with _Tree(opts.path, the_plan.root_st) as tree:
        actor = _Actor(opts, tree, manifest, now, the_plan.dirs)
        try:
            for dir_rel in sorted(groups):  # one directory open at a time
                actor.act(dir_rel, the_plan.dirs.get(dir_rel), groups[dir_rel])
        except StopRun as exc:
            actor.outcome.stopped = str(exc)
        finally:
            actor.close()
        if opts.remove_empty_dirs and actor.outcome.stopped is None:
            _remove_empty(tree, the_plan, actor.outcome)
    return actor.outcome


def _unlink(dir_fd, name, where):
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        raise Skip("vanished before it could be removed")
    except OSError as exc:
        raise Skip("cannot remove: %s" % _strerror(exc))


def _remove_empty(tree, the_plan, outcome):
    done_dirs = {cand.dir_rel for cand, dummy in outcome.done}
    for rel in the_plan.empty_dirs:
        if not any(d == rel or d.startswith(rel + b"/") for d in done_dirs):
            continue
        parent, name = rel.rpartition(b"/")[0] if b"/" in rel else b"", rel.rpartition(b"/")[2]
        try:
            fd = tree.open_dir(parent, expect=the_plan.dirs.get(parent))
            cur = os.stat(name, dir_fd=fd, follow_symlinks=False)
            seen = the_plan.dirs.get(rel)
            if seen is None or (cur.st_dev, cur.st_ino) != (seen.st_dev, seen.st_ino) or not stat.S_ISDIR(cur.st_mode):
                continue
            os.rmdir(name, dir_fd=fd)
        except (Skip, OSError):
            continue  # not empty any more, or gone: nothing to do
        outcome.dirs_removed.append(display(tree.path(rel)))


# --- a run without limits: each directory planned and acted on in turn, in workers


def fused_allowed(opts):
    """Without ``max_files``, ``max_bytes`` and ``free_bytes`` the plan is
    every eligible file, whatever the order: each directory can be planned
    and acted on in turn, by several workers."""
    return opts.state in ("absent", "relocated") and opts.max_files is None and opts.max_bytes is None and opts.free_bytes is None


def apply_fused(opts, manifest, now, workers=WORKERS):
    """Walk, plan and act one directory at a time: the root's own files
    here, its subdirectories split between ``workers`` forked processes
    (all appending to the one manifest). Returns ``(plan, outcome, tally)``."""
    result = Plan(opts, now)
    result.root_st = _root_stat(opts)
    try:
        walker = _walker(result)
    except OSError as exc:
        raise OldFilesError("path: cannot walk %s: %s" % (opts.path, exc.strerror or exc))
    with walker:
        part = _Part(opts, now, manifest, result)
        part.directory(next(walker))
        tasks = walker.take_pending()
    summary = part.finish()
    shares = [tasks[index::workers] for index in range(workers)] if len(tasks) >= workers > 1 else [tasks]
    if summary["stopped"] is None and len(shares) > 1:
        manifest.open()  # one file for every worker
        stop = mmap.mmap(-1, 1)
        for piece in forked.run_all([functools.partial(_work_share, opts, now, manifest, result.root_st, share, stop) for share in shares]):
            if "failed" in piece:
                summary["stopped"] = summary["stopped"] or "a worker of the run failed: %s" % piece["failed"]
                continue
            if not piece.get("here"):
                manifest.records += piece["ok"]["records"]  # appended by another process
            _merge(summary, piece["ok"])
    elif summary["stopped"] is None:
        _merge(summary, _work_share(opts, now, manifest, result.root_st, shares[0], None))
    return _fused_result(result, summary)


def _work_share(opts, now, manifest, root_st, tasks, stop):
    """One worker: walk each task (a subtree), planning and acting per directory."""
    result = Plan(opts, now)
    result.root_st = root_st
    part = _Part(opts, now, manifest, result)
    for task in tasks:
        if part.stopped or (stop is not None and stop[0]):
            break
        try:
            with _walker(result, start=task) as walker:
                for directory in walker:
                    if (stop is not None and stop[0]) or not part.directory(directory):
                        break
        except OSError as exc:
            result.error(task[0], "error", "cannot walk: %s" % _strerror(exc))
    if part.stopped and stop is not None:
        stop[0] = 1
    return part.finish()


class _Part:
    """The plan and the acts of one process of a run without limits."""

    def __init__(self, opts, now, manifest, result):
        self.opts = opts
        self.result = result
        self.tree = _Tree(opts.path, result.root_st)
        try:
            self.actor = _Actor(opts, self.tree, manifest, now, result.dirs)
        except BaseException:
            self.tree.close()
            raise
        self.manifest = manifest
        self.records = manifest.records
        self.stopped = None

    def directory(self, directory):
        """Plan and act on one directory; False once the run must stop."""
        cands = []
        _select_in(self.result, directory, cands)
        self.result.selected.extend(cands)
        if cands:
            try:
                self.actor.act(directory.relpath, directory.st, cands)
            except StopRun as exc:
                self.stopped = str(exc)
                return False
        return True

    def finish(self):
        """The picklable summary of this part (its directories emptied and removed first)."""
        result, outcome = self.result, self.actor.outcome
        try:
            self.actor.close()
            if self.opts.remove_empty_dirs and self.stopped is None:
                result.empty_dirs = _emptied(result)
                _remove_empty(self.tree, result, outcome)
        finally:
            self.tree.close()
        return {
            "examined": result.examined,
            "protected": result.protected,
            "matched": len(result.selected),
            "errors": result.errors,
            "error_count": result.error_count,
            "tally": Tally.of(self.opts, [cand for cand, dummy in outcome.done]),
            "skipped": outcome.skipped,
            "dirs_removed": outcome.dirs_removed,
            "stopped": self.stopped,
            "records": self.manifest.records - self.records,
            "temps_removed": outcome.temps_removed,
        }


def _merge(summary, piece):
    for key in ("examined", "protected", "matched", "error_count", "temps_removed"):
        summary[key] += piece[key]
    summary["errors"] = (summary["errors"] + piece["errors"])[:MAX_ERRORS]
    summary["tally"].merge(piece["tally"])
    summary["skipped"] += piece["skipped"]
    summary["dirs_removed"] += piece["dirs_removed"]
    summary["stopped"] = summary["stopped"] or piece["stopped"]


def _fused_result(result, summary):
    result.examined, result.protected = summary["examined"], summary["protected"]
    result.matched = result.chosen = summary["matched"]
    result.errors, result.error_count = summary["errors"], summary["error_count"]
    result.selected = []
    outcome = Outcome()
    outcome.skipped, outcome.stopped = summary["skipped"], summary["stopped"]
    outcome.dirs_removed = sorted(summary["dirs_removed"], key=lambda d: (-d.count("/"), d))  # deepest first, as the plan
    outcome.temps_removed = summary["temps_removed"]
    return result, outcome, summary["tally"]


class Tally:
    """What a run acted on (or would), as the result needs it: ``files``,
    ``bytes``, per owner ``[files, bytes, relpaths]`` and ``top``, the first
    ``max_listed`` files in the order of ``order``."""

    def __init__(self, opts):
        self.order = opts.order
        self.limit = opts.max_listed
        self.files = self.bytes = 0
        self.users = {}
        self.top = []

    @classmethod
    def of(cls, opts, cands, ordered=False):
        tally = cls(opts)
        users, total = tally.users, 0
        for cand in cands:
            st = cand.st
            entry = users.get(st.st_uid)
            if entry is None:
                entry = users[st.st_uid] = [0, 0, []]
            entry[0] += 1
            entry[1] += st.st_size
            entry[2].append(_join(cand.dir_rel, cand.name))
            total += st.st_size
        tally.files, tally.bytes = len(cands), total
        tally.top = list(cands[: tally.limit]) if ordered else heapq.nsmallest(tally.limit, cands, key=_KEYS[tally.order])
        return tally

    def merge(self, other):
        self.files += other.files
        self.bytes += other.bytes
        for uid, (files, size, paths) in other.users.items():
            entry = self.users.setdefault(uid, [0, 0, []])
            entry[0] += files
            entry[1] += size
            entry[2].extend(paths)
        self.top = heapq.nsmallest(self.limit, self.top + other.top, key=_KEYS[self.order])


class _Mover:
    """Relocation into ``dest/<host_folder>``, mirroring the path below
    ``path``, a batch of one directory at a time: the batch's records are
    written once its copies are verified (or linked) and before any of its
    originals is removed."""

    def __init__(self, opts, tree, dirs, now):
        self.opts = opts
        self.like = dirs  # relpath -> stat of the source directories, to create their mirrors like them
        self.now = now
        if not os.path.isdir(opts.dest):
            raise OldFilesError("dest: %s does not exist or is not a directory" % opts.dest)
        try:
            os.makedirs(opts.dest_root, mode=0o755, exist_ok=True)
        except OSError as exc:
            raise OldFilesError("dest: cannot create %s: %s" % (opts.dest_root, _strerror(exc)))
        self.dest = _Tree(opts.dest_root)
        self.same_fs = self.dest.st.st_dev == tree.st.st_dev
        self.prefix = os.fsdecode(self.dest.root.rstrip(b"/") or b"/") + "/"
        self.head = '"action":"relocated","dest":%%s,"dest_root":%s,"digest":%%s,"algorithm":%s' % (quote(opts.dest_root), quote(ALGORITHM))
        self.swept = set()
        self.temps_removed = 0

    def close(self):
        self.dest.close()

    def _dest_dir(self, dir_rel):
        """The relocation directory of ``dir_rel`` (created like the original),
        cleared of the stale temporaries of earlier runs the first time."""
        fd = self.dest.open_dir(dir_rel, create_like=self.like)
        if dir_rel not in self.swept:
            self.swept.add(dir_rel)
            self.temps_removed += copier.remove_stale_temps(fd, older_than=self.now - STALE_MARGIN)
        return fd

    def _body(self, actor, cand, digest):
        return actor.body(cand, self.head % (quote(self.prefix + os.fsdecode(cand.relpath)), quote(digest)))

    def move(self, actor, dir_fd, dir_rel, batch):
        if self.opts.age_stamp == "mtime" and not self.same_fs:
            # the copy's own fstat must match the walk's (inode, size, mtime) and the re-check right
            # before the original goes must match that fstat (ctime too): the age by mtime is re-checked there
            live = [(cand, cand.st) for cand in batch]
        else:
            live = []
            for cand in batch:
                try:
                    live.append((cand, recheck(dir_fd, cand, actor.opts, actor.now)))
                except Skip as exc:
                    actor.skip(cand, exc)
        if not live:
            return
        try:
            dest_fd = self._dest_dir(dir_rel)
        except Skip as exc:
            for cand, dummy in live:
                actor.skip(cand, exc)
            return
        if self.same_fs:
            live = [pair for pair in live if not self._link_move(actor, dir_fd, dest_fd, *pair)]
        if live:
            self._copy_move(actor, dir_fd, live)

    def _link_move(self, actor, dir_fd, dest_fd, cand, cur):
        """``linkat`` into the relocation area, the record, ``unlinkat`` of
        the original; False when no hard link can be made there (copy it)."""
        where = self.dest.path(cand.relpath)
        try:
            digest = digest_at(dir_fd, cand.name, cur)
            try:
                os.link(cand.name, cand.name, src_dir_fd=dir_fd, dst_dir_fd=dest_fd, follow_symlinks=False)
            except FileExistsError:
                there = os.stat(cand.name, dir_fd=dest_fd, follow_symlinks=False)
                if (there.st_dev, there.st_ino) != (cur.st_dev, cur.st_ino):
                    raise Skip("%s already exists in the relocation area; left in place" % display(where))
            except OSError as exc:
                if exc.errno in _FULL:
                    raise StopRun("dest: %s is full: %s" % (self.opts.dest, _strerror(exc)))
                if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    return False  # a bind mount, no hard links there: copy
                raise Skip("cannot link to %s: %s" % (display(where), _strerror(exc)))
            os.fsync(dest_fd)
            try:
                recheck_same(dir_fd, cand.name, cur, ctime=False)
            except Skip:
                _unlink_if(dest_fd, cand.name, cur)  # our own second link; the original stays
                raise
            actor.write([self._body(actor, cand, digest)])
            _unlink(dir_fd, cand.name, display(where))
            os.fsync(dir_fd)
        except Skip as exc:
            actor.skip(cand, exc)
            return True
        actor.outcome.done.append((cand, "relocated"))
        return True

    def _copy_move(self, actor, dir_fd, live):
        """The verified copy engine, a batch at a time (``_copy/batch``: one
        flush and one from-disk verification pass per batch), then the
        batch's records, then the originals removed and their directory synced."""
        opts, src_root, dest_root = self.opts, actor.tree.root, self.dest.root
        with copy_batch.Batch(src_root, ALGORITHM, preserve=True, keep_data=True) as batch:
            for cand, cur in live:
                rel = cand.relpath
                item = batch.plan(rel, [(dest_root, rel)], expect_stat=cur, data=cand)
                batch.copy(item)
                if isinstance(item.error, copier.TargetFull):
                    break  # the rest stays where it is; the run stops after this batch
            batch.finish()
            full, ready = self._verified(actor, dir_fd, batch.items)
            actor.write([self._body(actor, item.data, item.copy.digest) for item in ready])  # before any original goes
            for item in ready:
                try:
                    _unlink(dir_fd, item.data.name, None)
                except Skip as exc:
                    actor.skip(item.data, exc)
                    continue
                actor.outcome.done.append((item.data, "relocated"))
            if ready:
                os.fsync(dir_fd)
        if full is not None:
            where = display(actor.tree.path(full.data.relpath))
            raise StopRun("dest: %s is full; stopped with %s intact: %s" % (opts.dest, where, full.error))

    def _verified(self, actor, dir_fd, items):
        """``(the item a full destination stopped or None, the items whose
        copy verified and whose original is still unchanged)``."""
        full, ready = None, []
        for item in items:
            if item.copy is None and item.error is None:
                continue  # not copied: the run stops before it
            if not item.ok:
                if isinstance(item.error, copier.TargetFull):
                    full = full or item
                else:
                    actor.skip(item.data, Skip("not relocated: %s" % item.error))
                continue
            try:
                recheck_same(dir_fd, item.data.name, item.copy.source_stat)
            except Skip as exc:
                actor.skip(item.data, exc)
                continue
            ready.append(item)
        return full, ready


def keep_times(dir_fd, name, seen):
    """The verified copy's times as the original's again (reading it back
    from disk to verify it moved its access time)."""
    try:
        os.utime(name, ns=(seen.st_atime_ns, seen.st_mtime_ns), dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        pass  # times are best effort, as in the copy engine; the content is verified


class InlineExecutor:
    """An executor that runs each call at once in the caller's thread: for a
    small file, reading, hashing and writing in turn beats handing chunks to
    threads."""

    @staticmethod
    def submit(call):
        future = Future()
        try:
            future.set_result(call())
        except BaseException as exc:  # handed to whoever waits on the future, as a pool would
            future.set_exception(exc)
        return future

    def shutdown(self, wait=True):
        pass


SMALL_FILE = 1024 * 1024
_INLINE = InlineExecutor()


def copy_tuning(size, pool):
    """Buffer size and executor for the copy engine: small buffers and no
    threads for small files (the engine's 4 MiB buffers, allocated per call,
    and a thread hand-off per chunk would cost more than the copy), the
    shared pool for large ones."""
    if size < SMALL_FILE:
        return {"chunk_size": max(64 * 1024, 1 << max(0, size - 1).bit_length()), "pool": _INLINE}
    return {"chunk_size": copier.CHUNK_SIZE, "pool": pool}


def recheck_same(dir_fd, name, seen, ctime=True):
    """Raise Skip unless ``name`` is still exactly the file ``seen`` (the
    ctime is not compared after a link of our own changed it)."""
    try:
        cur = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        raise Skip("vanished while it was relocated")
    same = (
        copier.same_content_stat(cur, seen)
        if ctime
        else ((cur.st_dev, cur.st_ino, cur.st_size, cur.st_mtime_ns) == (seen.st_dev, seen.st_ino, seen.st_size, seen.st_mtime_ns))
    )
    if not same:
        raise Skip("modified while it was relocated; the original is kept")


def _unlink_if(dir_fd, name, seen):
    """Remove ``name`` only while it is a link to the inode ``seen``."""
    try:
        cur = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if (cur.st_dev, cur.st_ino) == (seen.st_dev, seen.st_ino):
            os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


def digest_at(dir_fd, name, seen):
    """sha512 of ``name`` in ``dir_fd`` (never through a symlink), checking
    it is the file ``seen`` before and after reading."""
    try:
        try:
            fd = os.open(name, _READ_FLAGS | _O_NOATIME, dir_fd=dir_fd)  # reading must not make it look used
        except PermissionError:
            fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        raise Skip("cannot read: %s" % _strerror(exc))
    try:
        before = os.fstat(fd)
        if (before.st_dev, before.st_ino) != (seen.st_dev, seen.st_ino):
            raise Skip("replaced by another file since it was selected")
        digest, size = copier.hash_fd(fd, ALGORITHM, from_disk=False)
        if size != before.st_size or not copier.same_content_stat(before, os.fstat(fd)):
            raise Skip("modified while it was read")
        return digest
    except OSError as exc:
        raise Skip("cannot read: %s" % _strerror(exc))
    finally:
        os.close(fd)


# --- restore -------------------------------------------------------------------


class RestoreItem:
    """One ``relocated`` record of a manifest."""

    def __init__(self, record):
        self.record = record
        self.root = record["root"]
        self.dest_root = record["dest_root"]
        self.relpath = os.fsencode(record["relpath"])
        parts = self.relpath.rpartition(b"/")
        self.dir_rel, self.name = (parts[0], parts[2]) if b"/" in self.relpath else (b"", self.relpath)
        self.digest = record.get("digest")
        self.bytes = record.get("bytes", 0)
        self.uid = record.get("uid")


def restore_plan(opts):
    """``(items, problems)``: what a restore from ``opts.manifest`` would move back."""
    records, problems = read_manifest(opts.manifest)
    items = []
    for record in records:
        if record.get("action") != "relocated":
            continue
        try:
            item = RestoreItem(record)
        except (KeyError, TypeError) as exc:
            problems.append("%s: record without %s skipped" % (opts.manifest, exc))
            continue
        if os.path.abspath(item.root) != opts.path:
            problems.append("%s was relocated from %s, not from path %s; skipped" % (record.get("path"), item.root, opts.path))
            continue
        items.append(item)
    return items, problems


def restore(opts, items, manifest, check_mode=False, pool=None):
    """Move every item back to where it was; ``done`` lists what moved (in
    check mode, what would), ``skipped`` what is already back or cannot be."""
    outcome = Outcome()
    groups = {}
    for item in items:
        groups.setdefault(item.dest_root, []).append(item)
    with _Tree(opts.path) as tree:
        for dest_root, group in groups.items():
            try:
                src = _Tree(dest_root)
            except OldFilesError as exc:
                outcome.skipped.extend({"path": it.record.get("path"), "reason": str(exc)} for it in group)
                continue
            with src:
                mover = _Restorer(tree, src, pool)
                for item in sorted(group, key=lambda it: it.dir_rel):
                    try:
                        record = mover.one(item, check_mode)
                    except AlreadyDone:
                        continue
                    except Skip as exc:
                        outcome.skipped.append({"path": display(tree.path(item.relpath)), "reason": str(exc)})
                        continue
                    except StopRun as exc:
                        outcome.stopped = str(exc)
                        return outcome
                    if not check_mode:
                        manifest.append(record)
                    outcome.done.append((item, record))
    return outcome


class _Restorer:
    def __init__(self, tree, src, pool):
        self.tree = tree
        self.src = src
        self.pool = pool
        self.same_fs = tree.st.st_dev == src.st.st_dev

    def _dir_stats(self, item):
        """Stats of the relocated copy's directories, to recreate missing originals like them."""
        like, done = {}, b""
        for part in item.dir_rel.split(b"/") if item.dir_rel else []:
            done = _join(done, part)
            try:
                like[done] = os.lstat(self.src.path(done))
            except OSError:
                break
        return like

    def one(self, item, check_mode):
        target = self.tree.path(item.relpath)
        try:
            src_fd = self.src.open_dir(item.dir_rel)
            copy_st = os.stat(item.name, dir_fd=src_fd, follow_symlinks=False)
        except (Skip, FileNotFoundError):
            copy_st = None
        present = self._target_stat(item)
        if copy_st is None:
            if present is not None:
                raise AlreadyDone("already restored")
            raise Skip("its relocated copy %s is missing" % display(self.src.path(item.relpath)))
        if not stat.S_ISREG(copy_st.st_mode):
            raise Skip("%s is not a regular file" % display(self.src.path(item.relpath)))
        if present is not None:
            raise Skip("%s exists again; the relocated copy %s is kept" % (display(target), display(self.src.path(item.relpath))))
        record = {
            "action": "restored",
            "path": os.fsdecode(target),
            "root": os.fsdecode(self.tree.root),
            "relpath": os.fsdecode(item.relpath),
            "dest": os.fsdecode(self.src.path(item.relpath)),
            "dest_root": os.fsdecode(self.src.root),
            "bytes": copy_st.st_size,
            "uid": copy_st.st_uid,
            "gid": copy_st.st_gid,
            "digest": item.digest,
            "algorithm": ALGORITHM,
            "verified": not check_mode,
        }
        if check_mode:
            record["verified"] = False
            return record
        self._move_back(item, copy_st)
        return record

    def _target_stat(self, item):
        try:
            fd = self.tree.open_dir(item.dir_rel)
        except Skip:
            return None
        try:
            return os.stat(item.name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def _move_back(self, item, copy_st):
        like = self._dir_stats(item)
        if self.same_fs:
            dst_fd = self.tree.open_dir(item.dir_rel, create_like=like)
            src_fd = self.src.open_dir(item.dir_rel)
            try:
                os.link(item.name, item.name, src_dir_fd=src_fd, dst_dir_fd=dst_fd, follow_symlinks=False)
            except OSError as exc:
                raise Skip("cannot move back: %s" % _strerror(exc))
            os.fsync(dst_fd)
            got = digest_at(dst_fd, item.name, copy_st)
            if item.digest and got != item.digest:
                os.unlink(item.name, dir_fd=dst_fd)
                raise Skip("relocated copy does not match its manifest digest; left in the relocation area")
            _unlink(self.src.open_dir(item.dir_rel), item.name, "")
            return
        self.tree.open_dir(item.dir_rel, create_like=like)
        rel = os.fsdecode(item.relpath)
        try:
            result = copier.copy_verified(
                os.fsdecode(self.src.root),
                rel,
                [(os.fsdecode(self.tree.root), rel)],
                algorithm=ALGORITHM,
                expect_digest=item.digest,
                expect_stat=copy_st,
                preserve=True,
                **copy_tuning(copy_st.st_size, self.pool),
            )
        except copier.TargetFull as exc:
            raise StopRun("path: %s is full: %s" % (os.fsdecode(self.tree.root), exc))
        except copier.CopyError as exc:
            raise Skip("not restored: %s" % exc)
        keep_times(self.tree.open_dir(item.dir_rel), item.name, result.source_stat)
        src_fd = self.src.open_dir(item.dir_rel)
        recheck_same(src_fd, item.name, result.source_stat)
        _unlink(src_fd, item.name, "")


# --- results -------------------------------------------------------------------


def user_table(rows, names):
    """``[(uid, size, relpath), ...]`` -> sorted per-owner dicts."""
    users = {}
    for uid, size, relpath in rows:
        entry = users.setdefault(uid, [0, 0, []])
        entry[0] += 1
        entry[1] += size
        entry[2].append(relpath)
    return users_of(users, names)


def users_of(users, names):
    """``{uid: [files, bytes, relpaths]}`` (a Tally's) -> sorted per-owner dicts."""
    table = []
    for uid in sorted(users):
        files, size, paths = users[uid]
        fingerprint = hashlib.sha256(b"\0".join(sorted(paths))).hexdigest()[:16]
        table.append({"uid": uid, "name": names.user(uid), "files": files, "bytes": size, "fingerprint": fingerprint})
    return table


def file_row(opts, cand, now, names, dest=None):
    row = {
        "path": display(_join(os.fsencode(opts.path).rstrip(b"/") or b"/", cand.relpath)),
        "bytes": cand.st.st_size,
        "uid": cand.st.st_uid,
        "owner": names.user(cand.st.st_uid),
        "age_days": round((now - cand.stamp) / 86400.0, 2),
    }
    if opts.state == "relocated":
        row["dest"] = display(_join(os.fsencode(opts.dest_root), cand.relpath))
    return row


def _size(option, value):
    if value is None or value == "":
        return None
    try:
        return human_to_bytes(str(value).strip())
    except ValueError as exc:
        raise OldFilesError("%s: %s" % (option, exc))


def options_from_params(params):
    """An Options object from the module's parameters (same names)."""
    try:
        age = parse_age(params["age"]) or 0
    except ScanError as exc:
        raise OldFilesError(str(exc))
    return Options(
        params["path"],
        age=age,
        age_stamp=params["age_stamp"],
        min_size=_size("min_size", params["min_size"]),
        owners=params["owners"],
        exclude_owners=params["exclude_owners"],
        excludes=params["excludes"],
        protect=params["protect"],
        state=params["state"],
        dest=params["dest"],
        host_folder=params["host_folder"],
        max_files=params["max_files"],
        max_bytes=_size("max_bytes", params["max_bytes"]),
        free_bytes=_size("free_bytes", params["free_bytes"]),
        manifest_dir=params["manifest_dir"],
        manifest=params["manifest"],
        remove_empty_dirs=params["remove_empty_dirs"],
        order=params["order"],
        max_listed=params["max_listed"],
    )


def run(opts, check_mode=False, diff=False, now=None, clock=None):
    """The whole job: the module's result (``stopped`` set when a full
    destination stopped the run)."""
    now = time.time() if now is None else now
    if opts.state == "restored":
        return _run_restore(opts, check_mode, diff, clock)
    names = Names()
    if opts.state == "reported" or check_mode:
        the_plan = plan(opts, now=now)
        tally = Tally.of(opts, the_plan.selected, ordered=True)
        outcome = Outcome()
        outcome.dirs_removed = [display(_join(os.fsencode(opts.path), rel)) for rel in the_plan.empty_dirs]
    else:
        manifest = Manifest(opts.manifest_dir, opts.host_folder, opts.state, clock)
        with manifest:
            if fused_allowed(opts):
                the_plan, outcome, tally = apply_fused(opts, manifest, now)
            else:
                the_plan = plan(opts, now=now)
                outcome = apply(the_plan, manifest, now=now)
                tally = Tally.of(opts, [cand for cand, dummy in outcome.done])
            manifest.remove_if_empty()
        outcome.manifest = manifest.path if manifest.records else None
    rows = [file_row(opts, cand, now, names) for cand in tally.top]
    result = _result(opts, the_plan, tally, outcome, rows, names)
    result["changed"] = opts.state != "reported" and bool(tally.files or outcome.dirs_removed)
    result["warnings"] = []
    if diff and opts.state != "reported":
        result["diff"] = _diff(opts, rows)
    return result


def _result(opts, the_plan, tally, outcome, rows, names):
    return {
        "files": rows,
        "users": users_of(tally.users, names),
        "totals": {
            "files": tally.files,
            "bytes": tally.bytes,
            "matched": the_plan.matched,
            "selected": the_plan.chosen,
            "examined": the_plan.examined,
            "protected": the_plan.protected,
            "skipped": len(outcome.skipped),
            "errors": the_plan.error_count,
            "dirs_removed": len(outcome.dirs_removed),
        },
        "skipped": outcome.skipped[: opts.max_listed],
        "errors": the_plan.errors,
        "dirs_removed": outcome.dirs_removed,
        "temps_removed": outcome.temps_removed,
        "manifest": outcome.manifest,
        "dest_root": opts.dest_root,
        "stopped": outcome.stopped,
        "msg": outcome.stopped or "",
    }


def _diff(opts, rows):
    before = "".join(row["path"] + "\n" for row in rows)
    after = "".join(row["dest"] + "\n" for row in rows) if opts.state in ("relocated", "restored") else ""
    return {"before_header": "%s (%s)" % (opts.path, "files present"), "after_header": "%s (%s)" % (opts.path, opts.state), "before": before, "after": after}


def _run_restore(opts, check_mode, diff, clock):
    try:
        items, problems = restore_plan(opts)
    except ManifestError as exc:
        raise OldFilesError(str(exc))
    names = Names()
    manifest = Manifest(opts.manifest_dir, opts.host_folder, "restored", clock)
    with manifest:
        outcome = restore(opts, items, manifest, check_mode=check_mode)
    outcome.manifest = manifest.path if manifest.records else None
    rows = []
    for item, record in outcome.done[: opts.max_listed]:
        rows.append(
            {
                "path": display(os.fsencode(record["path"])),
                "dest": display(os.fsencode(record["dest"])),
                "bytes": record["bytes"],
                "uid": record["uid"],
                "owner": names.user(record["uid"]),
                "verified": record["verified"],
            }
        )
    users = user_table([(record["uid"], record["bytes"], item.relpath) for item, record in outcome.done], names)
    result = {
        "files": rows,
        "users": users,
        "totals": {
            "files": len(outcome.done),
            "bytes": sum(r["bytes"] for dummy, r in outcome.done),
            "matched": len(items),
            "selected": len(items),
            "examined": len(items),
            "protected": 0,
            "skipped": len(outcome.skipped),
            "errors": len(problems),
            "dirs_removed": 0,
        },
        "skipped": outcome.skipped[: opts.max_listed],
        "errors": [{"path": opts.manifest, "kind": "manifest", "error": p} for p in problems[:MAX_ERRORS]],
        "dirs_removed": [],
        "temps_removed": 0,
        "manifest": outcome.manifest,
        "dest_root": None,
        "stopped": outcome.stopped,
        "msg": outcome.stopped or "",
        "changed": bool(outcome.done),
        "warnings": [],
    }
    if diff:
        # restored: before is where the files are now (the relocation area), after is where they go back to
        result["diff"] = {
            "before_header": "relocation area",
            "after_header": opts.path,
            "before": "".join(r["dest"] + "\n" for r in rows),
            "after": "".join(r["path"] + "\n" for r in rows),
        }
    return result
