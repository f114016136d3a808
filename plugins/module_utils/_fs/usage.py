# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Full-tree usage scanner: per-user, per-group and per-directory totals.

Pure Python, standard library only, no AnsibleModule.

How it scans
------------
* Trees are read through the one walker (``_fs/walk.walk_dirs``): every
  directory opened relative to its parent's descriptor, identity-checked,
  never following a symlink, at any depth; one ``lstat`` per entry
  (``fstatat`` relative to the directory, as in GNU du). Excludes are the
  one match rule (``_fs/match``). With ``one_file_system`` an entry whose
  ``st_dev`` differs from its root's is skipped entirely, as ``du -x`` does.
* Roots by identity: each root is located by the real path of its parent
  (a root that is itself a symlink is counted as a symlink, never followed);
  a root that is the same inode as another, or that the walk of another root
  reaches anyway, is scanned once, inside the other. Results are keyed by
  ``(root, path relative to it)``, so a nested root on another file system
  is listed once, under its own name, at the depths asked for.
* A file with ``st_nlink > 1`` is remembered by ``(st_dev, st_ino)`` and
  counted once, in the directory of its smallest path. Only those inodes are
  remembered, so memory does not grow with the number of files.
* Per-user "largest" and "oldest" lists are bounded heaps of ``top`` items;
  per-directory totals are kept only down to ``depth`` below each root; the
  result lists at most ``max_owners`` users and groups (largest first).
* Workers: with ``workers > 1`` the tree is scanned by forked processes.
  A task is a subtree (``walk_dirs(start=...)``); a worker walks its tasks
  until the parent signals that another worker is idle, then returns its
  partial totals with every subdirectory it has not walked yet
  (``Walker.take_pending``), which the parent splits into new tasks.
* Deadline: with ``timeout`` the whole scan runs in worker processes (even
  with one worker), each writing the directory it is reading into shared
  memory. At the deadline the workers still running (blocked in the kernel
  by a hung mount, say) are SIGKILLed; the result says which directories
  they were reading and that the totals are partial.
* Sharding: with ``shard_count > 1`` every shard walks the whole tree but
  counts only the inodes whose number hashes to its ``shard_index``; the
  others are not even stat'ed unless they are directories.
"""

from __future__ import annotations

import heapq
import multiprocessing
import multiprocessing.connection
import os
import re
import stat
import time

from ansible_collections.datasteward.storage.plugins.module_utils._fs.match import Match, MatchError
from ansible_collections.datasteward.storage.plugins.module_utils._fs.mounts import mount_for_path, read_mounts
from ansible_collections.datasteward.storage.plugins.module_utils._fs.walk import (
    NON_UTF8,
    OTHER_FS,
    TIMEOUT,
    UNREADABLE,
    VANISHED,
    WalkError,
    display,
    walk_dirs,
)

try:
    import grp
    import pwd
except ImportError:  # pragma: no cover - not POSIX
    grp = None
    pwd = None

# Counter vector layout, shared by users, groups, directories and totals.
COUNTERS = (
    "files",
    "dirs",
    "symlinks",
    "others",
    "apparent_bytes",
    "allocated_bytes",
    "old_files",
    "old_apparent_bytes",
    "old_allocated_bytes",
)
_NCOUNT = len(COUNTERS)
_NO_FLOOR = float("-inf")
_INF = float("inf")
_I_FILES, _I_DIRS, _I_LINKS, _I_OTHERS, _I_SIZE, _I_BLOCKS, _I_OLD, _I_OLDSIZE, _I_OLDBLOCKS = range(_NCOUNT)

AGE_STAMPS = ("atime", "mtime", "ctime")
_STAMP_INDEX = {"atime": 7, "mtime": 8, "ctime": 9}  # integer seconds in os.stat_result

_AGE_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE_RE = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$", re.IGNORECASE)

MAX_LISTED = 50  # errors, vanished files and odd names listed (each)
WORKERS_PER_CPU = 4  # more scan workers than this per CPU only add memory
_S_IFMT = 0o170000
_S_IFDIR = 0o040000
_S_IFREG = 0o100000
_S_IFLNK = 0o120000
_CHECK_EVERY = 2048  # entries between looks at the "someone is idle" flag
_PRESCAN = 16384  # entries scanned in-process before forking workers
_WATCH_SECONDS = 1.0  # how often the parent checks that its workers live
_GRACE_SECONDS = 0.5  # after the deadline, for workers that stop by themselves
_SLOT = 1024  # bytes of shared memory per worker for "reading ..."
BIG_DIR_BYTES = 1 << 20  # st_size of a directory (~30,000+ entries) that workers split among them
_HASH_MULT = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1


class ScanError(Exception):
    """Bad input to the scanner; the message names the option or path."""


def parse_age(value):
    """``90d``, ``12h``, ``2w``, ``30m``, ``45s`` or plain seconds into seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ScanError("age: expected seconds or a number with a unit, got %r" % (value,))
    if isinstance(value, int):
        if value < 0:
            raise ScanError("age: must not be negative, got %d" % value)
        return value
    match = _AGE_RE.match(str(value))
    if not match:
        raise ScanError("age: cannot parse %r; expected plain seconds or a number with unit s, m, h, d or w (e.g. 90d)" % (value,))
    return int(match.group(1)) * _AGE_UNITS[match.group(2).lower()]


