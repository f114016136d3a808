# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/view.yml prints readable tables for a user, a host and a path;
the history role's record entry point records every host of a play once
(and nothing when datasteward_history is off); playbooks/report.yml writes
the report and prints its path."""

from __future__ import annotations

import email
import email.policy
import json
import subprocess

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._history.record import Recorder
from ansible_collections.datasteward.storage.plugins.module_utils._history.store import Store
from ansible_collections.datasteward.storage.tests.e2e.jobs import BIN, REPO, ansible_env
from ansible_collections.datasteward.storage.tests.unit.utils import history_data as gen

pytestmark = pytest.mark.slow

INVENTORY = """all:
  hosts:
    h1: {ansible_connection: local, ansible_python_interpreter: "{{ ansible_playbook_python }}"}
    h2: {ansible_connection: local, ansible_python_interpreter: "{{ ansible_playbook_python }}"}
"""

RECORD = """- name: Record a disk reading of every host
  hosts: all
  gather_facts: false
  tasks:
    - name: Read the file systems
      datasteward.storage.disk_usage:
      register: usage
    - name: Record them
      ansible.builtin.include_role:
        name: datasteward.storage.history
        tasks_from: record
      vars:
        history_source: disk_usage
        history_result: "{{ usage }}"
"""


def playbook(tmp_path, *args):
    proc = subprocess.run(
        [str(BIN / "ansible-playbook")] + list(args), cwd=str(REPO), env=ansible_env(tmp_path), capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("view") / "h.sqlite")
    with Store(path) as store:
        recorder = Recorder(store)
        for record in gen.fleet_records(hosts=2, days=31, users=3):
            recorder.record(*record)
    return path


@pytest.mark.parametrize(
    "what, first, expect",
    [
        ("user=user1001", "User user1001", ["host    used     files  7 days", "/scratch/user1001/big.h5", "/scratch/user1001/old.tar"]),
        ("host=host01", "Host host01", ["mount     use  used       free       7 days    30 days", "/scratch  14%", "+7.0 GiB  +30.0 GiB", "user1002"]),
        ("path=/scratch", "File system /scratch", ["Directory /scratch", "host00  130.0 GiB"]),
    ],
)
def test_view_prints_a_table(tmp_path, history, what, first, expect):
    out = playbook(tmp_path, "playbooks/view.yml", "-e", what, "-e", "datasteward_history_database=%s" % history)
    assert first in out
    for text in expect:
        assert text in out, text


def test_view_says_what_to_give(tmp_path):
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "playbooks/view.yml"],
        cwd=str(REPO),
        env=ansible_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode != 0 and "-e user=NAME, -e host=NAME or -e path=PATH" in proc.stdout


def test_record_entry_point_then_report(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(INVENTORY)
    (tmp_path / "record.yml").write_text(RECORD)
    db = tmp_path / "h.sqlite"
    common = ["-i", str(inventory), "-e", "datasteward_history_database=%s" % db]
    playbook(tmp_path, str(tmp_path / "record.yml"), *common)
    assert not db.exists()  # datasteward_history unset: nothing recorded
    playbook(tmp_path, str(tmp_path / "record.yml"), "-e", "datasteward_history=true", "-C", *common)
    assert not db.exists()  # check mode
    out = playbook(tmp_path, str(tmp_path / "record.yml"), "-e", "datasteward_history=true", *common)
    assert out.count("Record the batch's results in the history") == 1
    with Store(str(db), readonly=True) as store:
        assert store.query("SELECT host, source FROM runs ORDER BY host") == [("h1", "disk_usage"), ("h2", "disk_usage")]
    report_dir = tmp_path / "report"
    out = playbook(
        tmp_path,
        "playbooks/report.yml",
        "-e",
        "datasteward_report_dir=%s" % report_dir,
        "-e",
        "history_report_mail=false",
        "-e",
        "datasteward_history=true",
        *common,
    )
    assert "Report: %s/report.html" % report_dir in out
    data = json.loads((report_dir / "report.json").read_text())
    assert data["hosts"] == ["h1", "h2"] and data["filesystems"]


def test_report_mails_the_admins_what_needs_attention(tmp_path, history):
    spool = tmp_path / "spool"
    spool.mkdir()
    report_dir = tmp_path / "report"
    extra = {
        "datasteward_history": True,
        "datasteward_history_database": history,
        "datasteward_report_dir": str(report_dir),
        "datasteward_admin_mail": ["admin@example.org"],
        "datasteward_notify_enabled": False,
        "datasteward_notify_spool_dir": str(spool),
        "history_prune": False,
    }
    out = playbook(tmp_path, "playbooks/report.yml", "-e", json.dumps(extra))
    assert "things need attention" in out
    mails = sorted(spool.glob("*.eml"))
    assert len(mails) == 1, out
    message = email.message_from_bytes(mails[0].read_bytes(), policy=email.policy.default)
    text = message.get_body(("plain",)).get_content()  # decoded: quoted-printable folds long lines (a long report path)
    assert message["To"] == "admin@example.org" and "things need attention" in message["Subject"]
    assert "WD-1234" in text and str(report_dir / "report.html") in text
