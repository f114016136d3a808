# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Full-tree usage scanner: per-user, per-group and per-directory totals.

Pure Python, standard library only, no AnsibleModule.

How it scans
------------
* Each directory is opened with ``O_NOFOLLOW | O_DIRECTORY`` and listed with
  ``os.scandir(fd)``, so the one ``lstat`` per entry
  (``DirEntry.stat(follow_symlinks=False)``) is an ``fstatat`` relative to
  the directory, as in GNU du, not a lookup of the whole path again. Names are
  str with surrogate escapes (undecodable bytes survive); results show them
  with the invalid bytes backslash-escaped. Symlinks are counted as symlinks
  and never followed. With ``one_file_system`` an entry whose ``st_dev``
  differs from its root's is skipped entirely, as ``du -x`` does.
* A file with ``st_nlink > 1`` is remembered by ``(st_dev, st_ino)`` and
  counted once, in the directory of its smallest path (deterministic, whatever
  the order the workers met the links in). Only those inodes are remembered,
  so memory does not grow with the number of files.
* Per-user "largest" and "oldest" lists are bounded heaps of ``top`` items;
  per-directory totals are kept only down to ``depth`` below each root.
* Workers: with ``workers > 1`` the tree is scanned by forked processes. Each
  task is a stack of directories; a worker pops and scans directories until
  the parent signals that another worker is idle, then returns its partial
  totals with the rest of its stack, which the parent splits into new tasks.
  Partial totals are added up in the parent, and the hard-linked inodes of all
  workers are merged there so each is counted exactly once.
* Sharding: with ``shard_count > 1`` every shard walks the whole tree (it
  must: a hard link may sit anywhere) but counts only the inodes whose number
  hashes to its ``shard_index``; the others are not even stat'ed unless they
  are directories. The inode number, not the device, is hashed, because the
  device number of a shared file system differs between hosts. So every
  inode is counted by exactly one shard and the parts add up exactly.
"""

from __future__ import annotations

import errno
import fnmatch
import heapq
import multiprocessing
import os
import queue
import re
import stat
import time

from ansible_collections.datasteward.storage.plugins.module_utils._fs.mounts import mount_for_path, read_mounts

try:
    import grp
    import pwd
except ImportError:  # pragma: no cover - not POSIX
    grp = None
    pwd = None

# Counter vector layout, shared by users, groups, directories and totals.
COUNTERS = (
    "files", "dirs", "symlinks", "others", "apparent_bytes", "allocated_bytes",
    "old_files", "old_apparent_bytes", "old_allocated_bytes",
)
_NCOUNT = len(COUNTERS)
_NO_FLOOR = float("-inf")
_I_FILES, _I_DIRS, _I_LINKS, _I_OTHERS, _I_SIZE, _I_BLOCKS, _I_OLD, _I_OLDSIZE, _I_OLDBLOCKS = range(_NCOUNT)

AGE_STAMPS = ("atime", "mtime", "ctime")
_STAMP_INDEX = {"atime": 7, "mtime": 8, "ctime": 9}  # integer seconds in os.stat_result

_AGE_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE_RE = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$", re.IGNORECASE)

MAX_LISTED = 50          # errors, vanished files and odd names listed (each)
_S_IFMT = 0o170000
_S_IFDIR = 0o040000
_S_IFREG = 0o100000
_S_IFLNK = 0o120000
_CHECK_EVERY = 2048      # entries between looks at the "someone is idle" flag
_PRESCAN = 16384         # entries scanned in-process before forking workers
_WATCH_SECONDS = 1.0     # how often the parent checks that its workers live
_OPEN_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
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
    if isinstance(path, str):
        if path.isascii():
            return path
        path = os.fsencode(path)
    return path.decode("utf-8", "backslashreplace")


def _describe(exc):
    if exc.errno == errno.ELOOP:
        return "replaced by a symlink during the scan (not followed)"
    if exc.errno == errno.ENOTDIR:
        return "no longer a directory"
    return exc.strerror or str(exc)


def _compile_excludes(excludes):
    """One regex for all glob patterns. A pattern with a ``/`` is matched
    against the whole path, one without against the entry's name."""
    if not excludes:
        return None, None
    path_parts, name_parts = [], []
    for pattern in excludes:
        if not isinstance(pattern, str) or not pattern:
            raise ScanError("excludes: patterns must be non-empty strings, got %r" % (pattern,))
        regex = fnmatch.translate(pattern)
        (path_parts if "/" in pattern else name_parts).append(regex)
    path_re = re.compile("|".join("(?:" + part + ")" for part in path_parts), re.DOTALL) if path_parts else None
    name_re = re.compile("|".join("(?:" + part + ")" for part in name_parts), re.DOTALL) if name_parts else None
    return path_re, name_re


