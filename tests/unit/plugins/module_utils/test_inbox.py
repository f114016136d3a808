# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The inbox engine on real folders owned by the test's user (other owners,
full disks and kills are in tests/system/inbox)."""

from __future__ import annotations

import fcntl
import os

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._copy import engine as copier
from ansible_collections.datasteward.storage.plugins.module_utils._jobs import inbox as engine
from ansible_collections.datasteward.storage.tests.unit.utils.inbox_samples import Layout, later, run


@pytest.fixture
def layout(tmp_path):
    return Layout(tmp_path)


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def test_complete_upload_is_delivered_and_moved_to_done(layout):
    layout.upload("foo-1", {"a.dcm": b"alpha", "series/b.dcm": b"beta" * 1000})
    result = run(layout)
    assert result["changed"] and not result["failed_entries"]
    [item] = result["processed"]
    dest = os.path.join(layout.study, "foo", "raw-upload")
    assert item["destination"] == dest and item["files"] == 2 and item["bytes"] == 4005
    assert sorted(v["path"] for v in item["versions"]) == [os.path.join(dest, "a.dcm"), os.path.join(dest, "series", "b.dcm")]
    assert read(os.path.join(dest, "series", "b.dcm")) == b"beta" * 1000
    assert (os.stat(os.path.join(dest, "a.dcm")).st_mode & 0o7777) == 0o640
    assert (os.stat(dest).st_mode & 0o7777) == 0o2750
    assert layout.listing("inbox") == [] and layout.listing("processing") == [] and layout.listing("done") == ["foo-1"]
    assert not [n for n in os.listdir(dest) if n.startswith(copier.TEMP_PREFIX)]


def test_second_run_changes_nothing(layout):
    layout.upload("foo-1", {"a": b"1"})
    run(layout)
    again = run(layout)
    assert not again["changed"] and not again["processed"] and not again["failed_entries"]


def test_check_mode_reports_the_plan_and_moves_nothing(layout):
    layout.upload("foo-1", {"a": b"1", "b": b"2"})
    layout.upload("nomatch", {"a": b"1"})
    before = sorted(os.walk(layout.base))
    plan = run(layout, check_mode=True)
    assert sorted(os.walk(layout.base)) == before
    assert plan["changed"]
    assert [p["name"] for p in plan["processed"]] == ["foo-1"] and plan["processed"][0]["files"] == 2
    assert [f["name"] for f in plan["failed_entries"]] == ["nomatch"] and "moved_to" not in plan["failed_entries"][0]
    real = run(layout)
    assert [v["path"] for v in real["processed"][0]["versions"]] == [v["path"] for v in plan["processed"][0]["versions"]]


def test_dot_named_upload_is_reported_with_its_age_and_left_alone(layout):
    layout.upload("foo-2", {"part": b"x"}, finish=False)
    result = run(layout, clock=later(120))
    assert [u["name"] for u in result["uploading"]] == [".foo-2"]
    assert result["uploading"][0]["idle_seconds"] >= 119
    assert not result["changed"] and layout.listing("inbox") == [".foo-2"]


def test_recently_changed_entry_settles_first(layout):
    layout.upload("foo-3", {"a": b"x"})
    result = run(layout, clock=later(5))
    assert [s["name"] for s in result["settling"]] == ["foo-3"] and not result["changed"]
    assert layout.listing("inbox") == ["foo-3"]


def test_symlinks_inside_are_reported_not_followed(layout):
    root = layout.upload("foo-4", {"data": b"d"})
    os.symlink("/etc", os.path.join(root, b"etc"))
    os.symlink("/etc/passwd", os.path.join(root, b"passwd"))
    [item] = run(layout)["processed"]
    assert sorted(s["path"] for s in item["skipped"]) == ["etc", "passwd"]
    assert all("symlink" in s["reason"] for s in item["skipped"])
    assert os.listdir(os.path.join(layout.study, "foo", "raw-upload")) == ["data"]


def test_name_not_matching_goes_to_failed_with_a_reason_file(layout):
    layout.upload("Bad Name", {"a": b"1"})
    [item] = run(layout)["failed_entries"]
    assert "does not match name_pattern" in item["reason"]
    assert layout.listing("failed") == ["Bad Name", "Bad Name.reason"]
    assert b"does not match" in read(layout.folder("failed", "Bad Name.reason"))


def test_destination_outside_dest_root_is_refused(layout):
    layout.upload("5-..", {"a": b"1"})
    [item] = run(layout, name_pattern=r"^(?P<id>[0-9]+)-(?P<study>[a-z.]+)$")["failed_entries"]
    assert "not inside dest_root" in item["reason"] and "study=.." in item["reason"]
    assert os.listdir(layout.study) == [] and not os.path.exists(os.path.join(layout.base, "raw-upload"))
    assert layout.listing("failed") == ["5-..", "5-...reason"]


def test_uploader_not_allowed_is_refused(layout):
    layout.upload("bar-6", {"a": b"1"})
    allowed = [{"dest": os.path.join(layout.study, "foo", "*"), "users": None, "groups": ["study-{study}"], "require": "any"}]
    [item] = run(layout, allowed=allowed)["failed_entries"]
    assert "alice" in item["reason"] and "not allowed" in item["reason"]
    assert os.listdir(layout.study) == []


def test_group_templates_and_require_all(layout):
    layout.upload("foo-7", {"a": b"1"})
    allowed = [{"dest": "*", "users": ["bob"], "groups": ["study-{study}"], "require": "all"}]
    assert run(layout, allowed=allowed)["failed_entries"]
    layout.upload("foo-8", {"a": b"1"})
    allowed = [{"dest": "*", "users": ["alice"], "groups": ["study-{study}"], "require": "all"}]
    assert run(layout, allowed=allowed)["processed"]


def test_reupload_keeps_old_content_and_adds_versions(layout):
    layout.upload("foo-1", {"same": b"s", "changed": b"old"})
    run(layout)
    layout.upload("foo-1", {"same": b"s", "changed": b"new"})
    [item] = run(layout)["processed"]
    assert item["identical"] == 1 and [v["version"] for v in item["versions"]] == [2]
    layout.upload("foo-1", {"changed": b"newest"})
    [item] = run(layout)["processed"]
    dest = os.path.join(layout.study, "foo", "raw-upload")
    assert sorted(os.listdir(dest)) == ["changed", "changed.v2", "changed.v3", "same"]
    assert [read(os.path.join(dest, n)) for n in ("changed", "changed.v2", "changed.v3")] == [b"old", b"new", b"newest"]
    assert layout.listing("done") == ["foo-1", "foo-1.2", "foo-1.3"]


def test_identical_to_an_older_version_is_not_stored_again(layout):
    for data in (b"one", b"two", b"one"):
        layout.upload("foo-1", {"f": data})
        run(layout)
    assert sorted(os.listdir(os.path.join(layout.study, "foo", "raw-upload"))) == ["f", "f.v2"]


def test_entry_moved_back_from_done_is_processed_again(layout):
    layout.upload("foo-1", {"a": b"1", "b": b"2"})
    run(layout)
    os.rename(layout.folder("done", "foo-1"), os.path.join(layout.inbox, "foo-1"))
    with open(os.path.join(layout.inbox, "foo-1", "b"), "wb") as handle:
        handle.write(b"22")
    [item] = run(layout)["processed"]
    assert item["identical"] == 1 and [v["version"] for v in item["versions"]] == [2]
    assert layout.listing("done") == ["foo-1"]


def test_name_with_done_suffix_still_matches(layout):
    layout.upload("foo-1.2", {"a": b"1"})
    [item] = run(layout)["processed"]
    assert item["destination"].endswith("/foo/raw-upload")


def test_invalid_utf8_names_are_delivered_and_shown_escaped(layout):
    layout.upload("foo-9", {b"caf\xe9/r\xff.dcm": b"bytes"})
    [item] = run(layout)["processed"]
    assert item["versions"][0]["path"].endswith("caf\\xe9/r\\xff.dcm")
    dest = os.path.join(os.fsencode(layout.study), b"foo", b"raw-upload", b"caf\xe9", b"r\xff.dcm")
    assert read(dest) == b"bytes"


def test_non_utf8_entry_name_is_refused_readably(layout):
    layout.upload(b"foo-\xff", {"a": b"1"})
    [item] = run(layout)["failed_entries"]
    assert item["name"] == "foo-\\xff"


def test_top_level_file_and_symlink_are_refused(layout):
    with open(os.path.join(layout.inbox, "foo-10"), "wb") as handle:
        handle.write(b"x")
    os.symlink("/etc", os.path.join(layout.inbox, "foo-11"))
    failed = run(layout)["failed_entries"]
    assert sorted(f["name"] for f in failed) == ["foo-10", "foo-11"]
    assert os.path.islink(layout.folder("failed", "foo-11"))


def test_name_collision_in_failed_gets_a_suffix(layout):
    for dummy in range(2):
        layout.upload("XX", {"a": b"1"})
        run(layout)
    assert layout.listing("failed") == ["XX", "XX.2", "XX.2.reason", "XX.reason"]


def test_leftover_in_processing_is_resumed_and_temporaries_removed(layout):
    layout.upload("foo-1", {"a": b"1", "b": b"2"})
    os.rename(os.path.join(layout.inbox, "foo-1"), layout.folder("processing", "foo-1"))
    dest = os.path.join(layout.study, "foo", "raw-upload")
    os.makedirs(dest)
    with open(os.path.join(dest, "a"), "wb") as handle:  # delivered before the kill
        handle.write(b"1")
    temp = os.path.join(dest, copier.temp_name("b"))
    with open(temp, "wb") as handle:  # the copy in flight
        handle.write(b"half")
    result = run(layout)
    assert result["resumed"] == ["foo-1"]
    [item] = result["processed"]
    assert item["resumed"] and item["identical"] == 1 and len(item["versions"]) == 1
    assert sorted(os.listdir(dest)) == ["a", "b"]
    assert layout.listing("processing") == [] and layout.listing("done") == ["foo-1"]


def test_locked_run_does_nothing_and_reports_stuck(layout):
    layout.upload("foo-1", {"a": b"1"})
    os.rename(os.path.join(layout.inbox, "foo-1"), layout.folder("processing", "foo-1"))
    fd = os.open(layout.folder("processing"), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        result = run(layout, clock=later(7200))
    finally:
        os.close(fd)
    assert result["locked"] and not result["changed"] and not result["processed"]
    assert [s["name"] for s in result["stuck"]] == ["foo-1"]


def test_keep_done_days_removes_old_done_entries(layout):
    layout.upload("foo-1", {"a": b"1"})
    run(layout)
    os.symlink("/etc", layout.folder("done", "foo-1", "etc"))
    assert run(layout, keep_done_days=1, clock=later(3600))["removed_done"] == []
    plan = run(layout, keep_done_days=1, clock=later(3 * 86400), check_mode=True)
    assert plan["removed_done"] == ["foo-1"] and layout.listing("done") == ["foo-1"]
    assert run(layout, keep_done_days=1, clock=later(3 * 86400))["removed_done"] == ["foo-1"]
    assert layout.listing("done") == [] and os.path.isdir("/etc")


@pytest.mark.parametrize(
    "extra, words",
    [
        ({"name_pattern": "(unclosed"}, "name_pattern"),
        ({"dest": "/study/{nosuch}"}, "nosuch"),
        ({"mode": "rw-r"}, "mode"),
        ({"allowed": [{"dest": "*", "users": None, "groups": None, "require": "any"}]}, "allowed[0]"),
        ({"path": "relative"}, "absolute"),
        ({"settle_seconds": -1}, "settle_seconds"),
    ],
)
def test_bad_options_name_the_option(layout, extra, words):
    with pytest.raises(engine.InboxError) as failed:
        run(layout, **extra)
    assert words in str(failed.value)


def test_missing_folder_is_named(layout):
    os.rmdir(layout.folder("done"))
    with pytest.raises(engine.InboxError) as failed:
        run(layout)
    assert "done" in str(failed.value) and layout.folder("done") in str(failed.value)


def test_file_in_upload_where_destination_has_a_directory_gets_a_version(layout):
    os.makedirs(os.path.join(layout.study, "foo", "raw-upload", "x"))
    layout.upload("foo-1", {"x": b"file"})
    [item] = run(layout)["processed"]
    assert item["versions"][0]["path"].endswith("/x.v2")


def test_directory_in_upload_where_destination_has_a_file_fails_the_entry(layout):
    os.makedirs(os.path.join(layout.study, "foo", "raw-upload"))
    with open(os.path.join(layout.study, "foo", "raw-upload", "d"), "wb") as handle:
        handle.write(b"file")
    layout.upload("foo-1", {"d/inner": b"1"})
    [item] = run(layout)["failed_entries"]
    assert "not a directory" in item["reason"] and layout.listing("failed") == ["foo-1", "foo-1.reason"]
