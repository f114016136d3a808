# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Disk maps: which site label belongs to which drive.

The station's format is one drive per line, ``LABEL SERIAL WWN``, for example
``P01 ZA12JCHM 0x5000c500858bfea7``; blank lines and ``#`` comments are
ignored. The same data may come as a list of dicts with ``label``, ``serial``
and ``wwn`` keys. Used by smart_info (labels, missing and unmapped drives) and
by the copy registry (seeding its disks table).
"""

from __future__ import annotations


class DiskMapError(ValueError):
    """A disk map that cannot be used; the message names the line or entry."""


def normalize_wwn(wwn):
    """Compare WWNs the way smartctl prints them in different places:
    ``0x5000c500858bfea7``, ``5 000c50 0858bfea7`` and ``naa.5000c500...``
    are the same drive."""
    if wwn is None:
        return None
    text = str(wwn).strip().lower().replace(" ", "")
    for prefix in ("naa.", "eui.", "0x"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text or None


def parse_disk_map_text(text, source="disk map"):
    """Parse ``LABEL SERIAL WWN`` lines into a list of entry dicts."""
    entries = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != 3:
            raise DiskMapError("%s line %d: expected 'LABEL SERIAL WWN', got %r" % (source, number, raw.strip()))
        entries.append({"label": fields[0], "serial": fields[1], "wwn": fields[2]})
    return check_entries(entries, source)


def parse_disk_map_list(items, source="disk_map"):
    """Validate a list of dicts (``label`` and ``serial`` required, ``wwn`` optional)."""
    entries = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise DiskMapError("%s[%d]: expected a dict with label, serial and wwn, got %r" % (source, index, item))
        missing = [key for key in ("label", "serial") if not item.get(key)]
        if missing:
            raise DiskMapError("%s[%d]: missing %s" % (source, index, " and ".join(missing)))
        entries.append({"label": str(item["label"]), "serial": str(item["serial"]), "wwn": str(item["wwn"]) if item.get("wwn") else None})
    return check_entries(entries, source)


def load_disk_map(value, source="disk_map"):
    """A path to a map file, or a list of dicts, into a list of entry dicts."""
    if isinstance(value, (list, tuple)):
        return parse_disk_map_list(value, source)
    try:
        with open(value, "r", encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise DiskMapError("%s: cannot read %s: %s" % (source, value, exc.strerror or exc))
    return parse_disk_map_text(text, str(value))


def check_entries(entries, source):
    """Labels and serials must be unique within one map."""
    for key in ("label", "serial"):
        seen = set()
        for entry in entries:
            if entry[key] in seen:
                raise DiskMapError("%s: %s %s appears more than once" % (source, key, entry[key]))
            seen.add(entry[key])
    return entries
