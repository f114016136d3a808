# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""site.yml and a job playbook over real SSH to a fleet of 20 sshd hosts:
every host configured, the second site.yml run changes nothing on any host,
each host worked on its own data tree only, and the recurring jobs are on the
hosts that schedule them (host mode) and on no other (controller mode)."""

from __future__ import annotations

import subprocess

import pytest

from tests.e2e.fleet.conftest import HOST_SCHEDULED_GROUPS
from tests.e2e.jobs import BIN, REPO, ansible_env, job, load_table, play_recap

FORKS = 20
TIMEOUT = 900  # a site.yml run over 20 hosts on two cores


def playbook(fleet, path):
    env = ansible_env(
        fleet.root,
        ANSIBLE_PIPELINING="True",
        ANSIBLE_SSH_ARGS=fleet.ssh_args(),
        ANSIBLE_SSH_CONTROL_PATH_DIR=str(fleet.control_dir),
        ANSIBLE_FORKS=str(FORKS),
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default",
        ANSIBLE_DISPLAY_SKIPPED_HOSTS="False",
        ANSIBLE_DISPLAY_OK_HOSTS="False",
    )
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(fleet.inventory), str(REPO / path)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        encoding="utf-8",
        errors="replace",
        timeout=TIMEOUT,
        check=False,
    )
    recap = play_recap(proc.stdout)
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert sorted(recap) == sorted(host["name"] for host in fleet.hosts), proc.stdout[-3000:]
    for name, counts in recap.items():
        assert counts["unreachable"] == 0 and counts["failed"] == 0, (name, counts)
    return recap


@pytest.fixture(scope="module")
def site_runs(fleet):
    site = job("site")["playbook"]
    return playbook(fleet, site), playbook(fleet, site)


def test_fleet_has_twenty_distinct_hosts(fleet):
    assert len(fleet.hosts) >= 20
    assert len({(host["address"], host["port"]) for host in fleet.hosts}) == len(fleet.hosts)
    assert len(set(fleet.membership.values())) > 1, "the hosts must spread over the inventory's groups"


def test_site_configures_every_host(site_runs):
    first, dummy = site_runs
    assert all(counts["ok"] > 0 for counts in first.values())
    assert any(counts["changed"] > 0 for counts in first.values()), "the first run ingests on the station hosts"


def test_second_site_run_changes_nothing(site_runs):
    dummy, second = site_runs
    changed = {name: counts["changed"] for name, counts in second.items() if counts["changed"]}
    assert not changed, "second site.yml run changed hosts: %s" % changed


def test_each_host_works_on_its_own_tree(fleet, site_runs):
    for host in fleet.hosts:
        demo = host["dir"] / "demo"
        copied = sorted(p.name for p in demo.glob("disks/*/2026-11-22/*.dat"))
        if fleet.membership[host["name"]] == "station":
            assert copied == ["%s.dat" % host["name"]] * 2, (host["name"], copied)  # a primary and the backup
        else:
            assert copied == [], (host["name"], copied)


def test_jobs_are_on_the_hosts_that_schedule_them(fleet, site_runs):
    for host in fleet.hosts:
        units = sorted(p.name for p in (host["dir"] / "demo" / "system" / "etc" / "systemd" / "system").glob("datasteward-*.timer"))
        if fleet.membership[host["name"]] in HOST_SCHEDULED_GROUPS:
            assert "datasteward-disk_status.timer" in units, (host["name"], units)
            if fleet.membership[host["name"]] == "station":
                assert "datasteward-ingest.timer" in units, (host["name"], units)
        else:
            assert units == [], (host["name"], "controller mode leaves no job on the host", units)


def test_job_playbook_runs_across_the_fleet(fleet, site_runs):
    entry = job(load_table()["datasteward_fleet_job"])
    recap = playbook(fleet, entry["playbook"])
    assert all(counts["ok"] > 0 for counts in recap.values())
