# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Recording module results into the history, and pruning it.

A record is ``(host, source, time, result)``: ``result`` is what a module
returned (``disk_usage``, ``user_usage_info``, ``smart_info``,
``buffer_copy``, ``inbox`` or ``old_files``). One transaction per record: its
run row, its points, the daily rollup and the per-name totals, or nothing.
A record already in the database (same host, source and time) is left alone,
so recording the same result twice changes nothing.
"""

from __future__ import annotations

import json
import math

from ansible_collections.datasteward.storage.plugins.module_utils._history.store import DAY, HistoryError

SOURCES = ("disk_usage", "user_usage_info", "smart_info", "buffer_copy", "inbox", "old_files")
# Keys of job results that are kept only as counters or not at all.
_BULKY = ("files", "invocation", "changed", "diff", "warnings", "deprecations", "stdout_lines", "stderr_lines")
SUMMARY_LIST_LIMIT = 20
DISK_LIST_LIMIT = 200  # copy_registry_info's disks, added to buffer_copy's result by the data_manager role
KEY_ATTRIBUTES = (
    "Reallocated_Sector_Ct",
    "Current_Pending_Sector",
    "Offline_Uncorrectable",
    "Reported_Uncorrect",
    "Reallocated_Event_Count",
    "UDMA_CRC_Error_Count",
    "Wear_Leveling_Count",
    "Media_Wearout_Indicator",
    "Percent_Lifetime_Remain",
    "Temperature_Celsius",
)
NVME_KEYS = ("percentage_used", "media_errors", "available_spare", "critical_warning", "unsafe_shutdowns", "error_log_entries")
SCSI_KEYS = ("grown_defects", "non_medium_errors")


# The staging table a record's usage rows are loaded into (once per record).
STAGE_COLUMNS = ("kind", "key", "label", "used", "avail", "files", "old_bytes", "old_files", "status", "detail")


class RecordError(HistoryError):
    """A record is not usable (names the host, source and cause)."""


# -- extracting rows from a module result ------------------------------------
def user_key(entry):
    """A user's or group's key: its name, or ``#<id>`` when it has none."""
    ident = entry.get("uid", entry.get("gid"))
    return entry.get("name") or "#%s" % ident


def usage_rows(source, result):
    """``[(kind, key, label, used, avail, files, old_bytes, old_files, status, detail)]``."""
    if source == "disk_usage":
        rows = _fs_rows(result)
    elif source == "user_usage_info":
        rows = _owner_rows(result) + _dir_rows(result)
    else:
        rows = []
    return [row for row in rows if row[1] and row[3] is not None]


def _fs_rows(result):
    """One row per mounted file system of a ``disk_usage`` result (each mount once)."""
    rows, seen = [], set()
    for fs in result.get("filesystems") or []:
        mount = fs.get("mount") or fs.get("path")
        if not mount or mount in seen or fs.get("status") == "error" or fs.get("used_bytes") is None:
            continue
        seen.add(mount)
        detail = {key: fs.get(key) for key in ("device", "fstype", "total_bytes", "inodes_total", "used_percent")}
        used, avail, inodes = _int(fs.get("used_bytes")), _int(fs.get("available_bytes")), _int(fs.get("inodes_used"))
        rows.append(("fs", mount, fs.get("device"), used, avail, inodes, None, None, fs.get("status"), detail))
    return rows


def _owner_rows(result):
    """One row per user and per group of a ``user_usage_info`` result."""
    rows = []
    for kind, entries in (("user", result.get("users")), ("group", result.get("groups"))):
        for entry in entries or []:
            ident = entry.get("uid", entry.get("gid"))
            detail = {"largest": entry.get("largest") or [], "oldest": entry.get("oldest") or []} if kind == "user" else None
            label = None if ident is None else str(ident)
            rows.append((kind, user_key(entry), label) + _counts(entry) + (None, detail))
    return rows


def _dir_rows(result):
    """One row per directory listed: its own du-style total, never a share of a user's files."""
    return [("dir", entry.get("path"), str(entry.get("depth"))) + _counts(entry) + (None, None) for entry in result.get("directories") or []]


def _counts(entry):
    """``(used, avail, files, old_bytes, old_files)`` of a user, group or directory entry."""
    return (_int(entry.get("allocated_bytes")), None, _int(entry.get("files")), _int(entry.get("old_allocated_bytes")), _int(entry.get("old_files")))