def shard_of(ino, shard_count):
    """The shard that owns an inode number (a Fibonacci hash, so that runs of
    consecutive inode numbers spread over all shards)."""
    return (((ino * _HASH_MULT) & _MASK64) >> 32) % shard_count


def safe_path(path):
    """A path (str with surrogate escapes, or bytes) as a JSON-safe str: UTF-8
    where it is valid, the invalid bytes backslash-escaped (``a\\xff``)."""
    return display(path)


def default_workers():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def max_workers():
    """The most scan workers worth running here: WORKERS_PER_CPU per CPU."""
    return WORKERS_PER_CPU * default_workers()


_COUNT_OF = {"errors": "error_count", "vanished": "vanished_count", "unreadable": "unreadable_count", "odd_names": "odd_name_count"}


class _Config:
    """The scan's options, as the hot loop and the workers need them."""

    def __init__(self, depth, one_file_system, top, cutoff, stamp_index, shard_index, shard_count, match, roots):
        self.depth = depth
        self.one_file_system = one_file_system
        self.top = top
        self.cutoff = cutoff
        self.stamp_index = stamp_index
        self.shard_index = shard_index
        self.shard_count = shard_count
        self.match = match
        self.roots = roots
        self.deadline = None
        self.split = 1  # slices a big directory is cut into (the workers)
        self.keep = None
        if shard_count > 1:
            self.keep = lambda ino, is_dir: is_dir or shard_of(ino, shard_count) == shard_index


class _Partial:
    """Totals of one task (or of several merged). Picklable, small: it grows
    with directories down to ``depth``, owners, ``top`` and hard links only.
    Paths are ``(root index, relpath bytes)``."""

    def __init__(self):
        # bucket (root index, relpath down to depth) -> uid<<32|gid -> counters
        self.buckets = {}
        # uid -> [largest heap of (size, blocks, stamp, path), oldest heap of (-stamp, size, blocks, path)]
        self.tops = {}
        # (dev, ino) -> (path, bucket, uid, gid, size, blocks, stamp, fmt)
        self.links = {}
        self.examined = 0
        self.duplicate_links = 0
        self.timed_out = False
        self.stopped = []  # where walks stopped at the deadline (path)
        self.errors = []  # (path, message)
        self.error_count = 0
        self.vanished = []
        self.vanished_count = 0
        self.unreadable = []  # (path, message)
        self.unreadable_count = 0
        self.odd_names = []
        self.odd_name_count = 0

    def note(self, kind, path, message=None):
        count = _COUNT_OF[kind]
        setattr(self, count, getattr(self, count) + 1)
        listed = getattr(self, kind)
        if len(listed) < MAX_LISTED:
            listed.append((path, message) if message is not None else path)

    def merge(self, other, top):
        for bucket, pairs in other.buckets.items():
            mine = self.buckets.get(bucket)
            if mine is None:
                self.buckets[bucket] = pairs
                continue
            for pair, counts in pairs.items():
                _add_counts(mine, pair, counts)
        for uid, (largest, oldest) in other.tops.items():
            mine = self.tops.get(uid)
            if mine is None:
                self.tops[uid] = [largest, oldest]
            else:
                mine[0] = _heap_of(top, mine[0] + largest)
                mine[1] = _heap_of(top, mine[1] + oldest)
        self._merge_links(other.links)
        self.examined += other.examined
        self.duplicate_links += other.duplicate_links
        self.timed_out = self.timed_out or other.timed_out
        self.stopped.extend(other.stopped[: max(0, MAX_LISTED - len(self.stopped))])
        for kind, count in _COUNT_OF.items():
            setattr(self, count, getattr(self, count) + getattr(other, count))
            listed = getattr(self, kind)
            listed.extend(getattr(other, kind)[: max(0, MAX_LISTED - len(listed))])

    def _merge_links(self, links):
        for key, record in links.items():
            self.add_link(key, record)

    def add_link(self, key, record):
        """Remember a hard-linked inode once, under its smallest path."""
        have = self.links.get(key)
        if have is None:
            self.links[key] = record
        else:
            self.duplicate_links += 1
            if record[0] < have[0]:
                self.links[key] = record


def _heap_of(top, items):
    heap = heapq.nlargest(top, items)
    heapq.heapify(heap)
    return heap


def _add_counts(table, key, counts):
    """Add a counter vector into ``table[key]`` (a copy when it is new)."""
    have = table.get(key)
    if have is None:
        table[key] = list(counts)
    else:
        for i in range(_NCOUNT):
            have[i] += counts[i]


# ------------------------------------------------------------------ roots


class Root:
    """One root to scan: ``path`` as given (absolute, normalised; what the
    result shows), ``real`` (bytes: the real path of its parent plus its own
    name), ``st`` (its lstat) and, for a root the scan of another one counts
    anyway, ``inside`` (that root's index)."""

    def __init__(self, path, real, st):
        self.path = path
        self.real = real
        self.st = st
        self.inside = None
        self.index = None

    def show(self, relpath):
        """The absolute path of ``relpath`` below this root, for results."""
        if not relpath:
            return display(self.path)
        return display(os.fsencode(self.path).rstrip(b"/") + b"/" + relpath)


