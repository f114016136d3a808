# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The job playbooks' alerts against a real SMTP server: the hourly disk
status job over three hosts, two of them over their (per-host) critical
threshold, sends ONE mail to each admin that names both hosts and their file
systems, and nothing about the third; the SMART job mails the failing drive of
a storage node with its reasons."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.e2e.jobs import BIN, REPO, ansible_env
from tests.e2e.notify.conftest import SmtpServer
from tests.unit.utils import fake_smartctl

ADMINS = ["ops@example.org", "oncall@example.org"]


@pytest.fixture
def smtp():
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def inventory(tmp_path, port, hosts, group_vars=None):
    local = {"ansible_connection": "local", "ansible_python_interpreter": str(BIN / "python")}
    data = {
        "all": {
            "hosts": {name: dict(local, **values) for name, values in hosts.items()},
            "vars": {
                "datasteward_mail_host": "127.0.0.1",
                "datasteward_mail_port": port,
                "datasteward_mail_secure": "never",
                "datasteward_mail_timeout": 5,
                "datasteward_mail_sender": "steward@example.org",
                "datasteward_admin_mail": ADMINS,
                "disk_status_paths": [str(tmp_path)],
            },
            "children": {
                "station": {"hosts": {name: None for name in (group_vars or {}).get("station_hosts", [])}, "vars": (group_vars or {}).get("station", {})}
            },
        }
    }
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def playbook(tmp_path, inventory_path, name):
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory_path), "datasteward.storage.%s" % name],
        cwd=REPO,
        env=ansible_env(tmp_path),
        capture_output=True,
        encoding="utf-8",
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc


def test_disk_status_job_sends_one_mail_per_admin_for_all_hosts(tmp_path, smtp):
    over = {"datasteward_disk_warn_percent": 1, "datasteward_disk_critical_percent": 1}
    hosts = {"tcs-a": over, "tcs-b": over, "tcs-c": {"datasteward_disk_warn_percent": 99, "datasteward_disk_critical_percent": 100}}
    playbook(tmp_path, inventory(tmp_path, smtp.port, hosts), "disk_report")
    assert sorted(rcpt for dummy, rcpts, dummy in smtp.messages for rcpt in rcpts) == sorted(ADMINS)
    assert len(smtp.messages) == len(ADMINS)  # one mail per recipient, both hosts combined
    for dummy, dummy, message in smtp.messages:
        body = message.get_body(("plain",)).get_content()
        assert "disk status: tcs-a CRITICAL" in body and "disk status: tcs-b CRITICAL" in body, body
        assert "tcs-c" not in body and "tcs-c" not in message["Subject"], body
        assert "% used" in body


def test_smart_job_mails_the_failing_drive(tmp_path, smtp):
    drives = tmp_path / "drives"
    root = fake_smartctl.fixtures_root() + "/singletests/"
    fake_smartctl.combine(drives, [root + "sat_ssd_0_issue_65", root + "nvme_0"])
    recording = drives / "_-d_sat_--all__dev_sda"
    recording.write_text(recording.read_text().replace("test result: PASSED", "test result: FAILED!"))
    (drives / "exit_status.json").write_text('{"_-d_sat_--all__dev_sda": 8}')
    smartctl = fake_smartctl.install(tmp_path / "bin", drives)
    station = {
        "smart_smartctl_path": smartctl,
        "smart_timeout": 20,
        "smart_disk_map": [{"label": "S01", "serial": "XXXXXXXXXXXX", "wwn": "eui.00080d040017b710"}],
    }
    path = inventory(tmp_path, smtp.port, {"node": {}}, {"station_hosts": ["node"], "station": station})
    playbook(tmp_path, path, "smart_check")
    assert len(smtp.messages) == len(ADMINS)
    body = smtp.messages[0][2].get_body(("plain",)).get_content()
    assert "FAILING  - /dev/sda" in body and "self-assessment failed" in body, body
    assert "UNMAPPED /dev/sda" in body
    assert "/dev/nvme0" not in body
