# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The inbox with real owners (uploads written by forked processes that
dropped root to real uids), a destination tmpfs that fills up, and SIGKILL
during the copy."""

from __future__ import annotations

import grp
import os
import pwd
import random
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._copy import engine as copier
from ansible_collections.datasteward.storage.plugins.module_utils._jobs import inbox as engine
from ansible_collections.datasteward.storage.tests.unit.utils.inbox_samples import PATTERN, Layout, later
from ansible_collections.datasteward.storage.tests.unit.utils.module_runner import module_command, run_module_process

DAEMON = pwd.getpwnam("daemon").pw_uid
NOBODY = pwd.getpwnam("nobody").pw_uid
DAEMON_GROUP = grp.getgrnam("daemon").gr_gid


def as_user(uid, func):
    """Run ``func()`` in a child that dropped root to ``uid`` (its primary group); wait for it."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            pw = pwd.getpwuid(uid)
            os.setgroups(os.getgrouplist(pw.pw_name, pw.pw_gid))
            os.setgid(pw.pw_gid)
            os.setuid(uid)
            os.umask(0o022)
            func()
            code = 0
        finally:
            os._exit(code)
    dummy, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the upload as uid %d failed" % uid


def upload_as(uid, layout, name, files):
    as_user(uid, lambda: layout.upload(name, files))


@pytest.fixture
def base():
    """A directory other users can traverse (pytest's tmp_path is private to root)."""
    path = tempfile.mkdtemp(prefix="inbox-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def layout(base):
    """The inbox layout the role creates: inbox 3773 root:daemon (setgid, sticky),
    processing/done/failed root-only, study/foo 2750 root:daemon."""
    lay = Layout(os.path.join(base, "up"))
    os.chmod(lay.base, 0o755)
    os.chown(lay.inbox, 0, DAEMON_GROUP)
    os.chmod(lay.inbox, 0o3773)
    for name in ("processing", "done", "failed"):
        os.chmod(lay.folder(name), 0o700)
    study_dir(lay.study, "foo")
    return lay


def study_dir(study, name):
    path = os.path.join(study, name)
    os.makedirs(path, exist_ok=True)
    os.chown(path, 0, DAEMON_GROUP)
    os.chmod(path, 0o2750)
    return path


def params(layout, **extra):
    """Members of group daemon may deliver to their study; root too (the uploads the tests write as root)."""
    return layout.params(
        allowed=[
            {"dest": os.path.join(layout.study, "{study}", "*"), "users": None, "groups": ["daemon"], "require": "any"},
            {"dest": "*", "users": ["0"], "groups": None, "require": "any"},
        ],
        **extra,
    )


def run(layout, clock=None, **extra):
    return engine.run_inbox(params(layout, **extra), clock=clock or later())


def test_real_uploaders_allowed_refused_and_unknown(layout):
    upload_as(DAEMON, layout, "foo-1", {"a.dcm": b"a" * 5000, "s/b.dcm": b"b"})
    upload_as(NOBODY, layout, "foo-2", {"evil.dcm": b"x"})
    upload_as(DAEMON, layout, "foo-3", {"c": b"c"})
    os.chown(os.path.join(layout.inbox, "foo-3"), 54321, 54321)
    result = run(layout)
    [done] = result["processed"]
    assert done["uploader"] == "daemon" and done["uploader_uid"] == DAEMON and done["files"] == 2
    dest = os.path.join(layout.study, "foo", "raw-upload")
    st = os.stat(os.path.join(dest, "s", "b.dcm"))
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, DAEMON_GROUP, 0o640)
    assert (os.stat(os.path.join(dest, "s")).st_mode & 0o7777) == 0o2750
    failed = {f["name"]: f["reason"] for f in result["failed_entries"]}
    assert "nobody (uid %d) is not allowed" % NOBODY in failed["foo-2"]
    assert "uid 54321 (no user of that number)" in failed["foo-3"]
    assert sorted(os.listdir(dest)) == ["a.dcm", "s"]
    assert layout.listing("failed") == ["foo-2", "foo-2.reason", "foo-3", "foo-3.reason"]


