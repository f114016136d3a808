# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""File system usage engine: mount table, statfs with a deadline, df arithmetic.

Pure Python, standard library only, no AnsibleModule: the module that uses it
runs on every managed host, which may have nothing but a Python interpreter.
"""

from __future__ import annotations

import os
import re
import threading
import time

MOUNTINFO = "/proc/self/mountinfo"

# Kernel and virtual file systems that hold no user data. tmpfs and overlay are
# real storage for this purpose (df shows them too).
PSEUDO_FSTYPES = frozenset(
    (
        "autofs",
        "binfmt_misc",
        "bpf",
        "cgroup",
        "cgroup2",
        "configfs",
        "debugfs",
        "devpts",
        "devtmpfs",
        "efivarfs",
        "fusectl",
        "hugetlbfs",
        "mqueue",
        "nsfs",
        "proc",
        "pstore",
        "rpc_pipefs",
        "securityfs",
        "selinuxfs",
        "sysfs",
        "tracefs",
        "ramfs",
        "nfsd",
        "fuse.gvfsd-fuse",
        "fuse.portal",
    )
)

STATUS_ORDER = ("ok", "warning", "critical", "error")

USAGE_KEYS = (
    "total_bytes",
    "used_bytes",
    "available_bytes",
    "reserved_bytes",
    "used_percent",
    "inodes_total",
    "inodes_used",
    "inodes_available",
    "inodes_used_percent",
)

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


class FilesystemError(Exception):
    """Bad input to the engine (a path that does not exist, bad thresholds)."""


class Mount:
    """One line of /proc/self/mountinfo."""

    __slots__ = ("mount_point", "device", "fstype", "options", "dev_id")

    def __init__(self, mount_point, device, fstype, options, dev_id=None):
        self.mount_point = mount_point
        self.device = device
        self.fstype = fstype
        self.options = options
        self.dev_id = dev_id

    def __repr__(self):
        return "Mount(%r, %r, %r)" % (self.mount_point, self.device, self.fstype)


def _unescape(field):
    """Undo the kernel's octal escaping of spaces, tabs, newlines and backslashes."""
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text):
    """Parse the text of a mountinfo file into a list of Mount, in kernel order."""
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            sep = fields.index("-", 6)
        except ValueError:
            continue  # not a mountinfo line
        if len(fields) < sep + 3:
            continue
        mount_options = fields[5].split(",")
        super_options = fields[sep + 3].split(",") if len(fields) > sep + 3 else []
        options = mount_options + [o for o in super_options if o not in mount_options]
        mounts.append(
            Mount(
                mount_point=_unescape(fields[4]),
                device=_unescape(fields[sep + 2]),
                fstype=fields[sep + 1],
                options=",".join(options),
                dev_id=fields[2],
            )
        )
    return mounts


def read_mounts(mountinfo=MOUNTINFO):
    with open(mountinfo, "r", encoding="utf-8", errors="surrogateescape") as handle:
        return parse_mountinfo(handle.read())


def is_pseudo(mount):
    return mount.fstype in PSEUDO_FSTYPES


def visible_mounts(mounts):
    """The mounts that are reachable by their mount point: when several are
    stacked on one point only the last one counts (as for df)."""
    by_point = {}
    for mount in mounts:
        by_point.pop(mount.mount_point, None)
        by_point[mount.mount_point] = mount
    return list(by_point.values())


def _is_under(path, mount_point):
    if mount_point == "/":
        return True
    return path == mount_point or path.startswith(mount_point + "/")


def mount_for_path(path, mounts):
    """The mount that holds ``path`` (already made absolute and, where it could
    be, resolved): the longest mount point that prefixes it, the last one
    mounted when several are stacked."""
    best = None
    for mount in visible_mounts(mounts):
        if _is_under(path, mount.mount_point):
            if best is None or len(mount.mount_point) >= len(best.mount_point):
                best = mount
    return best


def default_targets(mounts, fstypes=None, exclude_fstypes=None):
    """Every visible mount, filtered by type; pseudo file systems only when ``fstypes`` names their type."""
    return [
        mount
        for mount in visible_mounts(mounts)
        if (not is_pseudo(mount) or (fstypes and mount.fstype in fstypes)) and fstype_wanted(mount, fstypes, exclude_fstypes)
    ]


def fstype_wanted(mount, fstypes=None, exclude_fstypes=None):
    if fstypes and mount.fstype not in fstypes:
        return False
    return not (exclude_fstypes and mount.fstype in exclude_fstypes)


def _ceil_percent(part, whole):
    """Percentage rounded up, as df prints it; None where df prints '-'."""
    if whole <= 0:
        return None
    scaled = part * 100
    return scaled // whole + (1 if scaled % whole else 0)


