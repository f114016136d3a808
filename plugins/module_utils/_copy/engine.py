# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The copy engine: one verified copy protocol for every module that copies.

Per file: the source is opened without following symlinks and read once; every
chunk is hashed and written to a temporary file in each target directory. The
temporaries are flushed, their cached pages are dropped
(``posix_fadvise(DONTNEED)``), and each is re-read from the device and hashed.
Only a copy whose digest matches is renamed to its final name, and the
directory is fsynced. A final-named file therefore never holds anything but a
verified copy, whatever instant the process dies at.

:func:`copy_verified` does that for one file. A :class:`~._copy.batch.Batch`
does the same steps for many files at once (one flush per disk, one
verification pass in parallel, one rename pass), for callers that commit a
batch of registrations in one transaction.

Paths are bytes end to end: ``str`` arguments are accepted and encoded with
``os.fsencode``; any name the kernel accepts is copied. Messages show names
through :func:`display`.

Every tree this engine modifies is walked one component at a time with
``O_NOFOLLOW`` relative to an open directory, and each directory's device is
compared with the tree root's, so a symlink or a mount point inside a tree
never leads the engine out of it.

Standard library only (``blake3`` is used when installed); no AnsibleModule.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import stat
import time

try:
    from concurrent.futures import ThreadPoolExecutor
except ImportError:  # pragma: no cover - always present on Python 3
    ThreadPoolExecutor = None

try:
    from blake3 import blake3 as _blake3
except ImportError:
    _blake3 = None

ALGORITHMS = ("sha512", "sha256", "blake2b", "blake3")
TEMP_PREFIX = ".dstmp."
_TEMP_PREFIX_B = TEMP_PREFIX.encode("ascii")
CHUNK_SIZE = 4 * 1024 * 1024
NAME_MAX = 255
# Files larger than this stream through a thread pool (hash and writes in
# parallel); smaller ones are copied inline, where threads cost more than they save.
PARALLEL_MIN_BYTES = 1024 * 1024

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NOATIME = getattr(os, "O_NOATIME", 0)
_FADV_DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", None)
_FADV_SEQUENTIAL = getattr(os, "POSIX_FADV_SEQUENTIAL", None)
_FULL_ERRNOS = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG)
# Errors that are about the disk, not the file: the disk leaves the run.
DISK_ERRNOS = frozenset(
    e
    for e in (
        errno.EIO,
        errno.EROFS,
        errno.ENODEV,
        errno.ENXIO,
        getattr(errno, "ESTALE", None),
        getattr(errno, "ENOTCONN", None),
        getattr(errno, "EUCLEAN", None),
        getattr(errno, "ENOMEDIUM", None),
    )
    if e is not None
)


class CopyError(Exception):
    """A file could not be copied; ``path`` names the file or directory.
    ``errno`` is the OS error behind it, when there was one."""

    def __init__(self, msg, path=None, errno=None):  # pylint: disable=redefined-outer-name
        super().__init__(msg)
        self.path = path
        self.errno = errno

    def __reduce__(self):
        # pickled whole (message, path, errno, index), as a verifying child process sends it back
        return (_rebuilt_error, (type(self), self.args, self.__dict__))


def _rebuilt_error(cls, args, state):
    exc = Exception.__new__(cls)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class SourceVanished(CopyError):
    """The source disappeared before or while it was read."""


class SourceChanged(CopyError):
    """The source was modified while (or after) it was read."""


class UnsafePath(CopyError):
    """A symlink, a non-directory or another file system inside a tree."""


class TargetFull(CopyError):
    """A target file system ran out of space; ``index`` is the target's position."""

    def __init__(self, msg, path=None, index=None):
        super().__init__(msg, path, errno.ENOSPC)
        self.index = index


class TargetFailed(CopyError):
    """A target disk failed (I/O error, read-only, gone); ``index`` is the
    target's position. The disk, not the file, is the problem."""

    def __init__(self, msg, path=None, index=None, errno=None):  # pylint: disable=redefined-outer-name
        super().__init__(msg, path, errno)
        self.index = index


class VerifyFailed(CopyError):
    """A copy read back from the device does not match the source digest."""


class TargetConflict(CopyError):
    """A final-named file already exists at the target and holds other data."""


# -- names ---------------------------------------------------------------------
def fsbytes(path):
    """``path`` as bytes (``str`` is encoded as the OS does)."""
    return path if isinstance(path, bytes) else os.fsencode(path)


def display(path):
    """A name for messages and JSON: UTF-8 as is, other bytes as ``\\xNN``."""
    return fsbytes(path).decode("utf-8", "backslashreplace")


def _join(*parts):
    return os.path.join(*[fsbytes(part) for part in parts])


def _strerror(exc):
    return exc.strerror or str(exc)


def available_algorithms():
    """The checksum algorithms usable on this host."""
    return [name for name in ALGORITHMS if name != "blake3" or _blake3 is not None]


