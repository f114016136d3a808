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
import threading
from concurrent.futures import ThreadPoolExecutor
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


def make_copy(dest):
    """Copy what a commit would hold to ``dest`` (an
    ``ansible_collections/<ns>/<name>`` path) and make it a git repository."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in repo_files():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target, follow_symlinks=False)
    git = ["git", "-c", "user.name=checks", "-c", "user.email=checks@localhost"]
    subprocess.run(git + ["init", "-q"], cwd=dest, check=True)
    subprocess.run(git + ["add", "-A"], cwd=dest, check=True)
    subprocess.run(git + ["commit", "-q", "-m", "checks"], cwd=dest, check=True)
    return dest


@pytest.fixture(scope="session")
def collection_copy():
    return make_copy(BUILD)


# The long tool runs (ansible-test sanity and units on every core and Python,
# the molecule scenarios): each test module registers its runs here at import,
# keyed by the test's name (with its parameter: "test_units_on_core[2.20]"),
# as a function returning the command, or a Skip. The first test that asks
# for `background` starts every selected run, JOBS at a time, each in a copy
# of the collection of its own (ansible-test writes into the tree it runs
# in); each test then waits for its own. One tool run keeps about one core
# busy, and this machine has two. The runs need no root and change nothing
# outside their copy, except the held ones (see background_job).
JOBS = 2
BACKGROUND = {}


class Skip:
    def __init__(self, reason):
        self.reason = reason


def background_job(key, hold=None):
    """Decorator: register ``func(tmp)`` as the run of the test ``key``. It
    returns a dict: ``args``, ``timeout`` and optionally ``env``, ``cwd``
    (default: a copy of the collection), or a :class:`Skip`.

    ``hold`` names a group of runs that wait until the first test of the
    group asks for its result, and then all go: the molecule scenarios change
    this machine (roles, units, mail spools), so they wait until the tests
    before them (the integration targets, which mount file systems) are done."""

    def register(func):
        BACKGROUND[key] = (func, hold)
        return func

    return register


def _run_job(func, tmp, copies, release=None, closing=None):
    if release is not None:
        release.wait()
    if closing is not None and closing.is_set():
        return Skip("the session ended before this run started")
    tmp.mkdir(parents=True)
    job = func(tmp)
    if isinstance(job, Skip):
        return job
    cwd = job.get("cwd")
    if cwd is None:
        cwd = getattr(copies, "path", None)
        if cwd is None:
            copies.path = cwd = make_copy(tmp.parent / ("copy-%d" % threading.get_ident()) / "ansible_collections" / "datasteward" / "storage")
    return _run(job["args"], cwd, job["timeout"], job.get("env"))


def _run(args, cwd, timeout, env=None):
    """Run a tool with the venv first on PATH; ``(command, failure or None, output)``."""
    full_env = dict(os.environ)
    full_env["PATH"] = "%s:%s" % (BIN, full_env.get("PATH", ""))
    full_env.setdefault("ANSIBLE_NOCOLOR", "1")
    full_env.update(env or {})
    args = [str(a) for a in args]
    try:
        proc = subprocess.run(
            args, cwd=cwd, env=full_env, timeout=timeout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, encoding="utf-8", errors="replace", check=False
        )
    except subprocess.TimeoutExpired as exc:
        return (" ".join(args[:3]), "did not end within %d s" % timeout, exc.output or "")
    return (" ".join(args[:3]), "exited %d" % proc.returncode if proc.returncode else None, proc.stdout)


def _fail_with(command, failure, output):
    """Fail the test with the end of a tool's output (pip's index noise left out)."""
    lines = [line for line in output.splitlines() if "is ignored: it is neither" not in line]
    pytest.fail("%s %s:\n%s" % (command, failure, "\n".join(lines[-150:])), pytrace=False)


class Background:
    def __init__(self, keys, base):
        self.pool = ThreadPoolExecutor(max_workers=JOBS)
        copies = threading.local()
        self.releases = {hold: threading.Event() for dummy, hold in BACKGROUND.values() if hold}
        self.closing = threading.Event()
        # held runs last, so that no worker waits on a hold while others could run
        keys = sorted(keys, key=lambda key: BACKGROUND[key][1] is not None)
        self.runs = {}
        for n, key in enumerate(keys):
            func, hold = BACKGROUND[key]
            self.runs[key] = self.pool.submit(_run_job, func, base / ("job-%02d" % n), copies, self.releases.get(hold), self.closing)

    def close(self):
        """Runs not started yet never start (a session stopped early, -x)."""
        self.closing.set()
        for event in self.releases.values():
            event.set()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def check(self, key):
        """Wait for the run of test ``key``; skip or fail the test as it went."""
        hold = BACKGROUND[key][1]
        if hold:
            self.releases[hold].set()
        outcome = self.runs[key].result()
        if isinstance(outcome, Skip):
            pytest.skip(outcome.reason)
        command, failure, output = outcome
        if failure:
            _fail_with(command, failure, output)
        return output


@pytest.fixture(scope="session")
def background(request, tmp_path_factory):
    keys = [item.name for item in request.session.items if item.name in BACKGROUND]
    runs = Background(keys, tmp_path_factory.mktemp("background"))
    yield runs
    runs.close()


def run_tool(args, cwd, timeout=900, env=None):
    """Run a tool from the venv; fail the test with the end of its output."""
    command, failure, output = _run(args, cwd, timeout, env)
    if failure:
        _fail_with(command, failure, output)
    return output
