# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What users type from the checkout after `make setup`: the short and the long
module names ad hoc, and ansible-doc."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from ansible_collections.datasteward.storage.tests.unit.utils import fake_smartctl
from tests.checks.conftest import BIN, REPO


def adhoc(*args):
    env = dict(os.environ, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.oneline")
    proc = subprocess.run(
        [str(BIN / "ansible"), "localhost", "-o"] + list(args),
        cwd=REPO,
        env=env,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=120,
        check=False,
    )
    return proc


@pytest.mark.parametrize("name", ["disk_usage", "datasteward.storage.disk_usage"])
def test_module_names_resolve_ad_hoc(name):
    proc = adhoc("-m", name, "-a", "path=/")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.split("=>", 1)[1])
    assert [fs["mount"] for fs in result["filesystems"]] == ["/"]


def test_ansible_doc_renders():
    proc = subprocess.run(
        [str(BIN / "ansible-doc"), "datasteward.storage.disk_usage"],
        cwd=REPO,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "critical_percent" in proc.stdout and "filesystems" in proc.stdout


def test_adhoc_smart_demo_prints_the_drive(tmp_path):
    """What docs/smart.md shows: ansible localhost -m datasteward.storage.smart_info -a smartctl_path=<fake>."""
    smartctl = fake_smartctl.install(tmp_path, fake_smartctl.fixtures_root() + "/listingtests/linux_01")
    proc = subprocess.run(
        [str(BIN / "ansible"), "localhost", "-m", "datasteward.storage.smart_info", "-a", "smartctl_path=%s" % smartctl],
        cwd=REPO,
        capture_output=True,
        check=False,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1"),
    )
    out = proc.stdout.decode()
    assert proc.returncode == 0, out + proc.stderr.decode()
    assert "localhost | SUCCESS" in out
    assert "model: KBG30ZMV256G TOSHIBA" in out
    assert "health: ok" in out
