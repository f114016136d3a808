# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Inbox layouts for the inbox tests: the four folders, a destination root,
uploads built as an uploader would (a dot-named folder renamed when done), and
a run whose clock is past every settle time."""

from __future__ import annotations

import os
import time

from ansible_collections.datasteward.storage.plugins.module_utils._jobs import inbox as engine

PATTERN = r"^(?P<study>[a-z0-9.]+)-(?P<id>[0-9]+)$"


class Layout:
    """``tmp/{inbox,processing,done,failed}`` and ``tmp/study`` (dest_root)."""

    def __init__(self, base, study=None):
        self.base = str(base)
        for name in ("inbox", "processing", "done", "failed"):
            os.makedirs(os.path.join(self.base, name), exist_ok=True)
        self.inbox = os.path.join(self.base, "inbox")
        self.study = str(study) if study else os.path.join(self.base, "study")
        os.makedirs(self.study, exist_ok=True)

    def params(self, **extra):
        params = {
            "path": self.inbox,
            "processing": None,
            "done": None,
            "failed": None,
            "name_pattern": PATTERN,
            "dest": "/study/{study}/raw-upload",
            "dest_root": self.study,
            "allowed": [{"dest": "*", "users": ["alice"], "groups": None, "require": "any"}],
            "settle_seconds": 60,
            "mode": "0640",
            "directory_mode": "2750",
            "group": None,
            "stuck_seconds": 3600,
            "keep_done_days": None,
            "checksum_algorithm": "sha512",
        }
        params["dest"] = os.path.join(self.study, "{study}", "raw-upload")
        params.update(extra)
        return params

    def upload(self, name, files, finish=True):
        """Create ``.name`` with ``files`` ({relpath: bytes}) and rename it to ``name`` when ``finish``."""
        tmp = os.path.join(os.fsencode(self.inbox), b"." + os.fsencode(name))
        os.mkdir(tmp)
        for rel, data in files.items():
            path = os.path.join(tmp, os.fsencode(rel))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as handle:
                handle.write(data)
        if not finish:
            return tmp
        final = os.path.join(os.fsencode(self.inbox), os.fsencode(name))
        os.rename(tmp, final)
        return final

    def folder(self, name, *parts):
        return os.path.join(self.base, name, *parts)

    def listing(self, name):
        return sorted(os.listdir(self.folder(name)))


def users(uid):
    """Every uid is alice, member of study-foo."""
    return engine.Uploader(uid, "alice", {"study-foo", "1000"})


def later(seconds=3600):
    return lambda: time.time() + seconds


def run(layout, check_mode=False, clock=None, lookup=users, **extra):
    return engine.run_inbox(layout.params(**extra), check_mode=check_mode, clock=clock or later(), users=lookup)
