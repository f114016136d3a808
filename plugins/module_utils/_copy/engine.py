# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The copy engine: one verified copy protocol for every module that copies.

Per file: the source is opened without following symlinks and read once; every
chunk is hashed and written to a temporary file in each target directory. The
temporaries are fsynced, their cached pages are dropped
(``posix_fadvise(DONTNEED)``), and each is re-read from the device and hashed.
Only a copy whose digest matches is renamed to its final name, and the
directory is fsynced. A final-named file therefore never holds anything but a
verified copy, whatever instant the process dies at.

Every tree this engine modifies is walked one component at a time with
``O_NOFOLLOW`` relative to an open directory, and each directory's device is
compared with the tree root's, so a symlink or a mount point inside a tree
never leads the engine out of it.

Standard library only (``blake3`` is used when installed); no AnsibleModule.
"""

from __future__ import annotations

import errno
import fnmatch
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
CHUNK_SIZE = 4 * 1024 * 1024
NAME_MAX = 255

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NOATIME = getattr(os, "O_NOATIME", 0)
_FADV_DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", None)
_FADV_SEQUENTIAL = getattr(os, "POSIX_FADV_SEQUENTIAL", None)
_FULL_ERRNOS = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG)


class CopyError(Exception):
    """A file could not be copied; ``path`` names the file or directory."""

    def __init__(self, msg, path=None):
        super().__init__(msg)
        self.path = path


class SourceVanished(CopyError):
    """The source disappeared before or while it was read."""


class SourceChanged(CopyError):
    """The source was modified while (or after) it was read."""


class UnsafePath(CopyError):
    """A symlink, a non-directory or another file system inside a tree."""


class TargetFull(CopyError):
    """A target file system ran out of space; ``index`` is the target's position."""

    def __init__(self, msg, path=None, index=None):
        super().__init__(msg, path)
        self.index = index


class VerifyFailed(CopyError):
    """A copy read back from the device does not match the source digest."""


class TargetConflict(CopyError):
    """A final-named file already exists at the target and holds other data."""


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
    """``a/b/c`` -> ``['a', 'b', 'c']``; refuses absolute paths and ``..``."""
    parts = [part for part in str(relpath).split("/") if part not in ("", ".")]
    if not parts or str(relpath).startswith("/") or ".." in parts:
        raise UnsafePath("%r is not a relative path inside the tree" % (relpath,), relpath)
    return parts


def temp_name(final_name, token=None):
    """A temporary name next to ``final_name`` that the engine recognises."""
    token = token or secrets.token_hex(6)
    room = NAME_MAX - len(TEMP_PREFIX) - len(token) - 1
    return "%s%s.%s" % (TEMP_PREFIX, final_name[:room], token)


def final_of_temp(temp_relpath):
    """The relative path a temporary (from :func:`temp_name`) was made for,
    or None when its name was cut to fit NAME_MAX and cannot be told."""
    head, name = os.path.split(temp_relpath)
    stem = name[len(TEMP_PREFIX):].rpartition(".")[0] if name.startswith(TEMP_PREFIX) else ""
    if not stem or len(stem) >= NAME_MAX - len(TEMP_PREFIX) - 13:
        return None
    return os.path.join(head, stem)


def _strerror(exc):
    return exc.strerror or str(exc)


