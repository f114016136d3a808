#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: usage_history_info
short_description: Ask the usage history about usage, growth, top growers, fill forecasts, drive trends and job runs
version_added: 0.1.0
description:
  - Answers questions from the history that M(datasteward.storage.usage_history) records, on SQLite or PostgreSQL (the same
    queries give the same answers on both).
  - Growth over a period compares a series' newest value (or its value as of O(until)) with its value as of the start of the
    period, the last point on or before that day, else the first point inside the period.
  - Never creates, migrates or writes the history; an absent history answers with nothing.
author:
  - datasteward.storage maintainers (@datasteward)
extends_documentation_fragment:
  - datasteward.storage._attributes
  - datasteward.storage._attributes.INFO_MODULE
  - datasteward.storage._history
options:
  query:
    description:
      - V(usage), the newest values of each matching series.
      - V(growth), growth of each matching series over O(days), largest first.
      - V(top_growers), the O(limit) users (or groups, file systems, directories) that grew most over O(days);
        with O(by=name) users and groups are summed over every host.
      - V(forecast), when each matching file system fills, from a least-squares line through its daily usage over
        O(window_days) (at least O(min_days) of data; no estimate when usage is flat or falling), with a range.
      - V(smart_trends), per drive its newest health and reasons and each key attribute over O(days).
      - V(runs), the recorded runs of O(source) with their counters, newest first.
      - V(view), a readable table (RV(lines)) for O(user), O(host) or O(path), as C(playbooks/view.yml) prints it.
    type: str
    choices: [usage, growth, top_growers, forecast, smart_trends, runs, view]
    default: usage
  kind:
    description:
      - What the series measure; V(filesystem) series are keyed by mount point, V(directory) series by path.
    type: str
    choices: [user, group, filesystem, directory]
    default: user
  host:
    description:
      - Only series of this host.
    type: str
  name:
    description:
      - Only the series with this key, a user or group name (C(#<id>) for one without a name), a mount point or a directory.
    type: str
  user:
    description:
      - With O(query=view), the user to show on every host.
    type: str
  path:
    description:
      - With O(query=view), the mount point or scanned directory to show on every host.
    type: str
  days:
    description:
      - The period of V(growth), V(top_growers), V(smart_trends) and V(runs), in days.
    type: int
    default: 7
  until:
    description:
      - The end of the period, in seconds since the epoch. Defaults to the newest record.
    type: int
  limit:
    description:
      - At most this many rows (V(top_growers) and V(runs)).
    type: int
    default: 10
  by:
    description:
      - V(name), users and groups summed over all hosts (unless O(host) is given); V(series), one row per host and name.
    type: str
    choices: [name, series]
    default: name
  window_days:
    description:
      - Days of data the V(forecast) fits.
    type: int
    default: 30
  min_days:
    description:
      - Days of data a V(forecast) needs at least.
    type: int
    default: 7
  source:
    description:
      - The source of V(runs).
    type: str
    choices: [disk_usage, user_usage_info, smart_info, buffer_copy, inbox, old_files]
    default: buffer_copy
seealso:
  - module: datasteward.storage.usage_history
  - module: datasteward.storage.usage_report
"""

EXAMPLES = r"""
- name: Who grew the most this week, over all hosts
  datasteward.storage.usage_history_info:
    query: top_growers
    days: 7
  delegate_to: localhost
  run_once: true
  register: growers

- name: When does each file system of login1 fill
  datasteward.storage.usage_history_info:
    query: forecast
    host: login1
  delegate_to: localhost

- name: Print alice's usage on every host
  datasteward.storage.usage_history_info:
    query: view
    user: alice
  delegate_to: localhost
  register: alice

- name: Show it
  ansible.builtin.debug:
    msg: "{{ alice.lines }}"
"""

RETURN = r"""
rows:
  description:
    - The answer, one dict per series, drive or run.
    - V(usage), C(host), C(kind), C(key), C(time), C(used_bytes), C(files); users and groups add C(old_bytes), C(old_files),
      C(id) (and for users C(largest), C(oldest) of the last scan); file systems add C(mount), C(device), C(fstype),
      C(available_bytes), C(total_bytes), C(used_percent), C(status).
    - V(growth) and V(top_growers), C(kind), C(key), C(host) (not with O(by=name)), C(used_bytes), C(files), C(start_bytes),
      C(growth_bytes), C(growth_bytes_per_day), C(growth_files), C(days).
    - V(forecast), C(host), C(mount), C(used_bytes), C(available_bytes), C(points), C(rate_bytes_per_day), C(full_at),
      C(full_in_days), C(full_in_days_low), C(full_in_days_high), C(reason) (why there is no estimate).
    - V(smart_trends), C(host), C(drive), C(name), C(model), C(label), C(time), C(health), C(reasons), C(temperature_c),
      C(power_on_hours), C(attributes) (C(attribute), C(values), C(first), C(last), C(change)), C(health_history).
    - V(runs), C(host), C(source), C(time), C(status), C(counters), C(summary).
  type: list
  elements: dict
  returned: always
  sample: [{kind: user, key: alice, used_bytes: 1073741824, start_bytes: 536870912, growth_bytes: 536870912,
            growth_bytes_per_day: 76695844.6, files: 1200, growth_files: 200, days: 7}]
lines:
  description: With O(query=view), the table as text lines; otherwise empty.
  type: list
  elements: str
  returned: always
  sample: ["User alice", "", "host    used     files  7 days  30 days  old  last scan"]
newest:
  description: Time of the newest record in the history (seconds since the epoch), null when it is empty.
  type: int
  returned: always
  sample: 1780000000
database:
  description: The SQLite file, or the PostgreSQL URL with its password hidden.
  type: str
  returned: always
  sample: /home/admin/.local/share/datasteward/history.sqlite
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.datasteward.storage.plugins.module_utils._history import queries, view
from ansible_collections.datasteward.storage.plugins.module_utils._history.record import SOURCES
from ansible_collections.datasteward.storage.plugins.module_utils._history.store import HistoryError, history_argument_spec, open_from_params

KIND = {"user": "user", "group": "group", "filesystem": "fs", "directory": "dir"}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            history_argument_spec(),
            query=dict(type="str", default="usage", choices=["usage", "growth", "top_growers", "forecast", "smart_trends", "runs", "view"]),
            kind=dict(type="str", default="user", choices=list(KIND)),
            host=dict(type="str"),
            name=dict(type="str"),
            user=dict(type="str"),
            path=dict(type="str"),
            days=dict(type="int", default=7),
            until=dict(type="int"),
            limit=dict(type="int", default=10),
            by=dict(type="str", default="name", choices=["name", "series"]),
            window_days=dict(type="int", default=30),
            min_days=dict(type="int", default=7),
            source=dict(type="str", default="buffer_copy", choices=list(SOURCES)),
        ),
        required_if=[("query", "view", ("user", "host", "path"), True)],
        mutually_exclusive=[("user", "path")],
        supports_check_mode=True,
    )
    p = module.params
    for option in ("days", "limit", "window_days", "min_days"):
        if p[option] < 1:
            module.fail_json(msg="%s must be at least 1, got %d" % (option, p[option]))
    try:
        with open_from_params(p, readonly=True) as store:
            rows, lines = answer(store, p)
            newest = queries.newest_time(store)
            where = store.where
    except (HistoryError, queries.QueryError) as exc:
        module.fail_json(msg=str(exc), database=getattr(exc, "where", None))
    module.exit_json(changed=False, rows=rows, lines=lines, newest=newest, database=where)


def answer(store, p):
    kind, q = KIND[p["kind"]], p["query"]
    if q == "view":
        if p["user"]:
            return [], view.user_view(store, p["user"])
        if p["path"]:
            return [], view.path_view(store, p["path"])
        return [], view.host_view(store, p["host"], limit=p["limit"])
    if q == "usage":
        return queries.usage(store, kind, host=p["host"], key=p["name"]), []
    if q in ("growth", "top_growers"):
        return queries.growth(
            store, kind, days=p["days"], until=p["until"], host=p["host"], key=p["name"], limit=p["limit"] if q == "top_growers" else None, by=p["by"]
        ), []
    if q == "forecast":
        return queries.forecast(store, host=p["host"], mount=p["name"], window_days=p["window_days"], min_days=p["min_days"], until=p["until"]), []
    if q == "smart_trends":
        return queries.smart_trends(store, host=p["host"], drive=p["name"], days=p["days"], until=p["until"]), []
    return queries.runs(store, p["source"], host=p["host"], days=p["days"], until=p["until"], limit=p["limit"]), []


if __name__ == "__main__":
    main()