def _locate(path):
    raw = os.fsdecode(path)
    if not raw:
        raise ScanError("paths: empty path")
    shown = os.path.normpath(os.path.abspath(raw))
    parent, name = os.path.split(shown)
    real = os.path.join(os.path.realpath(parent), name) if name else shown
    try:
        st = os.lstat(real)
    except FileNotFoundError:
        raise ScanError("paths: %s does not exist" % safe_path(shown)) from None
    except OSError as exc:
        raise ScanError("paths: cannot stat %s: %s" % (safe_path(shown), exc.strerror or exc)) from None
    return Root(shown, os.fsencode(real), st)


def resolve_roots(paths, one_file_system=True):
    """The roots to scan, in the order given, each once by identity; a root
    that another root's walk reaches is kept (for ``roots`` in the result)
    with ``inside`` set, and not scanned on its own."""
    roots = []
    by_identity = {}
    for path in paths:
        root = _locate(path)
        key = (root.st.st_dev, root.st.st_ino)
        if key in by_identity:
            root.inside = by_identity[key]
        else:
            by_identity[key] = len(roots)
        root.index = len(roots)
        roots.append(root)
    for root in roots:
        if root.inside is None:
            for outer in roots:
                if outer is not root and outer.inside is None and _reached_from(outer, root, one_file_system):
                    root.inside = outer.index
                    break
    return roots


def _reached_from(outer, inner, one_file_system):
    """Whether the walk of ``outer`` counts ``inner``: its real location lies
    under outer's and, with ``one_file_system``, every directory on the way
    and ``inner`` itself are on outer's file system (a root on another file
    system is scanned on its own, as du -x does with its arguments)."""
    if not stat.S_ISDIR(outer.st.st_mode):
        return False
    prefix = outer.real.rstrip(b"/") + b"/"
    if not inner.real.startswith(prefix):
        return False
    current = outer.real
    for part in inner.real[len(prefix) :].split(b"/"):
        current = current.rstrip(b"/") + b"/" + part
        try:
            st = os.lstat(current)
        except OSError:
            return False
        if one_file_system and st.st_dev != outer.st.st_dev:
            return False
    return True


# --------------------------------------------------------------- hot loop


class _Tally:
    """The state of one process's scan that the hot loop touches."""

    def __init__(self, cfg, partial):
        self.cfg = cfg
        self.partial = partial
        self.floors = {}  # uid -> [smallest size in a full largest heap, newest -stamp in a full oldest heap]
        self.spawned = []  # tasks: the slices of big subdirectories met (pruned from this walk)


def _bucket_of(relpath, depth, maxdepth):
    if depth <= maxdepth:
        return relpath
    return b"/".join(relpath.split(b"/")[:maxdepth])


def _count_dir_entry(tally, bucket, child, st):
    """A subdirectory's own inode, in its own bucket down to ``depth``."""
    if tally.cfg.shard_count > 1 and shard_of(st.st_ino, tally.cfg.shard_count) != tally.cfg.shard_index:
        return
    accs = tally.partial.buckets.setdefault(child if child is not None else bucket, {})
    pair = st.st_uid << 32 | st.st_gid
    counts = accs.get(pair)
    if counts is None:
        counts = accs[pair] = [0] * _NCOUNT
    counts[_I_DIRS] += 1
    counts[_I_SIZE] += st.st_size
    counts[_I_BLOCKS] += st.st_blocks


def _count_link(tally, path, bucket, st):
    """A file with several hard links: remembered, counted once at the end."""
    tally.partial.add_link(
        (st.st_dev, st.st_ino), (path, bucket, st.st_uid, st.st_gid, st.st_size, st.st_blocks, st[tally.cfg.stamp_index], st.st_mode & _S_IFMT)
    )


def _count_directory(tally, root_index, directory, root_dev):
    """Count the entries of one directory (the hot loop). Returns how many
    were examined.

    Most entries are regular files with one link, on the root's device, in
    runs of one owner: those are added up in local variables, and into the
    owner's counters when the run ends (``_flush``). Anything else (another
    kind, a hard link, another device) is counted one at a time
    (``_count_entry``). A file is offered to its owner's top lists only when
    it can enter them: at least the smallest of a full largest list, or no
    newer than the newest of a full oldest list (the floors, kept here)."""
    cfg = tally.cfg
    cutoff, stamp_index = cfg.cutoff, cfg.stamp_index
    relpath = directory.relpath
    bucket = (root_index, _bucket_of(relpath, directory.depth, cfg.depth))
    accs = tally.partial.buckets.setdefault(bucket, {})
    prefix = relpath + b"/" if relpath else b""
    where = (root_index, directory, bucket, accs, prefix, root_dev)
    examined = files = size_sum = blocks_sum = old = old_size = old_blocks = 0
    run_uid = run_gid = floor_size = floor_stamp = None
    ifmt, ifreg = _S_IFMT, _S_IFREG  # module constants as locals: this loop runs once per entry
    for name, st in directory.stream():
        mode, _ino, st_dev, nlink, uid, gid, size, _atime, _mtime, _ctime = st
        if mode & ifmt != ifreg or nlink != 1 or st_dev != root_dev:
            examined += _count_entry(tally, where, name, st)
            continue
        if uid != run_uid or gid != run_gid:
            if files:
                examined += _flush(accs, run_uid, run_gid, (files, size_sum, blocks_sum, old, old_size, old_blocks))
                files = size_sum = blocks_sum = old = old_size = old_blocks = 0
            run_uid, run_gid = uid, gid
            floor_size, floor_stamp = _floors(tally, uid)
        blocks = st.st_blocks
        files += 1
        size_sum += size
        blocks_sum += blocks
        stamp = st[stamp_index]
        if stamp < cutoff:
            old += 1
            old_size += size
            old_blocks += blocks
        if size >= floor_size or stamp <= floor_stamp:
            _offer_top(tally, uid, size, blocks, stamp, (root_index, prefix + name))
            floor_size, floor_stamp = _floors(tally, uid)
    if files:
        examined += _flush(accs, run_uid, run_gid, (files, size_sum, blocks_sum, old, old_size, old_blocks))
    return examined