def test_symlink_to_etc_and_hard_link_to_another_owners_file(layout, tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"daemon's data")
    os.chown(secret, DAEMON, DAEMON_GROUP)
    os.chmod(secret, 0o600)
    root = layout.upload("foo-4", {"ok": b"1"}, finish=False)
    os.chown(root, NOBODY, NOBODY)
    os.symlink("/etc", os.path.join(root, b"etc"))
    # protected_hardlinks keeps nobody from making this link; an NFS client or an old kernel would not
    os.link(secret, os.path.join(root, b"stolen"))
    os.rename(root, os.path.join(os.fsencode(layout.inbox), b"foo-4"))
    allowed = [{"dest": "*", "users": ["nobody"], "groups": None, "require": "any"}]
    [item] = engine.run_inbox(layout.params(allowed=allowed), clock=later())["failed_entries"]
    assert "stolen is a hard link to a file of uid %d" % DAEMON in item["reason"]
    assert not os.listdir(os.path.join(layout.study, "foo"))
    # without the hard link the entry is delivered and the symlink is reported, never followed
    os.unlink(layout.folder("failed", "foo-4", "stolen"))
    os.rename(layout.folder("failed", "foo-4"), os.path.join(layout.inbox, "foo-4"))
    [item] = engine.run_inbox(layout.params(allowed=allowed), clock=later())["processed"]
    assert item["skipped"] == [{"path": "etc", "reason": "a symlink, not followed"}]
    assert os.listdir(os.path.join(layout.study, "foo", "raw-upload")) == ["ok"]


def test_destination_that_becomes_full(tmp_path, mount_tmpfs):
    study = mount_tmpfs(tmp_path / "study", "1m")
    layout = Layout(tmp_path / "up", study=study)
    study_dir(study, "foo")
    files = {"f%d" % i: bytes([i]) * 300000 for i in range(5)}
    layout.upload("foo-5", files)
    [item] = run(layout)["failed_entries"]
    assert "no space" in item["reason"]
    dest = os.path.join(str(study), "foo", "raw-upload")
    landed = sorted(os.listdir(dest))
    assert 0 < len(landed) < 5 and not [n for n in landed if n.startswith(copier.TEMP_PREFIX)]
    assert sorted(os.listdir(layout.folder("failed", "foo-5"))) == sorted(files)
    subprocess.run(["mount", "-o", "remount,size=4m", str(study)], check=True)
    os.rename(layout.folder("failed", "foo-5"), os.path.join(layout.inbox, "foo-5"))
    [item] = run(layout)["processed"]
    assert item["identical"] == len(landed) and len(item["versions"]) == 5 - len(landed)
    assert sorted(os.listdir(dest)) == sorted(files)


def test_kill_during_the_copy_then_the_next_run_finishes(tmp_path):
    """SIGKILL the module at random moments of a copy; each next run resumes:
    every file delivered once, none duplicated or lost, no temporaries."""
    layout = Layout(tmp_path / "up")
    rng = random.Random(13)
    files = {"d%d/f%02d" % (i % 3, i): rng.randbytes(256 * 1024 + i) for i in range(24)}
    layout.upload("foo-6", files)
    args = dict(params(layout), settle_seconds=0)
    args = {k: v for k, v in args.items() if v is not None}
    kills = 0
    for attempt in range(6):
        cmd, env = module_command(tmp_path, "inbox", args)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while proc.poll() is None and not os.listdir(layout.folder("processing")) and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.06))
        if proc.poll() is None and os.listdir(layout.folder("processing")):
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        if not os.listdir(layout.folder("processing")) and layout.listing("done"):
            break
    result = run_module_process(tmp_path, "inbox", args)
    print("%d runs killed" % kills)
    assert kills >= 1 and not result["failed_entries"]
    dest = os.path.join(layout.study, "foo", "raw-upload")
    delivered = {os.path.relpath(os.path.join(d, n), dest): open(os.path.join(d, n), "rb").read() for d, dummy, names in os.walk(dest) for n in names}
    assert delivered == files, "lost, duplicated or left temporaries after %d kills" % kills
    assert layout.listing("processing") == [] and layout.listing("done") == ["foo-6"]
    assert layout.listing("inbox") == []


def test_settle_uses_the_newest_change_anywhere_in_the_tree(layout):
    upload_as(DAEMON, layout, "foo-7", {"deep/er/file": b"1"})
    time.sleep(0.05)
    os.utime(os.path.join(layout.inbox, "foo-7", "deep", "er", "file"))
    result = engine.run_inbox(params(layout, settle_seconds=30), clock=time.time)
    assert [s["name"] for s in result["settling"]] == ["foo-7"]
    assert PATTERN
