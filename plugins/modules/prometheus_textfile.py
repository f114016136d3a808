#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: prometheus_textfile
short_description: Write series to a node_exporter textfile, atomically, one file per source
version_added: 0.1.0
description:
  - Writes the metric families given in O(metrics), and the series this collection defines for a module's result
    (O(source) and O(result)), to the file O(path) that node_exporter's textfile collector reads
    (C(--collector.textfile.directory)).
  - The file is written in the text exposition format to a hidden temporary name in the same directory (node_exporter reads
    only C(*.prom)), fsynced, re-read and compared, given its owner and mode, then renamed over O(path), so node_exporter never
    reads half a file or a file it may not open.
  - Every role writes its own file (for example C(datasteward_ingest.prom)), so no job overwrites another's series;
    docs/metrics.md lists the series of each source and how a role writes them.
  - Names and types are checked against the Prometheus conventions, a counter's name ends in C(_total), an info metric's in
    C(_info), label names are valid and not reserved. Label values that are not valid UTF-8 are written with C(\xNN) escapes.
author:
  - datasteward.storage maintainers (@datasteward)
extends_documentation_fragment:
  - datasteward.storage._attributes
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
    details:
      - Computes the file and reports whether it would change; writes nothing.
  diff_mode:
    support: full
    details:
      - The text of the file before and after.
  idempotent:
    support: partial
    details:
      - The same series and values write the same file, reported unchanged.
      - Counters with O(metrics[].update=add) add to the file on every run.
