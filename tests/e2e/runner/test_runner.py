# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every job of the jobs table runs through ansible-runner with a private data
directory laid out as AWX lays it out: rc 0, status successful, every task
the playbook plans ran without a failure, with AWX's variables in place."""

from __future__ import annotations

import pytest

from tests.e2e.jobs import load_jobs
from tests.e2e.runner.conftest import list_tasks, run_job

JOBS = load_jobs()


@pytest.mark.parametrize("entry", JOBS, ids=[entry["name"] for entry in JOBS])
def test_job_runs_as_awx_runs_it(awx_project, entry):
    job = run_job(awx_project, entry)
    assert job.rc == 0, job.stdout[-4000:] + job.proc.stderr[-2000:]
    assert job.status == "successful"

    events = job.events()
    kinds = [event["event"] for event in events]
    assert kinds[0] == "playbook_on_start" and kinds[-1] == "playbook_on_stats"
    assert not [event for event in events if event["event"] in ("runner_on_failed", "runner_on_unreachable") and not event["event_data"].get("ignore_errors")]

    # compared without the role: the events name a collection's role by its
    # short name, --list-tasks by its FQCN, and tasks a role imports not at all
    started = {event["event_data"]["task"] for event in events if event["event"] == "playbook_on_task_start"}
    planned = [task.split(" : ", 1)[-1] for task in list_tasks(awx_project, job)]
    assert planned, "ansible-playbook --list-tasks found no task in %s" % entry["playbook"]
    assert set(planned) <= started, "planned but not run: %s" % sorted(set(planned) - started)

    results = [event for event in events if event["event"] in ("runner_on_ok", "runner_on_skipped")]
    assert any(event["event"] == "runner_on_ok" for event in results)
    assert {event["event_data"]["host"] for event in results} == {"localhost"}

    play = next(event for event in events if event["event"] == "playbook_on_play_start")
    assert play["event_data"]["playbook"] == entry["playbook"]
    stats = events[-1]["event_data"]
    assert not stats.get("failures") and not stats.get("dark")


PROBE = """\
- name: What a job sees of AWX
  hosts: all
  gather_facts: false
  tasks:
    - name: Show the injected variables
      ansible.builtin.debug:
        msg: "{{ awx_job_template_name }}|{{ awx_job_id }}|{{ tower_job_launch_type }}|{{ awx_schedule_name }}"
    - name: Show where collections come from
      ansible.builtin.debug:
        msg: "{{ lookup('ansible.builtin.config', 'COLLECTIONS_PATHS') }}"
"""


def test_awx_variables_reach_the_play(awx_project):
    entry = next(entry for entry in JOBS if entry["schedule"])
    (awx_project.checkout / "awx_probe.yml").write_text(PROBE, encoding="utf-8")
    job = run_job(awx_project, entry, playbook="awx_probe.yml")
    assert job.status == "successful", job.stdout[-3000:]
    messages = [event["event_data"]["res"]["msg"] for event in job.events() if event["event"] == "runner_on_ok"]
    assert messages[0] == "%s|%d|scheduled|%s" % (entry["template"], awx_project.jobs, entry["schedule"]["name"])
    assert messages[1] == [str(awx_project.collections)]
