# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The upload inbox hand-off (module ``inbox``), plan then apply.

An uploader creates ``.name`` in the inbox, fills it and renames it to
``name`` when done. A run, holding an exclusive ``flock`` on the
``processing`` folder:

1. resumes every entry left in ``processing`` by a killed run;
2. classifies the inbox: dot-named (still uploading), changed within
   ``settle_seconds`` (settling), ready;
3. refuses a ready entry whose name does not match ``name_pattern``, whose
   destination renders outside ``dest_root`` or whose uploader (the owner of
   the entry) no rule of ``allowed`` lets deliver there: moved to ``failed``
   with a ``<name>.reason`` file beside it;
4. renames every other ready entry into ``processing``, walks it (never
   following a symlink; a hard link to a file of another owner refuses the
   entry), copies each file through the one copy engine (temporary name,
   fsync, verify from disk, rename) without ever overwriting: identical
   content already there is recognised, other content keeps its name and the
   new file lands as ``name.v2``, ``name.v3``...;
5. moves the entry to ``done`` (a name taken there gets a ``.2``, ``.3``
   suffix), or to ``failed`` with the reason.

Entries are renamed, never copied, between the four folders, which must be
one file system. Names are handled as ``str`` with surrogate escapes, so any
name the kernel accepts goes through; results show them with visible escapes.
No AnsibleModule here.
"""

from __future__ import annotations

import errno
import fcntl
import fnmatch
import grp
import os
import pwd
import re
import stat
import threading
import time
from contextlib import ExitStack

try:
    from concurrent.futures import ThreadPoolExecutor
except ImportError:  # pragma: no cover - always there on Python 3
    ThreadPoolExecutor = None

from ansible_collections.datasteward.storage.plugins.module_utils._copy import engine as copier
from ansible_collections.datasteward.storage.plugins.module_utils._fs.walk import display, walk

REASON_SUFFIX = ".reason"
MAX_VERSION_TRIES = 1000
# Files copied at once: their fsync and re-read latencies overlap.
COPY_WORKERS = 8
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


class InboxError(Exception):
    """Bad options or a run that cannot start; ``path`` names what is wrong."""

    def __init__(self, msg, path=None):
        super().__init__(msg)
        self.path = path


class Refused(Exception):
    """An entry that is not delivered; the message is its reason."""


def parse_mode(value, option):
    """``"0640"``, ``"640"``, ``0o640`` or 416 -> 0o640; None stays None."""
    if value is None:
        return None
    if isinstance(value, int):
        mode = value
    else:
        try:
            mode = int(str(value), 8)
        except ValueError:
            raise InboxError("%s: %r is not an octal mode such as 0640" % (option, value))
    if not 0 <= mode <= 0o7777:
        raise InboxError("%s: %r is not a permission mode (0 to 07777)" % (option, value))
    return mode


def group_id(value, option):
    """A group name or number -> gid."""
    if value is None:
        return None
    text = str(value)
    if text.isdigit():
        return int(text)
    try:
        return grp.getgrnam(text).gr_gid
    except KeyError:
        raise InboxError("%s: no group named %r on this host" % (option, text))


class Options:
    """The module's options, checked once (the dataclass of the argspec)."""

    def __init__(
        self,
        path,
        name_pattern,
        dest,
        dest_root,
        allowed,
        processing=None,
        done=None,
        failed=None,
        settle_seconds=60,
        mode="0640",
        group=None,
        directory_mode="2750",
        stuck_seconds=3600,
        keep_done_days=None,
        checksum_algorithm="sha512",
    ):
        self.path = _absolute(path, "path")
        parent = os.path.dirname(self.path.rstrip("/")) or "/"
        self.processing = _absolute(processing or os.path.join(parent, "processing"), "processing")
        self.done = _absolute(done or os.path.join(parent, "done"), "done")
        self.failed = _absolute(failed or os.path.join(parent, "failed"), "failed")
        self.name_pattern = _compile(name_pattern)
        self.dest = dest
        self.dest_root = os.path.normpath(_absolute(dest_root, "dest_root"))
        self.allowed = [Rule(rule, index) for index, rule in enumerate(allowed or [])]
        self.settle_seconds = _non_negative(settle_seconds, "settle_seconds")
        self.mode = parse_mode(mode, "mode")
        self.gid = group_id(group, "group")
        self.directory_mode = parse_mode(directory_mode, "directory_mode")
        self.stuck_seconds = _non_negative(stuck_seconds, "stuck_seconds")
        self.keep_done_days = None if keep_done_days is None else _non_negative(keep_done_days, "keep_done_days")
        if checksum_algorithm not in copier.available_algorithms():
            raise InboxError("checksum_algorithm: %r is not available here; use one of %s" % (checksum_algorithm, ", ".join(copier.available_algorithms())))
        self.algorithm = checksum_algorithm
        self._check_template()
        folders = [self.path, self.processing, self.done, self.failed]
        if len(set(os.path.normpath(f) for f in folders)) != 4:
            raise InboxError("path, processing, done and failed must be four different folders, got %s" % ", ".join(folders))

    def _check_template(self):
        names = set(self.name_pattern.groupindex)
        try:
            self.dest.format(**{name: "x" for name in names})
        except (KeyError, IndexError) as exc:
            raise InboxError("dest: %r uses %s, which is not a named group of name_pattern (groups: %s)" % (self.dest, exc, ", ".join(sorted(names)) or "none"))
        except ValueError as exc:
            raise InboxError("dest: %r is not a valid template: %s" % (self.dest, exc))
        for rule in self.allowed:
            rule.check(names)


