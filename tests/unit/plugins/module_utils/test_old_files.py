# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The old_files engine on tmp_path trees: selection, limits, and the attack
trees that need neither root nor mounts (symlinks out of the tree, a directory
swapped for a symlink between plan and action, a file touched after selection,
hard links, non-UTF-8 names), check mode equal to the real run, manifests,
restore. Mounts, full disks, other uids and SIGKILL: tests/system/old_files."""

from __future__ import annotations

import hashlib
import json
import os
import time

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._jobs import manifest as mf
from ansible_collections.datasteward.storage.plugins.module_utils._jobs import old_files as job
from ansible_collections.datasteward.storage.tests.unit.utils.old_files_params import params

DAY = 86400
OLD = time.time() - 400 * DAY


def put(root, rel, data=b"x", age_days=None):
    path = os.path.join(os.fsencode(str(root)), os.fsencode(rel))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    if age_days is not None:
        when = time.time() - age_days * DAY
        os.utime(path, (when, when))
    return path


def opts(root, **kwargs):
    return job.options_from_params(params(root, **kwargs))


def listing(root):
    root = os.fsencode(str(root))
    found = set()
    for top, dirs, files in os.walk(root):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(top, d))]:
            found.add(os.path.relpath(os.path.join(top, name), root))
    return found


def sha(path):
    with open(path, "rb") as handle:
        return hashlib.sha512(handle.read()).hexdigest()


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "scratch"
    put(root, "alice/old.dat", b"a" * 3000, 100)
    put(root, "alice/new.dat", b"n" * 10, 1)
    put(root, "bob/run/big.h5", b"b" * 9000, 60)
    put(root, "bob/run/small.log", b"s" * 10, 200)
    put(root, "keep/ref.dat", b"k" * 10, 500)
    (tmp_path / "dest").mkdir()
    return root


def test_reported_lists_old_files_largest_first_and_changes_nothing(tree):
    before = listing(tree)
    result = job.run(opts(tree))
    assert [f["path"] for f in result["files"]] == [str(tree / p) for p in ("bob/run/big.h5", "alice/old.dat", "keep/ref.dat", "bob/run/small.log")]
    assert result["changed"] is False and result["manifest"] is None
    assert result["totals"]["files"] == 4 and result["totals"]["bytes"] == 9000 + 3000 + 10 + 10
    assert listing(tree) == before
    assert not os.path.exists(str(tree) + ".manifests")


def test_orders_and_filters(tree):
    oldest = job.run(opts(tree, order="oldest"))
    assert oldest["files"][0]["path"].endswith("keep/ref.dat")
    by_path = job.run(opts(tree, order="path", min_size="1K"))
    assert [f["path"][len(str(tree)) + 1 :] for f in by_path["files"]] == ["alice/old.dat", "bob/run/big.h5"]
    assert job.run(opts(tree, age="90d", excludes=["run"]))["totals"]["files"] == 2
    assert job.run(opts(tree, owners=[str(os.getuid())]))["totals"]["files"] == 4
    assert job.run(opts(tree, exclude_owners=[str(os.getuid())]))["totals"]["files"] == 0


def test_protect_is_never_touched_nor_counted(tree):
    result = job.run(opts(tree, protect=["keep", "bob/run/small.log"], state="absent", remove_empty_dirs=True))
    assert result["totals"]["protected"] == 2
    assert (tree / "keep/ref.dat").exists() and (tree / "bob/run/small.log").exists()
    assert not (tree / "bob/run/big.h5").exists()
    assert (tree / "bob/run").is_dir()  # holds a protected file: never emptied


def test_limits_take_a_prefix_of_the_order(tree):
    assert [f["bytes"] for f in job.run(opts(tree, state="absent", max_files=1), check_mode=True)["files"]] == [9000]
    assert [f["bytes"] for f in job.run(opts(tree, state="absent", max_bytes="12000"), check_mode=True)["files"]] == [9000, 3000]
    # free_bytes: stop once enough allocated space is freed (the file that crosses it included)
    result = job.run(opts(tree, state="absent", free_bytes="1"), check_mode=True)
    assert [f["bytes"] for f in result["files"]] == [9000]
    assert job.run(opts(tree), check_mode=True)["totals"]["files"] == 4  # reported: never limited


def test_check_mode_is_the_exact_list_of_the_real_run(tree):
    kwargs = dict(state="relocated", dest=str(tree.parent / "dest"), max_files=3, remove_empty_dirs=True)
    planned = job.run(opts(tree, **kwargs), check_mode=True, diff=True)
    assert planned["changed"] is True and planned["manifest"] is None
    assert not (tree.parent / "dest/node1").exists()
    done = job.run(opts(tree, **kwargs), diff=True)
    assert sorted(f["path"] for f in done["files"]) == sorted(f["path"] for f in planned["files"])
    assert planned["diff"]["before"].splitlines() == [f["path"] for f in planned["files"]]
    assert sorted(done["dirs_removed"]) == sorted(planned["dirs_removed"])
    assert done["users"] == planned["users"]
    again = job.run(opts(tree, **kwargs))
    assert again["changed"] is True and again["totals"]["files"] == 1  # the one left by max_files
    assert job.run(opts(tree, **kwargs))["changed"] is False


def test_relocate_mirrors_paths_keeps_content_and_restore_puts_all_back(tree):
    digests = {rel: sha(tree / rel) for rel in ("alice/old.dat", "bob/run/big.h5")}
    for rel in digests:  # reading moved the atime: old again
        os.utime(tree / rel, (OLD, OLD))
    stats = {rel: os.stat(tree / rel) for rel in digests}
    dest = tree.parent / "dest"
    moved = job.run(opts(tree, state="relocated", dest=str(dest), min_size="1K"))
    assert moved["changed"] and moved["totals"]["files"] == 2
    for rel, digest in digests.items():
        assert not (tree / rel).exists()
        moved_st = os.stat(dest / "node1" / rel)  # before reading it here moves its atime
        assert (moved_st.st_mtime_ns, moved_st.st_atime_ns) == (stats[rel].st_mtime_ns, stats[rel].st_atime_ns)
        assert sha(dest / "node1" / rel) == digest
    records, problems = mf.read_manifest(moved["manifest"])
    assert problems == [] and {r["relpath"] for r in records} == set(digests)
    assert all(r["digest"] == digests[r["relpath"]] and r["action"] == "relocated" for r in records)
    assert oct(os.stat(moved["manifest"]).st_mode & 0o777) == "0o600"

    planned = job.run(opts(tree, state="restored", manifest=moved["manifest"]), check_mode=True)
    assert planned["changed"] and not (tree / "alice/old.dat").exists()
    back = job.run(opts(tree, state="restored", manifest=moved["manifest"]))
    assert back["changed"] and all(f["verified"] for f in back["files"]) and len(back["files"]) == 2
    for rel, digest in digests.items():
        assert sha(tree / rel) == digest and not (dest / "node1" / rel).exists()
    again = job.run(opts(tree, state="restored", manifest=moved["manifest"]))
    assert again["changed"] is False and again["skipped"] == []


def test_symlink_to_a_directory_outside_is_never_followed(tmp_path):
    outside = tmp_path / "etc"
    for index in range(5):
        put(outside, "conf%d" % index, b"secret", 999)
    root = tmp_path / "scratch"
    put(root, "old", b"o", 999)
    os.symlink(str(outside), str(root / "etc-link"))
    os.symlink(str(outside / "conf0"), str(root / "file-link"))
    result = job.run(opts(root, state="absent", age="1d"))
    assert result["totals"]["files"] == 1
    assert len(os.listdir(outside)) == 5
    assert os.path.islink(root / "etc-link") and os.path.islink(root / "file-link")


def test_root_that_is_a_symlink_fails_naming_it(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink(str(tmp_path / "real"), str(tmp_path / "link"))
    with pytest.raises(job.OldFilesError, match="path: .*link is a symlink"):
        job.run(opts(tmp_path / "link"))
    with pytest.raises(job.OldFilesError, match="path: cannot read .*missing"):
        job.run(opts(tmp_path / "missing"))


def test_directory_swapped_for_a_symlink_between_selection_and_action(tmp_path):
    outside = tmp_path / "outside"
    put(outside, "victim.dat", b"v", 999)
    root = tmp_path / "scratch"
    put(root, "proj/victim.dat", b"p", 999)
    options = opts(root, state="absent")
    the_plan = job.plan(options)
    assert [c.relpath for c in the_plan.selected] == [b"proj/victim.dat"]
    os.rename(str(root / "proj"), str(root / "proj.moved"))
    os.symlink(str(outside), str(root / "proj"))
    with mf.Manifest(options.manifest_dir, "node1", "absent") as manifest:
        outcome = job.apply(the_plan, manifest)
    assert outcome.done == [] and "symlink" in outcome.skipped[0]["reason"]
    assert (outside / "victim.dat").exists() and (root / "proj.moved/victim.dat").exists()


def test_directory_replaced_by_another_directory_is_left_alone(tmp_path):
    root = tmp_path / "scratch"
    put(root, "proj/a.dat", b"p", 999)
    put(root, "other/a.dat", b"q", 999)
    options = opts(root, state="absent", excludes=["other"])
    the_plan = job.plan(options)
    os.rename(str(root / "proj"), str(root / "proj.old"))
    os.rename(str(root / "other"), str(root / "proj"))
    with mf.Manifest(options.manifest_dir, "node1", "absent") as manifest:
        outcome = job.apply(the_plan, manifest)
    assert outcome.done == [] and "replaced" in outcome.skipped[0]["reason"]
    assert (root / "proj/a.dat").read_bytes() == b"q"


def test_file_made_recent_or_replaced_after_selection_is_left_alone(tmp_path):
    root = tmp_path / "scratch"
    for name in ("touched", "written", "replaced", "vanished", "fine"):
        put(root, name, b"old", 999)
    options = opts(root, state="absent")
    the_plan = job.plan(options)
    os.utime(root / "touched")
    (root / "written").write_bytes(b"new content")
    os.rename(root / "replaced", root / "original")  # keeps its inode busy: the new one differs
    put(root, "replaced", b"old", 999)
    os.unlink(root / "vanished")
    with mf.Manifest(options.manifest_dir, "node1", "absent") as manifest:
        outcome = job.apply(the_plan, manifest)
    assert [c.name for c, dummy in outcome.done] == [b"fine"]
    reasons = {os.path.basename(s["path"]): s["reason"] for s in outcome.skipped}
    assert set(reasons) == {"touched", "written", "replaced", "vanished"}
    assert "vanished" in reasons["vanished"] and "replaced" in reasons["replaced"]
    assert sorted(os.listdir(root)) == ["original", "replaced", "touched", "written"]


def test_atime_stamp_recheck_sees_a_read(tmp_path):
    root = tmp_path / "scratch"
    put(root, "f", b"old", 999)
    options = opts(root, state="absent", age_stamp="atime")
    the_plan = job.plan(options)
    mtime = os.stat(root / "f").st_mtime
    os.utime(root / "f", (time.time(), mtime))  # read since: atime is recent
    with mf.Manifest(options.manifest_dir, "node1", "absent") as manifest:
        outcome = job.apply(the_plan, manifest)
    assert outcome.done == [] and "used since" in outcome.skipped[0]["reason"]


def test_max_stamp_is_the_newest_of_the_three(tmp_path):
    root = tmp_path / "scratch"
    put(root, "f", b"old", 999)  # ctime is now
    assert job.run(opts(root, age_stamp="mtime"))["totals"]["files"] == 1
    assert job.run(opts(root, age_stamp="max"))["totals"]["files"] == 0


def test_hard_links_remove_only_the_name_inside_the_tree(tmp_path):
    outside = put(tmp_path / "outside", "shared.dat", b"shared", 999)
    root = tmp_path / "scratch"
    root.mkdir()
    os.link(outside, os.fsencode(str(root / "link.dat")))
    os.link(outside, os.fsencode(str(root / "link2.dat")))
    result = job.run(opts(root, state="absent"))
    assert result["totals"]["files"] == 2 and os.listdir(root) == []
    assert open(outside, "rb").read() == b"shared" and os.stat(outside).st_nlink == 1


def test_hard_links_relocate_and_restore(tmp_path):
    root = tmp_path / "scratch"
    first = put(root, "a/one", b"same inode", 999)
    os.link(first, os.fsencode(str(root / "a/two")))
    (tmp_path / "dest").mkdir()
    moved = job.run(opts(root, state="relocated", dest=str(tmp_path / "dest")))
    assert moved["totals"]["files"] == 2 and listing(root) == set()
    back = job.run(opts(root, state="restored", manifest=moved["manifest"]))
    assert back["totals"]["files"] == 2 and listing(root) == {b"a/one", b"a/two"}


def test_non_utf8_names_are_acted_on_reported_and_restored(tmp_path):
    root = tmp_path / "scratch"
    put(root, b"d\xff/caf\xe9.dat".decode("utf-8", "surrogateescape"), b"bytes", 999)
    (tmp_path / "dest").mkdir()
    moved = job.run(opts(root, state="relocated", dest=str(tmp_path / "dest")))
    json.dumps(moved)  # the result is plain JSON
    assert moved["files"][0]["path"].endswith("d\\xff/caf\\xe9.dat")
    assert os.path.exists(os.fsencode(str(tmp_path / "dest/node1")) + b"/d\xff/caf\xe9.dat")
    back = job.run(opts(root, state="restored", manifest=moved["manifest"]))
    assert back["totals"]["files"] == 1
    assert open(os.fsencode(str(root)) + b"/d\xff/caf\xe9.dat", "rb").read() == b"bytes"


def test_existing_file_in_the_relocation_area_is_never_overwritten(tree):
    dest = tree.parent / "dest"
    put(dest / "node1", "alice/old.dat", b"somebody else's", 1)
    result = job.run(opts(tree, state="relocated", dest=str(dest), min_size="1K"))
    assert (tree / "alice/old.dat").exists() and (dest / "node1/alice/old.dat").read_bytes() == b"somebody else's"
    assert [s["path"] for s in result["skipped"]] == [str(tree / "alice/old.dat")]
    assert "already exists" in result["skipped"][0]["reason"]
    assert result["totals"]["files"] == 1


def test_remove_empty_dirs_never_removes_the_root(tmp_path):
    root = tmp_path / "scratch"
    put(root, "a/b/c/f", b"x", 999)
    put(root, "g", b"x", 999)
    result = job.run(opts(root, state="absent", remove_empty_dirs=True))
    assert sorted(result["dirs_removed"]) == sorted(str(root / p) for p in ("a", "a/b", "a/b/c"))
    assert root.is_dir() and os.listdir(root) == []


def test_bad_options_name_themselves(tree):
    with pytest.raises(job.OldFilesError, match="dest: .* is inside path"):
        opts(tree, state="relocated", dest=str(tree / "alice"))
    with pytest.raises(job.OldFilesError, match="owners: no user named 'nosuchuser_x'"):
        opts(tree, owners=["nosuchuser_x"])
    with pytest.raises(job.OldFilesError, match="age: cannot parse"):
        opts(tree, age="soon")
    with pytest.raises(job.OldFilesError, match="max_bytes"):
        opts(tree, max_bytes="lots")
    with pytest.raises(job.OldFilesError, match="dest: .* does not exist"):
        job.run(opts(tree, state="relocated", dest=str(tree.parent / "nowhere")))


def test_manifest_survives_a_cut_last_line(tmp_path):
    with mf.Manifest(str(tmp_path), "node1", "absent") as manifest:
        manifest.append({"action": "deleted", "path": "/x/\udcff"})
        manifest.append({"action": "deleted", "path": "/x/b"})
    with open(manifest.path, "ab") as handle:
        handle.write(b'{"action": "del')
    records, problems = mf.read_manifest(manifest.path)
    assert [r["path"] for r in records] == ["/x/\udcff", "/x/b"]
    assert os.fsencode(records[0]["path"]) == b"/x/\xff"
    assert len(problems) == 1 and "line 3" in problems[0]
    with pytest.raises(mf.ManifestError, match="manifest: cannot read"):
        mf.read_manifest(str(tmp_path / "none.jsonl"))


def test_users_table_counts_what_was_acted_on(tree):
    result = job.run(opts(tree, state="absent", max_files=2))
    assert result["users"][0]["files"] == 2 and result["users"][0]["bytes"] == 12000
    assert len(result["users"][0]["fingerprint"]) == 16


def test_check_mode_dirs_removed_equal_the_real_run_with_excluded_entries(tmp_path):
    root = tmp_path / "scratch"
    put(root, "a/old.dat", b"x", 999)
    put(root, "a/keep.tmp", b"x", 999)
    put(root, "b/old.dat", b"x", 999)
    kwargs = dict(state="absent", remove_empty_dirs=True, excludes=["*.tmp"])
    planned = job.run(opts(root, **kwargs), check_mode=True)
    done = job.run(opts(root, **kwargs))
    assert planned["dirs_removed"] == done["dirs_removed"] == [str(root / "b")]
    assert (root / "a/keep.tmp").exists()


def test_run_without_limits_in_workers_equals_its_plan(tmp_path):
    root = tmp_path / "scratch"
    for index in range(60):
        put(root, "u%d/run%d/f%02d.dat" % (index % 3, index % 4, index), b"x" * (index + 1), 400 if index % 3 else 1)
    kwargs = dict(state="absent", order="largest", max_listed=5, remove_empty_dirs=True)
    planned = job.run(opts(root, **kwargs), check_mode=True)
    done = job.run(opts(root, **kwargs))  # no limit: the root's subdirectories split between two workers
    assert done["totals"] == planned["totals"] and done["totals"]["files"] == 40
    assert [f["path"] for f in done["files"]] == [f["path"] for f in planned["files"]]  # largest first, 5 listed
    assert done["users"] == planned["users"] and done["dirs_removed"] == planned["dirs_removed"]
    records, problems = mf.read_manifest(done["manifest"])
    assert problems == [] and len(records) == 40 and {r["action"] for r in records} == {"deleted"}
    assert all(r["path"] == os.path.join(r["root"], r["relpath"]) and not os.path.exists(r["path"]) for r in records)
    assert job.run(opts(root, **kwargs))["manifest"] is None  # nothing to do: no manifest file
    assert len(os.listdir(str(root) + ".manifests")) == 1


def test_stale_temporaries_in_the_directories_written_are_removed(tree):
    from ansible_collections.datasteward.storage.plugins.module_utils._copy import engine as copier

    area = tree.parent / "dest/node1"
    put(area, "alice/" + copier.TEMP_PREFIX + "old.dat.0123456789ab", b"half a copy")  # a killed run's
    put(area, "alice/notes.txt", b"not ours")
    os.symlink("/etc/hostname", str(area / "alice" / (copier.TEMP_PREFIX + "link.1")))  # not a regular file
    put(area, "elsewhere/" + copier.TEMP_PREFIX + "x.1", b"a directory this run does not write to")
    fresh = job.run(opts(tree, state="relocated", dest=str(tree.parent / "dest"), max_files=1, order="path"))
    assert fresh["temps_removed"] == 0 and fresh["totals"]["files"] == 1  # alice/old.dat; the temporary is not older than the run
    put(tree, "alice/older.dat", b"o", 200)
    later = job.run(opts(tree, state="relocated", dest=str(tree.parent / "dest"), max_files=1, order="path"), now=time.time() + 5)
    assert later["temps_removed"] == 1 and later["totals"]["files"] == 1
    assert sorted(os.listdir(area / "alice")) == sorted([copier.TEMP_PREFIX + "link.1", "notes.txt", "old.dat", "older.dat"])
    assert os.listdir(area / "elsewhere") == [copier.TEMP_PREFIX + "x.1"]


def test_a_run_without_limits_works_when_no_process_can_be_forked(tmp_path, monkeypatch):
    root = tmp_path / "scratch"
    for index in range(8):
        put(root, "d%d/f%d.dat" % (index % 4, index), b"x", 400)

    def no_fork():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    result = job.run(opts(root, state="absent"))
    assert result["totals"]["files"] == 8 and result["stopped"] is None
    records, problems = mf.read_manifest(result["manifest"])
    assert len(records) == 8 and problems == []
