# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The pattoo agent payload of a native snapshot, and the agent id.

The payload is what a pattoo server's agent API
(``/pattoo/api/v1/agent/receive/<agent_id>``) accepts: the four top-level keys
of ``pattoo_shared.constants.CACHE_KEYS`` and, in ``pattoo_datapoints``, the
``key_value_pairs`` / ``datapoint_pairs`` encoding of pattoo-shared's
``converter.datapoints_to_dicts``. Keys, metadata and their order are the
pattoo OS agent's (``pattoo_agents/os/collector.py``), so the checksums are
the ones pattoo-shared computes for the same data:

* a datapoint starts with ``sha256(key + str(data_type))``;
* each metadata pair that updates the checksum, in the order it is added,
  makes it ``sha256(checksum + key + value)`` (values as stripped strings);
* the agent metadata is added last: the polling interval (no checksum
  update), then hostname, agent id, polled target and program, sorted by key.

The agent id is read, never written: the option, else the first line of the
id file, else one derived from the host's machine id (an HMAC, so the machine
id itself is not disclosed). The ``metrics`` role keeps it in its state file.
"""

from __future__ import annotations

import collections
import hashlib
import hmac

from ansible_collections.datasteward.storage.plugins.module_utils._metrics.snapshot import (
    DISK_IO_VALUES,
    GROUPS,
    NETWORK_IO_VALUES,
    PARTITION_VALUES,
    SCALARS,
    MetricsError,
    lookup,
)

AGENT_PROGRAM = "pattoo_agent_os_autonomousd"
RECEIVE_PATH = "/pattoo/api/v1/agent/receive/"
MACHINE_ID_PATHS = ("/etc/machine-id", "/var/lib/dbus/machine-id")
MAX_KEYPAIR_LENGTH = 512


class DataPoint:
    """A pattoo datapoint: key, data type, value, metadata and checksum."""

    def __init__(self, key, data_type, value, timestamp):
        self.key = str(key).lower().strip()
        self.data_type = data_type
        self.value = value
        self.timestamp = timestamp
        self.metadata = collections.OrderedDict()
        self.checksum = _sha256("%s%s" % (self.key, data_type))

    def add(self, key, value, update_checksum=True):
        """Add one metadata pair as pattoo-shared does: invalid values and
        keys already present are ignored."""
        if value is None or isinstance(value, bool) or not isinstance(value, (str, int, float)):
            return
        key = str(key).lower().strip()
        value = str(value).strip()
        if key in self.metadata or not key:
            return
        self.metadata[key] = value
        if update_checksum:
            self.checksum = _sha256("%s%s%s" % (self.checksum, key, value))

    def pairs(self):
        return list(self.metadata.items()) + [
            ("pattoo_key", self.key),
            ("pattoo_data_type", self.data_type),
            ("pattoo_value", self.value),
            ("pattoo_timestamp", self.timestamp),
            ("pattoo_checksum", self.checksum),
        ]


def _sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def _host_metadata(snapshot):
    """The OS agent's metadata of every datapoint: (key, value, updates checksum)."""
    host = snapshot["host"]
    return (
        ("release", host["kernel"], False),
        ("version", host["kernel_version"], False),
        ("processor", host["processor"], True),
        ("type", host["system"], True),
        ("cpus", snapshot["cpu"]["logical_count"], True),
        ("hostname", host["hostname"], True),
    )


def _system_points(snapshot):
    """(key, type, value, metadata before the host's, metadata after it), in
    the OS agent's order: system, then swap."""
    points = [(field.pattoo_key, field.pattoo_type, lookup(snapshot, field.name), (), ()) for field in SCALARS if field.pattoo_key]
    for path in ("cpu.times_percent", "cpu.times_seconds", "cpu.stats", "memory", "swap"):
        values = lookup(snapshot, path)
        points.extend((field.pattoo_key, field.pattoo_type, values[field.name], (), ()) for field in GROUPS[path])
    return points


def _device_points(snapshot):
    """Partitions (metadata first), disk I/O and network I/O (metadata after the host's)."""
    points = []
    for part in snapshot["partitions"]:
        meta = tuple(
            ("disk_partition_" + key, part[source], True)
            for key, source in (("device", "device"), ("mountpoint", "mount"), ("fstype", "fstype"), ("opts", "options"))
        )
        points.extend((field.pattoo_key, field.pattoo_type, part[field.name], meta, ()) for field in PARTITION_VALUES if field.pattoo_key)
    for disk in snapshot["disk_io"]:
        meta = (("disk_partition", disk["device"], True),)
        points.extend((field.pattoo_key, field.pattoo_type, disk[field.name], (), meta) for field in DISK_IO_VALUES)
    for nic in snapshot["network_io"]:
        meta = (("network_io_interface", nic["interface"], True),)
        points.extend((field.pattoo_key, field.pattoo_type, nic[field.name], (), meta) for field in NETWORK_IO_VALUES)
    return points


