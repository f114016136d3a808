# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The host_metrics_info module's main(): formats, the agent id, errors."""

from __future__ import annotations

import functools
import os

import pytest

from ansible_collections.datasteward.storage.plugins.modules import host_metrics_info


@pytest.fixture
def run(run_module):
    return functools.partial(run_module, host_metrics_info)


def test_native_snapshot_with_schema(run):
    result = run({"interval": 0.05}, check_mode=True)
    assert result["changed"] is False
    assert set(result) >= {"metrics", "schema"} and "pattoo_payload" not in result
    assert "/" in [p["mount"] for p in result["metrics"]["partitions"]]
    assert result["schema"]["load_average.load1"]["type"] == "gauge"


def test_pattoo_payload_reads_the_agent_id_file_and_writes_nothing(run, tmp_path):
    id_file = tmp_path / "agent_id"
    id_file.write_text("0123abcd\n")
    before = os.stat(str(id_file))
    result = run({"format": "pattoo", "interval": 0.05, "agent_id_file": str(id_file), "polling_interval": 60, "fstypes": ["ext4", "xfs", "tmpfs"]})
    assert result["changed"] is False and "metrics" not in result
    assert (result["agent_id"], result["agent_id_source"]) == ("0123abcd", "file")
    assert result["pattoo_payload"]["pattoo_agent_id"] == "0123abcd"
    assert result["pattoo_payload"]["pattoo_agent_polling_interval"] == 60000
    assert result["datapoints"] == len(result["pattoo_payload"]["pattoo_datapoints"]["datapoint_pairs"]) > 50
    assert os.stat(str(id_file)).st_mtime == before.st_mtime and os.listdir(str(tmp_path)) == ["agent_id"]


def test_missing_id_file_falls_back_to_the_machine_id(run, tmp_path):
    if not any(os.path.exists(p) for p in ("/etc/machine-id", "/var/lib/dbus/machine-id")):
        pytest.skip("this machine has no machine id")
    result = run({"format": "pattoo", "interval": 0.05, "agent_id_file": str(tmp_path / "absent")})
    again = run({"format": "pattoo", "interval": 0.05})
    assert result["agent_id_source"] == "machine-id" and result["agent_id"] == again["agent_id"]
    assert not (tmp_path / "absent").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        ({"interval": 0}, "interval must be more than 0 and at most 60 seconds, got 0.0"),
        ({"paths": ["/does/not/exist"]}, "paths: /does/not/exist does not exist"),
        ({"format": "pattoo", "agent_id": "two words"}, "agent_id: an agent id is 1 to 512 printable characters"),
        ({"format": "pattoo", "agent_id": "x", "polling_interval": 0}, "polling_interval must be a positive number"),
    ],
)
def test_bad_input_fails_naming_the_option(run, args, message):
    args.setdefault("interval", 0.01)
    assert message in run(args, failed=True)["msg"]
