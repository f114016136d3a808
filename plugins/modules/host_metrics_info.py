#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: host_metrics_info
short_description: One performance snapshot of a host, natively or as a pattoo agent payload
version_added: 0.1.0
description:
  - Reads one snapshot of the host through psutil, CPU count, CPU times and percentages, CPU statistics and frequency, load averages,
    process count, memory, swap, per-partition usage, per-disk I/O counters, per-NIC network counters, boot time, host name,
    kernel and OS release.
  - CPU percentages are measured between two readings O(interval) seconds apart, never from a single reading.
  - Partitions follow the rules of M(datasteward.storage.disk_usage), whose engine reads them, no pseudo or shadowed file
    systems, df's arithmetic, and a deadline per file system (a hung one is reported with an C(error) in RV(metrics.partitions)).
  - With O(format=native) it returns RV(metrics), a nested snapshot, and RV(schema), which marks every value as a gauge or a
    counter and gives its unit.
  - With O(format=pattoo) it returns RV(pattoo_payload), the document a pattoo server's agent API
    (C(/pattoo/api/v1/agent/receive/<agent_id>)) accepts, with the keys, metadata and checksums of the pattoo OS agent.
    M(datasteward.storage.metrics_push) sends it.
  - It changes nothing; the pattoo agent id is read from O(agent_id) or O(agent_id_file), or derived from the host's machine id.
author:
  - datasteward.storage maintainers (@datasteward)
extends_documentation_fragment:
  - datasteward.storage._attributes
  - datasteward.storage._attributes.INFO_MODULE
requirements:
  - psutil on the managed host (the Python package C(psutil), Debian C(python3-psutil)).
