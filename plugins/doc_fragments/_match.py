# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """The collection's one match rule for O(patterns) and O(excludes).

    Paired with ``match_argument_spec()`` in ``plugins/module_utils/_fs/match.py``
    (the rule itself is ``Match`` there): change them together.
    ``DOCUMENTATION`` documents O(excludes); ``PATTERNS`` adds O(patterns).
    """

    DOCUMENTATION = r"""
options:
  excludes:
    description:
      - Shell glob patterns of entries to leave out. An excluded entry is not counted, copied or acted on, and an
        excluded directory is not descended into, so everything below it is excluded too.
      - A pattern without C(/) matches the entry's B(name), at any depth, as in M(ansible.builtin.find)
        (V(*.tmp), V(.snapshot), V(core.[0-9]*)).
      - A pattern with C(/) matches the entry's B(path relative to the root) it was found under, anchored at both
        ends. C(*), C(?) and C([...]) stay within one path component; C(**) crosses components, and C(**/) also
        matches no directory at all (V(cache/**/*.part)). A leading C(/) stands for the root (V(/tmp) is only the
        root's own C(tmp)); a trailing C(/) limits the pattern to directories (V(build/)).
      - Matching is case-sensitive and works on the raw bytes of names, so names that are not valid UTF-8 can be
        matched by wildcards.
      - The same list selects the same entries in every module of this collection.
    type: list
    elements: str
    default: []
"""

    PATTERNS = r"""
options:
  patterns:
    description:
      - Shell glob patterns an entry must match to be selected; none (the default) selects every entry.
      - The same rule as O(excludes) (a pattern without C(/) matches the name, one with C(/) the path relative to the
        root); O(excludes) wins over O(patterns).
    type: list
    elements: str
    default: []
"""
