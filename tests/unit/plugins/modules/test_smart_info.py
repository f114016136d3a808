# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""smart_info as Ansible runs it, against recorded drives replayed by a fake smartctl."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._disks.smart import HAS_PYSMART
from ansible_collections.datasteward.storage.plugins.modules import smart_info
from tests.utils import fake_smartctl, module_runner

ROOT = fake_smartctl.fixtures_root()
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

pytestmark = pytest.mark.skipif(not HAS_PYSMART, reason="pySMART is not installed")


def fixture(kind, name):
    folder = os.path.join(ROOT, kind, name)
    if not os.path.isdir(folder):
        pytest.skip("recorded smartctl output not found at %s" % ROOT)
    return folder


@pytest.fixture
def run(run_module):
    return functools.partial(run_module, smart_info)


def test_reads_every_scanned_drive(run, tmp_path):
    smartctl = fake_smartctl.install(tmp_path, fixture("listingtests", "linux_01"))
    result = run({"smartctl_path": smartctl})
    assert result["changed"] is False
    (drive,) = result["devices"]
    assert (drive["name"], drive["interface"], drive["model"], drive["health"]) == ("/dev/nvme0", "nvme", "KBG30ZMV256G TOSHIBA", "ok")
    assert drive["exit_status"] == 0
    assert result["missing"] == [] and result["unmapped"] == []


def test_check_mode_reads_too(run, tmp_path):
    smartctl = fake_smartctl.install(tmp_path, fixture("singletests", "sata_hdd_0_issue42"))
    result = run({"smartctl_path": smartctl, "devices": [{"name": "/dev/sdau", "interface": "ata"}]}, check_mode=True)
    assert result["changed"] is False
    assert result["devices"][0]["serial"] == "00008AXB"


def test_disk_map_and_acknowledge_through_the_module(run, tmp_path):
    folder = tmp_path / "fixture"
    shutil.copytree(fixture("singletests", "sata_hdd_0_issue42"), str(folder))
    recording = folder / "_-d_ata_--all__dev_sdau"
    recording.chmod(0o644)
    text = recording.read_text()
    recording.write_text(text.replace(
        "  5 Reallocated_Sector_Ct   0x0033   100   100   010    Pre-fail  Always       -       0",
        "  5 Reallocated_Sector_Ct   0x0033   100   100   010    Pre-fail  Always       -       8"))
    smartctl = fake_smartctl.install(tmp_path / "bin", folder)
    disk_map = tmp_path / "disk-map"
    disk_map.write_text("P01 00008AXB 0x5000c500a4847915\nP02 ZA12JCHM 0x5000c500858bfea7\n")
    args = {"smartctl_path": smartctl, "devices": [{"name": "/dev/sdau", "interface": "ata"}], "disk_map": str(disk_map)}
    result = run(args)
    (drive,) = result["devices"]
    assert (drive["label"], drive["health"]) == ("P01", "warning")
    assert result["missing"] == [{"label": "P02", "serial": "ZA12JCHM", "wwn": "0x5000c500858bfea7"}]

    args["acknowledge"] = [{"serial": "00008AXB", "attribute": 5, "raw": 8}]
    result = run(args)
    assert result["devices"][0]["health"] == "ok"
    assert result["devices"][0]["acknowledged"] == [{"attribute": "Reallocated_Sector_Ct (5)", "raw": 8, "acknowledged_raw": 8}]


def test_bad_smartctl_path_names_the_option(run, tmp_path):
    result = run({"smartctl_path": str(tmp_path / "nope")}, failed=True)
    assert result["msg"] == "smartctl_path: %s does not exist" % (tmp_path / "nope")


SYSTEM_SMARTCTLS = [os.path.join(d, "smartctl") for d in ("/sbin", "/usr/sbin", "/usr/local/sbin")]


def test_missing_smartctl_names_the_package(run, tmp_path, monkeypatch):
    """Without smartctl on the PATH or in the sbin directories that Ansible
    always searches, the module names the package to install. Where
    smartmontools is installed, those copies are hidden behind /dev/null in a
    private mount namespace and the module runs as a real process there."""
    installed = [path for path in SYSTEM_SMARTCTLS if os.path.exists(path) and not os.path.islink(path)]
    if not installed:
        monkeypatch.setenv("PATH", str(tmp_path))
        result = run({}, failed=True)
    else:
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            pytest.skip("smartctl is installed; hiding it needs root and unshare (util-linux)")
        cmd, env = module_runner.module_command(tmp_path, "smart_info", {})
        hide = " && ".join("mount --bind /dev/null %s" % path for path in installed)
        # the module itself gets a PATH without smartctl on it either
        script = '%s && exec env PATH="%s" "$@"' % (hide, tmp_path)
        proc = subprocess.run([shutil.which("unshare"), "--mount", "--propagation", "private", "/bin/sh", "-c", script, "sh"] + cmd,
                              env=env, capture_output=True, text=True, timeout=120, check=False)
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
        result = module_runner.check_outcome(json.loads(proc.stdout), failed=True)
    assert "install the smartmontools package" in result["msg"]


