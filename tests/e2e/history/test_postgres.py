# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The history on a real PostgreSQL server gives the same answers as on
SQLite for the same generated multi-host, multi-week data; schema creation
and versioning, collisions, the forecast, retention and the modules with a
URL."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._history import queries, report, view
from ansible_collections.datasteward.storage.plugins.module_utils._history.record import Recorder, prune
from ansible_collections.datasteward.storage.plugins.module_utils._history.store import SCHEMA_VERSION, HistoryError, Store
from ansible_collections.datasteward.storage.tests.unit.utils import history_data as gen
from ansible_collections.datasteward.storage.tests.unit.utils.module_runner import run_module_process

from .conftest import fill

QUESTIONS = [
    ("usage users", lambda s: queries.usage(s, "user")),
    ("usage fs of a host", lambda s: queries.usage(s, "fs", host="host01")),
    ("usage dirs", lambda s: queries.usage(s, "dir")),
    ("growth 7 per series", lambda s: queries.growth(s, "user", days=7, by="series")),
    ("growth 14 until", lambda s: queries.growth(s, "user", days=14, until=gen.T0 + 15 * gen.DAY, by="series")),
    ("growth groups by name", lambda s: queries.growth(s, "group", days=7, by="name")),
    ("growth fs", lambda s: queries.growth(s, "fs", days=10)),
    ("top growers by name", lambda s: queries.top_growers(s, "user", days=7, limit=4)),
    ("top growers of a host", lambda s: queries.top_growers(s, "user", days=7, limit=4, host="host02")),
    ("top growers per series", lambda s: queries.top_growers(s, "user", days=30, limit=5, by="series")),
    ("forecast", queries.forecast),
    ("forecast window", lambda s: queries.forecast(s, window_days=10, min_days=7, until=gen.T0 + 12 * gen.DAY)),
    ("smart trends", lambda s: queries.smart_trends(s, days=30)),
    ("runs", lambda s: queries.runs(s, "buffer_copy", limit=50)),
    ("hosts", queries.hosts),
    ("view user", lambda s: view.user_view(s, "user1003")),
    ("view host", lambda s: view.host_view(s, "host00")),
    ("view path", lambda s: view.path_view(s, "/scratch")),
    ("report", report.build),
]


@pytest.mark.parametrize("name, ask", QUESTIONS, ids=[q[0] for q in QUESTIONS])
def test_same_answers_on_sqlite_and_postgresql(both, name, ask):
    lite, pg = both
    answer = ask(lite)
    assert answer, "%s: the question has an answer" % name
    assert json.dumps(ask(pg), sort_keys=True) == json.dumps(answer, sort_keys=True)


def test_report_files_identical(both):
    lite, pg = both
    assert report.render_all(report.build(pg)) == report.render_all(report.build(lite))


def test_schema_versioned_and_readonly_empty(pg_schema):
    with Store(url=pg_schema, readonly=True) as empty:
        assert empty.empty and queries.usage(empty, "user") == [] and queries.newest_time(empty) is None
    with Store(url=pg_schema) as store:
        assert store.created
    with Store(url=pg_schema) as store:
        assert not store.created
        assert store.query("SELECT value FROM history_meta WHERE name = 'schema_version'") == [(str(SCHEMA_VERSION),)]
        store.execute("UPDATE history_meta SET value = '99' WHERE name = 'schema_version'")
    with pytest.raises(HistoryError, match="newer than"):
        Store(url=pg_schema)


def test_two_hosts_same_second_and_forecast(pg_schema):
    with Store(url=pg_schema) as store:
        recorder = Recorder(store)
        for day in range(10):
            for host in ("a", "b"):
                assert recorder.record(host, "disk_usage", gen.T0 + day * gen.DAY, gen.disk_result(day, 0 if host == "a" else 1))
        assert not recorder.record("a", "disk_usage", gen.T0, gen.disk_result(0))
        assert store.query("SELECT count(*) FROM runs") == [(20,)]
        fc = queries.forecast(store, host="b", mount="/scratch")[0]
        # 1 GiB a day, 110 GiB (+1 byte) used of 1000 GiB at day 9: 890 days left
        assert abs(fc["full_in_days"] - 890) < 1


def test_prune_same_on_both(pg_schema, tmp_path):
    records = [("a", "disk_usage", gen.T0 + d * gen.DAY + h * 3600, gen.disk_result(d)) for d in range(40) for h in (0, 6)]
    now = gen.T0 + 39 * gen.DAY
    with Store(url=pg_schema) as pg, Store(str(tmp_path / "h.sqlite")) as lite:
        fill(pg, records)
        fill(lite, records)
        assert prune(pg, now, 10, 0) == prune(lite, now, 10, 0)
        ask = "SELECT ts FROM runs ORDER BY ts"
        assert pg.query(ask) == lite.query(ask)
        assert queries.forecast(pg) == queries.forecast(lite)


def test_bad_url_names_it_without_password():
    with pytest.raises(HistoryError) as caught:
        Store(url="postgresql://u:secret@127.0.0.1:1/none")
    assert "secret" not in str(caught.value) and "postgresql://u:***@127.0.0.1:1/none" in str(caught.value)


def test_modules_with_a_url(pg_schema, tmp_path):
    recs = [{"host": h, "source": s, "time": ts, "result": r} for h, s, ts, r in gen.fleet_records(hosts=2, days=8, users=2)]
    done = run_module_process(tmp_path, "usage_history", {"url": pg_schema, "records": recs})
    assert done["changed"] and done["added_count"] == len(recs)
    again = run_module_process(tmp_path, "usage_history", {"url": pg_schema, "records": recs})
    assert not again["changed"]
    top = run_module_process(tmp_path, "usage_history_info", {"url": pg_schema, "query": "top_growers"})
    assert len(top["rows"]) == 2
    dest = str(tmp_path / "report")
    rep = run_module_process(tmp_path, "usage_report", {"url": pg_schema, "dest": dest})
    assert rep["changed"] and os.path.exists(os.path.join(dest, "report.html"))
