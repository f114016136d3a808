# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Our pattoo payload checked by pattoo-shared itself (run with the isolated
PattooShared install on PYTHONPATH; see requirements-isolated.txt).

``compare FILE``: FILE holds ``{"snapshot", "payload", "agent_id",
"polled_target", "agent_program", "polling_interval"}``. The same readings are
turned into a posting by pattoo-shared's own classes, the way the pattoo OS
agent (pattoo_agents/os/collector.py) builds them: ``DataPoint``,
``DataPointMetadata``, ``TargetDataPoints``, ``AgentPolledData`` and
``converter.agentdata_to_post``. The two documents must be equal: keys, data
types, metadata, pair ids and every checksum.

``serve OUTFILE``: a pattoo agent API receiver on a loopback port (printed on
the first line of stdout). ``POST /pattoo/api/v1/agent/receive/<agent_id>``
makes the pattoo API's checks (a dict with exactly the keys of
``pattoo_shared.constants.CACHE_KEYS``) and then runs pattoo-shared's
``converter.cache_to_keypairs``, what the pattoo ingester runs on every
received file; it answers 200 ``OK`` when that yields one record per datapoint
and appends the records to OUTFILE (JSON lines), else 500.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from pattoo_shared import converter
from pattoo_shared.constants import CACHE_KEYS, DATA_COUNT64, DATA_FLOAT, DATA_INT
from pattoo_shared.variables import AgentPolledData, DataPoint, DataPointMetadata, TargetDataPoints

RECEIVE = "/pattoo/api/v1/agent/receive/"

# The OS agent's groups: (pattoo key prefix, snapshot path, data type); load
# averages are FLOAT where the OS agent declared INT.
GROUPS = (
    ("cpu_times_percent_", "cpu.times_percent", DATA_FLOAT),
    ("cpu_times_", "cpu.times_seconds", DATA_COUNT64),
    ("cpu_stats_", "cpu.stats", DATA_COUNT64),
    ("memory_", "memory", DATA_INT),
)


def lookup(snapshot, path):
    for part in path.split("."):
        snapshot = snapshot[part]
    return snapshot


def psutil_name(name):
    return name[: -len("_bytes")] if name.endswith("_bytes") else name


class Builder:
    def __init__(self, snapshot):
        self.snapshot = snapshot
        self.timestamp = int(round(snapshot["timestamp"], 3) * 1000)
        host = snapshot["host"]
        self.metadata = [
            DataPointMetadata("release", host["kernel"], update_checksum=False),
            DataPointMetadata("version", host["kernel_version"], update_checksum=False),
            DataPointMetadata("processor", host["processor"]),
            DataPointMetadata("type", host["system"]),
            DataPointMetadata("cpus", snapshot["cpu"]["logical_count"]),
            DataPointMetadata("hostname", host["hostname"]),
        ]
        self.points = []

    def add(self, key, value, data_type, before=(), after=()):
        if value is None:
            return
        point = DataPoint(key, value, data_type=data_type, timestamp=self.timestamp)
        point.add(list(before))
        point.add(self.metadata)
        point.add(list(after))
        self.points.append(point)

    def system(self):
        snap = self.snapshot
        self.add("process_count", snap["processes"]["count"], DATA_INT)
        for key, name in (("load_average_01min", "load1"), ("load_average_05min", "load5"), ("load_average_15min", "load15")):
            self.add(key, snap["load_average"][name], DATA_FLOAT)
        self.add("cpu_frequency", snap["cpu"]["frequency_mhz"], DATA_FLOAT)
        for prefix, path, data_type in GROUPS:
            for name, value in lookup(snap, path).items():
                self.add(prefix + psutil_name(name), value, data_type)
        for name, value in snap["swap"].items():
            key = psutil_name(name)
            self.add("swap_memory_" + key, value, DATA_COUNT64 if key in ("sin", "sout") else DATA_INT)

    def devices(self):
        for part in self.snapshot["partitions"]:
            meta = [
                DataPointMetadata("disk_partition_device", part["device"]),
                DataPointMetadata("disk_partition_mountpoint", part["mount"]),
                DataPointMetadata("disk_partition_fstype", part["fstype"]),
                DataPointMetadata("disk_partition_opts", part["options"]),
            ]
            for key, name in (("total", "total_bytes"), ("used", "used_bytes"), ("free", "available_bytes"), ("percent", "used_percent")):
                self.add("disk_partition_disk_usage_" + key, part[name], DATA_INT, before=meta)
        for disk in self.snapshot["disk_io"]:
            for name, value in disk.items():
                if name != "device":
                    self.add("disk_io_" + name.replace("_ms", ""), value, DATA_COUNT64, after=[DataPointMetadata("disk_partition", disk["device"])])
        for nic in self.snapshot["network_io"]:
            for name, value in nic.items():
                if name != "interface":
                    self.add("network_io_" + name, value, DATA_COUNT64, after=[DataPointMetadata("network_io_interface", nic["interface"])])


