# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The collection's one match rule for ``patterns`` and ``excludes``.

As ``ansible.builtin.find`` users expect:

* a pattern without ``/`` matches the entry's NAME (shell glob, ``fnmatch``,
  case-sensitive), at any depth: ``*.tmp``, ``.snapshot``;
* a pattern with ``/`` matches the entry's whole path RELATIVE TO THE ROOT,
  anchored at both ends: ``*`` and ``?`` do not cross ``/``, ``**`` does
  (``**/`` also matches no directory at all), ``[...]`` is a class; a leading
  ``/`` is allowed and means the root (``/tmp`` is only the root's ``tmp``);
* a trailing ``/`` limits a pattern to directories (``build/``: the root's
  directory ``build``; it is a path pattern because it contains ``/``);
* an excluded directory excludes everything below it.

Everything works on bytes (names are whatever the kernel accepts); patterns
are str and are encoded as the file system encodes names (UTF-8 with
surrogate escapes). No AnsibleModule here.
"""

from __future__ import annotations

import fnmatch
import os
import re


class MatchError(ValueError):
    """A pattern that cannot be used; the message names the option and pattern."""


def _as_latin1(pattern):
    """The pattern's bytes as a str of code points 0-255, so that one regex
    engine matches bytes names exactly (as fnmatch does for bytes)."""
    return os.fsencode(pattern).decode("latin-1")


def _translate_class(pattern, start):
    """``[...]`` at ``start``: (regex, index after it), or None if unclosed."""
    end = start + 1
    if end < len(pattern) and pattern[end] in "!^":
        end += 1
    if end < len(pattern) and pattern[end] == "]":
        end += 1
    while end < len(pattern) and pattern[end] != "]":
        end += 1
    if end >= len(pattern):
        return None
    body = pattern[start + 1 : end].replace("\\", "\\\\")
    if body[0] in "!^":
        return "[^/" + body[1:] + "]", end + 1
    # A class never matches the separator, whatever range it spans.
    return "(?!/)[" + body + "]", end + 1


def _translate_path(pattern):
    """A path glob as a regex: ``*``/``?``/``[..]`` stay within one
    component, ``**`` crosses components, ``**/`` may match none."""
    out = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            out.append(".*")
            index += 2
        elif char == "*":
            out.append("[^/]*")
            index += 1
        elif char == "?":
            out.append("[^/]")
            index += 1
        elif char == "[" and _translate_class(pattern, index) is not None:
            regex, index = _translate_class(pattern, index)
            out.append(regex)
        else:
            out.append(re.escape(char))
            index += 1
    return "(?s:" + "".join(out) + r")\Z"


def _check(option, pattern):
    if not isinstance(pattern, str) or not pattern:
        raise MatchError("%s: patterns must be non-empty strings, got %r" % (option, pattern))
    if "\0" in pattern:
        raise MatchError("%s: pattern %r contains a NUL byte, which no file name can" % (option, pattern))
    body = pattern.strip("/")
    if not body:
        raise MatchError(
            "%s: pattern %r names the root itself, which is never matched; leave it out or give a name or a path below the root" % (option, pattern)
        )
    if "/" in pattern and any(part in (".", "..") for part in body.split("/")):
        raise MatchError("%s: pattern %r has a '.' or '..' component; paths are relative to the root and never contain one" % (option, pattern))
    if "//" in body:
        raise MatchError("%s: pattern %r has an empty component ('//')" % (option, pattern))


def _compile(parts):
    if not parts:
        return None
    return re.compile("|".join("(?:%s)" % part for part in parts).encode("latin-1"), re.DOTALL)


class _Rules:
    """One list of patterns compiled into at most four regexes: by name or by
    path, for any entry or for directories only."""

    def __init__(self, option, patterns):
        if isinstance(patterns, (str, bytes)) or not isinstance(patterns, (list, tuple)):
            raise MatchError("%s: expected a list of patterns, got %r" % (option, patterns))
        name, path, name_dir, path_dir = [], [], [], []
        for pattern in patterns:
            _check(option, pattern)
            dir_only = pattern.endswith("/")
            if "/" in pattern:
                body = pattern.strip("/")
                (path_dir if dir_only else path).append(_translate_path(_as_latin1(body)))
            else:
                (name_dir if dir_only else name).append(fnmatch.translate(_as_latin1(pattern)))
        self.name = _compile(name)
        self.path = _compile(path)
        self.name_dir = _compile(name_dir)
        self.path_dir = _compile(path_dir)
        self.needs_path = self.path is not None or self.path_dir is not None

    def hit(self, relpath, name, is_dir):
        if self.name is not None and self.name.match(name):
            return True
        if self.path is not None and self.path.match(relpath):
            return True
        if is_dir:
            if self.name_dir is not None and self.name_dir.match(name):
                return True
            if self.path_dir is not None and self.path_dir.match(relpath):
                return True
        return False


def _name_of(relpath):
    return relpath.rpartition(b"/")[2]


def _as_bytes(relpath):
    if isinstance(relpath, str):
        relpath = os.fsencode(relpath)
    return relpath.strip(b"/")


class Match:
    """``patterns`` (None or empty: everything is selected) and ``excludes``
    (None or empty: nothing is excluded), both lists of str globs, by the rule above.

    Raises MatchError naming the option and the pattern for a bad one."""

    def __init__(self, patterns=None, excludes=None):
        self._select = _Rules("patterns", patterns) if patterns else None
        self._exclude = _Rules("excludes", excludes) if excludes else None
        self.patterns = list(patterns) if patterns else None
        self.excludes = list(excludes) if excludes else []

    def __repr__(self):
        return "Match(patterns=%r, excludes=%r)" % (self.patterns, self.excludes)

    @property
    def excludes_anything(self):
        return self._exclude is not None

    def excluded(self, relpath, is_dir):
        """Whether ``relpath`` (bytes, relative to the root) is excluded: it,
        or one of the directories above it, matches an exclude. The root
        (``b""``) never is."""
        relpath = _as_bytes(relpath)
        if self._exclude is None or not relpath:
            return False
        parts = relpath.split(b"/")
        last = len(parts) - 1
        prefix = b""
        for index, part in enumerate(parts):
            prefix = part if index == 0 else prefix + b"/" + part
            if self._exclude.hit(prefix, part, is_dir if index == last else True):
                return True
        return False

    def excluded_entry(self, dir_relpath, name, is_dir):
        """Whether the entry ``name`` of the directory ``dir_relpath`` is
        excluded by itself (its ancestors are not looked at: the walker never
        descends into an excluded directory). The fast path of the walker."""
        rules = self._exclude
        if rules is None:
            return False
        if rules.needs_path:
            relpath = dir_relpath + b"/" + name if dir_relpath else name
        else:
            relpath = name
        return rules.hit(relpath, name, is_dir)

    def selected(self, relpath, is_dir=False):
        """True if ``patterns`` is None (or empty) or one of them matches ``relpath``
        (its name, or its whole path for a pattern with ``/``). Excludes are
        not looked at: use ``excluded`` for those."""
        if self._select is None:
            return True
        relpath = _as_bytes(relpath)
        if not relpath:
            return False
        return self._select.hit(relpath, _name_of(relpath), is_dir)


def match_argument_spec(patterns=False):
    """The argument spec of the ``_match`` doc fragment's options (with
    ``patterns=True`` also its ``PATTERNS`` part)."""
    spec = dict(excludes=dict(type="list", elements="str", default=[]))
    if patterns:
        spec["patterns"] = dict(type="list", elements="str", default=[])
    return spec