def _flush(accs, uid, gid, run):
    """Add a run of one owner's regular files (``files, size, blocks, old,
    old size, old blocks``) into its counters; returns the number of files."""
    files, size, blocks, old, old_size, old_blocks = run
    pair = uid << 32 | gid
    counts = accs.get(pair)
    if counts is None:
        counts = accs[pair] = [0] * _NCOUNT
    counts[_I_FILES] += files
    counts[_I_SIZE] += size
    counts[_I_BLOCKS] += blocks
    counts[_I_OLD] += old
    counts[_I_OLDSIZE] += old_size
    counts[_I_OLDBLOCKS] += old_blocks
    return files


def _floors(tally, uid):
    """What a file of ``uid`` must reach to be offered to its top lists:
    ``(size at least, stamp at most)``; nothing reaches them with top 0."""
    if not tally.cfg.top:
        return _INF, _NO_FLOOR
    floors = tally.floors.get(uid)
    if floors is None:
        return -1, _INF
    return floors[0], -floors[1]


def _count_entry(tally, where, name, st):
    """One entry off the fast path of ``_count_directory``: a directory, a
    symlink or other special file, a file with several links, or anything
    on another device than the root's (skipped with one_file_system: 0 is
    returned; else 1)."""
    root_index, directory, bucket, accs, prefix, root_dev = where
    cfg = tally.cfg
    st_dev = st.st_dev
    if cfg.one_file_system and st_dev != root_dev:
        return 0
    fmt = st.st_mode & _S_IFMT
    if fmt == _S_IFDIR:
        child_depth = directory.depth + 1
        child = (root_index, prefix + name) if child_depth <= cfg.depth else None
        _count_dir_entry(tally, bucket, child, st)
        if st.st_size >= BIG_DIR_BYTES and cfg.split > 1:
            directory.prune(name)
            _spawn_slices(tally, root_index, (prefix + name, st_dev, st.st_ino, child_depth))
    elif st.st_nlink > 1:
        _count_link(tally, (root_index, prefix + name), bucket, st)
    else:
        path = (root_index, prefix + name)
        _add_record(tally.partial, (path, bucket, st.st_uid, st.st_gid, st.st_size, st.st_blocks, st[cfg.stamp_index], fmt), cfg, tally)
    return 1


def _spawn_slices(tally, root_index, start):
    """A big directory becomes one task per worker, each listing it all but
    stat'ing (and descending into) only the entries whose inode number
    hashes to its slice: one directory of 300,000 files uses every CPU."""
    for index in range(tally.cfg.split):
        tally.spawned.append((root_index, start, (index, tally.cfg.split)))


def _offer_top(tally, uid, size, blocks, stamp, path):
    """Offer a regular file to its owner's largest and oldest heaps; keep
    the floors (what a file must beat to enter a full heap) up to date.
    Ties are broken by path, so the lists do not depend on the order."""
    top = tally.cfg.top
    heaps = tally.partial.tops.get(uid)
    if heaps is None:
        heaps = tally.partial.tops[uid] = [[], []]
    largest, oldest = heaps
    for heap, item in ((largest, (size, blocks, stamp, path)), (oldest, (-stamp, size, blocks, path))):
        if len(heap) < top:
            heapq.heappush(heap, item)
        elif item > heap[0]:
            heapq.heapreplace(heap, item)
    tally.floors[uid] = [largest[0][0] if len(largest) >= top else -1, oldest[0][0] if len(oldest) >= top else _NO_FLOOR]


def _add_record(partial, record, cfg, tally=None):
    """Count one (deduplicated) hard-linked inode, or any entry off the hot
    loop's fast path, into ``partial`` (``tally``: the scan's, if any)."""
    path, bucket, uid, gid, size, blocks, stamp, fmt = record
    accs = partial.buckets.setdefault(bucket, {})
    counts = accs.get(uid << 32 | gid)
    if counts is None:
        counts = accs[uid << 32 | gid] = [0] * _NCOUNT
    counts[_I_SIZE] += size
    counts[_I_BLOCKS] += blocks
    if fmt == _S_IFREG:
        counts[_I_FILES] += 1
        if stamp < cfg.cutoff:
            counts[_I_OLD] += 1
            counts[_I_OLDSIZE] += size
            counts[_I_OLDBLOCKS] += blocks
        if cfg.top:
            _offer_top(tally if tally is not None else _Tally(cfg, partial), uid, size, blocks, stamp, path)
    elif fmt == _S_IFLNK:
        counts[_I_LINKS] += 1
    else:
        counts[_I_OTHERS] += 1


# ------------------------------------------------------------------ tasks

_KIND_OF = {VANISHED: "vanished", UNREADABLE: "unreadable", NON_UTF8: "odd_names"}


