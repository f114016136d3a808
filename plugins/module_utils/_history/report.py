# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The usage report: one data document (``report.json``), rendered as a
self-contained HTML page (styles and pygal SVG charts inline, no script or
file from anywhere else) and as a plain-text summary.

Everything is derived from the history as of its newest record, so the same
history gives byte-identical files (the report module is idempotent)."""

from __future__ import annotations

import contextlib
import datetime
import html
import json
import os
import re
import tempfile

from ansible_collections.datasteward.storage.plugins.module_utils._history import queries
from ansible_collections.datasteward.storage.plugins.module_utils._history.store import DAY


class ReportError(Exception):
    """The report cannot be built (names the cause)."""


def build(store, days=7, window_days=30, min_days=7, warn_percent=80, critical_percent=90, forecast_days=30, top=10, title="Storage report"):
    """The report's data: every number the HTML and the summary show."""
    newest = queries.newest_time(store)
    data = {
        "title": title,
        "as_of": newest,
        "as_of_text": when_text(newest),
        "days": days,
        "window_days": window_days,
        "thresholds": {"warn_percent": warn_percent, "critical_percent": critical_percent, "forecast_days": forecast_days},
        "hosts": queries.hosts(store),
    }
    if newest is None:
        data.update(filesystems=[], top_users=[], top_user_hosts=[], old_data=[], drives=[], ingest=[], inbox=[], old_files=[], disk_series=[], attention=[])
        return data
    forecasts = {(f["host"], f["mount"]): f for f in queries.forecast(store, window_days=window_days, min_days=min_days)}
    filesystems = []
    for fs in queries.usage(store, "fs"):
        fs["level"] = _level(fs.get("used_percent"), warn_percent, critical_percent)
        fs["forecast"] = {k: v for k, v in forecasts.get((fs["host"], fs["mount"]), {}).items() if k not in ("host", "mount", "used_bytes", "available_bytes")}
        fs["trend"] = _trend(store, fs["host"], fs["mount"], newest, window_days)
        filesystems.append(fs)
    users = queries.usage(store, "user")
    old = sorted((u for u in users if u.get("old_bytes")), key=lambda u: (-u["old_bytes"], u["key"], u["host"]))[:top]
    data.update(
        filesystems=filesystems,
        top_users=queries.top_growers(store, "user", days=days, limit=top, by="name"),
        top_user_hosts=queries.top_growers(store, "user", days=days, limit=top, by="series"),
        old_data=[{k: u.get(k) for k in ("host", "key", "old_bytes", "old_files", "used_bytes", "oldest")} for u in old],
        drives=queries.smart_trends(store, days=window_days),
        ingest=queries.runs(store, "buffer_copy", days=window_days, limit=top * 3),
        inbox=queries.runs(store, "inbox", days=window_days, limit=top),
        old_files=queries.runs(store, "old_files", days=window_days, limit=top),
    )
    data["disk_series"] = disk_series(data["ingest"])
    data["attention"] = attention(data)
    return data


