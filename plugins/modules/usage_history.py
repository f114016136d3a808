#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: usage_history
short_description: Record module results into the usage history, and prune it by a retention policy
version_added: 0.1.0
description:
  - Records the registered results of M(datasteward.storage.disk_usage) (file systems), M(datasteward.storage.user_usage_info)
    (per-user, per-group and per-directory usage with file counts), M(datasteward.storage.smart_info) (health, reasons and key
    attributes per drive), M(datasteward.storage.buffer_copy), C(datasteward.storage.inbox) and C(datasteward.storage.old_files)
    (their counters and short lists) into the usage history, a SQLite file or a PostgreSQL database on the controller.
  - Each record is keyed by host, source and time, so many hosts recording at the same second never collide; recording the
    same record again changes nothing.
  - At record time the module keeps a daily rollup per series and per-name totals over all hosts, so growth, top-growers and
    forecast queries (M(datasteward.storage.usage_history_info)) read two day slices, not every point.
  - With O(prune=true), thins the history by the retention policy; see O(keep_daily_days) and O(keep_weekly_days).
author:
  - datasteward.storage maintainers (@datasteward)
extends_documentation_fragment:
  - datasteward.storage._attributes
  - datasteward.storage._history
attributes:
  check_mode:
    support: full
    details:
      - Reports which records would be added and what pruning would remove; opens the history read-only.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - A record already in the history (same host, source and time) is not added again.
options:
  records:
    description:
      - The results to record.
    type: list
    elements: dict
    default: []
    suboptions:
      host:
        description:
          - The host the result is of (its inventory name).
        type: str
        required: true
      source:
        description:
          - The module that returned O(records[].result).
        type: str
        required: true
        choices: [disk_usage, user_usage_info, smart_info, buffer_copy, inbox, old_files]
      result:
        description:
          - The registered result. A failed result is recorded as a failed run (its message kept); a skipped one is not
            recorded and is listed in RV(not_recorded).
        type: dict
        required: true
      time:
        description:
          - When the result was taken, in seconds since the epoch. Defaults to O(time).
        type: int
  time:
    description:
      - The time of records that do not give their own, in seconds since the epoch. Defaults to now.
    type: int
  prune:
    description:
      - Thin the history after recording. Every run of the last three days is kept; older runs keep the last run of each
        host, source and day; runs older than O(keep_daily_days) the last of each week; runs older than O(keep_weekly_days)
        are removed. The daily rollup is thinned the same way.
    type: bool
    default: false
  keep_daily_days:
    description:
      - Days for which one point per day is kept.
    type: int
    default: 35
  keep_weekly_days:
    description:
      - Days after which points are removed entirely; V(0) keeps weekly points for ever.
    type: int
    default: 0
seealso:
  - module: datasteward.storage.usage_history_info
  - module: datasteward.storage.usage_report
"""

EXAMPLES = r"""
- name: Record this host's file systems
  datasteward.storage.usage_history:
    records:
      - host: "{{ inventory_hostname }}"
        source: disk_usage
        result: "{{ disk_status_usage }}"
  delegate_to: localhost

- name: Record into PostgreSQL and keep 60 days of daily points, weekly for two years
  datasteward.storage.usage_history:
    url: "{{ history_url }}"
    records: "{{ history_records }}"
    prune: true
    keep_daily_days: 60
    keep_weekly_days: 730
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
recorded:
  description: One entry per record given (skipped results left out), in order.
  type: list
  elements: dict
  returned: always
  contains:
    host:
      description: The host.
      type: str
      sample: login1
    source:
      description: The source module.
      type: str
      sample: disk_usage
    time:
      description: The record's time (seconds since the epoch).
      type: int
      sample: 1780000000
    added:
      description: Whether it was added (or would be); false when the history already had it.
      type: bool
      sample: true
added_count:
  description: Records added (or that would be).
  type: int
  returned: always
  sample: 3
not_recorded:
  description: Records not recorded because their task was skipped (host and source).
  type: list
  elements: dict
  returned: always
  sample: [{host: login2, source: disk_usage}]
pruned:
  description: What pruning removed (or would); zeros without O(prune).
  type: dict
  returned: always
  sample: {runs: 12, daily_points: 340}
database:
  description: The SQLite file, or the PostgreSQL URL with its password hidden.
  type: str
  returned: always
  sample: /home/admin/.local/share/datasteward/history.sqlite
schema_created:
  description: Whether the history's schema was created (or migrated) by this run.
  type: bool
  returned: always
  sample: false
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.datasteward.storage.plugins.module_utils._history.record import SOURCES, Recorder, check_record, prune
from ansible_collections.datasteward.storage.plugins.module_utils._history.store import (
    HistoryError,
    default_database,
    history_argument_spec,
    open_from_params,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            history_argument_spec(),
            records=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    host=dict(type="str", required=True),
                    source=dict(type="str", required=True, choices=list(SOURCES)),
                    result=dict(type="dict", required=True),
                    time=dict(type="int"),
                ),
            ),
            time=dict(type="int"),
            prune=dict(type="bool", default=False),
            keep_daily_days=dict(type="int", default=35),
            keep_weekly_days=dict(type="int", default=0),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["keep_daily_days"] < 1 or p["keep_weekly_days"] < 0 or (p["keep_weekly_days"] and p["keep_weekly_days"] <= p["keep_daily_days"]):
        module.fail_json(
            msg="keep_daily_days must be at least 1 and keep_weekly_days 0 or more than keep_daily_days, got %d and %d"
            % (p["keep_daily_days"], p["keep_weekly_days"])
        )
    now = p["time"] if p["time"] is not None else int(time.time())
    # Pruning a history that does not exist yet creates nothing.
    readonly = module.check_mode or (not p["records"] and not p["url"] and not os.path.exists(p["database"] or default_database()))
    try:
        with open_from_params(p, readonly=readonly) as store:
            result = run(store, p["records"], now, module.check_mode)
            result["pruned"] = prune(store, now, p["keep_daily_days"], p["keep_weekly_days"], check=readonly) if p["prune"] else {"runs": 0, "daily_points": 0}
            result.update(database=store.where, schema_created=store.created or (module.check_mode and store.empty))
    except HistoryError as exc:
        module.fail_json(msg=str(exc), database=exc.where)
    changed = bool(result["added_count"] or result["pruned"]["runs"] or result["pruned"]["daily_points"])
    module.exit_json(changed=changed, **result)


def run(store, records, now, check):
    recorder = Recorder(store)
    recorded, skipped = [], []
    for rec in records:
        ts = rec["time"] if rec["time"] is not None else now
        if rec["result"].get("skipped"):
            skipped.append({"host": rec["host"], "source": rec["source"]})
            continue
        if check:
            check_record(rec["host"], rec["source"], ts, rec["result"])
            added = not recorder.exists(rec["host"], rec["source"], ts)
        else:
            added = recorder.record(rec["host"], rec["source"], ts, rec["result"])
        recorded.append({"host": rec["host"], "source": rec["source"], "time": ts, "added": added})
    return {"recorded": recorded, "added_count": sum(r["added"] for r in recorded), "not_recorded": skipped}


if __name__ == "__main__":
    main()