_COUNT_OF = {"errors": "error_count", "vanished": "vanished_count",
             "unreadable": "unreadable_count", "odd_names": "odd_name_count"}


class _Partial:
    """Totals of one task (or of several merged). Picklable, small: it grows
    with directories down to ``depth``, owners, ``top`` and hard links only."""

    def __init__(self):
        # bucket (directory path down to depth) -> uid<<32|gid -> counters
        self.buckets = {}
        # uid -> [largest heap of (size, blocks, stamp, path), oldest heap of (-stamp, size, blocks, path)]
        self.tops = {}
        # (dev, ino) -> (path, bucket, uid, gid, size, blocks, stamp, fmt)
        self.links = {}
        self.examined = 0
        self.duplicate_links = 0
        self.errors = []        # (path, message)
        self.error_count = 0
        self.vanished = []
        self.vanished_count = 0
        self.unreadable = []
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
                mine[0] = heapq.nlargest(top, mine[0] + largest)
                heapq.heapify(mine[0])
                mine[1] = heapq.nlargest(top, mine[1] + oldest)
                heapq.heapify(mine[1])
        for key, record in other.links.items():
            have = self.links.get(key)
            if have is None:
                self.links[key] = record
            else:
                self.duplicate_links += 1
                if record[0] < have[0]:
                    self.links[key] = record
        self.examined += other.examined
        self.duplicate_links += other.duplicate_links
        for kind, count in _COUNT_OF.items():
            setattr(self, count, getattr(self, count) + getattr(other, count))
            listed = getattr(self, kind)
            listed.extend(getattr(other, kind)[:max(0, MAX_LISTED - len(listed))])