def os_agent_posting(doc):
    builder = Builder(doc["snapshot"])
    builder.system()
    builder.devices()
    target = TargetDataPoints(doc["polled_target"] or doc["snapshot"]["host"]["hostname"])
    target.add(builder.points)
    agentdata = AgentPolledData.__new__(AgentPolledData)  # its __init__ reads a pattoo installation's config
    agentdata.agent_program = doc["agent_program"]
    agentdata.agent_hostname = doc["snapshot"]["host"]["hostname"]
    agentdata.agent_id = doc["agent_id"]
    agentdata.agent_polling_interval = doc["polling_interval"] * 1000
    agentdata.agent_timestamp = builder.timestamp
    agentdata.data = []
    agentdata.valid = False
    agentdata.add(target)
    posting = converter.posting_data_points(converter.agentdata_to_post(agentdata))
    posting["pattoo_agent_timestamp"] = builder.timestamp
    return json.loads(json.dumps(posting))


def compare(path):
    with open(path) as handle:
        doc = json.load(handle)
    theirs = os_agent_posting(doc)
    ours = doc["payload"]
    if theirs != ours:
        for key in theirs:
            if theirs[key] != ours.get(key):
                print("differs: %s" % key)
        ours_pairs, their_pairs = ours["pattoo_datapoints"]["key_value_pairs"], theirs["pattoo_datapoints"]["key_value_pairs"]
        for pair_id in sorted(set(ours_pairs) | set(their_pairs), key=int)[:2000]:
            if ours_pairs.get(pair_id) != their_pairs.get(pair_id):
                print("pair %s: ours %r, pattoo-shared %r" % (pair_id, ours_pairs.get(pair_id), their_pairs.get(pair_id)))
                break
        return 1
    records = converter.cache_to_keypairs(ours)
    if len(records) != len(ours["pattoo_datapoints"]["datapoint_pairs"]):
        print("cache_to_keypairs made %d records of %d datapoints" % (len(records), len(ours["pattoo_datapoints"]["datapoint_pairs"])))
        return 1
    print("equal: %d datapoints" % len(records))
    return 0


def accepted(data):
    """The pattoo API's receive checks, then the ingester's conversion."""
    if not isinstance(data, dict) or len(data) != len(CACHE_KEYS) or any(key not in CACHE_KEYS for key in data):
        return None
    records = converter.cache_to_keypairs(data)
    if not records or len(records) != len(data["pattoo_datapoints"]["datapoint_pairs"]):
        return None
    return records


class Receiver(BaseHTTPRequestHandler):
    outfile = None

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        source = self.path[len(RECEIVE) :] if self.path.startswith(RECEIVE) else None
        records = accepted(data) if source else None
        if records is None or records[0].pattoo_agent_id != source:
            self.send_response(500)
            self.end_headers()
            return
        with open(self.outfile, "a") as handle:
            for record in records:
                handle.write(json.dumps(record._asdict()) + "\n")
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass


def serve(outfile):
    Receiver.outfile = outfile
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    if sys.argv[1] == "compare":
        sys.exit(compare(sys.argv[2]))
    serve(sys.argv[2])
