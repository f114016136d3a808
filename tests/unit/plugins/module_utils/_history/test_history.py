# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The history engine on SQLite: recording, collisions, growth and top
growers against the generated data's known rates, the fill forecast, SMART
trends, retention, migrations and read-only opens. The same queries run on a
real PostgreSQL in tests/e2e/history."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._history import queries, report, view
from ansible_collections.datasteward.storage.plugins.module_utils._history.record import Recorder, RecordError, prune, week_of
from ansible_collections.datasteward.storage.plugins.module_utils._history.store import (
    SCHEMA_VERSION,
    HistoryError,
    Store,
    default_database,
    redact,
)
from ansible_collections.datasteward.storage.tests.unit.utils import history_data as gen

DAYS = 21


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("history") / "history.sqlite")
    with Store(path) as store:
        recorder = Recorder(store)
        for record in gen.fleet_records(hosts=3, days=DAYS, users=6):
            assert recorder.record(*record)
    store = Store(path, readonly=True)
    yield store
    store.close()


def test_schema_created_and_versioned(tmp_path):
    path = str(tmp_path / "sub" / "h.sqlite")
    store = Store(path)
    assert store.created and store.migrated_from == 0
    store.close()
    again = Store(path)
    assert not again.created
    assert again.query("SELECT value FROM history_meta WHERE name = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    again.close()
    assert oct(os.stat(str(tmp_path / "sub")).st_mode & 0o777) == "0o700"


def test_newer_schema_refused(tmp_path):
    path = str(tmp_path / "h.sqlite")
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE history_meta SET value = '99' WHERE name = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(HistoryError, match="schema version 99, newer"):
        Store(path)


def test_readonly_absent_is_empty_and_creates_nothing(tmp_path):
    path = str(tmp_path / "none.sqlite")
    with Store(path, readonly=True) as store:
        assert store.empty
        assert queries.usage(store, "user") == []
        assert queries.top_growers(store) == []
        with pytest.raises(HistoryError, match="read-only"):
            store.execute("DELETE FROM runs")
    assert not os.path.exists(path)


def test_default_database_under_data_dir():
    assert default_database({"XDG_DATA_HOME": "/d"}) == "/d/datasteward/history.sqlite"
    assert default_database({}).endswith("/.local/share/datasteward/history.sqlite")


def test_redact_hides_password():
    assert redact("postgresql://u:secret@h:5/db") == "postgresql://u:***@h:5/db"
    assert redact("postgresql://h/db") == "postgresql://h/db"


def test_same_second_two_hosts_do_not_collide_and_rerecord_is_noop(tmp_path):
    with Store(str(tmp_path / "h.sqlite")) as store:
        recorder = Recorder(store)
        ts = gen.T0
        assert recorder.record("a", "disk_usage", ts, gen.disk_result(0, 0))
        assert recorder.record("b", "disk_usage", ts, gen.disk_result(0, 1))
        assert not recorder.record("a", "disk_usage", ts, gen.disk_result(0, 0))
        rows = queries.usage(store, "fs", key="/scratch")
        assert [(r["host"], r["used_bytes"]) for r in rows] == [("a", 100 * gen.GiB + 1), ("b", 101 * gen.GiB + 1)]
        assert store.query("SELECT count(*) FROM runs") == [(2,)]


@pytest.mark.parametrize(
    "host, source, ts, result, match",
    [
        ("", "disk_usage", 1, {}, "host must be"),
        ("a", "nope", 1, {}, "source must be one of"),
        ("a", "disk_usage", -1, {}, "time must be"),
        ("a", "disk_usage", 1, "x", "result must be"),
        ("a", "disk_usage", 1, {"skipped": True}, "skipped"),
    ],
)
def test_bad_records_refused(tmp_path, host, source, ts, result, match):
    with Store(str(tmp_path / "h.sqlite")) as store:
        with pytest.raises(RecordError, match=match):
            Recorder(store).record(host, source, ts, result)


def test_failed_result_is_a_failed_run(tmp_path):
    with Store(str(tmp_path / "h.sqlite")) as store:
        Recorder(store).record("st", "buffer_copy", gen.T0, {"failed": True, "msg": "registry locked"})
        run = queries.runs(store, "buffer_copy")[0]
        assert run["status"] == "failed" and run["summary"]["msg"] == "registry locked"


def test_growth_per_series_matches_known_rate(fleet):
    for days in (7, 14):
        rows = queries.growth(fleet, "user", days=days, by="series")
        assert len(rows) == 3 * 6
        for row in rows:
            uid, host_index = int(row["key"][4:]), int(row["host"][4:])
            assert row["growth_bytes"] == days * gen.user_growth(uid, host_index)
            assert row["growth_files"] == days
        assert [r["growth_bytes"] for r in rows] == sorted((r["growth_bytes"] for r in rows), reverse=True)


def test_top_growers_by_name_sum_hosts(fleet):
    top = queries.top_growers(fleet, "user", days=7, limit=3, by="name")
    expected = sorted(((sum(7 * gen.user_growth(uid, h) for h in range(3)), "user%d" % uid) for uid in range(1000, 1006)), key=lambda x: (-x[0], x[1]))[:3]
    assert [(r["growth_bytes"], r["key"]) for r in top] == expected
    assert all("host" not in r for r in top)


def test_top_growers_of_one_host(fleet):
    top = queries.top_growers(fleet, "user", days=7, limit=2, host="host01")
    assert {r["host"] for r in top} == {"host01"} and len(top) == 2


def test_growth_until_a_past_day(fleet):
    until = gen.T0 + 10 * gen.DAY
    row = queries.growth(fleet, "user", days=5, until=until, host="host00", key="user1001")[0]
    assert row["growth_bytes"] == 5 * gen.user_growth(1001, 0)
    assert row["used_bytes"] == 2000000 + 10 * gen.user_growth(1001, 0)


def test_series_that_appeared_during_the_period_grows_from_its_first_point(tmp_path):
    with Store(str(tmp_path / "h.sqlite")) as store:
        recorder = Recorder(store)
        recorder.record("a", "user_usage_info", gen.T0 + 5 * gen.DAY, gen.usage_result(5, users=1))
        recorder.record("a", "user_usage_info", gen.T0 + 6 * gen.DAY, gen.usage_result(6, users=1))
        row = queries.growth(store, "user", days=30, by="series")[0]
        assert row["growth_bytes"] == gen.user_growth(1000, 0)


def test_user_gone_from_a_host_leaves_the_totals(tmp_path):
    with Store(str(tmp_path / "h.sqlite")) as store:
        recorder = Recorder(store)
        recorder.record("a", "user_usage_info", gen.T0, gen.usage_result(0, users=2))
        recorder.record("b", "user_usage_info", gen.T0, gen.usage_result(0, users=2))
        recorder.record("a", "user_usage_info", gen.T0 + gen.DAY, gen.usage_result(1, users=1))
        totals = dict(store.query("SELECT key, used_bytes FROM totals WHERE kind = 'user'"))
        assert totals["user1001"] == 2000000 + 0  # only host b's 2 MB are left
        assert totals["user1000"] == 2 * 1000000 + gen.user_growth(1000, 0)


def test_forecast_of_a_known_linear_fill_within_a_day(fleet):
    fc = {f["mount"]: f for f in queries.forecast(fleet, host="host00")}
    scratch = fc["/scratch"]
    # 1 GiB a day on a 1000 GiB file system that holds 120 GiB (+1 byte): 880 days left
    assert scratch["rate_bytes_per_day"] == gen.GiB
    assert abs(scratch["full_in_days"] - 880) < 1
    assert scratch["full_in_days_low"] <= scratch["full_in_days"] <= scratch["full_in_days_high"]
    assert fc["/"]["full_in_days"] is None and fc["/"]["reason"] == "usage is flat or falling"


def test_forecast_needs_min_days(fleet):
    fc = queries.forecast(fleet, host="host00", mount="/scratch", window_days=30, min_days=7, until=gen.T0 + 3 * gen.DAY)[0]
    assert fc["full_in_days"] is None and "fewer than 7 days" in fc["reason"]


def test_fit_fill_range_from_noise():
    points = [(i * gen.DAY, 1000 + 100 * i + (50 if i % 2 else -50)) for i in range(10)]
    fit = queries.fit_fill(points, 3000, 7)
    assert fit["full_in_days_low"] < fit["full_in_days"] < fit["full_in_days_high"]
    assert abs(fit["rate_bytes_per_day"] - 100) < 20


def test_smart_trends(fleet):
    drives = {d["drive"]: d for d in queries.smart_trends(fleet, days=30)}
    sda = drives["WD-1234"]
    assert sda["health"] == "warning" and sda["label"] == "P01"
    realloc = {a["attribute"]: a for a in sda["attributes"]}["Reallocated_Sector_Ct"]
    assert realloc["first"] == 0 and realloc["last"] == 2 * (DAYS - 1) and realloc["change"] == 2 * (DAYS - 1)
    assert {a["attribute"] for a in drives["S64"]["attributes"]} == {"available_spare", "media_errors", "percentage_used"}


def test_runs_counters_and_summary(fleet):
    newest = queries.runs(fleet, "buffer_copy", limit=2)
    assert [r["counters"]["copied_files"] for r in newest] == [10 + DAYS - 1, 10 + DAYS - 2]
    assert newest[0]["status"] == "warning" and newest[1]["status"] == "ok"
    assert "files" not in newest[0]["summary"] and newest[0]["summary"]["disks_used"][0]["label"] == "P01"


def test_query_errors():
    with pytest.raises(queries.QueryError, match="kind must be"):
        queries.usage(None, "nope")


def test_prune_daily_then_weekly(tmp_path):
    with Store(str(tmp_path / "h.sqlite")) as store:
        recorder = Recorder(store)
        for day in range(60):
            for hour in (0, 12):
                recorder.record("a", "disk_usage", gen.T0 + day * gen.DAY + hour * 3600, gen.disk_result(day))
        now = gen.T0 + 59 * gen.DAY
        planned = prune(store, now, keep_daily_days=14, keep_weekly_days=0, check=True)
        assert store.query("SELECT count(*) FROM runs") == [(120,)]
        done = prune(store, now, keep_daily_days=14, keep_weekly_days=0)
        assert done == planned and done["runs"] > 0
        days = [d for (d,) in store.query("SELECT day FROM runs ORDER BY ts")]
        today = now // gen.DAY
        recent = [d for d in days if d >= today - 2]
        assert len(recent) == 6  # every run of the last three days
        daily = [d for d in days if today - 14 <= d < today - 2]
        assert len(daily) == len(set(daily))  # one per day
        weekly = [d for d in days if d < today - 14]
        assert len({week_of(d) for d in weekly}) == len(weekly)  # one per week
        assert prune(store, now, 14, 0) == {"runs": 0, "daily_points": 0}
        # the forecast still works on the thinned history
        assert queries.forecast(store, mount="/scratch")[0]["rate_bytes_per_day"] == gen.GiB
        prune(store, now, 14, 30)
        assert min(d for (d,) in store.query("SELECT day FROM runs")) >= today - 30


def test_report_data_html_and_summary(fleet):
    data = report.build(fleet, days=7, window_days=30)
    texts = report.render_all(data)
    assert report.render_all(report.build(fleet, days=7, window_days=30)) == texts  # same history, same bytes
    assert json.loads(texts["report.json"])["top_users"][0]["key"] == data["top_users"][0]["key"]
    assert any("WD-1234" in line and "warning" in line for line in data["attention"])
    assert any("ingest run" in line and "failed_files 1" in line for line in data["attention"])
    page = texts["report.html"]
    assert page.count("<svg") >= 3 and "<table" in page
    assert "http://" not in page.replace("http://www.w3.org/", "") and "https://" not in page
    assert "src=" not in page and "<link" not in page
    assert "Needs attention:" in texts["summary.txt"]
    assert [(d["label"], d["used_percent"], d["full"]) for d in data["disk_series"]] == [("P01", 3, False), ("B01", None, True)]
    assert 'id="disk_series"' in page and "Disk series:" in texts["summary.txt"]


def test_report_of_empty_history(tmp_path):
    with Store(str(tmp_path / "none.sqlite"), readonly=True) as store:
        data = report.build(store)
        assert data["attention"] == [] and "history is empty" in report.summary_text(data)
        assert "<html" in report.render_html(data)


def test_views(fleet):
    lines = view.user_view(fleet, "user1001")
    assert lines[0] == "User user1001" and any(line.startswith("host01") for line in lines)
    assert any("/scratch/user1001/old.tar" in line for line in lines)
    host = view.host_view(fleet, "host00")
    assert any(line.startswith("/scratch") and "+7.0 GiB" in line for line in host)
    path = view.path_view(fleet, "/scratch/")
    assert path[0] == "File system /scratch" and any("Directory /scratch" == line for line in path)
    assert view.user_view(fleet, "nobody") == ["No history for user nobody."]