def _scan_stack(stack, cfg, partial, hungry=None, check_every=None):
    """Scan directories from ``stack`` (a list of ``(path, depth, bucket, dev)``
    tuples) into ``partial``. Returns the directories left when it
    stopped early because ``hungry`` (a shared flag) was raised, else []."""
    maxdepth = cfg["depth"]
    xdev = cfg["one_file_system"]
    top = cfg["top"]
    cutoff = cfg["cutoff"]
    stamp_index = cfg["stamp_index"]
    shard_count = cfg["shard_count"]
    shard_index = cfg["shard_index"]
    sharded = shard_count > 1
    # Every shard lists every directory and name; only the first reports what
    # it finds about them, so that the shards' errors add up like their
    # counters. A file's own errors are met only by the shard that owns it.
    shared_notes = not sharded or shard_index == 0
    path_re, name_re = cfg["excludes"]
    excluding = path_re is not None or name_re is not None
    buckets = partial.buckets
    tops = partial.tops
    links = partial.links
    heappush = heapq.heappush
    heapreplace = heapq.heapreplace
    scandir = os.scandir
    os_open = os.open
    os_close = os.close
    examined = 0
    checked_at = 0
    duplicates = 0
    if check_every is None:
        check_every = _CHECK_EVERY

    while stack:
        if hungry is not None and examined - checked_at >= check_every:
            checked_at = examined
            if hungry.value and len(stack) > 1:
                break
        dirpath, depth, bucket, dev = stack.pop()
        accs = buckets.get(bucket)
        if accs is None:
            accs = buckets[bucket] = {}
        counts = None
        run_uid = run_gid = None
        r_size = r_blocks = r_files = r_old = r_oldsize = r_oldblocks = 0
        last_uid = None
        largest = oldest = None
        large_floor = old_floor = None
        child_depth = depth + 1
        try:
            fd = os_open(dirpath, _OPEN_DIR)
        except FileNotFoundError:
            if shared_notes:
                partial.note("vanished", dirpath)
            continue
        except PermissionError as exc:
            if shared_notes:
                partial.note("unreadable", dirpath, exc.strerror or str(exc))
            continue
        except OSError as exc:
            if shared_notes:
                partial.note("errors", dirpath, _describe(exc))
            continue
        prefix = dirpath if dirpath.endswith("/") else dirpath + "/"
        try:
            with scandir(fd) as it:
                for entry in it:
                    name = entry.name
                    if shared_notes and not name.isascii():
                        try:
                            name.encode("utf-8")
                        except UnicodeEncodeError:
                            partial.note("odd_names", prefix + name)
                    if excluding:
                        if (name_re is not None and name_re.match(name)) or (path_re is not None and path_re.match(prefix + name)):
                            continue
                    if sharded:
                        if not entry.is_dir(follow_symlinks=False):
                            if shard_of(entry.inode(), shard_count) != shard_index:
                                continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        if shared_notes or not entry.is_dir(follow_symlinks=False):
                            partial.note("vanished", prefix + name)
                        continue
                    except OSError as exc:
                        if shared_notes or not entry.is_dir(follow_symlinks=False):
                            partial.note("errors", prefix + name, exc.strerror or str(exc))
                        continue
                    mode, ino, st_dev, nlink, uid, gid, size, _atime, _mtime, _ctime = st
                    if xdev and st_dev != dev:
                        continue
                    examined += 1
                    fmt = mode & _S_IFMT
                    if fmt == _S_IFDIR:
                        if child_depth <= maxdepth:
                            sub_bucket = prefix + name
                            stack.append((sub_bucket, child_depth, sub_bucket, dev))
                        else:
                            sub_bucket = bucket
                            stack.append((prefix + name, child_depth, bucket, dev))
                        if sharded and shard_of(ino, shard_count) != shard_index:
                            continue
                        target = accs
                        if sub_bucket is not bucket:
                            target = buckets[sub_bucket] = {}
                        pair = uid << 32 | gid
                        dcounts = target.get(pair)
                        if dcounts is None:
                            dcounts = target[pair] = [0] * _NCOUNT
                        dcounts[_I_DIRS] += 1
                        dcounts[_I_SIZE] += size
                        dcounts[_I_BLOCKS] += st.st_blocks
                        continue
                    if nlink > 1:
                        key = (st_dev, ino)
                        record = (prefix + name, bucket, uid, gid, size, st.st_blocks, st[stamp_index], fmt)
                        have = links.get(key)
                        if have is None:
                            links[key] = record
                        else:
                            duplicates += 1
                            if record[0] < have[0]:
                                links[key] = record
                        continue
                    if uid != run_uid or gid != run_gid:
                        # Another owner: the run of files of the last one is added up
                        # (plain local sums are much cheaper per file than list items).
                        if counts is not None:
                            _add_run(counts, r_size, r_blocks, r_files, r_old, r_oldsize, r_oldblocks)
                            r_size = r_blocks = r_files = r_old = r_oldsize = r_oldblocks = 0
                        pair = uid << 32 | gid
                        counts = accs.get(pair)
                        if counts is None:
                            counts = accs[pair] = [0] * _NCOUNT
                        run_uid, run_gid = uid, gid
                    blocks = st.st_blocks
                    r_size += size
                    r_blocks += blocks
                    if fmt == _S_IFREG:
                        r_files += 1
                        stamp = st[stamp_index]
                        if stamp < cutoff:
                            r_old += 1
                            r_oldsize += size
                            r_oldblocks += blocks
                        if top:
                            if uid != last_uid:
                                heaps = tops.get(uid)
                                if heaps is None:
                                    heaps = tops[uid] = [[], []]
                                largest, oldest = heaps
                                last_uid = uid
                                # The smallest size and the newest stamp that can still enter
                                # a full heap; a file that cannot costs two comparisons.
                                large_floor = largest[0][0] if len(largest) >= top else -1
                                old_floor = oldest[0][0] if len(oldest) >= top else _NO_FLOOR
                            if size >= large_floor:
                                item = (size, blocks, stamp, prefix + name)
                                if len(largest) < top:
                                    heappush(largest, item)
                                elif item > largest[0]:  # ties broken by path: same lists whatever the order
                                    heapreplace(largest, item)
                                if len(largest) >= top:
                                    large_floor = largest[0][0]
                            if -stamp >= old_floor:
                                item = (-stamp, size, blocks, prefix + name)
                                if len(oldest) < top:
                                    heappush(oldest, item)
                                elif item > oldest[0]:
                                    heapreplace(oldest, item)
                                if len(oldest) >= top:
                                    old_floor = oldest[0][0]
                    elif fmt == _S_IFLNK:
                        counts[_I_LINKS] += 1
                    else:
                        counts[_I_OTHERS] += 1
        except OSError as exc:  # readdir failed part way (EIO, stale handle)
            if shared_notes:
                partial.note("errors", dirpath, _describe(exc))
        finally:
            os_close(fd)
            if counts is not None:
                _add_run(counts, r_size, r_blocks, r_files, r_old, r_oldsize, r_oldblocks)
    partial.examined += examined
    partial.duplicate_links += duplicates
    return stack


