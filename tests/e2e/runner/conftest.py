# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Job playbooks run as AWX runs them: `ansible-runner run DIR -p PLAYBOOK`.

The private data directory is laid out as AWX lays it out for a job:

    env/extravars     the template's extra vars plus what AWX injects
                      (awx_job_id, awx_job_template_name, ... and tower_*)
    env/envvars       JOB_ID, INVENTORY_ID, PROJECT_REVISION, the
                      collections path of the execution environment, ...
    env/settings      runner settings (timeouts, output suppressed)
    inventory/hosts   an executable that prints the inventory as JSON: the
                      bundled inventory as AWX's inventory sync stores it
    project/          the project checkout (the files a commit holds)

The collection is built from the project and installed into a collections
directory that ANSIBLE_COLLECTIONS_PATH points at, as it is installed in the
execution environment (execution-environment.yml).
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from tests.checks.conftest import repo_files
from tests.e2e.jobs import BIN, REPO, ansible_env, exported_inventory

INVENTORY_SCRIPT = """\
#!{python}
# Written for this job, as AWX writes inventory/hosts: the stored inventory as JSON.
import json
import sys

INVENTORY = json.loads({payload!r})
if "--host" in sys.argv:
    print(json.dumps(INVENTORY["_meta"]["hostvars"].get(sys.argv[-1], {{}})))
else:
    print(json.dumps(INVENTORY))
"""


def awx_extravars(job_id, entry, demo_root):
    """The template's extra vars and the variables AWX adds to every job."""
    injected = {
        "job_id": job_id,
        "job_launch_type": "scheduled" if entry["schedule"] else "manual",
        "job_template_id": 100 + job_id,
        "job_template_name": entry["template"],
        "inventory_id": 7,
        "inventory_name": "datasteward",
        "project_revision": "0" * 40,
        "project_scm_branch": "main",
        "execution_node": "localhost",
        "host": "https://awx.example.invalid",
    }
    if entry["schedule"]:
        injected.update({"schedule_id": 200 + job_id, "schedule_name": entry["schedule"]["name"]})
    extravars = dict(entry["extra_vars"] or {})
    for prefix in ("awx_", "tower_"):
        extravars.update({prefix + key: value for key, value in injected.items()})
    # the job's data lives in the test's tmp dir, not the checkout's .cache/demo
    extravars["datasteward_demo_root"] = str(demo_root)
    return extravars


class Project:
    """The project checkout and the collections path shared by every job."""

    def __init__(self, root):
        self.root = root
        self.checkout = root / "project"
        self.collections = root / "collections"
        self.demo = root / "demo"
        self.jobs = 0

    def prepare(self):
        for name in repo_files():
            target = self.checkout / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target, follow_symlinks=False)
        env = ansible_env(self.root)
        subprocess.run(
            [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(self.root / "dist"), str(self.checkout)],
            env=env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        (artifact,) = (self.root / "dist").glob("datasteward-storage-*.tar.gz")
        subprocess.run(
            [str(BIN / "ansible-galaxy"), "collection", "install", "--no-deps", "--offline", "--force", "-p", str(self.collections), str(artifact)],
            env=env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        self.inventory = exported_inventory(self.checkout / "inventory" / "local" / "hosts.yml")

    def private_data_dir(self, entry):
        """A fresh private data directory for one job of the jobs table."""
        self.jobs += 1
        pdd = self.root / ("job-%d-%s" % (self.jobs, entry["name"]))
        (pdd / "env").mkdir(parents=True)
        (pdd / "inventory").mkdir()
        (pdd / "project").symlink_to(self.checkout)
        (pdd / "env" / "extravars").write_text(yaml.safe_dump(awx_extravars(self.jobs, entry, self.demo)), encoding="utf-8")
        (pdd / "env" / "envvars").write_text(
            yaml.safe_dump(
                {
                    "JOB_ID": str(self.jobs),
                    "INVENTORY_ID": "7",
                    "PROJECT_REVISION": "0" * 40,
                    "ANSIBLE_COLLECTIONS_PATH": str(self.collections),
                    "ANSIBLE_HOST_KEY_CHECKING": "False",
                    "ANSIBLE_RETRY_FILES_ENABLED": "False",
                    "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
                    "ANSIBLE_LOCAL_TEMP": str(pdd / "tmp"),
                    "ANSIBLE_FORCE_COLOR": "False",
                }
            ),
            encoding="utf-8",
        )
        (pdd / "env" / "settings").write_text(
            yaml.safe_dump(
                {
                    "idle_timeout": 300,
                    "job_timeout": 600,
                    "pexpect_timeout": 10,
                    "suppress_ansible_output": True,
                }
            ),
            encoding="utf-8",
        )
        hosts = pdd / "inventory" / "hosts"
        hosts.write_text(INVENTORY_SCRIPT.format(python=BIN / "python", payload=json.dumps(self.inventory)), encoding="utf-8")
        hosts.chmod(0o755)
        return pdd


class RunnerJob:
    """The artifacts of one `ansible-runner run` (artifacts/<ident>/)."""

    def __init__(self, pdd, ident, proc):
        self.pdd = pdd
        self.proc = proc
        self.artifacts = pdd / "artifacts" / ident

    @property
    def rc(self):
        return int((self.artifacts / "rc").read_text(encoding="utf-8").strip())

    @property
    def status(self):
        return (self.artifacts / "status").read_text(encoding="utf-8").strip()

    @property
    def stdout(self):
        return (self.artifacts / "stdout").read_text(encoding="utf-8", errors="replace")

    def events(self):
        paths = sorted((self.artifacts / "job_events").glob("*.json"), key=lambda p: int(p.name.split("-", 1)[0]))
        return [json.loads(path.read_text(encoding="utf-8")) for path in paths]


def run_job(project, entry, playbook=None):
    """Run one entry of the jobs table (or another playbook) through ansible-runner."""
    pdd = project.private_data_dir(entry)
    ident = "job-%s" % entry["name"]
    env = ansible_env(project.root)
    env.pop("ANSIBLE_CONFIG")  # AWX uses the project's own ansible.cfg
    proc = subprocess.run(
        [str(BIN / "ansible-runner"), "run", str(pdd), "-p", playbook or entry["playbook"], "--ident", ident],
        env=env,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=600,
        check=False,
    )
    return RunnerJob(pdd, ident, proc)


def list_tasks(project, job):
    """The task names Ansible plans for the job's playbook with the job's
    inventory and extra vars (`ansible-playbook --list-tasks`)."""
    pdd = job.pdd
    env = ansible_env(project.root, ANSIBLE_COLLECTIONS_PATH=str(project.collections))
    env.pop("ANSIBLE_CONFIG")
    playbook = json.loads((job.artifacts / "command").read_text(encoding="utf-8"))["command"][-1]
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(pdd / "inventory"), "-e", "@%s" % (pdd / "env" / "extravars"), "--list-tasks", playbook],
        cwd=pdd / "project",
        env=env,
        capture_output=True,
        encoding="utf-8",
        timeout=120,
        check=True,
    )
    return [line.split("\t")[0].strip() for line in proc.stdout.splitlines() if line.startswith("      ") and "\tTAGS:" in line]


@pytest.fixture(scope="module")
def awx_project(tmp_path_factory):
    project = Project(tmp_path_factory.mktemp("awx"))
    project.prepare()
    demo = run_job(project, {"name": "demo_data", "template": "datasteward: demo data", "schedule": None, "extra_vars": {}}, playbook="playbooks/demo_data.yml")
    assert demo.status == "successful", demo.stdout[-3000:]
    return project
