# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every molecule scenario under extensions/molecule/ (one per role), run with
the delegated driver against this machine: the sequence each scenario's
molecule.yml names (check, converge, idempotence, verify, ...).

A new role's scenario is picked up by being there: the scenarios are the
directories with a molecule.yml. `utils/` holds what scenarios share."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml


REPO = Path(__file__).resolve().parents[2]
EXTENSIONS = REPO / "extensions"
SCENARIOS = sorted(p.parent.name for p in (EXTENSIONS / "molecule").glob("*/molecule.yml"))
BIN = Path(sys.executable).parent
# Scenarios run at once (two cores here), and the time each may take.
JOBS = 2
TIMEOUT = 900


def test_every_role_has_a_scenario():
    roles = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "tasks").is_dir())
    assert [r for r in roles if r not in SCENARIOS] == []


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_config(scenario):
    config = yaml.safe_load((EXTENSIONS / "molecule" / scenario / "molecule.yml").read_text(encoding="utf-8"))
    sequence = config["scenario"]["test_sequence"]
    assert {"check", "converge", "idempotence", "verify"} <= set(sequence)
    assert config["driver"]["name"] == "default"
    assert config["provisioner"]["env"]["ANSIBLE_INJECT_FACT_VARS"] == "false"


def run_scenario(scenario, tmp):
    """`molecule test` of one scenario; its exit status and output."""
    tmp.mkdir()
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-local"),
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_NOCOLOR": "1",
            "NO_COLOR": "1",
            "PATH": "%s:%s" % (BIN, os.environ.get("PATH", "")),
        }
    )
    cmd = [str(BIN / "molecule"), "test", "-s", scenario]
    try:
        proc = subprocess.run(
            cmd, cwd=EXTENSIONS, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, encoding="utf-8", errors="replace", timeout=TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        return None, "molecule test -s %s did not end within %d s:\n%s" % (scenario, TIMEOUT, exc.output or "")
    return proc.returncode, proc.stdout


@pytest.fixture(scope="module")
def molecule_runs(request, tmp_path_factory):
    """The selected scenarios, JOBS at a time from the first test on: one
    ansible-playbook on the local connection keeps about one core busy, and
    each scenario works in its own ephemeral directory and root."""
    selected = [item.callspec.params["scenario"] for item in request.session.items if getattr(item, "originalname", "") == "test_molecule"]
    base = tmp_path_factory.mktemp("molecule")
    pool = ThreadPoolExecutor(max_workers=JOBS)
    runs = {scenario: pool.submit(run_scenario, scenario, base / scenario) for scenario in selected}
    yield runs
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule(scenario, molecule_runs):
    returncode, output = molecule_runs[scenario].result()
    if returncode != 0:
        lines = [line for line in output.splitlines() if "is ignored: it is neither" not in line]
        pytest.fail("molecule test -s %s exited %s:\n%s" % (scenario, returncode, "\n".join(lines[-150:])), pytrace=False)
