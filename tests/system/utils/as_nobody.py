# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run a function as user nobody, for real permission errors and limits."""

from __future__ import annotations

import json
import os
import resource

NOBODY = 65534


def run_as_nobody(func, nproc=None):
    """Call ``func()`` in a forked child that has dropped root (and, with
    ``nproc``, has RLIMIT_NPROC set, which root would ignore); return its
    JSON-serialisable result. The child's modules are those already
    imported: nobody cannot read a virtual environment under /root."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            if nproc is not None:
                resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
            data = json.dumps(func()).encode()
            with os.fdopen(write, "wb") as handle:
                handle.write(data)
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as handle:
        data = handle.read()
    os.waitpid(pid, 0)
    return json.loads(data)
