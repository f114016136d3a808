# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Trees deeper than PATH_MAX, built (and measured) descriptor-relative,
since no full path to their bottom can be opened."""

from __future__ import annotations

import os
import subprocess

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


def deep_tree(root, levels, name=b"d", file_bytes=100):
    """``root``/name/name/... ``levels`` directories deep, one file of
    ``file_bytes`` (named ``f``) in each. Returns the number of entries
    below ``root`` (directories and files)."""
    os.mkdir(root)
    fd = os.open(root, _DIR)
    try:
        for _level in range(levels):
            os.mkdir(name, dir_fd=fd)
            handle = os.open(b"f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
            os.write(handle, b"x" * file_bytes)
            os.close(handle)
            child = os.open(name, _DIR, dir_fd=fd)
            os.close(fd)
            fd = child
    finally:
        os.close(fd)
    return 2 * levels


def remove_tree(root):
    """Remove a tree of any depth (pytest's own clean-up of tmp_path
    recurses, and fails on one deeper than ~1,000 levels)."""
    subprocess.run(["rm", "-rf", "--one-file-system", root], check=True)


def find_count_and_bytes(root):
    """(entries below root, sum of their st_size) by GNU find, which walks
    at any depth."""
    out = subprocess.run(["find", root, "-mindepth", "1", "-printf", "%s\n"], capture_output=True, check=True).stdout.split()
    return len(out), sum(int(size) for size in out)


def du_apparent(root):
    """GNU du -s -x --apparent-size -B1 of ``root`` (root included)."""
    out = subprocess.run(["du", "-s", "-x", "--apparent-size", "-B1", root], capture_output=True, check=True).stdout
    return int(out.split()[0])