def new_hasher(algorithm):
    """A fresh hash object for ``algorithm`` (``update``/``hexdigest``)."""
    if algorithm == "blake3":
        if _blake3 is None:
            raise CopyError("checksum_algorithm blake3 needs the Python package blake3, which is not installed")
        return _blake3()
    if algorithm not in ALGORITHMS:
        raise CopyError("unknown checksum algorithm %r; use one of %s" % (algorithm, ", ".join(available_algorithms())))
    return hashlib.new(algorithm)


def split_relpath(relpath):
    """``a/b/c`` -> ``[b'a', b'b', b'c']``; refuses absolute paths and ``..``."""
    raw = fsbytes(relpath)
    parts = [part for part in raw.split(b"/") if part not in (b"", b".")]
    if not parts or raw.startswith(b"/") or b".." in parts:
        raise UnsafePath("%r is not a relative path inside the tree" % (display(raw),), relpath)
    return parts


def is_temp_name(name):
    """Whether a file name is one of this engine's temporaries."""
    return fsbytes(name).startswith(_TEMP_PREFIX_B)


def temp_name(final_name, token=None):
    """A temporary name next to ``final_name`` that the engine recognises
    (bytes for bytes, str for str)."""
    token = fsbytes(token or secrets.token_hex(6))
    name = fsbytes(final_name)
    room = NAME_MAX - len(_TEMP_PREFIX_B) - len(token) - 1
    out = _TEMP_PREFIX_B + name[:room] + b"." + token
    return out if isinstance(final_name, bytes) else os.fsdecode(out)


def final_of_temp(temp_relpath):
    """The relative path a temporary (from :func:`temp_name`) was made for,
    or None when its name was cut to fit NAME_MAX and cannot be told."""
    head, name = os.path.split(fsbytes(temp_relpath))
    stem = name[len(_TEMP_PREFIX_B) :].rpartition(b".")[0] if name.startswith(_TEMP_PREFIX_B) else b""
    if not stem or len(stem) >= NAME_MAX - len(_TEMP_PREFIX_B) - 13:
        return None
    out = os.path.join(head, stem)
    return out if isinstance(temp_relpath, bytes) else os.fsdecode(out)


# -- descriptors -----------------------------------------------------------------
def _fstat(fd, where):
    """``fstat`` of an open file; an I/O error (a dying disk) is a CopyError."""
    try:
        return os.fstat(fd)
    except OSError as exc:
        raise CopyError("cannot stat %s: %s" % (display(where), _strerror(exc)), where, exc.errno)


def _close(fd):
    """Close a descriptor; a late error (the data was fsynced and verified,
    or is being discarded) must not hide the outcome."""
    try:
        os.close(fd)
    except OSError:
        pass