def _issue_noter(partial, cfg, root_index):
    """The walker's on_error for one root: issues into ``partial``. A shard
    other than the first drops what concerns directories (every shard
    lists every directory; one reports it, so the shards' errors add up)."""

    def note(issue):
        if issue.kind == OTHER_FS:
            return
        if issue.kind == TIMEOUT:
            partial.timed_out = True
            if len(partial.stopped) < MAX_LISTED:
                partial.stopped.append((root_index, issue.relpath))
            return
        if cfg.shard_index and issue.is_dir:
            return
        path = (root_index, issue.relpath)
        kind = _KIND_OF.get(issue.kind, "errors")
        if kind in ("odd_names", "vanished"):
            partial.note(kind, path)
        else:
            partial.note(kind, path, issue.message)

    return note


def _scan_task(task, cfg, partial, hungry=None, check_every=_CHECK_EVERY, on_enter=None):
    """Walk one task (``(root index, start, slice)``: a whole root or a
    subtree, or one slice of a big directory) into ``partial``. When
    ``hungry`` (a shared flag) is raised, or a big directory was met, stop
    after the current directory and return the subdirectories not walked
    yet (and the big directory's slices) as new tasks; else return []."""
    root_index, start, piece = task
    root = cfg.roots[root_index]
    tally = _Tally(cfg, partial)
    enter = None if on_enter is None else (lambda relpath: on_enter(root_index, relpath))
    try:
        walker = walk_dirs(
            root.real,
            match=cfg.match,
            one_file_system=cfg.one_file_system,
            deadline=cfg.deadline,
            on_error=_issue_noter(partial, cfg, root_index),
            start=start,
            keep=cfg.keep,
            on_enter=enter,
            first_slice=piece,  # (index, count): the inode numbers of one directory's files spread evenly
        )
    except WalkError as exc:
        partial.note("vanished" if isinstance(exc, FileNotFoundError) else "errors", (root_index, b""), str(exc))
        return []
    examined = checked_at = 0
    root_dev = root.st.st_dev
    left = []
    with walker:
        for directory in walker:
            examined += _count_directory(tally, root_index, directory, root_dev)
            if tally.spawned:
                left = tally.spawned + [(root_index, pending, None) for pending in walker.take_pending()]
                tally.spawned = []
            elif hungry is not None and examined - checked_at >= check_every:
                checked_at = examined
                if hungry.value:
                    left = [(root_index, pending, None) for pending in walker.take_pending()]
    partial.examined += examined
    return left


def _scan_tasks(tasks, cfg, partial, hungry=None, check_every=_CHECK_EVERY, on_enter=None):
    """Walk tasks in order; when hungry, hand back what is left (the
    subdirectories given up and the tasks not started)."""
    for index, task in enumerate(tasks):
        if task[2] is not None and hungry is not None and hungry.value and len(tasks) > 1:
            return list(tasks[index:])  # slices are for the workers, together
        left = _scan_task(task, cfg, partial, hungry, check_every, on_enter)
        if left or (hungry is not None and hungry.value and index + 1 < len(tasks) and partial.examined >= check_every):
            return left + list(tasks[index + 1 :])
        if partial.timed_out:
            return []
    return []


class _Flag:
    """Stands in for the shared "a worker is idle" flag."""

    def __init__(self, value):
        self.value = value


_RAISED = _Flag(1)

# State of a forked worker: set when it starts.
_WORKER = {}


def _publish(root_index, relpath):
    """Write the directory this worker is about to read into its slot."""
    data = (b"%d\0" % root_index + relpath)[: _SLOT - 1] + b"\0"
    offset = _WORKER["slot"]
    _WORKER["slots"][offset : offset + len(data)] = data


def _worker_task(tasks):
    partial = _Partial()
    cfg = _WORKER["cfg"]
    # What a worker reads is asked for only at a deadline: published only then.
    left = _scan_tasks(list(tasks), cfg, partial, _WORKER["hungry"], _CHECK_EVERY, _publish if cfg.deadline is not None else None)
    _WORKER["slots"][_WORKER["slot"]] = 0
    return partial, left


def _worker_main(conn, cfg, hungry, slots, slot):
    """A forked worker: scan the task lists it is sent until it gets None."""
    _WORKER.update(cfg=cfg, hungry=hungry, slots=slots, slot=slot * _SLOT)
    while True:
        tasks = conn.recv()
        if tasks is None:
            return
        try:
            result = _worker_task(tasks)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            result = ScanError("%s: %s" % (type(exc).__name__, exc))
        conn.send(result)


def _split(tasks, parts):
    """Deal tasks round-robin into ``parts`` lists, so that the shallow
    (big) subtrees at the front spread over all of them."""
    parts = max(1, min(parts, len(tasks)))
    return [tasks[i::parts] for i in range(parts)]


class _NoWorkers(Exception):
    """The worker processes could not be started; nothing was scanned by them."""


