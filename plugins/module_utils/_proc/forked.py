# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run a Python call in a forked child process and get its result back.

For work that is many short system calls (small files read, hashed,
compared): threads of one process take turns on the interpreter lock, a
forked child runs on another CPU. The child inherits the caller's open
descriptors and memory (copy on write), runs the call, pickles what it
returns (or the error it raised, as a message) into a pipe and exits; it
is SIGKILLed if the caller dies first (``PR_SET_PDEATHSIG``), so a kill of
the caller is a kill of all of it, and a child killed on its own is a
``failed`` result, never a hang.

:func:`start` forks and returns at once (None when no process can be had:
the caller runs the call itself); :meth:`Child.wait` waits for its outcome.
:func:`run_all` runs several calls at once and returns their results.
No AnsibleModule.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import signal

_PR_SET_PDEATHSIG = 1


class Child:
    """A call running in a forked child process."""

    def __init__(self, pid, rfd):
        self.pid = pid
        self.rfd = rfd
        self.outcome = None

    def wait(self):
        """``{"ok": value}`` or ``{"failed": message}`` (kept: asked once or many times)."""
        if self.outcome is None:
            with os.fdopen(self.rfd, "rb") as handle:
                data = handle.read()
            os.waitpid(self.pid, 0)
            try:
                self.outcome = pickle.loads(data)
            except Exception:  # pickle raises many kinds; a dead child sent nothing whole
                self.outcome = {"failed": "process %d ended without a result (killed?)" % self.pid}
        return self.outcome


def start(call):
    """Run ``call()`` in a forked child: its :class:`Child`, or None when no
    process could be forked (EAGAIN, ENOMEM)."""
    parent = os.getpid()
    rfd, wfd = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(rfd)
        os.close(wfd)
        return None
    if pid == 0:  # pragma: no cover - the child
        os.close(rfd)
        _child(call, wfd, parent)
    os.close(wfd)
    return Child(pid, rfd)


def run_all(calls):
    """Run each call in a forked child, all at once (a call no process was
    left for runs here, after the others are started); their outcomes in
    order: ``{"ok": value}`` or ``{"failed": message}``, with ``"here":
    True`` for a call run in this process."""
    children = [(call, start(call)) for call in calls]
    here = {index: {"ok": call(), "here": True} for index, (call, child) in enumerate(children) if child is None}
    return [here[index] if child is None else child.wait() for index, (call, child) in enumerate(children)]


def _child(call, wfd, parent):  # pragma: no cover - runs in the child
    code = 1
    try:
        _die_with_parent(parent)
        try:
            payload = {"ok": call()}
        except BaseException as exc:  # handed to the parent, never a traceback of the child
            payload = {"failed": "%s: %s" % (type(exc).__name__, exc)}
        with os.fdopen(wfd, "wb") as out:
            pickle.dump(payload, out, protocol=pickle.HIGHEST_PROTOCOL)
        code = 0
    finally:
        os._exit(code)


def _die_with_parent(parent):  # pragma: no cover - runs in the child
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)
