# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The file system usage engine, against this machine's real mounts and df."""

from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._fs import mounts as fsu
from ansible_collections.datasteward.storage.tests.unit.utils.fs_samples import MOUNTINFO, FakeStat


def test_parse_mountinfo_unescapes_and_merges_options():
    mounts = fsu.parse_mountinfo(MOUNTINFO)
    spaced = [m for m in mounts if m.device == "/dev/sdb1"][0]
    assert spaced.mount_point == "/mnt/with space"
    assert spaced.fstype == "xfs"
    assert spaced.options == "rw,noatime,attr2"


def test_default_targets_skip_pseudo_and_shadowed_mounts():
    mounts = fsu.parse_mountinfo(MOUNTINFO)
    chosen = fsu.default_targets(mounts)
    assert [m.mount_point for m in chosen] == ["/", "/mnt/with space", "/data", "/data/scratch"]
    # the NFS mount stacked on /data hides the ext4 one below it
    assert [m.fstype for m in chosen if m.mount_point == "/data"] == ["nfs4"]
    assert [m.mount_point for m in fsu.default_targets(mounts, fstypes=["tmpfs"])] == ["/data/scratch"]
    assert "/data" not in [m.mount_point for m in fsu.default_targets(mounts, exclude_fstypes=["nfs4"])]


def test_mount_for_path_takes_the_longest_prefix():
    mounts = fsu.parse_mountinfo(MOUNTINFO)
    assert fsu.mount_for_path("/data/scratch/x/y", mounts).fstype == "tmpfs"
    assert fsu.mount_for_path("/data/scratchy", mounts).fstype == "nfs4"
    assert fsu.mount_for_path("/etc/passwd", mounts).mount_point == "/"


def test_usage_arithmetic_matches_df_rules():
    usage = fsu.usage_from_statvfs(FakeStat(f_blocks=1000, f_bfree=150, f_bavail=100, f_files=10, f_ffree=7))
    assert usage["total_bytes"] == 1000 * 4096
    assert usage["used_bytes"] == 850 * 4096
    assert usage["available_bytes"] == 100 * 4096
    assert usage["reserved_bytes"] == 50 * 4096
    assert usage["used_percent"] == 90  # 850 / 950 = 89.47 -> rounded up like df
    assert usage["inodes_used"] == 3
    assert usage["inodes_used_percent"] == 30
    empty = fsu.usage_from_statvfs(FakeStat())
    assert empty["used_percent"] is None and empty["inodes_used_percent"] is None


def test_thresholds_grade_and_alert():
    def stat(path):
        return FakeStat(f_blocks=100, f_bfree=5, f_bavail=5, f_files=100, f_ffree=50)

    result = fsu.disk_usage(mounts=fsu.parse_mountinfo(MOUNTINFO), statvfs=stat, fstypes=["xfs"])
    (fs,) = result["filesystems"]
    assert fs["used_percent"] == 95 and fs["status"] == "critical"
    assert result["status"] == "critical"
    assert result["alerts"] == ["CRITICAL /mnt/with space (/dev/sdb1): 95% space used, 20.0 KiB available"]
    relaxed = fsu.disk_usage(
        mounts=fsu.parse_mountinfo(MOUNTINFO), statvfs=stat, fstypes=["xfs"], thresholds=dict(warn_percent=96, critical_percent=99, inodes_warn_percent=40)
    )
    assert relaxed["status"] == "warning"
    assert "50% inodes used" in relaxed["alerts"][0]


@pytest.mark.parametrize(
    "thresholds, message",
    [
        (dict(warn_percent=101), "warn_percent must be between 0 and 100"),
        (dict(inodes_critical_percent=-1), "inodes_critical_percent must be between 0 and 100"),
        (dict(warn_percent=95, critical_percent=90), "warn_percent (95) must not be greater than critical_percent (90)"),
    ],
)
def test_bad_thresholds_name_the_option(thresholds, message):
    with pytest.raises(fsu.FilesystemError) as exc:
        fsu.disk_usage(thresholds=thresholds)
    assert message in str(exc.value)


def some_stat(path):
    return FakeStat(f_blocks=100, f_bfree=50, f_bavail=50, f_files=10, f_ffree=5)


@pytest.mark.parametrize(
    "filters, message",
    [
        (dict(fstypes=["nosuchfs"]), "fstypes: no mounted file system has type nosuchfs (types mounted here: ext4, nfs4, tmpfs, xfs)"),
        (dict(fstypes=["ext3", "btrfs"]), "fstypes: no mounted file system has type ext3 or btrfs (types mounted here: ext4, nfs4, tmpfs, xfs)"),
        (
            dict(exclude_fstypes=["ext4", "nfs4", "tmpfs", "xfs"]),
            "exclude_fstypes: ext4, nfs4, tmpfs, xfs excludes every mounted file system (types mounted here: ext4, nfs4, tmpfs, xfs)",
        ),
        (
            dict(fstypes=["xfs"], exclude_fstypes=["xfs"]),
            "fstypes (xfs) and exclude_fstypes (xfs) together select no mounted file system (types mounted here: ext4, nfs4, tmpfs, xfs)",
        ),
    ],
)
def test_filters_that_select_nothing_name_the_filter(filters, message):
    with pytest.raises(fsu.FilesystemError) as exc:
        fsu.disk_usage(mounts=fsu.parse_mountinfo(MOUNTINFO), statvfs=some_stat, **filters)
    assert str(exc.value) == message


