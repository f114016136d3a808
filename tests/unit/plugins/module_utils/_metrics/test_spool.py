# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The spool: modes, atomic files, bounds, order, check mode. The sender here
is a list of answers; real HTTP servers are in tests/e2e/metrics/test_push.py."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._metrics import spool as sp
from ansible_collections.datasteward.storage.plugins.module_utils._metrics.snapshot import MetricsError

WIDE = sp.Limits(1000, 10**9, 7 * 86400)


class Clock:
    def __init__(self, now=1764619200.0):
        self.now = now

    def __call__(self):
        return self.now


class Server:
    """Answers with the given statuses in turn (None: no answer), records bodies."""

    def __init__(self, *statuses):
        self.statuses = list(statuses)
        self.bodies = []

    def __call__(self, body):
        self.bodies.append(body)
        status = self.statuses.pop(0) if self.statuses else 200
        return status, None if status is not None and 200 <= status < 300 else "boom %s" % status


def run(path, body, server, limits=WIDE, clock=None, check_mode=False):
    return sp.push(sp.Spool(str(path), clock=clock or Clock()), body, limits, server, check_mode=check_mode)


def mode(path):
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


def test_a_payload_is_sent_and_nothing_stays(tmp_path):
    server = Server(200)
    result = run(tmp_path / "spool", b'{"a":1}', server)
    assert server.bodies == [b'{"a":1}']
    assert result["sent"] == [result["payload_file"]] and result["pending"] == [] and result["changed"]
    assert result["spool_created"] and mode(tmp_path / "spool") == 0o700
    assert os.listdir(str(tmp_path / "spool")) == []


def test_failures_spool_in_order_and_recovery_sends_each_once_oldest_first(tmp_path):
    clock = Clock()
    server = Server(500, None, 503)
    for number in range(3):
        clock.now += 60
        result = run(tmp_path, b"doc%d" % number, server, clock=clock)
        assert result["error"] == "boom %s" % [500, None, 503][number]
    assert len(result["pending"]) == 3 and result["pending"] == sorted(result["pending"])
    for name in result["pending"]:
        assert mode(tmp_path / name) == 0o600
    server.bodies = []
    clock.now += 60
    result = run(tmp_path, b"doc3", server, clock=clock)
    assert server.bodies == [b"doc0", b"doc1", b"doc2", b"doc3"]
    assert result["pending"] == [] and len(result["sent"]) == 4
    server.bodies = []
    result = run(tmp_path, None, server)
    assert server.bodies == [] and result["changed"] is False


def test_sending_stops_at_the_first_failure(tmp_path):
    clock = Clock()
    for number in range(3):
        clock.now += 1
        run(tmp_path, b"doc%d" % number, Server(500), clock=clock)
    server = Server(200, 500)
    result = run(tmp_path, None, server, clock=clock)
    assert server.bodies == [b"doc0", b"doc1"]
    assert len(result["sent"]) == 1 and len(result["pending"]) == 2 and result["status_code"] == 500


def test_bounds_drop_the_oldest_first_and_say_why(tmp_path):
    clock = Clock()
    for number in range(5):
        clock.now += 10
        result = run(tmp_path, b"x" * 100, Server(500), limits=sp.Limits(3, 10**6, 3600), clock=clock)
    assert len(result["pending"]) == 3
    assert [d["reason"] for d in result["dropped"]] == ["count"]
    clock.now += 10
    result = run(tmp_path, b"y" * 100, Server(500), limits=sp.Limits(10, 250, 3600), clock=clock)
    assert [d["reason"] for d in result["dropped"]] == ["bytes", "bytes"]
    assert result["pending_bytes"] <= 250
    clock.now += 3600 - 5
    result = run(tmp_path, None, Server(500), limits=sp.Limits(10, 10**6, 3600), clock=clock)
    assert [d["reason"] for d in result["dropped"]] == ["age"] and result["dropped"][0]["age_seconds"] > 3600
    assert len(os.listdir(str(tmp_path))) == 1


def test_check_mode_plans_and_writes_nothing(tmp_path):
    server = Server()
    result = run(tmp_path / "spool", b"doc", server, check_mode=True)
    assert not (tmp_path / "spool").exists() and server.bodies == []
    assert result["spool_created"] and result["sent"] == [result["payload_file"]] and result["changed"]
    run(tmp_path / "spool", b"old", Server(500))
    before = sorted(os.listdir(str(tmp_path / "spool")))
    result = run(tmp_path / "spool", b"new", server, check_mode=True)
    assert sorted(os.listdir(str(tmp_path / "spool"))) == before and server.bodies == []
    assert len(result["sent"]) == 2


def test_mode_fixed_stale_temporaries_and_foreign_files(tmp_path):
    os.chmod(str(tmp_path), 0o755)
    (tmp_path / (sp.TEMP_PREFIX + "0001764619200000-00000000.json")).write_bytes(b"half")
    (tmp_path / "README").write_text("not ours")
    result = run(tmp_path, None, Server())
    assert result["spool_mode_fixed"] and mode(tmp_path) == 0o700
    assert result["stale_temporaries_removed"] == 1 and result["changed"]
    assert os.listdir(str(tmp_path)) == ["README"]


def test_a_symlinked_spool_is_refused(tmp_path):
    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(MetricsError, match="spool_dir .*link is a symlink"):
        run(tmp_path / "link", b"doc", Server())
    (tmp_path / "file").write_text("")
    with pytest.raises(MetricsError, match="spool_dir .*file is not a directory"):
        run(tmp_path / "file", b"doc", Server())


def test_a_symlink_inside_is_not_read(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("secret")
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir(mode=0o700)
    (spool_dir / "0001764619100000-aaaaaaaa.json").symlink_to(secret)
    server = Server()
    result = run(spool_dir, None, server)
    assert server.bodies == [] and result["sent"] == []


def test_a_locked_spool_fails_clearly(tmp_path):
    holder = sp.Spool(str(tmp_path))
    holder.open()
    try:
        with pytest.raises(MetricsError, match="is locked by another run"):
            sp.push(sp.Spool(str(tmp_path)), b"doc", WIDE, Server(), lock_timeout=0.1)
    finally:
        holder.close()


@pytest.mark.parametrize("text, seconds", [("90", 90), ("30m", 1800), ("12h", 43200), ("7d", 604800), ("2w", 1209600), ("1.5h", 5400)])
def test_parse_age(text, seconds):
    assert sp.parse_age(text) == seconds


def test_bad_bounds_name_the_option(tmp_path):
    with pytest.raises(MetricsError, match="max_age must be a number of seconds"):
        sp.parse_age("soon")
    with pytest.raises(MetricsError, match="max_files must be at least 1"):
        run(tmp_path, b"doc", Server(), limits=sp.Limits(0, 10, 10))
    with pytest.raises(MetricsError, match="max_age must be more than 0"):
        run(tmp_path, b"doc", Server(), limits=sp.Limits(1, 10, 0))