options:
  format:
    description:
      - V(native) returns RV(metrics) and RV(schema); V(pattoo) returns RV(pattoo_payload), RV(agent_id) and RV(agent_id_source).
    type: str
    choices: [native, pattoo]
    default: native
  interval:
    description:
      - Seconds between the two CPU readings the CPU percentages are measured over (more than 0, at most 60).
    type: float
    default: 1.0
  paths:
    description:
      - Only the file systems that hold these paths, as O(datasteward.storage.disk_usage#module:paths) takes them.
      - When omitted, every mounted file system that is not a pseudo file system.
    type: list
    elements: path
  fstypes:
    description:
      - Only file systems of these types.
    type: list
    elements: str
  exclude_fstypes:
    description:
      - Never file systems of these types.
    type: list
    elements: str
  timeout:
    description:
      - Seconds to wait for each file system to answer before reporting it with an error.
    type: float
    default: 5
  agent_id:
    description:
      - The pattoo agent id. Takes precedence over O(agent_id_file).
    type: str
  agent_id_file:
    description:
      - A file whose first line is the pattoo agent id (the format of the pattoo agents' own id files, so an existing agent's
        id can be kept). Read only; the P(datasteward.storage.metrics#role) role keeps one in its private state directory.
      - When neither O(agent_id) nor this file is there, the id is an HMAC-SHA256 keyed by the host's machine id
        (C(/etc/machine-id) or C(/var/lib/dbus/machine-id)) of the O(agent_program), stable for the host.
    type: path
  agent_program:
    description:
      - The C(pattoo_agent_program) of the datapoints. The default is the pattoo OS agent's name, so a pattoo server's
        translations for that agent apply.
    type: str
    default: pattoo_agent_os_autonomousd
  polled_target:
    description:
      - The C(pattoo_agent_polled_target) of the datapoints. Defaults to the host's fully qualified name.
    type: str
  polling_interval:
    description:
      - Seconds between two snapshots of the job (the pattoo server receives it in milliseconds).
    type: int
    default: 300
notes:
  - Counters (CPU times, disk and network I/O, swap in and out) are psutil's, since boot; rates are left to the receiver.
seealso:
  - module: datasteward.storage.metrics_push
  - module: datasteward.storage.disk_usage
  - module: ansible.builtin.setup
    description: Facts about the host's hardware and configuration rather than performance counters.
"""

EXAMPLES = r"""
- name: Take a snapshot
  datasteward.storage.host_metrics_info:
  register: snapshot

- name: Show the load and the available memory
  ansible.builtin.debug:
    msg: "load {{ snapshot.metrics.load_average.load1 }}, {{ snapshot.metrics.memory.available_bytes | ansible.builtin.human_readable }} free"

- name: The pattoo payload, with the id a former pattoo OS agent used
  datasteward.storage.host_metrics_info:
    format: pattoo
    agent_id_file: /opt/pattoo/.pattoo/agent_id/pattoo_agent_os_autonomousd
    interval: 2
  register: pattoo

- name: Send it
  datasteward.storage.metrics_push:
    url: "http://pattoo.example.org:20201/pattoo/api/v1/agent/receive/{{ pattoo.agent_id }}"
    payload: "{{ pattoo.pattoo_payload }}"
    spool_dir: /var/lib/datasteward/metrics/spool
"""

RETURN = r"""
metrics:
  description:
    - The snapshot (O(format=native)). Names are psutil's, with the unit added where psutil's name does not say it.
    - RV(schema) gives the type and unit of every value; docs/metrics.md describes each one.
  returned: O(format=native)
  type: dict
  contains:
    timestamp:
      description: When the snapshot was taken, seconds since the epoch.
      type: float
      sample: 1764619200.125
    host:
      description: C(hostname) (fully qualified), C(system), C(kernel), C(kernel_version), C(machine), C(processor),
        C(os_id), C(os_version_id), C(os_pretty_name) (from os-release, null when unknown), C(boot_time_seconds), C(uptime_seconds).
      type: dict
      sample: {hostname: storage.station.example.org, system: Linux, kernel: 6.1.0-28-amd64, os_id: debian, os_version_id: "12",
               boot_time_seconds: 1764500000.0, uptime_seconds: 119200.125}
    cpu:
      description:
        - C(logical_count), C(physical_count), C(frequency_mhz) (null where unknown), C(busy_percent) (user, nice, system,
          irq, softirq and steal over O(interval)).
        - C(times_percent) and C(times_seconds) (C(user), C(nice), C(system), C(idle), C(iowait), C(irq), C(softirq),
          C(steal), C(guest), C(guest_nice)), C(stats) (C(ctx_switches), C(interrupts), C(soft_interrupts), C(syscalls)).
      type: dict
      sample: {logical_count: 8, physical_count: 4, frequency_mhz: 2600.0, busy_percent: 3.2,
               times_percent: {user: 2.5, system: 0.7, idle: 96.6}, times_seconds: {user: 455.8, idle: 5632.0},
               stats: {ctx_switches: 1134631, interrupts: 697275}}
    load_average:
      description: C(load1), C(load5) and C(load15), as floats.
      type: dict
      sample: {load1: 0.42, load5: 0.3, load15: 0.25}
    processes:
      description: C(count), the number of processes.
      type: dict
      sample: {count: 312}
    memory:
      description: C(total_bytes), C(available_bytes), C(used_bytes), C(free_bytes), C(active_bytes), C(inactive_bytes),
        C(buffers_bytes), C(cached_bytes), C(shared_bytes), C(slab_bytes), C(percent).
      type: dict
      sample: {total_bytes: 25275990016, available_bytes: 21063213056, percent: 16.7}
    swap:
      description: C(total_bytes), C(used_bytes), C(free_bytes), C(percent), C(sin_bytes) and C(sout_bytes) (swapped in and out since boot).
      type: dict
      sample: {total_bytes: 0, used_bytes: 0, free_bytes: 0, percent: 0.0, sin_bytes: 0, sout_bytes: 0}
    partitions:
      description: One entry per file system, as M(datasteward.storage.disk_usage) reports it
        (C(mount), C(device), C(fstype), C(options), C(total_bytes), C(used_bytes), C(available_bytes), C(reserved_bytes),
        C(used_percent), C(inodes_total), C(inodes_used), C(inodes_available), C(inodes_used_percent), C(error)).
      type: list
      elements: dict
      sample: [{mount: /, device: /dev/vda1, fstype: ext4, total_bytes: 270553174016, used_bytes: 25821605888, used_percent: 24, error: null}]
    disk_io:
      description: One entry per disk (RAM disks and loop devices left out, as the pattoo OS agent does), C(device),
        C(read_count), C(write_count), C(read_bytes), C(write_bytes), C(read_time_ms), C(write_time_ms),
        C(read_merged_count), C(write_merged_count), C(busy_time_ms).
      type: list
      elements: dict
      sample: [{device: vda, read_count: 151276, read_bytes: 4058014720, busy_time_ms: 20172}]
    network_io:
      description: One entry per interface, C(interface), C(bytes_sent), C(bytes_recv), C(packets_sent), C(packets_recv),
        C(errin), C(errout), C(dropin), C(dropout).
      type: list
      elements: dict
      sample: [{interface: eth0, bytes_sent: 5120344, bytes_recv: 90234112, errin: 0}]
schema:
  description: For every value of RV(metrics), by its path (list entries as C([])), its C(type) (V(gauge), V(counter) or
    V(info) for a text) and its C(unit).
  returned: O(format=native)
  type: dict
  sample: {"memory.total_bytes": {type: gauge, unit: bytes}, "disk_io[].read_bytes": {type: counter, unit: bytes}}
pattoo_payload:
  description:
    - What a pattoo server's agent API accepts (O(format=pattoo)), C(pattoo_agent_id), C(pattoo_agent_polling_interval)
      (milliseconds), C(pattoo_agent_timestamp) (milliseconds) and C(pattoo_datapoints) with C(key_value_pairs) (id to
      C([key, value])) and C(datapoint_pairs) (one list of pair ids per datapoint).
    - Each datapoint has C(pattoo_key), C(pattoo_data_type) (FLOAT 101, INT 99, COUNT64 64), C(pattoo_value),
      C(pattoo_timestamp), C(pattoo_checksum), the agent metadata and the OS agent's metadata.
  returned: O(format=pattoo)
  type: dict
  sample:
    pattoo_agent_id: 3f8a0c1d9b0e4a7f8c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b
    pattoo_agent_polling_interval: 300000
    pattoo_agent_timestamp: 1764619200125
    pattoo_datapoints:
      key_value_pairs: {"0": [release, 6.1.0-28-amd64], "12": [pattoo_key, process_count]}
      datapoint_pairs: [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]]
agent_id:
  description: The pattoo agent id used (O(format=pattoo)).
  returned: O(format=pattoo)
  type: str
  sample: 3f8a0c1d9b0e4a7f8c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b
agent_id_source:
  description: Where RV(agent_id) came from, V(option), V(file) or V(machine-id).
  returned: O(format=pattoo)
  type: str
  sample: file
datapoints:
  description: Number of datapoints in RV(pattoo_payload).
  returned: O(format=pattoo)
  type: int
  sample: 112
"""

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.datasteward.storage.plugins.module_utils._fs.mounts import FilesystemError
from ansible_collections.datasteward.storage.plugins.module_utils._metrics import pattoo
from ansible_collections.datasteward.storage.plugins.module_utils._metrics.snapshot import (
    MetricsError,
    schema,
    take_snapshot,
)

try:
    import psutil
except ImportError:
    PSUTIL_IMPORT_ERROR = traceback.format_exc()
    psutil = None
else:
    PSUTIL_IMPORT_ERROR = None


def _pattoo_result(snapshot, params):
    agent_id, source = pattoo.resolve_agent_id(params["agent_id"], params["agent_id_file"], params["agent_program"])
    payload = pattoo.payload(
        snapshot, agent_id, polled_target=params["polled_target"], agent_program=params["agent_program"], polling_interval=params["polling_interval"]
    )
    return {"pattoo_payload": payload, "agent_id": agent_id, "agent_id_source": source, "datapoints": len(payload["pattoo_datapoints"]["datapoint_pairs"])}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            format=dict(type="str", choices=["native", "pattoo"], default="native"),
            interval=dict(type="float", default=1.0),
            paths=dict(type="list", elements="path"),
            fstypes=dict(type="list", elements="str"),
            exclude_fstypes=dict(type="list", elements="str"),
            timeout=dict(type="float", default=5),
            agent_id=dict(type="str"),
            agent_id_file=dict(type="path"),
            agent_program=dict(type="str", default=pattoo.AGENT_PROGRAM),
            polled_target=dict(type="str"),
            polling_interval=dict(type="int", default=300),
        ),
        supports_check_mode=True,
    )
    if psutil is None:
        module.fail_json(msg=missing_required_lib("psutil"), exception=PSUTIL_IMPORT_ERROR)
    params = module.params
    filesystems = dict((key, params[key]) for key in ("paths", "fstypes", "exclude_fstypes", "timeout"))
    try:
        snapshot = take_snapshot(psutil, interval=params["interval"], filesystems=filesystems)
        if params["format"] == "pattoo":
            result = _pattoo_result(snapshot, params)
        else:
            result = {"metrics": snapshot, "schema": schema()}
    except (MetricsError, FilesystemError) as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="cannot read %s: %s" % (exc.filename or "the host's counters", exc.strerror or exc))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
