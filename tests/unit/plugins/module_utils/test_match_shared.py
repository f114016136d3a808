# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One meaning of ``excludes``: the same list selects the same files in
user_usage_info (the scanner) and buffer_copy (the buffer scan)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._fs.match import Match
from ansible_collections.datasteward.storage.plugins.module_utils._fs.usage import scan
from ansible_collections.datasteward.storage.plugins.module_utils._jobs.ingest import scan_buffer

FILES = [
    "a.fits",
    "a.tmp",
    "night1/b.fits",
    "night1/b.tmp",
    "night1/cache/c.fits",
    "night2/cache/d.fits",
    "night2/raw/e.dat",
    "night2/raw/deep/f.dat",
    "tmp/g.fits",
    "x/tmp/h.fits",
    b"caf\xe9/i.fits",
]


@pytest.fixture(name="buffer")
def buffer_fixture(tmp_path):
    root = os.fsencode(str(tmp_path / "buffer"))
    for index, rel in enumerate(FILES):
        path = root + b"/" + (rel if isinstance(rel, bytes) else rel.encode())
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(b"x" * (index + 1))
    return os.fsdecode(root)


@pytest.mark.parametrize(
    "excludes",
    [
        [],
        ["*.tmp"],
        ["cache"],
        ["/tmp"],
        ["tmp"],
        ["night2/raw/**"],
        ["night*/cache/"],
        ["caf*"],
        ["*.fits", "raw"],
    ],
)
def test_same_excludes_select_the_same_files(buffer, excludes):
    usage = scan([buffer], excludes=excludes, top=100, workers=1)
    by_scan = sorted(f["path"][len(buffer) + 1 :] for user in usage["users"] for f in user["largest"])
    by_ingest = sorted(os.fsdecode(relpath) for relpath, _st in scan_buffer(buffer, Match(excludes=excludes), []))
    by_ingest = [path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") for path in by_ingest]
    assert by_scan == by_ingest
    assert usage["totals"]["files"] == len(by_ingest)