def usage_from_statvfs(st):
    """df -B1 and df -i arithmetic on one os.statvfs result."""
    unit = st.f_frsize or st.f_bsize
    used_blocks = st.f_blocks - st.f_bfree
    used_inodes = st.f_files - st.f_ffree
    return {
        "total_bytes": st.f_blocks * unit,
        "used_bytes": used_blocks * unit,
        "available_bytes": st.f_bavail * unit,
        "reserved_bytes": max(st.f_bfree - st.f_bavail, 0) * unit,
        "used_percent": _ceil_percent(used_blocks, used_blocks + st.f_bavail),
        "inodes_total": st.f_files,
        "inodes_used": used_inodes,
        "inodes_available": st.f_ffree,
        "inodes_used_percent": _ceil_percent(used_inodes, used_inodes + st.f_ffree) if st.f_files else None,
    }


class _Probe(threading.Thread):
    """Resolve a path and statvfs it in a daemon thread: a call that never
    returns (a hung network file system) is abandoned at the deadline instead
    of blocking the caller."""

    def __init__(self, path, statvfs, resolve):
        super().__init__(name="statfs:%s" % path)
        self.daemon = True
        self.path = path
        self.statvfs = statvfs
        self.resolve = resolve
        self.real = None
        self.missing = False
        self.result = None
        self.error = None

    def run(self):
        try:
            if self.resolve:
                os.lstat(self.path)
                self.real = os.path.realpath(self.path)
            self.result = self.statvfs(self.path)
        except FileNotFoundError:
            self.missing = True
        except OSError as exc:
            self.error = exc


def probe_all(paths, timeout, statvfs=os.statvfs, resolve=False):
    """Probe every path concurrently; each gets ``timeout`` seconds from the
    start. Returns the finished or abandoned _Probe objects by path."""
    probes = dict((path, _Probe(path, statvfs, resolve)) for path in paths)
    deadline = time.monotonic() + timeout
    for probe in probes.values():
        try:
            probe.start()
        except RuntimeError as exc:  # no thread could be started (memory, process limits)
            probe.error = OSError("cannot start a thread to query it: %s" % exc)
    for probe in probes.values():
        if probe.error is None:
            probe.join(max(0.0, deadline - time.monotonic()))
    return probes


def probe_error(probe, timeout):
    """Why a probe gave no usage, or None when it did."""
    if probe.is_alive():
        return "statfs did not answer within %g s (hung file system?)" % timeout
    if probe.error is not None:
        return "statfs failed: %s" % (probe.error.strerror or probe.error)
    return None


def classify(usage, thresholds):
    """ok/warning/critical from the used_percent and inodes_used_percent."""
    status = "ok"
    for key, warn, crit in (
        ("used_percent", thresholds["warn_percent"], thresholds["critical_percent"]),
        ("inodes_used_percent", thresholds["inodes_warn_percent"], thresholds["inodes_critical_percent"]),
    ):
        value = usage.get(key)
        if value is None:
            continue
        if value >= crit:
            status = worst(status, "critical")
        elif value >= warn:
            status = worst(status, "warning")
    return status


def worst(*statuses):
    return max(statuses, key=STATUS_ORDER.index) if statuses else "ok"


def human_bytes(value):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            return ("%d %s" % (value, unit)) if unit == "B" else ("%.1f %s" % (value, unit))
        value /= 1024.0
    return "%d B" % value  # pragma: no cover


def alert_line(fs, thresholds):
    """One readable line for a file system over a threshold or in error."""
    where = fs["mount"] if fs["path"] == fs["mount"] else "%s (on %s)" % (fs["path"], fs["mount"])
    if fs["status"] == "error":
        return "%s %s: error: %s" % (fs["status"].upper(), where, fs["error"])
    parts = []
    if fs["used_percent"] is not None and fs["used_percent"] >= thresholds["warn_percent"]:
        parts.append("%d%% space used, %s available" % (fs["used_percent"], human_bytes(fs["available_bytes"])))
    if fs["inodes_used_percent"] is not None and fs["inodes_used_percent"] >= thresholds["inodes_warn_percent"]:
        parts.append("%d%% inodes used, %d available" % (fs["inodes_used_percent"], fs["inodes_available"]))
    return "%s %s (%s): %s" % (fs["status"].upper(), where, fs["device"], "; ".join(parts))


def check_thresholds(thresholds):
    """Raise FilesystemError naming the option when the thresholds make no sense."""
    for name, value in sorted(thresholds.items()):
        if not 0 <= value <= 100:
            raise FilesystemError("%s must be between 0 and 100, got %s" % (name, value))
    for warn, crit in (("warn_percent", "critical_percent"), ("inodes_warn_percent", "inodes_critical_percent")):
        if thresholds[warn] > thresholds[crit]:
            raise FilesystemError("%s (%s) must not be greater than %s (%s)" % (warn, thresholds[warn], crit, thresholds[crit]))


