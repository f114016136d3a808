# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a release publishes: the built artifact holds the collection and no
development files (galaxy.yml build_ignore), galaxy-importer (what Galaxy runs
on an upload: ansible-doc, ansible-lint, changelog, runtime metadata)
accepts it, and antsibull-docs lint-collection-docs finds nothing in the docs.
galaxy-importer and antsibull-docs come from their own venv (.venvs/release,
requirements-release.txt), as galaxy-importer pins its own ansible-core."""

from __future__ import annotations

import fnmatch
import os
import re
import tarfile

import pytest

from tests.checks.conftest import BIN, REPO, run_tool

RELEASE_BIN = REPO / ".venvs" / "release" / "bin"

# Files and trees of the checkout that must not ship (see build_ignore).
DEVELOPMENT = [
    ".venv",
    ".venvs",
    ".collections",
    ".build",
    ".cache",
    ".pytest_cache",
    ".ruff_cache",
    ".ci",
    ".git",
    ".gitignore",
    ".ansible-lint",
    "Makefile",
    "pytest.ini",
    "ansible.cfg",
    "ruff.toml",
    "requirements.in",
    "requirements*.txt",
    "execution-environment.yml",
    "inventory",
    "benchmarks",
    "tests/output",
    "tests/checks",
    "tests/system",
    "tests/e2e",
    "tests/utils",
]
# What must ship: content, and the tests ansible-test runs from an installed collection.
SHIPPED = [
    "README.md",
    "meta/runtime.yml",
    "plugins/modules/disk_usage.py",
    "plugins/module_utils/_copy/engine.py",
    "docs/architecture.md",
    "tests/unit/conftest.py",
    "tests/integration/targets/disk_usage/tasks/main.yml",
    "tests/unit/plugins/module_utils/fixtures/smartctl/SOURCE.md",
]
# galaxy-importer warnings that are expected, as regular expressions, each with why:
EXPECTED_WARNINGS = [
    # the sanity ignore files exist and stay empty (tests/checks/test_sanity.py)
    r"Ignore files skip ansible-test sanity tests, found ignore-[0-9.]+\.txt with 0 statement\(s\)",
    # the importer lints with only this collection on its collections path, so
    # modules of the collections we depend on (galaxy.yml dependencies:
    # community.general for the notify role's mail) are unknown to it ...
    r"roles/[a-z_]+/tasks/[a-z_]+\.yml:\d+:\d+: syntax-check\[unknown-module\]: couldn't resolve module/action 'community\.general\.[a-z_]+'.*",
    # ... and so is awx.awx, which the AWX set-up playbook needs (docs/awx.md)
    r"playbooks/awx\.yml:1: internal-error: Unexpected error code 4 from execution of: ansible-playbook --syntax-check.*",
]


@pytest.fixture(scope="session")
def artifact(collection_copy, tmp_path_factory):
    out = tmp_path_factory.mktemp("artifact")
    run_tool([BIN / "ansible-galaxy", "collection", "build", "--output-path", out], cwd=collection_copy)
    (path,) = out.glob("datasteward-storage-*.tar.gz")
    return path


def release_tool(name):
    tool = RELEASE_BIN / name
    if not tool.exists():
        pytest.fail("%s is missing: make setup builds .venvs/release from requirements-release.txt" % tool, pytrace=False)
    return tool


def test_artifact_has_no_development_files(artifact):
    with tarfile.open(artifact) as tar:
        names = tar.getnames()
    leaked = sorted(n for n in names for pattern in DEVELOPMENT if fnmatch.fnmatchcase(n, pattern) or fnmatch.fnmatchcase(n, pattern + "/*"))
    assert not leaked, "the artifact ships development files (add them to build_ignore in galaxy.yml): %s" % leaked[:10]
    missing = [n for n in SHIPPED if n not in names]
    assert not missing, "the artifact lacks %s (build_ignore in galaxy.yml leaves out too much)" % missing
    caches = [n for n in names if "__pycache__" in n.split("/") or n.endswith(".pyc")]
    assert not caches, caches[:5]


def test_galaxy_importer(artifact, tmp_path):
    # Galaxy's own settings: ansible-doc, ansible-lint (production), the
    # changelog; no flake8 (off on Galaxy too: its W503 contradicts
    # ansible-test's pep8, which the sanity run enforces) and no ansible-test
    # (it wants a container here; test_sanity.py runs it).
    config = tmp_path / "galaxy-importer.cfg"
    config.write_text(
        "[galaxy-importer]\nRUN_ANSIBLE_TEST = False\nRUN_ANSIBLE_LINT = True\nRUN_FLAKE8 = False\n"
        "CHECK_CHANGELOG = True\nANSIBLE_LOCAL_TMP = %s\nTMP_ROOT_DIR = %s\n" % (tmp_path / "ansible", tmp_path),
        encoding="utf-8",
    )
    python = release_tool("python")
    out = run_tool(
        [python, "-m", "galaxy_importer.main", artifact],
        cwd=tmp_path,
        timeout=900,
        env={"GALAXY_IMPORTER_CONFIG": str(config), "PATH": "%s:%s" % (RELEASE_BIN, os.environ.get("PATH", ""))},
    )
    assert "Importer processing completed successfully" in out, out[-3000:]
    warnings = [line.strip() for line in out.splitlines() if line.startswith(("WARNING", "ERROR"))]
    unexpected = [w for w in warnings if not any(re.fullmatch(e, w.split(":", 1)[1].strip()) for e in EXPECTED_WARNINGS)]
    assert not unexpected, "galaxy-importer found:\n%s" % "\n".join(unexpected)


def test_antsibull_docs_lint(collection_copy):
    # The docs link to modules of the collections we depend on
    # (M(community.general.mail)); antsibull-docs resolves those links with
    # ansible-doc, so it sees the ones the main venv's ansible package brings.
    dependencies = sorted((REPO / ".venv" / "lib").glob("python3*/site-packages/ansible_collections/community/general"))
    if not dependencies:
        pytest.fail("community.general is missing from .venv: make setup installs it (requirements.txt)", pytrace=False)
    paths = [str(collection_copy.parents[2]), str(dependencies[0].parents[2])]
    run_tool(
        [release_tool("antsibull-docs"), "lint-collection-docs", "--plugin-docs", "."],
        cwd=collection_copy,
        timeout=600,
        env={"ANSIBLE_COLLECTIONS_PATH": ":".join(paths), "PATH": "%s:%s" % (RELEASE_BIN, os.environ.get("PATH", ""))},
    )
