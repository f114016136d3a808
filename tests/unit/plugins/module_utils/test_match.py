# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one match rule (_fs/match.py) for patterns and excludes, as a table."""

from __future__ import annotations

import fnmatch

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._fs.match import Match, MatchError

# pattern, relpath, is_dir, excluded?
RULES = [
    # no '/': the name, at any depth (fnmatch, case-sensitive)
    ("*.tmp", b"x.tmp", False, True),
    ("*.tmp", b"a/b/x.tmp", False, True),
    ("*.tmp", b"a/b/x.TMP", False, False),
    ("*.tmp", b"x.tmp.gz", False, False),
    (".snapshot", b"deep/er/.snapshot", True, True),
    ("core.[0-9]*", b"run/core.1234", False, True),
    ("core.[!0-9]*", b"run/core.1234", False, False),
    ("?", b"a/b", False, True),
    ("*", b"anything/at/all", False, True),
    # an excluded directory excludes everything below it
    ("cache", b"home/al/cache/x/y.dat", False, True),
    ("*.tmp", b"dir.tmp/inside", False, True),
    # with '/': the whole path relative to the root, anchored
    ("a/b", b"a/b", True, True),
    ("a/b", b"x/a/b", True, False),
    ("a/b", b"a/b/c", False, True),  # below an excluded directory
    ("a/b", b"a/bc", False, False),
    ("/tmp", b"tmp", True, True),  # a leading '/' is the root
    ("/tmp", b"x/tmp", True, False),
    ("a/*.log", b"a/x.log", False, True),
    ("a/*.log", b"a/b/x.log", False, False),  # '*' does not cross '/'
    ("a/**/x.log", b"a/x.log", False, True),  # '**/' may match no directory
    ("a/**/x.log", b"a/b/c/x.log", False, True),
    ("a/**", b"a/b/c", False, True),
    ("a/**", b"a", True, False),
    ("**/x.log", b"x.log", False, True),
    ("**/x.log", b"p/q/x.log", False, True),
    ("*/scratch", b"u/scratch", True, True),
    ("*/scratch", b"u/v/scratch", True, False),
    ("a/?", b"a/b", False, True),
    ("a/?", b"a/bb", False, False),
    ("a/[bc]", b"a/c", False, True),
    ("a[/]b", b"a/b", False, False),  # a class never matches '/'
    ("a/[", b"a/[", False, True),  # an unclosed '[' is literal
    # a trailing '/' limits a pattern to directories
    ("build/", b"build", True, True),
    ("build/", b"build", False, False),
    ("build/", b"build/out.o", False, True),
    ("build/", b"x/build", True, False),
    # bytes that are not UTF-8, and UTF-8 patterns
    ("caf*", b"caf\xe9", False, True),
    ("caf\xe9", b"caf\xc3\xa9", False, True),
    ("caf\xe9", b"caf\xe9", False, False),
]


@pytest.mark.parametrize("pattern, relpath, is_dir, excluded", RULES)
def test_rule(pattern, relpath, is_dir, excluded):
    assert Match(excludes=[pattern]).excluded(relpath, is_dir) is excluded


@pytest.mark.parametrize("pattern, relpath, is_dir, excluded", [r for r in RULES if b"/" not in r[1]])
def test_entry_fast_path_agrees(pattern, relpath, is_dir, excluded):
    match = Match(excludes=[pattern])
    assert match.excluded_entry(b"", relpath, is_dir) is excluded


def test_names_like_find_uses_fnmatch():
    for pattern in ("*.py", "data-??.csv", "[abc]*", "*[!~]"):
        for name in ("x.py", "data-01.csv", "data-1.csv", "apple", "file~", "a.py~"):
            assert Match(excludes=[pattern]).excluded(name.encode(), False) == fnmatch.fnmatchcase(name, pattern)


def test_root_is_never_excluded_and_str_paths_are_accepted():
    match = Match(excludes=["*"])
    assert not match.excluded(b"", True)
    assert match.excluded("a/b", False)
    assert not Match().excluded(b"a", False) and not Match(excludes=[]).excludes_anything


def test_selected():
    assert Match().selected(b"any/thing")
    assert Match(patterns=[]).selected(b"any/thing")
    match = Match(patterns=["*.fits", "raw/*.dat"])
    assert match.selected(b"night1/img.fits")
    assert match.selected(b"raw/x.dat") and not match.selected(b"cooked/raw/x.dat")
    assert not match.selected(b"img.fits.gz")
    assert Match(patterns=["night*/"]).selected(b"night1", is_dir=False) is False
    # excludes are not looked at by selected
    assert Match(patterns=["*.fits"], excludes=["*.fits"]).selected(b"a.fits")


def test_several_excludes_are_one_rule():
    match = Match(excludes=["*.tmp", "/scratch/old", "cache/"])
    assert match.excluded(b"x/y.tmp", False)
    assert match.excluded(b"scratch/old/f", False) and not match.excluded(b"scratch/new/f", False)
    assert match.excluded(b"cache/f", False) and not match.excluded(b"x/cache", False)
    assert match.excluded_entry(b"scratch", b"old", True)
    assert not match.excluded_entry(b"scratch", b"new", True)


@pytest.mark.parametrize(
    "bad, option, cause",
    [
        ("", "excludes", "non-empty strings"),
        (None, "excludes", "non-empty strings"),
        (5, "excludes", "non-empty strings"),
        ("/", "excludes", "the root itself"),
        ("a/../b", "excludes", "'..' component"),
        ("./a", "excludes", "'.' or '..'"),
        ("a//b", "excludes", "empty component"),
        ("a\0b", "excludes", "NUL"),
    ],
)
def test_bad_patterns_name_option_and_pattern(bad, option, cause):
    with pytest.raises(MatchError, match="^%s: " % option) as info:
        Match(excludes=[bad])
    assert cause in str(info.value)
    with pytest.raises(MatchError, match="^patterns: "):
        Match(patterns=[bad])


def test_a_string_instead_of_a_list_is_refused():
    with pytest.raises(MatchError, match="^excludes: expected a list"):
        Match(excludes="*.tmp")