class _Workers:
    """Forked scan workers, each with its own pipe (no lock is shared, so a
    worker can be SIGKILLed at any moment: one blocked in the kernel by a
    hung mount answers nothing else), the shared "someone is idle" flag and
    one "reading ..." slot each."""

    def __init__(self, cfg, workers):
        self.ctx = multiprocessing.get_context("fork")
        self.hungry = self.ctx.Value("b", 1, lock=False)
        self.slots = self.ctx.Array("c", _SLOT * workers, lock=False)
        self.procs = []
        try:
            for slot in range(workers):
                mine, theirs = self.ctx.Pipe()
                proc = self.ctx.Process(target=_worker_main, args=(theirs, cfg, self.hungry, self.slots, slot), daemon=True)
                proc.start()
                theirs.close()
                self.procs.append((proc, mine))
        except OSError as exc:  # no memory or process slots for the workers
            self.close()
            raise _NoWorkers("could not start %d scan workers (%s); scanned in one process" % (workers, exc.strerror or exc)) from None
        self.idle = list(range(workers))

    def submit(self, tasks):
        index = self.idle.pop()
        self.procs[index][1].send(tasks)

    def results(self, wait):
        """Results that arrived within ``wait`` seconds: [(index, result)].
        Raises ScanError if a worker died with its task."""
        conns = dict((conn, index) for index, (_proc, conn) in enumerate(self.procs) if index not in self.idle)
        sentinels = dict((self.procs[index][0].sentinel, index) for index in conns.values())
        ready = multiprocessing.connection.wait(list(conns) + list(sentinels), timeout=max(0, wait))
        out = []
        for item in ready:
            if item in conns:
                index = conns[item]
                try:
                    out.append((index, item.recv()))
                except EOFError:
                    continue
                self.idle.append(index)
        dead = [self.procs[index][0].pid for item, index in sentinels.items() if item in ready and index not in self.idle]
        if dead:
            raise ScanError(
                "scan worker process %s died before finishing its part of the scan "
                "(killed by a signal or the OOM killer?)" % ", ".join(str(pid) for pid in sorted(dead))
            )
        return out

    def reading(self, roots):
        """What the busy workers are reading now, as absolute paths."""
        paths = []
        raw = bytes(self.slots)
        for offset in range(0, len(raw), _SLOT):
            slot = raw[offset : offset + _SLOT].split(b"\0")
            if len(slot) >= 2 and slot[0]:
                paths.append(roots[int(slot[0])].show(slot[1]))
        return sorted(paths)

    def close(self, kill=False):
        """Stop every worker (SIGKILL with ``kill``) and reap it."""
        for proc, conn in self.procs:
            if kill:
                proc.kill()
            else:
                try:
                    conn.send(None)
                except OSError:
                    proc.kill()
        for proc, conn in self.procs:
            proc.join(5)
            if proc.exitcode is None:
                proc.kill()
                proc.join()
            conn.close()
        self.procs = []


def _run_parallel(tasks, cfg, workers, partial, deadline=None):
    """Hand the tasks out to ``workers`` forked processes, re-split what they
    return when one of them is idle, and add their partial totals up.
    Returns the directories being read when the deadline struck ([] if it
    did not)."""
    pool = _Workers(cfg, workers)
    killed = False
    try:
        reading = _drive(pool, tasks, cfg, workers, partial, deadline)
        killed = bool(reading)
        return reading
    except BaseException:
        killed = True
        raise
    finally:
        pool.close(kill=killed)


def _drive(pool, tasks, cfg, workers, partial, deadline):
    pending = _split(tasks, workers)
    failure = None
    while pending or len(pool.idle) < workers:
        late = deadline is not None and time.monotonic() >= deadline
        if late and pending:
            _drop_late(pending, partial)  # nothing new is started after the deadline
            pending = []
        while pending and pool.idle:
            pool.submit(pending.pop())
        if not pending and len(pool.idle) == workers:
            break
        pool.hungry.value = 1 if pool.idle else 0
        wait = _WATCH_SECONDS if deadline is None else min(_WATCH_SECONDS, deadline + _GRACE_SECONDS - time.monotonic())
        if deadline is not None and wait <= 0:
            partial.timed_out = True
            return pool.reading(cfg.roots) or ["(a worker between two directories)"]
        for _index, result in pool.results(wait):
            if isinstance(result, BaseException):
                failure = failure or result
                continue
            part, left = result
            partial.merge(part, cfg.top)
            if left and not part.timed_out:
                pending.extend(_split(left, max(len(pool.idle), 1)))
        pool.hungry.value = 1 if (not pending and pool.idle) else 0
    if failure is not None:
        raise ScanError("scan worker failed: %s" % failure)
    return []


def _drop_late(pending, partial):
    """Tasks not started by the deadline: the totals are partial, and the
    subtrees left out are where the scan stopped."""
    partial.timed_out = True
    for tasks in pending:
        for root_index, start, _piece in tasks:
            if len(partial.stopped) < MAX_LISTED:
                partial.stopped.append((root_index, start[0] if start else b""))


# ------------------------------------------------------------------- scan


def _check_options(age_stamp, top, depth, workers, shard_index, shard_count, timeout, max_owners):
    if age_stamp not in AGE_STAMPS:
        raise ScanError("age_stamp: must be one of %s, got %r" % (", ".join(AGE_STAMPS), age_stamp))
    for name, value in (("top", top), ("depth", depth)):
        if value < 0:
            raise ScanError("%s: must be 0 or more, got %d" % (name, value))
    if workers is not None and workers < 1:
        raise ScanError("workers: must be 1 or more, got %d" % workers)
    if shard_count < 1:
        raise ScanError("shard_count: must be 1 or more, got %d" % shard_count)
    if not 0 <= shard_index < shard_count:
        raise ScanError("shard_index: must be between 0 and shard_count - 1 (%d), got %d" % (shard_count - 1, shard_index))
    if timeout is not None and timeout <= 0:
        raise ScanError("timeout: must be more than 0 seconds, got %r" % (timeout,))
    if max_owners is not None and max_owners < 0:
        raise ScanError("max_owners: must be 0 or more, got %d" % max_owners)


