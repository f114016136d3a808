# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The scratch role end to end against a real SMTP server (aiosmtpd on a
loopback port the kernel picks) and a real tmpfs whose use the test sets:
over warn -> warnings only; the same day again -> no duplicate warning; over
critical -> action, then notices that match the manifest; under target ->
nothing more is done and nothing is mailed."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import shutil
import subprocess
import threading
import time

import pytest

from tests.e2e.jobs import BIN, REPO, ansible_env, play_recap

aiosmtpd_smtp = pytest.importorskip("aiosmtpd.smtp")

KIB = 1024
PLAY = """\
- name: Scratch policy under test
  hosts: localhost
  gather_facts: false
  roles:
    - role: datasteward.storage.scratch
"""


class Inbox:
    """aiosmtpd in a thread of its own; ``messages`` holds (rcpt_tos, parsed message)."""

    def __init__(self):
        self.messages = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _start(self):
        return await self.loop.create_server(lambda: aiosmtpd_smtp.SMTP(self), "127.0.0.1", 0)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 OK"

    def take(self):
        """{(recipients,): plain-text body} of the mails received since the last take."""
        taken, self.messages[:] = list(self.messages), []
        return {tuple(rcpt): msg.get_body(preferencelist=("plain",)).get_content() for rcpt, msg in taken}

    def stop(self):
        self.server.close()
        asyncio.run_coroutine_threadsafe(self.server.wait_closed(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def inbox():
    server = Inbox()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def scratch(tmp_path):
    """A 4 MiB tmpfs tree and an 8 MiB tmpfs relocation area (unmounted whatever happens)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: mounts tmpfs trees and chowns files to other users")
    points = [tmp_path / "scratch", tmp_path / "relocated"]
    try:
        for point, size in zip(points, ("4m", "8m")):
            point.mkdir()
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "scratch_e2e", str(point)], check=True)
        yield points
    finally:
        for point in points:
            subprocess.run(["umount", "-l", str(point)], check=False)


def put(root, rel, size, owner, age_days):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.chown(str(path.parent), owner)
    path.write_bytes(os.urandom(size))
    shutil.chown(str(path), owner)
    when = time.time() - age_days * 86400
    os.utime(str(path), (when, when))


def use_percent(path):
    st = os.statvfs(str(path))
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    return -(-100 * used // (used + st.f_bavail * st.f_frsize))


def run_role(tmp_path, inbox, tree, dest, warn, critical, target):
    extra = {
        "scratch_state_dir": str(tmp_path / "state"),
        "scratch_age_stamp": "mtime",
        "scratch_host_folder": "node1",
        "datasteward_mail_host": "127.0.0.1",
        "datasteward_mail_port": inbox.port,
        "datasteward_mail_secure": "never",
        "datasteward_mail_domain": "example.org",
        "datasteward_admin_mail": ["admins@example.org"],
        "datasteward_mail_sender": "datasteward@example.org",
        "datasteward_notify_enabled": True,
        "scratch_trees": [
            {
                "path": str(tree),
                "warn_percent": warn,
                "critical_percent": critical,
                "target_percent": target,
                "age": 90,
                "grace_days": 14,
                "action": "relocate",
                "dest": str(dest),
                "exclude_owners": ["root"],
                "top_users": 1,
            }
        ],
    }
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    (tmp_path / "play.yml").write_text(PLAY)
    proc = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            "ansible_python_interpreter=%s" % (BIN / "python"),
            "-e",
            "@%s" % (tmp_path / "extra.json"),
            str(tmp_path / "play.yml"),
        ],
        cwd=REPO,
        env=ansible_env(tmp_path),
        capture_output=True,
        encoding="utf-8",
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    return play_recap(proc.stdout)["localhost"]


def manifests(tmp_path):
    records = []
    folder = tmp_path / "state" / "manifests"
    for name in sorted(os.listdir(str(folder))) if folder.is_dir() else []:
        records += [json.loads(line) for line in (folder / name).read_text().splitlines()]
    return records


def test_warn_then_act_then_notice_then_stop(tmp_path, inbox, scratch):
    tree, dest = scratch
    put(tree, "daemon/big-old.dat", 700 * KIB, "daemon", 120)
    put(tree, "daemon/old.dat", 500 * KIB, "daemon", 100)
    put(tree, "daemon/soon.dat", 300 * KIB, "daemon", 80)  # inside the 14-day warning window
    put(tree, "bin/old.dat", 200 * KIB, "bin", 95)
    put(tree, "bin/new.dat", 600 * KIB, "bin", 1)
    start = use_percent(tree)
    assert 55 <= start <= 75, start

    # over warn, under critical: warnings only, nothing moved
    run_role(tmp_path, inbox, tree, dest, warn=50, critical=90, target=40)
    mails = inbox.take()
    assert set(mails) == {("daemon@example.org",), ("bin@example.org",)}
    daemon = mails[("daemon@example.org",)]
    assert "3 files (1.5 MiB)" in daemon and "daemon/soon.dat" in daemon and "/node1/" in daemon
    assert "number 1 of the largest users" in daemon
    assert "1 file (200.0 KiB)" in mails[("bin@example.org",)]
    assert manifests(tmp_path) == [] and use_percent(tree) == start

    # the same day again: no duplicate warning
    run_role(tmp_path, inbox, tree, dest, warn=50, critical=90, target=40)
    assert inbox.take() == {}

    # over critical: the largest old files go until use is under the target; notices match the manifest
    recap = run_role(tmp_path, inbox, tree, dest, warn=50, critical=55, target=50)
    assert recap["changed"] > 0
    records = manifests(tmp_path)
    assert [r["relpath"] for r in records] == ["daemon/big-old.dat"], records  # 700 KiB is enough to get under 50%
    assert use_percent(tree) < 50 and (dest / "node1/daemon/big-old.dat").stat().st_size == 700 * KIB
    mails = inbox.take()
    assert set(mails) == {("daemon@example.org",), ("admins@example.org",)}
    notice = mails[("daemon@example.org",)]
    assert "1 of your files (700.0 KiB)" in notice
    assert "%s -> %s" % (records[0]["path"], records[0]["dest"]) in notice
    assert records[0]["path"] in mails[("admins@example.org",)] or "daemon: 1 file," in mails[("admins@example.org",)]

    # under target now: nothing is done, nobody is mailed
    run_role(tmp_path, inbox, tree, dest, warn=50, critical=55, target=50)
    assert inbox.take() == {} and len(manifests(tmp_path)) == 1
