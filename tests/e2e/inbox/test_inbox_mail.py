# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The inbox role's run entry point against a real SMTP server (aiosmtpd):
the admins get the failed entry with its reason, the uploader what was
delivered where, the study's owner the fill level of its destination; a
second run with nothing new sends nothing."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys

from tests.e2e.jobs import BIN, REPO, ansible_env

PLAY = """
- name: Inbox hand-off
  hosts: localhost
  gather_facts: false
  vars:
    datasteward_mail_host: 127.0.0.1
    datasteward_mail_port: %(port)d
    datasteward_mail_secure: never
    datasteward_mail_timeout: 5
    datasteward_mail_sender: Data Steward <steward@example.org>
    datasteward_mail_domain: example.org
    datasteward_admin_mail: [ops@example.org]
  tasks:
    - name: Hand over
      ansible.builtin.include_role:
        name: datasteward.storage.inbox
        tasks_from: run
      vars: %(vars)s
"""


def upload(inbox, name, files):
    tmp = os.path.join(inbox, "." + name)
    for rel, data in files.items():
        os.makedirs(os.path.dirname(os.path.join(tmp, rel)), exist_ok=True)
        with open(os.path.join(tmp, rel), "wb") as handle:
            handle.write(data)
    os.rename(tmp, os.path.join(inbox, name))


def run_play(tmp_path, port, inbox_vars):
    play = tmp_path / "inbox.yml"
    play.write_text(PLAY % {"port": port, "vars": json.dumps(inbox_vars)}, encoding="utf-8")
    args = [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=%s" % sys.executable, str(play)]
    return subprocess.run(args, cwd=REPO, env=ansible_env(tmp_path), capture_output=True, encoding="utf-8", timeout=300, check=False)


def body(message):
    return message.get_body(("plain",)).get_content()


def test_alerts_reach_admins_uploader_and_study_owner(smtp_server, tmp_path):
    smtp = smtp_server
    base = tmp_path / "upload"
    for name in ("inbox", "processing", "done", "failed"):
        (base / name).mkdir(parents=True)
    (tmp_path / "study" / "foo").mkdir(parents=True)
    upload(str(base / "inbox"), "foo-1", {"scan.dcm": b"frame", "series/meta.json": b"{}"})
    upload(str(base / "inbox"), "Not A Study", {"x": b"x"})
    inbox_vars = {
        "inbox_path": str(base / "inbox"),
        "inbox_dest_root": str(tmp_path / "study"),
        "inbox_dest": str(tmp_path / "study" / "{study}" / "raw-upload"),
        "inbox_allowed": [{"users": [str(os.getuid())]}],
        "inbox_settle_seconds": 0,
        "inbox_studies": [{"name": "foo", "owners": ["alice"]}],
        "inbox_notify_uploaders": True,
        "inbox_dest_threshold_percent": 1,
    }
    # the uploader (this test's user) is mailed at the address its name maps to
    uploader = pwd.getpwuid(os.getuid()).pw_name
    play = run_play(tmp_path, smtp.port, dict(inbox_vars, datasteward_mail_addresses={uploader: "up@lab.example.net"}))
    assert play.returncode == 0, play.stdout[-4000:]
    by_rcpt = {tuple(rcpts): message for dummy, rcpts, message in smtp.messages}
    assert set(by_rcpt) == {("ops@example.org",), ("up@lab.example.net",), ("alice@example.org",)}, by_rcpt.keys()
    admin = body(by_rcpt[("ops@example.org",)])
    assert "FAILED  Not A Study" in admin and "does not match name_pattern" in admin
    delivered = body(by_rcpt[("up@lab.example.net",)])
    assert "foo-1: 2 files" in delivered and str(tmp_path / "study" / "foo" / "raw-upload" / "scan.dcm") in delivered
    owner = by_rcpt[("alice@example.org",)]
    assert "study foo" in owner["Subject"] and "% full" in owner["Subject"]

    again = run_play(tmp_path, smtp.port, inbox_vars)
    assert again.returncode == 0, again.stdout[-4000:]
    assert len(smtp.messages) == 3, "a run with nothing new sent mail"
