#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: metrics_push
short_description: POST JSON snapshots to a server, such as pattoo, through a private bounded spool
version_added: 0.1.0
description:
  - Stores O(payload) in the spool O(spool_dir), then sends every spooled document to O(url), oldest first, each as one HTTP
    POST with a JSON body. A spooled file is removed only after a 2xx answer.
  - At the first failure (connection refused, no answer within O(timeout), connection closed, any status that is not 2xx)
    sending stops; what was not sent waits in the spool for the next run. The module still succeeds, with a warning,
    RV(error) and RV(pending).
  - "The spool is private: the directory has mode 0700 and belongs to the user running the module (it is created so, and its
    mode is corrected), each file has mode 0600 and is written to a temporary name, fsynced and renamed. Neither the directory
    nor a file in it is followed through a symlink. A run locks the directory."
  - "The spool is bounded: before sending, files older than O(max_age), then the oldest beyond O(max_files), then the oldest
    beyond O(max_bytes) are dropped, and each is reported in RV(dropped)."
  - Redirects are not followed (a redirected POST would be re-sent as a GET); a redirect counts as a failure.
author:
  - datasteward.storage maintainers (@datasteward)
extends_documentation_fragment:
  - datasteward.storage._attributes
attributes:
  check_mode:
    support: full
    details:
      - Reports what would be spooled, dropped and sent (RV(sent)); sends nothing and writes nothing.
  diff_mode:
    support: none
  idempotent:
    support: none
    details:
      - Every run with a O(payload) sends or spools it. A run without one changes nothing once the spool is empty.
options:
  url:
    description:
      - Where to POST, for a pattoo server C(http://<server>:20201/pattoo/api/v1/agent/receive/<agent_id>).
    type: str
    required: true
  payload:
    description:
      - The JSON document to send, for example RV(datasteward.storage.host_metrics_info#module:pattoo_payload).
      - When omitted, only what waits in the spool is sent.
    type: dict
  spool_dir:
    description:
      - The spool directory. Created with mode 0700 when missing (its parents too); it must belong to the user running the module.
    type: path
    required: true
  timeout:
    description:
      - Seconds to wait for the server at each step of a request (connecting, each read), and to wait for the spool's lock.
    type: float
    default: 10
  max_files:
    description:
      - The most files the spool keeps.
    type: int
    default: 1000
  max_bytes:
    description:
      - The most bytes the spool keeps.
    type: int
    default: 104857600
  max_age:
    description:
      - The oldest a spooled document may be, in seconds or with a unit, V(30m), V(12h), V(7d), V(2w).
    type: str
    default: 7d
  headers:
    description:
      - Extra HTTP headers (C(Content-Type) is C(application/json)).
    type: dict
    default: {}
  validate_certs:
    description:
      - Whether to check the server's TLS certificate.
    type: bool
    default: true
notes:
  - Delivery is at least once, if the run is killed after the server answered and before the file is removed, that document is
    sent again by the next run. A pattoo server ignores a datapoint that is not newer than the last one it stored.
seealso:
  - module: datasteward.storage.host_metrics_info
  - module: ansible.builtin.uri
    description: A single request, without a spool.
"""

EXAMPLES = r"""
- name: Take a pattoo snapshot
  datasteward.storage.host_metrics_info:
    format: pattoo
    agent_id_file: /var/lib/datasteward/metrics/agent_id
  register: snapshot

- name: Send it (spooled when the server cannot take it)
  datasteward.storage.metrics_push:
    url: "http://pattoo.example.org:20201/pattoo/api/v1/agent/receive/{{ snapshot.agent_id }}"
    payload: "{{ snapshot.pattoo_payload }}"
    spool_dir: /var/lib/datasteward/metrics/spool
    timeout: 5
  register: push

- name: Only send what waits in the spool, keep at most a day of it
  datasteward.storage.metrics_push:
    url: "http://pattoo.example.org:20201/pattoo/api/v1/agent/receive/{{ snapshot.agent_id }}"
    spool_dir: /var/lib/datasteward/metrics/spool
    max_age: 1d
"""

RETURN = r"""
payload_file:
  description: The spool file O(payload) was stored as (or would be), null without a payload.
  returned: always
  type: str
  sample: 0001764619200125-9f2c41d0.json
sent:
  description: Spool files sent with a 2xx answer and removed, oldest first; in check mode, those that would be sent.
  returned: always
  type: list
  elements: str
  sample: [0001764618900120-1b7e0a3c.json, 0001764619200125-9f2c41d0.json]
pending:
  description: Spool files still waiting for the next run, oldest first.
  returned: always
  type: list
  elements: str
  sample: []
pending_bytes:
  description: Total size of RV(pending).
  returned: always
  type: int
  sample: 0
delivered:
  description: Whether nothing is left in the spool (RV(pending) is empty); false in check mode when something would be sent.
  returned: always
  type: bool
  sample: true
dropped:
  description: Spool files dropped by a bound (or that would be), oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The file name.
      type: str
    reason:
      description: The bound that dropped it, V(age), V(count) or V(bytes).
      type: str
    size_bytes:
      description: Its size.
      type: int
    age_seconds:
      description: How old it was.
      type: float
  sample: [{name: 0001764014400100-77aa01ce.json, reason: age, size_bytes: 24158, age_seconds: 604800.5}]
status_code:
  description: The HTTP status of the last request, null when none was made or no answer came.
  returned: always
  type: int
  sample: 200
error:
  description: Why sending stopped, null when everything was sent.
  returned: always
  type: str
  sample: "cannot reach http://pattoo.example.org:20201/pattoo/api/v1/agent/receive/3f8a: no answer within 10 s"
spool_created:
  description: Whether O(spool_dir) was created (or would be).
  returned: always
  type: bool
  sample: false
spool_mode_fixed:
  description: Whether the mode of O(spool_dir) was not 0700 and was set to it (or would be).
  returned: always
  type: bool
  sample: false
stale_temporaries_removed:
  description: Temporary files of an interrupted run removed from the spool (or that would be).
  returned: always
  type: int
  sample: 0
"""

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.datasteward.storage.plugins.module_utils._metrics.http import sender
from ansible_collections.datasteward.storage.plugins.module_utils._metrics.snapshot import MetricsError
from ansible_collections.datasteward.storage.plugins.module_utils._metrics.spool import (
    Limits,
    Spool,
    parse_age,
    push,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            payload=dict(type="dict"),
            spool_dir=dict(type="path", required=True),
            timeout=dict(type="float", default=10),
            max_files=dict(type="int", default=1000),
            max_bytes=dict(type="int", default=104857600),
            max_age=dict(type="str", default="7d"),
            headers=dict(type="dict", default={}),
            validate_certs=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    body = None if params["payload"] is None else json.dumps(params["payload"], separators=(",", ":")).encode("utf-8")
    try:
        limits = Limits(params["max_files"], params["max_bytes"], parse_age(params["max_age"]))
        send = sender(params["url"], params["timeout"], headers=params["headers"], validate_certs=params["validate_certs"])
        result = push(Spool(params["spool_dir"]), body, limits, send, check_mode=module.check_mode, lock_timeout=params["timeout"])
    except MetricsError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="spool_dir %s: %s: %s" % (params["spool_dir"], exc.filename or "", exc.strerror or exc))
    result["delivered"] = not result["pending"] and not (module.check_mode and result["sent"])
    if result["error"]:
        module.warn("%s; %d document(s) wait in %s" % (result["error"], len(result["pending"]), params["spool_dir"]))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
