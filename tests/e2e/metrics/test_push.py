# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""metrics_push, run as Ansible runs it, against a real HTTP server that
answers 200, answers 500, never answers, or closes the connection: nothing is
lost, nothing is sent twice after recovery, the spool keeps its bounds and modes."""

from __future__ import annotations

import json
import os
import stat
import time

from ansible_collections.datasteward.storage.tests.unit.utils.module_runner import run_module_process


def push(tmp_path, receiver, number, **args):
    spool = tmp_path / "spool"
    args.setdefault("timeout", 1)
    payload = None if number is None else {"pattoo_agent_id": "agent", "number": number}
    result = run_module_process(tmp_path, "metrics_push", dict(args, url=receiver.url, payload=payload, spool_dir=str(spool)))
    if payload is None:
        del result["payload_file"]
    return result, spool


def numbers(bodies):
    return [json.loads(body)["number"] for body in bodies]


def assert_private(spool):
    assert stat.S_IMODE(os.lstat(str(spool)).st_mode) == 0o700
    for name in os.listdir(str(spool)):
        assert stat.S_IMODE(os.lstat(str(spool / name)).st_mode) == 0o600, name
        assert not name.startswith(".tmp-")


def test_nothing_lost_nothing_sent_twice(tmp_path, receiver):
    receiver.mode = "error"
    result, spool = push(tmp_path, receiver, 1)
    assert result["status_code"] == 500 and result["error"].startswith("HTTP 500") and len(result["pending"]) == 1

    receiver.mode = "hang"
    started = time.monotonic()
    result, spool = push(tmp_path, receiver, 2)
    assert time.monotonic() - started < 15
    assert "no answer within 1 s" in result["error"], result["error"]
    assert result["status_code"] is None and len(result["pending"]) == 2

    receiver.mode = "close"
    result, spool = push(tmp_path, receiver, 3)
    assert result["error"] and result["status_code"] is None and len(result["pending"]) == 3
    assert_private(spool)
    assert [mode for mode, _body in receiver.received] == ["error", "hang", "close"]

    receiver.mode = "ok"
    result, spool = push(tmp_path, receiver, 4)
    assert result["error"] is None and result["pending"] == [] and result["delivered"] is True
    assert numbers(receiver.accepted) == [1, 2, 3, 4]
    result, spool = push(tmp_path, receiver, None)
    assert result["changed"] is False and numbers(receiver.accepted) == [1, 2, 3, 4]
    assert os.listdir(str(spool)) == []


def test_a_full_spool_drops_the_oldest_and_stays_private(tmp_path, receiver):
    receiver.mode = "error"
    for number in range(1, 5):
        result, spool = push(tmp_path, receiver, number, max_files=3)
    assert [d["reason"] for d in result["dropped"]] == ["count"]
    assert len(os.listdir(str(spool))) == 3
    assert_private(spool)
    result, spool = push(tmp_path, receiver, 5, max_files=3, max_bytes=100)
    assert set(d["reason"] for d in result["dropped"]) == {"count", "bytes"}
    assert result["pending_bytes"] <= 100
    old = spool / "0000000000001000-00000000.json"
    old.write_bytes(b'{"number": 0}')
    os.chmod(str(old), 0o600)
    receiver.mode = "ok"
    result, spool = push(tmp_path, receiver, 6, max_age="1d")
    assert [d["name"] for d in result["dropped"] if d["reason"] == "age"] == [old.name]
    assert numbers(receiver.accepted) == numbers(sorted(receiver.accepted, key=lambda b: json.loads(b)["number"]))
    assert numbers(receiver.accepted)[-1] == 6 and 0 not in numbers(receiver.accepted)
