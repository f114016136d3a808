# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The host snapshot, against psutil and /proc on this machine."""

from __future__ import annotations

import os
import re
import socket

import psutil
import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._fs import mounts as _filesystems
from ansible_collections.datasteward.storage.plugins.module_utils._metrics import snapshot as snap


def proc_stat():
    fields = {}
    with open("/proc/stat") as handle:
        for line in handle:
            parts = line.split()
            fields[parts[0]] = [int(v) for v in parts[1:]]
    return fields


def meminfo():
    with open("/proc/meminfo") as handle:
        return dict((line.split(":")[0], int(line.split()[1]) * 1024) for line in handle if line.split()[-1] == "kB")


def proc_net_dev():
    with open("/proc/net/dev") as handle:
        lines = handle.read().splitlines()[2:]
    return dict((line.split(":")[0].strip(), [int(v) for v in line.split(":")[1].split()]) for line in lines)


def proc_diskstats():
    with open("/proc/diskstats") as handle:
        return dict((line.split()[2], [int(v) for v in line.split()[3:]]) for line in handle)


@pytest.fixture(scope="module")
def bracketed():
    """/proc readings before and after one snapshot."""
    before = {"stat": proc_stat(), "net": proc_net_dev(), "disk": proc_diskstats(), "pids": len(psutil.pids())}
    taken = snap.take_snapshot(psutil, interval=0.2)
    after = {"stat": proc_stat(), "net": proc_net_dev(), "disk": proc_diskstats(), "pids": len(psutil.pids())}
    return before, taken, after


def leaves(value, path=""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, "%s.%s" % (path, key) if path else key)
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item, path + "[]")
    else:
        yield path, value


def test_schema_marks_every_value_and_nothing_else(bracketed):
    _before, taken, _after = bracketed
    schema = snap.schema()
    paths = set(path for path, _value in leaves(taken))
    assert paths <= set(schema)
    assert set(schema) - paths <= {p for p in schema if p.startswith(("partitions[]", "disk_io[]", "network_io[]"))}
    assert all(entry["type"] in ("gauge", "counter", "info") for entry in schema.values())
    assert all(entry["unit"] for entry in schema.values() if entry["type"] != "info")
    assert schema["cpu.times_seconds.user"] == {"type": "counter", "unit": "seconds"}
    assert schema["memory.total_bytes"] == {"type": "gauge", "unit": "bytes"}
    assert schema["disk_io[].read_time_ms"] == {"type": "counter", "unit": "milliseconds"}


def test_memory_and_swap_equal_proc_meminfo(bracketed):
    _before, taken, _after = bracketed
    info = meminfo()
    assert taken["memory"]["total_bytes"] == info["MemTotal"]
    assert taken["swap"]["total_bytes"] == info["SwapTotal"]
    assert 0 < taken["memory"]["available_bytes"] <= info["MemTotal"]
    assert taken["memory"]["total_bytes"] == psutil.virtual_memory().total


def test_cpu_counts_and_counters_bracketed_by_proc_stat(bracketed):
    before, taken, after = bracketed
    cpus = [key for key in before["stat"] if re.match(r"^cpu\d+$", key)]
    assert taken["cpu"]["logical_count"] == len(cpus) == os.cpu_count()
    ticks = os.sysconf("SC_CLK_TCK")
    for index, name in enumerate(("user", "nice", "system", "idle")):
        low, high = before["stat"]["cpu"][index] / ticks, after["stat"]["cpu"][index] / ticks
        assert low - 0.01 <= taken["cpu"]["times_seconds"][name] <= high + 0.01, name
    assert before["stat"]["ctxt"][0] <= taken["cpu"]["stats"]["ctx_switches"] <= after["stat"]["ctxt"][0]
    assert before["stat"]["intr"][0] <= taken["cpu"]["stats"]["interrupts"] <= after["stat"]["intr"][0]
    assert taken["host"]["boot_time_seconds"] == pytest.approx(before["stat"]["btime"][0], abs=1)


def test_cpu_percentages_come_from_an_interval(bracketed):
    _before, taken, _after = bracketed
    percent = taken["cpu"]["times_percent"]
    assert set(percent) == set(snap.CPU_TIMES)
    assert all(0.0 <= value <= 100.0 for value in percent.values())
    assert 0.0 <= taken["cpu"]["busy_percent"] <= 100.0


