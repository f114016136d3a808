# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""smart_info where it needs root: the installed smartctl hidden in a private
mount namespace, and the module run for real as user nobody."""

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
from ansible_collections.datasteward.storage.tests.unit.utils import fake_smartctl, module_runner

ROOT = fake_smartctl.fixtures_root()

pytestmark = pytest.mark.skipif(not HAS_PYSMART, reason="pySMART is not installed")

SYSTEM_SMARTCTLS = [os.path.join(d, "smartctl") for d in ("/sbin", "/usr/sbin", "/usr/local/sbin")]


def fixture(kind, name):
    return os.path.join(ROOT, kind, name)


@pytest.fixture
def run(run_module):
    return functools.partial(run_module, smart_info)


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
        proc = subprocess.run(
            [shutil.which("unshare"), "--mount", "--propagation", "private", "/bin/sh", "-c", script, "sh"] + cmd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
        result = module_runner.check_outcome(json.loads(proc.stdout), failed=True)
    assert "install the smartmontools package" in result["msg"]


def test_not_root_is_a_clear_error():
    """Run the module for real as the unprivileged user nobody (runuser), with the system Python."""
    runuser = shutil.which("runuser")
    if os.geteuid() != 0 or not runuser:
        pytest.skip("needs root and runuser to run the module as nobody")
    python = "/usr/bin/python3"
    if not os.access(python, os.X_OK):
        pytest.skip("no system python3 that nobody can run")
    site = [p for p in sys.path if p.endswith("site-packages") and os.path.isdir(os.path.join(p, "ansible"))]
    collections = str(module_runner.COLLECTIONS)
    workdir = tempfile.mkdtemp()
    try:
        os.chmod(workdir, 0o755)
        smartctl = fake_smartctl.install(workdir, fixture("listingtests", "linux_01"))
        probe = subprocess.run(
            [runuser, "-u", "nobody", "--", python, "-c", "import ansible, pySMART"],
            env={"PYTHONPATH": os.pathsep.join([collections] + site), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            cwd=workdir,
            check=False,
        )
        if probe.returncode:
            pytest.skip("nobody cannot import ansible and pySMART from this checkout: %s" % probe.stderr.decode()[-300:])
        args = json.dumps({"ANSIBLE_MODULE_ARGS": {"smartctl_path": smartctl}})
        proc = subprocess.run(
            [runuser, "-u", "nobody", "--", python, "-m", "ansible_collections.datasteward.storage.plugins.modules.smart_info", args],
            env={"PYTHONPATH": os.pathsep.join([collections] + site), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            cwd=workdir,
            check=False,
        )
    finally:
        shutil.rmtree(workdir)
    result = json.loads(proc.stdout.decode())
    assert proc.returncode == 1
    assert result["failed"] is True
    assert result["msg"] == (
        "smart_info must run as root (become: true): smartctl needs raw access to the drives; running as uid %d"
        % int(subprocess.check_output(["id", "-u", "nobody"]))
    )
