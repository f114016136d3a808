# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The AWX definition (playbooks/awx.yml) against the collection: its plan
(`--tags awx_plan`, which talks to no controller) names job templates whose
playbooks exist, pass a syntax check and run by FQCN, and schedules whose
rrules AWX accepts. The rules are those AWX's schedule serializer applies,
then dateutil's parser (which AWX uses) must take the rule and find a next run."""

from __future__ import annotations

import datetime
import json
import re
import subprocess

import pytest
import yaml
from dateutil import rrule as dateutil_rrule

from tests.e2e.jobs import BIN, REPO, ansible_env, exported_inventory, load_jobs

DTSTART = re.compile(r"DTSTART(;TZID=[^:]+)?:\d{8}T\d{6}Z?\b")


def awx_rrule_problem(value):
    """Why AWX would refuse ``value`` as a schedule's rrule, or None."""
    lowered = value.lower()
    dtstarts = re.findall(r"DTSTART[:;]", value)
    rules = re.findall(r"\bRRULE:", value)
    checks = [
        (not DTSTART.match(value), "valid DTSTART required first (DTSTART:YYYYMMDDTHHMMSSZ)"),
        (len(dtstarts) > 1, "multiple DTSTART is not supported"),
        (not rules, "RRULE required"),
        (len(rules) > 1, "multiple RRULE is not supported"),
        ("interval" not in lowered, "INTERVAL required"),
        ("secondly" in lowered, "SECONDLY is not supported"),
        (re.search(r"BYMONTHDAY=-?\d+,", value), "multiple BYMONTHDAYs not supported"),
        (re.search(r"BYMONTH=\d+,", value), "multiple BYMONTHs not supported"),
        (re.search(r"BYDAY=[^;]*[+-]?\d+[A-Z]{2}", value), "BYDAY with numeric prefix not supported"),
        ("byyearday" in lowered, "BYYEARDAY not supported"),
        ("byweekno" in lowered, "BYWEEKNO not supported"),
        (int((re.search(r"COUNT=(\d+)", value) or [0, 0])[1]) > 999, "COUNT > 999 is unsupported"),
        ("count=" in lowered and "until=" in lowered, "RRULE may not contain both COUNT and UNTIL"),
        (DTSTART.match(value) and not DTSTART.match(value).group(1) and not value.split()[0].endswith("Z"), "DTSTART cannot be a naive datetime"),
    ]
    for failed, message in checks:
        if failed:
            return message
    try:
        rule = dateutil_rrule.rrulestr(value.replace(" RRULE:", "\nRRULE:"), forceset=True)
    except (ValueError, TypeError) as exc:
        return "rrule parsing failed validation: %s" % exc
    if rule.after(datetime.datetime.now(datetime.timezone.utc)) is None:
        return "the rule has no future occurrence"
    return None


@pytest.fixture(scope="module")
def awx_plan(tmp_path_factory):
    env = ansible_env(tmp_path_factory.mktemp("awx-plan"), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "datasteward.storage.awx", "--tags", "awx_plan"],
        cwd=REPO,
        env=env,
        capture_output=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (task,) = [task for task in json.loads(proc.stdout)["plays"][0]["tasks"] if task["task"]["name"] == "Show the plan"]
    return task["hosts"]["localhost"]["msg"]


def test_every_job_has_a_template(awx_plan):
    assert [t["name"] for t in awx_plan["templates"]] == [job["template"] for job in load_jobs()]
    assert len({t["name"] for t in awx_plan["templates"]}) == len(awx_plan["templates"])
    assert [s["unified_job_template"] for s in awx_plan["schedules"]] == [job["template"] for job in load_jobs() if job["schedule"]]


def test_every_template_names_a_playbook_of_the_collection(awx_plan, tmp_path):
    playbooks = [template["playbook"] for template in awx_plan["templates"]]
    for playbook in playbooks:
        path = REPO / playbook
        assert path.is_file(), "job template playbook %s is not in the collection" % playbook
        plays = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert isinstance(plays, list) and all("hosts" in p or "import_playbook" in p or "ansible.builtin.import_playbook" in p for p in plays), playbook
    # each by its path in the project, and the collection's own ones by FQCN
    fqcns = ["datasteward.storage.%s" % p[len("playbooks/") : -len(".yml")] for p in playbooks if p.startswith("playbooks/")]
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "--syntax-check"] + playbooks + fqcns,
        cwd=REPO,
        env=ansible_env(tmp_path),
        capture_output=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_every_schedule_rrule_is_valid(awx_plan):
    assert awx_plan["schedules"], "no job is scheduled"
    for schedule in awx_plan["schedules"]:
        assert awx_rrule_problem(schedule["rrule"]) is None, (schedule["name"], awx_rrule_problem(schedule["rrule"]))
    assert len({s["name"] for s in awx_plan["schedules"]}) == len(awx_plan["schedules"])


@pytest.mark.parametrize(
    "rrule, problem",
    [
        ("", "valid DTSTART"),
        ("DTSTART:NONSENSE", "valid DTSTART"),
        ("DTSTART:20300308T050000Z DTSTART:20310308T050000Z", "multiple DTSTART"),
        ("DTSTART:20300308T050000Z", "RRULE required"),
        ("DTSTART:20300308T050000Z RRULE:NONSENSE", "INTERVAL required"),
        ("DTSTART:20300308T050000Z RRULE:FREQ=SECONDLY;INTERVAL=5", "SECONDLY"),
        ("DTSTART:20300308T050000Z RRULE:FREQ=MONTHLY;INTERVAL=1;BYMONTHDAY=3,4", "BYMONTHDAYs"),
        ("DTSTART:20300308T050000Z RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=5MO", "numeric prefix"),
        ("DTSTART:20300308T050000Z RRULE:FREQ=YEARLY;INTERVAL=1;BYWEEKNO=20", "BYWEEKNO"),
        ("DTSTART:20300308T050000Z RRULE:FREQ=DAILY;INTERVAL=1;COUNT=2000", "COUNT > 999"),
        ("DTSTART:20300308T050000 RRULE:FREQ=DAILY;INTERVAL=1", "naive"),
        ("DTSTART:20300308T050000Z RRULE:FREQ=REGULARLY;INTERVAL=1", "parsing failed"),
        ("DTSTART:20200308T050000Z RRULE:FREQ=DAILY;INTERVAL=1;COUNT=2", "no future occurrence"),
    ],
)
def test_rrule_check_refuses_what_awx_refuses(rrule, problem):
    assert problem in (awx_rrule_problem(rrule) or ""), awx_rrule_problem(rrule)


def test_required_vars_come_with_the_bundled_inventory():
    exported = exported_inventory()
    for job in load_jobs():
        group = exported.get(job["group"], {})
        defined = set(exported["all"].get("vars", {})) | set(group.get("vars", {})) | set(job["extra_vars"] or {})
        missing = set(job["required_vars"]) - defined
        assert not missing, "%s needs %s, which inventory/local does not define" % (job["name"], sorted(missing))
