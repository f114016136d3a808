# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Questions asked of the usage history. The same parameterised SQL runs on
SQLite and PostgreSQL and the answers are plain dicts with the same values on
both (integers for bytes and counts, floats rounded in Python).

Growth over a period compares a series' value at the end (its newest value,
or its value as of ``until``) with its value as of the start: the last point
on or before the start day, else the first point inside the period (a series
that appeared during the period grew from its first value)."""

from __future__ import annotations

import json
import math

from ansible_collections.datasteward.storage.plugins.module_utils._history.store import DAY

KINDS = ("user", "group", "fs", "dir")


class QueryError(ValueError):
    """A query's options do not fit together (names the option)."""


def _baseline(table, column, start_param="?"):
    """SQL for a series' value as of the start day (see module docstring)."""
    return (
        "COALESCE(b.used_bytes, (SELECT d.used_bytes FROM {t} d WHERE d.{c} = x.id AND d.day <= {s} ORDER BY d.day DESC LIMIT 1),"
        " (SELECT d.used_bytes FROM {t} d WHERE d.{c} = x.id AND d.day >= {s} ORDER BY d.day LIMIT 1))"
    ).format(t=table, c=column, s=start_param)


def _files_baseline(table, column):
    return (
        "COALESCE(b.files, (SELECT d.files FROM {t} d WHERE d.{c} = x.id AND d.day <= ? ORDER BY d.day DESC LIMIT 1),"
        " (SELECT d.files FROM {t} d WHERE d.{c} = x.id AND d.day >= ? ORDER BY d.day LIMIT 1))"
    ).format(t=table, c=column)


def newest_time(store):
    rows = store.query("SELECT max(ts) FROM runs")
    return rows[0][0] if rows and rows[0][0] is not None else None


def _window(store, days, until):
    end = until if until is not None else (newest_time(store) or 0)
    if days is None or days <= 0:
        raise QueryError("days must be a positive number of days, got %r" % (days,))
    return end, end // DAY - int(days)


def usage(store, kind, host=None, key=None):
    """Newest values of every matching series."""
    _check_kind(kind)
    sql = "SELECT host, key, label, ts, used_bytes, avail_bytes, files, old_bytes, old_files, status, detail FROM series WHERE kind = ? AND ts IS NOT NULL"
    params = [kind]
    sql, params = _filters(sql, params, host, key)
    rows = store.query(sql + " ORDER BY host%s, key%s" % (store.collate, store.collate), params)
    return [_usage_row(kind, r) for r in rows]


def _usage_row(kind, row):
    host, key, label, ts, used, avail, files, old_bytes, old_files, status, detail = row
    out = {"host": host, "kind": kind, "key": key, "time": ts, "used_bytes": used, "files": files}
    if kind == "fs":
        out.update(mount=key, device=label, available_bytes=avail, status=status, used_percent=_percent(used, avail))
        if detail:
            out.update({k: v for k, v in json.loads(detail).items() if k in ("fstype", "total_bytes")})
    else:
        out.update(old_bytes=old_bytes, old_files=old_files, id=label)
        if detail:
            out.update(json.loads(detail))
    return out


