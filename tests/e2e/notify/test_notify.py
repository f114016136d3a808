# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The notify role against a real SMTP server: what the server receives
(envelope recipients, headers, bodies), one mail per recipient, no header
injection from a user named ``evil\\nBcc: x@y``, a refused recipient and an
unreachable server fail the task, check mode sends nothing."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.e2e.jobs import BIN, REPO, ansible_env

PLAY = """
- name: Notify
  hosts: localhost
  gather_facts: false
  vars:
    datasteward_mail_host: 127.0.0.1
    datasteward_mail_port: %(port)d
    datasteward_mail_secure: never
    datasteward_mail_timeout: 5
    datasteward_mail_sender: Data Steward <steward@example.org>
    datasteward_mail_domain: example.org
    datasteward_mail_addresses: {carol: carol@lab.example.net}
    datasteward_admin_mail: [ops@example.org, oncall@example.org]
  tasks:
    - name: Send now
      ansible.builtin.include_role:
        name: datasteward.storage.notify
      vars:
        notify_messages: %(now)s
    - name: Queue
      ansible.builtin.include_role:
        name: datasteward.storage.notify
        tasks_from: queue
      vars:
        notify_messages: %(queued)s
    - name: Flush
      ansible.builtin.include_role:
        name: datasteward.storage.notify
        tasks_from: flush
"""

NOW = [
    {
        "to": ["alice", "evil\nBcc: x@y", "carol"],
        "subject": "/scratch is 93% full\r\nBcc: injected@x.org",
        "lines": ["alice: 2.0 TiB", "carol: 1.1 TiB", "weird name: b\x1bad"],
        "source": "scratch_check",
    },
    {"to": ["alice"], "admins": True, "subject": "old files | purge", "body": "run1/a.dat\nrun2/b.dat", "source": "old_files"},
]
QUEUED = [
    {"admins": True, "subject": "disk 01 failing", "lines": ["reallocated: 12"], "source": "smart"},
    {"admins": True, "subject": "no new file for 2 days", "lines": ["newest: 2 d"], "source": "data_manager"},
]


def run_play(tmp_path, port, now=None, queued=None, check=False):
    play = tmp_path / "notify.yml"
    play.write_text(
        PLAY % {"port": port, "now": json.dumps(NOW if now is None else now), "queued": json.dumps(QUEUED if queued is None else queued)}, encoding="utf-8"
    )
    args = [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=%s" % sys.executable, str(play)] + (
        ["--check"] if check else []
    )
    return subprocess.run(args, cwd=REPO, env=ansible_env(tmp_path), capture_output=True, encoding="utf-8", timeout=300, check=False)


def body(message):
    return message.get_body(("plain",)).get_content()


def mails_to(received, address):
    return [mail.message for mail in received if mail.rcpt == [address]]


def test_one_mail_per_recipient_without_injection(smtp_server, tmp_path):
    template = tmp_path / "quota.txt.j2"
    template.write_text("{{ user }} holds {{ usage }} on {{ inventory_hostname }}\n", encoding="utf-8")
    now = NOW + [
        {"to": ["dave"], "subject": "templated", "template": str(template), "template_vars": {"user": "dave", "usage": "3 TiB"}, "source": "scratch_check"}
    ]
    checked = run_play(tmp_path, smtp_server.port, now=now, check=True)
    assert checked.returncode == 0, checked.stdout[-3000:]
    assert smtp_server.messages == [], "check mode sent mail"
    assert "Subject: [datasteward] 2 messages: scratch_check, old_files on localhost" in checked.stdout

    proc = run_play(tmp_path, smtp_server.port, now=now)
    assert proc.returncode == 0, proc.stdout[-3000:]
    received = smtp_server.messages
    # one envelope recipient per mail; main: alice, carol, dave, 2 admins; flush: 2 admins
    assert all(len(mail.rcpt) == 1 for mail in received)
    assert sorted(mail.rcpt[0] for mail in received) == sorted(
        ["alice@example.org", "carol@lab.example.net", "dave@example.org", "ops@example.org", "oncall@example.org", "ops@example.org", "oncall@example.org"]
    )
    assert {mail.sender for mail in received} == {"steward@example.org"}
    for mail in received:
        assert mail.message["To"] == mail.rcpt[0]
        assert mail.message["Bcc"] is None and "x@y" not in str(mail.message["To"])
        assert "\n" not in mail.message["Subject"] and "|" not in mail.message["Subject"]
    (alice,) = mails_to(received, "alice@example.org")
    assert alice["Subject"] == "[datasteward] 2 messages: scratch_check, old_files on localhost"
    assert "alice: 2.0 TiB" in body(alice) and "run2/b.dat" in body(alice)
    assert "weird name: b\\x1bad" in body(alice)
    (carol,) = mails_to(received, "carol@lab.example.net")
    assert carol["Subject"] == "[datasteward] /scratch is 93% full Bcc: injected@x.org"
    (dave,) = mails_to(received, "dave@example.org")
    assert "dave holds 3 TiB on localhost" in body(dave)
    ops = mails_to(received, "ops@example.org")
    assert [m["Subject"] for m in ops] == [
        "[datasteward] 2 messages: scratch_check, old_files on localhost",
        "[datasteward] 2 messages: smart, data_manager on localhost",
    ]
    assert "'evil\\x0aBcc: x@y' could not be mailed" in body(ops[0])
    assert "old files / purge" in body(ops[0])
    assert "reallocated: 12" in body(ops[1]) and "newest: 2 d" in body(ops[1])


def test_a_refused_recipient_fails_the_task(smtp_server, tmp_path):
    proc = run_play(tmp_path, smtp_server.port, now=[{"to": ["refused", "bob"], "subject": "s", "lines": ["l"]}], queued=[])
    assert proc.returncode != 0
    assert "refused@example.org" in proc.stdout and "550" in proc.stdout
    assert [mail.rcpt for mail in smtp_server.messages] == [["bob@example.org"]]


def test_an_unreachable_server_fails_the_task_without_a_hang(smtp_server, tmp_path):
    port = smtp_server.port
    smtp_server.stop()
    proc = run_play(tmp_path, port, now=[{"to": ["bob"], "subject": "s", "lines": ["l"]}], queued=[])
    assert proc.returncode != 0
    assert "the SMTP server 127.0.0.1:%d (datasteward_mail_host, datasteward_mail_port) does not accept" % port in " ".join(proc.stdout.split())