def drive_rows(result):
    """``[(key, name, model, label, health, reasons, temperature, hours, {attr: raw})]``."""
    rows = []
    for dev in result.get("devices") or []:
        key = dev.get("serial") or dev.get("wwn") or dev.get("name")
        if not key:
            continue
        attrs = {}
        for attr in dev.get("attributes") or []:
            if attr.get("name") in KEY_ATTRIBUTES and _int(attr.get("raw_int")) is not None:
                attrs[attr["name"]] = _int(attr["raw_int"])
        for section, keys in (("nvme", NVME_KEYS), ("scsi", SCSI_KEYS)):
            for name in keys:
                value = _int((dev.get(section) or {}).get(name))
                if value is not None:
                    attrs[name] = value
        rows.append(
            (
                key,
                dev.get("name"),
                dev.get("model"),
                dev.get("label"),
                dev.get("health") or "unknown",
                list(dev.get("reasons") or []),
                _int(dev.get("temperature_c")),
                _int(dev.get("power_on_hours")),
                attrs,
            )
        )
    return rows


def counter_rows(result):
    """Every top-level number of a job result (booleans as 0/1)."""
    rows = []
    for name, value in sorted(result.items()):
        if name in _BULKY:
            continue
        if isinstance(value, bool):
            rows.append((name, float(value)))
        elif isinstance(value, (int, float)) and math.isfinite(value):
            rows.append((name, float(value)))
    return rows


def summary_of(source, result):
    """What the report shows of a run beyond its numbers: short lists and texts."""
    summary = {}
    if result.get("failed"):
        summary["msg"] = str(result.get("msg", ""))[:2000]
    if source in ("disk_usage", "user_usage_info", "smart_info"):
        for key in ("alerts", "missing", "unmapped", "errors"):
            if result.get(key):
                summary[key] = _short(result[key])
        if source == "user_usage_info" and isinstance(result.get("totals"), dict):
            summary["totals"] = {k: v for k, v in result["totals"].items() if isinstance(v, (int, float))}
        return summary
    for key, value in result.items():
        if key in _BULKY or key == "msg":
            continue
        if isinstance(value, (list, dict, str)) and value not in ("", [], {}):
            summary[key] = _short(value, DISK_LIST_LIMIT if key == "disks" else SUMMARY_LIST_LIMIT)
    return summary


def run_status(source, result):
    if result.get("failed"):
        return "failed"
    status = result.get("status")
    if isinstance(status, str) and status:
        return status
    if source in ("buffer_copy", "inbox", "old_files"):
        bad = sum(_int(result.get(k)) or 0 for k in ("failed_files", "conflict_files", "refused_files", "errors_count"))
        return "warning" if bad else "ok"
    return "ok"


def _short(value, limit=SUMMARY_LIST_LIMIT):
    if isinstance(value, list):
        return value[:limit]
    if isinstance(value, str):
        return value[:2000]
    return value


def _int(value):
    if value is None or isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number