def disk_series(ingest_runs):
    """The disks of each host's newest ingest run that carries them (the
    data_manager role records buffer_copy's result with copy_registry_info's
    ``disks`` added), with their fill."""
    out, seen = [], set()
    for run in ingest_runs:
        disks = run["summary"].get("disks")
        if run["host"] in seen or not isinstance(disks, list):
            continue
        seen.add(run["host"])
        for disk in disks:
            if not isinstance(disk, dict):
                continue
            total, avail = disk.get("total_bytes"), disk.get("available_bytes")
            used = None if total is None or avail is None else total - avail
            out.append(
                {
                    "host": run["host"],
                    "label": disk.get("label"),
                    "role": disk.get("role"),
                    "full": bool(disk.get("full")),
                    "mounted": disk.get("mounted"),
                    "files": disk.get("file_count"),
                    "registered_bytes": disk.get("registered_bytes"),
                    "total_bytes": total,
                    "available_bytes": avail,
                    "used_percent": None if not total else int(-(-100 * used // total)),
                }
            )
    return out


def _trend(store, host, mount, newest, window_days):
    rows = store.query(
        "SELECT d.ts, d.used_bytes, d.avail_bytes FROM daily d JOIN series s ON s.id = d.series_id"
        " WHERE s.host = ? AND s.kind = 'fs' AND s.key = ? AND d.day > ? ORDER BY d.day",
        (host, mount, newest // DAY - window_days),
    )
    return [[ts, used, avail] for ts, used, avail in rows]


def _level(percent, warn, critical):
    if percent is None:
        return "unknown"
    return "critical" if percent >= critical else "warning" if percent >= warn else "ok"


def attention(data):
    """One line per thing an admin should look at; empty when all is well."""
    lines = []
    horizon = data["thresholds"]["forecast_days"]
    for fs in data["filesystems"]:
        if fs["level"] in ("warning", "critical"):
            lines.append("%s %s: %s%% used (%s)" % (fs["host"], fs["mount"], fs["used_percent"], fs["level"]))
        days = (fs.get("forecast") or {}).get("full_in_days")
        if days is not None and days <= horizon:
            lines.append(
                "%s %s: full in about %s days (%s to %s)"
                % (fs["host"], fs["mount"], days, fs["forecast"].get("full_in_days_low"), fs["forecast"].get("full_in_days_high"))
            )
    for drive in data["drives"]:
        if drive["health"] not in ("ok", None):
            lines.append(
                "%s drive %s (%s): %s%s"
                % (
                    drive["host"],
                    drive["label"] or drive["name"],
                    drive["drive"],
                    drive["health"],
                    (": " + "; ".join(drive["reasons"])) if drive["reasons"] else "",
                )
            )
    seen = set()
    for kind in ("ingest", "inbox", "old_files"):
        for run in data[kind]:
            if (kind, run["host"]) in seen:
                continue  # only each host's newest run
            seen.add((kind, run["host"]))
            if run["status"] not in ("ok", "changed"):
                bad = ", ".join(
                    "%s %s" % (k, v)
                    for k, v in sorted(run["counters"].items())
                    if v and (k.startswith("failed") or k.startswith("conflict") or k.startswith("refused"))
                )
                lines.append(
                    "%s %s run at %s: %s%s"
                    % (
                        run["host"],
                        kind,
                        when_text(run["time"]),
                        run["status"],
                        (" (" + bad + ")") if bad else (": " + run["summary"]["msg"]) if run["summary"].get("msg") else "",
                    )
                )
    return lines


# -- plain text ------------------------------------------------------------------
def summary_text(data):
    out = ["%s as of %s" % (data["title"], data["as_of_text"]), ""]
    if data["as_of"] is None:
        return "\n".join(out + ["The history is empty: nothing recorded yet."]) + "\n"
    out.append("Needs attention:" if data["attention"] else "Nothing needs attention.")
    out += ["  - " + line for line in data["attention"]]
    out += ["", "File systems:"]
    for fs in data["filesystems"]:
        fc = fs.get("forecast") or {}
        out.append(
            "  %-20s %-24s %4s%% used  %10s free  %s"
            % (
                fs["host"],
                fs["mount"],
                _dash(fs.get("used_percent")),
                human(fs.get("available_bytes")),
                ("full in ~%s d" % fc["full_in_days"]) if fc.get("full_in_days") is not None else (fc.get("reason") or ""),
            )
        )
    out += ["", "Top growers over %d days (all hosts):" % data["days"]]
    for user in data["top_users"]:
        out.append(
            "  %-24s %10s now  %+11s  (%s/day)"
            % (user["key"], human(user["used_bytes"]), human(user["growth_bytes"], sign=True), human(user["growth_bytes_per_day"], sign=True))
        )
    if data["drives"]:
        out += ["", "Drives:"]
        for drive in data["drives"]:
            name = drive["label"] or drive["name"] or drive["drive"]
            out.append("  %-20s %-16s %-8s %s" % (drive["host"], name, drive["health"], "; ".join(drive["reasons"])))
    if data["ingest"]:
        out += ["", "Ingest runs:"]
        for run in data["ingest"][:10]:
            c = run["counters"]
            out.append(
                "  %-20s %s  %-8s copied %s files, failed %s, conflicts %s"
                % (run["host"], when_text(run["time"]), run["status"], c.get("copied_files", 0), c.get("failed_files", 0), c.get("conflict_files", 0))
            )
    if data.get("disk_series"):
        out += ["", "Disk series:"]
        for d in data["disk_series"]:
            out.append("  %-20s %-8s %-8s %4s%% used%s" % (d["host"], d["label"], d["role"], _dash(d["used_percent"]), "  FULL" if d["full"] else ""))
    for kind, label in (("inbox", "Inbox runs"), ("old_files", "Old-file runs")):
        if data[kind]:
            out += ["", label + ":"]
            for run in data[kind][:10]:
                nums = ", ".join("%s %s" % (k, v) for k, v in sorted(run["counters"].items()) if v and not k.endswith("seconds"))
                out.append("  %-20s %s  %-8s %s" % (run["host"], when_text(run["time"]), run["status"], nums))
    return "\n".join(out) + "\n"


def human(value, sign=False):
    if value is None:
        return "-"
    number = float(value)
    prefix = ("+" if number >= 0 else "-") if sign else ("-" if number < 0 else "")
    number = abs(number)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if number < 1024 or unit == "PiB":
            return "%s%s %s" % (prefix, ("%d" % number) if unit == "B" else ("%.1f" % number), unit)
        number /= 1024.0
    return str(value)  # pragma: no cover


def _dash(value):
    return "-" if value is None else value


def when_text(ts):
    if ts is None:
        return "never"
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# -- HTML -------------------------------------------------------------------------
STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0}th,td{padding:.25em .6em;text-align:left;border-bottom:1px solid #eee;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.bar{position:relative;width:220px;height:14px;background:#eee;border-radius:3px}
.fill{position:absolute;left:0;top:0;bottom:0;border-radius:3px}
.ok .fill,.fill.ok{background:#4caf50}.warning .fill,.fill.warning{background:#ff9800}.critical .fill,.fill.critical{background:#e53935}
.unknown .fill{background:#9e9e9e}.mark{position:absolute;top:-2px;bottom:-2px;width:2px}
.mark.w{background:#ff9800}.mark.c{background:#b71c1c}
.badge{padding:0 .4em;border-radius:3px;color:#fff}.badge.ok{background:#4caf50}.badge.warning{background:#ff9800}
.badge.failing,.badge.failed,.badge.critical{background:#e53935}.badge.unknown{background:#9e9e9e}
.charts{display:flex;flex-wrap:wrap;gap:1em}.chart{width:420px}.chart svg{width:100%;height:auto}
ul.attention li{color:#b71c1c}
"""


def render_html(data):
    """The whole page as one string (charts inline)."""
    charts = _Charts()
    t = data["thresholds"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>%s</title><style>%s</style></head><body>" % (_e(data["title"]), STYLE),
        "<h1>%s</h1><p>As of %s; growth over %d days, trends over %d days; %d hosts.</p>"
        % (_e(data["title"]), _e(data["as_of_text"]), data["days"], data["window_days"], len(data["hosts"])),
    ]
    parts.append('<section id="attention"><h2>Needs attention</h2>')
    if data["attention"]:
        parts.append('<ul class="attention">%s</ul>' % "".join("<li>%s</li>" % _e(x) for x in data["attention"]))
    else:
        parts.append("<p>Nothing needs attention.</p>")
    parts.append("</section>")
    parts.append(_filesystems(data, t, charts))
    parts.append(_users(data, charts))
    parts.append(_drives(data, charts))
    parts.append(_runs(data))
    parts.append(_disk_series(data))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _filesystems(data, t, charts):
    rows = []
    for fs in data["filesystems"]:
        pct = fs.get("used_percent")
        fc = fs.get("forecast") or {}
        gauge = (
            '<div class="bar %s" title="%s%% used"><div class="fill" style="width:%s%%"></div>'
            '<div class="mark w" style="left:%s%%"></div><div class="mark c" style="left:%s%%"></div></div>'
            % (fs["level"], _dash(pct), min(100, pct or 0), t["warn_percent"], t["critical_percent"])
        )
        when = (
            "%s (%s to %s days)" % (when_text(fc["full_at"])[:10], fc.get("full_in_days_low"), fc.get("full_in_days_high"))
            if fc.get("full_at")
            else _e(fc.get("reason") or "")
        )
        rows.append(
            "<tr><td>%s</td><td>%s</td><td>%s</td><td class=\"n\">%s%%</td><td class=\"n\">%s</td><td class=\"n\">%s</td>"
            "<td class=\"n\">%s</td><td>%s</td></tr>"
            % (
                _e(fs["host"]),
                _e(fs["mount"]),
                gauge,
                _dash(pct),
                human(fs["used_bytes"]),
                human(fs.get("available_bytes")),
                human(fc.get("rate_bytes_per_day"), sign=True) + "/day" if fc.get("rate_bytes_per_day") is not None else "-",
                when,
            )
        )
    trend_charts = [charts.fill(fs) for fs in data["filesystems"] if len(fs["trend"]) >= 2]
    return (
        '<section id="filesystems"><h2>File systems</h2><table class="filesystems"><thead><tr><th>host</th><th>mount</th>'
        "<th>use (marks: %s%% warning, %s%% critical)</th><th>used</th><th>used bytes</th><th>free</th><th>rate</th>"
        "<th>full (forecast)</th></tr></thead><tbody>%s</tbody></table><div class=\"charts\">%s</div></section>"
        % (t["warn_percent"], t["critical_percent"], "".join(rows), "".join(trend_charts))
    )


def _users(data, charts):
    def growers(rows, with_host):
        body = "".join(
            "<tr>%s<td>%s</td><td class=\"n\">%s</td><td class=\"n\">%s</td><td class=\"n\">%s</td><td class=\"n\">%s</td></tr>"
            % (
                ("<td>%s</td>" % _e(r.get("host"))) if with_host else "",
                _e(r["key"]),
                human(r["used_bytes"]),
                human(r["growth_bytes"], sign=True),
                human(r["growth_bytes_per_day"], sign=True),
                _dash(r.get("growth_files")),
            )
            for r in rows
        )
        return (
            "<table class=\"growers\"><thead><tr>%s<th>user</th><th>now</th><th>growth</th><th>per day</th><th>files</th></tr></thead>"
            "<tbody>%s</tbody></table>" % ("<th>host</th>" if with_host else "", body)
        )

    old = "".join(
        "<tr><td>%s</td><td>%s</td><td class=\"n\">%s</td><td class=\"n\">%s</td><td>%s</td></tr>"
        % (_e(u["host"]), _e(u["key"]), human(u["old_bytes"]), _dash(u["old_files"]), _e(", ".join(f.get("path", "") for f in (u.get("oldest") or [])[:3])))
        for u in data["old_data"]
    )
    chart = charts.growers(data["top_users"], data["days"]) if data["top_users"] else ""
    return (
        '<section id="users"><h2>Top users by growth over %d days</h2><h3>All hosts</h3>%s<div class="charts">%s</div>'
        "<h3>Per host</h3>%s<h2>Old data eligible for action</h2><table class=\"old\"><thead><tr><th>host</th><th>user</th>"
        "<th>old bytes</th><th>old files</th><th>oldest</th></tr></thead><tbody>%s</tbody></table></section>"
        % (data["days"], growers(data["top_users"], False), chart, growers(data["top_user_hosts"], True), old)
    )


def _drives(data, charts):
    rows, drive_charts = [], []
    for d in data["drives"]:
        changed = ", ".join("%s %s&rarr;%s" % (_e(a["attribute"]), a["first"], a["last"]) for a in d["attributes"] if a["change"])
        rows.append(
            "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td><span class=\"badge %s\">%s</span></td><td>%s</td>"
            "<td class=\"n\">%s</td><td>%s</td></tr>"
            % (
                _e(d["host"]),
                _e(d["label"] or ""),
                _e(d["name"] or ""),
                _e(d["drive"]),
                _e(d["health"]),
                _e(d["health"]),
                _e("; ".join(d["reasons"])),
                _dash(d["temperature_c"]),
                changed,
            )
        )
        if any(a["change"] for a in d["attributes"]):
            drive_charts.append(charts.drive(d))
    return (
        '<section id="drives"><h2>Drives (SMART)</h2><table class="drives"><thead><tr><th>host</th><th>label</th><th>device</th>'
        "<th>serial</th><th>health</th><th>reasons</th><th>&deg;C</th><th>changed attributes</th></tr></thead><tbody>%s</tbody>"
        "</table><div class=\"charts\">%s</div></section>" % ("".join(rows), "".join(drive_charts))
    )


def _runs(data):
    out = []
    for kind, title in (("ingest", "Ingest runs"), ("inbox", "Inbox state"), ("old_files", "Old-file runs")):
        runs = data[kind]
        names = sorted({k for run in runs for k in run["counters"]})[:12]
        body = "".join(
            "<tr><td>%s</td><td>%s</td><td><span class=\"badge %s\">%s</span></td>%s<td>%s</td></tr>"
            % (
                _e(r["host"]),
                _e(when_text(r["time"])),
                _e(r["status"]),
                _e(r["status"]),
                "".join("<td class=\"n\">%s</td>" % _dash(r["counters"].get(n)) for n in names),
                _e(_disks(r["summary"])),
            )
            for r in runs
        )
        out.append(
            '<section id="%s"><h2>%s</h2>%s</section>'
            % (
                kind,
                title,
                (
                    "<table class=\"runs\"><thead><tr><th>host</th><th>time</th><th>status</th>%s<th>disks / notes</th></tr>"
                    "</thead><tbody>%s</tbody></table>" % ("".join("<th>%s</th>" % _e(n.replace("_", " ")) for n in names), body)
                )
                if runs
                else "<p>No runs recorded.</p>",
            )
        )
    return "\n".join(out)


def _disk_series(data):
    if not data.get("disk_series"):
        return ""
    rows = []
    for d in data["disk_series"]:
        level = "critical" if d["full"] else "ok"
        rows.append(
            "<tr><td>%s</td><td>%s</td><td>%s</td><td><div class=\"bar %s\"><div class=\"fill\" style=\"width:%s%%\"></div></div></td>"
            "<td class=\"n\">%s%%</td><td class=\"n\">%s</td><td class=\"n\">%s</td><td>%s</td></tr>"
            % (
                _e(d["host"]),
                _e(d["label"]),
                _e(d["role"]),
                level,
                min(100, d["used_percent"] or 0),
                _dash(d["used_percent"]),
                _dash(d["files"]),
                human(d["registered_bytes"]),
                "full" if d["full"] else ("mounted" if d["mounted"] else "not mounted"),
            )
        )
    return (
        '<section id="disk_series"><h2>Disk series fill</h2><table class="disks"><thead><tr><th>host</th><th>disk</th><th>role</th>'
        "<th>fill</th><th>used</th><th>files</th><th>registered</th><th>state</th></tr></thead><tbody>%s</tbody></table></section>" % "".join(rows)
    )


def _disks(summary):
    parts = []
    for key in ("disks_used", "disks_full", "disks_unusable"):
        for disk in summary.get(key) or []:
            if isinstance(disk, dict):
                parts.append("%s %s%s" % (key[6:], disk.get("label"), (" (%s)" % disk["reason"]) if disk.get("reason") else ""))
    if summary.get("msg"):
        parts.append(summary["msg"])
    return "; ".join(parts)


def _e(text):
    return html.escape("" if text is None else str(text))


class _Charts:
    """pygal charts rendered to inline SVG with stable ids and no scripts
    from elsewhere (``js=[]``), so the page needs no network and the same
    data renders the same bytes."""

    def __init__(self):
        try:
            import pygal  # pylint: disable=import-outside-toplevel
        except ImportError:
            raise ReportError("the HTML report needs the Python package pygal on the controller")
        self.pygal = pygal
        self.count = 0

    def _config(self, title):
        from pygal.style import Style  # pylint: disable=import-outside-toplevel

        style = Style(
            background="#ffffff",
            plot_background="#fafafa",
            foreground="#333333",
            foreground_strong="#222222",
            foreground_subtle="#bbbbbb",
            colors=("#1e88e5", "#fb8c00", "#e53935", "#43a047", "#8e24aa"),
            font_family="system-ui, sans-serif",
            title_font_size=14,
            label_font_size=10,
            legend_font_size=11,
            stroke_width=2,
        )
        return dict(
            js=[],
            disable_xml_declaration=True,
            width=420,
            height=240,
            title=title,
            style=style,
            show_legend=True,
            legend_at_bottom=True,
            legend_box_size=10,
            explicit_size=False,
            margin=8,
        )

    def _render(self, chart):
        self.count += 1
        svg = chart.render(is_unicode=True)
        ids = set(re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", svg))
        for n, uuid in enumerate(sorted(ids)):
            svg = svg.replace(uuid, "c%d-%d" % (self.count, n))
        svg = re.sub(r"<!--.*?-->", "", svg)  # pygal names itself and the date here
        return '<figure class="chart">%s</figure>' % svg

    def fill(self, fs):
        chart = self.pygal.XY(x_title="days", y_title="GiB", dots_size=2, **self._config("%s %s" % (fs["host"], fs["mount"])))
        last = fs["trend"][-1][0]
        gib = float(1 << 30)
        chart.add("used", [(round((ts - last) / float(DAY), 2), round(used / gib, 3)) for ts, used, _avail in fs["trend"]])
        capacity = ((fs["used_bytes"] or 0) + (fs.get("available_bytes") or 0)) / gib
        span = [round((fs["trend"][0][0] - last) / float(DAY), 2), 0.0]
        top = max(used for _ts, used, _avail in fs["trend"]) / gib
        fc = fs.get("forecast") or {}
        if fc.get("full_in_days") is not None:
            # the forecast up to the full day, or as far ahead as the data reaches back
            ahead = round(min(fc["full_in_days"], max(1.0, -span[0])), 2)
            end = fs["used_bytes"] / gib + fc["rate_bytes_per_day"] / gib * ahead
            chart.add("forecast", [(0.0, round(fs["used_bytes"] / gib, 3)), (ahead, round(end, 3))], stroke_style={"dasharray": "6,4"})
            span[1], top = ahead, max(top, end)
        if capacity <= 1.5 * top:  # the capacity line only where it is near enough to read the used line
            chart.add("capacity", [(span[0], round(capacity, 3)), (span[1], round(capacity, 3))], show_dots=False)
        return self._render(chart)

    def growers(self, rows, days):
        chart = self.pygal.HorizontalBar(**self._config("growth over %d days (MiB)" % days))
        chart.show_legend = False
        chart.x_labels = [r["key"] for r in rows][::-1]
        chart.add("growth", [round(r["growth_bytes"] / 1048576.0, 2) for r in rows][::-1])
        return self._render(chart)

    def drive(self, drive):
        chart = self.pygal.XY(x_title="days", **self._config("%s %s" % (drive["host"], drive["label"] or drive["name"] or drive["drive"])))
        last = drive["time"]
        for attr in drive["attributes"]:
            if attr["change"]:
                chart.add(attr["attribute"], [(round((ts - last) / float(DAY), 2), raw) for ts, raw in attr["values"]])
        return self._render(chart)


def to_json(data):
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


# -- files ----------------------------------------------------------------------------
FILES = ("report.html", "report.json", "summary.txt")


def render_all(data):
    """{file name: text} of the three report files."""
    return {"report.html": render_html(data), "report.json": to_json(data), "summary.txt": summary_text(data)}


def read_existing(directory, name):
    try:
        with open(os.path.join(directory, name), "r", encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ReportError("cannot read %s: %s" % (os.path.join(directory, name), exc.strerror))


def write_atomic(directory, name, text, mode=0o644):
    """Write ``text`` to a hidden temporary in ``directory``, fsync, rename
    over ``name``, fsync the directory."""
    path = os.path.join(directory, name)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % name, dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.rename(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise ReportError("cannot write %s: %s" % (path, exc.strerror))
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def check_options(days, window_days, min_days, top, forecast_days, warn_percent, critical_percent):
    """Raise ReportError naming the first option out of range."""
    for option, value in (("days", days), ("window_days", window_days), ("min_days", min_days), ("top", top), ("forecast_days", forecast_days)):
        if value < 1:
            raise ReportError("%s must be at least 1, got %d" % (option, value))
    if not 0 < warn_percent <= critical_percent <= 100:
        raise ReportError("warn_percent (%d) and critical_percent (%d) must satisfy 0 < warn <= critical <= 100" % (warn_percent, critical_percent))


def write_report(dest, texts, check_mode=False):
    """Write the files of ``texts`` whose content differs into ``dest``
    (created when missing), each atomically; nothing in check mode.
    Returns ``(files, old)``: ``[{"path", "changed"}]`` in FILES order and
    the previous content of each file (None when there was none).
    Raises ReportError, or OSError when ``dest`` cannot be created."""
    old = {name: read_existing(dest, name) if os.path.isdir(dest) else None for name in FILES}
    files = [{"path": os.path.join(dest, name), "changed": old[name] != texts[name]} for name in FILES]
    if not check_mode and any(f["changed"] for f in files):
        if not os.path.isdir(dest):
            os.makedirs(dest, mode=0o755)
        for name in FILES:
            if old[name] != texts[name]:
                write_atomic(dest, name, texts[name])
    return files, old
