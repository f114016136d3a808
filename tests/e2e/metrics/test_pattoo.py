# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pattoo payload against pattoo-shared (PyPI: PattooShared), the library
pattoo's server and agents are built on: the same readings turned into a
posting by pattoo-shared's own classes give the same document, checksums
included, and a receiver that runs the pattoo API's checks and pattoo-shared's
ingest conversion accepts what host_metrics_info and metrics_push send."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil

from ansible_collections.datasteward.storage.plugins.module_utils._metrics import pattoo
from ansible_collections.datasteward.storage.plugins.module_utils._metrics.snapshot import take_snapshot
from ansible_collections.datasteward.storage.tests.unit.utils.module_runner import run_module_process
from tests.e2e.metrics.conftest import pattoo_env

CHECK = str(Path(__file__).with_name("pattoo_check.py"))


def test_payload_equals_what_pattoo_shared_builds(tmp_path):
    snapshot = take_snapshot(psutil, interval=0.1)
    agent_id = pattoo.resolve_agent_id(agent_id="3f8a" * 16)[0]
    document = {
        "snapshot": snapshot,
        "agent_id": agent_id,
        "polled_target": "tcs1.example.org",
        "agent_program": pattoo.AGENT_PROGRAM,
        "polling_interval": 60,
        "payload": pattoo.payload(snapshot, agent_id, polled_target="tcs1.example.org", polling_interval=60),
    }
    path = tmp_path / "payload.json"
    path.write_text(json.dumps(document))
    proc = subprocess.run(
        [sys.executable, CHECK, "compare", str(path)], env=pattoo_env(tmp_path), cwd=str(tmp_path), capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("equal: %d datapoints" % len(document["payload"]["pattoo_datapoints"]["datapoint_pairs"]))


def test_pushed_snapshot_is_accepted_by_a_pattoo_receiver(tmp_path, pattoo_receiver):
    url, records = pattoo_receiver
    id_file = tmp_path / "agent_id"
    id_file.write_text("agent-7f3e\n")
    snapshot = run_module_process(tmp_path, "host_metrics_info", {"format": "pattoo", "interval": 0.1, "agent_id_file": str(id_file), "polling_interval": 300})
    result = run_module_process(
        tmp_path, "metrics_push", {"url": url + snapshot["agent_id"], "payload": snapshot["pattoo_payload"], "spool_dir": str(tmp_path / "spool")}
    )
    assert result["status_code"] == 200 and result["delivered"] is True, result
    rows = [json.loads(line) for line in records.read_text().splitlines()]
    assert len(rows) == snapshot["datapoints"]
    assert set(row["pattoo_agent_id"] for row in rows) == {"agent-7f3e"}
    keys = set(row["pattoo_key"] for row in rows)
    assert {"memory_total", "load_average_01min", "cpu_times_percent_user", "disk_partition_disk_usage_total"} <= keys
    load = [row for row in rows if row["pattoo_key"] == "load_average_01min"][0]
    assert load["pattoo_data_type"] == 101 and isinstance(load["pattoo_value"], float)


def test_a_broken_payload_is_refused_and_kept(tmp_path, pattoo_receiver):
    url, records = pattoo_receiver
    broken = {
        "pattoo_agent_id": "agent",
        "pattoo_agent_polling_interval": 300000,
        "pattoo_agent_timestamp": 1,
        "pattoo_datapoints": {"key_value_pairs": {"0": ["pattoo_key", "x"]}, "datapoint_pairs": [[0, 1]]},
    }
    result = run_module_process(tmp_path, "metrics_push", {"url": url + "agent", "payload": broken, "spool_dir": str(tmp_path / "spool")})
    assert result["status_code"] == 500 and len(result["pending"]) == 1
    assert not records.exists()
