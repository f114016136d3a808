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
import grp
import hashlib
import os
import pwd
import stat
import time
from concurrent.futures import Future, ThreadPoolExecutor

from ansible.module_utils.common.text.formatters import human_to_bytes

from ansible_collections.datasteward.storage.plugins.module_utils._copy import engine as copier
from ansible_collections.datasteward.storage.plugins.module_utils._fs.match import Match, MatchError
from ansible_collections.datasteward.storage.plugins.module_utils._fs.usage import ScanError, parse_age
from ansible_collections.datasteward.storage.plugins.module_utils._fs.walk import display, walk_dirs
from ansible_collections.datasteward.storage.plugins.module_utils._jobs.manifest import Manifest, ManifestError, read_manifest

STATES = ("reported", "relocated", "absent", "restored")
AGE_STAMPS = ("atime", "mtime", "ctime", "max")
ORDERS = ("largest", "oldest", "path")
ALGORITHM = "sha512"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_O_NOATIME = getattr(os, "O_NOATIME", 0)
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG)
MAX_ERRORS = 100


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


def plan(opts, now=None, deadline=None):
    """Walk ``opts.path`` and decide what to act on. Raises OldFilesError
    when the root itself cannot be opened."""
    now = time.time() if now is None else now
    result = Plan(opts, now)
    root = os.fsencode(opts.path)
    try:
        result.root_st = os.lstat(root)
    except OSError as exc:
        raise OldFilesError("path: cannot read %s: %s" % (opts.path, exc.strerror or exc))
    if not stat.S_ISDIR(result.root_st.st_mode):
        raise OldFilesError(
            "path: %s is %s, not a directory" % (opts.path, "a symlink (never followed)" if stat.S_ISLNK(result.root_st.st_mode) else "not a directory")
        )
    walker = walk_dirs(
        root, one_file_system=True, deadline=deadline, on_error=lambda issue: result.error(issue.relpath, issue.kind, issue.message, issue.is_error)
    )
    try:
        for directory in walker:
            _select_in(result, directory)
    except OSError as exc:
        raise OldFilesError("path: cannot walk %s: %s" % (opts.path, exc.strerror or exc))
    result.selected = _limit(_ordered(result.eligible, opts.order), opts)
    if opts.remove_empty_dirs and opts.state in ("relocated", "absent"):
        result.empty_dirs = _emptied(result)
    return result


def _select_in(result, directory):
    opts = result.opts
    rel = directory.relpath
    result.dirs[rel] = directory.st
    match, protect, exclude_owners, owners = opts.match, opts.protect, opts.exclude_owners, opts.owners
    min_size, age, now, age_stamp = opts.min_size, opts.age, result.now, opts.age_stamp
    temp_prefix = copier.TEMP_PREFIX.encode()
    seen = kept = 0
    for name, st in directory.stream():
        seen += 1
        mode = st.st_mode
        if match is not None and match.excluded_entry(rel, name, stat.S_ISDIR(mode)):
            kept += 1  # excluded (not walked here, so that its parent is known not to become empty)
            if stat.S_ISDIR(mode):
                directory.prune(name)
            continue
        if protect is not None and protect.excluded_entry(rel, name, stat.S_ISDIR(mode)):
            result.protected += 1
            kept += 1  # a protected entry: its directory never becomes empty
            if stat.S_ISDIR(mode):
                directory.prune(name)
            continue
        if not stat.S_ISREG(mode) or st.st_size < min_size or name.startswith(temp_prefix):
            continue
        if st.st_uid in exclude_owners or (owners is not None and st.st_uid not in owners):
            continue
        stamp = stamp_of(st, age_stamp)
        if now - stamp >= age:
            result.eligible.append(Candidate(rel, name, st, stamp))
    result.examined += seen
    result.dir_entries[rel] = seen + kept


def _ordered(candidates, order):
    if order == "largest":
        return sorted(candidates, key=lambda c: (-c.st.st_size, c.stamp, c.relpath))
    if order == "oldest":
        return sorted(candidates, key=lambda c: (c.stamp, -c.st.st_size, c.relpath))
    return sorted(candidates, key=lambda c: c.relpath)


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
        self.done = []  # (Candidate-like dict) acted on
        self.skipped = []  # {"path", "reason"}
        self.dirs_removed = []
        self.stopped = None  # message when the run stopped early
        self.manifest = None


