# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Textfiles written by prometheus_textfile, run as Ansible runs it, read by a
real node_exporter (Debian's prometheus-node-exporter, textfile collector only):
its /metrics shows our series and node_textfile_scrape_error 0."""

from __future__ import annotations

import os

from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.datasteward.storage.tests.unit.utils.module_runner import run_module_process

INBOX = [
    {
        "name": "datasteward_inbox_entries",
        "help": "Entries in the upload inbox by state.",
        "samples": [{"labels": {"inbox": "/srv/inbox", "state": state}, "value": value} for state, value in (("uploading", 2), ("failed", 0), ("stuck", 1))],
    },
    {"name": "datasteward_inbox_processed_total", "type": "counter", "update": "add", "samples": [{"labels": {"inbox": "/srv/inbox"}, "value": 5}]},
]


def exported(text):
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def test_node_exporter_reads_our_textfiles(tmp_path, node_exporter):
    directory, scrape = node_exporter
    usage = run_module_process(tmp_path, "disk_usage", {})
    run_module_process(tmp_path, "prometheus_textfile", {"path": str(directory / "datasteward_filesystems.prom"), "source": "disk_usage", "result": usage})
    for _run in range(2):
        args = {"path": str(directory / "datasteward_inbox.prom"), "metrics": INBOX}
        run_module_process(tmp_path, "prometheus_textfile", args)
    assert sorted(os.listdir(str(directory))) == ["datasteward_filesystems.prom", "datasteward_inbox.prom"]
    metrics = exported(scrape())
    assert metrics["node_textfile_scrape_error"] == [({}, 0.0)]
    root = [(labels, value) for labels, value in metrics["datasteward_filesystem_size_bytes"] if labels["mountpoint"] == "/"]
    fs = [f for f in usage["filesystems"] if f["mount"] == "/"][0]
    assert root == [({"device": fs["device"], "fstype": fs["fstype"], "mountpoint": "/"}, float(fs["total_bytes"]))]
    status = [labels["status"] for labels, value in metrics["datasteward_filesystem_status"] if labels["mountpoint"] == "/" and value == 1]
    assert status == [fs["status"]]
    assert metrics["datasteward_inbox_processed_total"] == [({"inbox": "/srv/inbox"}, 10.0)]
    assert ({"inbox": "/srv/inbox", "state": "stuck"}, 1.0) in metrics["datasteward_inbox_entries"]
    mtimes = set(labels["file"] for labels, _value in metrics["node_textfile_mtime_seconds"])
    assert {os.path.basename(p) for p in mtimes} == {"datasteward_filesystems.prom", "datasteward_inbox.prom"}


def test_node_exporter_flags_a_file_it_cannot_parse(tmp_path, node_exporter):
    """The check above means something: a broken textfile does raise the error."""
    directory, scrape = node_exporter
    (directory / "broken.prom").write_text("this is not { the text format\n")
    assert exported(scrape())["node_textfile_scrape_error"] == [({}, 1.0)]