def _with_default_thresholds(thresholds):
    thresholds = dict(thresholds or {})
    for key, default in (("warn_percent", 80), ("critical_percent", 90), ("inodes_warn_percent", 80), ("inodes_critical_percent", 90)):
        thresholds.setdefault(key, default)
    check_thresholds(thresholds)
    return thresholds


def _path_targets(paths, mounts, timeout, statvfs, option):
    """(path, mount, probe) for each distinct path, in the order given; FilesystemError naming ``option`` for a missing one."""
    requested = list(dict.fromkeys(paths))
    probes = probe_all(requested, timeout, statvfs, resolve=True)
    missing = [path for path in requested if probes[path].missing]
    if missing:
        raise FilesystemError("%s: %s does not exist" % (option, ", ".join(missing)))
    targets = []
    for path in requested:
        probe = probes[path]
        # A hung probe never resolved the path: place it by its spelling.
        mount = mount_for_path(probe.real or os.path.abspath(path), mounts)
        if mount is not None:
            targets.append((path, mount, probe))
    return targets


def _either(values):
    values = list(values)
    return values[0] if len(values) == 1 else "%s or %s" % (", ".join(values[:-1]), values[-1])


def check_selection(candidates, chosen, fstypes=None, exclude_fstypes=None, paths_option=None):
    """Raise FilesystemError naming the filter when ``fstypes``/``exclude_fstypes`` leave none of the
    ``candidates`` (the Mounts before filtering) in ``chosen``.

    In an alerting play a typo in a filter would otherwise report ``ok`` with nothing checked.
    """
    if chosen or not candidates or not (fstypes or exclude_fstypes):
        return
    types = ", ".join(sorted(set(mount.fstype for mount in candidates)))
    if paths_option:
        held = "the file systems holding %s" % paths_option
        wording = ("none of %s has type %%s" % held, "%%s excludes every one of %s" % held, "none of %s" % held, "their types: %s" % types)
    else:
        wording = ("no mounted file system has type %s", "%s excludes every mounted file system", "no mounted file system", "types mounted here: %s" % types)
    has_type, excludes, none, known = wording
    if not exclude_fstypes:
        message = "fstypes: " + has_type % _either(fstypes)
    elif not fstypes:
        message = "exclude_fstypes: " + excludes % ", ".join(exclude_fstypes)
    else:
        message = "fstypes (%s) and exclude_fstypes (%s) together select %s" % (", ".join(fstypes), ", ".join(exclude_fstypes), none)
    raise FilesystemError("%s (%s)" % (message, known))


def _report(path, mount, probe, timeout, thresholds):
    """One entry of ``filesystems``."""
    fs = {"path": path, "mount": mount.mount_point, "device": mount.device, "fstype": mount.fstype, "options": mount.options}
    error = probe_error(probe, timeout)
    if error is None:
        fs.update(usage_from_statvfs(probe.result))
        fs["status"] = classify(fs, thresholds)
    else:
        fs.update(dict.fromkeys(USAGE_KEYS))
        fs["status"] = "error"
    fs["error"] = error
    return fs


def disk_usage(paths=None, fstypes=None, exclude_fstypes=None, thresholds=None, timeout=5.0, mounts=None, statvfs=os.statvfs, paths_option="paths"):
    """Usage of the given paths' file systems, or of every real mounted one.

    Returns ``{"filesystems": [...], "status": worst, "alerts": [...]}``.
    Raises FilesystemError for bad thresholds, a bad timeout, a path that does
    not exist (naming ``paths_option``, the option that gave the paths) or
    type filters that select no file system. ``mounts`` and ``statvfs`` are
    injectable for tests.
    """
    if timeout <= 0:
        raise FilesystemError("timeout must be greater than 0, got %s" % timeout)
    thresholds = _with_default_thresholds(thresholds)
    if mounts is None:
        mounts = read_mounts()
    if paths:
        candidates = _path_targets(paths, mounts, timeout, statvfs, paths_option)
        targets = [target for target in candidates if fstype_wanted(target[1], fstypes, exclude_fstypes)]
        check_selection([target[1] for target in candidates], targets, fstypes, exclude_fstypes, paths_option)
    else:
        chosen = default_targets(mounts, fstypes, exclude_fstypes)
        check_selection(default_targets(mounts), chosen, fstypes, exclude_fstypes)
        probes = probe_all([mount.mount_point for mount in chosen], timeout, statvfs)
        targets = [(mount.mount_point, mount, probes[mount.mount_point]) for mount in chosen]
    filesystems = [_report(path, mount, probe, timeout, thresholds) for path, mount, probe in targets]
    return {
        "filesystems": filesystems,
        "status": worst(*[fs["status"] for fs in filesystems]),
        "alerts": [alert_line(fs, thresholds) for fs in filesystems if fs["status"] != "ok"],
    }