class RecordingPsutil:
    """psutil with cpu_times_percent recorded (to check the interval it gets)."""

    def __init__(self):
        self.intervals = []

    def __getattr__(self, name):
        return getattr(psutil, name)

    def cpu_times_percent(self, interval=None):
        self.intervals.append(interval)
        return psutil.cpu_times_percent(interval=interval)


def test_the_interval_reaches_psutil_and_zero_is_refused():
    recorder = RecordingPsutil()
    snap.take_snapshot(recorder, interval=0.05, usage_reader=lambda **options: {"filesystems": []})
    assert recorder.intervals == [0.05]
    for bad in (0, -1, 61):
        with pytest.raises(snap.MetricsError, match="interval must be more than 0"):
            snap.take_snapshot(recorder, interval=bad)


def test_load_averages_are_floats_from_proc_loadavg(bracketed):
    _before, taken, _after = bracketed
    with open("/proc/loadavg") as handle:
        proc = [float(v) for v in handle.read().split()[:3]]
    values = [taken["load_average"][key] for key in ("load1", "load5", "load15")]
    assert all(isinstance(value, float) for value in values)
    assert values == pytest.approx(proc, abs=0.5)


def test_process_count_close_to_proc(bracketed):
    before, taken, after = bracketed
    low, high = sorted((before["pids"], after["pids"]))
    assert low - 20 <= taken["processes"]["count"] <= high + 20


def test_network_and_disk_counters_bracketed_by_proc(bracketed):
    before, taken, after = bracketed
    nics = dict((nic["interface"], nic) for nic in taken["network_io"])
    assert set(nics) == set(before["net"])
    for name, nic in nics.items():
        assert before["net"][name][0] <= nic["bytes_recv"] <= after["net"][name][0]
        assert before["net"][name][8] <= nic["bytes_sent"] <= after["net"][name][8]
    disks = dict((disk["device"], disk) for disk in taken["disk_io"])
    assert set(disks) <= set(before["disk"])
    assert not [name for name in disks if re.match(r"^(loop|ram)\d*$", name)]
    for name, disk in disks.items():
        assert before["disk"][name][0] <= disk["read_count"] <= after["disk"][name][0]


def test_partitions_are_disk_usage_file_systems():
    # Other tests may mount and unmount file systems meanwhile (make test runs
    # some at once): compare a snapshot taken while the mount table held still.
    for dummy in range(20):
        expected = [fs["mount"] for fs in _filesystems.disk_usage()["filesystems"]]
        taken = snap.take_snapshot(psutil, interval=0.01)
        if [fs["mount"] for fs in _filesystems.disk_usage()["filesystems"]] == expected:
            break
    assert [p["mount"] for p in taken["partitions"]] == expected
    root = [p for p in taken["partitions"] if p["mount"] == "/"][0]
    st = os.statvfs("/")
    assert root["total_bytes"] == st.f_blocks * st.f_frsize
    assert root["inodes_total"] == st.f_files
    assert root["error"] is None


def test_partitions_use_disk_usage_options_and_skip_a_repeated_mount(tmp_path):
    calls = []

    def usage(**options):
        calls.append(options)
        fs = dict((key, 1) for key in _filesystems.USAGE_KEYS)
        fs.update(mount="/", device="/dev/x", fstype="ext4", options="rw", error=None, path="/a", status="ok")
        return {"filesystems": [fs, dict(fs, path="/b")]}

    taken = snap.take_snapshot(psutil, 0.01, filesystems={"paths": ["/a", "/b"], "timeout": 2}, usage_reader=usage)
    assert calls == [{"paths": ["/a", "/b"], "timeout": 2}]
    assert [p["mount"] for p in taken["partitions"]] == ["/"]
    assert "path" not in taken["partitions"][0] and "status" not in taken["partitions"][0]


def test_host_identity(bracketed, tmp_path):
    _before, taken, _after = bracketed
    host = taken["host"]
    assert host["hostname"] == socket.getfqdn()
    assert host["kernel"] == os.uname().release
    assert host["system"] == "Linux"
    release = tmp_path / "os-release"
    release.write_text('# comment\nID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    assert snap.read_os_release(str(release)) == {"ID": "debian", "VERSION_ID": "12", "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)"}
    assert snap.read_os_release(str(tmp_path / "missing")) == {}


def test_a_missing_cpu_frequency_is_null():
    class NoFrequency(RecordingPsutil):
        def cpu_freq(self):
            return None

    taken = snap.take_snapshot(NoFrequency(), 0.01, usage_reader=lambda **options: {"filesystems": []})
    assert taken["cpu"]["frequency_mhz"] is None
    assert taken["partitions"] == []