def _add_run(counts, size, blocks, files, old, oldsize, oldblocks):
    """Add one owner's run of entries in a directory into its counters."""
    counts[_I_SIZE] += size
    counts[_I_BLOCKS] += blocks
    counts[_I_FILES] += files
    counts[_I_OLD] += old
    counts[_I_OLDSIZE] += oldsize
    counts[_I_OLDBLOCKS] += oldblocks


def _add_record(partial, record, cfg):
    """Count one (deduplicated) hard-linked inode into ``partial``."""
    path, bucket, uid, gid, size, blocks, stamp, fmt = record
    accs = partial.buckets.setdefault(bucket, {})
    counts = accs.get(uid << 32 | gid)
    if counts is None:
        counts = accs[uid << 32 | gid] = [0] * _NCOUNT
    counts[_I_SIZE] += size
    counts[_I_BLOCKS] += blocks
    if fmt == _S_IFREG:
        counts[_I_FILES] += 1
        if stamp < cfg["cutoff"]:
            counts[_I_OLD] += 1
            counts[_I_OLDSIZE] += size
            counts[_I_OLDBLOCKS] += blocks
        top = cfg["top"]
        if top:
            largest, oldest = partial.tops.setdefault(uid, [[], []])
            for heap, item in ((largest, (size, blocks, stamp, path)), (oldest, (-stamp, size, blocks, path))):
                if len(heap) < top:
                    heapq.heappush(heap, item)
                elif item > heap[0]:
                    heapq.heapreplace(heap, item)
    elif fmt == _S_IFLNK:
        counts[_I_LINKS] += 1
    else:
        counts[_I_OTHERS] += 1


class _Flag:
    """Stands in for the shared "a worker is idle" flag."""

    def __init__(self, value):
        self.value = value


_RAISED = _Flag(1)

# State of a forked worker: set by the pool initializer.
_WORKER = {}


def _worker_init(cfg, hungry):
    _WORKER["cfg"] = cfg
    _WORKER["hungry"] = hungry