def _workers_for(workers, warnings):
    """The number of workers to run: the CPUs by default, at most
    WORKERS_PER_CPU per CPU (more is clamped, with a warning)."""
    if workers is None:
        return default_workers()
    cap = max_workers()
    if workers > cap:
        warnings.append("workers: %d is more than %d per CPU on this host (%d CPUs); using %d" % (workers, WORKERS_PER_CPU, default_workers(), cap))
        return cap
    return workers


def _count_roots(roots, cfg, partial):
    """Count each root's own inode; return the tasks (one per directory root)."""
    tasks = []
    for root in roots:
        if root.inside is not None:
            continue
        st = root.st
        partial.examined += 1
        owned = cfg.shard_count == 1 or shard_of(st.st_ino, cfg.shard_count) == cfg.shard_index
        bucket = (root.index, b"")
        partial.buckets.setdefault(bucket, {})
        if stat.S_ISDIR(st.st_mode):
            if st.st_size >= BIG_DIR_BYTES and cfg.split > 1:
                tasks.extend((root.index, None, (index, cfg.split)) for index in range(cfg.split))
            else:
                tasks.append((root.index, None, None))
            if owned:
                _count_dir_entry(_Tally(cfg, partial), bucket, None, st)
        elif owned:
            if st.st_nlink > 1:
                _count_link(_Tally(cfg, partial), (root.index, b""), bucket, st)
            else:
                _add_record(
                    partial, ((root.index, b""), bucket, st.st_uid, st.st_gid, st.st_size, st.st_blocks, st[cfg.stamp_index], st.st_mode & _S_IFMT), cfg
                )
    return tasks


def _run(tasks, cfg, workers, partial, timeout, warnings):
    """Scan the tasks: in this process, or (after a first slice here, when
    there is no timeout) in forked workers. Returns what was being read
    when the timeout struck."""
    if timeout is not None:
        deadline = time.monotonic() + timeout
        cfg.deadline = deadline
        if not tasks:
            return []
        try:
            return _run_parallel(tasks, cfg, workers, partial, deadline)
        except _NoWorkers as exc:
            warnings.append(str(exc) + "; the timeout cannot interrupt a hung file system there")
            _scan_tasks(tasks, cfg, partial)
            return [] if not partial.timed_out else ["(in the module's own process)"]
    if workers > 1 and tasks:
        # A small tree is done before forking workers would have paid off.
        tasks = _scan_tasks(tasks, cfg, partial, _RAISED, _PRESCAN)
        if tasks:
            try:
                return _run_parallel(tasks, cfg, workers, partial)
            except _NoWorkers as exc:
                warnings.append(str(exc))
    _scan_tasks(tasks, cfg, partial)
    return []


def scan(
    paths,
    excludes=None,
    one_file_system=True,
    age=None,
    age_stamp="mtime",
    top=10,
    depth=1,
    workers=None,
    shard_index=0,
    shard_count=1,
    now=None,
    timeout=None,
    max_owners=None,
):
    """Scan ``paths`` and return the result dict (``users``, ``groups``,
    ``directories``, ``totals``, ``errors``, ``roots``, ``partial``...).
    Raises ScanError for bad options or a root that cannot be scanned at all."""
    if not paths:
        raise ScanError("paths: at least one path is required")
    _check_options(age_stamp, top, depth, workers, shard_index, shard_count, timeout, max_owners)
    age_seconds = parse_age(age)
    try:
        match = Match(excludes=excludes) if excludes else None
    except MatchError as exc:
        raise ScanError(str(exc)) from None
    warnings = []
    workers = _workers_for(workers, warnings)
    started = time.time()
    clock = time.monotonic()
    now = started if now is None else now
    roots = resolve_roots(paths, one_file_system)
    cfg = _Config(
        depth,
        bool(one_file_system),
        top,
        (now - age_seconds) if age_seconds is not None else float("-inf"),
        _STAMP_INDEX[age_stamp],
        shard_index,
        shard_count,
        match,
        roots,
    )
    cfg.split = workers if workers > 1 else 1
    partial = _Partial()
    tasks = _count_roots(roots, cfg, partial)
    reading = _run(tasks, cfg, workers, partial, timeout, warnings)
    for record in partial.links.values():
        _add_record(partial, record, cfg)
    result = _report(partial, cfg, now, time.monotonic() - clock, max_owners)
    if partial.timed_out and not reading:
        reading = sorted(set(roots[index].show(relpath) for index, relpath in partial.stopped))
    result["partial"] = bool(partial.timed_out or reading)
    result["reading"] = reading
    if age_stamp == "atime":
        warnings.extend(atime_warnings([root.path for root in roots if root.inside is None]))
    result["warnings"] = warnings
    return result


# ----------------------------------------------------------------- report


def _name_of(table, ident):
    if table is None:
        return None
    try:
        return table(ident)[0]
    except (KeyError, OverflowError):
        return None


def _counts_dict(counts):
    out = dict(zip(COUNTERS, counts))
    out["allocated_bytes"] *= 512
    out["old_allocated_bytes"] *= 512
    return out