def open_root(root):
    """Open a tree root directory (the root itself may be any directory)."""
    try:
        fd = os.open(fsbytes(root), os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    except OSError as exc:
        raise CopyError("cannot open directory %s: %s" % (display(root), _strerror(exc)), root, exc.errno)
    return fd


def _open_child_dir(fd, part, where, create, mode, created):
    """Open (creating when asked) directory ``part`` in ``fd``; never a symlink."""
    flags = os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC
    try:
        return os.open(part, flags, dir_fd=fd)
    except FileNotFoundError:
        if not create:
            raise
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePath("%s is a symlink or not a directory; refusing to follow it" % display(where), where)
        raise CopyError("cannot open directory %s: %s" % (display(where), _strerror(exc)), where, exc.errno)
    try:
        os.mkdir(part, mode, dir_fd=fd)
        created.append(where)
        os.fsync(fd)
    except FileExistsError:
        pass
    except OSError as exc:
        if exc.errno in _FULL_ERRNOS:
            raise TargetFull("no space to create directory %s: %s" % (display(where), _strerror(exc)), where)
        raise CopyError("cannot create directory %s: %s" % (display(where), _strerror(exc)), where, exc.errno)
    try:
        return os.open(part, flags, dir_fd=fd)
    except OSError as exc:
        raise CopyError("cannot open directory %s: %s" % (display(where), _strerror(exc)), where, exc.errno)


def open_tree_dir(root, parts, create=False, mode=0o755):
    """Open directory ``root/parts...`` without following symlinks or leaving
    the root's file system; create missing components when ``create``.

    Returns ``(fd, created)`` where ``created`` lists the directories made."""
    root = fsbytes(root)
    fd = open_root(root)
    created = []
    try:
        dev = _fstat(fd, root).st_dev
        where = root
        for part in parts:
            part = fsbytes(part)
            where = os.path.join(where, part)
            child = _open_child_dir(fd, part, where, create, mode, created)
            _close(fd)
            fd = child
            if _fstat(fd, where).st_dev != dev:
                raise UnsafePath("%s is on another file system than %s; refusing to leave the tree" % (display(where), display(root)), where)
        return fd, created
    except BaseException:
        _close(fd)
        raise


class DirCache:
    """Open directories of trees, by ``(root, parts)``, for many files in a
    row (a batch): each directory is opened once, safely (see
    :func:`open_tree_dir`), and closed with :meth:`close`."""

    def __init__(self):
        self.fds = {}

    def __len__(self):
        return len(self.fds)

    def get(self, root, parts, create=False):
        key = (fsbytes(root), tuple(fsbytes(part) for part in parts))
        fd = self.fds.get(key)
        if fd is None:
            fd, dummy = open_tree_dir(key[0], key[1], create=create)
            self.fds[key] = fd
        return fd

    def close(self):
        for fd in self.fds.values():
            _close(fd)
        self.fds = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def lstat_at(dir_fd, name, where=None):
    """``lstat`` of ``name`` in an open directory, or None when absent; any
    other error (EIO on a dying disk, ENAMETOOLONG) is a CopyError naming
    ``where`` (the full path)."""
    try:
        return os.stat(fsbytes(name), dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as exc:
        where = where or name
        raise CopyError("cannot stat %s: %s" % (display(where), _strerror(exc)), where, exc.errno)


def same_content_stat(a, b):
    """True when two stat results describe the same, unmodified file."""
    return (a.st_dev, a.st_ino, a.st_size, a.st_mtime_ns, a.st_ctime_ns) == (b.st_dev, b.st_ino, b.st_size, b.st_mtime_ns, b.st_ctime_ns)


def same_scan_stat(a, b):
    """True when ``a`` is still the file seen as ``b`` when scanning."""
    return (a.st_dev, a.st_ino, a.st_size, a.st_mtime_ns) == (b.st_dev, b.st_ino, b.st_size, b.st_mtime_ns)


def drop_cache(fd):
    """Evict the clean cached pages of an open file so the next read comes
    from the device (no-op where the kernel keeps them, e.g. tmpfs)."""
    if _FADV_DONTNEED is not None:
        try:
            os.posix_fadvise(fd, 0, 0, _FADV_DONTNEED)
        except OSError:
            pass


def _advise_sequential(fd, size):
    if _FADV_SEQUENTIAL is not None and size > CHUNK_SIZE:
        try:
            os.posix_fadvise(fd, 0, 0, _FADV_SEQUENTIAL)
        except OSError:
            pass


def hash_fd(fd, algorithm, chunk_size=CHUNK_SIZE, from_disk=True, size_hint=None):
    """Hash an open file from offset 0; with ``from_disk`` drop its cached
    pages first (and, for large files, again afterwards). Returns
    ``(hexdigest, size)``."""
    hasher = new_hasher(algorithm)
    if from_disk:
        drop_cache(fd)
    small = size_hint is not None and size_hint < chunk_size
    if small:  # one read and one to see the end
        data = os.pread(fd, size_hint + 1, 0)
        offset = len(data)
        if offset <= size_hint:
            hasher.update(data)
            return hasher.hexdigest(), offset
        hasher.update(data)
    else:
        offset = 0
    _advise_sequential(fd, size_hint or chunk_size + 1)
    buf = bytearray(chunk_size)
    view = memoryview(buf)
    while True:
        count = os.preadv(fd, [buf], offset) if hasattr(os, "preadv") else _pread_into(fd, view, offset)
        if not count:
            break
        hasher.update(view[:count])
        offset += count
    if from_disk and offset > chunk_size:
        drop_cache(fd)
    return hasher.hexdigest(), offset


def _pread_into(fd, view, offset):  # pragma: no cover - Python without preadv
    data = os.pread(fd, len(view), offset)
    view[: len(data)] = data
    return len(data)


def _open_source_dir(root, parts, where, doing):
    """The open directory of source ``root/parts``; a missing directory
    means the source vanished before it could be ``doing`` (read, removed)."""
    try:
        fd, dummy = open_tree_dir(root, parts[:-1])
    except FileNotFoundError:
        raise SourceVanished("%s vanished before it could be %s" % (display(where), doing), where)
    return fd


def _open_source(dir_fd, name, where):
    """``(fd, fstat)`` of a regular source file, opened without following a symlink."""
    # O_NONBLOCK: a source swapped for a FIFO after the scan must not block the
    # open (it is refused below); it changes nothing for a regular file.
    flags = os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | _O_NONBLOCK
    try:
        try:
            fd = os.open(name, flags | _O_NOATIME, dir_fd=dir_fd)
        except PermissionError:
            fd = os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        raise SourceVanished("%s vanished before it could be read" % display(where), where)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePath("%s is a symlink; refusing to follow it" % display(where), where)
        raise CopyError("cannot read %s: %s" % (display(where), _strerror(exc)), where, exc.errno)
    try:
        st = _fstat(fd, where)
    except CopyError:
        _close(fd)
        raise
    if not stat.S_ISREG(st.st_mode):
        _close(fd)
        raise UnsafePath("%s is not a regular file" % display(where), where)
    return fd, st


def hash_file(root, relpath, algorithm, from_disk=True):
    """Hash ``root/relpath`` safely (no symlinks, same file system).
    Returns ``(hexdigest, size, stat_before)``; raises SourceChanged when the
    file changed while it was read."""
    parts = split_relpath(relpath)
    where = _join(root, relpath)
    dfd = _open_source_dir(root, parts, where, "read")
    try:
        fd, before = _open_source(dfd, parts[-1], where)
        try:
            try:
                digest, size = hash_fd(fd, algorithm, from_disk=from_disk, size_hint=before.st_size)
            except OSError as exc:
                raise CopyError("cannot read %s: %s" % (display(where), _strerror(exc)), where, exc.errno)
            after = _fstat(fd, where)
        finally:
            _close(fd)
    finally:
        _close(dfd)
    if not same_content_stat(before, after) or size != before.st_size:
        raise SourceChanged("%s changed while it was read" % display(where), where)
    return digest, size, before


# -- one copy, step by step ----------------------------------------------------------
class _Target:
    """One destination of a copy: ``root/relpath`` (kept as the caller gave
    them; ``path`` and the name parts are bytes)."""

    def __init__(self, root, relpath, index):
        self.root = root
        self.relpath = relpath
        self.index = index
        self.path = _join(root, relpath)
        self.parts = split_relpath(relpath)
        self.name = self.parts[-1]
        self.dir_fd = None
        self.fd = None
        self.temp = None
        self.existing = None
        self.reused = False
        self.digest = None

    def caller_path(self):
        if isinstance(self.root, str) and isinstance(self.relpath, str):
            return os.path.join(self.root, self.relpath)
        return self.path

    def failed(self, doing, exc):
        """The CopyError for an OSError while ``doing`` on this target."""
        if exc.errno in _FULL_ERRNOS:
            return TargetFull("%s: no space left while %s %s" % (display(self.root), doing, display(self.path)), self.path, self.index)
        msg = "cannot %s %s: %s" % (doing, display(self.path), _strerror(exc))
        if exc.errno in DISK_ERRNOS:
            return TargetFailed(msg, self.path, self.index, exc.errno)
        return CopyError(msg, self.path, exc.errno)


class PendingCopy:
    """A copy in flight: the source is read and hashed, the temporaries are
    written (not yet flushed, verified or renamed)."""

    def __init__(self, src_path, targets, journal):
        self.src_path = src_path
        self.targets = targets
        self.journal = journal
        self.digest = None
        self.size = 0
        self.source_stat = None
        self.verified_at = None
        self.own_dirs = False  # the target directories were opened for this copy alone
        self.data = None  # a file read in one piece: its bytes (a batch may compare the copies with them)

    def writers(self):
        return [tgt for tgt in self.targets if tgt.temp is not None]

    def result(self):
        copies = [
            {"root": tgt.root, "relpath": tgt.relpath, "path": tgt.caller_path(), "verified_at": self.verified_at, "reused": tgt.reused} for tgt in self.targets
        ]
        return CopyResult(self.digest, self.size, self.source_stat, copies)


def _prepare_target(tgt, replace, dirs):
    """Open the target directory (creating it) and look at the final name."""
    try:
        if dirs is not None:
            tgt.dir_fd = dirs.get(tgt.root, tgt.parts[:-1], create=True)
        else:
            tgt.dir_fd, dummy = open_tree_dir(tgt.root, tgt.parts[:-1], create=True)
    except TargetFull as exc:  # no space (or no inode) for a directory: that disk is full
        raise TargetFull(str(exc), exc.path, tgt.index)
    except CopyError as exc:
        if exc.errno in DISK_ERRNOS:
            raise TargetFailed(str(exc), exc.path, tgt.index, exc.errno)
        raise
    try:
        existing = lstat_at(tgt.dir_fd, tgt.name, tgt.path)
    except CopyError as exc:
        if exc.errno in DISK_ERRNOS:
            raise TargetFailed(str(exc), exc.path, tgt.index, exc.errno)
        raise
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        raise TargetConflict("%s exists and is not a regular file" % display(tgt.path), tgt.path)
    if existing is not None and not replace:
        tgt.existing = existing


def temp_relpath(relpath, token):
    """The relative path of temporary ``token`` next to ``relpath``, in the
    caller's type (str for str, bytes for bytes)."""
    out = os.path.join(os.path.dirname(fsbytes(relpath)), fsbytes(token))
    return os.fsdecode(out) if isinstance(relpath, str) else out


def journal_entries(targets, tokens):
    """``[(root, temp relpath), ...]`` for the temporaries named in ``tokens``."""
    return [(tgt.root, temp_relpath(tgt.relpath, token)) for tgt, token in zip(targets, tokens) if token is not None]


def _create_temps(copy, tokens):
    for tgt, token in zip(copy.targets, tokens):
        if token is None:
            continue
        try:
            tgt.fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, 0o600, dir_fd=tgt.dir_fd)
        except OSError as exc:
            raise tgt.failed("create a temporary file next to", exc)
        tgt.temp = token


def _write_all(fd, view, tgt):
    try:
        while view:
            written = os.write(fd, view)
            view = view[written:]
    except OSError as exc:
        raise tgt.failed("write", exc)


def _stream(copy, src_fd, algorithm, chunk_size, pool):
    """Read the source once; hash it and write every temporary. A small file
    is one read; a large one overlaps the next read with the hash and the
    writes (``pool``)."""
    writers = copy.writers()
    hasher = new_hasher(algorithm)
    expected = copy.source_stat.st_size
    if expected < chunk_size:
        try:
            data = os.read(src_fd, expected + 1)
        except OSError as exc:
            raise CopyError("cannot read %s: %s" % (display(copy.src_path), _strerror(exc)), copy.src_path, exc.errno)
        hasher.update(data)
        for tgt in writers:
            _write_all(tgt.fd, memoryview(data), tgt)
        if len(data) <= expected:  # the whole file (a change shows in the stat after)
            copy.digest = hasher.hexdigest()
            copy.size = len(data)
            copy.data = data
            return
        copy.size = len(data)
    _stream_chunks(copy, src_fd, hasher, writers, chunk_size, pool if expected >= PARALLEL_MIN_BYTES else None)


def _stream_chunks(copy, src_fd, hasher, writers, chunk_size, pool):
    buffers = [bytearray(chunk_size), bytearray(chunk_size)]
    pending, size, turn = [], copy.size, 0
    try:
        while True:
            buf = buffers[turn]
            try:
                count = os.readv(src_fd, [buf])
            except OSError as exc:
                raise CopyError("cannot read %s: %s" % (display(copy.src_path), _strerror(exc)), copy.src_path, exc.errno)
            _wait(pending)
            pending = []
            if not count:
                break
            view = memoryview(buf)[:count]
            size += count
            calls = [lambda v=view: hasher.update(v)] + [lambda v=view, t=tgt: _write_all(t.fd, v, t) for tgt in writers]
            if pool is not None:
                pending = [pool.submit(call) for call in calls]
            else:
                for call in calls:
                    call()
            turn ^= 1
    finally:
        _drain(pending)
    copy.digest = hasher.hexdigest()
    copy.size = size


def _check_source_after(copy, src_fd, expect_digest, algorithm):
    after = _fstat(src_fd, copy.src_path)
    if not same_content_stat(copy.source_stat, after) or copy.size != after.st_size:
        raise SourceChanged("%s was modified while it was copied; not registered, left in place" % display(copy.src_path), copy.src_path)
    if expect_digest is not None and copy.digest != expect_digest:
        raise VerifyFailed("%s does not match its recorded %s digest" % (display(copy.src_path), algorithm), copy.src_path)


def start_copy(
    src_root,
    src_relpath,
    targets,
    algorithm="sha512",
    expect_digest=None,
    expect_stat=None,
    replace=False,
    journal=None,
    chunk_size=CHUNK_SIZE,
    pool=None,
    preserve=True,
    dirs=None,
    tokens=None,
):
    """Steps 1-3 of a verified copy: read the source once, hashing it and
    writing a temporary next to every target's final name (journalled first
    unless ``tokens`` were journalled by the caller). Returns a
    :class:`PendingCopy`; on an error nothing of it is left (see
    :func:`discard`). ``dirs`` (a :class:`DirCache`) keeps directories open
    across files; then the caller closes them."""
    src_path = _join(src_root, src_relpath)
    src_parts = split_relpath(src_relpath)
    copy = PendingCopy(src_path, [_Target(root, relpath, index) for index, (root, relpath) in enumerate(targets)], journal)
    copy.own_dirs = dirs is None
    src_dir_fd = src_fd = None
    try:
        src_dir_fd = _source_dir(src_root, src_parts, src_path, dirs)
        src_fd, copy.source_stat = _open_source(src_dir_fd, src_parts[-1], src_path)
        if expect_stat is not None and not same_scan_stat(copy.source_stat, expect_stat):
            raise SourceChanged("%s changed since it was scanned" % display(src_path), src_path)
        _advise_sequential(src_fd, copy.source_stat.st_size)
        for tgt in copy.targets:
            _prepare_target(tgt, replace, dirs)
        _create_temps(copy, _temp_tokens(copy.targets, tokens, journal))
        _stream(copy, src_fd, algorithm, chunk_size, pool)
        _check_source_after(copy, src_fd, expect_digest, algorithm)
        if preserve:
            for tgt in copy.writers():
                _preserve(tgt.fd, copy.source_stat)
        return copy
    except OSError as exc:  # a call not converted above; still named, never a traceback
        discard(copy)
        where = exc.filename or src_path
        raise CopyError("cannot copy %s: %s (%s)" % (display(src_path), _strerror(exc), display(where)), where, exc.errno)
    except BaseException:
        discard(copy)
        raise
    finally:
        if src_fd is not None:
            _close(src_fd)
        if src_dir_fd is not None and dirs is None:
            _close(src_dir_fd)


def _source_dir(src_root, src_parts, src_path, dirs):
    """The open directory of the source (kept in ``dirs`` when given)."""
    if dirs is None:
        return _open_source_dir(src_root, src_parts, src_path, "read")
    try:
        return dirs.get(src_root, src_parts[:-1])
    except FileNotFoundError:
        raise SourceVanished("%s vanished before it could be read" % display(src_path), src_path)


def _temp_tokens(targets, tokens, journal):
    """The temporary name of each target (None where a final copy exists):
    the caller's ``tokens`` (journalled by it), or new ones journalled here."""
    if tokens is not None:
        return [token if tgt.existing is None else None for tgt, token in zip(targets, tokens)]
    tokens = [temp_name(tgt.name) if tgt.existing is None else None for tgt in targets]
    if journal is not None and any(token is not None for token in tokens):
        journal.add_all(journal_entries(targets, tokens))
    return tokens


def _fsync_target(tgt):
    try:
        os.fsync(tgt.fd)
    except OSError as exc:
        raise tgt.failed("flush to disk", exc)


def close_temps(copy, flush=True):
    """Flush (when ``flush``) and close every temporary of ``copy``."""
    for tgt in copy.writers():
        if tgt.fd is not None:
            try:
                if flush:
                    _fsync_target(tgt)
            finally:
                _close(tgt.fd)
                tgt.fd = None


def _open_to_verify(name, dir_fd):
    """Open a copy to read it back, without moving its access time (the
    source's, kept on the copy) where the kernel allows it."""
    flags = os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC
    try:
        return os.open(name, flags | _O_NOATIME, dir_fd=dir_fd)
    except PermissionError:
        return os.open(name, flags, dir_fd=dir_fd)


def _read_back(fd, algorithm, digest, data):
    """The digest of a copy read back from the device, compared byte for
    byte with ``data``, the source's bytes (no second hash when they match)."""
    drop_cache(fd)
    back = os.pread(fd, len(data) + 1, 0)
    if back == data:
        return digest
    hasher = new_hasher(algorithm)
    hasher.update(back)
    return hasher.hexdigest()


def verify_copy(tgt, algorithm, digest, chunk_size=CHUNK_SIZE, size=None, data=None):
    """Re-read a copy (its temporary, or the existing final file) from the
    device and compare it with ``digest`` (with ``data``, the source's bytes:
    with them, byte for byte)."""
    name = tgt.temp if tgt.temp is not None else tgt.name
    where = os.path.join(os.path.dirname(tgt.path), name)
    try:
        fd = _open_to_verify(name, tgt.dir_fd)
    except OSError as exc:
        if exc.errno in DISK_ERRNOS:
            raise tgt.failed("re-open to verify", exc)
        raise VerifyFailed("cannot re-open %s to verify it: %s" % (display(where), _strerror(exc)), where, exc.errno)
    try:
        if tgt.temp is None and not stat.S_ISREG(_fstat(fd, where).st_mode):
            raise TargetConflict("%s is not a regular file" % display(where), where)
        try:
            if data is not None:
                got = _read_back(fd, algorithm, digest, data)
            else:
                got, dummy = hash_fd(fd, algorithm, chunk_size, size_hint=size)
        except OSError as exc:
            if exc.errno in DISK_ERRNOS:
                raise tgt.failed("read back", exc)
            raise VerifyFailed("cannot read back %s: %s" % (display(where), _strerror(exc)), where, exc.errno)
    finally:
        _close(fd)
    tgt.digest = got
    if got != digest:
        if tgt.temp is None:
            raise TargetConflict("%s already exists with other content (%s %s, source %s)" % (display(tgt.path), algorithm, got, digest), tgt.path)
        raise VerifyFailed("%s read back from disk does not match the source (%s %s, expected %s)" % (display(where), algorithm, got, digest), where)
    return got


def verify_all(copy, algorithm, chunk_size=CHUNK_SIZE):
    """Re-read every temporary and every existing final copy from its disk."""
    for tgt in copy.targets:
        if tgt.temp is not None or tgt.existing is not None:
            verify_copy(tgt, algorithm, copy.digest, chunk_size, copy.size)


def rename_into_place(copy, fsync_dir=True):
    """Rename every verified temporary to its final name; returns the
    directory fds to fsync (already done when ``fsync_dir``)."""
    dirs = []
    for tgt in copy.targets:
        if tgt.temp is None:
            tgt.reused = tgt.existing is not None
            continue
        try:
            os.rename(tgt.temp, tgt.name, src_dir_fd=tgt.dir_fd, dst_dir_fd=tgt.dir_fd)
        except OSError as exc:
            raise tgt.failed("rename the verified copy into place at", exc)
        tgt.temp = None
        dirs.append(tgt)
    if fsync_dir:
        fsync_dirs(dirs)
    copy.verified_at = time.time()
    return dirs


def fsync_dirs(targets):
    """fsync each target's directory once."""
    seen = set()
    for tgt in targets:
        if tgt.dir_fd in seen:
            continue
        seen.add(tgt.dir_fd)
        try:
            os.fsync(tgt.dir_fd)
        except OSError as exc:
            raise tgt.failed("flush the directory of", exc)


def discard(copy, close_dirs=False):
    """Remove the temporaries of a copy that will not be completed; one that
    cannot be removed is handed to ``journal.keep`` for a later sweep."""
    left = []
    for tgt in copy.targets:
        if tgt.fd is not None:
            _close(tgt.fd)
            tgt.fd = None
        if tgt.temp is not None and tgt.dir_fd is not None:
            try:
                os.unlink(tgt.temp, dir_fd=tgt.dir_fd)
            except FileNotFoundError:
                pass  # gone: nothing left to sweep
            except OSError:  # still there: its journal entry must stay
                left.append((tgt.root, temp_relpath(tgt.relpath, tgt.temp)))
            tgt.temp = None
        if close_dirs or copy.own_dirs:
            _close_target_dir(tgt)
    if left and getattr(copy.journal, "keep", None) is not None:
        copy.journal.keep(left)


def _close_target_dir(tgt):
    if tgt.dir_fd is not None:
        _close(tgt.dir_fd)
        tgt.dir_fd = None


class CopyResult:
    """What :func:`copy_verified` did."""

    def __init__(self, digest, size, source_stat, copies):
        self.digest = digest
        self.size = size
        self.source_stat = source_stat
        self.copies = copies  # [{"root", "relpath", "path", "verified_at", "reused"}]


def copy_verified(
    src_root,
    src_relpath,
    targets,
    algorithm="sha512",
    expect_digest=None,
    expect_stat=None,
    replace=False,
    journal=None,
    chunk_size=CHUNK_SIZE,
    pool=None,
    preserve=True,
):
    """Copy ``src_root/src_relpath`` to every ``(root, relpath)`` in ``targets``.

    One read of the source hashes it and feeds every temporary copy; each copy
    is fsynced, re-read from the device, compared and only then renamed into
    place (the directory is fsynced too). A final-named file that already
    exists is verified and reused when it matches (a rerun after a crash),
    replaced when ``replace`` is set, and otherwise a TargetConflict.

    ``expect_digest``: the source must hash to this (repairs).
    ``expect_stat``: the source must still be the file seen when scanning.
    ``journal``: object with ``add_all([(root, relpath), ...])``, called
    once (and durably recorded) before the temporaries are created, so a
    rerun can remove temporaries left by a killed run, and ``keep([(root,
    relpath), ...])``, called for temporaries that could not be removed after
    a failure: their entries must stay for a later sweep.
    Paths may be str or bytes. Raises a CopyError subclass (TargetFull and
    TargetFailed carry the ``index`` of the target); no temporary survives an
    exception, except one whose unlink failed, which is handed to ``journal.keep``.
    """
    own_pool = None
    if pool is None and ThreadPoolExecutor is not None and targets:
        own_pool = pool = ThreadPoolExecutor(max_workers=len(targets) + 1)
    copy = None
    try:
        copy = start_copy(src_root, src_relpath, targets, algorithm, expect_digest, expect_stat, replace, journal, chunk_size, pool, preserve)
        try:
            _run_parallel(
                pool if copy.size >= PARALLEL_MIN_BYTES else None, [lambda t=tgt: _finish_one(copy, t, algorithm, chunk_size) for tgt in copy.targets]
            )
            rename_into_place(copy)
            return copy.result()
        except OSError as exc:  # never a traceback
            raise CopyError("cannot copy %s: %s" % (display(copy.src_path), _strerror(exc)), exc.filename, exc.errno)
        finally:
            discard(copy, close_dirs=True)
    finally:
        if own_pool is not None:
            own_pool.shutdown(wait=True)


def _finish_one(copy, tgt, algorithm, chunk_size):
    """Flush, close and verify one target of a single-file copy."""
    if tgt.fd is not None:
        try:
            _fsync_target(tgt)
        finally:
            _close(tgt.fd)
            tgt.fd = None
    if tgt.temp is not None or tgt.existing is not None:
        verify_copy(tgt, algorithm, copy.digest, chunk_size, copy.size)


def _run_parallel(pool, calls):
    """Run callables, in ``pool`` when given; re-raise the first error."""
    if pool is None or len(calls) < 2:
        return [call() for call in calls]
    futures = [pool.submit(call) for call in calls]
    results, first = [], None
    for future in futures:
        try:
            results.append(future.result())
        except BaseException as exc:  # collect every future before raising
            results.append(None)
            first = first or exc
    if first is not None:
        raise first
    return results


def _wait(futures):
    first = None
    for future in futures:
        try:
            future.result()
        except BaseException as exc:
            first = first or exc
    if first is not None:
        raise first


def _drain(futures):
    for future in futures:
        try:
            future.result()
        except BaseException:  # the first error was already raised
            pass


def _preserve(fd, st):
    """Mode, owner (as root) and times of the source on the copy."""
    try:
        os.fchmod(fd, stat.S_IMODE(st.st_mode))
        if os.geteuid() == 0:
            os.fchown(fd, st.st_uid, st.st_gid)
        os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
    except OSError:
        pass  # metadata is best effort; content is what is verified


def check_copy(mount_point, relpath, algorithm, digest):
    """Verify one copy against its registered digest, read from the disk (not
    the page cache): ``(status, detail)`` with status ``ok``, ``missing``,
    ``corrupt`` or ``unreadable``."""
    try:
        got, dummy, dummy2 = hash_file(mount_point, relpath, algorithm, from_disk=True)
    except SourceVanished:
        return "missing", "%s does not exist" % display(_join(mount_point, relpath))
    except UnsafePath as exc:
        return "corrupt", str(exc)
    except CopyError as exc:  # changed while read, I/O error
        return "unreadable", str(exc)
    except OSError as exc:  # fstat of an open file on a dying disk
        return "unreadable", "cannot read %s: %s" % (display(_join(mount_point, relpath)), exc.strerror or exc)
    if got != digest:
        return "corrupt", "%s digest %s does not match the registered %s" % (algorithm, got, digest)
    return "ok", None


def remove_file(root, relpath, expect_stat, dirs=None, fsync=True):
    """Delete ``root/relpath`` after re-checking that it is still the file
    described by ``expect_stat`` (same inode, size, mtime and ctime).
    Returns True when removed, raises SourceChanged/SourceVanished.
    ``dirs`` (a :class:`DirCache`) and ``fsync=False`` let a batch fsync
    each directory once (:meth:`DirCache` fds) instead of once per file."""
    parts = split_relpath(relpath)
    where = _join(root, relpath)
    if dirs is not None:
        try:
            dfd = dirs.get(root, parts[:-1])
        except FileNotFoundError:
            raise SourceVanished("%s vanished before it could be removed" % display(where), where)
    else:
        dfd = _open_source_dir(root, parts, where, "removed")
    try:
        current = lstat_at(dfd, parts[-1], where)
        if current is None:
            raise SourceVanished("%s vanished before it could be removed" % display(where), where)
        if not stat.S_ISREG(current.st_mode) or not same_content_stat(current, expect_stat):
            raise SourceChanged("%s changed after it was copied; kept in the buffer" % display(where), where)
        try:
            os.unlink(parts[-1], dir_fd=dfd)
            if fsync:
                os.fsync(dfd)
        except OSError as exc:
            raise CopyError("cannot remove %s: %s" % (display(where), _strerror(exc)), where, exc.errno)
        return True
    finally:
        if dirs is None:
            _close(dfd)


def remove_temp(root, relpath, dry_run=False):
    """Remove a temporary left by a killed run. Returns True if one was
    removed (or, with ``dry_run``, would be). Only names the engine creates
    are touched, never through a symlink."""
    parts = split_relpath(relpath)
    if not is_temp_name(parts[-1]):
        raise UnsafePath("%s is not a temporary name of this engine" % display(_join(root, relpath)), relpath)
    if not os.path.isdir(fsbytes(root)):
        return False
    current = regular_file_stat(root, relpath)
    if current is None:
        return False
    if not dry_run:
        try:
            remove_file(root, relpath, current)
        except SourceVanished:
            return False
    return True


def remove_stale_temps(dir_fd, names=None, older_than=None):
    """Remove this engine's temporaries left by killed runs from the open
    directory ``dir_fd``: the names in ``names`` (default: its listing) that
    start with TEMP_PREFIX and are regular files (never through a symlink),
    with ``older_than`` only those whose ctime is before it (a live copy's
    temporary is newer: every write, chmod and utime moves its ctime).
    Returns how many were removed (the directory is fsynced then)."""
    if names is None:
        try:
            names = [entry.name for entry in os.scandir(dir_fd) if entry.name.startswith(TEMP_PREFIX)]
        except OSError:
            return 0
    removed = 0
    for name in names:
        raw = fsbytes(name)
        if not raw.startswith(_TEMP_PREFIX_B):
            continue
        try:
            st = os.stat(raw, dir_fd=dir_fd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or (older_than is not None and st.st_ctime >= older_than):
                continue
            os.unlink(raw, dir_fd=dir_fd)
        except OSError:  # gone, or not ours to remove: left alone
            continue
        removed += 1
    if removed:
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
    return removed


def regular_file_stat(root, relpath):
    """``lstat`` of ``root/relpath`` through the safe walk when it is a
    regular file, else None."""
    parts = split_relpath(relpath)
    try:
        dfd, dummy = open_tree_dir(root, parts[:-1])
    except FileNotFoundError:
        return None
    try:
        current = lstat_at(dfd, parts[-1], _join(root, relpath))
    finally:
        _close(dfd)
    return current if current is not None and stat.S_ISREG(current.st_mode) else None
