# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Prometheus textfiles for node_exporter's textfile collector.

A family is a dict ``{name, type, help, samples: [{labels, value}], update}``:

* ``type`` is ``gauge``, ``counter`` (name ends in ``_total``) or ``info``
  (name ends in ``_info``, value 1, written as a gauge: the text format has no
  info type);
* ``update`` says what happens to the series already in the file:
  ``replace`` (the default: only the given samples), ``merge`` (given samples
  replace theirs, the others are kept) or ``add`` (counters only: each value is
  added to the one in the file, the others are kept).

The file is written in the text exposition format 0.0.4, which node_exporter
parses, to a hidden temporary name in the same directory (node_exporter reads
only ``*.prom``), fsynced, re-read and compared, then renamed over the target
and the directory fsynced. Nothing here imports AnsibleModule.
"""

from __future__ import annotations

import collections
import hashlib
import math
import os
import re
import tempfile

HEADER = "# Written by datasteward.storage.prometheus_textfile; changes are overwritten.\n"
TYPES = ("gauge", "counter", "info")
UPDATES = ("replace", "merge", "add")

_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_SAMPLE = re.compile(r"^([a-zA-Z_][a-zA-Z0-9_]*)(\{.*\})?\s+(\S+)$")
_LABEL_PAIR = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')


class TextfileError(Exception):
    """Bad metrics or an unreadable textfile, naming the metric or the path."""


def _clean_text(value):
    """A str safe to write as UTF-8: bytes that were not UTF-8 become \\xNN."""
    return str(value).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def escape_label_value(value):
    return _clean_text(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def unescape_label_value(text):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


def escape_help(text):
    return _clean_text(text).replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value):
    """A sample value as the text format writes it."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return "%d" % value
    return repr(float(value))


def _number(value, where):
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    try:
        return int(value) if re.match(r"^[+-]?\d+$", str(value).strip()) else float(value)
    except (TypeError, ValueError):
        raise TextfileError("%s: value %r is not a number" % (where, value))


def _check_name(family):
    name, kind = family["name"], family["type"]
    if not _NAME.match(name or ""):
        raise TextfileError("metric name %r is not a valid Prometheus name ([a-zA-Z_][a-zA-Z0-9_]*)" % name)
    if kind not in TYPES:
        raise TextfileError("metric %s: type must be one of %s, got %r" % (name, ", ".join(TYPES), kind))
    if (kind == "counter") != name.endswith("_total"):
        raise TextfileError("metric %s: a counter's name ends in _total, and only a counter's" % name)
    if (kind == "info") != name.endswith("_info"):
        raise TextfileError("metric %s: an info metric's name ends in _info, and only an info metric's" % name)
    if family.get("update", "replace") not in UPDATES:
        raise TextfileError("metric %s: update must be one of %s" % (name, ", ".join(UPDATES)))
    if family.get("update") == "add" and kind != "counter":
        raise TextfileError("metric %s: update add is for counters only" % name)


def _labels(labels, where):
    result = []
    for key in sorted(labels or {}):
        if not _LABEL.match(str(key)) or str(key).startswith("__"):
            raise TextfileError("%s: label name %r is not valid (names starting with __ are reserved)" % (where, key))
        result.append((str(key), "" if labels[key] is None else _clean_text(labels[key])))
    return tuple(result)


def normalize(family, common_labels=None):
    """Check one family and return it with sorted label tuples and numbers:
    ``{name, type, help, update, samples: OrderedDict(labels -> value)}``."""
    _check_name(family)
    name, kind = family["name"], family["type"]
    samples = collections.OrderedDict()
    for sample in family.get("samples") or []:
        labels = dict(common_labels or {})
        labels.update(sample.get("labels") or {})
        key = _labels(labels, "metric %s" % name)
        if key in samples:
            raise TextfileError("metric %s: two samples with the labels %s" % (name, dict(key)))
        value = sample.get("value")
        value = _number(1 if value is None and kind == "info" else value, "metric %s %s" % (name, dict(key)))
        if kind == "counter" and value < 0:
            raise TextfileError("metric %s %s: a counter cannot be negative (%s)" % (name, dict(key), value))
        samples[key] = value
    return {"name": name, "type": kind, "help": family.get("help") or name, "update": family.get("update") or "replace", "samples": samples}


