# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The prometheus_textfile module's main(): check, apply, re-apply, diff, absent,
attributes, and the series of real module results (disk_usage on this machine,
smart_info on recorded drives)."""

from __future__ import annotations

import functools
import os
import stat

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.datasteward.storage.plugins.module_utils._disks.smart import HAS_PYSMART
from ansible_collections.datasteward.storage.plugins.modules import disk_usage, prometheus_textfile, smart_info
from ansible_collections.datasteward.storage.tests.unit.utils import fake_smartctl

# A recorded SATA disk from the recordings the collection ships.
RECORDED_HDD = os.path.join(fake_smartctl.fixtures_root(), "singletests", "sata_hdd_0_issue42")
GAUGE = {"name": "datasteward_inbox_entries", "help": "Entries by state.", "samples": [{"labels": {"inbox": "/srv/inbox", "state": "uploading"}, "value": 3}]}


@pytest.fixture
def run(run_module):
    return functools.partial(run_module, prometheus_textfile)


def families(path):
    with open(str(path), encoding="utf-8") as handle:
        return dict((f.name, f) for f in text_string_to_metric_families(handle.read()))


def test_check_apply_reapply_check(run, tmp_path):
    path = tmp_path / "datasteward_inbox.prom"
    args = {"path": str(path), "metrics": [GAUGE]}
    planned = run(args, check_mode=True)
    assert planned["changed"] and not path.exists()
    applied = run(dict(args, _ansible_diff=True))
    assert applied["changed"] and applied["series"] == 1 and applied["families"] == ["datasteward_inbox_entries"]
    assert applied["diff"]["before"] == "" and "datasteward_inbox_entries{" in applied["diff"]["after"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert run(args)["changed"] is False
    assert run(args, check_mode=True)["changed"] is False
    assert families(path)["datasteward_inbox_entries"].samples[0].value == 3
    assert os.listdir(str(tmp_path)) == [path.name]


def test_mode_change_alone_is_a_change(run, tmp_path):
    path = tmp_path / "datasteward_inbox.prom"
    run({"path": str(path), "metrics": [GAUGE]})
    assert run({"path": str(path), "metrics": [GAUGE], "mode": "0640"})["changed"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_absent_removes_the_file(run, tmp_path):
    path = tmp_path / "datasteward_inbox.prom"
    run({"path": str(path), "metrics": [GAUGE]})
    assert run({"path": str(path), "state": "absent"}, check_mode=True)["changed"] and path.exists()
    assert run({"path": str(path), "state": "absent"})["changed"] and not path.exists()
    assert run({"path": str(path), "state": "absent"})["changed"] is False


def test_counter_add_grows_every_run(run, tmp_path):
    path = tmp_path / "datasteward_inbox.prom"
    counter = {"name": "datasteward_inbox_processed_total", "type": "counter", "update": "add", "samples": [{"labels": {"inbox": "/srv/inbox"}, "value": "2"}]}
    run({"path": str(path), "metrics": [counter]})
    assert run({"path": str(path), "metrics": [counter]})["changed"]
    assert families(path)["datasteward_inbox_processed"].samples[0].value == 4


@pytest.mark.parametrize(
    "args, message",
    [
        ({"metrics": [dict(GAUGE, name="bad name")]}, "metric name 'bad name' is not a valid Prometheus name"),
        ({"metrics": [dict(GAUGE, type="counter")]}, "a counter's name ends in _total"),
        ({"source": "disk_usage", "result": {"filesystems": [{"nothing": 1}]}}, "result: not a result of disk_usage"),
    ],
)
def test_bad_metrics_fail_naming_them(run, tmp_path, args, message):
    result = run(dict(args, path=str(tmp_path / "datasteward_x.prom")), failed=True)
    assert message in result["msg"] and not (tmp_path / "datasteward_x.prom").exists()


def test_path_must_be_a_prom_file_in_an_existing_directory(run, tmp_path):
    result = run({"path": str(tmp_path / "x.txt"), "metrics": [GAUGE]}, failed=True)
    assert "node_exporter reads only files named *.prom" in result["msg"]
    result = run({"path": str(tmp_path / "gone" / "x.prom"), "metrics": [GAUGE]}, failed=True)
    assert "does not exist" in result["msg"]


def test_disk_usage_source_from_the_module_result(run, run_module, tmp_path):
    usage = run_module(disk_usage)
    path = tmp_path / "datasteward_filesystems.prom"
    run({"path": str(path), "source": "disk_usage", "result": usage, "labels": {"site": "station"}})
    found = families(path)
    root = [s for s in found["datasteward_filesystem_avail_bytes"].samples if s.labels["mountpoint"] == "/"]
    assert root[0].labels["site"] == "station"
    fs = [f for f in usage["filesystems"] if f["mount"] == "/"][0]
    assert root[0].value == fs["available_bytes"] and root[0].labels["device"] == fs["device"]


@pytest.mark.skipif(not HAS_PYSMART, reason="pySMART is not installed")
def test_smart_series_from_recorded_drives(run, run_module, tmp_path):
    smartctl = fake_smartctl.install(tmp_path / "bin", RECORDED_HDD)
    result = run_module(smart_info, {"smartctl_path": smartctl, "devices": [{"name": "/dev/sdau", "interface": "ata"}]})
    path = tmp_path / "datasteward_smart.prom"
    run({"path": str(path), "source": "smart_info", "result": result})
    found = families(path)
    drive = result["devices"][0]
    (info,) = found["datasteward_smart_device_info"].samples
    assert (info.labels["serial"], info.labels["device"], info.labels["model"]) == (drive["serial"], "/dev/sdau", drive["model"])
    health = dict((s.labels["health"], s.value) for s in found["datasteward_smart_health"].samples)
    assert health[drive["health"]] == 1 and sum(health.values()) == 1
    attributes = dict((s.labels["attribute_id"], s.value) for s in found["datasteward_smart_attribute_raw_value"].samples)
    expected = dict((str(a["id"]), a["raw_int"]) for a in drive["attributes"] if a["id"] in (5, 187, 197, 198, 199))
    assert expected and all(attributes[key] == value for key, value in expected.items())
    if drive["power_on_hours"] is not None:
        assert found["datasteward_smart_power_on_seconds"].samples[0].value == drive["power_on_hours"] * 3600
