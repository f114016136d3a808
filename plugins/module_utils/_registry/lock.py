# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The run lock: one buffer_copy or registry_audit run per registry at a time.

An exclusive, non-blocking ``flock`` on the registry file itself, held for the
whole run. Standard library only; no AnsibleModule.
"""

from __future__ import annotations

import fcntl
import os

from ansible_collections.datasteward.storage.plugins.module_utils._registry.db import RegistryError

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class Lock:
    """An exclusive ``flock`` on a file, held for one run."""

    def __init__(self, path):
        self.path = path
        self.fd = None

    def acquire(self):
        try:
            self.fd = os.open(self.path, os.O_RDONLY | _O_CLOEXEC)
        except OSError as exc:
            raise RegistryError("cannot open %s to lock it: %s" % (self.path, exc.strerror or exc), self.path)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            self.fd = None
            raise RegistryError("%s is locked by another run (buffer_copy or registry_audit); try again later" % self.path, self.path)
        return self

    def release(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