def _top_list(heap, now, largest, roots):
    out = []
    for item in sorted(heap, reverse=True):
        if largest:
            size, blocks, stamp, path = item
        else:
            neg, size, blocks, path = item
            stamp = -neg
        out.append({"path": roots[path[0]].show(path[1]), "bytes": size, "allocated_bytes": blocks * 512, "age_seconds": max(0, int(now - stamp))})
    return out


def _largest_first(table, max_owners):
    """Owner ids, largest allocation first (ties by id), at most max_owners;
    and how many were left out."""
    order = sorted(table, key=lambda ident: (-table[ident][_I_BLOCKS], -table[ident][_I_SIZE], ident))
    if max_owners is None or len(order) <= max_owners:
        return order, 0
    return order[:max_owners], len(order) - max_owners


def _owner_tables(partial):
    users, groups = {}, {}
    for pairs in partial.buckets.values():
        for pair, counts in pairs.items():
            _add_counts(users, pair >> 32, counts)
            _add_counts(groups, pair & 0xFFFFFFFF, counts)
    return users, groups


def _user_list(users, partial, now, roots, max_owners):
    order, omitted = _largest_first(users, max_owners)
    out = []
    for uid in order:
        entry = {"uid": uid, "name": _name_of(pwd.getpwuid if pwd else None, uid)}
        entry.update(_counts_dict(users[uid]))
        largest, oldest = partial.tops.get(uid, ([], []))
        entry["largest"] = _top_list(largest, now, True, roots)
        entry["oldest"] = _top_list(oldest, now, False, roots)
        out.append(entry)
    return out, omitted


def _group_list(groups, max_owners):
    order, omitted = _largest_first(groups, max_owners)
    out = []
    for gid in order:
        entry = {"gid": gid, "name": _name_of(grp.getgrgid if grp else None, gid)}
        entry.update(_counts_dict(groups[gid]))
        out.append(entry)
    return out, omitted


def _directory_list(partial, roots):
    """Each directory down to ``depth`` once, under its own root: a bucket
    rolls up into its ancestors within its root, never past it."""
    totals = {}
    for (root_index, relpath), pairs in partial.buckets.items():
        bucket_sum = [sum(column) for column in zip(*pairs.values())] if pairs else [0] * _NCOUNT
        while True:
            _add_counts(totals, (root_index, relpath), bucket_sum)
            if not relpath:
                break
            relpath = relpath.rpartition(b"/")[0]
    out = []
    for root_index, relpath in sorted(totals):
        entry = {"path": roots[root_index].show(relpath), "depth": relpath.count(b"/") + 1 if relpath else 0}
        entry.update(_counts_dict(totals[(root_index, relpath)]))
        out.append(entry)
    return out


def _totals(users, partial, seconds):
    totals = [sum(column) for column in zip(*users.values())] if users else [0] * _NCOUNT
    total = _counts_dict(totals)
    examined = partial.examined
    total.update(
        {
            "entries": sum(totals[:4]),
            "examined": examined,
            "duplicate_links": partial.duplicate_links,
            "hardlinked_inodes": len(partial.links),
            "errors": partial.error_count + partial.unreadable_count + partial.vanished_count,
            "unreadable": partial.unreadable_count,
            "vanished": partial.vanished_count,
            "non_utf8_names": partial.odd_name_count,
            "seconds": round(seconds, 3),
            "entries_per_second": int(examined / seconds) if seconds > 0 else examined,
        }
    )
    return total


def _report(partial, cfg, now, seconds, max_owners):
    roots = cfg.roots
    users, groups = _owner_tables(partial)
    user_list, users_omitted = _user_list(users, partial, now, roots, max_owners)
    group_list, groups_omitted = _group_list(groups, max_owners)

    def show(path):
        return roots[path[0]].show(path[1])

    return {
        "users": user_list,
        "groups": group_list,
        "users_omitted": users_omitted,
        "groups_omitted": groups_omitted,
        "directories": _directory_list(partial, roots),
        "totals": _totals(users, partial, seconds),
        "errors": [{"path": show(p), "error": m} for p, m in partial.errors]
        + [{"path": show(p), "error": "unreadable: %s" % m} for p, m in partial.unreadable]
        + [{"path": show(p), "error": "vanished during the scan"} for p in partial.vanished],
        "non_utf8_names": [show(p) for p in partial.odd_names],
        "roots": [
            {
                "path": safe_path(root.path),
                "real_path": safe_path(root.real),
                "counted_in": safe_path(roots[root.inside].path if root.inside is not None else root.path),
            }
            for root in roots
        ],
        "shard": {"index": cfg.shard_index, "count": cfg.shard_count},
    }


def atime_warnings(roots, mounts=None):
    """Warnings for roots on noatime/relatime mounts when ages are by atime."""
    if mounts is None:
        try:
            mounts = read_mounts()
        except OSError:
            return []
    warnings = []
    for root in roots:
        real = os.path.realpath(os.fsdecode(root))
        mount = mount_for_path(real, mounts)
        if mount is None:
            continue
        options = mount.options.split(",")
        where = "%s (mounted on %s)" % (safe_path(root), mount.mount_point)
        if "noatime" in options:
            warnings.append(
                "age_stamp=atime but %s is mounted noatime: access times are never updated there, "
                "so every file looks as old as its creation or last explicit touch" % where
            )
        elif "relatime" in options:
            warnings.append(
                "age_stamp=atime but %s is mounted relatime: a read updates atime only when it is older "
                "than mtime/ctime or more than 24 hours old, so ages under a day are unreliable" % where
            )
    return warnings