def _absolute(path, option):
    if not path or not os.path.isabs(path):
        raise InboxError("%s: %r must be an absolute path" % (option, path), path)
    return path


def _non_negative(value, option):
    if value is None or value < 0:
        raise InboxError("%s: must be 0 or more, got %r" % (option, value))
    return value


def _compile(pattern):
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise InboxError("name_pattern: %r is not a valid regular expression: %s" % (pattern, exc))


class Rule:
    """One entry of ``allowed``: who may deliver to which destinations."""

    def __init__(self, rule, index):
        self.where = "allowed[%d]" % index
        if not isinstance(rule, dict):
            raise InboxError("%s: must be a dict with dest, users and/or groups, got %r" % (self.where, rule))
        unknown = set(rule) - {"dest", "users", "groups", "require"}
        if unknown:
            raise InboxError("%s: unknown keys %s (use dest, users, groups, require)" % (self.where, ", ".join(sorted(unknown))))
        self.dest = str(rule.get("dest") or "*")
        self.users = [str(u) for u in rule.get("users") or []]
        self.groups = [str(g) for g in rule.get("groups") or []]
        self.require = rule.get("require") or "any"
        if self.require not in ("any", "all"):
            raise InboxError("%s.require: must be any or all, got %r" % (self.where, self.require))
        if not self.users and not self.groups:
            raise InboxError("%s: names neither users nor groups, so it allows nobody" % self.where)

    def check(self, names):
        for text in [self.dest] + self.users + self.groups:
            try:
                text.format(**{name: "x" for name in names})
            except (KeyError, IndexError, ValueError) as exc:
                raise InboxError(
                    "%s: %r is not a template over the groups of name_pattern (%s): %s" % (self.where, text, ", ".join(sorted(names)) or "none", exc)
                )

    def allows(self, uploader, destination, fields):
        if not fnmatch.fnmatchcase(destination, self.dest.format(**fields)):
            return False
        checks = []
        if self.users:
            names = {u.format(**fields) for u in self.users}
            checks.append(uploader.name in names or str(uploader.uid) in names)
        if self.groups:
            wanted = {g.format(**fields) for g in self.groups}
            checks.append(bool(wanted & uploader.groups))
        return all(checks) if self.require == "all" else any(checks)


class Uploader:
    """The owner of an entry: uid, user name (None if unknown), group names and gids."""

    def __init__(self, uid, name, groups):
        self.uid = uid
        self.name = name
        self.groups = set(groups)

    def describe(self):
        return "%s (uid %d)" % (self.name, self.uid) if self.name else "uid %d (no user of that number)" % self.uid


