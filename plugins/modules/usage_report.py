#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: usage_report
short_description: Write the usage report (self-contained HTML, JSON and a plain-text summary) from the usage history
version_added: 0.1.0
description:
  - Writes three files to O(dest) from the history that M(datasteward.storage.usage_history) records.
  - C(report.html), a self-contained page (styles and charts inline, no script, style or font from anywhere else, so it
    opens without network) with per-host file-system bars and their thresholds, a fill forecast per file system, the top
    users and their growth, old data eligible for action, SMART health per drive with reasons and attribute trends, ingest
    runs with the disks they used, inbox and old-file runs, and small trend charts rendered to SVG by pygal.
  - C(report.json), the same numbers; C(summary.txt), a plain-text summary.
  - RV(attention) lists what needs an admin (file systems over a threshold or filling within O(forecast_days), drives not
    healthy, job runs that failed or had failures); C(playbooks/report.yml) mails it to the admins only when it is not empty.
  - The report is as of the newest record, so the same history writes the same files (reported unchanged).
  - Each file is written to a hidden temporary in O(dest), fsynced and renamed into place.
author:
  - datasteward.storage maintainers (@datasteward)
requirements:
  - pygal on the controller (the charts).
extends_documentation_fragment:
  - datasteward.storage._attributes
  - datasteward.storage._history
attributes:
  check_mode:
    support: full
    details:
      - Builds the report and says which files would change; writes nothing.
  diff_mode:
    support: full
    details:
      - The summary before and after.
  idempotent:
    support: full
options:
  dest:
    description:
      - The directory to write the report to; created (mode 0755) when missing.
    type: path
    required: true
  title:
    description:
      - The report's title.
    type: str
    default: Storage report
  days:
    description:
      - The period of the top-growers tables, in days.
    type: int
    default: 7
  window_days:
    description:
      - Days of history in trend charts, forecasts and the run tables.
    type: int
    default: 30
  min_days:
    description:
      - Days of data a fill forecast needs at least.
    type: int
    default: 7
  warn_percent:
    description:
      - File systems used this much or more are in warning (marked on the bars).
    type: int
    default: 80
  critical_percent:
    description:
      - File systems used this much or more are critical (marked on the bars).
    type: int
    default: 90
  forecast_days:
    description:
      - A file system forecast to fill within this many days needs attention.
    type: int
    default: 30
  top:
    description:
      - Rows of the top-growers and old-data tables.
    type: int
    default: 10
seealso:
  - module: datasteward.storage.usage_history
  - module: datasteward.storage.usage_history_info
"""

EXAMPLES = r"""
- name: Write the report
  datasteward.storage.usage_report:
    dest: /srv/www/storage-report
  delegate_to: localhost
  run_once: true
  register: report

- name: Show what needs attention
  ansible.builtin.debug:
    msg: "{{ report.attention }}"
"""

RETURN = r"""
files:
  description: The files of the report, with whether each changed (or would).
  type: list
  elements: dict
  returned: always
  contains:
    path:
      description: The file.
      type: str
      sample: /srv/www/storage-report/report.html
    changed:
      description: Whether it was written (or would be).
      type: bool
      sample: true
html:
  description: The path of C(report.html).
  type: str
  returned: always
  sample: /srv/www/storage-report/report.html
attention:
  description: One line per thing that needs an admin; empty when all is well.
  type: list
  elements: str
  returned: always
  sample: ["login1 /scratch: 93% used (critical)"]
summary:
  description: The plain-text summary (C(summary.txt)).
  type: str
  returned: always
  sample: "Storage report as of 2026-06-17 01:00 UTC"
as_of:
  description: Time of the newest record the report shows (seconds since the epoch); null for an empty history.
  type: int
  returned: always
  sample: 1780000000
hosts:
  description: The hosts in the history.
  type: list
  elements: str
  returned: always
  sample: [login1, login2]
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.datasteward.storage.plugins.module_utils._history import report
from ansible_collections.datasteward.storage.plugins.module_utils._history.queries import QueryError
from ansible_collections.datasteward.storage.plugins.module_utils._history.store import HistoryError, history_argument_spec, open_from_params


def main():
    module = AnsibleModule(
        argument_spec=dict(
            history_argument_spec(),
            dest=dict(type="path", required=True),
            title=dict(type="str", default="Storage report"),
            days=dict(type="int", default=7),
            window_days=dict(type="int", default=30),
            min_days=dict(type="int", default=7),
            warn_percent=dict(type="int", default=80),
            critical_percent=dict(type="int", default=90),
            forecast_days=dict(type="int", default=30),
            top=dict(type="int", default=10),
        ),
        supports_check_mode=True,
    )
    p = module.params
    dest = p["dest"]
    try:
        report.check_options(p["days"], p["window_days"], p["min_days"], p["top"], p["forecast_days"], p["warn_percent"], p["critical_percent"])
        if os.path.exists(dest) and not os.path.isdir(dest):
            raise report.ReportError("dest %s is not a directory" % dest)
        with open_from_params(p, readonly=True) as store:
            data = report.build(
                store,
                **dict((name, p[name]) for name in ("days", "window_days", "min_days", "warn_percent", "critical_percent", "forecast_days", "top", "title")),
            )
        texts = report.render_all(data)
        files, old = report.write_report(dest, texts, check_mode=module.check_mode)
    except (HistoryError, QueryError, report.ReportError) as exc:
        module.fail_json(msg=str(exc), database=getattr(exc, "where", None), path=dest)
    except OSError as exc:
        module.fail_json(msg="dest %s: cannot create it: %s" % (dest, exc.strerror), path=dest)
    result = dict(
        changed=any(f["changed"] for f in files),
        files=files,
        html=os.path.join(dest, "report.html"),
        attention=data["attention"],
        summary=texts["summary.txt"],
        as_of=data["as_of"],
        hosts=data["hosts"],
    )
    if module._diff:
        result["diff"] = {
            "before": old["summary.txt"] or "",
            "after": texts["summary.txt"],
            "before_header": os.path.join(dest, "summary.txt"),
            "after_header": os.path.join(dest, "summary.txt"),
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
