# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pattoo payload's structure and the agent id. The payload against
pattoo-shared itself is in tests/e2e/metrics/test_pattoo.py."""

from __future__ import annotations

import hashlib
import hmac
import os
import re

import psutil
import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._metrics import pattoo
from ansible_collections.datasteward.storage.plugins.module_utils._metrics import snapshot as snap

AGENT_ID = "f" * 64
# The datapoint keys of the pattoo OS agent (pattoo_agents/os/collector.py).
OS_AGENT_KEYS = (
    {"process_count", "load_average_01min", "load_average_05min", "load_average_15min", "cpu_frequency"}
    | {"cpu_times_percent_" + f for f in snap.CPU_TIMES}
    | {"cpu_times_" + f for f in snap.CPU_TIMES}
    | {"cpu_stats_" + f for f in ("ctx_switches", "interrupts", "soft_interrupts", "syscalls")}
    | {"memory_" + f for f in ("total", "available", "percent", "used", "free", "active", "inactive", "buffers", "cached", "shared", "slab")}
    | {"swap_memory_" + f for f in ("total", "used", "free", "percent", "sin", "sout")}
    | {"disk_partition_disk_usage_" + f for f in ("total", "used", "free", "percent")}
    | {
        "disk_io_" + f
        for f in ("read_count", "write_count", "read_bytes", "write_bytes", "read_time", "write_time", "read_merged_count", "write_merged_count", "busy_time")
    }
    | {"network_io_" + f for f in ("bytes_sent", "bytes_recv", "packets_sent", "packets_recv", "errin", "errout", "dropin", "dropout")}
)
RESERVED = (
    "pattoo_key",
    "pattoo_data_type",
    "pattoo_value",
    "pattoo_timestamp",
    "pattoo_checksum",
    "pattoo_agent_id",
    "pattoo_agent_polled_target",
    "pattoo_agent_program",
    "pattoo_agent_hostname",
    "pattoo_agent_polling_interval",
)


@pytest.fixture(scope="module")
def taken():
    return snap.take_snapshot(psutil, interval=0.05)


def decoded(document):
    pairs = document["pattoo_datapoints"]["key_value_pairs"]
    return [dict(tuple(pairs[str(i)]) for i in ids) for ids in document["pattoo_datapoints"]["datapoint_pairs"]]


def test_top_level_keys_and_units(taken):
    document = pattoo.payload(taken, AGENT_ID, polling_interval=60)
    assert list(document) == ["pattoo_agent_id", "pattoo_agent_polling_interval", "pattoo_agent_timestamp", "pattoo_datapoints"]
    assert document["pattoo_agent_polling_interval"] == 60000
    assert document["pattoo_agent_timestamp"] == int(round(taken["timestamp"], 3) * 1000)
    assert set(document["pattoo_datapoints"]) == {"key_value_pairs", "datapoint_pairs"}


def test_every_datapoint_is_complete_and_uses_the_os_agent_keys(taken):
    points = decoded(pattoo.payload(taken, AGENT_ID, polled_target="tcs1"))
    keys = set(point["pattoo_key"] for point in points)
    assert keys <= OS_AGENT_KEYS
    assert {"process_count", "load_average_01min", "memory_total", "cpu_times_percent_idle"} <= keys
    for point in points:
        assert all(key in point for key in RESERVED), point
        assert point["pattoo_agent_id"] == AGENT_ID
        assert point["pattoo_agent_polled_target"] == "tcs1"
        assert point["pattoo_agent_program"] == "pattoo_agent_os_autonomousd"
        assert point["pattoo_agent_polling_interval"] == "300000"
        assert point["pattoo_data_type"] in (101, 99, 64, 32, 2)
        assert all(isinstance(value, str) for key, value in point.items() if not key.startswith("pattoo_"))
        assert point["hostname"] == taken["host"]["hostname"]


def test_load_averages_are_floats_and_counters_count64(taken):
    points = dict((p["pattoo_key"], p) for p in decoded(pattoo.payload(taken, AGENT_ID)))
    for key in ("load_average_01min", "load_average_05min", "load_average_15min"):
        assert points[key]["pattoo_data_type"] == 101
        assert isinstance(points[key]["pattoo_value"], float)
    assert points["cpu_times_user"]["pattoo_data_type"] == 64
    assert points["memory_total"]["pattoo_data_type"] == 99
    assert points["memory_total"]["pattoo_value"] == taken["memory"]["total_bytes"]


def test_partition_and_device_metadata(taken):
    points = decoded(pattoo.payload(taken, AGENT_ID))
    root = [p for p in points if p["pattoo_key"] == "disk_partition_disk_usage_total" and p["disk_partition_mountpoint"] == "/"]
    assert len(root) == 1 and set(root[0]) >= {"disk_partition_device", "disk_partition_fstype", "disk_partition_opts"}
    nics = set(p["network_io_interface"] for p in points if p["pattoo_key"] == "network_io_bytes_recv")
    assert nics == set(n["interface"] for n in taken["network_io"])


def test_checksum_chain_of_one_datapoint():
    dp = pattoo.DataPoint("Process_Count ", 99, 5, 1000)
    dp.add("release", "6.1", update_checksum=False)
    dp.add("hostname", " tcs1 ")
    dp.add("hostname", "ignored: already present")
    dp.add("cpus", None)
    first = hashlib.sha256(b"process_count99").hexdigest()
    assert dp.checksum == hashlib.sha256(("%shostnametcs1" % first).encode()).hexdigest()
    assert list(dp.metadata.items()) == [("release", "6.1"), ("hostname", "tcs1")]


def test_values_without_a_reading_are_left_out(taken):
    without = dict(taken, cpu=dict(taken["cpu"], frequency_mhz=None))
    keys = [p["pattoo_key"] for p in decoded(pattoo.payload(without, AGENT_ID))]
    assert "cpu_frequency" not in keys and "process_count" in keys


def test_shared_pairs_have_one_id(taken):
    document = pattoo.payload(taken, AGENT_ID)
    pairs = document["pattoo_datapoints"]["key_value_pairs"]
    as_tuples = [tuple(v) for v in pairs.values()]
    assert len(as_tuples) == len(set(as_tuples))
    assert list(pairs) == [str(i) for i in range(len(pairs))]


def test_bad_polling_interval(taken):
    with pytest.raises(snap.MetricsError, match="polling_interval must be a positive"):
        pattoo.payload(taken, AGENT_ID, polling_interval=0)


def test_agent_id_from_option_file_or_machine_id(tmp_path):
    machine = tmp_path / "machine-id"
    machine.write_text("3d1219c7c4c5404aaa1f6d2a48adfda4\n")
    paths = (str(tmp_path / "absent"), str(machine))
    expected = hmac.new(b"3d1219c7c4c5404aaa1f6d2a48adfda4", b"datasteward.storage prog", hashlib.sha256).hexdigest()
    assert pattoo.resolve_agent_id(None, str(tmp_path / "no-file"), "prog", paths) == (expected, "machine-id")
    id_file = tmp_path / "agent_id"
    id_file.write_text("abc123\n")
    assert pattoo.resolve_agent_id(None, str(id_file), "prog", paths) == ("abc123", "file")
    assert pattoo.resolve_agent_id("given", str(id_file), "prog", paths) == ("given", "option")
    other = pattoo.resolve_agent_id(None, None, "other", paths)[0]
    assert other != expected and len(other) == 64


def test_agent_id_errors_name_the_option_or_file(tmp_path):
    with pytest.raises(snap.MetricsError, match="agent_id: an agent id is 1 to 512 printable"):
        pattoo.resolve_agent_id("has space")
    empty = tmp_path / "agent_id"
    empty.write_text("\n")
    with pytest.raises(snap.MetricsError, match="agent_id_file %s: an agent id" % empty):
        pattoo.resolve_agent_id(None, str(empty))
    with pytest.raises(snap.MetricsError, match="agent_id_file %s cannot be read" % tmp_path):
        pattoo.resolve_agent_id(None, str(tmp_path))
    with pytest.raises(snap.MetricsError, match="no agent id: agent_id_file .*/gone does not exist and the host has no machine id"):
        pattoo.resolve_agent_id(None, str(tmp_path / "gone"), machine_id_paths=(str(tmp_path / "none"),))


def documented_keys():
    """Every `name` and `prefix_{a,b}suffix` of docs/metrics.md, braces expanded."""
    path = os.path.join(os.path.dirname(__file__), *([os.pardir] * 5), "docs", "metrics.md")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    names = set()
    for head, choices, tail in re.findall(r"`([a-z0-9_]*)(?:\{([a-z0-9_,]+)\})?([a-z0-9_]*)`", text):
        names.update(head + choice + tail for choice in (choices.split(",") if choices else [""]))
    return names


def test_every_pattoo_key_is_in_the_docs(taken):
    keys = set(p["pattoo_key"] for p in decoded(pattoo.payload(taken, AGENT_ID))) | OS_AGENT_KEYS
    assert keys - documented_keys() == set()
