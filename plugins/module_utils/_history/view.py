# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Terminal views of the history (playbooks/view.yml): for a user, a host or
a path, usage now, growth over 7 and 30 days, and the largest and oldest
files of the last scan, as fixed-width text lines."""

from __future__ import annotations

from ansible_collections.datasteward.storage.plugins.module_utils._history import queries
from ansible_collections.datasteward.storage.plugins.module_utils._history.report import human, when_text

PERIODS = (7, 30)


def _growth_map(store, kind, host=None, key=None):
    """{(host, key): {days: growth_bytes}} for both periods."""
    out = {}
    for days in PERIODS:
        for row in queries.growth(store, kind, days=days, host=host, key=key, by="series"):
            out.setdefault((row["host"], row["key"]), {})[days] = row["growth_bytes"]
    return out


def _table(header, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
    fmt = "  ".join("%%-%ds" % w for w in widths)
    lines = [(fmt % tuple(header)).rstrip(), "  ".join("-" * w for w in widths)]
    return lines + [(fmt % tuple(str(c) for c in row)).rstrip() for row in rows]


def user_view(store, name):
    usage = queries.usage(store, "user", key=name)
    if not usage:
        return ["No history for user %s." % name]
    growth = _growth_map(store, "user", key=name)
    rows = [
        (
            u["host"],
            human(u["used_bytes"]),
            u["files"],
            human(growth.get((u["host"], name), {}).get(7), sign=True),
            human(growth.get((u["host"], name), {}).get(30), sign=True),
            human(u.get("old_bytes")),
            when_text(u["time"]),
        )
        for u in usage
    ]
    lines = ["User %s" % name, ""] + _table(("host", "used", "files", "7 days", "30 days", "old", "last scan"), rows)
    for title, field, size in (("Largest files", "largest", "bytes"), ("Oldest files", "oldest", "age_seconds")):
        files = [
            (u["host"], f.get("path"), human(f.get("bytes")), "%d d" % (int(f.get("age_seconds") or 0) // 86400)) for u in usage for f in (u.get(field) or [])
        ]
        if files:
            lines += ["", title + " (last scan)"] + _table(("host", "path", "size", "age"), files)
    return lines


def host_view(store, host, limit=10):
    fss = queries.usage(store, "fs", host=host)
    users = queries.usage(store, "user", host=host)
    if not fss and not users:
        return ["No history for host %s." % host]
    fgrowth = _growth_map(store, "fs", host=host)
    forecasts = {f["mount"]: f for f in queries.forecast(store, host=host)}
    rows = [
        (
            f["mount"],
            "%s%%" % f["used_percent"],
            human(f["used_bytes"]),
            human(f["available_bytes"]),
            human(fgrowth.get((host, f["mount"]), {}).get(7), sign=True),
            human(fgrowth.get((host, f["mount"]), {}).get(30), sign=True),
            _full(forecasts.get(f["mount"])),
        )
        for f in fss
    ]
    lines = ["Host %s" % host, ""] + _table(("mount", "use", "used", "free", "7 days", "30 days", "full"), rows)
    if users:
        ugrowth = _growth_map(store, "user", host=host)
        top = sorted(users, key=lambda u: (-(u["used_bytes"] or 0), u["key"]))[:limit]
        urows = [
            (
                u["key"],
                human(u["used_bytes"]),
                u["files"],
                human(ugrowth.get((host, u["key"]), {}).get(7), sign=True),
                human(ugrowth.get((host, u["key"]), {}).get(30), sign=True),
                human(u.get("old_bytes")),
            )
            for u in top
        ]
        lines += ["", "Users (largest %d of %d)" % (len(top), len(users))] + _table(("user", "used", "files", "7 days", "30 days", "old"), urows)
    return lines


def path_view(store, path):
    path = path.rstrip("/") or "/"
    lines = []
    fss = queries.usage(store, "fs", key=path)
    dirs = queries.usage(store, "dir", key=path)
    if not fss and not dirs:
        return ["No history for path %s." % path]
    for kind, entries in (("fs", fss), ("dir", dirs)):
        if not entries:
            continue
        growth = _growth_map(store, kind, key=path)
        forecasts = {f["host"]: f for f in queries.forecast(store, mount=path)} if kind == "fs" else {}
        rows = [
            (
                e["host"],
                human(e["used_bytes"]),
                e["files"],
                human(growth.get((e["host"], path), {}).get(7), sign=True),
                human(growth.get((e["host"], path), {}).get(30), sign=True),
                _full(forecasts.get(e["host"])) if kind == "fs" else human(e.get("old_bytes")),
                when_text(e["time"]),
            )
            for e in entries
        ]
        title = "File system %s" % path if kind == "fs" else "Directory %s" % path
        last = "full" if kind == "fs" else "old"
        header = ("host", "used", "files" if kind == "dir" else "inodes", "7 days", "30 days", last, "last scan")
        lines += ([""] if lines else []) + [title, ""] + _table(header, rows)
    return lines


def _full(fc):
    if not fc:
        return "-"
    if fc.get("full_in_days") is None:
        return fc.get("reason") or "-"
    return "in %s d (%s-%s)" % (fc["full_in_days"], fc["full_in_days_low"], fc["full_in_days_high"])
