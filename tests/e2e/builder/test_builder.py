# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The execution environment: `make ee` (the collection build, then
`ansible-builder create` on execution-environment.yml) writes a build context
with the Containerfile, the galaxy requirements and the collection artifact;
ansible-builder's introspection of the installed artifact finds the
collection's Python and system requirements through meta/execution-environment.yml.
There is no container engine here: the image itself is not built."""

from __future__ import annotations

import json
import subprocess
import tarfile

import pytest
import yaml

from tests.e2e.jobs import BIN, REPO, ansible_env, load_jobs


def read_lines(path):
    return [line.split("#")[0].strip() for line in path.read_text(encoding="utf-8").splitlines() if line.split("#")[0].strip()]


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    root = tmp_path_factory.mktemp("ee")
    proc = subprocess.run(
        ["make", "--no-print-directory", "ee", "EE_CONTEXT=%s" % (root / "context")],
        cwd=REPO,
        env=ansible_env(root),
        capture_output=True,
        encoding="utf-8",
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root / "context"


@pytest.fixture(scope="module")
def installed(context, tmp_path_factory):
    collections = tmp_path_factory.mktemp("ee-collections")
    subprocess.run(
        [
            str(BIN / "ansible-galaxy"),
            "collection",
            "install",
            "--no-deps",
            "--offline",
            "--force",
            "-p",
            str(collections),
            str(context / "_build" / "collections" / "datasteward-storage.tar.gz"),
        ],
        env=ansible_env(collections),
        check=True,
        capture_output=True,
        timeout=300,
    )
    return collections


def test_context_has_the_containerfile(context):
    containerfile = (context / "Containerfile").read_text(encoding="utf-8")
    definition = yaml.safe_load((REPO / "execution-environment.yml").read_text(encoding="utf-8"))
    assert definition["version"] == 3
    assert 'ARG EE_BASE_IMAGE="%s"' % definition["images"]["base_image"]["name"] in containerfile
    assert "ansible-galaxy collection install" in containerfile and "-r requirements.yml" in containerfile
    assert "introspect.py introspect" in containerfile
    assert "ansible-core" in containerfile and "ansible-runner" in containerfile
    for script in ("assemble", "introspect.py", "install-from-bindep", "check_ansible", "entrypoint"):
        assert (context / "_build" / "scripts" / script).is_file(), script


def test_context_installs_the_collection_and_its_dependencies(context):
    requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text(encoding="utf-8"))
    names = [entry["name"] for entry in requirements["collections"]]
    assert "collections/datasteward-storage.tar.gz" in names
    assert "community.general" in names
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text(encoding="utf-8"))
    with tarfile.open(context / "_build" / "collections" / "datasteward-storage.tar.gz") as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))["collection_info"]
        members = set(tar.getnames())
    assert (manifest["namespace"], manifest["name"], manifest["version"]) == (galaxy["namespace"], galaxy["name"], galaxy["version"])
    for name in ["meta/execution-environment.yml", "meta/ee-requirements.txt", "bindep.txt", "playbooks/vars/jobs.yml"] + [
        job["playbook"] for job in load_jobs()
    ]:
        assert name in members, "%s is not in the artifact the EE installs" % name


def test_introspection_finds_the_collection_requirements(installed, tmp_path):
    pip, system = tmp_path / "requirements.txt", tmp_path / "bindep.txt"
    subprocess.run(
        [str(BIN / "ansible-builder"), "introspect", str(installed), "--write-pip", str(pip), "--write-bindep", str(system)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert read_lines(pip) == read_lines(REPO / "meta" / "ee-requirements.txt")
    assert read_lines(system) == read_lines(REPO / "bindep.txt")
    # the development pins at the root (requirements.txt) stay out of the image
    assert not [line for line in read_lines(pip) if line.startswith(("pytest", "molecule", "ansible-lint"))]


def test_bindep_file_parses_for_this_platform():
    proc = subprocess.run(
        [str(BIN / "bindep"), "-f", str(REPO / "bindep.txt"), "-l", "newline"], capture_output=True, encoding="utf-8", timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "smartmontools" in proc.stdout.split()
