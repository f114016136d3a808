# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one tree walker (_fs/walk.py) on real trees: depth past PATH_MAX,
symlinks never followed, odd names, entries that vanish or are swapped
while it walks, post-order, prune, deadline. Unreadable directories as
user nobody are in tests/system/fs/test_walk_as_nobody.py."""

from __future__ import annotations

import os
import stat
import time

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._fs import walk as walk_module
from ansible_collections.datasteward.storage.plugins.module_utils._fs.match import Match
from ansible_collections.datasteward.storage.plugins.module_utils._fs.walk import (
    WalkError,
    display,
    walk,
    walk_dirs,
)
from ansible_collections.datasteward.storage.tests.unit.utils.deep_tree import (
    deep_tree,
    du_apparent,
    find_count_and_bytes,
    remove_tree,
)


@pytest.fixture(name="deep")
def deep_fixture(tmp_path):
    """Where a deep tree goes; removed by the test itself (pytest cannot)."""
    root = os.path.join(str(tmp_path), "deep")
    yield root
    remove_tree(root)


def _tree(base):
    """A small tree: files, a subtree, symlinks out of it and to a directory."""
    root = os.path.join(str(base), "tree")
    os.makedirs(os.path.join(root, "a", "b"))
    os.makedirs(os.path.join(root, "c"))
    os.makedirs(os.path.join(str(base), "outside"))
    for rel, size in (("top.txt", 10), ("a/one.tmp", 20), ("a/b/two.dat", 30), ("c/three", 40)):
        with open(os.path.join(root, rel), "wb") as handle:
            handle.write(b"x" * size)
    with open(os.path.join(str(base), "outside", "secret"), "wb") as handle:
        handle.write(b"s" * 1000)
    os.symlink(os.path.join(str(base), "outside"), os.path.join(root, "to-outside"))
    os.symlink("a", os.path.join(root, "c", "to-a"))
    os.symlink("loop", os.path.join(root, "loop"))
    return root


def _paths(root, **kwargs):
    with walk(root, **kwargs) as walker:
        return sorted(entry.relpath for entry in walker)


def test_walk_yields_every_entry_once_relative_to_root(tmp_path):
    root = _tree(tmp_path)
    assert _paths(root) == [b"", b"a", b"a/b", b"a/b/two.dat", b"a/one.tmp", b"c", b"c/three", b"c/to-a", b"loop", b"to-outside", b"top.txt"]


def test_symlinks_are_entries_never_followed(tmp_path):
    root = _tree(tmp_path)
    with walk(root) as walker:
        entries = dict((entry.relpath, entry) for entry in walker)
    assert entries[b"to-outside"].is_symlink and not entries[b"to-outside"].is_dir
    assert stat.S_ISLNK(entries[b"c/to-a"].st.st_mode)
    assert not any(b"secret" in path for path in entries)
    assert walker.issues == []


def test_root_that_is_a_symlink_or_missing_or_a_file_raises_naming_it(tmp_path):
    root = _tree(tmp_path)
    with pytest.raises(WalkError, match="to-outside: it is a symlink"):
        walk_dirs(os.path.join(root, "to-outside"))
    with pytest.raises(WalkError, match="nope does not exist"):
        walk_dirs(os.path.join(root, "nope"))
    with pytest.raises(WalkError, match="top.txt: it is not a directory"):
        walk(os.path.join(root, "top.txt"))


def test_entries_carry_their_parent_descriptor(tmp_path):
    root = _tree(tmp_path)
    for entry in walk(root):
        if entry.depth == 0:
            assert entry.dir_fd is None and entry.name == b""
            continue
        again = os.stat(entry.name, dir_fd=entry.dir_fd, follow_symlinks=False)
        assert (again.st_dev, again.st_ino) == (entry.st.st_dev, entry.st.st_ino)
        assert entry.relpath.endswith(entry.name) and entry.relpath.count(b"/") == entry.depth - 1


def test_walk_dirs_hands_out_a_directory_at_a_time(tmp_path):
    root = _tree(tmp_path)
    seen = {}
    for directory in walk_dirs(root):
        assert os.path.samestat(os.fstat(directory.fd), directory.st)
        seen[directory.relpath] = sorted(name for name, _st in directory.entries)
    assert seen == {b"": [b"a", b"c", b"loop", b"to-outside", b"top.txt"], b"a": [b"b", b"one.tmp"], b"a/b": [b"two.dat"], b"c": [b"three", b"to-a"]}


def test_stream_gives_the_same_entries_as_entries(tmp_path):
    root = _tree(tmp_path)
    streamed = dict((d.relpath, sorted(name for name, _st in d.stream())) for d in walk_dirs(root))
    listed = dict((d.relpath, sorted(name for name, _st in d.entries)) for d in walk_dirs(root))
    assert streamed == listed


def test_directories_not_read_by_the_consumer_are_still_walked(tmp_path):
    root = _tree(tmp_path)
    assert sorted(d.relpath for d in walk_dirs(root)) == [b"", b"a", b"a/b", b"c"]


# ----------------------------------------------------------------- depth


def test_3000_levels_match_find_and_du_with_few_descriptors(deep):
    root = deep
    expected = deep_tree(root, 3000)
    fds_before = len(os.listdir("/proc/self/fd"))
    most = [0]
    count = size = 0
    deepest = 0
    with walk(root, max_open_fds=16) as walker:
        for entry in walker:
            if entry.depth == 0:
                size += entry.st.st_size
                continue
            count += 1
            size += entry.st.st_size
            if entry.depth > deepest:
                deepest = entry.depth
                if deepest % 500 == 0:
                    most[0] = max(most[0], len(os.listdir("/proc/self/fd")) - fds_before)
        assert walker.issues == []
    assert count == expected == find_count_and_bytes(root)[0]
    assert size == du_apparent(root)
    assert deepest == 3000
    assert most[0] <= 16 + 2  # the walker's descriptors plus scandir's duplicate


def test_path_longer_than_8000_bytes(deep):
    root = deep
    name = b"n" * 200
    deep_tree(root, 45, name=name)  # 45 * 201 bytes: past 8,000 and PATH_MAX
    longest = max(entry.relpath for entry in walk(root))
    assert len(longest) > 8000
    count, size = find_count_and_bytes(root)
    with walk(root) as walker:
        entries = [entry for entry in walker if entry.depth]
    assert len(entries) == count and sum(entry.st.st_size for entry in entries) == size


def test_post_order_removes_a_tree_deeper_than_path_max_bottom_up(deep):
    """The purge's use: unlink files and rmdir emptied directories relative
    to the descriptors the walker hands out (1,500 levels of 4 bytes: past
    PATH_MAX; each rmdir costs a journal commit, hence not 3,000)."""
    root = deep
    deep_tree(root, 1500, name=b"ddd")
    with walk(root, post_order=True, max_open_fds=8) as walker:
        for entry in walker:
            if entry.depth == 0:
                continue
            if entry.leaving:
                os.rmdir(entry.name, dir_fd=entry.dir_fd)
            elif not entry.is_dir:
                os.unlink(entry.name, dir_fd=entry.dir_fd)
        assert walker.issues == []
    assert os.listdir(root) == []


def test_post_order_leaving_comes_after_the_contents(tmp_path):
    root = _tree(tmp_path)
    order = [(e.relpath, e.leaving) for e in walk(root, post_order=True)]
    for directory in (b"", b"a", b"a/b", b"c"):
        leaving = order.index((directory, True))
        inside = [i for i, (path, _l) in enumerate(order) if path.startswith(directory + b"/" if directory else b"") and path != directory]
        assert max(inside) < leaving
        assert order.index((directory, False)) < leaving
    assert order[-1] == (b"", True)
    leaving = []
    for directory in walk_dirs(root, post_order=True):
        if directory.leaving:  # its descriptor is still open
            assert os.path.samestat(os.fstat(directory.fd), directory.st)
            leaving.append(directory.relpath)
    assert leaving[-1] == b"" and sorted(leaving) == [b"", b"a", b"a/b", b"c"]


# ----------------------------------------------------------------- names


def test_non_utf8_names_are_bytes_and_reported(tmp_path):
    root = os.fsencode(str(tmp_path / "odd"))
    os.makedirs(root + b"/caf\xe9")
    with open(root + b"/caf\xe9/\xff\xfe", "wb") as handle:
        handle.write(b"x")
    with open(root + b"/new\nline", "wb") as handle:
        handle.write(b"x")
    with walk(root) as walker:
        paths = sorted(entry.relpath for entry in walker)
    assert paths == [b"", b"caf\xe9", b"caf\xe9/\xff\xfe", b"new\nline"]
    assert sorted((i.relpath, i.kind) for i in walker.issues) == [(b"caf\xe9", "non_utf8"), (b"caf\xe9/\xff\xfe", "non_utf8")]
    assert not any(issue.is_error for issue in walker.issues)
    assert display(b"caf\xe9/\xff") == "caf\\xe9/\\xff"
    assert display(os.fsdecode(b"caf\xe9")) == "caf\\xe9"
    assert display("plain") == "plain"


# ----------------------------------------------------------------- changes while walking


def test_vanished_directory_is_reported_and_the_rest_walked(tmp_path):
    root = _tree(tmp_path)
    with walk_dirs(root) as walker:
        seen = []
        for directory in walker:
            seen.append(directory.relpath)
            if directory.relpath == b"":
                assert directory.entries  # listed, then the subdirectory goes
                os.rename(os.path.join(root, "a"), os.path.join(str(tmp_path), "gone"))
    assert seen == [b"", b"c"]
    assert [(i.relpath, i.kind) for i in walker.issues] == [(b"a", "vanished")]


def test_vanished_entries_while_listing(tmp_path):
    root = os.path.join(str(tmp_path), "many")
    os.mkdir(root)
    for index in range(100):
        open(os.path.join(root, "f%03d" % index), "wb").close()
    with walk_dirs(root) as walker:
        for directory in walker:
            stream = directory.stream()
            first = next(stream)
            for name in os.listdir(root):
                if os.fsencode(name) != first[0]:
                    os.unlink(os.path.join(root, name))
            rest = list(stream)
    assert len(rest) + len([i for i in walker.issues if i.kind == "vanished"]) == 99
    assert all(i.kind == "vanished" for i in walker.issues)


def test_entry_listed_by_name_then_gone_is_vanished(tmp_path, monkeypatch):
    """A small directory is listed at once (listdir) and each name lstat'ed
    afterwards: a name gone in between is reported, the walk goes on."""
    root = os.path.join(str(tmp_path), "few")
    os.mkdir(root)
    open(os.path.join(root, "here"), "wb").close()
    listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda fd: listdir(fd) + ["gone"])
    with walk_dirs(root) as walker:
        names = [name for directory in walker for name, _st in directory.stream()]
    assert names == [b"here"]
    assert [(i.relpath, i.kind, i.is_dir) for i in walker.issues] == [(b"gone", "vanished", None)]


def test_listing_is_the_same_by_name_and_by_entry(tmp_path, monkeypatch):
    """Both ways of reading a directory (by name for a small one, entry by
    entry for a big one) give the same entries, lstat results and walk."""
    root = _tree(tmp_path)

    def listing():
        return sorted((d.relpath, name, st.st_ino, st.st_mode) for d in walk_dirs(root) for name, st in d.stream())

    by_name = listing()
    monkeypatch.setattr(walk_module, "_LISTDIR_BYTES", -1)  # every directory read entry by entry
    assert listing() == by_name and by_name


def test_directory_swapped_for_another_is_not_descended(tmp_path):
    """samestat: the directory opened must be the one listed."""
    root = _tree(tmp_path)
    other = os.path.join(str(tmp_path), "other")
    os.makedirs(os.path.join(other, "planted"))
    with walk_dirs(root) as walker:
        seen = []
        for directory in walker:
            seen.append(directory.relpath)
            if directory.relpath == b"":
                assert directory.entries
                os.rename(os.path.join(root, "a"), os.path.join(str(tmp_path), "moved"))
                os.rename(other, os.path.join(root, "a"))
    assert b"a/planted" not in seen and b"a" not in seen
    assert [(i.relpath, i.kind) for i in walker.issues] == [(b"a", "changed")]


def test_directory_swapped_for_a_symlink_is_not_followed(tmp_path):
    root = _tree(tmp_path)
    with walk_dirs(root) as walker:
        seen = []
        for directory in walker:
            seen.append(directory.relpath)
            if directory.relpath == b"":
                assert directory.entries
                os.rename(os.path.join(root, "c"), os.path.join(str(tmp_path), "moved"))
                os.symlink(os.path.join(str(tmp_path), "outside"), os.path.join(root, "c"))
    assert b"c" not in seen
    assert [(i.relpath, i.kind) for i in walker.issues] == [(b"c", "changed")]
    assert "symlink" in walker.issues[0].message


def test_swap_above_a_closed_descriptor_is_detected_on_reopen(tmp_path, deep):
    """A directory whose descriptor was closed (depth past max_open_fds) is
    reopened from an ancestor with the same identity check: the directories
    below a swapped one get no leaving event (nothing is done there)."""
    root = deep
    deep_tree(root, 20)
    leaving = []
    with walk_dirs(root, max_open_fds=4, post_order=True) as walker:
        for directory in walker:
            if directory.leaving:
                leaving.append(directory.depth)
            elif directory.depth == 20:
                os.rename(os.path.join(root, "d", "d"), os.path.join(str(tmp_path), "away"))
                os.makedirs(os.path.join(root, "d", "d"))
    # The moved subtree is intact: its directories are still the ones
    # walked (as held descriptors would be); the one moved away from its
    # parent gets no leaving event, its parent does.
    assert [(i.relpath, i.kind) for i in walker.issues] == [(b"d/d", "changed")]
    assert "moved out of its parent" in walker.issues[0].message
    assert leaving[0] == 20 and leaving[-2:] == [1, 0] and 2 not in leaving


# ----------------------------------------------------------------- options


def test_prune_on_entry_and_on_directory(tmp_path):
    root = _tree(tmp_path)
    paths = []
    for entry in walk(root):
        paths.append(entry.relpath)
        if entry.relpath == b"a":
            entry.prune()
    assert b"a" in paths and b"a/one.tmp" not in paths and b"c/three" in paths
    seen = []
    for directory in walk_dirs(root):
        seen.append(directory.relpath)
        directory.prune(b"c")
        directory.prune("b")
    assert seen == [b"", b"a"]


def test_max_depth(tmp_path):
    root = _tree(tmp_path)
    assert [d.relpath for d in walk_dirs(root, max_depth=0)] == [b""]
    assert max(e.depth for e in walk(root, max_depth=1)) == 2
    assert b"a/b/two.dat" not in _paths(root, max_depth=1) and b"a/b" in _paths(root, max_depth=1)


def test_excluded_entries_are_not_yielded_nor_descended(tmp_path):
    root = _tree(tmp_path)
    match = Match(excludes=["*.tmp", "a/b", "loop"])
    assert _paths(root, match=match) == [b"", b"a", b"c", b"c/three", b"c/to-a", b"to-outside", b"top.txt"]
    assert _paths(root, match=Match(excludes=["/c"])) == [b"", b"a", b"a/b", b"a/b/two.dat", b"a/one.tmp", b"loop", b"to-outside", b"top.txt"]


def test_deadline_stops_the_walk_with_one_timeout_issue(tmp_path):
    root = _tree(tmp_path)
    with walk_dirs(root, deadline=time.monotonic() - 1) as walker:
        seen = [directory.relpath for directory in walker]
    assert seen == [b""]
    assert walker.timed_out
    assert [(i.kind, i.is_error) for i in walker.issues] == [("timeout", True)]
    assert "partial" in walker.issues[0].message

    deadline = time.monotonic() + 0.3
    with walk(root, deadline=deadline) as slow:
        for _entry in slow:
            time.sleep(0.2)
    assert slow.timed_out and [i.kind for i in slow.issues] == ["timeout"]


def test_on_error_receives_the_issues(tmp_path):
    root = _tree(tmp_path)
    got = []
    with walk_dirs(root, on_error=got.append) as walker:
        for directory in walker:
            if directory.relpath == b"":
                assert directory.entries
                os.rename(os.path.join(root, "c"), os.path.join(str(tmp_path), "gone"))
    assert [(i.relpath, i.kind) for i in got] == [(b"c", "vanished")] and walker.issues == []
    assert str(got[0]) == "c: vanished before it was read"


def test_all_descriptors_closed_after_the_walk_or_when_abandoned(deep):
    root = deep
    deep_tree(root, 50)
    before = len(os.listdir("/proc/self/fd"))
    for _entry in walk(root):
        pass
    assert len(os.listdir("/proc/self/fd")) == before
    walker = walk(root)
    for entry in walker:
        if entry.depth == 30:
            break
    walker.close()
    assert len(os.listdir("/proc/self/fd")) == before
