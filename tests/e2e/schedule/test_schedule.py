# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The schedule role refuses what systemd or cron would not take, naming the
option and the cause, and installs nothing then (the molecule scenario
covers the units themselves: systemd-analyze verify and calendar)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.e2e.jobs import BIN, REPO, ansible_env

PLAY = """
- name: Register
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Register the job
      ansible.builtin.include_role:
        name: datasteward.storage.schedule
        tasks_from: register
      vars:
        datasteward_schedule_root: %(root)s
        datasteward_schedule_backend: %(backend)s
        schedule_job: %(job)s
"""


def register(tmp_path, job, backend="systemd"):
    root = tmp_path / "root"
    play = tmp_path / "register.yml"
    play.write_text(PLAY % {"root": json.dumps(str(root)), "backend": backend, "job": json.dumps(job)}, encoding="utf-8")
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=%s" % sys.executable, str(play)],
        cwd=REPO,
        env=ansible_env(tmp_path),
        capture_output=True,
        encoding="utf-8",
        timeout=300,
        check=False,
    )
    return proc, root


@pytest.mark.parametrize(
    "job, backend, words",
    [
        (
            {"name": "bad_calendar", "playbook": "datasteward.storage.disk_report", "calendar": "every tuesday-ish"},
            "systemd",
            "schedule_job.calendar 'every tuesday-ish' of job bad_calendar is not a systemd calendar expression",
        ),
        (
            {"name": "no_cron", "playbook": "datasteward.storage.disk_report", "calendar": "*-*-* 02:30:00"},
            "cron",
            "schedule_job.cron must be five cron fields",
        ),
        (
            {"name": "Bad Name", "playbook": "datasteward.storage.disk_report", "calendar": "daily"},
            "systemd",
            "schedule_job needs a name of lower-case letters",
        ),
        ({"name": "path_playbook", "playbook": "/tmp/x.yml", "calendar": "daily"}, "systemd", "needs playbook as a collection FQCN"),
    ],
)
def test_a_job_systemd_or_cron_would_not_take_is_refused(tmp_path, job, backend, words):
    proc, root = register(tmp_path, job, backend)
    assert proc.returncode != 0
    assert words in " ".join(proc.stdout.split()), proc.stdout[-2000:]
    assert not (root / "etc" / "systemd" / "system").exists() and not (root / "etc" / "cron.d").exists()