def lookup_uploader(uid):
    """Default user lookup: passwd name, primary and supplementary groups,
    each by name and by number."""
    try:
        pw = pwd.getpwuid(uid)
    except KeyError:
        return Uploader(uid, None, [])
    try:
        gids = os.getgrouplist(pw.pw_name, pw.pw_gid)
    except OSError:
        gids = [pw.pw_gid]
    groups = {str(gid) for gid in gids}
    for gid in gids:
        try:
            groups.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            pass
    return Uploader(uid, pw.pw_name, groups)


# ---------------------------------------------------------------- walking


def walk_entry(root):
    """``(entries, issues)`` of an upload tree below ``root`` (which is not
    itself listed), through the shared walker. ``issues`` are ``(relpath,
    kind, message)`` of what was missed; another file system below an upload
    counts (its content would not be delivered), a non-UTF-8 name does not."""
    issues = []

    def keep(issue):
        if issue.is_error or issue.kind == "other_fs":
            issues.append((issue.relpath, issue.kind, issue.message))

    with walk(root, on_error=keep) as walker:
        entries = [entry for entry in walker if entry.relpath]
    return entries, issues


def newest_change(entries, top_st):
    """The latest mtime/ctime in a tree. Of the top folder only the mtime
    counts: its ctime is the uploader's final rename, which signals the end."""
    latest = top_st.st_mtime
    for entry in entries:
        latest = max(latest, entry.st.st_mtime, entry.st.st_ctime)
    return latest


# ---------------------------------------------------------------- folders