options:
  path:
    description:
      - The textfile, in node_exporter's textfile directory; its name must end in C(.prom). The directory must exist.
    type: path
    required: true
  state:
    description:
      - V(present) writes the file; V(absent) removes it (and its series from node_exporter).
    type: str
    choices: [present, absent]
    default: present
  metrics:
    description:
      - Metric families to write, in this order (after those of O(source)).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - The metric name, C([a-zA-Z_][a-zA-Z0-9_]*), in base units (C(_bytes), C(_seconds), C(_ratio)).
        type: str
        required: true
      type:
        description:
          - V(gauge), V(counter) (name ends in C(_total)) or V(info) (name ends in C(_info), value 1, written as a gauge).
        type: str
        choices: [gauge, counter, info]
        default: gauge
      help:
        description:
          - The C(# HELP) text. Defaults to the name.
        type: str
      update:
        description:
          - What happens to the family's series already in the file.
          - V(replace), only the given samples. V(merge), given samples replace theirs, the others are kept.
            V(add) (counters only), each given value is added to the one in the file, the others are kept.
        type: str
        choices: [replace, merge, add]
        default: replace
      samples:
        description:
          - The series of the family.
        type: list
        elements: dict
        default: []
        suboptions:
          labels:
            description:
              - Label names and values.
            type: dict
            default: {}
          value:
            description:
              - A number (or a string that is one); V(true) and V(false) are 1 and 0. Defaults to 1 for an info metric.
            type: raw
  source:
    description:
      - The module whose O(result) to turn into this collection's series (see docs/metrics.md).
      - V(disk_usage), file-system usage and threshold status; V(user_usage_info), per-user usage of the O(top) users;
        V(smart_info), health and key attributes per drive; V(buffer_copy), ingest counters and last-success time.
    type: str
    choices: [disk_usage, user_usage_info, smart_info, buffer_copy]
  result:
    description:
      - The registered result of the O(source) module.
    type: dict
  top:
    description:
      - With O(source=user_usage_info), how many users to export, those with the most allocated bytes.
    type: int
    default: 10
  labels:
    description:
      - Labels added to every series of the file (a sample's own labels win), for example the scanned tree.
    type: dict
    default: {}
  mode:
    description:
      - The permissions of the file. node_exporter must be able to read it.
    type: raw
    default: "0644"
notes:
  - node_exporter refuses a series found in two files; each source has its own metric name prefix.
  - Timestamps are never written (node_exporter rejects them in textfiles); times are gauges in seconds since the epoch.
seealso:
  - module: datasteward.storage.disk_usage
  - module: datasteward.storage.user_usage_info
  - module: datasteward.storage.smart_info
  - module: datasteward.storage.buffer_copy
  - name: node_exporter textfile collector
    description: How node_exporter reads textfiles.
    link: https://github.com/prometheus/node_exporter#textfile-collector
"""

EXAMPLES = r"""
- name: Read file system usage
  datasteward.storage.disk_usage:
  register: usage

- name: Export it for node_exporter
  datasteward.storage.prometheus_textfile:
    path: /var/lib/prometheus/node-exporter/datasteward_filesystems.prom
    source: disk_usage
    result: "{{ usage }}"

- name: Series of your own, a gauge and a counter that grows run by run
  datasteward.storage.prometheus_textfile:
    path: /var/lib/prometheus/node-exporter/datasteward_inbox.prom
    metrics:
      - name: datasteward_inbox_entries
        help: Entries in the upload inbox by state.
        samples:
          - labels: {inbox: /srv/inbox, state: uploading}
            value: 3
          - labels: {inbox: /srv/inbox, state: failed}
            value: 0
      - name: datasteward_inbox_processed_total
        type: counter
        update: add
        samples:
          - labels: {inbox: /srv/inbox}
            value: 12

- name: Remove a file whose source is gone
  datasteward.storage.prometheus_textfile:
    path: /var/lib/prometheus/node-exporter/datasteward_smart.prom
    state: absent
"""

RETURN = r"""
path:
  description: The textfile.
  returned: always
  type: str
  sample: /var/lib/prometheus/node-exporter/datasteward_filesystems.prom
families:
  description: Names of the metric families written (or that would be), in file order; empty with O(state=absent).
  returned: always
  type: list
  elements: str
  sample: [datasteward_filesystem_size_bytes, datasteward_filesystem_status]
series:
  description: Number of series (sample lines) in the file.
  returned: always
  type: int
  sample: 36
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.datasteward.storage.plugins.module_utils._metrics import series, textfile


def _families(params):
    try:
        given = series.families_of(params["source"], params["result"], top=params["top"]) if params["source"] else []
    except (KeyError, TypeError, AttributeError) as exc:
        raise textfile.TextfileError("result: not a result of %s (%s: %s)" % (params["source"], type(exc).__name__, exc))
    return textfile.normalize_all(given + params["metrics"], params["labels"])


def _diff(module, path, before, after):
    if module._diff:
        return {"diff": {"before": before or "", "after": after or "", "before_header": path, "after_header": path}}
    return {}


def _old(families, existing, path):
    """The file's families, parsed only when a merge or add needs them."""
    if existing is None or all(f["update"] == "replace" for f in families.values()):
        return {}
    return textfile.parse(existing, path)


def _absent(module, path, existing):
    if existing is not None and not module.check_mode:
        textfile.remove(path)
    module.exit_json(changed=existing is not None, path=path, families=[], series=0, **_diff(module, path, existing, ""))


def _write(module, path, existing, text):
    file_args = module.load_file_common_arguments(module.params)
    changed = existing != text
    if changed and not module.check_mode:
        textfile.write_atomic(path, text, prepare=lambda tmp: module.set_fs_attributes_if_different(dict(file_args, path=tmp), False))
    if os.path.exists(path):
        changed = module.set_fs_attributes_if_different(file_args, changed)
    return changed


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            metrics=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    name=dict(type="str", required=True),
                    type=dict(type="str", choices=["gauge", "counter", "info"], default="gauge"),
                    help=dict(type="str"),
                    update=dict(type="str", choices=["replace", "merge", "add"], default="replace"),
                    samples=dict(
                        type="list",
                        elements="dict",
                        default=[],
                        options=dict(
                            labels=dict(type="dict", default={}),
                            value=dict(type="raw"),
                        ),
                    ),
                ),
            ),
            source=dict(type="str", choices=list(series.SOURCES)),
            result=dict(type="dict"),
            top=dict(type="int", default=10),
            labels=dict(type="dict", default={}),
            mode=dict(type="raw", default="0644"),
        ),
        required_together=[["source", "result"]],
        add_file_common_args=True,
        supports_check_mode=True,
    )
    path = module.params["path"]
    try:
        textfile.check_path(path)
        existing = textfile.read_existing(path)
        if module.params["state"] == "absent":
            _absent(module, path, existing)
        families = _families(module.params)
        text = textfile.render(families, _old(families, existing, path))
        changed = _write(module, path, existing, text)
    except textfile.TextfileError as exc:
        module.fail_json(msg=str(exc), path=path)
    except OSError as exc:
        module.fail_json(msg="path %s cannot be written: %s" % (path, exc.strerror or exc), path=path)
    module.exit_json(changed=changed, path=path, families=list(families), series=textfile.series_count(text), **_diff(module, path, existing, text))


if __name__ == "__main__":
    main()