def recheck(dir_fd, cand, opts, now):
    """Raise Skip unless ``cand`` is still the same, unmodified, old file."""
    try:
        cur = os.stat(cand.name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        raise Skip("vanished since it was selected")
    except OSError as exc:
        raise Skip("cannot stat: %s" % _strerror(exc))
    if not stat.S_ISREG(cur.st_mode) or (cur.st_dev, cur.st_ino) != (cand.st.st_dev, cand.st.st_ino):
        raise Skip("replaced by another file since it was selected")
    if cur.st_size != cand.st.st_size or cur.st_mtime_ns != cand.st.st_mtime_ns:
        raise Skip("modified since it was selected")
    if now - stamp_of(cur, opts.age_stamp) < opts.age:
        raise Skip("used since it was selected (%s is recent now)" % opts.age_stamp)
    return cur


def apply(the_plan, manifest, now=None, pool=None):
    """Act on ``the_plan.selected`` (state relocated or absent)."""
    now = time.time() if now is None else now
    outcome = Outcome()
    own_pool = None
    if pool is None and the_plan.opts.state == "relocated":
        pool = own_pool = ThreadPoolExecutor(max_workers=2)
    try:
        return _apply(the_plan, manifest, now, pool, outcome)
    finally:
        if own_pool is not None:
            own_pool.shutdown(wait=True)


def _apply(the_plan, manifest, now, pool, outcome):
    opts = the_plan.opts
    order = sorted(the_plan.selected, key=lambda c: c.dir_rel)  # one directory open at a time
    with _Tree(opts.path, the_plan.root_st) as tree:
        mover = _Mover(opts, tree, the_plan, pool) if opts.state == "relocated" else None
        try:
            for cand in order:
                _act_one(tree, mover, cand, the_plan, now, manifest, outcome)
        except StopRun as exc:
            outcome.stopped = str(exc)
        finally:
            if mover is not None:
                mover.close()
        if opts.remove_empty_dirs and outcome.stopped is None:
            _remove_empty(tree, the_plan, outcome)
    return outcome


def _act_one(tree, mover, cand, the_plan, now, manifest, outcome):
    opts = the_plan.opts
    where = tree.path(cand.relpath)
    try:
        dir_fd = tree.open_dir(cand.dir_rel, expect=the_plan.dirs.get(cand.dir_rel))
        cur = recheck(dir_fd, cand, opts, now)
        if mover is None:
            _unlink(dir_fd, cand.name, where)
            record = {"action": "deleted"}
        else:
            record = mover.move(dir_fd, cand, cur)
    except Skip as exc:
        outcome.skipped.append({"path": display(where), "reason": str(exc)})
        return
    record.update(
        path=os.fsdecode(where),
        root=opts.path,
        relpath=os.fsdecode(cand.relpath),
        bytes=cand.st.st_size,
        uid=cand.st.st_uid,
        gid=cand.st.st_gid,
        mtime=cand.st.st_mtime,
    )
    try:
        manifest.append(record)
    except ManifestError as exc:
        outcome.done.append((cand, record))
        raise StopRun(str(exc))
    outcome.done.append((cand, record))


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


class _Mover:
    """Relocation into ``dest/<host_folder>``, mirroring the path below ``path``."""

    def __init__(self, opts, tree, the_plan, pool):
        self.opts = opts
        self.plan = the_plan
        self.pool = pool
        if not os.path.isdir(opts.dest):
            raise OldFilesError("dest: %s does not exist or is not a directory" % opts.dest)
        try:
            os.makedirs(opts.dest_root, mode=0o755, exist_ok=True)
        except OSError as exc:
            raise OldFilesError("dest: cannot create %s: %s" % (opts.dest_root, _strerror(exc)))
        self.dest = _Tree(opts.dest_root)
        self.same_fs = self.dest.st.st_dev == tree.st.st_dev

    def close(self):
        self.dest.close()

    def move(self, dir_fd, cand, cur):
        dest_fd = self.dest.open_dir(cand.dir_rel, create_like=self.plan.dirs)
        where = self.dest.path(cand.relpath)
        if self.same_fs:
            digest = self._link_move(dir_fd, dest_fd, cand, cur, where)
        else:
            digest = self._copy_move(dir_fd, cand, cur, where)
        return {"action": "relocated", "dest": os.fsdecode(where), "dest_root": self.opts.dest_root, "digest": digest, "algorithm": ALGORITHM}

    def _link_move(self, dir_fd, dest_fd, cand, cur, where):
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
                return self._copy_move(dir_fd, cand, cur, where)  # a bind mount, no hard links there: copy
            raise Skip("cannot link to %s: %s" % (display(where), _strerror(exc)))
        os.fsync(dest_fd)
        try:
            recheck_same(dir_fd, cand.name, cur, ctime=False)
        except Skip:
            _unlink_if(dest_fd, cand.name, cur)  # our own second link; the original stays
            raise
        _unlink(dir_fd, cand.name, display(where))
        os.fsync(dir_fd)
        return digest

    def _copy_move(self, dir_fd, cand, cur, where):
        rel = os.fsdecode(cand.relpath)
        try:
            result = copier.copy_verified(
                self.opts.path, rel, [(self.opts.dest_root, rel)], algorithm=ALGORITHM, expect_stat=cur, preserve=True, **copy_tuning(cur.st_size, self.pool)
            )
        except copier.TargetFull as exc:
            raise StopRun("dest: %s is full; stopped with %s intact: %s" % (self.opts.dest, os.fsdecode(where), exc))
        except copier.CopyError as exc:
            raise Skip("not relocated: %s" % exc)
        keep_times(self.dest.open_dir(cand.dir_rel), cand.name, result.source_stat)
        recheck_same(dir_fd, cand.name, result.source_stat)
        _unlink(dir_fd, cand.name, display(where))
        os.fsync(dir_fd)
        return result.digest


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
        entry = users.setdefault(uid, {"uid": uid, "name": names.user(uid), "files": 0, "bytes": 0, "_paths": []})
        entry["files"] += 1
        entry["bytes"] += size
        entry["_paths"].append(relpath)
    table = []
    for uid in sorted(users):
        entry = users[uid]
        paths = sorted(entry.pop("_paths"))
        entry["fingerprint"] = hashlib.sha256(b"\0".join(paths)).hexdigest()[:16]
        table.append(entry)
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
    the_plan = plan(opts, now=now)
    names = Names()
    warnings = []
    if opts.state == "reported" or check_mode:
        acted = [(cand, None) for cand in the_plan.selected]
        outcome = Outcome()
        outcome.dirs_removed = [display(_join(os.fsencode(opts.path), rel)) for rel in the_plan.empty_dirs]
    else:
        manifest = Manifest(opts.manifest_dir, opts.host_folder, opts.state, clock)
        with manifest:
            outcome = apply(the_plan, manifest, now=now)
        outcome.manifest = manifest.path if manifest.records else None
        acted = outcome.done
    rows = [file_row(opts, cand, now, names) for cand, dummy in acted[: opts.max_listed]]
    result = _result(opts, the_plan, acted, outcome, rows, names)
    result["changed"] = opts.state != "reported" and bool(acted or outcome.dirs_removed)
    result["warnings"] = warnings
    if diff and opts.state != "reported":
        result["diff"] = _diff(opts, rows)
    return result


def _result(opts, the_plan, acted, outcome, rows, names):
    users = user_table([(cand.st.st_uid, cand.st.st_size, cand.relpath) for cand, dummy in acted], names)
    return {
        "files": rows,
        "users": users,
        "totals": {
            "files": len(acted),
            "bytes": sum(cand.st.st_size for cand, dummy in acted),
            "matched": len(the_plan.eligible),
            "selected": len(the_plan.selected),
            "examined": the_plan.examined,
            "protected": the_plan.protected,
            "skipped": len(outcome.skipped),
            "errors": the_plan.error_count,
            "dirs_removed": len(outcome.dirs_removed),
        },
        "skipped": outcome.skipped[: opts.max_listed],
        "errors": the_plan.errors,
        "dirs_removed": outcome.dirs_removed,
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
