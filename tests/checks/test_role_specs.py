# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every role's argument specs, defaults and README agree: each public
variable of defaults/main.yml is in an entry point's options with the same
default (a templated default stands for the value its fallback gives), each
option with a default is in defaults/main.yml, and the README names each one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLES = sorted(path.parent.parent.name for path in REPO.glob("roles/*/defaults/main.yml"))
FALLBACK = re.compile(r"^\{\{ *[a-z_]+ *\| *default\((?P<value>.*)\) *\}\}$")


def role_files(role):
    root = REPO / "roles" / role
    defaults = yaml.safe_load((root / "defaults" / "main.yml").read_text(encoding="utf-8")) or {}
    specs = yaml.safe_load((root / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))["argument_specs"]
    readme = (root / "README.md").read_text(encoding="utf-8")
    return defaults, specs, readme


def effective(value):
    """A default as the role applies it when the variable it falls back on is unset."""
    match = FALLBACK.match(value) if isinstance(value, str) else None
    return yaml.safe_load(match.group("value")) if match else value


@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_argument_specs_agree(role):
    defaults, specs, dummy = role_files(role)
    options = {}
    for entry in specs.values():
        options.update(entry.get("options") or {})
    assert not set(defaults) - set(options), "defaults of %s missing from its argument specs" % role
    for name, option in options.items():
        if "default" not in option:
            continue
        assert name in defaults, "%s: option %s has a default but is not in defaults/main.yml" % (role, name)
        value = effective(defaults[name])
        if isinstance(value, str) and "{{" in value:
            continue
        assert value == option["default"], "%s: %s defaults to %r, its argument spec says %r" % (
            role, name, value, option["default"])


@pytest.mark.parametrize("role", ROLES)
def test_readme_names_every_variable(role):
    defaults, dummy, readme = role_files(role)
    missing = sorted(name for name in defaults if not re.search(r"\b%s\b" % name, readme))
    assert not missing, "%s/README.md does not describe %s" % (role, missing)


@pytest.mark.parametrize("role", ROLES)
def test_spec_file_name_is_the_one_ansible_reads(role):
    meta = REPO / "roles" / role / "meta"
    assert (meta / "argument_specs.yml").is_file()
    assert not (meta / "arguments_specs.yml").exists(), "Ansible ignores the misspelled arguments_specs.yml"
