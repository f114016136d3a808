# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The usage history at fleet size, on SQLite and on a real PostgreSQL
(started here as in tests/e2e/history):

* record: one scan of 5,000 users on each of 200 hosts (user_usage_info
  results with their largest/oldest lists, one record per host, as the history
  role's record entry point writes them), on a history that already holds the
  scan before (the steady state: every series exists);
* query: the top-growers question over 90 days of such data, kept by the
  default retention policy (a point a day for 35 days, a point a week before
  that): the 10 users that grew most over 7 days, summed over all hosts (the
  report's and view's question), and the same per host and user over the
  whole fleet (1,000,000 series).

The days before the two recorded scans are filled by one INSERT ... SELECT
per table (the same rows the recorder would have written, only faster to
make). There is no reference tool for this job: rows report seconds, and the
target of the issue (SQLite top growers under 1 s) is shown as met or MISSED."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / ".collections"))

from ansible_collections.datasteward.storage.plugins.module_utils._history import queries  # noqa: E402
from ansible_collections.datasteward.storage.plugins.module_utils._history.record import Recorder  # noqa: E402
from ansible_collections.datasteward.storage.plugins.module_utils._history.store import DAY, Store  # noqa: E402
from ansible_collections.datasteward.storage.tests.unit.utils import history_data as gen  # noqa: E402

KEEP_DAILY = 35


def history_days(today, days):
    """The days a history of ``days`` days keeps under the default policy."""
    kept = {}
    for day in range(today - days, today - 1):
        bucket = ("d", day) if day >= today - KEEP_DAILY else ("w", (day + 3) // 7)
        kept[bucket] = max(day, kept.get(bucket, day))
    return sorted(kept.values())


def record_scan(store, hosts, users, day):
    recorder = Recorder(store)
    ts = gen.T0 + day * DAY
    seconds = 0.0
    for h in range(hosts):
        result = gen.usage_result(day, h, users=users, groups=20)
        started = time.perf_counter()
        recorder.record("host%03d" % h, "user_usage_info", ts, result)
        seconds += time.perf_counter() - started
    return seconds


def backfill(store, days):
    """Rows of ``daily`` and ``daily_totals`` for the older ``days``, from each
    series' recorded value less a per-series rate (as if it had grown steadily)."""
    with store.transaction():
        store.execute("CREATE TABLE bench_days (day BIGINT NOT NULL)")
        store.executemany("INSERT INTO bench_days (day) VALUES (?)", [(d,) for d in days])
        store.execute(
            "INSERT INTO daily (day, series_id, ts, used_bytes, avail_bytes, files)"
            " SELECT d.day, s.id, d.day * 86400 + 3600, s.used_bytes - (s.day - d.day) * ((s.id * 7919) % 97) * 1000,"
            " NULL, s.files FROM bench_days d, series s WHERE s.kind IN ('user', 'group', 'dir') AND d.day < s.day - 1"
        )
        store.execute(
            "INSERT INTO daily_totals (day, total_id, ts, used_bytes, files)"
            " SELECT d.day, t.id, d.day * 86400 + 3600, t.used_bytes - (t.day - d.day) * ((t.id * 7919) % 97) * 1000,"
            " t.files FROM bench_days d, totals t WHERE d.day < t.day - 1"
        )
        store.execute("DROP TABLE bench_days")
    store.conn.execute("ANALYZE")


def timed(fn, rounds):
    times = []
    for dummy in range(rounds):
        started = time.perf_counter()
        answer = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), answer


def bench_store(store, label, hosts, users, days, rounds):
    rows = []
    today = days  # the generated days are 0..days; the last two are recorded
    record_scan(store, hosts, users, today - 1)
    record_s = record_scan(store, hosts, users, today)
    rows.append(
        {
            "name": "history record %s: %d hosts x %d users" % (label, hosts, users),
            "ours_s": record_s,
            "reference": "-",
            "target": "-",
            "ok": True,
            "notes": "one user_usage_info scan per host, series existing; %.0f user rows/s" % (hosts * users / record_s),
        }
    )
    kept = history_days(gen.T0 // DAY + today, days)
    started = time.perf_counter()
    backfill(store, kept)
    fill_s = time.perf_counter() - started
    daily_rows = store.query("SELECT count(*) FROM daily")[0][0]
    by_name_s, top = timed(lambda: queries.top_growers(store, "user", days=7, limit=10, by="name"), rounds)
    per_series_s, top_series = timed(lambda: queries.top_growers(store, "user", days=7, limit=10, by="series"), rounds)
    assert len(top) == 10 and len(top_series) == 10
    notes = "90 days kept as %d daily slices (%d rows in daily, filled in %.0f s); median of %d" % (len(kept) + 2, daily_rows, fill_s, rounds)
    rows.append(
        {
            "name": "history top growers %s by user, all hosts" % label,
            "ours_s": by_name_s,
            "reference": "-",
            "target": "< 1 s" if label == "sqlite" else "-",
            "ok": by_name_s < 1.0 or label != "sqlite",
            "notes": notes,
        }
    )
    rows.append(
        {
            "name": "history top growers %s per host and user" % label,
            "ours_s": per_series_s,
            "reference": "-",
            "target": "-",
            "ok": True,
            "notes": "%d series; %s" % (hosts * users, notes),
        }
    )
    return rows


def run(workdir, quick=False):
    hosts, users, days, rounds = (20, 1000, 90, 3) if quick else (200, 5000, 90, 3)
    rows = []
    path = Path(workdir) / "history.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    with Store(str(path)) as store:
        rows += bench_store(store, "sqlite", hosts, users, days, rounds)
    from ansible_collections.datasteward.storage.tests.e2e.history.pgserver import (  # pylint: disable=import-outside-toplevel
        NoServer,
        postgres_server,
    )

    try:
        with postgres_server(settings=("shared_buffers=512MB", "max_wal_size=4GB", "synchronous_commit=off")) as url:
            with Store(url=url) as store:
                rows += bench_store(store, "postgresql", hosts, users, days, rounds)
    except NoServer as exc:
        rows.append({"name": "history postgresql", "ok": False, "notes": "not run: %s" % exc})
    return rows


if __name__ == "__main__":
    import json

    for row in run(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "benchmarks" / "output" / "history", quick="--quick" in sys.argv):
        print(json.dumps(row))
