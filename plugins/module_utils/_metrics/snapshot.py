# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One host snapshot from psutil, in the native nested schema.

Every value of the schema is described once, in the field tables below: its
name in the snapshot, the psutil field it comes from, whether it is a gauge or
a counter, its unit, and the key and data type the pattoo OS agent sends it
under (``pattoo.py`` builds the pattoo payload from the same tables).

Names are psutil's, with the unit added where psutil's name does not say it
(``memory.total_bytes``, ``disk_io[].read_time_ms``). psutil is passed in (the
module imports it), as are the clock, the host name and the file-system
reader, so the engine is tested without a host of its own.
"""

from __future__ import annotations

import collections
import platform
import re
import socket
import time

from ansible_collections.datasteward.storage.plugins.module_utils._fs.mounts import disk_usage

GAUGE = "gauge"
COUNTER = "counter"
INFO = "info"

# pattoo data types (pattoo_shared.constants) that the OS agent's datapoints use
DATA_FLOAT = 101
DATA_INT = 99
DATA_COUNT64 = 64

OS_RELEASE = "/etc/os-release"

# The pattoo OS agent leaves out RAM disks and loop devices from disk I/O.
_SKIPPED_DISKS = re.compile(r"^(ram\d+|loop\d*)$")

Field = collections.namedtuple("Field", "name source kind unit pattoo_key pattoo_type")


class MetricsError(Exception):
    """Bad input to a metrics engine, naming the option and the cause."""


def _fields(names, kind, unit, prefix, pattoo_type, suffix=""):
    return tuple(Field(name + suffix, name, kind, unit, prefix + name, pattoo_type) for name in names)


CPU_TIMES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice")

# Fields of a psutil named tuple, by the snapshot path of the dict they fill.
# pattoo data types are the OS agent's (percentages too: a checksum includes
# the type, so a pattoo server goes on charting a replaced agent's series),
# except the load averages, FLOAT here (the agent declared INT, truncating).
GROUPS = collections.OrderedDict(
    (
        ("cpu.times_percent", _fields(CPU_TIMES, GAUGE, "percent", "cpu_times_percent_", DATA_FLOAT)),
        ("cpu.times_seconds", _fields(CPU_TIMES, COUNTER, "seconds", "cpu_times_", DATA_COUNT64)),
        ("cpu.stats", _fields(("ctx_switches", "interrupts", "soft_interrupts", "syscalls"), COUNTER, "events", "cpu_stats_", DATA_COUNT64)),
        (
            "memory",
            _fields(
                ("total", "available", "used", "free", "active", "inactive", "buffers", "cached", "shared", "slab"),
                GAUGE,
                "bytes",
                "memory_",
                DATA_INT,
                suffix="_bytes",
            )
            + (Field("percent", "percent", GAUGE, "percent", "memory_percent", DATA_INT),),
        ),
        (
            "swap",
            _fields(("total", "used", "free"), GAUGE, "bytes", "swap_memory_", DATA_INT, suffix="_bytes")
            + (Field("percent", "percent", GAUGE, "percent", "swap_memory_percent", DATA_INT),)
            + _fields(("sin", "sout"), COUNTER, "bytes", "swap_memory_", DATA_COUNT64, suffix="_bytes"),
        ),
    )
)

# Single values: path, kind, unit, pattoo key, pattoo type (None: not sent to pattoo).
SCALARS = (
    Field("processes.count", None, GAUGE, "processes", "process_count", DATA_INT),
    Field("load_average.load1", None, GAUGE, "runnable tasks", "load_average_01min", DATA_FLOAT),
    Field("load_average.load5", None, GAUGE, "runnable tasks", "load_average_05min", DATA_FLOAT),
    Field("load_average.load15", None, GAUGE, "runnable tasks", "load_average_15min", DATA_FLOAT),
    Field("cpu.frequency_mhz", None, GAUGE, "MHz", "cpu_frequency", DATA_FLOAT),
    Field("cpu.logical_count", None, GAUGE, "CPUs", None, None),
    Field("cpu.physical_count", None, GAUGE, "CPUs", None, None),
    Field("cpu.busy_percent", None, GAUGE, "percent", None, None),
    Field("host.boot_time_seconds", None, GAUGE, "seconds since the epoch", None, None),
    Field("host.uptime_seconds", None, GAUGE, "seconds", None, None),
    Field("timestamp", None, GAUGE, "seconds since the epoch", None, None),
)

HOST_INFO = ("hostname", "system", "kernel", "kernel_version", "machine", "processor", "os_id", "os_version_id", "os_pretty_name")

PARTITION_INFO = ("mount", "device", "fstype", "options", "error")
PARTITION_VALUES = (
    Field("total_bytes", "total_bytes", GAUGE, "bytes", "disk_partition_disk_usage_total", DATA_INT),
    Field("used_bytes", "used_bytes", GAUGE, "bytes", "disk_partition_disk_usage_used", DATA_INT),
    Field("available_bytes", "available_bytes", GAUGE, "bytes", "disk_partition_disk_usage_free", DATA_INT),
    Field("used_percent", "used_percent", GAUGE, "percent", "disk_partition_disk_usage_percent", DATA_INT),
    Field("reserved_bytes", "reserved_bytes", GAUGE, "bytes", None, None),
    Field("inodes_total", "inodes_total", GAUGE, "inodes", None, None),
    Field("inodes_used", "inodes_used", GAUGE, "inodes", None, None),
    Field("inodes_available", "inodes_available", GAUGE, "inodes", None, None),
    Field("inodes_used_percent", "inodes_used_percent", GAUGE, "percent", None, None),
)

DISK_IO_VALUES = (
    _fields(("read_count", "write_count"), COUNTER, "operations", "disk_io_", DATA_COUNT64)
    + _fields(("read_bytes", "write_bytes"), COUNTER, "bytes", "disk_io_", DATA_COUNT64)
    + tuple(Field(name + "_ms", name, COUNTER, "milliseconds", "disk_io_" + name, DATA_COUNT64) for name in ("read_time", "write_time"))
    + _fields(("read_merged_count", "write_merged_count"), COUNTER, "operations", "disk_io_", DATA_COUNT64)
    + (Field("busy_time_ms", "busy_time", COUNTER, "milliseconds", "disk_io_busy_time", DATA_COUNT64),)
)

NETWORK_IO_VALUES = (
    _fields(("bytes_sent", "bytes_recv"), COUNTER, "bytes", "network_io_", DATA_COUNT64)
    + _fields(("packets_sent", "packets_recv"), COUNTER, "packets", "network_io_", DATA_COUNT64)
    + _fields(("errin", "errout"), COUNTER, "errors", "network_io_", DATA_COUNT64)
    + _fields(("dropin", "dropout"), COUNTER, "packets", "network_io_", DATA_COUNT64)
)

# Lists of dicts: path, the key that names an entry, its other string keys, its values.
LISTS = collections.OrderedDict(
    (
        ("partitions", PARTITION_VALUES),
        ("disk_io", DISK_IO_VALUES),
        ("network_io", NETWORK_IO_VALUES),
    )
)
LIST_INFO = {"partitions": PARTITION_INFO, "disk_io": ("device",), "network_io": ("interface",)}


def schema():
    """Type and unit of every value of the native snapshot, by its path
    (``memory.total_bytes``, ``partitions[].used_bytes``)."""
    result = collections.OrderedDict()
    for path, fields in GROUPS.items():
        for field in fields:
            result["%s.%s" % (path, field.name)] = {"type": field.kind, "unit": field.unit}
    for field in SCALARS:
        result[field.name] = {"type": field.kind, "unit": field.unit}
    for key in HOST_INFO:
        result["host." + key] = {"type": INFO, "unit": None}
    for path, fields in LISTS.items():
        for key in LIST_INFO[path]:
            result["%s[].%s" % (path, key)] = {"type": INFO, "unit": None}
        for field in fields:
            result["%s[].%s" % (path, field.name)] = {"type": field.kind, "unit": field.unit}
    return result


def _from_tuple(values, fields):
    return collections.OrderedDict((field.name, getattr(values, field.source, None)) for field in fields)


def read_os_release(path=OS_RELEASE):
    """ID, VERSION_ID and PRETTY_NAME of os-release(5); empty when unreadable."""
    found = {}
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return found
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            found[key.strip()] = value.strip().strip("\"'")
    return found


def _host(psutil, now, hostname, os_release_path):
    release = read_os_release(os_release_path)
    boot = float(psutil.boot_time())
    return collections.OrderedDict(
        (
            ("hostname", hostname()),
            ("system", platform.system()),
            ("kernel", platform.release()),
            ("kernel_version", platform.version()),
            ("machine", platform.machine()),
            ("processor", platform.processor()),
            ("os_id", release.get("ID")),
            ("os_version_id", release.get("VERSION_ID")),
            ("os_pretty_name", release.get("PRETTY_NAME")),
            ("boot_time_seconds", boot),
            ("uptime_seconds", round(max(now - boot, 0.0), 3)),
        )
    )


def _cpu_frequency(psutil):
    """Current frequency in MHz, or None where the kernel does not say (VMs, containers)."""
    try:
        freq = psutil.cpu_freq()
    except (OSError, NotImplementedError, AttributeError):
        return None
    return float(freq.current) if freq is not None and freq.current else None


def _cpu(psutil, interval):
    """CPU percentages measured between two readings ``interval`` seconds apart
    (psutil's own reading at import time is never used), then the counters."""
    times_percent = _from_tuple(psutil.cpu_times_percent(interval=interval), GROUPS["cpu.times_percent"])
    # Busy is what ran, not 100 - idle: a tickless kernel updates an idle CPU's idle time late.
    busy = sum(times_percent.get(name) or 0.0 for name in ("user", "nice", "system", "irq", "softirq", "steal"))
    return collections.OrderedDict(
        (
            ("logical_count", psutil.cpu_count(logical=True)),
            ("physical_count", psutil.cpu_count(logical=False)),
            ("frequency_mhz", _cpu_frequency(psutil)),
            ("busy_percent", round(min(max(busy, 0.0), 100.0), 1)),
            ("times_percent", times_percent),
            ("times_seconds", _from_tuple(psutil.cpu_times(), GROUPS["cpu.times_seconds"])),
            ("stats", _from_tuple(psutil.cpu_stats(), GROUPS["cpu.stats"])),
        )
    )


def _partitions(usage):
    """The file systems disk_usage reports, one entry per mount."""
    seen = set()
    result = []
    for fs in usage["filesystems"]:
        if fs["mount"] in seen:
            continue
        seen.add(fs["mount"])
        entry = collections.OrderedDict((key, fs[key]) for key in PARTITION_INFO)
        entry.update((field.name, fs[field.source]) for field in PARTITION_VALUES)
        result.append(entry)
    return result


def _per_device(counters, name_key, fields, skip=None):
    result = []
    for name in sorted(counters or {}):
        if skip is not None and skip.match(name):
            continue
        entry = collections.OrderedDict(((name_key, name),))
        entry.update(_from_tuple(counters[name], fields))
        result.append(entry)
    return result


def check_interval(interval):
    if not 0 < interval <= 60:
        raise MetricsError("interval must be more than 0 and at most 60 seconds, got %s" % interval)


def take_snapshot(psutil, interval=1.0, filesystems=None, clock=time.time, hostname=socket.getfqdn, os_release_path=OS_RELEASE, usage_reader=disk_usage):
    """The native snapshot (see ``schema()``).

    ``filesystems`` holds disk_usage's options (``paths``, ``fstypes``,
    ``exclude_fstypes``, ``timeout``): partitions follow the rules of
    ``disk_usage`` (no pseudo or shadowed mounts, a deadline per file system).
    """
    check_interval(interval)
    usage = usage_reader(**dict(filesystems or {}))
    cpu = _cpu(psutil, interval)
    load1, load5, load15 = psutil.getloadavg()
    snapshot = collections.OrderedDict()
    snapshot["timestamp"] = round(clock(), 3)
    snapshot["host"] = _host(psutil, snapshot["timestamp"], hostname, os_release_path)
    snapshot["cpu"] = cpu
    snapshot["load_average"] = collections.OrderedDict((("load1", load1), ("load5", load5), ("load15", load15)))
    snapshot["processes"] = {"count": len(psutil.pids())}
    snapshot["memory"] = _from_tuple(psutil.virtual_memory(), GROUPS["memory"])
    snapshot["swap"] = _from_tuple(psutil.swap_memory(), GROUPS["swap"])
    snapshot["partitions"] = _partitions(usage)
    snapshot["disk_io"] = _per_device(psutil.disk_io_counters(perdisk=True), "device", DISK_IO_VALUES, _SKIPPED_DISKS)
    snapshot["network_io"] = _per_device(psutil.net_io_counters(pernic=True), "interface", NETWORK_IO_VALUES)
    return snapshot


def lookup(snapshot, path):
    """The value at a dotted path of the snapshot (``cpu.stats.interrupts``)."""
    value = snapshot
    for part in path.split("."):
        value = value[part]
    return value