# -- writing -------------------------------------------------------------------
class Recorder:
    """Writes records into an open :class:`Store`."""

    def __init__(self, store):
        self.store = store

    def exists(self, host, source, ts):
        return bool(self.store.query("SELECT id FROM runs WHERE host = ? AND source = ? AND ts = ?", (host, source, ts)))

    def record(self, host, source, ts, result):
        """Record one result; returns False when it was already recorded."""
        check_record(host, source, ts, result)
        if self.exists(host, source, ts):
            return False
        day = ts // DAY
        summary = json.dumps(summary_of(source, result), sort_keys=True, default=str)
        with self.store.transaction():
            self.store.execute(
                "INSERT INTO runs (host, source, ts, day, status, summary) VALUES (?, ?, ?, ?, ?, ?)",
                (host, source, ts, day, run_status(source, result), summary),
            )
            run_id = self.store.query("SELECT id FROM runs WHERE host = ? AND source = ? AND ts = ?", (host, source, ts))[0][0]
            if not result.get("failed"):
                if source in ("disk_usage", "user_usage_info"):
                    self._usage(host, run_id, ts, day, usage_rows(source, result), totals=source == "user_usage_info")
                elif source == "smart_info":
                    self._drives(host, run_id, ts, day, drive_rows(result))
                else:
                    self.store.executemany(
                        "INSERT INTO counters (run_id, name, value) VALUES (?, ?, ?)", [(run_id, name, value) for name, value in counter_rows(result)]
                    )
        return True

    # usage: series rows, points, daily rollup, totals -- set-based from a
    # staging table (COPY on PostgreSQL), the same statements on both.
    def _usage(self, host, run_id, ts, day, rows, totals):
        store = self.store
        store.stage(
            "stage_usage",
            STAGE_COLUMNS,
            [
                (
                    kind,
                    key,
                    label,
                    used,
                    avail,
                    files,
                    old_bytes,
                    old_files,
                    status,
                    None if detail is None else json.dumps(detail, separators=(",", ":"), default=str),
                )
                for kind, key, label, used, avail, files, old_bytes, old_files, status, detail in rows
            ],
        )
        store.execute("INSERT INTO series (host, kind, key) SELECT ?, kind, key FROM stage_usage WHERE true ON CONFLICT (host, kind, key) DO NOTHING", (host,))
        store.execute("UPDATE stage_usage SET sid = x.id FROM series x WHERE x.host = ? AND x.kind = stage_usage.kind AND x.key = stage_usage.key", (host,))
        # every value of file systems and directories; users and groups keep their daily value
        store.execute(
            "INSERT INTO points (run_id, series_id, ts, day, used_bytes, avail_bytes, files, old_bytes, old_files)"
            " SELECT ?, sid, ?, ?, used, avail, files, old_bytes, old_files FROM stage_usage WHERE kind IN ('fs', 'dir')"
            " ON CONFLICT (series_id, ts) DO NOTHING",
            (run_id, ts, day),
        )
        store.execute(
            "INSERT INTO daily (day, series_id, ts, used_bytes, avail_bytes, files)"
            " SELECT ?, sid, ?, used, avail, files FROM stage_usage WHERE true"
            " ON CONFLICT (day, series_id) DO UPDATE SET ts = excluded.ts, used_bytes = excluded.used_bytes,"
            " avail_bytes = excluded.avail_bytes, files = excluded.files WHERE excluded.ts >= daily.ts",
            (day, ts),
        )
        if totals:
            self._totals(host, ts, day)
        store.execute(
            "UPDATE series SET label = s.label, ts = ?, day = ?, used_bytes = s.used, avail_bytes = s.avail,"
            " files = s.files, old_bytes = s.old_bytes, old_files = s.old_files, status = s.status, detail = s.detail"
            " FROM stage_usage s WHERE series.id = s.sid AND (series.ts IS NULL OR series.ts <= ?)",
            (ts, day, ts),
        )

    def _totals(self, host, ts, day):
        """Per name, add this host's change to the fleet total (a name the
        host no longer reports drops to 0 on it), then store the day's total.
        Runs before the series take their new values; a record older than a
        series' newest leaves that series' totals alone."""
        store = self.store
        upsert = (
            " ON CONFLICT (kind, key) DO UPDATE SET used_bytes = totals.used_bytes + excluded.used_bytes,"
            " files = totals.files + excluded.files, ts = excluded.ts, day = excluded.day"
        )
        store.execute(
            "INSERT INTO totals (kind, key, ts, day, used_bytes, files)"
            " SELECT s.kind, s.key, ?, ?, s.used - COALESCE(x.used_bytes, 0), COALESCE(s.files, 0) - COALESCE(x.files, 0)"
            " FROM stage_usage s JOIN series x ON x.id = s.sid WHERE s.kind IN ('user', 'group')"
            " AND (x.ts IS NULL OR x.ts <= ?)" + upsert,
            (ts, day, ts),
        )
        gone = (
            " FROM series x WHERE x.host = ? AND x.kind IN ('user', 'group') AND x.ts <= ?"
            " AND (x.used_bytes <> 0 OR x.files <> 0)"
            " AND NOT EXISTS (SELECT 1 FROM stage_usage s WHERE s.kind = x.kind AND s.key = x.key)"
        )
        store.execute(
            "INSERT INTO totals (kind, key, ts, day, used_bytes, files) SELECT x.kind, x.key, ?, ?, -x.used_bytes, -COALESCE(x.files, 0)" + gone + upsert,
            (ts, day, host, ts),
        )
        store.execute("UPDATE series SET used_bytes = 0, files = 0, ts = ?, day = ? WHERE id IN (SELECT x.id" + gone + ")", (ts, day, host, ts))
        store.execute(
            "INSERT INTO daily_totals (day, total_id, ts, used_bytes, files)"
            " SELECT ?, id, ts, used_bytes, files FROM totals WHERE ts = ?"
            " ON CONFLICT (day, total_id) DO UPDATE SET ts = excluded.ts, used_bytes = excluded.used_bytes,"
            " files = excluded.files",
            (day, ts),
        )

    # drives
    def _drives(self, host, run_id, ts, day, rows):
        known = {key: (did, last) for did, key, last in self.store.query("SELECT id, key, ts FROM drives WHERE host = ?", (host,))}
        missing = [(host, row[0]) for row in rows if row[0] not in known]
        if missing:
            self.store.executemany("INSERT INTO drives (host, key) VALUES (?, ?) ON CONFLICT (host, key) DO NOTHING", missing)
            known = {key: (did, last) for did, key, last in self.store.query("SELECT id, key, ts FROM drives WHERE host = ?", (host,))}
        points, attrs = [], []
        for key, name, model, label, health, reasons, temp, hours, values in rows:
            did, last = known[key]
            reasons_json = json.dumps(reasons)
            points.append((run_id, did, ts, day, health, reasons_json, temp, hours))
            attrs.extend((run_id, did, ts, day, attr, raw) for attr, raw in sorted(values.items()))
            if last is None or ts >= last:
                self.store.execute(
                    "UPDATE drives SET name = ?, model = ?, label = ?, ts = ?, health = ?, reasons = ?, temperature_c = ?, power_on_hours = ? WHERE id = ?",
                    (name, model, label, ts, health, reasons_json, temp, hours, did),
                )
        self.store.executemany(
            "INSERT INTO drive_points (run_id, drive_id, ts, day, health, reasons, temperature_c, power_on_hours)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (drive_id, ts) DO NOTHING",
            points,
        )
        self.store.executemany(
            "INSERT INTO drive_attrs (run_id, drive_id, ts, day, attr, raw) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (drive_id, attr, ts) DO NOTHING", attrs
        )


