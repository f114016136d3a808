# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Our series from module results, written and read back by prometheus_client.
SMART series from recorded drives: tests/unit/plugins/modules/test_prometheus_textfile.py."""

from __future__ import annotations

import os
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.datasteward.storage.plugins.module_utils._fs import mounts as _filesystems
from ansible_collections.datasteward.storage.plugins.module_utils._metrics import series
from ansible_collections.datasteward.storage.plugins.module_utils._metrics import textfile as tf

DOCS = os.path.join(os.path.dirname(__file__), *([os.pardir] * 5), "docs", "metrics.md")


def written(families, old=None):
    text = tf.render(tf.normalize_all(families), old)
    return text, dict((f.name, f) for f in text_string_to_metric_families(text))


def samples(found, name):
    """Samples of a family (prometheus_client names a counter family without _total)."""
    family = found[name[: -len("_total")] if name.endswith("_total") else name]
    return [(s.labels, s.value) for s in family.samples if s.name == name]


def test_file_systems_with_node_exporter_labels_and_status():
    result = _filesystems.disk_usage()
    critical = dict(result["filesystems"][0], mount="/full", status="critical")
    hung = dict(
        result["filesystems"][0],
        mount="/hung",
        status="error",
        total_bytes=None,
        used_bytes=None,
        available_bytes=None,
        reserved_bytes=None,
        inodes_total=None,
        inodes_available=None,
        inodes_used=None,
    )
    result["filesystems"] += [critical, hung, dict(critical, path="/full/again")]
    _text, found = written(series.disk_usage_families(result))
    sizes = dict((labels["mountpoint"], value) for labels, value in samples(found, "datasteward_filesystem_size_bytes"))
    st = os.statvfs("/")
    assert sizes["/"] == st.f_blocks * st.f_frsize
    assert "/hung" not in sizes
    assert set(samples(found, "datasteward_filesystem_size_bytes")[0][0]) == {"device", "fstype", "mountpoint"}
    status = dict(((labels["mountpoint"], labels["status"]), value) for labels, value in samples(found, "datasteward_filesystem_status"))
    assert status[("/full", "critical")] == 1 and status[("/full", "ok")] == 0
    assert status[("/hung", "error")] == 1
    assert sum(v for (mount, _s), v in status.items() if mount == "/") == 1
    root = [fs for fs in result["filesystems"] if fs["mount"] == "/"][0]
    ratio = dict((labels["mountpoint"], v) for labels, v in samples(found, "datasteward_filesystem_used_ratio"))["/"]
    assert ratio == pytest.approx(root["used_bytes"] / (root["used_bytes"] + root["available_bytes"]))


def user(uid, name, allocated):
    return {
        "uid": uid,
        "name": name,
        "files": 2,
        "dirs": 1,
        "apparent_bytes": allocated - 1,
        "allocated_bytes": allocated,
        "old_files": 1,
        "old_allocated_bytes": 10,
    }


def test_top_users_by_allocated_bytes():
    result = {
        "users": [user(1000, "alice", 50), user(1001, "bob", 500), user(4242, None, 70), user(0, "root", 5)],
        "totals": {"entries": 123},
        "errors": [{"path": "/x", "error": "EACCES"}],
    }
    _text, found = written(series.user_usage_families(result, top=2, now=1000.5))
    assert samples(found, "datasteward_user_allocated_bytes") == [({"user": "bob", "uid": "1001"}, 500), ({"user": "4242", "uid": "4242"}, 70)]
    assert samples(found, "datasteward_usage_scan_users") == [({}, 4)]
    assert samples(found, "datasteward_usage_scan_entries") == [({}, 123)]
    assert samples(found, "datasteward_usage_scan_errors") == [({}, 1)]
    assert samples(found, "datasteward_usage_scan_timestamp_seconds") == [({}, 1000.5)]


def ingest(copied=2, failed=0):
    return {
        "copied_files": copied,
        "copied_bytes": copied * 100,
        "skipped_files": 1,
        "skipped_bytes": 100,
        "conflict_files": 0,
        "conflict_bytes": 0,
        "failed_files": failed,
        "failed_bytes": failed * 100,
        "removed_files": 0,
        "removed_bytes": 0,
        "deferred_files": 0,
        "deferred_bytes": 0,
        "unsettled_files": 1,
        "copy_seconds": 1.5,
        "newest_file_age_seconds": 30,
        "disks_full": [],
        "disks_unusable": [{"label": "P02"}],
    }


def test_ingest_counters_add_up_over_runs_and_last_success_stays():
    first, _found = written(series.ingest_families(ingest(), now=100.0))
    second, _found = written(series.ingest_families(ingest(copied=3, failed=1), now=200.0), tf.parse(first))
    _third, found = written(series.ingest_families(ingest(copied=1), now=300.0), tf.parse(second))
    files = dict((labels["outcome"], value) for labels, value in samples(found, "datasteward_ingest_files_total"))
    assert files["copied"] == 6 and files["failed"] == 1 and files["unsettled"] == 3
    runs = dict((labels["result"], value) for labels, value in samples(found, "datasteward_ingest_runs_total"))
    assert runs == {"success": 2, "failure": 1}
    assert samples(found, "datasteward_ingest_copy_seconds_total") == [({}, 4.5)]
    assert samples(found, "datasteward_ingest_last_run_timestamp_seconds") == [({}, 300.0)]
    assert samples(found, "datasteward_ingest_last_success_timestamp_seconds") == [({}, 300.0)]
    assert samples(found, "datasteward_ingest_disks_unusable") == [({}, 1)]
    _text, failed = written(series.ingest_families(ingest(failed=2), now=400.0), tf.parse(second))
    assert samples(failed, "datasteward_ingest_last_success_timestamp_seconds") == [({}, 100.0)]


def test_every_series_is_in_the_docs():
    with open(DOCS, encoding="utf-8") as handle:
        documented = set(re.findall(r"`(datasteward_[a-z0-9_]+)`", handle.read()))
    result = {"filesystems": [], "users": [], "devices": []}
    names = set()
    for source in series.SOURCES:
        names.update(f["name"] for f in series.families_of(source, result))
    assert names - documented == set()
