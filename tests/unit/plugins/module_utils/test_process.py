# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""run_with_deadline: a command that forks and hangs is killed with its whole process group."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._disks import process


def live_with_marker(marker):
    """Pids of live processes whose environment holds ``marker`` (zombies excluded)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % pid, "rb") as handle:
                environ = handle.read().split(b"\0")
            with open("/proc/%s/stat" % pid, "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in environ and state != b"Z":
            found.append(int(pid))
    return found


def test_output_and_exit_status():
    assert process.run_with_deadline(["sh", "-c", "echo out; echo err >&2; exit 3"], 10) == (3, b"out\n", b"err\n")


def test_environment_update_and_no_stdin():
    rc, out, dummy = process.run_with_deadline(["sh", "-c", 'echo "$LC_ALL"; cat'], 10, process.C_LOCALE)
    assert (rc, out) == (0, b"C\n")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc to find the processes left")
def test_hung_command_and_its_children_are_killed():
    """sh forks a sleeping child that holds the output pipe: killing sh alone would leave it, and the read would never end."""
    marker = "DATASTEWARD_DEADLINE_TEST=%s" % uuid.uuid4().hex
    name, value = marker.split("=")
    started = time.monotonic()
    with pytest.raises(process.CommandTimeout) as caught:
        process.run_with_deadline(["sh", "-c", "sleep 60 & sleep 60; wait"], 0.3, {name: value})
    elapsed = time.monotonic() - started
    assert caught.value.timeout == 0.3
    assert caught.value.stuck == []
    assert str(caught.value) == "sh -c sleep 60 & sleep 60; wait did not answer within 0.3 s"
    assert elapsed < 0.3 + process.KILL_GRACE
    assert live_with_marker(marker) == []


def test_a_command_that_closes_its_output_but_lingers_is_killed_too():
    started = time.monotonic()
    with pytest.raises(process.CommandTimeout):
        process.run_with_deadline(["sh", "-c", "exec >/dev/null 2>&1; sleep 60"], 0.3)
    assert time.monotonic() - started < 0.3 + process.KILL_GRACE


def test_missing_command_is_an_oserror():
    with pytest.raises(OSError):
        process.run_with_deadline(["/nonexistent/smartctl"], 1)


def test_group_members_reads_proc_stat(tmp_path):
    """Live members of a process group from /proc/<pid>/stat (comm may hold spaces and parentheses); zombies do not count."""
    stats = {
        "100": b"100 (smartctl) S 1 100 100 0 -1",
        "101": b"101 (smart ctl (x)) D 100 100 100 0 -1",
        "102": b"102 (smartctl) Z 100 100 100 0 -1",
        "103": b"103 (other) S 1 103 103 0 -1",
    }
    for pid, stat in stats.items():
        (tmp_path / pid).mkdir()
        (tmp_path / pid / "stat").write_bytes(stat)
    (tmp_path / "self").mkdir()
    assert sorted(process.group_members(100, str(tmp_path))) == [100, 101]
    assert process.group_members(100, str(tmp_path / "missing")) is None


def test_kill_group_of_a_finished_command_is_quiet():
    proc = process.subprocess.Popen(["true"], start_new_session=True, stdout=process.subprocess.PIPE)
    proc.wait()
    assert process.kill_group(proc) == []
