# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filter of the schedule role: ``schedule_jobs`` (documented in
schedule_jobs.yml beside this file). It turns the jobs a role registers
(schedule_job and/or schedule_jobs) into one list of described jobs, each with
the problems found in it, so that the role checks every job in one task and
installs them with loops instead of one include per job."""

from __future__ import annotations

import re

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
PLAYBOOK = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+\.[a-z0-9_]+$")
SECONDS = re.compile(r"^[0-9]+$")
CRON_CHARS = re.compile(r"^[0-9A-Za-z*,/ -]+$")
CRON_SPECIALS = ("hourly", "daily", "weekly", "monthly", "yearly", "annually")


def _text(value):
    return "" if value is None else str(value).strip()


def _cron_problem(job, specials):
    cron, calendar = job["cron"], job["calendar"]
    if not cron and calendar in specials:
        return None
    if cron and re.match(r"^@(%s)$" % "|".join(specials), cron):
        return None
    if len(cron.split()) == 5 and CRON_CHARS.match(cron):
        return None
    return (
        "schedule: job %s runs from cron on this host (no systemd): schedule_job.cron must be five cron fields"
        " or @%s (got '%s'), or the calendar one of %s (got '%s')" % (job["name"], "/@".join(specials), cron, ", ".join(specials), calendar)
    )


def _present_problems(job, backend):
    problems = []
    if (
        not PLAYBOOK.match(job["playbook"])
        or not isinstance(job["vars"], dict)
        or not SECONDS.match(str(job["delay"]))
        or not re.match(r"^[1-9][0-9]*$", str(job["timeout"]))
        or (not job["calendar"] and backend != "cron")
        or re.search(r"[\r\n]", job["calendar"])
        or not isinstance(job["paths"], list)
        or [p for p in job["paths"] if not re.match(r"^/[^\r\n]*$", str(p))]
    ):
        problems.append(
            "schedule: job %s needs playbook as a collection FQCN (namespace.collection.playbook, got '%s'), vars as"
            " a dict, delay in whole seconds (got '%s'), timeout in whole seconds above 0 (got '%s'), a calendar"
            " (systemd OnCalendar, got '%s') and paths as absolute paths (got %s)"
            % (job["name"], job["playbook"], job["delay"], job["timeout"], job["calendar"], job["paths"])
        )
    return problems


def _describe(raw, mode, default_delay, default_timeout, paths, venv):
    name = raw.get("name", "")
    name = name if isinstance(name, str) else ""
    playbook = _text(raw.get("playbook"))
    state = raw.get("state", "present")
    delay = raw.get("delay")
    timeout = raw.get("timeout")
    config = paths.get("config", "")
    return {
        "name": name,
        "playbook": playbook,
        "calendar": _text(raw.get("calendar")),
        "cron": _text(raw.get("cron")),
        "vars": raw.get("vars") if raw.get("vars") is not None else {},
        "paths": raw.get("paths") if raw.get("paths") is not None else [],
        "delay": default_delay if delay is None or delay == "" else delay,
        "timeout": default_timeout if timeout is None or timeout == "" else timeout,
        # controller mode: nothing on the hosts
        "state": "absent" if mode == "controller" else state,
        "unit": "datasteward-%s" % name,
        "argv": ["%s/bin/ansible-playbook" % venv, "-i", "%s/inventory.yml" % config, "-e", "@%s/jobs/%s.json" % (config, name), playbook],
    }


def schedule_jobs(jobs, mode="host", backend="systemd", default_delay=300, default_timeout=3600, paths=None, venv="", cron_specials=CRON_SPECIALS):
    """Describe every job; each gets ``problems`` (a list of messages, empty
    when the job can be installed as asked on this backend)."""
    paths = paths or {}
    if isinstance(jobs, dict) or jobs is None or isinstance(jobs, (str, bytes)):
        jobs = [jobs]
    described = []
    for raw in jobs:
        if not isinstance(raw, dict):
            described.append(
                {
                    "name": "",
                    "state": "absent",
                    "unit": "",
                    "problems": [
                        "schedule: schedule_job needs a name of lower-case letters, digits, '_' and '-' (got '%s')"
                        " and a state of present or absent (got '')" % (raw,)
                    ],
                }
            )
            continue
        job = _describe(raw, mode, default_delay, default_timeout, paths, venv)
        problems = []
        if not NAME.match(job["name"]) or raw.get("state", "present") not in ("present", "absent"):
            problems.append(
                "schedule: schedule_job needs a name of lower-case letters, digits, '_' and '-' (got '%s') and a state"
                " of present or absent (got '%s')" % (raw.get("name", ""), raw.get("state", "present"))
            )
        elif job["state"] == "present":
            problems.extend(_present_problems(job, backend))
            if backend == "cron":
                cron = _cron_problem(job, list(cron_specials))
                if cron:
                    problems.append(cron)
        job["problems"] = problems
        described.append(job)
    names = [job["name"] for job in described if job["name"]]
    for dup in sorted(set(n for n in names if names.count(n) > 1)):
        described[names.index(dup)]["problems"].append("schedule: job %s is registered more than once in one call" % dup)
    return described


class FilterModule(object):
    def filters(self):
        return {"schedule_jobs": schedule_jobs}