def _fstat(fd, where):
    """``fstat`` of an open file; an I/O error (a dying disk) is a CopyError."""
    try:
        return os.fstat(fd)
    except OSError as exc:
        raise CopyError("cannot stat %s: %s" % (where, _strerror(exc)), where)


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
        fd = os.open(root, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    except OSError as exc:
        raise CopyError("cannot open directory %s: %s" % (root, _strerror(exc)), root)
    return fd


def open_tree_dir(root, parts, create=False, mode=0o755):
    """Open directory ``root/parts...`` without following symlinks or leaving
    the root's file system; create missing components when ``create``.

    Returns ``(fd, created)`` where ``created`` lists the directories made."""
    fd = open_root(root)
    created = []
    try:
        dev = _fstat(fd, root).st_dev
        where = root
        for part in parts:
            where = os.path.join(where, part)
            try:
                child = os.open(part, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(part, mode, dir_fd=fd)
                    created.append(where)
                    os.fsync(fd)
                except FileExistsError:
                    pass
                except OSError as exc:
                    if exc.errno in _FULL_ERRNOS:
                        raise TargetFull("no space to create directory %s: %s" % (where, _strerror(exc)), where)
                    raise CopyError("cannot create directory %s: %s" % (where, _strerror(exc)), where)
                try:
                    child = os.open(part, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=fd)
                except OSError as exc:
                    raise CopyError("cannot open directory %s: %s" % (where, _strerror(exc)), where)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafePath("%s is a symlink or not a directory; refusing to follow it" % where, where)
                raise CopyError("cannot open directory %s: %s" % (where, _strerror(exc)), where)
            _close(fd)
            fd = child
            if _fstat(fd, where).st_dev != dev:
                raise UnsafePath("%s is on another file system than %s; refusing to leave the tree" % (where, root), where)
        return fd, created
    except BaseException:
        _close(fd)
        raise


def lstat_at(dir_fd, name, where=None):
    """``lstat`` of ``name`` in an open directory, or None when absent; any
    other error (EIO on a dying disk, ENAMETOOLONG) is a CopyError naming
    ``where`` (the full path)."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as exc:
        where = where or name
        raise CopyError("cannot stat %s: %s" % (where, _strerror(exc)), where)


def same_content_stat(a, b):
    """True when two stat results describe the same, unmodified file."""
    return (a.st_dev, a.st_ino, a.st_size, a.st_mtime_ns, a.st_ctime_ns) == (b.st_dev, b.st_ino, b.st_size, b.st_mtime_ns, b.st_ctime_ns)


def drop_cache(fd):
    """Evict the clean cached pages of an open file so the next read comes
    from the device (no-op where the kernel keeps them, e.g. tmpfs)."""
    if _FADV_DONTNEED is not None:
        try:
            os.posix_fadvise(fd, 0, 0, _FADV_DONTNEED)
        except OSError:
            pass


def hash_fd(fd, algorithm, chunk_size=CHUNK_SIZE, from_disk=True):
    """Hash an open file from offset 0; with ``from_disk`` drop its cached
    pages first and again afterwards. Returns ``(hexdigest, size)``."""
    hasher = new_hasher(algorithm)
    if from_disk:
        drop_cache(fd)
    if _FADV_SEQUENTIAL is not None:
        try:
            os.posix_fadvise(fd, 0, 0, _FADV_SEQUENTIAL)
        except OSError:
            pass
    buf = bytearray(chunk_size)
    view = memoryview(buf)
    offset = 0
    while True:
        count = os.preadv(fd, [buf], offset) if hasattr(os, "preadv") else _pread_into(fd, view, offset)
        if not count:
            break
        hasher.update(view[:count])
        offset += count
    if from_disk:
        drop_cache(fd)
    return hasher.hexdigest(), offset


def _pread_into(fd, view, offset):  # pragma: no cover - Python without preadv
    data = os.pread(fd, len(view), offset)
    view[:len(data)] = data
    return len(data)


def hash_file(root, relpath, algorithm, from_disk=True):
    """Hash ``root/relpath`` safely (no symlinks, same file system).
    Returns ``(hexdigest, size, stat_before)``; raises SourceChanged when the
    file changed while it was read."""
    parts = split_relpath(relpath)
    where = os.path.join(root, relpath)
    dfd = _open_source_dir(root, parts, where, "read")
    try:
        fd = _open_source(dfd, parts[-1], where)
        try:
            before = _fstat(fd, where)
            try:
                digest, size = hash_fd(fd, algorithm, from_disk=from_disk)
            except OSError as exc:
                raise CopyError("cannot read %s: %s" % (where, _strerror(exc)), where)
            after = _fstat(fd, where)
        finally:
            _close(fd)
    finally:
        _close(dfd)
    if not same_content_stat(before, after) or size != before.st_size:
        raise SourceChanged("%s changed while it was read" % where, where)
    return digest, size, before


def _open_source_dir(root, parts, where, doing):
    """The open directory of source ``root/parts``; a missing directory
    means the source vanished before it could be ``doing`` (read, removed)."""
    try:
        fd, dummy = open_tree_dir(root, parts[:-1])
    except FileNotFoundError:
        raise SourceVanished("%s vanished before it could be %s" % (where, doing), where)
    return fd


def _open_source(dir_fd, name, where):
    flags = os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC
    try:
        try:
            fd = os.open(name, flags | _O_NOATIME, dir_fd=dir_fd)
        except PermissionError:
            fd = os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        raise SourceVanished("%s vanished before it could be read" % where, where)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePath("%s is a symlink; refusing to follow it" % where, where)
        raise CopyError("cannot read %s: %s" % (where, _strerror(exc)), where)
    try:
        st = _fstat(fd, where)
    except CopyError:
        _close(fd)
        raise
    if not stat.S_ISREG(st.st_mode):
        _close(fd)
        raise UnsafePath("%s is not a regular file" % where, where)
    return fd


class _Target:
    """One destination of a copy: ``root/relpath``."""

    def __init__(self, root, relpath):
        self.root = root
        self.relpath = relpath
        self.path = os.path.join(root, relpath)
        self.parts = split_relpath(relpath)
        self.name = self.parts[-1]
        self.dir_fd = None
        self.fd = None
        self.temp = None
        self.existing = None
        self.reused = False
        self.digest = None


def _write_all(fd, view, target, index):
    try:
        while view:
            written = os.write(fd, view)
            view = view[written:]
    except OSError as exc:
        if exc.errno in _FULL_ERRNOS:
            raise TargetFull("%s: no space left while writing %s" % (target.root, target.path), target.path, index)
        raise CopyError("cannot write %s: %s" % (target.path, _strerror(exc)), target.path)


def _fsync_target(target, index):
    try:
        os.fsync(target.fd)
    except OSError as exc:
        if exc.errno in _FULL_ERRNOS:
            raise TargetFull("%s: no space left while flushing %s" % (target.root, target.path), target.path, index)
        raise CopyError("cannot flush %s to disk: %s" % (target.path, _strerror(exc)), target.path)


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


class CopyResult:
    """What :func:`copy_verified` did."""

    def __init__(self, digest, size, source_stat, copies):
        self.digest = digest
        self.size = size
        self.source_stat = source_stat
        self.copies = copies  # [{"root", "relpath", "path", "verified_at", "reused"}]


def copy_verified(src_root, src_relpath, targets, algorithm="sha512", expect_digest=None, expect_stat=None,
                  replace=False, journal=None, chunk_size=CHUNK_SIZE, pool=None, preserve=True):
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
    Raises a CopyError subclass; no temporary survives an exception, except
    one whose unlink failed, which is handed to ``journal.keep``.
    """
    src_path = os.path.join(src_root, src_relpath)
    src_parts = split_relpath(src_relpath)
    tgts = [_Target(root, relpath) for root, relpath in targets]
    own_pool = None
    if pool is None and ThreadPoolExecutor is not None and len(tgts) > 0:
        own_pool = pool = ThreadPoolExecutor(max_workers=len(tgts) + 1)
    src_dir_fd = src_fd = None
    pending = []
    left = []
    try:
        src_dir_fd = _open_source_dir(src_root, src_parts, src_path, "read")
        src_fd = _open_source(src_dir_fd, src_parts[-1], src_path)
        before = _fstat(src_fd, src_path)
        if expect_stat is not None and (before.st_dev, before.st_ino, before.st_size, before.st_mtime_ns) != (
                expect_stat.st_dev, expect_stat.st_ino, expect_stat.st_size, expect_stat.st_mtime_ns):
            raise SourceChanged("%s changed since it was scanned" % src_path, src_path)
        if _FADV_SEQUENTIAL is not None:
            try:
                os.posix_fadvise(src_fd, 0, 0, _FADV_SEQUENTIAL)
            except OSError:
                pass

        for index, tgt in enumerate(tgts):
            try:
                tgt.dir_fd, dummy = open_tree_dir(tgt.root, tgt.parts[:-1], create=True)
            except TargetFull as exc:  # no space (or no inode) for a directory: that disk is full
                raise TargetFull(str(exc), exc.path, index)
            existing = lstat_at(tgt.dir_fd, tgt.name, tgt.path)
            if existing is not None and not stat.S_ISREG(existing.st_mode):
                raise TargetConflict("%s exists and is not a regular file" % tgt.path, tgt.path)
            if existing is not None and not replace:
                tgt.existing = existing
        tokens = {index: temp_name(tgt.name) for index, tgt in enumerate(tgts) if tgt.existing is None}
        if journal is not None and tokens:
            journal.add_all([(tgts[index].root, os.path.join(os.path.dirname(tgts[index].relpath), token)) for index, token in tokens.items()])
        for index, token in tokens.items():
            tgt = tgts[index]
            try:
                tgt.fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, 0o600,
                                 dir_fd=tgt.dir_fd)
            except OSError as exc:
                if exc.errno in _FULL_ERRNOS:
                    raise TargetFull("%s: no space to create %s" % (tgt.root, tgt.path), tgt.path, index)
                raise CopyError("cannot create a temporary file next to %s: %s" % (tgt.path, _strerror(exc)), tgt.path)
            tgt.temp = token

        writers = [(index, tgt) for index, tgt in enumerate(tgts) if tgt.fd is not None]
        hasher = new_hasher(algorithm)
        buffers = [bytearray(chunk_size), bytearray(chunk_size)]
        size = 0
        turn = 0
        while True:
            buf = buffers[turn]
            try:
                count = os.readv(src_fd, [buf])
            except OSError as exc:
                raise CopyError("cannot read %s: %s" % (src_path, _strerror(exc)), src_path)
            if pending:
                _wait(pending)
                pending = []
            if not count:
                break
            view = memoryview(buf)[:count]
            size += count
            calls = [lambda v=view: hasher.update(v)]
            calls += [lambda v=view, t=tgt, i=index: _write_all(t.fd, v, t, i) for index, tgt in writers]
            if pool is not None:
                pending = [pool.submit(call) for call in calls]
            else:
                for call in calls:
                    call()
            turn ^= 1
        digest = hasher.hexdigest()
        after = _fstat(src_fd, src_path)
        if not same_content_stat(before, after) or size != after.st_size:
            raise SourceChanged("%s was modified while it was copied; not registered, left in place" % src_path, src_path)
        if expect_digest is not None and digest != expect_digest:
            raise VerifyFailed("%s does not match its recorded %s digest" % (src_path, algorithm), src_path)

        def finish(index, tgt):
            if preserve:
                _preserve(tgt.fd, before)
            _fsync_target(tgt, index)
            return verify_copy(tgt, algorithm, digest, chunk_size)

        def check_existing(tgt):
            return verify_copy(tgt, algorithm, digest, chunk_size)

        calls = [lambda i=index, t=tgt: finish(i, t) for index, tgt in writers]
        calls += [lambda t=tgt: check_existing(t) for tgt in tgts if tgt.existing is not None]
        _run_parallel(pool, calls)

        verified_at = time.time()
        copies = []
        for tgt in tgts:
            if tgt.temp is not None:
                try:
                    os.rename(tgt.temp, tgt.name, src_dir_fd=tgt.dir_fd, dst_dir_fd=tgt.dir_fd)
                    tgt.temp = None
                    os.fsync(tgt.dir_fd)
                except OSError as exc:
                    raise CopyError("cannot rename the verified copy into place at %s: %s" % (tgt.path, _strerror(exc)), tgt.path)
            else:
                tgt.reused = True
            copies.append({"root": tgt.root, "relpath": tgt.relpath, "path": tgt.path, "verified_at": verified_at,
                           "reused": tgt.reused})
        return CopyResult(digest, size, before, copies)
    except OSError as exc:  # a call not converted above; still named, never a traceback
        where = exc.filename or src_path
        raise CopyError("cannot copy %s to %s: %s (%s)" % (src_path, ", ".join(t.path for t in tgts), _strerror(exc), where), where)
    finally:
        for future in pending:
            try:
                future.result()
            except BaseException:  # the first error was already raised
                pass
        if own_pool is not None:
            own_pool.shutdown(wait=True)
        for tgt in tgts:
            if tgt.fd is not None:
                _close(tgt.fd)
            if tgt.temp is not None and tgt.dir_fd is not None:
                try:
                    os.unlink(tgt.temp, dir_fd=tgt.dir_fd)
                except FileNotFoundError:
                    pass  # gone: nothing left to sweep
                except OSError:  # still there: its journal entry must stay
                    left.append((tgt.root, os.path.join(os.path.dirname(tgt.relpath), tgt.temp)))
            if tgt.dir_fd is not None:
                _close(tgt.dir_fd)
        if src_fd is not None:
            _close(src_fd)
        if src_dir_fd is not None:
            _close(src_dir_fd)
        if left and getattr(journal, "keep", None) is not None:
            journal.keep(left)


def _wait(futures):
    first = None
    for future in futures:
        try:
            future.result()
        except BaseException as exc:
            first = first or exc
    if first is not None:
        raise first


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
        return "missing", "%s does not exist" % os.path.join(mount_point, relpath)
    except UnsafePath as exc:
        return "corrupt", str(exc)
    except CopyError as exc:  # changed while read, I/O error
        return "unreadable", str(exc)
    except OSError as exc:  # fstat of an open file on a dying disk
        return "unreadable", "cannot read %s: %s" % (os.path.join(mount_point, relpath), exc.strerror or exc)
    if got != digest:
        return "corrupt", "%s digest %s does not match the registered %s" % (algorithm, got, digest)
    return "ok", None


def verify_copy(tgt, algorithm, digest, chunk_size=CHUNK_SIZE):
    """Re-read a copy (its temporary, or the existing final file) from the
    device and compare it with ``digest``."""
    name = tgt.temp if tgt.temp is not None else tgt.name
    where = os.path.join(os.path.dirname(tgt.path), name)
    try:
        fd = os.open(name, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=tgt.dir_fd)
    except OSError as exc:
        raise VerifyFailed("cannot re-open %s to verify it: %s" % (where, _strerror(exc)), where)
    try:
        if tgt.temp is None and not stat.S_ISREG(_fstat(fd, where).st_mode):
            raise TargetConflict("%s is not a regular file" % where, where)
        try:
            got, dummy = hash_fd(fd, algorithm, chunk_size)
        except OSError as exc:
            raise VerifyFailed("cannot read back %s: %s" % (where, _strerror(exc)), where)
    finally:
        _close(fd)
    tgt.digest = got
    if got != digest:
        if tgt.temp is None:
            raise TargetConflict("%s already exists with other content (%s %s, source %s)" % (tgt.path, algorithm, got, digest), tgt.path)
        raise VerifyFailed("%s read back from disk does not match the source (%s %s, expected %s)" % (where, algorithm, got, digest), where)
    return got


def remove_file(root, relpath, expect_stat):
    """Delete ``root/relpath`` after re-checking that it is still the file
    described by ``expect_stat`` (same inode, size, mtime and ctime).
    Returns True when removed, raises SourceChanged/SourceVanished."""
    parts = split_relpath(relpath)
    where = os.path.join(root, relpath)
    dfd = _open_source_dir(root, parts, where, "removed")
    try:
        current = lstat_at(dfd, parts[-1], where)
        if current is None:
            raise SourceVanished("%s vanished before it could be removed" % where, where)
        if not stat.S_ISREG(current.st_mode) or not same_content_stat(current, expect_stat):
            raise SourceChanged("%s changed after it was copied; kept in the buffer" % where, where)
        try:
            os.unlink(parts[-1], dir_fd=dfd)
            os.fsync(dfd)
        except OSError as exc:
            raise CopyError("cannot remove %s: %s" % (where, _strerror(exc)), where)
        return True
    finally:
        _close(dfd)


def remove_temp(root, relpath, dry_run=False):
    """Remove a temporary left by a killed run. Returns True if one was
    removed (or, with ``dry_run``, would be). Only names the engine creates
    are touched, never through a symlink."""
    parts = split_relpath(relpath)
    if not parts[-1].startswith(TEMP_PREFIX):
        raise UnsafePath("%s is not a temporary name of this engine" % os.path.join(root, relpath), relpath)
    if not os.path.isdir(root):
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


def regular_file_stat(root, relpath):
    """``lstat`` of ``root/relpath`` through the safe walk when it is a
    regular file, else None."""
    parts = split_relpath(relpath)
    try:
        dfd, dummy = open_tree_dir(root, parts[:-1])
    except FileNotFoundError:
        return None
    try:
        current = lstat_at(dfd, parts[-1], os.path.join(root, relpath))
    finally:
        _close(dfd)
    return current if current is not None and stat.S_ISREG(current.st_mode) else None


def match_name(name, patterns, excludes):
    """``find``-style globs on a file name."""
    if patterns and not any(fnmatch.fnmatchcase(name, pat) for pat in patterns):
        return False
    return not (excludes and any(fnmatch.fnmatchcase(name, pat) for pat in excludes))


def scan_tree(root, patterns=None, excludes=None, errors=None):
    """Regular files under ``root`` as sorted ``(relpath, lstat)`` pairs.

    Never follows symlinks (they are reported in ``errors`` and skipped),
    never descends into another file system, skips the engine's temporaries.
    Unreadable directories and vanished entries go to ``errors``."""
    errors = errors if errors is not None else []
    try:
        root_dev = os.stat(root).st_dev
    except OSError as exc:
        raise CopyError("cannot read directory %s: %s" % (root, _strerror(exc)), root)
    found = []
    stack = [""]
    while stack:
        rel = stack.pop()
        where = os.path.join(root, rel) if rel else root
        try:
            with os.scandir(where) as entries:
                items = list(entries)
        except OSError as exc:
            errors.append({"path": where, "msg": "cannot read directory %s: %s" % (where, _strerror(exc))})
            continue
        for entry in items:
            relpath = os.path.join(rel, entry.name) if rel else entry.name
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                errors.append({"path": entry.path, "msg": "cannot stat %s: %s" % (entry.path, _strerror(exc))})
                continue
            if stat.S_ISLNK(st.st_mode):
                errors.append({"path": entry.path, "msg": "%s is a symlink; not followed" % entry.path})
            elif stat.S_ISDIR(st.st_mode):
                if st.st_dev != root_dev:
                    errors.append({"path": entry.path, "msg": "%s is another file system; not entered" % entry.path})
                else:
                    stack.append(relpath)
            elif stat.S_ISREG(st.st_mode):
                if entry.name.startswith(TEMP_PREFIX) or not match_name(entry.name, patterns, excludes):
                    continue
                found.append((relpath, st))
    found.sort(key=lambda item: item[0])
    return found
