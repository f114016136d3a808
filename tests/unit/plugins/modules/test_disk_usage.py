# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The disk_usage module's main(): argument handling, results and errors."""

from __future__ import annotations

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.datasteward.storage.plugins.modules import disk_usage


class Exited(Exception):
    def __init__(self, result, failed):
        super().__init__(result.get("msg"))
        self.result = result
        self.failed = failed


@pytest.fixture
def run(monkeypatch):
    def exit_json(self, **kwargs):
        raise Exited(kwargs, failed=False)

    def fail_json(self, **kwargs):
        raise Exited(kwargs, failed=True)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)

    def _run(**args):
        with patch_module_args(args):
            with pytest.raises(Exited) as exc:
                disk_usage.main()
        return exc.value

    return _run


def test_default_reports_root_unchanged(run):
    outcome = run()
    assert not outcome.failed
    assert outcome.result["changed"] is False
    assert "/" in [fs["mount"] for fs in outcome.result["filesystems"]]
    assert set(outcome.result) >= {"filesystems", "status", "alerts"}


def test_path_alias_and_check_mode(run, tmp_path):
    outcome = run(path=[str(tmp_path)], _ansible_check_mode=True)
    (fs,) = outcome.result["filesystems"]
    assert fs["path"] == str(tmp_path)
    assert outcome.result["changed"] is False


def test_missing_path_fails_naming_it(run, tmp_path):
    outcome = run(paths=[str(tmp_path / "gone")])
    assert outcome.failed
    assert outcome.result["msg"] == "paths: %s does not exist" % (tmp_path / "gone")


def test_bad_timeout_fails_naming_it(run):
    outcome = run(timeout=0)
    assert outcome.failed
    assert outcome.result["msg"] == "timeout must be greater than 0, got 0.0"


def test_fstype_filter(run):
    outcome = run(fstypes=["no-such-fstype"])
    assert outcome.result["filesystems"] == []
    assert outcome.result["status"] == "ok"