def datapoints(snapshot, agent):
    """The DataPoint objects of a snapshot, with the agent metadata added."""
    timestamp = int(round(snapshot["timestamp"], 3) * 1000)
    host_meta = _host_metadata(snapshot)
    agent_meta = (("pattoo_agent_polling_interval", agent["polling_interval_ms"], False),) + tuple(
        (key, agent[key], True) for key in sorted(("pattoo_agent_hostname", "pattoo_agent_id", "pattoo_agent_polled_target", "pattoo_agent_program"))
    )
    result, seen = [], set()
    for key, data_type, value, before, after in _system_points(snapshot) + _device_points(snapshot):
        if value is None:
            continue  # pattoo-shared drops a datapoint without a value
        dp = DataPoint(key, data_type, value, timestamp)
        for meta_key, meta_value, update in before + host_meta + after + agent_meta:
            dp.add(meta_key, meta_value, update)
        if dp.checksum not in seen:  # pattoo-shared keeps one datapoint per checksum
            seen.add(dp.checksum)
            result.append(dp)
    return result


def encode(points):
    """``key_value_pairs`` and ``datapoint_pairs``, as pattoo-shared posts them
    (ids are JSON object keys, so strings)."""
    ids = {}
    pairs = collections.OrderedDict()
    datapoint_pairs = []
    for dp in points:
        row = []
        for key, value in dp.pairs():
            if (key, value) not in ids:
                ids[(key, value)] = len(ids)
                pairs[str(ids[(key, value)])] = [key, value]
            row.append(ids[(key, value)])
        datapoint_pairs.append(row)
    return {"key_value_pairs": pairs, "datapoint_pairs": datapoint_pairs}


def payload(snapshot, agent_id, polled_target=None, agent_program=AGENT_PROGRAM, polling_interval=300):
    """The JSON document to POST to the pattoo agent API."""
    if not isinstance(polling_interval, int) or polling_interval <= 0:
        raise MetricsError("polling_interval must be a positive number of seconds, got %s" % polling_interval)
    hostname = snapshot["host"]["hostname"]
    agent = {
        "pattoo_agent_id": agent_id,
        "pattoo_agent_program": agent_program,
        "pattoo_agent_hostname": hostname,
        "pattoo_agent_polled_target": polled_target or hostname,
        "polling_interval_ms": polling_interval * 1000,
    }
    return collections.OrderedDict(
        (
            ("pattoo_agent_id", agent_id),
            ("pattoo_agent_polling_interval", polling_interval * 1000),
            ("pattoo_agent_timestamp", int(round(snapshot["timestamp"], 3) * 1000)),
            ("pattoo_datapoints", encode(datapoints(snapshot, agent))),
        )
    )


def check_agent_id(agent_id, where):
    if not agent_id or len(agent_id) > MAX_KEYPAIR_LENGTH or not agent_id.isprintable() or any(c.isspace() for c in agent_id):
        raise MetricsError("%s: an agent id is 1 to %d printable characters without spaces, got %r" % (where, MAX_KEYPAIR_LENGTH, agent_id))
    return agent_id


def _read_first_line(path):
    with open(path, "r", encoding="utf-8", errors="strict") as handle:
        return handle.readline().strip()


def derived_agent_id(agent_program, machine_id_paths=MACHINE_ID_PATHS):
    """A stable id for this host and program: HMAC-SHA256 keyed by the machine id."""
    for path in machine_id_paths:
        try:
            machine_id = _read_first_line(path)
        except (OSError, UnicodeDecodeError):
            continue
        if machine_id:
            digest = hmac.new(machine_id.encode(), ("datasteward.storage " + agent_program).encode(), hashlib.sha256)
            return digest.hexdigest()
    return None


def resolve_agent_id(agent_id=None, agent_id_file=None, agent_program=AGENT_PROGRAM, machine_id_paths=MACHINE_ID_PATHS):
    """(agent id, where it came from: ``option``, ``file`` or ``machine-id``). Reads only."""
    if agent_id is not None:
        return check_agent_id(agent_id, "agent_id"), "option"
    if agent_id_file:
        try:
            return check_agent_id(_read_first_line(agent_id_file), "agent_id_file %s" % agent_id_file), "file"
        except FileNotFoundError:
            pass
        except (OSError, UnicodeDecodeError) as exc:
            raise MetricsError("agent_id_file %s cannot be read: %s" % (agent_id_file, getattr(exc, "strerror", None) or exc))
    derived = derived_agent_id(agent_program, machine_id_paths)
    if derived is None:
        raise MetricsError(
            "no agent id: %s and the host has no machine id (%s); set agent_id, or agent_id_file to a file "
            "that holds one" % ("agent_id_file %s does not exist" % agent_id_file if agent_id_file else "agent_id_file is not set", ", ".join(machine_id_paths))
        )
    return derived, "machine-id"
