# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the end-to-end tests share: the jobs table (playbooks/vars/jobs.yml),
the bundled inventory as AWX imports it, and the play recap of a run.

Every test that runs a job playbook takes its name from the jobs table, so a
renamed or added job playbook is a change to that one file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
JOBS_FILE = REPO / "playbooks" / "vars" / "jobs.yml"
LOCAL_INVENTORY = REPO / "inventory" / "local" / "hosts.yml"
RECAP = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$")


def load_table():
    return yaml.safe_load(JOBS_FILE.read_text(encoding="utf-8"))


def load_jobs():
    """The entries of the jobs table, in order."""
    return load_table()["datasteward_jobs"]


def job(name):
    (entry,) = [entry for entry in load_jobs() if entry["name"] == name]
    return entry


def ansible_env(tmp, **extra):
    """Environment for ansible commands run by a test: the venv first on PATH,
    the checkout's ansible.cfg, and Ansible's own scratch space (local and,
    for local connections, remote) under tmp, not in the shared ~/.ansible."""
    env = dict(os.environ)
    env.update(
        {
            "PATH": "%s:%s" % (BIN, env.get("PATH", "")),
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_LOCAL_TEMP": str(Path(tmp) / "ansible-local"),
            "ANSIBLE_REMOTE_TMP": str(Path(tmp) / "ansible-remote"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
        }
    )
    env.update(extra)
    return env


def exported_inventory(inventory=LOCAL_INVENTORY):
    """The inventory as AWX stores it after an inventory sync: `ansible-inventory
    --list --export` keeps group variables on their groups, unrendered."""
    proc = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(inventory), "--list", "--export"],
        cwd=REPO,
        env=ansible_env(REPO / ".cache"),
        capture_output=True,
        encoding="utf-8",
        timeout=120,
        check=True,
    )
    return json.loads(proc.stdout)


def inventory_groups(exported):
    """The groups of an exported inventory other than `all` and `ungrouped`."""
    return [name for name in exported if name not in ("_meta", "all", "ungrouped")]


def play_recap(output):
    """{host: {ok: n, changed: n, unreachable: n, failed: n, ...}} from a run's output."""
    recap = {}
    in_recap = False
    for line in output.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        match = RECAP.match(line.strip()) if in_recap else None
        if match:
            recap[match.group("host")] = {key: int(value) for key, value in (pair.split("=") for pair in match.group("counts").split())}
    return recap
