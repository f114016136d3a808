# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Running a module for the module unit tests, in-process or as a real process.

Both runners return what Ansible would get back (``failed: true`` on failure,
``warnings`` when the module warned) and check that the run failed, or did not,
as the test expects (``failed=``).

* In-process, through the ``run_module`` fixture (tests/unit/plugins/modules/
  conftest.py): ``main()`` under ``patch_module_args`` with ``exit_json`` and
  ``fail_json`` patched to raise (``patch_exits``).
* As a process (``run_module_process``): the module file run by Python with
  ``ANSIBLE_MODULE_ARGS`` in a file, as Ansible does, for runs that must be
  real (faults, SIGKILL, mounts); ``module_command`` gives the command line.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

import ansible_collections.datasteward.storage.plugins.modules as _modules

# Where this collection was imported from (never resolved: the checkout's
# .collections link, ansible-test's copy and an installed collection all work):
# .../ansible_collections/datasteward/storage/plugins/modules -> the directory
# holding ansible_collections, which a module run as a process needs on PYTHONPATH.
MODULES = Path(list(_modules.__path__)[0])
COLLECTIONS = MODULES.parents[4]


class ModuleExit(Exception):
    """The module called exit_json or fail_json; ``result`` is what Ansible would get back."""

    def __init__(self, result):
        super().__init__(result.get("msg"))
        self.result = result


def patch_exits(monkeypatch):
    """Make exit_json/fail_json raise ModuleExit; collect warn() messages into the result's ``warnings``."""
    warnings = []

    def finish(kwargs, failed):
        result = dict(kwargs)
        if failed:
            result["failed"] = True
        if warnings:
            result["warnings"] = list(warnings)
            del warnings[:]
        raise ModuleExit(result)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", lambda self, **kwargs: finish(kwargs, False))
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", lambda self, **kwargs: finish(kwargs, True))
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, msg: warnings.append(msg))


def check_outcome(result, failed):
    """Fail the test unless the module failed exactly when expected."""
    assert bool(result.get("failed")) is failed, "expected %s, got: %r" % ("failure" if failed else "success", result)
    return result


def run_in_process(module, args=None, failed=False, check_mode=False):
    """Run ``module.main()`` with ``args`` (exits must be patched, see patch_exits); return the result."""
    args = dict(args or {})
    if check_mode:
        args["_ansible_check_mode"] = True
    with patch_module_args(args):
        with pytest.raises(ModuleExit) as exited:
            module.main()
    return check_outcome(exited.value.result, failed)


def module_command(tmp_path, name, args, check_mode=False):
    """(command, environment) running plugins/modules/<name>.py on ``args`` as Ansible would."""
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    path = Path(tmp_path) / ("args-%d.json" % random.randrange(1 << 30))
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH=str(COLLECTIONS))
    return [sys.executable, str(MODULES / ("%s.py" % name)), str(path)], env


def run_module_process(tmp_path, name, args, failed=False, check_mode=False):
    """Run plugins/modules/<name>.py as a process; return its JSON result (no traceback allowed)."""
    cmd, env = module_command(tmp_path, name, args, check_mode)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return check_outcome(json.loads(proc.stdout), failed)