def test_filter_on_paths_that_selects_nothing_names_the_option(tmp_path):
    mounts = [fsu.Mount("/", "/dev/vda", "ext4", "rw")]
    with pytest.raises(fsu.FilesystemError) as exc:
        fsu.disk_usage(paths=[str(tmp_path)], fstypes=["nfs4"], mounts=mounts, statvfs=some_stat, paths_option="path")
    assert str(exc.value) == "fstypes: none of the file systems holding path has type nfs4 (their types: ext4)"
    # a filter that keeps one of the paths is not an error
    result = fsu.disk_usage(paths=[str(tmp_path)], fstypes=["nfs4", "ext4"], mounts=mounts, statvfs=some_stat)
    assert [fs["mount"] for fs in result["filesystems"]] == ["/"]


def test_pseudo_file_systems_when_asked_for_by_type():
    result = fsu.disk_usage(mounts=fsu.parse_mountinfo(MOUNTINFO), statvfs=some_stat, fstypes=["proc", "cgroup2"])
    assert [fs["mount"] for fs in result["filesystems"]] == ["/proc", "/sys/fs/cgroup"]


def test_missing_path_is_named(tmp_path):
    with pytest.raises(fsu.FilesystemError, match="paths: %s does not exist" % (tmp_path / "nope")):
        fsu.disk_usage(paths=[str(tmp_path), str(tmp_path / "nope")])


def test_statfs_error_is_reported_not_raised():
    def broken(path):
        raise OSError(5, "Input/output error")

    result = fsu.disk_usage(mounts=fsu.parse_mountinfo(MOUNTINFO), statvfs=broken)
    assert {fs["status"] for fs in result["filesystems"]} == {"error"}
    assert result["filesystems"][0]["error"] == "statfs failed: Input/output error"
    assert result["filesystems"][0]["total_bytes"] is None
    assert len(result["alerts"]) == len(result["filesystems"])


def test_blocking_statfs_is_abandoned_at_the_deadline():
    """The deadline without FUSE: a statvfs that blocks until released."""
    release = threading.Event()

    def statvfs(path):
        if path == "/data":
            release.wait(60)
        return FakeStat(f_blocks=100, f_bfree=50, f_bavail=50, f_files=10, f_ffree=5)

    try:
        result = fsu.disk_usage(mounts=fsu.parse_mountinfo(MOUNTINFO), statvfs=statvfs, timeout=0.5)
    finally:
        release.set()
    by_mount = dict((fs["mount"], fs) for fs in result["filesystems"])
    assert by_mount["/data"]["status"] == "error"
    assert by_mount["/data"]["error"] == "statfs did not answer within 0.5 s (hung file system?)"
    assert [fs["status"] for m, fs in sorted(by_mount.items()) if m != "/data"] == ["ok", "ok", "ok"]


# --- against the real machine -------------------------------------------------


def df_report(mount):
    """(size, used, avail, pcent, itotal, iused, ifree, ipcent) as df prints them for ``mount``."""
    space = (
        subprocess.run(["df", "-B1", "--output=size,used,avail,pcent", "--", mount], capture_output=True, text=True, check=True).stdout.splitlines()[1].split()
    )
    inodes = (
        subprocess.run(["df", "--output=itotal,iused,iavail,ipcent", "--", mount], capture_output=True, text=True, check=True).stdout.splitlines()[1].split()
    )

    def number(text):
        return None if text == "-" else int(text.rstrip("%"))

    return tuple(number(v) for v in space + inodes)


def ours(fs):
    return (
        fs["total_bytes"],
        fs["used_bytes"],
        fs["available_bytes"],
        fs["used_percent"],
        fs["inodes_total"],
        fs["inodes_used"],
        fs["inodes_available"],
        fs["inodes_used_percent"],
    )


# How far a reading may be from df's on a file system that never held still
# while it was compared (make test writes to / from several jobs at once):
# far below any arithmetic mistake (the reserved blocks of bfree against
# bavail are gigabytes; a percentage off by one is the rounding rule).
BUSY_SLACK = (64 << 20, 64 << 20, 64 << 20, 1, 4096, 4096, 4096, 1)


def test_equal_to_df_on_every_real_file_system():
    result = fsu.disk_usage()
    mounts = [fs["mount"] for fs in result["filesystems"]]
    assert "/" in mounts
    for mount in mounts:
        # A busy file system (the one the tests write to, also from parallel
        # workers under ansible-test) may change while it is read, even change
        # and change back between df's two readings: our reading, taken between
        # two of df's, is compared once all three agree. Other tests may unmount
        # theirs meanwhile: a mount that is gone is no longer ours to compare.
        # One that never holds still for the deadline: each of our values must
        # then be within BUSY_SLACK of df's readings just before and just after.
        deadline = time.monotonic() + 10
        while os.path.ismount(mount):
            before = df_report(mount)
            (fs,) = fsu.disk_usage(paths=[mount])["filesystems"]
            after = df_report(mount)
            if before == ours(fs) == after or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        else:
            continue
        if not (os.path.ismount(mount) and fs["mount"] == mount):
            continue
        outside = [
            (i, b, o, a)
            for i, (b, o, a, slack) in enumerate(zip(before, ours(fs), after, BUSY_SLACK))
            if None not in (b, o, a) and not min(b, a) - slack <= o <= max(b, a) + slack
        ]
        assert not outside, (mount, outside)


def test_path_inside_a_mount_reports_its_file_system(tmp_path):
    (fs,) = fsu.disk_usage(paths=[str(tmp_path)])["filesystems"]
    expected = subprocess.run(["df", "--output=target", str(tmp_path)], capture_output=True, text=True, check=True).stdout.splitlines()[1].strip()
    assert fs["path"] == str(tmp_path)
    assert fs["mount"] == expected
