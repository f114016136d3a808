# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""host_metrics_info (pattoo format) over inventory hosts versus
ansible.builtin.setup gathering the hardware facts (memory, CPUs, mounts, read
from /proc as well) over the same hosts, local connection, same forks, in the
same run. Target: ratio <= 1.0 (a snapshot costs no more than the facts the
metrics agent's users would otherwise gather). The CPU interval is 0.1 s here;
the default (1 s) adds one second per host, in parallel across forks."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_disk_usage import PLAY, timed_playbook, write_inventory  # noqa: E402  (benchmarks are plain scripts)


def run(workdir, quick=False):
    hosts = 10 if quick else 50
    rounds = 1 if quick else 3
    forks = 5
    inventory = write_inventory(workdir, hosts)
    ours = workdir / "host_metrics_info.yml"
    ours.write_text(PLAY.format(name="host_metrics_info", module="datasteward.storage.host_metrics_info", args="        format: pattoo\n        interval: 0.1"))
    reference = workdir / "setup_hardware.yml"
    reference.write_text(PLAY.format(name="setup hardware", module="ansible.builtin.setup", args="        gather_subset: ['!all', '!min', 'hardware']"))
    ours_times, ref_times = [], []
    for dummy in range(rounds):  # interleaved, so both see the same machine state
        ours_times.append(timed_playbook(ours, inventory, forks))
        ref_times.append(timed_playbook(reference, inventory, forks))
    ours_s, ref_s = statistics.median(ours_times), statistics.median(ref_times)
    ratio = ours_s / ref_s
    return [
        {
            "name": "host_metrics_info pattoo x%d hosts" % hosts,
            "ours_s": ours_s,
            "reference": "setup gather_subset=hardware",
            "reference_s": ref_s,
            "ratio": ratio,
            "target": "<= 1.0",
            "ok": ratio <= 1.0,
            "notes": "median of %d interleaved rounds, forks=%d, interval 0.1 s, local connection" % (rounds, forks),
        }
    ]
