# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The metrics_push module's main() against a port that refuses connections;
real HTTP servers are in tests/e2e/metrics/test_push.py."""

from __future__ import annotations

import functools
import json
import os
import socket
import stat

import pytest

from ansible_collections.datasteward.storage.plugins.modules import metrics_push


@pytest.fixture
def run(run_module):
    return functools.partial(run_module, metrics_push)


@pytest.fixture
def refused_url():
    """A loopback port bound but not listening: every connection is refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield "http://127.0.0.1:%d/pattoo/api/v1/agent/receive/abc" % sock.getsockname()[1]
    finally:
        sock.close()


def test_refused_connection_spools_with_a_warning(run, refused_url, tmp_path):
    spool = tmp_path / "state" / "spool"
    args = {"url": refused_url, "payload": {"pattoo_agent_id": "abc", "n": 1}, "spool_dir": str(spool), "timeout": 2}
    planned = run(args, check_mode=True)
    assert planned["changed"] and planned["spool_created"] and not spool.exists()
    result = run(args)
    assert result["changed"] and result["delivered"] is False
    assert result["pending"] == [result["payload_file"]] and "Connection refused" in result["error"]
    assert "1 document(s) wait in %s" % spool in result["warnings"][0]
    assert stat.S_IMODE(os.stat(str(spool)).st_mode) == 0o700
    stored = spool / result["payload_file"]
    assert stat.S_IMODE(os.stat(str(stored)).st_mode) == 0o600
    assert json.loads(stored.read_text()) == {"pattoo_agent_id": "abc", "n": 1}
    retry = run({"url": refused_url, "spool_dir": str(spool), "timeout": 2})
    assert retry["changed"] is False and retry["pending"] == result["pending"]


@pytest.mark.parametrize(
    "args, message",
    [
        ({"max_age": "soon"}, "max_age must be a number of seconds with an optional unit"),
        ({"max_files": 0}, "max_files must be at least 1, got 0"),
        ({"max_bytes": 0}, "max_bytes must be at least 1, got 0"),
    ],
)
def test_bad_bounds_fail_naming_the_option(run, refused_url, tmp_path, args, message):
    args.update(url=refused_url, spool_dir=str(tmp_path))
    assert message in run(args, failed=True)["msg"]


def test_a_spool_dir_that_is_a_file_fails_naming_it(run, refused_url, tmp_path):
    (tmp_path / "spool").write_text("")
    result = run({"url": refused_url, "spool_dir": str(tmp_path / "spool"), "payload": {"a": 1}}, failed=True)
    assert result["msg"] == "spool_dir %s is not a directory" % (tmp_path / "spool")