def growth(store, kind, days=7, until=None, host=None, key=None, limit=None, by="series"):
    """Growth of every matching series over ``days`` (largest first). With
    ``by=name`` (users and groups, no ``host``), one row per name summed
    over every host, read from the per-name totals."""
    _check_kind(kind)
    end, start_day = _window(store, days, until)
    if by not in ("name", "series"):
        raise QueryError("by must be series or name, got %r" % (by,))
    per_name = by == "name" and kind in ("user", "group") and not host
    table, column, source = ("daily_totals", "total_id", "totals") if per_name else ("daily", "series_id", "series")
    params = []
    if until is None:
        now_used, now_files = "x.used_bytes", "x.files"
    else:
        now_used, now_files = (
            ("(SELECT d.%s FROM %s d WHERE d.%s = x.id AND d.day <= ? ORDER BY d.day DESC LIMIT 1)" % (name, table, column)) for name in ("used_bytes", "files")
        )
        params += [end // DAY, end // DAY]
    params += [start_day] * 5 + [kind]  # four in the select list, one in the join
    where = " WHERE x.kind = ? AND x.ts IS NOT NULL"
    if host and not per_name:
        where += " AND x.host = ?"
        params.append(host)
    if key is not None:
        where += " AND x.key = ?"
        params.append(key)
    inner = "SELECT %s AS host, x.key AS key, %s AS used, %s AS files, %s AS base, %s AS base_files FROM %s x LEFT JOIN %s b ON b.day = ? AND b.%s = x.id" % (
        "NULL" if per_name else "x.host",
        now_used,
        now_files,
        _baseline(table, column),
        _files_baseline(table, column),
        source,
        table,
        column,
    )
    sql = (
        "SELECT host, key, used, files, base, base_files FROM (" + inner + where + ") g WHERE used IS NOT NULL"
        " ORDER BY (used - COALESCE(base, used)) DESC, key" + store.collate + ", host" + store.collate
    )
    if limit:
        sql += " LIMIT ?"
        params.append(int(limit))
    return [_growth_entry(kind, days, *row) for row in store.query(sql, params)]


def _growth_entry(kind, days, rhost, rkey, used, files, base, base_files):
    """One row of :func:`growth` (a series without a baseline has grown by 0)."""
    base = used if base is None else base
    entry = {
        "kind": kind,
        "key": rkey,
        "used_bytes": used,
        "files": files,
        "start_bytes": base,
        "growth_bytes": used - base,
        "growth_bytes_per_day": round((used - base) / float(days), 1),
        "growth_files": None if files is None or base_files is None else files - base_files,
        "days": days,
    }
    if rhost is not None:
        entry["host"] = rhost
    return entry


def top_growers(store, kind="user", days=7, limit=10, host=None, by="name", until=None):
    """The ``limit`` series (or names, summed over hosts) that grew most."""
    return growth(store, kind, days=days, until=until, host=host, limit=limit, by=by)


def forecast(store, host=None, mount=None, window_days=30, min_days=7, until=None):
    """When each matching file system fills, from a least-squares line through
    its daily used bytes over the last ``window_days``. No estimate with less
    than ``min_days`` of data or when usage is flat or falling."""
    if window_days < min_days or min_days < 1:
        raise QueryError("window_days (%s) must be at least min_days (%s), and min_days at least 1" % (window_days, min_days))
    sql = "SELECT id, host, key, ts, used_bytes, avail_bytes FROM series WHERE kind = 'fs' AND ts IS NOT NULL"
    sql, params = _filters(sql, [], host, mount)
    out = []
    for sid, shost, key, ts, used, avail in store.query(sql + " ORDER BY host%s, key%s" % (store.collate, store.collate), params):
        end_day = (until if until is not None else ts) // DAY
        points = store.query(
            "SELECT ts, used_bytes FROM daily WHERE series_id = ? AND day > ? AND day <= ? ORDER BY day", (sid, end_day - window_days, end_day)
        )
        out.append(dict(host=shost, mount=key, used_bytes=used, available_bytes=avail, **fit_fill(points, (used or 0) + (avail or 0), min_days)))
    return out


def fit_fill(points, capacity, min_days):
    """Least squares through ``[(ts, used)]``: rate per day, the day it reaches
    ``capacity`` and a range from the slope's standard error (2 sigma)."""
    result = {
        "points": len(points),
        "rate_bytes_per_day": None,
        "full_at": None,
        "full_in_days": None,
        "full_in_days_low": None,
        "full_in_days_high": None,
        "reason": None,
    }
    if len(points) < 2 or (points[-1][0] - points[0][0]) < min_days * DAY - DAY // 2:
        result["reason"] = "fewer than %d days of data" % min_days
        return result
    xs = [ts / float(DAY) for ts, _used in points]
    ys = [float(used) for _ts, used in points]
    n = float(len(xs))
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    intercept = my - slope * mx
    result["rate_bytes_per_day"] = int(round(slope))
    if slope <= max(1.0, 1e-9 * abs(my)):
        result["reason"] = "usage is flat or falling"
        return result
    residual = sum((y - (intercept + slope * x)) ** 2 for x, y in zip(xs, ys))
    se = math.sqrt(residual / (n - 2) / sxx) if n > 2 else 0.0
    last_x = xs[-1]
    now_fit = intercept + slope * last_x

    def days_at(rate):
        if rate <= 0:
            return None
        return max(0.0, (capacity - now_fit) / rate)

    full_in = days_at(slope)
    result["full_in_days"] = round(full_in, 1)
    result["full_at"] = int(points[-1][0] + full_in * DAY)
    fast, slow = days_at(slope + 2 * se), days_at(slope - 2 * se)
    result["full_in_days_low"] = round(fast, 1) if fast is not None else None
    result["full_in_days_high"] = round(slow, 1) if slow is not None else None
    return result


def smart_trends(store, host=None, drive=None, days=90, until=None):
    """Per drive: newest health and reasons, and each key attribute's values
    over the last ``days`` with its change."""
    sql = "SELECT id, host, key, name, model, label, ts, health, reasons, temperature_c, power_on_hours FROM drives WHERE ts IS NOT NULL"
    params = []
    if host:
        sql += " AND host = ?"
        params.append(host)
    if drive:
        sql += " AND (key = ? OR name = ? OR label = ?)"
        params += [drive, drive, drive]
    out = []
    rows = store.query(sql + " ORDER BY host%s, key%s" % (store.collate, store.collate), params)
    for did, dhost, key, name, model, label, ts, health, reasons, temp, hours in rows:
        start = (until if until is not None else ts) - int(days) * DAY
        attrs = {}
        for attr, ats, raw in store.query("SELECT attr, ts, raw FROM drive_attrs WHERE drive_id = ? AND ts >= ? ORDER BY ts", (did, start)):
            attrs.setdefault(attr, []).append([ats, raw])
        trends = [
            {
                "attribute": attr,
                "values": values,
                "first": values[0][1],
                "last": values[-1][1],
                "change": None if values[0][1] is None or values[-1][1] is None else values[-1][1] - values[0][1],
            }
            for attr, values in sorted(attrs.items())
        ]
        health_points = store.query("SELECT ts, health, temperature_c FROM drive_points WHERE drive_id = ? AND ts >= ? ORDER BY ts", (did, start))
        out.append(
            {
                "host": dhost,
                "drive": key,
                "name": name,
                "model": model,
                "label": label,
                "time": ts,
                "health": health,
                "reasons": json.loads(reasons or "[]"),
                "temperature_c": temp,
                "power_on_hours": hours,
                "attributes": trends,
                "health_history": [[t, h, c] for t, h, c in health_points],
            }
        )
    return out


def runs(store, source, host=None, days=30, until=None, limit=50):
    """Recorded runs of a source, newest first, with their counters."""
    end = until if until is not None else (newest_time(store) or 0)
    sql = "SELECT id, host, ts, status, summary FROM runs WHERE source = ? AND ts >= ? AND ts <= ?"
    params = [source, end - int(days) * DAY, end]
    if host:
        sql += " AND host = ?"
        params.append(host)
    sql += " ORDER BY ts DESC, host%s LIMIT ?" % store.collate
    params.append(int(limit))
    out = []
    for run_id, rhost, ts, status, summary in store.query(sql, params):
        counters = {name: _number(value) for name, value in store.query("SELECT name, value FROM counters WHERE run_id = ? ORDER BY name", (run_id,))}
        out.append({"host": rhost, "source": source, "time": ts, "status": status, "counters": counters, "summary": json.loads(summary)})
    return out


def hosts(store):
    return [r[0] for r in store.query("SELECT host FROM runs GROUP BY host ORDER BY host%s" % store.collate)]


def _number(value):
    if value is None:
        return None
    return int(value) if float(value).is_integer() else round(value, 3)


def _percent(used, avail):
    if used is None or avail is None or used + avail == 0:
        return None
    return int(math.ceil(100.0 * used / (used + avail)))


def _filters(sql, params, host, key):
    if host:
        sql += " AND host = ?"
        params.append(host)
    if key is not None:
        sql += " AND key = ?"
        params.append(key)
    return sql, params


def _check_kind(kind):
    if kind not in KINDS:
        raise QueryError("kind must be one of %s, got %r" % (", ".join(KINDS), kind))
