# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_proc.forked: a call in a forked child, its result or its failure back."""

from __future__ import annotations

import os
import signal

from ansible_collections.datasteward.storage.plugins.module_utils._proc import forked


def test_the_child_runs_the_call_in_another_process_and_hands_back_its_value():
    child = forked.start(lambda: (os.getpid(), [b"\xff", {"a": 1}]))
    got = child.wait()
    assert got["ok"][0] != os.getpid() and got["ok"][1] == [b"\xff", {"a": 1}]
    assert child.wait() is got  # asked again: the same outcome, nothing read twice


def test_an_error_in_the_child_is_a_failed_outcome_with_its_message():
    def boom():
        raise ValueError("no such thing")

    assert forked.start(boom).wait() == {"failed": "ValueError: no such thing"}


def test_a_child_killed_before_it_answers_is_a_failed_outcome_not_a_hang():
    got = forked.start(lambda: os.kill(os.getpid(), signal.SIGKILL)).wait()
    assert "ended without a result" in got["failed"]


def test_the_child_sees_the_descriptors_and_memory_of_the_caller(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"seen")
    fd = os.open(str(path), os.O_RDONLY)
    try:
        assert forked.start(lambda: os.pread(fd, 10, 0)).wait() == {"ok": b"seen"}
    finally:
        os.close(fd)


def test_no_process_to_be_had_returns_none_and_run_all_runs_the_call_here(monkeypatch):
    def no_fork():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    assert forked.start(lambda: 1) is None
    assert forked.run_all([lambda: 1, lambda: 2]) == [{"ok": 1, "here": True}, {"ok": 2, "here": True}]


def test_run_all_keeps_the_order_of_the_calls():
    outcomes = forked.run_all([lambda index=index: index * index for index in range(4)])
    assert [outcome["ok"] for outcome in outcomes] == [0, 1, 4, 9]
    assert not any(outcome.get("here") for outcome in outcomes)
