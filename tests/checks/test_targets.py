# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The integration targets as a whole: every module has one, their aliases say
what they need (a target that mounts needs root, a privileged container and
is destructive), the files and targets they name exist, and `ansible-test
integration --local` selects every one of them (test_integration.py then runs
each). Static checks, except the last, which asks ansible-test itself."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.checks.conftest import BIN, REPO, run_tool

TARGETS_DIR = REPO / "tests" / "integration" / "targets"
MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
ALL_TARGETS = sorted(p.name for p in TARGETS_DIR.iterdir() if p.is_dir()) if TARGETS_DIR.is_dir() else []

# The aliases ansible-test knows (ansible-test's "Aliases" in the
# integration-tests guide), as prefixes; anything else is a typo.
KNOWN_ALIASES = (
    "needs/root",
    "needs/privileged",
    "needs/file/",
    "needs/target/",
    "needs/ssh",
    "needs/httptester",
    "destructive",
    "hidden",
    "disabled",
    "unstable",
    "unsupported",
    "context/",
    "skip/",
    "setup/",
    "shippable/",
    "azp/",
    "cloud/",
    "gather_facts/",
    "non_local",
    "needs/python/",
)
# Tasks that mount a file system: mount(2) wants root and, in a container, --privileged.
MOUNTS = re.compile(r"argv:\s*\[\s*mount\b|\bcmd:\s*mount\b|\bcommand:\s*mount\b|ansible\.posix\.mount\b|\bmount\s+-t\b")


def aliases(target):
    path = TARGETS_DIR / target / "aliases"
    if not path.is_file():
        return None
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def task_text(target):
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted((TARGETS_DIR / target).glob("tasks/**/*.yml")))


def is_hidden(target):
    return "hidden" in (aliases(target) or [])


@pytest.mark.parametrize("module", MODULES)
def test_every_module_has_a_target(module):
    target = TARGETS_DIR / module
    assert (target / "tasks" / "main.yml").is_file(), (
        "plugins/modules/%s.py has no integration target: add tests/integration/targets/%s/tasks/main.yml "
        "(check mode, apply, re-apply, check mode) and its aliases" % (module, module)
    )
    assert not is_hidden(module), "tests/integration/targets/%s/aliases says hidden: the module's target would never run" % module


@pytest.mark.parametrize("target", ALL_TARGETS)
def test_target_aliases(target):
    found = aliases(target)
    assert found is not None, "tests/integration/targets/%s has no aliases file" % target
    unknown = [a for a in found if not a.startswith(KNOWN_ALIASES)]
    assert not unknown, "tests/integration/targets/%s/aliases: unknown aliases %s" % (target, unknown)
    if MOUNTS.search(task_text(target)):
        missing = [a for a in ("needs/root", "needs/privileged", "destructive") if a not in found]
        assert not missing, "tests/integration/targets/%s mounts a file system; its aliases lack %s" % (target, missing)
    for alias in found:
        if alias.startswith("needs/file/"):
            assert (REPO / alias[len("needs/file/") :]).is_file(), "%s/aliases: %s names no file" % (target, alias)
        if alias.startswith("needs/target/"):
            assert (TARGETS_DIR / alias[len("needs/target/") :]).is_dir(), "%s/aliases: %s names no target" % (target, alias)


@pytest.mark.parametrize("target", ALL_TARGETS)
def test_target_dependencies_exist(target):
    meta = TARGETS_DIR / target / "meta" / "main.yml"
    if not meta.is_file():
        return
    deps = (yaml.safe_load(meta.read_text(encoding="utf-8")) or {}).get("dependencies") or []
    names = [d if isinstance(d, str) else d.get("role") or d.get("name") for d in deps]
    missing = [n for n in names if n not in ALL_TARGETS]
    assert not missing, "tests/integration/targets/%s/meta/main.yml depends on unknown targets %s" % (target, missing)


def test_ansible_test_selects_every_target(collection_copy):
    """What `ansible-test integration --local` (with root and destructive
    allowed, as make test runs it) would run is every target that is not hidden."""
    out = run_tool(
        [BIN / "ansible-test", "integration", "--color", "no", "--local", "--python", "3.11", "--allow-destructive", "--allow-root", "--list-targets"],
        cwd=collection_copy,
        timeout=300,
    )
    listed = sorted(line.strip() for line in out.splitlines() if line.strip() and not line.startswith(("WARNING", "NOTICE")))
    expected = sorted(t for t in ALL_TARGETS if not is_hidden(t))
    assert listed == expected, "ansible-test would run %s, the targets are %s" % (listed, expected)
    assert set(MODULES) <= set(listed)
