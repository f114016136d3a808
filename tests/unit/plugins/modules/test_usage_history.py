# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""usage_history, usage_history_info and usage_report main(): check, apply,
re-apply, check; option errors; queries and views through the modules."""

from __future__ import annotations

import functools
import os

import pytest

from ansible_collections.datasteward.storage.plugins.modules import usage_history, usage_history_info, usage_report
from ansible_collections.datasteward.storage.tests.unit.utils import history_data as gen


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "h.sqlite")


def records(days=10, hosts=2):
    return [{"host": h, "source": s, "time": ts, "result": r} for h, s, ts, r in gen.fleet_records(hosts=hosts, days=days, users=3)]


def test_record_check_apply_reapply_check(run_module, db):
    run = functools.partial(run_module, usage_history)
    args = {"database": db, "records": records()}
    planned = run(args, check_mode=True)
    assert planned["changed"] and planned["added_count"] == len(args["records"]) and not os.path.exists(db)
    done = run(args)
    assert done["changed"] and done["added_count"] == planned["added_count"] and done["schema_created"]
    again = run(args)
    assert not again["changed"] and again["added_count"] == 0
    assert not run(args, check_mode=True)["changed"]


def test_skipped_results_listed_not_recorded(run_module, db):
    res = run_module(usage_history, {"database": db, "records": [{"host": "a", "source": "disk_usage", "result": {"skipped": True}}]})
    assert res["not_recorded"] == [{"host": "a", "source": "disk_usage"}] and not res["changed"]


def test_bad_options_fail_with_names(run_module, db):
    res = run_module(usage_history, {"database": db, "keep_daily_days": 0}, failed=True)
    assert "keep_daily_days" in res["msg"]
    res = run_module(usage_history, {"database": db, "records": [{"host": "", "source": "disk_usage", "result": {}}]}, failed=True)
    assert "host must be" in res["msg"]
    one = [{"host": "a", "source": "disk_usage", "result": gen.disk_result(0)}]
    # a parent that is a regular file (a NUL byte would be refused by ansible-core 2.20+ before the module runs)
    res = run_module(usage_history, {"database": "/etc/hostname/history.sqlite", "records": one}, failed=True)
    assert "database" in res["msg"]


def test_prune_of_an_absent_history_creates_nothing(run_module, db):
    res = run_module(usage_history, {"database": db, "prune": True})
    assert not res["changed"] and not os.path.exists(db)


def test_prune_reports_and_is_idempotent(run_module, db):
    run_module(usage_history, {"database": db, "records": records(days=30, hosts=1)})
    now = gen.T0 + 29 * gen.DAY
    args = {"database": db, "prune": True, "keep_daily_days": 7, "time": now}
    assert run_module(usage_history, args, check_mode=True)["pruned"]["daily_points"] > 0
    first = run_module(usage_history, args)
    assert first["changed"]
    assert not run_module(usage_history, args)["changed"]


def test_info_queries_and_view(run_module, db):
    run_module(usage_history, {"database": db, "records": records()})
    info = functools.partial(run_module, usage_history_info)
    top = info({"database": db, "query": "top_growers", "days": 7, "limit": 2})
    assert len(top["rows"]) == 2 and not top["changed"] and top["newest"] == gen.T0 + 9 * gen.DAY
    fc = info({"database": db, "query": "forecast", "host": "host00", "name": "/scratch"})["rows"]
    assert fc[0]["rate_bytes_per_day"] == gen.GiB
    runs = info({"database": db, "query": "runs", "source": "buffer_copy", "limit": 1})["rows"]
    assert runs[0]["counters"]["copied_files"] == 19
    assert info({"database": db, "query": "view", "user": "user1000"})["lines"][0] == "User user1000"
    assert info({"database": db, "query": "view", "host": "host01"})["lines"][0] == "Host host01"
    assert info({"database": db, "query": "view", "path": "/scratch"})["lines"][0] == "File system /scratch"
    assert "any of the following are missing: user, host, path" in info({"database": db, "query": "view"}, failed=True)["msg"]
    assert "days must be at least 1" in info({"database": db, "days": 0}, failed=True)["msg"]


def test_info_on_absent_history_answers_nothing(run_module, tmp_path):
    res = run_module(usage_history_info, {"database": str(tmp_path / "none.sqlite"), "query": "growth"})
    assert res["rows"] == [] and res["newest"] is None and not os.path.exists(str(tmp_path / "none.sqlite"))


def test_report_check_apply_reapply_check_and_diff(run_module, db, tmp_path):
    run_module(usage_history, {"database": db, "records": records()})
    dest = str(tmp_path / "report")
    run = functools.partial(run_module, usage_report)
    args = {"database": db, "dest": dest, "_ansible_diff": True}
    planned = run(args, check_mode=True)
    assert planned["changed"] and not os.path.exists(dest) and planned["diff"]["before"] == ""
    done = run(args)
    assert done["changed"] and sorted(os.listdir(dest)) == ["report.html", "report.json", "summary.txt"]
    assert done["summary"] == planned["summary"] and done["attention"]
    assert not run(args)["changed"] and not run(args, check_mode=True)["changed"]
    assert not [n for n in os.listdir(dest) if n.startswith(".")]


def test_report_option_errors(run_module, db, tmp_path):
    afile = tmp_path / "f"
    afile.write_text("x")
    assert "not a directory" in run_module(usage_report, {"database": db, "dest": str(afile)}, failed=True)["msg"]
    res = run_module(usage_report, {"database": db, "dest": str(tmp_path), "warn_percent": 95, "critical_percent": 90}, failed=True)
    assert "warn_percent" in res["msg"]
