# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection-level checks: ansible-test sanity and integration, ansible-lint,
the build and the changelog, each run as a pytest test so that `make test`
ends with one pytest summary.

ansible-test wants the collection under an ``ansible_collections/<ns>/<name>``
path and lists files with git; the session fixture below copies what git would
commit (tracked and untracked files, minus ignored ones) into
``.build/ansible_collections/datasteward/storage`` and makes that copy its own
git repository, so the checks see exactly the content a commit would land.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BUILD = REPO / ".build" / "ansible_collections" / "datasteward" / "storage"
SKIP_DIRS = {".git", ".venv", ".venvs", ".collections", ".build", ".pytest_cache", ".ruff_cache", "__pycache__", "output"}


def repo_files():
    """The files a commit would contain, relative to REPO."""
    if (REPO / ".git").exists():
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO, check=True, capture_output=True).stdout
        return [name for name in out.decode().split("\0") if name and (REPO / name).is_file()]
    files = []
    for root, dirs, names in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        files.extend(os.path.relpath(os.path.join(root, n), REPO) for n in names)
    return files


@pytest.fixture(scope="session")
def collection_copy():
    if BUILD.exists():
        shutil.rmtree(BUILD)
    BUILD.mkdir(parents=True)
    for name in repo_files():
        target = BUILD / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target, follow_symlinks=False)
    git = ["git", "-c", "user.name=checks", "-c", "user.email=checks@localhost"]
    subprocess.run(git + ["init", "-q"], cwd=BUILD, check=True)
    subprocess.run(git + ["add", "-A"], cwd=BUILD, check=True)
    subprocess.run(git + ["commit", "-q", "-m", "checks"], cwd=BUILD, check=True)
    return BUILD


def run_tool(args, cwd, timeout=900, env=None):
    """Run a tool from the venv; fail the test with the end of its output."""
    full_env = dict(os.environ)
    full_env["PATH"] = "%s:%s" % (BIN, full_env.get("PATH", ""))
    full_env.setdefault("ANSIBLE_NOCOLOR", "1")
    full_env.update(env or {})
    proc = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=full_env,
        timeout=timeout,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        encoding="utf-8",
        errors="replace",
        check=False,
    )
    if proc.returncode != 0:
        lines = [line for line in proc.stdout.splitlines() if "is ignored: it is neither" not in line]
        pytest.fail("%s exited %d:\n%s" % (" ".join(str(a) for a in args[:3]), proc.returncode, "\n".join(lines[-150:])), pytrace=False)
    return proc.stdout
