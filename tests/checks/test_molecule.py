# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every molecule scenario under extensions/molecule/ (one per role), run with
the delegated driver against this machine: the sequence each scenario's
molecule.yml names (check, converge, idempotence, verify, ...).

A new role's scenario is picked up by being there: the scenarios are the
directories with a molecule.yml. `utils/` holds what scenarios share."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest
import yaml

from tests.checks.conftest import background_job

REPO = Path(__file__).resolve().parents[2]
EXTENSIONS = REPO / "extensions"
SCENARIOS = sorted(p.parent.name for p in (EXTENSIONS / "molecule").glob("*/molecule.yml"))
BIN = Path(sys.executable).parent
# The time a scenario may take (they run in the background pool of conftest.py).
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


def scenario_job(scenario, tmp):
    """`molecule test` of one scenario, from extensions/ of the checkout."""
    env = {
        "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-local"),
        "ANSIBLE_FORCE_COLOR": "0",
        "NO_COLOR": "1",
    }
    return {"args": [BIN / "molecule", "test", "-s", scenario], "cwd": EXTENSIONS, "env": env, "timeout": TIMEOUT}


for _scenario in SCENARIOS:
    background_job("test_molecule[%s]" % _scenario, hold="molecule")(functools.partial(scenario_job, _scenario))


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule(scenario, background):
    background.check("test_molecule[%s]" % scenario)
