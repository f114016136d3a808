# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The collection's one tree walker, for every module that reads or changes a tree.

Pure Python, standard library only, no AnsibleModule.

How it walks (as CPython's ``os.fwalk`` and ``shutil._rmtree_safe_fd`` do):

* The root is opened ``O_RDONLY|O_DIRECTORY|O_NOFOLLOW``; every directory
  below it is opened relative to its parent's descriptor (``openat``) with
  ``O_NOFOLLOW|O_DIRECTORY``, ``fstat``-ed and compared with the ``lstat``
  its parent's listing saw (device and inode). A mismatch (the directory was
  swapped for another one, or for a symlink) is a ``changed`` issue and that
  directory is skipped. No full path is ever opened, so depth is unlimited.
* At most ``max_open_fds`` directory descriptors are open at once: when the
  walk is deeper, the shallowest ones (never the root's) are closed and
  reopened later from the nearest open ancestor, one ``openat`` per level,
  each identity-checked again.
* Each entry is lstat'ed relative to its directory's descriptor
  (``fstatat``). A small directory with nothing to filter is read at once
  (``listdir``: no ``DirEntry`` made, the cheapest way in Python); a big one
  (``st_size`` past ``_LISTDIR_BYTES``), or one with ``keep``, a slice or
  excludes to apply before the lstat, entry by entry (``scandir``). Either
  way the entries are handed out in chunks of at most ``_CHUNK``,
  the deadline looked at between two.
* Symlinks are never followed; with ``one_file_system`` a directory on
  another device than the root's is listed but not descended (``other_fs``).
* Names are bytes end to end. ``display(relpath)`` turns one into a str for
  messages and JSON (invalid UTF-8 backslash-escaped).
* Every problem is a :class:`WalkIssue` handed to ``on_error`` (default: kept
  in the walker's ``issues``), and the walk goes on. Only a root that cannot
  be opened as a directory raises (:class:`WalkError`).

``walk_dirs`` hands out a directory at a time (:class:`Directory`: its
descriptor, its entries with their lstat results); ``walk`` is built on it
and hands out an :class:`Entry` per entry.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import time
from itertools import chain

_OPEN_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
MAX_OPEN_FDS = 32  # directory descriptors open at once (the root's included)
_CHUNK = 1024  # entries per chunk of a listing (the memory it holds); the clock is looked at between two
_LISTDIR_BYTES = 1 << 18  # st_size of a directory up to which it is listed at once (some thousands of entries)
_S_IFMT = 0o170000
_S_IFDIR = 0o040000

# Issue kinds. Only OTHER_FS and NON_UTF8 are not errors (nothing was missed).
UNREADABLE = "unreadable"
VANISHED = "vanished"
CHANGED = "changed"
OTHER_FS = "other_fs"
TIMEOUT = "timeout"
NON_UTF8 = "non_utf8"
ERROR = "error"
NOT_ERRORS = frozenset((OTHER_FS, NON_UTF8))
_FS_ENCODING = sys.getfilesystemencoding()


def display(relpath):
    """A name or relative path (bytes, or str with surrogate escapes) as a
    printable str: UTF-8 where valid, other bytes as ``\\xNN``."""
    if isinstance(relpath, str):
        if relpath.isascii():
            return relpath
        relpath = os.fsencode(relpath)
    return relpath.decode("utf-8", "backslashreplace")


def _join(relpath, name):
    return relpath + b"/" + name if relpath else name


class WalkIssue:
    """One problem met during a walk: ``relpath`` (bytes, relative to the
    root), ``kind`` (one of the kinds above), a ``message`` (str) and
    ``is_dir`` (whether the entry concerned is a directory, None if unknown)."""

    __slots__ = ("relpath", "kind", "message", "is_dir")

    def __init__(self, relpath, kind, message, is_dir=True):
        self.relpath = relpath
        self.kind = kind
        self.message = message
        self.is_dir = is_dir

    @property
    def is_error(self):
        """False for what is only worth knowing (another file system not
        descended, a name that is not UTF-8): nothing was missed."""
        return self.kind not in NOT_ERRORS

    def __repr__(self):
        return "WalkIssue(%r, %r, %r)" % (self.relpath, self.kind, self.message)

    def __str__(self):
        return "%s: %s" % (display(self.relpath) or ".", self.message)


class WalkError(OSError):
    """The root itself cannot be walked (missing, a symlink, not a directory,
    unreadable). The message names the root and the cause."""

    def __str__(self):
        return str(self.strerror)


def _what_it_is(name, dir_fd=None):
    """Why ``O_DIRECTORY|O_NOFOLLOW`` refused ``name``: what it is now."""
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except OSError:
        return "is no longer there"
    if stat.S_ISLNK(mode):
        return "is a symlink (never followed)"
    return "is not a directory"


def _open_issue(relpath, exc, name, dir_fd):
    """The issue for a directory ``openat`` that failed."""
    if isinstance(exc, FileNotFoundError):
        return WalkIssue(relpath, VANISHED, "vanished before it was read")
    if isinstance(exc, PermissionError):
        return WalkIssue(relpath, UNREADABLE, "cannot be read: %s" % (exc.strerror or exc))
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return WalkIssue(relpath, CHANGED, "was replaced during the walk: it now %s; not descended" % _what_it_is(name, dir_fd))
    return WalkIssue(relpath, ERROR, "cannot be opened: %s" % (exc.strerror or exc))


class _Frame:
    """A directory on the walker's stack: where it is, what it is (device
    and inode, checked at every open) and its subdirectories still to walk."""

    __slots__ = ("relpath", "name", "depth", "st", "dev", "ino", "fd", "subdirs", "pruned", "dead")

    def __init__(self, relpath, name, depth, st, fd):
        self.relpath = relpath
        self.name = name
        self.depth = depth
        self.st = st  # fstat of the directory when it was opened
        self.dev = st.st_dev
        self.ino = st.st_ino
        self.fd = fd
        self.subdirs = []  # (name, dev, ino) still to walk, last first
        self.pruned = None  # names not to descend into
        self.dead = False  # an ancestor's reopen failed: skip it all


class Directory:
    """One directory of a walk (``walk_dirs``).

    ``relpath`` (bytes, b"" for the root), ``name``, ``depth`` (0 for the
    root), ``st`` (fstat of the open directory), ``fd`` (its open descriptor:
    valid until the iterator advances; act on its entries with
    ``dir_fd=fd``), ``parent_fd`` (its parent's descriptor, None for the
    root), ``leaving`` (True for the post-order event after its subtree).

    ``entries`` is the list of ``(name, lstat result)`` of its entries
    (excluded ones removed). For a huge directory, ``stream()`` yields the
    same pairs without keeping them (use one or the other, once).
    ``prune(name)``: do not descend into that subdirectory."""

    __slots__ = ("relpath", "name", "depth", "st", "fd", "parent_fd", "leaving", "_walker", "_frame", "_entries", "_stream", "_chunks")

    def __init__(self, walker, frame, parent_fd, leaving=False):
        self.relpath = frame.relpath
        self.name = frame.name
        self.depth = frame.depth
        self.st = frame.st
        self.fd = frame.fd
        self.parent_fd = parent_fd
        self.leaving = leaving
        self._walker = walker
        self._frame = frame
        self._entries = [] if leaving else None
        self._stream = None
        self._chunks = None  # the listing's generator (of lists of pairs) behind _stream

    def __repr__(self):
        return "Directory(%r, depth=%d%s)" % (self.relpath, self.depth, ", leaving" if self.leaving else "")

    @property
    def entries(self):
        if self._entries is None:
            if self._stream is not None:
                raise RuntimeError("Directory.entries after stream(): the entries were not kept")
            self._entries = list(self.stream())
        return self._entries

    def stream(self):
        """Yield ``(name, lstat result)`` for each entry, keeping none."""
        if self._entries is not None:
            return iter(self._entries)
        if self._stream is None:
            self._chunks = self._walker.list_entries(self._frame)
            self._stream = chain.from_iterable(self._chunks)  # no Python frame resumed per entry
        return self._stream

    def _drain(self):
        """Read whatever the consumer did not (the walk needs the subdirectories)."""
        if self._entries is None:
            for _item in self.stream():
                pass

    def prune(self, name):
        """Do not descend into the subdirectory ``name`` (bytes)."""
        if isinstance(name, str):
            name = os.fsencode(name)
        if self._frame.pruned is None:
            self._frame.pruned = set()
        self._frame.pruned.add(name)


class Entry:
    """One entry of a walk (``walk``): ``relpath`` (bytes; b"" is the root),
    ``name`` (b"" for the root), ``st`` (its lstat, never followed),
    ``dir_fd`` (its parent's open descriptor, valid until the iterator
    advances; None for the root), ``depth`` (0 for the root), ``leaving``
    (the post-order event of a directory)."""

    __slots__ = ("relpath", "name", "st", "dir_fd", "depth", "leaving", "_directory")

    def __init__(self, relpath, name, st, dir_fd, depth, leaving=False, directory=None):
        self.relpath = relpath
        self.name = name
        self.st = st
        self.dir_fd = dir_fd
        self.depth = depth
        self.leaving = leaving
        self._directory = directory

    def __repr__(self):
        return "Entry(%r, depth=%d%s)" % (self.relpath, self.depth, ", leaving" if self.leaving else "")

    @property
    def is_dir(self):
        return stat.S_ISDIR(self.st.st_mode)

    @property
    def is_file(self):
        return stat.S_ISREG(self.st.st_mode)

    @property
    def is_symlink(self):
        return stat.S_ISLNK(self.st.st_mode)

    def prune(self):
        """Do not descend into this directory."""
        if self._directory is not None:
            self._directory.prune(self.name)


class Walker:
    """The walk of one tree; iterate it for :class:`Directory` objects
    (``walk_dirs``), or use ``entries()`` (``walk``). ``issues`` holds the
    problems met when no ``on_error`` was given; ``timed_out`` tells whether
    the deadline stopped it. ``close()`` (or ``with``) releases descriptors."""

    def __init__(
        self,
        root,
        match=None,
        one_file_system=True,
        deadline=None,
        on_error=None,
        post_order=False,
        max_depth=None,
        max_open_fds=MAX_OPEN_FDS,
        start=None,
        keep=None,
        on_enter=None,
        first_slice=None,
    ):
        self.root = os.fsencode(root)
        self.keep = keep
        self.first_slice = first_slice
        self.on_enter = on_enter
        self.match = match if match is not None and match.excludes_anything else None
        self.one_file_system = one_file_system
        self.deadline = deadline
        self.post_order = post_order
        self.max_depth = max_depth
        self.max_open_fds = max(4, max_open_fds)
        self.issues = []
        self.on_error = on_error if on_error is not None else self.issues.append
        self.timed_out = False
        self.current = b""  # relpath of the directory being read
        self._open = 0
        self._low = 1  # no open frame above this stack index but the root
        self._stack = []
        self._current = None
        fd = self._open_root()
        self.root_st = os.fstat(fd)
        first = _Frame(b"", b"", 0, self.root_st, fd)
        if start is not None:
            first = self._open_start(first, *start)
        self._first = first
        if first is not None:
            self._stack.append(first)
            self._open = 1
        self._gen = self._dirs()

    def _open_start(self, root, relpath, dev, ino, depth):
        """The frame of the subdirectory ``relpath`` (a task of the scanner),
        opened component by component from the root with ``O_NOFOLLOW`` and
        checked to be the directory (dev, ino) listed; None if it is not."""
        fd = root.fd
        try:
            for name in relpath.split(b"/"):
                try:
                    child = os.open(name, _OPEN_DIR, dir_fd=fd)
                except OSError as exc:
                    self.on_error(_open_issue(relpath, exc, name, fd))
                    return None
                os.close(fd)
                fd = child
            st = os.fstat(fd)
            if st.st_dev != dev or st.st_ino != ino:
                self.report(relpath, CHANGED, "was replaced by another directory during the walk; not descended")
                return None
            frame, fd = _Frame(relpath, relpath.rpartition(b"/")[2], depth, st, fd), None
            return frame
        finally:
            if fd is not None:
                os.close(fd)

    def take_pending(self):
        """Give up every subdirectory not walked yet, shallowest first, as
        ``(relpath, dev, ino, depth)`` tuples (``start`` values for other
        walks: the scanner hands them to idle workers)."""
        pending = []
        for frame in self._stack:
            if frame.dead:
                continue
            pruned = frame.pruned or ()
            depth = frame.depth + 1
            for name, dev, ino in reversed(frame.subdirs):
                if name not in pruned:
                    pending.append((_join(frame.relpath, name), dev, ino, depth))
            frame.subdirs = []
        return pending

    def _open_root(self):
        shown = display(self.root)
        if not self.root:
            raise WalkError(errno.ENOENT, "empty root path")
        try:
            return os.open(self.root, _OPEN_DIR)
        except FileNotFoundError as exc:
            raise WalkError(exc.errno, "%s does not exist" % shown) from None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise WalkError(exc.errno, "cannot walk %s: it %s" % (shown, _what_it_is(self.root))) from None
            raise WalkError(exc.errno, "cannot walk %s: %s" % (shown, exc.strerror or exc)) from None

    # -- iteration

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._gen)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __del__(self):
        self.close()

    def close(self):
        """Close every descriptor still open; the walk ends."""
        current = getattr(self, "_current", None)
        if current is not None and current._chunks is not None:
            current._chunks.close()
        gen = getattr(self, "_gen", None)
        if gen is not None:
            gen.close()
        if getattr(self, "_stack", None):
            self._close_frames()

    def report(self, relpath, kind, message, is_dir=True):
        self.on_error(WalkIssue(relpath, kind, message, is_dir))

    def _past_deadline(self, relpath):
        if self.deadline is None or time.monotonic() < self.deadline:
            return False
        if not self.timed_out:
            self.timed_out = True
            self.report(relpath, TIMEOUT, "the walk's deadline passed while reading this directory; the walk stopped and its results are partial")
        return True

    def _dirs(self):
        stack = self._stack
        if not stack:
            return
        if self.on_enter is not None:
            self.on_enter(stack[0].relpath)
        directory = self._current = Directory(self, stack[0], None)
        yield directory
        directory._drain()
        while stack and not self.timed_out:
            frame = stack[-1]
            if frame.subdirs and not frame.dead:
                child = self._descend(frame, *frame.subdirs.pop())
                if child is not None:
                    directory = self._current = Directory(self, child, frame.fd)
                    yield directory
                    directory._drain()
                continue
            leaving = self._leave(frame)
            if leaving is not None:
                yield leaving
            stack.pop()
            self._low = min(self._low, max(1, len(stack)))
            self._close(frame)
        self._close_frames()

    def _leave(self, frame):
        """Before ``frame`` (the top) is popped: reopen its parent if that
        needs a descriptor (while ``frame``'s is still open, through
        ``..``), and the post-order event, if asked for and possible."""
        stack = self._stack
        index = len(stack) - 1
        parent = stack[index - 1] if index else None
        if self.post_order and not frame.dead:
            if self._ensure_open(index - 1) and self._ensure_open(index) and not frame.dead:
                return Directory(self, frame, parent.fd if parent is not None else None, leaving=True)
        elif parent is not None and parent.subdirs and not parent.dead:
            self._ensure_open(index - 1)
        return None

    def _close_frames(self):
        for frame in self._stack:
            self._close(frame)
        self._stack = []

    def entries(self):
        """Yield an :class:`Entry` for the root, then for each entry
        (pre-order), with ``leaving`` events when ``post_order``."""
        for directory in self:
            if directory.leaving:
                yield Entry(directory.relpath, directory.name, directory.st, directory.parent_fd, directory.depth, True)
                continue
            if directory.depth == 0:
                yield Entry(b"", b"", directory.st, None, 0, directory=None)
            relpath, fd, depth = directory.relpath, directory.fd, directory.depth + 1
            for name, st in directory.stream():
                yield Entry(_join(relpath, name), name, st, fd, depth, directory=directory)

    # -- descriptors

    def _close(self, frame):
        if frame.fd is not None:
            try:
                os.close(frame.fd)
            except OSError:
                pass
            frame.fd = None
            self._open -= 1

    def _evict(self, below):
        """Close the shallowest open descriptors (never the root's, none at
        index ``below`` or deeper) until at most ``max_open_fds`` are open."""
        stack = self._stack
        while self._open > self.max_open_fds and self._low < below:
            self._close(stack[self._low])
            self._low += 1

    def _ensure_open(self, index):
        """Make sure the frame at ``index`` has an open descriptor: through
        ``..`` of its open child if there is one, else from the nearest open
        ancestor down, one level at a time; identity-checked either way.
        False (and the frames from the first one that failed on marked dead)
        if a directory is no longer what it was."""
        stack = self._stack
        if index < 0 or stack[index].fd is not None:
            return True
        frame = stack[index]
        self._low = min(self._low, index)
        if index + 1 < len(stack) and stack[index + 1].fd is not None:
            child = stack[index + 1]
            fd, _st = self._openat(child.fd, child.relpath, b"..", frame.dev, frame.ino, moved=True)
            if fd is not None:
                self._opened(frame, fd, index)
                return True
            for dead in stack[index + 1 :]:
                dead.dead = True
        base = index - 1
        while stack[base].fd is None:
            base -= 1
        self._low = min(self._low, base + 1)
        for level in range(base + 1, index + 1):
            current = stack[level]
            fd, _st = self._openat(stack[level - 1].fd, current.relpath, current.name, current.dev, current.ino)
            if fd is None:
                for dead in stack[level:]:
                    dead.dead = True
                return False
            self._opened(current, fd, level - 1)
        return True

    def _opened(self, frame, fd, keep_from):
        frame.fd = fd
        self._open += 1
        self._evict(keep_from)

    def _openat(self, parent_fd, relpath, name, dev, ino, moved=False):
        """Open ``name`` below ``parent_fd`` and check it is still the
        directory (dev, ino) seen (samestat): ``(fd, its fstat)``, or
        ``(None, None)`` (issue reported) if not.
        With ``moved``, ``name`` is ``..`` of ``relpath``: a mismatch means
        ``relpath`` was moved away from its parent."""
        try:
            fd = os.open(name, _OPEN_DIR, dir_fd=parent_fd)
        except OSError as exc:
            self.on_error(_open_issue(relpath, exc, name, parent_fd))
            return None, None
        try:
            st = os.fstat(fd)
        except OSError as exc:
            os.close(fd)
            self.report(relpath, ERROR, "cannot be examined: %s" % (exc.strerror or exc))
            return None, None
        if st.st_dev != dev or st.st_ino != ino:
            os.close(fd)
            self.report(
                relpath,
                CHANGED,
                "was moved out of its parent during the walk; nothing more is done there"
                if moved
                else "was replaced by another directory during the walk; not descended",
            )
            return None, None
        return fd, st

    def _descend(self, frame, name, dev, ino):
        """Open the subdirectory ``name`` of ``frame``: its new frame, or None."""
        if frame.pruned is not None and name in frame.pruned:
            return None
        relpath = _join(frame.relpath, name)
        self.current = relpath
        if self._past_deadline(relpath):
            return None
        if self.on_enter is not None:
            self.on_enter(relpath)
        if not self._ensure_open(len(self._stack) - 1):
            return None
        fd, st = self._openat(frame.fd, relpath, name, dev, ino)
        if fd is None:
            return None
        child = _Frame(relpath, name, frame.depth + 1, st, fd)
        self._stack.append(child)
        self._opened(child, fd, len(self._stack) - 2)
        return child

    # -- listing

    def list_entries(self, frame):
        """Yield lists of ``(name, lstat)`` of the entries of ``frame``
        (excluded ones left out), and remember its subdirectories to walk.
        A small directory with nothing to filter is read at once
        (``listdir``) and each name lstat'ed relative to its descriptor;
        any other is read entry by entry (``scandir``), so that a huge one
        is never held in memory and ``keep`` and the excludes can look at
        an entry (its type and inode number) before it is lstat'ed."""
        self.current = frame.relpath
        descend = self.max_depth is None or frame.depth < self.max_depth
        keep = self.keep
        part = self.first_slice if frame is self._first else None
        by_name = keep is None and part is None and self.match is None and frame.st.st_size <= _LISTDIR_BYTES
        try:
            source = os.listdir(frame.fd) if by_name else os.scandir(frame.fd)
        except OSError as exc:
            self.report(frame.relpath, UNREADABLE if isinstance(exc, PermissionError) else ERROR, "cannot be listed: %s" % (exc.strerror or exc))
            return iter(())
        return self._listing(frame, source, descend, (keep, part))

    def _listing(self, frame, source, descend, keeping):
        """The generator of ``list_entries``: chunks of at most
        ``_CHUNK`` entries, each filled by a plain loop (no
        generator resumed per entry), the clock looked at between two."""
        by_name = isinstance(source, list)
        fill, items = (self._fill_by_name, iter(source)) if by_name else (self._fill, source)
        try:
            while True:
                chunk = []
                more = fill(frame, items, descend, keeping, chunk)
                if chunk:
                    yield chunk
                if not more or self._past_deadline(frame.relpath):
                    return
        finally:
            if not by_name:
                source.close()
            frame.subdirs.reverse()  # walked in listing order

    def _fill(self, frame, iterator, descend, keeping, chunk):
        """Read entries of ``frame`` (a scandir iterator) into ``chunk``, up
        to ``_CHUNK``: True if the listing may go on, False when it
        is over (or cannot). ``keeping``: ``(keep, (index, count) of the
        first directory's slice or None)``."""
        relpath, match = frame.relpath, self.match
        keep, part = keeping
        index, count = part if part is not None else (0, 0)
        root_dev = self.root_st.st_dev if self.one_file_system else None
        append, encode, encoding = chunk.append, str.encode, _FS_ENCODING
        left = _CHUNK
        try:
            for item in iterator:  # a hot loop of every walk
                if count and item.inode() % count != index:
                    continue
                if keep is not None and not keep(item.inode(), item.is_dir(follow_symlinks=False)):
                    continue
                text = item.name
                name = encode(text, encoding, "surrogateescape")  # os.fsencode, inlined
                if match is not None and match.excluded_entry(relpath, name, item.is_dir(follow_symlinks=False)):
                    continue
                try:
                    st = item.stat(follow_symlinks=False)
                except OSError as exc:
                    if self._lstat_failed(item, relpath, name, exc):
                        return False
                    continue
                if not text.isascii():  # a str flag: no scan of the name
                    self._check_name(relpath, name, st)
                if descend and st.st_mode & _S_IFMT == _S_IFDIR:
                    self._found_dir(frame, name, st, root_dev)
                append((name, st))
                left -= 1
                if not left:
                    return True
        except OSError as exc:
            self.report(relpath, ERROR, "listing failed part way: %s" % (exc.strerror or exc))
        return False

    def _fill_by_name(self, frame, names, descend, _keeping, chunk):
        """``_fill`` for a directory read at once (an iterator over its
        names): each lstat'ed relative to the directory's descriptor, no
        DirEntry made (the cheapest way in Python: most directories)."""
        relpath, fd = frame.relpath, frame.fd
        root_dev = self.root_st.st_dev if self.one_file_system else None
        append, encode, encoding, lstat = chunk.append, str.encode, _FS_ENCODING, os.lstat
        left = _CHUNK
        for text in names:  # the hot loop of most walks
            name = encode(text, encoding, "surrogateescape")
            try:
                st = lstat(name, dir_fd=fd)
            except OSError as exc:
                if self._lstat_failed(None, relpath, name, exc):
                    return False
                continue
            if not text.isascii():
                self._check_name(relpath, name, st)
            if descend and st.st_mode & _S_IFMT == _S_IFDIR:
                self._found_dir(frame, name, st, root_dev)
            append((name, st))
            left -= 1
            if not left:
                return True
        return False

    def _found_dir(self, frame, name, st, root_dev):
        """A subdirectory listed: to walk, unless it is on another file
        system than the root's (``root_dev``, None: no matter)."""
        if root_dev is not None and st.st_dev != root_dev:
            self.report(_join(frame.relpath, name), OTHER_FS, "is on another file system; not descended")
        else:
            frame.subdirs.append((name, st.st_dev, st.st_ino))

    def _lstat_failed(self, item, relpath, name, exc):
        """Report an entry whose lstat failed (``item``: its DirEntry, None
        if listed by name); True if the directory cannot be searched at all
        (reported once: the listing stops)."""
        if isinstance(exc, FileNotFoundError):
            self.report(_join(relpath, name), VANISHED, "vanished during the walk", item.is_dir(follow_symlinks=False) if item is not None else None)
        elif isinstance(exc, PermissionError):
            self.report(relpath, UNREADABLE, "its entries cannot be examined: %s" % (exc.strerror or exc))
            return True
        else:
            self.report(_join(relpath, name), ERROR, "cannot be examined: %s" % (exc.strerror or exc), None)
        return False

    def _check_name(self, relpath, name, st):
        try:
            name.decode("utf-8")
        except UnicodeDecodeError:
            self.report(_join(relpath, name), NON_UTF8, "name is not valid UTF-8 (shown with \\x escapes)", stat.S_ISDIR(st.st_mode))


def walk_dirs(
    root,
    match=None,
    one_file_system=True,
    deadline=None,
    on_error=None,
    post_order=False,
    max_depth=None,
    max_open_fds=MAX_OPEN_FDS,
    start=None,
    keep=None,
    on_enter=None,
    first_slice=None,
):
    """Walk the tree under ``root`` a directory at a time: a :class:`Walker`
    yielding :class:`Directory` objects. Raises WalkError if ``root`` cannot
    be opened as a directory (never through a symlink).

    Extensions for the scanner: ``start=(relpath, dev, ino, depth)`` walks
    only that subtree (reached from the root without following symlinks,
    identity-checked; relpaths stay relative to the root); ``keep(ino,
    is_dir)`` is asked before an entry is stat'ed (False: skipped, not
    descended); ``first_slice=(index, count)``: of the first directory only
    the entries whose inode number modulo ``count`` is ``index`` (asked
    before any lstat too: the scanner splits one huge directory that way); ``on_enter(relpath)``
    is called before a directory is opened."""
    return Walker(root, match, one_file_system, deadline, on_error, post_order, max_depth, max_open_fds, start, keep, on_enter, first_slice)


class _EntryWalk:
    """``walk()``'s iterator: Entry objects, with the walker's ``issues``,
    ``timed_out`` and ``close()``."""

    def __init__(self, walker):
        self.walker = walker
        self._gen = walker.entries()

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._gen)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __getattr__(self, name):
        return getattr(self.walker, name)

    def close(self):
        self._gen.close()
        self.walker.close()


def walk(root, match=None, one_file_system=True, deadline=None, on_error=None, post_order=False, max_depth=None, max_open_fds=MAX_OPEN_FDS):
    """Walk the tree under ``root`` an entry at a time (the root first, as an
    Entry with relpath b""). Same rules and arguments as ``walk_dirs``."""
    return _EntryWalk(Walker(root, match, one_file_system, deadline, on_error, post_order, max_depth, max_open_fds))
