# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every role's defaults, argument specs and README agree.

- every variable of defaults/main.yml has a comment above it (its block),
  is named in the README (as `name`) and is an option of at least one entry
  point in meta/argument_specs.yml;
- every spec option with a default has the value defaults/main.yml gives it
  (the spec's default is documentation: defaults/main.yml is what applies);
  a templated default is compared as it renders when no inventory variable
  is set (its `default(...)` fallback);
- every entry point (tasks/<name>.yml that is not included by another task
  file only) has a spec, and every spec names a tasks file.
"""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "defaults" / "main.yml").is_file())
KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):")


def load(path):
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def specs(role):
    return load(REPO / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]


def rendered_defaults(role):
    """defaults/main.yml with templated values rendered against each other."""
    defaults = load(REPO / "roles" / role / "defaults" / "main.yml")
    env = jinja2.Environment(undefined=jinja2.ChainableUndefined)
    values = dict(defaults)
    for _ in range(5):
        for name, value in defaults.items():
            if isinstance(value, str) and "{{" in value:
                values[name] = env.from_string(value).render(**{k: v for k, v in values.items() if k != name})
    return defaults, values


def same(spec_default, value):
    if isinstance(value, str) and not isinstance(spec_default, str):
        return str(spec_default) == value or yaml.safe_load(value) == spec_default
    return spec_default == value


@pytest.mark.parametrize("role", ROLES)
def test_every_default_has_a_comment(role):
    uncommented = []
    commented = False
    for line in (REPO / "roles" / role / "defaults" / "main.yml").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            commented = False
        elif line.lstrip().startswith("#"):
            commented = True
        elif KEY.match(line) and not commented:
            uncommented.append(KEY.match(line).group(1))
    assert uncommented == [], "%s: defaults without a comment above them: %s" % (role, uncommented)


@pytest.mark.parametrize("role", ROLES)
def test_readme_names_every_default(role):
    readme = (REPO / "roles" / role / "README.md").read_text(encoding="utf-8")
    defaults, _ = rendered_defaults(role)
    missing = [name for name in defaults if "`%s`" % name not in readme]
    assert missing == [], "%s/README.md does not name %s" % (role, missing)


@pytest.mark.parametrize("role", ROLES)
def test_specs_match_defaults(role):
    defaults, values = rendered_defaults(role)
    options = {}
    wrong = []
    for entry, spec in specs(role).items():
        for name, option in (spec.get("options") or {}).items():
            options.setdefault(name, []).append(entry)
            if "default" not in option:
                continue
            if name not in defaults:
                wrong.append("%s.%s has default %r but defaults/main.yml does not set it" % (entry, name, option["default"]))
            elif not same(option["default"], values[name]):
                wrong.append("%s.%s: spec default %r, defaults/main.yml %r" % (entry, name, option["default"], values[name]))
            if option.get("required") and "default" in option:
                wrong.append("%s.%s is required and has a default" % (entry, name))
    undocumented = [name for name in defaults if name not in options]
    assert wrong == [], "\n".join(wrong)
    assert undocumented == [], "%s: defaults in no entry point's argument spec: %s" % (role, undocumented)


@pytest.mark.parametrize("role", ROLES)
def test_every_spec_names_a_tasks_file(role):
    tasks = REPO / "roles" / role / "tasks"
    assert [entry for entry in specs(role) if not (tasks / ("%s.yml" % entry)).is_file()] == []
    assert "main" in specs(role)
