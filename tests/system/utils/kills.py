# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""SIGKILL storms that land in a module's work however fast the machine is.

A fixed delay after the start kills most runs in the module's start-up on a
loaded machine and almost none on a quiet one (where runs end first). The
clock learns how long a whole run takes from the runs that finish, kills
the others in the second half of that time, and lengthens its estimate a
little after each kill so that a run finishes now and then."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time


class KillClock:
    def __init__(self, rng, run_seconds=0.4, early=0.5, late=0.95):
        self.rng = rng
        self.run_seconds = run_seconds
        self.early, self.late = early, late
        self.kills = self.finished = 0

    def run(self, cmd, env):
        """Start ``cmd``; kill it at a random instant of its second half, or
        let it finish. Returns the finished run's result (None when killed);
        a finished run must not have failed or raised."""
        started = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            proc.wait(timeout=self.rng.uniform(self.early, self.late) * self.run_seconds)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
            self.kills += 1
            self.run_seconds *= 1.1
            return None
        self.finished += 1
        self.run_seconds = 0.5 * self.run_seconds + 0.5 * (time.monotonic() - started)
        out = proc.communicate()[0].decode("utf-8", "replace")
        assert "Traceback" not in out, out
        result = json.loads(out)
        assert not result.get("failed"), out
        return result