def _worker_task(stack):
    partial = _Partial()
    left = _scan_stack(list(stack), _WORKER["cfg"], partial, _WORKER["hungry"])
    return partial, left


def _split(stack, parts):
    """Deal the directories of a stack round-robin into ``parts`` lists, so
    that the shallow (big) directories at the bottom spread over all of them."""
    parts = max(1, min(parts, len(stack)))
    return [stack[i::parts] for i in range(parts)]


class _NoWorkers(Exception):
    """The worker processes could not be started; nothing was scanned by them."""


def _run_parallel(stack, cfg, workers, partial):
    """Hand the stack out to ``workers`` forked processes, re-split what they
    return when one of them is idle, and add their partial totals up."""
    ctx = multiprocessing.get_context("fork")
    try:
        hungry = ctx.Value("b", 1, lock=False)
        pool = ctx.Pool(workers, initializer=_worker_init, initargs=(cfg, hungry))
    except OSError as exc:  # no memory or process slots for the workers
        raise _NoWorkers("could not start %d scan workers (%s); scanned in one process" % (workers, _describe(exc)))
    done = queue.Queue()
    try:
        # A worker killed from outside (OOM killer, signal) loses its task
        # silently in a Pool: watch the processes, not only the results.
        started = set(child.pid for child in ctx.active_children())
        pending = _split(stack, workers)
        running = 0
        failure = None
        while pending or running:
            while pending and running < workers:
                pool.apply_async(_worker_task, (pending.pop(),), callback=done.put,
                                 error_callback=done.put)
                running += 1
            hungry.value = 1 if running < workers else 0
            try:
                result = done.get(timeout=_WATCH_SECONDS)
            except queue.Empty:
                alive = set(child.pid for child in ctx.active_children())
                if started - alive:
                    raise ScanError("scan worker process %s died before finishing its part of the scan "
                                    "(killed by a signal or the OOM killer?)" % ", ".join(
                                        str(pid) for pid in sorted(started - alive)))
                continue
            running -= 1
            if isinstance(result, BaseException):
                failure = failure or result
                continue
            part, left = result
            partial.merge(part, cfg["top"])
            if left:
                idle = workers - running
                pending.extend(_split(left, max(idle, 1)))
            hungry.value = 1 if (not pending and running < workers) else 0
        if failure is not None:
            raise ScanError("scan worker failed: %s: %s" % (type(failure).__name__, failure))
    finally:
        pool.terminate()
        pool.join()


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


def _top_list(heap, now, largest):
    items = sorted(heap, reverse=True)
    out = []
    for item in items:
        if largest:
            size, blocks, stamp, path = item
        else:
            neg, size, blocks, path = item
            stamp = -neg
        out.append({"path": safe_path(path), "bytes": size, "allocated_bytes": blocks * 512,
                    "age_seconds": max(0, int(now - stamp))})
    return out