def check_record(host, source, ts, result):
    where = "record for host %r, source %r" % (host, source)
    if not isinstance(host, str) or not host:
        raise RecordError("%s: host must be a non-empty string" % where)
    if source not in SOURCES:
        raise RecordError("%s: source must be one of %s" % (where, ", ".join(SOURCES)))
    if not isinstance(ts, int) or isinstance(ts, bool) or ts < 0:
        raise RecordError("%s: time must be a non-negative number of seconds since the epoch, got %r" % (where, ts))
    if not isinstance(result, dict):
        raise RecordError("%s: result must be a registered module result (a dict), got %s" % (where, type(result).__name__))
    if result.get("skipped"):
        raise RecordError("%s: the result is of a skipped task; record only results of tasks that ran" % where)


# -- pruning -------------------------------------------------------------------
def week_of(day):
    """ISO-like week number of an epoch day (weeks start on Monday)."""
    return (day + 3) // 7


def prune_plan(store, now, keep_daily_days, keep_weekly_days):
    """Run ids to delete. Every run of today and the two days before is
    kept; older runs keep the last run of their (host, source, day), those
    older than ``keep_daily_days`` the last of their (host, source, week),
    and with ``keep_weekly_days`` > 0 runs older than that go entirely."""
    today = now // DAY
    daily_cut = today - keep_daily_days
    weekly_cut = today - keep_weekly_days if keep_weekly_days else None
    rows = store.query("SELECT id, host, source, ts, day FROM runs WHERE day < ? ORDER BY ts", (today - 2,))
    keep = {}
    drop = []
    for run_id, host, source, ts, day in rows:
        if weekly_cut is not None and day < weekly_cut:
            drop.append(run_id)
            continue
        bucket = (host, source, "w", week_of(day)) if day < daily_cut else (host, source, "d", day)
        if bucket in keep:
            drop.append(keep[bucket])
        keep[bucket] = run_id
    return sorted(drop), daily_cut, weekly_cut


def prune(store, now, keep_daily_days, keep_weekly_days, check=False):
    """Delete what :func:`prune_plan` selects, and the daily rollup rows
    outside the policy. Returns counts."""
    drop, daily_cut, weekly_cut = prune_plan(store, now, keep_daily_days, keep_weekly_days)
    daily_rows = _daily_to_drop(store, "daily", "series_id", daily_cut, weekly_cut)
    total_rows = _daily_to_drop(store, "daily_totals", "total_id", daily_cut, weekly_cut)
    counts = {"runs": len(drop), "daily_points": len(daily_rows) + len(total_rows)}
    if check or not (drop or daily_rows or total_rows):
        return counts
    with store.transaction():
        for start in range(0, len(drop), 500):
            chunk = drop[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            for table in ("points", "drive_points", "drive_attrs", "counters", "runs"):
                column = "id" if table == "runs" else "run_id"
                store.execute("DELETE FROM %s WHERE %s IN (%s)" % (table, column, marks), chunk)
        store.executemany("DELETE FROM daily WHERE day = ? AND series_id = ?", daily_rows)
        store.executemany("DELETE FROM daily_totals WHERE day = ? AND total_id = ?", total_rows)
    return counts


def _daily_to_drop(store, table, column, daily_cut, weekly_cut):
    """(day, id) rows of a rollup table older than the daily window that are
    not the last of their week, and all rows older than the weekly window."""
    rows = store.query("SELECT day, %s FROM %s WHERE day < ? ORDER BY %s, day" % (column, table, column), (daily_cut,))
    drop, last = [], {}
    for day, ident in rows:
        if weekly_cut is not None and day < weekly_cut:
            drop.append((day, ident))
            continue
        bucket = (ident, week_of(day))
        if bucket in last:
            drop.append((last[bucket], ident))
        last[bucket] = day
    return drop
