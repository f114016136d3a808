# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""disk_usage over 50 inventory hosts versus ansible.builtin.setup limited to
mount facts over the same hosts (local connection, same forks). Target: ratio
<= 1.0 (not slower)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

PLAY = """\
- name: bench
  hosts: all
  gather_facts: false
  tasks:
    - name: {name}
      {module}:
{args}
"""


def write_inventory(workdir, hosts):
    lines = ["[bench]"] + ["bench%02d ansible_connection=local ansible_python_interpreter=%s" % (i, sys.executable) for i in range(1, hosts + 1)]
    path = workdir / "hosts.ini"
    path.write_text("\n".join(lines) + "\n")
    return path


def timed_playbook(playbook, inventory, forks):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal")
    started = time.monotonic()
    subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), "-f", str(forks), str(playbook)], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL
    )
    return time.monotonic() - started


def run(workdir, quick=False):
    hosts = 10 if quick else 50
    rounds = 1 if quick else 3
    forks = 5
    inventory = write_inventory(workdir, hosts)
    ours = workdir / "disk_usage.yml"
    ours.write_text(PLAY.format(name="disk_usage", module="datasteward.storage.disk_usage", args="        timeout: 5"))
    reference = workdir / "setup_mounts.yml"
    reference.write_text(PLAY.format(name="setup mounts", module="ansible.builtin.setup", args="        gather_subset: ['!all', '!min', 'mounts']"))
    ours_times, ref_times = [], []
    for dummy in range(rounds):  # interleaved, so both see the same machine state
        ours_times.append(timed_playbook(ours, inventory, forks))
        ref_times.append(timed_playbook(reference, inventory, forks))
    ours_s, ref_s = statistics.median(ours_times), statistics.median(ref_times)
    ratio = ours_s / ref_s
    return [
        {
            "name": "disk_usage x%d hosts" % hosts,
            "ours_s": ours_s,
            "reference": "setup gather_subset=mounts",
            "reference_s": ref_s,
            "ratio": ratio,
            "target": "<= 1.0",
            "ok": ratio <= 1.0,
            "notes": "median of %d interleaved rounds, forks=%d, local connection" % (rounds, forks),
        }
    ]