def scan(paths, excludes=None, one_file_system=True, age=None, age_stamp="mtime", top=10, depth=1,
         workers=None, shard_index=0, shard_count=1, now=None):
    """Scan ``paths`` and return the result dict (``users``, ``groups``,
    ``directories``, ``totals``, ``errors``...). Raises ScanError for bad
    options or a root that cannot be scanned at all."""
    if not paths:
        raise ScanError("paths: at least one path is required")
    if age_stamp not in AGE_STAMPS:
        raise ScanError("age_stamp: must be one of %s, got %r" % (", ".join(AGE_STAMPS), age_stamp))
    age_seconds = parse_age(age)
    if top < 0:
        raise ScanError("top: must be 0 or more, got %d" % top)
    if depth < 0:
        raise ScanError("depth: must be 0 or more, got %d" % depth)
    if workers is None:
        workers = default_workers()
    if workers < 1:
        raise ScanError("workers: must be 1 or more, got %d" % workers)
    if shard_count < 1:
        raise ScanError("shard_count: must be 1 or more, got %d" % shard_count)
    if not 0 <= shard_index < shard_count:
        raise ScanError("shard_index: must be between 0 and shard_count - 1 (%d), got %d" % (shard_count - 1, shard_index))

    started = time.time()
    clock = time.monotonic()
    now = started if now is None else now
    cfg = {
        "depth": depth, "one_file_system": bool(one_file_system), "top": top,
        "cutoff": (now - age_seconds) if age_seconds is not None else float("-inf"),
        "stamp_index": _STAMP_INDEX[age_stamp], "shard_count": shard_count,
        "shard_index": shard_index, "excludes": _compile_excludes(excludes),
    }

    roots = _roots(paths, one_file_system)
    warnings = []
    partial = _Partial()
    stack = []
    for root, st in roots:
        # The root itself is counted like any entry, in its own bucket.
        partial.examined += 1
        owned = not _sharded_out(st, cfg)
        fmt = st.st_mode & _S_IFMT
        record = (root, root, st.st_uid, st.st_gid, st.st_size, st.st_blocks, st[cfg["stamp_index"]], fmt)
        if fmt == _S_IFDIR:
            stack.append((root, 0, root, st.st_dev))
            if owned:
                counts = partial.buckets.setdefault(root, {}).setdefault(st.st_uid << 32 | st.st_gid, [0] * _NCOUNT)
                counts[_I_DIRS] += 1
                counts[_I_SIZE] += st.st_size
                counts[_I_BLOCKS] += st.st_blocks
            else:
                partial.buckets.setdefault(root, {})
        elif owned:
            if st.st_nlink > 1:
                partial.links[(st.st_dev, st.st_ino)] = record
            else:
                _add_record(partial, record, cfg)
    stack.reverse()  # first root scanned first

    if workers > 1 and stack:
        # Scan the first directories in this process: a small tree is done
        # before forking workers would have paid off.
        stack = _scan_stack(stack, cfg, partial, _RAISED, _PRESCAN)
        if stack:
            try:
                _run_parallel(stack, cfg, workers, partial)
            except _NoWorkers as exc:
                warnings.append(str(exc))
                _scan_stack(stack, cfg, partial)
    else:
        _scan_stack(stack, cfg, partial)

    for record in partial.links.values():
        _add_record(partial, record, cfg)
    seconds = time.monotonic() - clock
    result = _report(partial, roots, cfg, now, seconds)
    if age_stamp == "atime":
        warnings.extend(atime_warnings([root for root, _st in roots]))
    result["warnings"] = warnings
    return result


def _sharded_out(st, cfg):
    return cfg["shard_count"] > 1 and shard_of(st.st_ino, cfg["shard_count"]) != cfg["shard_index"]


def default_workers():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _roots(paths, one_file_system=True):
    """Absolute roots with their lstat, in the order given. A root is dropped
    when it is the same directory as an earlier one (by device and inode,
    whatever the spelling) or when scanning an outer root reaches it anyway;
    either way it would be counted twice."""
    roots = []
    for path in paths:
        raw = os.fsdecode(path)
        if not raw:
            raise ScanError("paths: empty path")
        raw = os.path.normpath(os.path.abspath(raw))
        try:
            st = os.lstat(raw)
        except FileNotFoundError:
            raise ScanError("paths: %s does not exist" % safe_path(raw))
        except OSError as exc:
            raise ScanError("paths: cannot stat %s: %s" % (safe_path(raw), exc.strerror or exc))
        roots.append((raw, st))
    kept = []
    seen = set()
    for raw, st in sorted(roots, key=lambda item: len(item[0])):
        if (st.st_dev, st.st_ino) in seen:
            continue
        if any(_reached_from(outer, outer_st, raw, one_file_system) for outer, outer_st in kept):
            continue
        seen.add((st.st_dev, st.st_ino))
        kept.append((raw, st))
    order = dict((raw, index) for index, (raw, _st) in enumerate(roots))
    return sorted(kept, key=lambda item: order[item[0]])


