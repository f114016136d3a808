# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Real trees for the user_usage_info tests, and what GNU du and find say about them.

``build_tree(base)`` gives its files several owners (root only: the system
suite); ``build_tree(base, owners=False)`` builds the same tree owned by
whoever runs the test (the unit tests)."""

from __future__ import annotations

import collections
import functools
import os
import subprocess
import tempfile
import time

DAY = 86400
UNKNOWN_UID = 4242424  # no passwd entry
UNKNOWN_GID = 4242425
COUNTS = ("files", "dirs", "symlinks", "others", "apparent_bytes", "allocated_bytes")


def by_key(result, section, key):
    """One section of a scan result (users, groups, directories) as a dict by ``key``."""
    return dict((item[key], item) for item in result[section])


def _file_as(path, data=b"", size=None, uid=0, gid=0, age_days=None, owners=True):
    with open(path, "wb") as handle:
        handle.write(data)
        if size is not None:
            handle.truncate(size)
    if owners:
        os.chown(path, uid, gid)
    if age_days is not None:
        stamp = time.time() - age_days * DAY
        os.utime(path, (stamp, stamp))


def build_tree(base, owners=True):
    """A tree with several owners, hard links inside and across directories and
    to a file outside the tree, sparse files, symlinks out of the tree and
    loops, names with newlines and invalid UTF-8, old and new files.

    Returns the root (str). ``base`` gets ``tree/`` and ``outside/``. With
    ``owners=False`` nothing is chowned (no root needed)."""
    base = str(base)
    chown = os.chown if owners else (lambda path, uid, gid: None)
    lchown = os.lchown if owners else chown
    _file = functools.partial(_file_as, owners=owners)
    root = os.path.join(base, "tree")
    outside = os.path.join(base, "outside")
    os.makedirs(outside)
    for name in ("alice", "bob", "ghost", "shared", "shared/deep", "shared/deep/deeper"):
        os.makedirs(os.path.join(root, name))
    chown(os.path.join(root, "alice"), 1001, 1001)
    chown(os.path.join(root, "bob"), 1002, 100)
    chown(os.path.join(root, "ghost"), UNKNOWN_UID, UNKNOWN_GID)

    _file(os.path.join(root, "alice", "big.bin"), data=b"a" * 300000, uid=1001, gid=1001)
    _file(os.path.join(root, "alice", "old.log"), data=b"x" * 5000, uid=1001, gid=1001, age_days=200)
    _file(os.path.join(root, "alice", "older.log"), data=b"x" * 7000, uid=1001, gid=1001, age_days=400)
    _file(os.path.join(root, "alice", "sparse.img"), size=50 * 1024 * 1024, uid=1001, gid=1001, age_days=120)
    _file(os.path.join(root, "alice", "new\nline.txt"), data=b"newline", uid=1001, gid=1001)
    _file(os.path.join(root, "bob", "data.csv"), data=b"b" * 123457, uid=1002, gid=100, age_days=1)
    _file(os.path.join(root, "bob", "empty"), uid=1002, gid=100)
    bad = os.fsencode(os.path.join(root, "bob")) + b"/caf\xe9-latin1.txt"
    with open(bad, "wb") as handle:
        handle.write(b"latin-1 name")
    chown(bad, 1002, 100)
    _file(os.path.join(root, "ghost", "orphan.dat"), data=b"g" * 9999, uid=UNKNOWN_UID, gid=UNKNOWN_GID, age_days=100)

    # Hard links: inside one directory, across directories, and to outside.
    _file(os.path.join(root, "shared", "linked.bin"), data=b"L" * 65536, uid=1001, gid=1001, age_days=300)
    os.link(os.path.join(root, "shared", "linked.bin"), os.path.join(root, "shared", "linked-again.bin"))
    os.link(os.path.join(root, "shared", "linked.bin"), os.path.join(root, "bob", "link-to-shared.bin"))
    os.link(os.path.join(root, "shared", "linked.bin"), os.path.join(root, "shared", "deep", "deeper", "l3"))
    _file(os.path.join(outside, "target.bin"), data=b"O" * 40000, uid=1002, gid=100)
    os.link(os.path.join(outside, "target.bin"), os.path.join(root, "bob", "outside-link.bin"))
    _file(os.path.join(root, "shared", "deep", "deeper", "deepfile"), data=b"d" * 12345, uid=1002, gid=100)

    # Symlinks: out of the tree, to a directory, loops, dangling.
    os.symlink("/usr", os.path.join(root, "shared", "to-usr"))
    os.symlink(outside, os.path.join(root, "alice", "to-outside"))
    os.symlink("loop", os.path.join(root, "shared", "loop"))
    os.symlink("b", os.path.join(root, "shared", "a"))
    os.symlink("a", os.path.join(root, "shared", "b"))
    os.symlink("..", os.path.join(root, "shared", "deep", "up"))
    os.symlink("missing", os.path.join(root, "bob", "dangling"))
    lchown(os.path.join(root, "bob", "dangling"), 1002, 100)
    os.mkfifo(os.path.join(root, "shared", "fifo"))
    return root


def big_tree(base, dirs=40, files=60):
    """Enough entries for the workers to split tasks, with hard links across
    the subtrees that different workers scan."""
    root = os.path.join(str(base), "big")
    first = None
    for d in range(dirs):
        sub = os.path.join(root, "d%02d" % d, "sub")
        os.makedirs(sub)
        for f in range(files):
            path = os.path.join(sub, "f%03d" % f)
            with open(path, "wb") as handle:
                handle.write(b"z" * ((d * files + f) % 5000))
            if os.geteuid() == 0:  # several owners where it can
                os.chown(path, 2000 + d % 3, 3000 + f % 2)
        if first is None:
            first = os.path.join(sub, "f000")
        else:
            os.link(first, os.path.join(sub, "link-to-first"))
        os.link(os.path.join(sub, "f001"), os.path.join(root, "d%02d" % d, "link-up"))
    return root


def du_bytes(root, apparent, one_file_system=True, user=None):
    """du's total for ``root`` (a path, or a list of paths: du counts a
    hard-linked inode once across all of them)."""
    roots = [root] if isinstance(root, (str, bytes, os.PathLike)) else list(root)
    cmd = ["du", "-s", "-B1", "-c"]
    if apparent:
        cmd.append("--apparent-size")
    if one_file_system:
        cmd.append("-x")
    cmd.extend(roots)
    if user:
        cmd = ["runuser", "-u", user, "--"] + cmd
    out = subprocess.run(cmd, capture_output=True, check=False)
    return int(out.stdout.splitlines()[-1].split()[0])  # the "total" line


def du_depth(root, depth, apparent):
    cmd = ["du", "-B1", "-x", "--max-depth=%d" % depth, "-0"]
    if apparent:
        cmd.append("--apparent-size")
    out = subprocess.run(cmd + [root], capture_output=True, check=True).stdout
    result = {}
    for record in out.split(b"\0"):
        if record:
            size, path = record.split(b"\t", 1)
            result[os.fsdecode(path)] = int(size)
    return result


def find_sums(root, one_file_system=True, older_days=None, key="%U"):
    """Per-owner sums from GNU find -printf, hard links (nlink > 1, not a
    directory) counted once. Returns owner -> Counter."""
    cmd = ["find", root]
    if one_file_system:
        cmd.append("-xdev")
    if older_days is not None:
        cmd += ["-type", "f", "-mtime", "+%d" % older_days]
    cmd += ["-printf", key + " %i %D %n %y %s %b\n"]
    out = subprocess.run(cmd, capture_output=True, check=True, text=True).stdout
    seen = set()
    sums = collections.defaultdict(collections.Counter)
    kinds = {"f": "files", "d": "dirs", "l": "symlinks"}
    for line in out.splitlines():
        owner, ino, dev, nlink, kind, size, blocks = line.split()
        if kind != "d" and int(nlink) > 1:
            if (dev, ino) in seen:
                continue
            seen.add((dev, ino))
        counter = sums[int(owner)]
        counter[kinds.get(kind, "others")] += 1
        counter["apparent_bytes"] += int(size)
        counter["allocated_bytes"] += int(blocks) * 512
    return sums


def world_readable_base():
    """A temp dir that user nobody can traverse (pytest's is 0700)."""
    path = tempfile.mkdtemp(prefix="scan-test-")
    os.chmod(path, 0o755)
    return path
