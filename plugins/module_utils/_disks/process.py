# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run a command with a deadline, and leave nothing of it behind.

The command runs in a session of its own (``start_new_session``), so every
process it forks is in its process group. At the deadline the whole group gets
SIGKILL, the command is reaped and its pipes are closed; a process the kernel
holds in uninterruptible sleep (a wedged drive's ioctl) cannot die until the
kernel lets go of it, so it is waited for a short grace time only, and named.
No AnsibleModule import.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

C_LOCALE = {"LANG": "C", "LC_ALL": "C", "LC_MESSAGES": "C"}

# Seconds to wait, after SIGKILL, for the killed processes to be gone.
KILL_GRACE = 2.0


class CommandTimeout(Exception):
    """A command did not finish within its deadline; it was killed with its process group.

    ``stuck`` lists the pids of the group still there after the grace time
    (in uninterruptible sleep in the kernel); usually empty. ``killed`` is
    false when the command was not started at all (no time was left).
    """

    def __init__(self, argv, timeout, stuck=None, killed=True):
        self.argv = list(argv)
        self.timeout = timeout
        self.stuck = list(stuck or [])
        self.killed = killed
        super().__init__("%s did not answer within %g s" % (" ".join(self.argv), timeout))


def group_members(pgid, proc_root="/proc"):
    """Pids of the live (not zombie) processes in process group ``pgid``; None where /proc cannot tell."""
    try:
        names = os.listdir(proc_root)
    except OSError:
        return None
    members = []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(os.path.join(proc_root, name, "stat"), "rb") as handle:
                stat = handle.read()
        except OSError:
            continue  # gone meanwhile
        # pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
            members.append(int(name))
    return members


def _group_alive(pgid):
    members = group_members(pgid)
    if members is not None:
        return members
    try:
        os.killpg(pgid, 0)
    except OSError:
        return []
    return [pgid]


def kill_group(proc, grace=KILL_GRACE):
    """SIGKILL the process group of ``proc`` (its own session), reap ``proc``, close its pipes.

    Returns the pids of the group still alive after ``grace`` seconds.
    """
    deadline = time.monotonic() + grace
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass  # the group is already gone
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass  # stuck in the kernel: init reaps it once it dies
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    stuck = _group_alive(proc.pid)
    while stuck and time.monotonic() < deadline:
        time.sleep(0.02)
        stuck = _group_alive(proc.pid)
    return stuck


def run_with_deadline(argv, timeout, environ_update=None, grace=KILL_GRACE):
    """Run ``argv`` (no shell) in its own session; return (rc, stdout bytes, stderr bytes).

    Raises CommandTimeout when it has not finished (and closed its output)
    within ``timeout`` seconds, after killing its whole process group.
    """
    env = dict(os.environ)
    env.update(environ_update or {})
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, close_fds=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CommandTimeout(argv, timeout, kill_group(proc, grace))
    except BaseException:
        kill_group(proc, grace)
        raise
    return proc.returncode, out, err