def _reached_from(outer, outer_st, raw, one_file_system):
    """Whether the scan of ``outer`` counts ``raw``: it lies under it, no
    directory on the way is a symlink (never followed) and, with
    ``one_file_system``, neither they nor ``raw`` are on another file system
    (such a root is scanned on its own, as du -x does with its arguments)."""
    if not stat.S_ISDIR(outer_st.st_mode) or not raw.startswith(outer.rstrip("/") + "/"):
        return False
    current = outer
    parts = os.path.relpath(raw, outer).split(os.sep)
    for index, part in enumerate(parts):
        current = os.path.join(current, part)
        try:
            st = os.lstat(current)
        except OSError:
            return False
        if one_file_system and st.st_dev != outer_st.st_dev:
            return False
        if index < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
            return False  # a symlink (or anything but a directory) on the way
    return True


def _add_counts(table, key, counts):
    """Add a counter vector into ``table[key]`` (a copy when it is new)."""
    have = table.get(key)
    if have is None:
        table[key] = list(counts)
    else:
        for i in range(_NCOUNT):
            have[i] += counts[i]


def _report(partial, roots, cfg, now, seconds):
    users, groups = {}, {}
    dir_totals = {}
    root_set = set(root for root, _st in roots)
    for bucket, pairs in partial.buckets.items():
        for pair, counts in pairs.items():
            _add_counts(users, pair >> 32, counts)
            _add_counts(groups, pair & 0xFFFFFFFF, counts)
        bucket_sum = [sum(column) for column in zip(*pairs.values())] if pairs else [0] * _NCOUNT
        # Roll the bucket up into itself and its ancestors down to its root.
        path = bucket
        while True:
            _add_counts(dir_totals, path, bucket_sum)
            if path in root_set:
                break
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent

    totals = [sum(column) for column in zip(*users.values())] if users else [0] * _NCOUNT
    user_list = []
    for uid in sorted(users):
        counts = users[uid]
        entry = {"uid": uid, "name": _name_of(pwd.getpwuid if pwd else None, uid)}
        entry.update(_counts_dict(counts))
        largest, oldest = partial.tops.get(uid, ([], []))
        entry["largest"] = _top_list(largest, now, True)
        entry["oldest"] = _top_list(oldest, now, False)
        user_list.append(entry)
    group_list = []
    for gid in sorted(groups):
        entry = {"gid": gid, "name": _name_of(grp.getgrgid if grp else None, gid)}
        entry.update(_counts_dict(groups[gid]))
        group_list.append(entry)

    directories = []
    for root, _st in roots:
        prefix = root.rstrip("/") + "/"
        for path in sorted(p for p in dir_totals if p == root or p.startswith(prefix)):
            rel_depth = 0 if path == root else path[len(prefix):].count("/") + 1
            entry = {"path": safe_path(path), "depth": rel_depth}
            entry.update(_counts_dict(dir_totals[path]))
            directories.append(entry)

    total = _counts_dict(totals)
    examined = partial.examined
    total.update({
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
    })
    return {
        "users": user_list,
        "groups": group_list,
        "directories": directories,
        "totals": total,
        "errors": [{"path": safe_path(p), "error": m} for p, m in partial.errors]
        + [{"path": safe_path(p), "error": "unreadable: %s" % m} for p, m in partial.unreadable]
        + [{"path": safe_path(p), "error": "vanished during the scan"} for p in partial.vanished],
        "non_utf8_names": [safe_path(p) for p in partial.odd_names],
        "shard": {"index": cfg["shard_index"], "count": cfg["shard_count"]},
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
            warnings.append("age_stamp=atime but %s is mounted noatime: access times are never updated there, "
                            "so every file looks as old as its creation or last explicit touch" % where)
        elif "relatime" in options:
            warnings.append("age_stamp=atime but %s is mounted relatime: a read updates atime only when it is older "
                            "than mtime/ctime or more than 24 hours old, so ages under a day are unreliable" % where)
    return warnings
