# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The schedule role's schedule_jobs filter: defaults, controller mode, and
every problem systemd or cron would not take, for all jobs of one call."""

from __future__ import annotations

from ansible_collections.datasteward.storage.plugins.filter.schedule import FilterModule, schedule_jobs

PATHS = {"config": "/etc/datasteward"}
GOOD = {"name": "disk_status", "playbook": "datasteward.storage.disk_status", "calendar": " hourly ", "delay": "60"}


def problems(jobs, **kw):
    return [p for job in schedule_jobs(jobs, paths=PATHS, **kw) for p in job["problems"]]


def test_a_job_is_described_with_defaults_unit_and_command_line():
    (job,) = schedule_jobs([GOOD], paths=PATHS, venv="/opt/v", default_timeout=99)
    assert job["calendar"] == "hourly" and job["cron"] == "" and job["vars"] == {}
    assert job["delay"] == "60" and job["timeout"] == 99 and job["state"] == "present"
    assert job["unit"] == "datasteward-disk_status" and job["problems"] == []
    assert job["argv"] == [
        "/opt/v/bin/ansible-playbook",
        "-i",
        "/etc/datasteward/inventory.yml",
        "-e",
        "@/etc/datasteward/jobs/disk_status.json",
        "datasteward.storage.disk_status",
    ]


def test_one_dict_is_one_job_and_the_filter_is_registered():
    assert [j["name"] for j in schedule_jobs(GOOD)] == ["disk_status"]
    assert FilterModule().filters()["schedule_jobs"] is schedule_jobs


def test_controller_mode_removes_every_job_and_checks_only_names():
    jobs = schedule_jobs([GOOD, {"name": "x", "playbook": "/tmp/x.yml"}], mode="controller")
    assert [j["state"] for j in jobs] == ["absent", "absent"]
    assert all(j["problems"] == [] for j in jobs)


def test_every_bad_job_of_a_call_is_named():
    found = problems([GOOD, {"name": "Bad Name"}, {"name": "p", "playbook": "/tmp/x.yml", "calendar": "daily"}, {"name": "s", "state": "gone"}, "not a dict"])
    assert len(found) == 4
    assert "schedule_job needs a name of lower-case letters, digits, '_' and '-' (got 'Bad Name')" in found[0]
    assert "job p needs playbook as a collection FQCN" in found[1]
    assert "a state of present or absent (got 'gone')" in found[2]
    assert "(got 'not a dict')" in found[3]


def test_delay_timeout_vars_and_calendar_are_checked():
    for bad in ({"delay": "soon"}, {"timeout": 0}, {"vars": []}, {"calendar": ""}, {"calendar": "daily\nx"}):
        assert len(problems([dict(GOOD, **bad)])) == 1, bad
    assert problems([dict(GOOD, calendar="", cron="5 * * * *")], backend="cron") == []


def test_cron_needs_five_fields_a_keyword_or_a_shorthand_calendar():
    assert problems([dict(GOOD, cron="@daily"), dict(GOOD, name="b", cron="*/5 1 * * 1-5"), dict(GOOD, name="c")], backend="cron") == []
    found = problems([dict(GOOD, calendar="*-*-* 02:30:00")], backend="cron")
    assert len(found) == 1 and "schedule_job.cron must be five cron fields" in found[0]
    assert len(problems([dict(GOOD, cron="1 2 3; rm")], backend="cron")) == 1
    # systemd does not read the cron field
    assert problems([dict(GOOD, cron="nonsense")], backend="systemd") == []


def test_a_job_registered_twice_in_one_call_is_refused():
    found = problems([GOOD, dict(GOOD)])
    assert found == ["schedule: job disk_status is registered more than once in one call"]