def normalize_all(families, common_labels=None):
    result = collections.OrderedDict()
    for family in families:
        norm = normalize(family, common_labels)
        if norm["name"] in result:
            raise TextfileError("metric %s is given twice" % norm["name"])
        result[norm["name"]] = norm
    return result


def _parse_labels(text, where):
    pairs, pos, body = [], 0, text[1:-1]
    while pos < len(body):
        match = _LABEL_PAIR.match(body, pos)
        if match is None:
            raise TextfileError("%s: cannot read the labels %s" % (where, text))
        pairs.append((match.group(1), unescape_label_value(match.group(2))))
        pos = match.end()
    return tuple(sorted(pairs))


def _parse_line(line, families, where):
    if line.startswith("# HELP ") or line.startswith("# TYPE "):
        parts = line.split(" ", 3)
        family = families.setdefault(parts[2], {"name": parts[2], "type": "gauge", "help": parts[2], "samples": collections.OrderedDict()})
        family["help" if parts[1] == "HELP" else "type"] = parts[3] if len(parts) > 3 else ""
        return
    if not line.strip() or line.startswith("#"):
        return
    match = _SAMPLE.match(line)
    if match is None or match.group(1) not in families:
        raise TextfileError("%s: not a sample of a declared metric: %s" % (where, line))
    labels = _parse_labels(match.group(2), where) if match.group(2) else ()
    families[match.group(1)]["samples"][labels] = _number(match.group(3).replace("+Inf", "inf"), where)


def parse(text, path="textfile"):
    """The families of a textfile this module wrote (HELP/TYPE/sample lines)."""
    families = collections.OrderedDict()
    for number, line in enumerate(text.splitlines(), 1):
        _parse_line(line, families, "%s line %d" % (path, number))
    return families


def _merged(family, old):
    if family["update"] == "replace" or old is None or old["type"] != ("gauge" if family["type"] == "info" else family["type"]):
        return family["samples"]
    samples = collections.OrderedDict()
    for key, value in family["samples"].items():
        samples[key] = value + old["samples"].get(key, 0) if family["update"] == "add" else value
    for key, value in old["samples"].items():
        samples.setdefault(key, value)
    return samples


def render(families, old=None):
    """The textfile for normalized ``families``; ``old`` (parsed) serves merge and add."""
    lines = [HEADER]
    for name, family in families.items():
        samples = _merged(family, (old or {}).get(name))
        lines.append("# HELP %s %s\n" % (name, escape_help(family["help"])))
        lines.append("# TYPE %s %s\n" % (name, "gauge" if family["type"] == "info" else family["type"]))
        for labels, value in samples.items():
            text = ",".join('%s="%s"' % (key, escape_label_value(val)) for key, val in labels)
            lines.append("%s%s %s\n" % (name, "{%s}" % text if text else "", format_value(value)))
    return "".join(lines)


def series_count(text):
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def check_path(path):
    if not path.endswith(".prom") or os.path.basename(path).startswith("."):
        raise TextfileError("path %s: node_exporter reads only files named *.prom (and not hidden)" % path)
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise TextfileError("path %s: the directory %s does not exist" % (path, directory))


def read_existing(path):
    """The current text of ``path``, or None when there is none."""
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TextfileError("path %s cannot be read: %s" % (path, exc.strerror))


def _fsync_dir(directory):
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path, text, prepare=None):
    """Write ``text`` to a temporary name beside ``path``, fsync, re-read and
    compare, ``prepare(tmp)`` it (owner, mode: the file appears with them),
    rename it over ``path`` and fsync the directory."""
    directory = os.path.dirname(path) or "."
    data = text.encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        with open(tmp, "rb") as handle:
            if hashlib.sha256(handle.read()).digest() != hashlib.sha256(data).digest():
                raise TextfileError("path %s: the temporary file %s does not read back as written" % (path, tmp))
        if prepare is not None:
            prepare(tmp)
        os.rename(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def remove(path):
    os.unlink(path)
    _fsync_dir(os.path.dirname(path) or ".")