def open_folder(path, option):
    try:
        fd = os.open(path, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    except OSError as exc:
        raise InboxError("%s: cannot open folder %s: %s" % (option, path, exc.strerror or exc), path)
    return fd


class Folders:
    """The four folders, open, on one file system; ``lock`` takes the run lock."""

    def __init__(self, opts, stack):
        self.opts = opts
        self.fds = {}
        for option in ("path", "processing", "done", "failed"):
            path = getattr(opts, option)
            fd = open_folder(path, option)
            stack.callback(os.close, fd)
            self.fds[option] = fd
        if not os.path.isdir(opts.dest_root):
            raise InboxError("dest_root: %s is not a directory" % opts.dest_root, opts.dest_root)
        devs = {option: os.fstat(fd).st_dev for option, fd in self.fds.items()}
        if len(set(devs.values())) != 1:
            raise InboxError(
                "path, processing, done and failed must be on one file system (entries are renamed "
                "between them); %s" % ", ".join("%s is device %d" % item for item in sorted(devs.items())),
                opts.path,
            )

    def fd(self, option):
        return self.fds[option]

    def lock(self):
        """True when this run holds the exclusive lock, False when another run has it."""
        try:
            fcntl.flock(self.fds["processing"], fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            raise InboxError("processing: cannot lock %s: %s" % (self.opts.processing, exc.strerror or exc), self.opts.processing)
        return True

    def listing(self, option):
        """``[(name, lstat)]`` of a folder, sorted, reason files left out."""
        fd = self.fds[option]
        found = []
        for name in sorted(os.listdir(fd)):
            if option == "failed" and name.endswith(REASON_SUFFIX):
                continue
            try:
                found.append((name, os.stat(name, dir_fd=fd, follow_symlinks=False)))
            except FileNotFoundError:
                continue
        return found

    def free_name(self, option, name):
        """``name``, or ``name.2``, ``name.3``... whichever is not taken in the folder."""
        fd = self.fds[option]
        candidate, count = name, 1
        while _exists(fd, candidate) or (option == "failed" and _exists(fd, candidate + REASON_SUFFIX)):
            count += 1
            candidate = "%s.%d" % (name, count)
        return candidate

    def move(self, src, name, dst, new_name=None):
        """Rename ``src/name`` to ``dst/new_name`` (free name when None); returns the new name."""
        new_name = new_name or self.free_name(dst, name)
        os.rename(name, new_name, src_dir_fd=self.fds[src], dst_dir_fd=self.fds[dst])
        for option in sorted({src, dst}):
            os.fsync(self.fds[option])
        return new_name

    def path_of(self, option, name):
        return os.path.join(getattr(self.opts, option), name)


def _exists(fd, name):
    try:
        os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def write_reason(folders, name, reason):
    """``failed/<name>.reason``: temporary, fsync, rename, fsync the folder."""
    fd = folders.fd("failed")
    final = name + REASON_SUFFIX
    temp = copier.temp_name(final)
    data = ("%s\n" % reason).encode("utf-8", "surrogateescape")
    out = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, 0o644, dir_fd=fd)
    try:
        os.write(out, data)
        os.fchmod(out, 0o644)
        os.fsync(out)
    finally:
        os.close(out)
    os.rename(temp, final, src_dir_fd=fd, dst_dir_fd=fd)
    os.fsync(fd)


# ---------------------------------------------------------------- deciding


def match_name(opts, name):
    """The named groups of ``name`` (a trailing ``.N`` added by done/failed
    is tried away), or None when it does not match ``name_pattern``."""
    found = opts.name_pattern.search(name)
    if found is None:
        stripped = re.sub(r"\.[0-9]+$", "", name)
        found = opts.name_pattern.search(stripped) if stripped != name else None
    return None if found is None else {k: (v or "") for k, v in found.groupdict().items()}


def destination(opts, fields):
    """``(absolute destination, path relative to dest_root)``; Refused when it
    leaves ``dest_root``."""
    rendered = opts.dest.format(**fields)
    if not os.path.isabs(rendered):
        rendered = os.path.join(opts.dest_root, rendered)
    normal = os.path.normpath(rendered)
    if normal == opts.dest_root or os.path.commonpath([opts.dest_root, normal]) != opts.dest_root:
        raise Refused(
            "destination %s (dest %s with %s) is not inside dest_root %s"
            % (display(rendered), opts.dest, display(", ".join("%s=%s" % kv for kv in sorted(fields.items()))), opts.dest_root)
        )
    return normal, os.path.relpath(normal, opts.dest_root)


def check_allowed(opts, uploader, dest_path, fields):
    for rule in opts.allowed:
        if rule.allows(uploader, dest_path, fields):
            return
    raise Refused("uploader %s is not allowed to deliver to %s (no rule of allowed matches)" % (uploader.describe(), display(dest_path)))


class Entry:
    """One inbox entry being decided or delivered."""

    def __init__(self, name, st):
        self.name = name
        self.st = st
        self.fields = None
        self.dest = None
        self.dest_rel = None
        self.uploader = None

    def decide(self, opts, users):
        """Raises Refused unless the entry may be delivered."""
        if not stat.S_ISDIR(self.st.st_mode):
            kind = "a symlink" if stat.S_ISLNK(self.st.st_mode) else "not a folder"
            raise Refused("%s is %s; uploads are folders" % (display(self.name), kind))
        self.fields = match_name(opts, self.name)
        if self.fields is None:
            raise Refused("name %s does not match name_pattern %s" % (display(self.name), opts.name_pattern.pattern))
        self.dest, self.dest_rel = destination(opts, self.fields)
        self.uploader = users(self.st.st_uid)
        check_allowed(opts, self.uploader, self.dest, self.fields)


# ---------------------------------------------------------------- delivering


class _Job:
    """One file to copy: source ``rel`` and its lstat, destination dir (relative
    to dest_root), base name, source digest (when hashed), the dir's names and fd."""

    def __init__(self, rel, st, dest_dir, name, digest, names, fd):
        self.rel = rel
        self.st = st
        self.dest_dir = dest_dir
        self.name = name
        self.digest = digest
        self.names = names
        self.fd = fd
        self.version = 1

    def final(self, version):
        return self.name if version == 1 else "%s.v%d" % (self.name, version)

    def target(self, version):
        return self.final(version) if self.dest_dir in ("", ".") else os.path.join(self.dest_dir, self.final(version))


class Delivery:
    """The files of one entry (in ``processing``) copied to its destination."""

    def __init__(self, opts, entry, root, dry_run):
        self.opts = opts
        self.entry = entry
        self.root = root  # processing/<name>
        self.dry_run = dry_run
        self.dirs = {}  # dest relpath -> (fd, set of names)
        self.files = 0
        self.bytes = 0
        self.identical = 0
        self.written = []  # {"path", "version"}
        self.skipped = []  # {"path", "reason"}
        self.created_dirs = []
        self.lock = threading.Lock()
        self.stack = None  # the ExitStack holding the destination directory fds

    def plan(self):
        """Files to copy (relpath str, lstat); Refused for what refuses the entry."""
        entries, issues = walk_entry(self.root)
        if issues:
            rel, kind, msg = issues[0]
            raise Refused(
                "cannot read the upload completely: %s: %s (%s)%s"
                % (display(rel) or ".", msg, kind, "; %d more problems" % (len(issues) - 1) if len(issues) > 1 else "")
            )
        files, dirs = [], []
        for item in entries:
            rel = os.fsdecode(item.relpath)
            if item.is_dir:
                dirs.append(rel)
            elif item.is_file:
                if item.st.st_nlink > 1 and item.st.st_uid != self.entry.st.st_uid:
                    raise Refused(
                        "%s is a hard link to a file of uid %d, not of the uploader %s; refused"
                        % (display(rel), item.st.st_uid, self.entry.uploader.describe())
                    )
                files.append((rel, item.st))
            else:
                kind = "a symlink, not followed" if item.is_symlink else "not a regular file"
                self.skipped.append({"path": display(rel), "reason": kind})
        return dirs, files

    def run(self):
        dirs, files = self.plan()
        with ExitStack() as stack:
            self.stack = stack
            for rel in dirs:
                self.directory(rel)
            jobs = [job for job in (self.one_file(rel, st) for rel, st in files) if job is not None]
            if self.dry_run:
                for job in jobs:
                    self._record(job, job.version)
            else:
                self._copy_all(jobs, stack)
        self.written.sort(key=lambda item: item["path"])
        return self

    def _copy_all(self, jobs, stack):
        """Copy concurrently (fsync and re-read latencies overlap); the first
        error is raised once every started copy has ended."""
        if len(jobs) < 2 or ThreadPoolExecutor is None:
            for job in jobs:
                self._copy(job, None)
            return
        inner = stack.enter_context(ThreadPoolExecutor(max_workers=2 * COPY_WORKERS + 1))
        outer = stack.enter_context(ThreadPoolExecutor(max_workers=COPY_WORKERS))
        futures = [outer.submit(self._copy, job, inner) for job in jobs]
        first = None
        for future in futures:
            try:
                future.result()
            except Exception as exc:  # keep waiting for the others, then raise the first
                first = first or exc
        if first is not None:
            raise first

    # -- destination directories

    def directory(self, rel):
        """``(fd or None, names)`` of the destination directory for upload dir ``rel``."""
        key = os.path.normpath(os.path.join(self.entry.dest_rel, rel))
        if key in self.dirs:
            return self.dirs[key]
        parts = copier.split_relpath(key)
        try:
            fd, created = copier.open_tree_dir(self.opts.dest_root, parts, create=not self.dry_run)
        except FileNotFoundError:  # dry run: it would be created
            self.dirs[key] = (None, set())
            self.created_dirs.append(display(os.path.join(self.opts.dest_root, key)))
            return self.dirs[key]
        self.stack.callback(os.close, fd)
        created = [os.fsdecode(path) for path in created]  # the engine speaks bytes
        for path in created:
            self._set_dir_attributes(path)
        self.created_dirs.extend(display(p) for p in created)
        self.dirs[key] = (fd, set(os.listdir(fd)))
        return self.dirs[key]

    def _set_dir_attributes(self, path):
        rel = os.path.relpath(path, self.opts.dest_root)
        fd, dummy = copier.open_tree_dir(self.opts.dest_root, copier.split_relpath(rel))
        try:
            gid = self.opts.gid if self.opts.gid is not None else os.fstat(fd).st_gid
            os.fchown(fd, -1, gid)
            if self.opts.directory_mode is not None:
                os.fchmod(fd, self.opts.directory_mode)
        finally:
            os.close(fd)

    # -- files

    def one_file(self, rel, st):
        """Plan one file: None when identical content is already there, else
        the _Job copying it under the first free version name (reserved)."""
        head, name = os.path.split(rel)
        fd, names = self.directory(head)
        dest_rel = os.path.normpath(os.path.join(self.entry.dest_rel, rel))
        self.files += 1
        self.bytes += st.st_size
        taken = versions_of(name, names)
        digest = None
        if taken:
            digest = self._source_digest(rel)
            if self._identical(fd, os.path.dirname(dest_rel), taken, st.st_size, digest):
                self.identical += 1
                return None
        job = _Job(rel, st, os.path.dirname(dest_rel), name, digest, names, fd)
        job.version = self._reserve(job, (max(v for v, dummy in taken) + 1) if taken else 1)
        return job

    def _source_digest(self, rel):
        digest, dummy, dummy2 = copier.hash_file(self.root, rel, self.opts.algorithm, from_disk=False)
        return digest

    def _identical(self, fd, dest_dir, taken, size, digest):
        for dummy, existing in taken:
            try:
                st = os.stat(existing, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_size != size:
                continue
            try:
                got, dummy2, dummy3 = copier.hash_file(self.opts.dest_root, os.path.join(dest_dir, existing), self.opts.algorithm, from_disk=False)
            except copier.CopyError:
                continue  # unreadable or changing: not a proof of identity
            if got == digest:
                return True
        return False

    def _reserve(self, job, version):
        """The first version from ``version`` on whose name is free; taken for this job."""
        with self.lock:
            for dummy in range(MAX_VERSION_TRIES):
                if job.final(version) not in job.names:
                    job.names.add(job.final(version))
                    return version
                version += 1
        raise Refused("%s: no free version name after %d tries" % (display(job.rel), MAX_VERSION_TRIES))

    def _copy(self, job, pool):
        version = job.version
        while True:
            try:
                result = copier.copy_verified(
                    self.root,
                    job.rel,
                    [(self.opts.dest_root, job.target(version))],
                    algorithm=self.opts.algorithm,
                    expect_digest=job.digest,
                    expect_stat=job.st,
                    preserve=False,
                    pool=pool,
                    chunk_size=chunk_for(job.st.st_size),
                )
            except copier.TargetConflict:  # appeared meanwhile with other content
                version = self._reserve(job, version + 1)
                continue
            break
        if result.copies[0]["reused"]:  # appeared meanwhile with this content
            with self.lock:
                self.identical += 1
            return
        self._set_file_attributes(job.fd, job.final(version), job.st)
        self._record(job, version)

    def _record(self, job, version):
        with self.lock:
            self.written.append({"path": display(os.path.join(self.opts.dest_root, job.target(version))), "version": version})

    def _set_file_attributes(self, dir_fd, name, src_st):
        fd = os.open(name, os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC, dir_fd=dir_fd)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise Refused("%s was replaced by something else right after it was written" % display(name))
            gid = self.opts.gid if self.opts.gid is not None else os.fstat(dir_fd).st_gid
            os.fchown(fd, -1, gid)
            if self.opts.mode is not None:
                os.fchmod(fd, self.opts.mode)
            os.utime(fd, ns=(src_st.st_atime_ns, src_st.st_mtime_ns))
        finally:
            os.close(fd)

    def summary(self):
        return {
            "files": self.files,
            "bytes": self.bytes,
            "identical": self.identical,
            "versions": self.written,
            "skipped": self.skipped,
            "created_directories": self.created_dirs,
        }


def chunk_for(size):
    """Read/write buffer for a file: its size rounded up to 64 KiB, at most the
    engine's chunk (a small file does not get 3 fresh 4 MiB buffers)."""
    step = 64 * 1024
    return max(step, min(copier.CHUNK_SIZE, -(-size // step) * step))


def versions_of(name, names):
    """``[(version, existing name)]`` for ``name`` (version 1) and ``name.vN`` in ``names``."""
    found = [(1, name)] if name in names else []
    prefix = name + ".v"
    for other in names:
        number = other[len(prefix) :] if other.startswith(prefix) else ""
        if number.isdigit() and number.isascii() and int(number) >= 2 and str(int(number)) == number:
            found.append((int(number), other))
    return sorted(found)


def remove_leftover_temps(opts, delivery_dirs):
    """Temporaries of a killed copy in the destination directories of a resumed entry."""
    removed = 0
    for dummy, (fd, names) in delivery_dirs.items():
        temps = [name for name in names if name.startswith(copier.TEMP_PREFIX)]
        if fd is not None and temps:
            removed += copier.remove_stale_temps(fd, temps)  # the run's lock: none of them is in use
        names.difference_update(temps)
    return removed


# ---------------------------------------------------------------- the run


class Run:
    """One inbox run: ``Run(opts, check_mode).execute()`` -> result dict."""

    def __init__(self, opts, check_mode=False, clock=time.time, users=lookup_uploader):
        self.opts = opts
        self.check_mode = check_mode
        self.clock = clock
        self.users = _cached(users)
        self.now = clock()
        self.folders = None
        self.result = {
            "changed": False,
            "processed": [],
            "failed_entries": [],
            "uploading": [],
            "settling": [],
            "stuck": [],
            "resumed": [],
            "removed_done": [],
            "errors": [],
            "locked": False,
        }

    def execute(self):
        with ExitStack() as stack:
            self.folders = Folders(self.opts, stack)
            if not self.check_mode and not self.folders.lock():
                self.result["locked"] = True
                self._report_stuck()
                return self.result
            for name, st in self.folders.listing("processing"):
                self.result["resumed"].append(display(name))
                self._deliver(Entry(name, st), resumed=True)
            for name, st in self.folders.listing("path"):
                self._inbox_entry(name, st)
            self._expire_done()
            self._report_stuck()
        return self.result

    def _inbox_entry(self, name, st):
        root = self.folders.path_of("path", name)
        idle = self._idle_seconds(root, st)
        if name.startswith("."):
            self.result["uploading"].append(
                {"name": display(name), "age_seconds": _round(self.now - st.st_ctime), "idle_seconds": idle, "uploader_uid": st.st_uid}
            )
            return
        if idle is not None and idle < self.opts.settle_seconds:
            self.result["settling"].append({"name": display(name), "idle_seconds": idle})
            return
        entry = Entry(name, st)
        try:
            entry.decide(self.opts, self.users)
        except Refused as exc:
            self._fail(entry, "path", str(exc))
            return
        if self.check_mode:
            self._deliver(entry, resumed=False)
            return
        taken = self.folders.listing("processing")
        if any(n == name for n, dummy in taken):
            self.result["settling"].append({"name": display(name), "idle_seconds": idle, "waiting_for": "an entry of the same name in processing"})
            return
        try:
            self.folders.move("path", name, "processing", name)
        except OSError as exc:
            self.result["failed_entries"].append(
                {"name": display(name), "uploader_uid": st.st_uid, "reason": "cannot move it to processing: %s" % (exc.strerror or exc)}
            )
            return
        self.result["changed"] = True
        self._deliver(Entry(name, os.stat(name, dir_fd=self.folders.fd("processing"), follow_symlinks=False)), resumed=False)

    def _idle_seconds(self, root, st):
        if not stat.S_ISDIR(st.st_mode):
            return _round(self.now - max(st.st_mtime, st.st_ctime))
        try:
            entries, dummy = walk_entry(root)
        except OSError:
            return None
        return _round(self.now - newest_change(entries, st))

    def _deliver(self, entry, resumed):
        where = "path" if self.check_mode and not resumed else "processing"
        try:
            if entry.uploader is None:
                entry.decide(self.opts, self.users)
            delivery = Delivery(self.opts, entry, self.folders.path_of(where, entry.name), self.check_mode)
            if resumed and not self.check_mode:
                self._sweep(delivery)
            delivery.run()
        except Refused as exc:
            self._fail(entry, where, str(exc))
            return
        except copier.CopyError as exc:
            self._fail(entry, where, "copy failed: %s" % exc)
            return
        except OSError as exc:
            self._fail(entry, where, "%s: %s" % (display(exc.filename or entry.name), exc.strerror or exc))
            return
        item = dict(
            name=display(entry.name),
            uploader=entry.uploader.name,
            uploader_uid=entry.uploader.uid,
            destination=display(entry.dest),
            resumed=resumed,
            **delivery.summary(),
        )
        if delivery.written or delivery.created_dirs:
            self.result["changed"] = True
        if self.check_mode:
            self.result["changed"] = True  # it would be moved to done
        else:
            self.result["changed"] = True
            try:
                done = self.folders.move("processing", entry.name, "done")
                item["done"] = display(self.folders.path_of("done", done))
            except OSError as exc:  # delivered; left in processing, reported stuck later
                item["done_error"] = "cannot move it to done: %s" % (exc.strerror or exc)
        self.result["processed"].append(item)

    def _sweep(self, delivery):
        with ExitStack() as stack:
            delivery.stack = stack
            dirs, dummy = delivery.plan()
            for rel in [""] + dirs:
                try:
                    delivery.directory(rel)
                except copier.CopyError:
                    return
            remove_leftover_temps(self.opts, delivery.dirs)
        delivery.dirs = {}
        delivery.skipped = []
        delivery.created_dirs = []

    def _fail(self, entry, where, reason):
        item = {"name": display(entry.name), "reason": reason, "uploader_uid": entry.st.st_uid}
        if entry.uploader is not None:
            item["uploader"] = entry.uploader.name
        if entry.dest is not None:
            item["destination"] = display(entry.dest)
        if not self.check_mode:
            try:
                new = self.folders.move(where, entry.name, "failed")
                write_reason(self.folders, new, reason)
                item["moved_to"] = display(self.folders.path_of("failed", new))
            except OSError as exc:
                item["reason"] += "; and it could not be moved to failed: %s" % (exc.strerror or exc)
            self.result["changed"] = True
        self.result["failed_entries"].append(item)

    def _expire_done(self):
        days = self.opts.keep_done_days
        if days is None:
            return
        for name, st in self.folders.listing("done"):
            if self.now - st.st_ctime < days * 86400:
                continue
            if not self.check_mode:
                try:
                    _remove_tree(self.folders.fd("done"), name, st)
                except OSError as exc:
                    self.result["errors"].append("cannot remove %s: %s" % (display(self.folders.path_of("done", name)), exc.strerror or exc))
                    continue
            self.result["removed_done"].append(display(name))
            self.result["changed"] = True

    def _report_stuck(self):
        for name, st in self.folders.listing("processing"):
            age = self.now - st.st_ctime
            if age >= self.opts.stuck_seconds:
                self.result["stuck"].append({"name": display(name), "age_seconds": _round(age)})


def _remove_tree(dir_fd, name, st):
    """Remove ``done/<name>`` bottom-up with the shared walker (never following
    a symlink, never leaving its file system); what cannot be removed stays."""
    if stat.S_ISDIR(st.st_mode):
        root = os.path.join("/proc/self/fd/%d" % dir_fd, name)
        with walk(root, post_order=True) as walker:
            for entry in walker:
                if not entry.relpath:
                    continue
                if entry.leaving:
                    os.rmdir(entry.name, dir_fd=entry.dir_fd)
                elif not entry.is_dir:
                    os.unlink(entry.name, dir_fd=entry.dir_fd)
            missed = [issue for issue in walker.issues if issue.is_error or issue.kind == "other_fs"]
        if missed:
            raise OSError(errno.ENOTEMPTY, "not all of it could be removed: %s" % missed[0], name)
        os.rmdir(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)
    os.fsync(dir_fd)


def _round(seconds):
    return int(max(0, seconds))


def _cached(users):
    cache = {}

    def lookup(uid):
        if uid not in cache:
            cache[uid] = users(uid)
        return cache[uid]

    return lookup


def run_inbox(params, check_mode=False, clock=time.time, users=lookup_uploader):
    """Module entry: options from the argspec's params, one run, the result."""
    opts = Options(**params)
    return Run(opts, check_mode=check_mode, clock=clock, users=users).execute()
