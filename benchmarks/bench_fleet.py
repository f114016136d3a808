# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The hourly disk-status job (the jobs table's `disk_status` playbook, as AWX
or a host timer runs it) over 200 inventory hosts, against
ansible.builtin.setup with `gather_subset: mounts` over the same hosts in the
same run (local connection, same forks, rounds interleaved). Target: ratio
<= 1.5. Also reported: seconds per host, and the ratio against the narrower
`['!all', '!min', 'mounts']` (mount facts without the minimal facts)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
JOBS_FILE = REPO / "playbooks" / "vars" / "jobs.yml"
TARGET = 1.5

SETUP_PLAY = """\
- name: Mount facts of every host
  hosts: all
  gather_facts: false
  tasks:
    - name: Gather mount facts
      ansible.builtin.setup:
        gather_subset: {subset}
"""


def forks():
    """Local connections are CPU-bound on the controller: a few forks per core."""
    return int(os.environ.get("BENCH_FLEET_FORKS", 4 * (os.cpu_count() or 1)))


def disk_status_playbook():
    table = yaml.safe_load(JOBS_FILE.read_text(encoding="utf-8"))
    (entry,) = [entry for entry in table["datasteward_jobs"] if entry["name"] == "disk_status"]
    return REPO / entry["playbook"], entry


def write_inventory(workdir, hosts, entry):
    host_vars = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = {
        "all": {
            "hosts": {"bench%03d" % i: dict(host_vars) for i in range(1, hosts + 1)},
            "vars": dict(entry.get("extra_vars") or {}, datasteward_demo=False, datasteward_demo_root=str(workdir / "demo")),
        }
    }
    path = workdir / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory), encoding="utf-8")
    return path


def timed_playbook(playbook, inventory, workdir):
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal",
        ANSIBLE_LOCAL_TEMP=str(workdir / "tmp"),
        ANSIBLE_REMOTE_TMP=str(workdir / "remote-tmp"),
    )
    started = time.monotonic()
    subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), "-f", str(forks()), str(playbook)], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL
    )
    return time.monotonic() - started


def run(workdir, quick=False):
    hosts = 20 if quick else 200
    rounds = 1 if quick else 3
    playbook, entry = disk_status_playbook()
    inventory = write_inventory(workdir, hosts, entry)
    references = {"mounts": "mounts", "!all,!min,mounts": "['!all', '!min', 'mounts']"}
    plays = {}
    for label, subset in references.items():
        plays[label] = workdir / ("setup_%s.yml" % label.replace("!", "no-").replace(",", "_"))
        plays[label].write_text(SETUP_PLAY.format(subset=subset), encoding="utf-8")
    times = {"ours": []}
    times.update({label: [] for label in references})
    for dummy in range(rounds):  # interleaved, so every playbook sees the same machine state
        times["ours"].append(timed_playbook(playbook, inventory, workdir))
        for label, play in plays.items():
            times[label].append(timed_playbook(play, inventory, workdir))
    ours_s = statistics.median(times["ours"])
    rows = []
    for label in references:
        ref_s = statistics.median(times[label])
        ratio = ours_s / ref_s
        rows.append(
            {
                "name": "disk_status job x%d hosts vs setup %s" % (hosts, label),
                "ours_s": ours_s,
                "reference": "setup gather_subset=%s" % label,
                "reference_s": ref_s,
                "ratio": ratio,
                "target": "<= %.1f" % TARGET,
                "ok": ratio <= TARGET,
                "notes": "%s; %.4f s/host ours, %.4f s/host setup; median of %d interleaved rounds, forks=%d, local connection"
                % (playbook.relative_to(REPO), ours_s / hosts, ref_s / hosts, rounds, forks()),
            }
        )
    return rows