def test_bad_interface_names_the_device(run, tmp_path):
    smartctl = fake_smartctl.install(tmp_path, fixture("listingtests", "linux_01"))
    result = run({"smartctl_path": smartctl, "devices": [{"name": "/dev/sda", "interface": "floppy"}]}, failed=True)
    assert result["msg"].startswith("devices[0] (/dev/sda): interface 'floppy' is not a smartctl device type")


def test_acknowledge_needs_serial_or_device(run, tmp_path):
    smartctl = fake_smartctl.install(tmp_path, fixture("listingtests", "linux_01"))
    result = run({"smartctl_path": smartctl, "acknowledge": [{"attribute": "5", "raw": 1}]}, failed=True)
    assert "one of the following is required: serial, device" in result["msg"]
    assert "acknowledge" in result["msg"]


def test_bad_disk_map_names_the_line(run, tmp_path):
    smartctl = fake_smartctl.install(tmp_path, fixture("listingtests", "linux_01"))
    disk_map = tmp_path / "disk-map"
    disk_map.write_text("P01 ZA12JCHM 0x5000c500858bfea7 extra\n")
    result = run({"smartctl_path": smartctl, "disk_map": str(disk_map)}, failed=True)
    assert result["msg"] == "%s line 1: expected 'LABEL SERIAL WWN', got 'P01 ZA12JCHM 0x5000c500858bfea7 extra'" % disk_map


def test_not_root_is_a_clear_error():
    """Run the module for real as the unprivileged user nobody (runuser), with the system Python."""
    runuser = shutil.which("runuser")
    if os.geteuid() != 0 or not runuser:
        pytest.skip("needs root and runuser to run the module as nobody")
    python = "/usr/bin/python3"
    if not os.access(python, os.X_OK):
        pytest.skip("no system python3 that nobody can run")
    site = [p for p in sys.path if p.endswith("site-packages") and os.path.isdir(os.path.join(p, "ansible"))]
    collections = os.path.join(REPO, ".collections")
    workdir = tempfile.mkdtemp()
    try:
        os.chmod(workdir, 0o755)
        smartctl = fake_smartctl.install(workdir, fixture("listingtests", "linux_01"))
        probe = subprocess.run([runuser, "-u", "nobody", "--", python, "-c", "import ansible, pySMART"],
                               env={"PYTHONPATH": os.pathsep.join([collections] + site), "PATH": "/usr/bin:/bin"},
                               capture_output=True, cwd=workdir, check=False)
        if probe.returncode:
            pytest.skip("nobody cannot import ansible and pySMART from this checkout: %s" % probe.stderr.decode()[-300:])
        args = json.dumps({"ANSIBLE_MODULE_ARGS": {"smartctl_path": smartctl}})
        proc = subprocess.run(
            [runuser, "-u", "nobody", "--", python, "-m", "ansible_collections.datasteward.storage.plugins.modules.smart_info", args],
            env={"PYTHONPATH": os.pathsep.join([collections] + site), "PATH": "/usr/bin:/bin"},
            capture_output=True, cwd=workdir, check=False)
    finally:
        shutil.rmtree(workdir)
    result = json.loads(proc.stdout.decode())
    assert proc.returncode == 1
    assert result["failed"] is True
    assert result["msg"] == ("smart_info must run as root (become: true): smartctl needs raw access to the drives; running as uid %d"
                             % int(subprocess.check_output(["id", "-u", "nobody"])))


def test_adhoc_demo_prints_the_drive(tmp_path):
    """What docs/smart.md shows: ansible localhost -m datasteward.storage.smart_info -a smartctl_path=<fake>."""
    ansible = os.path.join(os.path.dirname(sys.executable), "ansible")
    if not os.path.exists(ansible):
        pytest.skip("the ansible command is not installed beside this Python")
    smartctl = fake_smartctl.install(tmp_path, fixture("listingtests", "linux_01"))
    proc = subprocess.run([ansible, "localhost", "-m", "datasteward.storage.smart_info", "-a", "smartctl_path=%s" % smartctl],
                          cwd=REPO, capture_output=True, check=False, env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    out = proc.stdout.decode()
    assert proc.returncode == 0, out + proc.stderr.decode()
    assert "localhost | SUCCESS" in out
    assert "model: KBG30ZMV256G TOSHIBA" in out
    assert "health: ok" in out
