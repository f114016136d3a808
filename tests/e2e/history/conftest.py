# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A real PostgreSQL server for the history tests: Debian's postgresql
binaries, a cluster created in a temporary directory owned by an
unprivileged user (PostgreSQL refuses to run as root), listening on
127.0.0.1 at a port the kernel picked, started once per session and stopped
whatever happens. And the generated history, recorded once into SQLite and
once into PostgreSQL."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._history.record import Recorder
from ansible_collections.datasteward.storage.plugins.module_utils._history.store import Store
from ansible_collections.datasteward.storage.tests.unit.utils import history_data as gen

PG_USER = "nobody"


def pg_bindir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return os.path.dirname(found[-1]) if found else None


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def as_user(cmd, **kwargs):
    return subprocess.run(["setpriv", "--reuid=%s" % PG_USER, "--regid=nogroup", "--clear-groups", "--"] + cmd,
                          capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}, **kwargs)


@pytest.fixture(scope="session")
def postgres_url():
    bindir = pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (Debian package postgresql; make test-deps installs it)")
    if os.geteuid() != 0:
        pytest.skip("the PostgreSQL server is started as an unprivileged user, which needs root")
    pytest.importorskip("psycopg")
    # pytest's tmp dirs are private to root; the server's user needs its own.
    base = Path(tempfile.mkdtemp(prefix="datasteward-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    uid = pwd.getpwnam(PG_USER).pw_uid
    for path in (base, sock):
        os.chown(str(path), uid, -1)
    os.chmod(str(base), 0o755)
    init = as_user([os.path.join(bindir, "initdb"), "-D", str(data), "-A", "trust", "-U", PG_USER, "--locale=C.UTF-8", "-E", "UTF8"])
    assert init.returncode == 0, init.stdout + init.stderr
    port = free_port()
    start = as_user([os.path.join(bindir, "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w", "-t", "60", "-o",
                     "-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c fsync=off" % (port, sock), "start"])
    try:
        assert start.returncode == 0, start.stdout + start.stderr + (base / "log").read_text()
        yield "postgresql://%s@127.0.0.1:%d/postgres" % (PG_USER, port)
    finally:
        as_user([os.path.join(bindir, "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(str(base), ignore_errors=True)


@pytest.fixture
def pg_schema(postgres_url):
    """A fresh, empty schema for one test (the URL selects it through search_path)."""
    import psycopg  # pylint: disable=import-outside-toplevel
    name = "t%d" % (time.monotonic_ns() % 10 ** 12)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA %s" % name)
    yield "%s?options=-csearch_path%%3D%s" % (postgres_url, name)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA %s CASCADE" % name)


def fill(store, records):
    recorder = Recorder(store)
    for record in records:
        assert recorder.record(*record)


@pytest.fixture(scope="session")
def fleet_records():
    return gen.fleet_records(hosts=3, days=21, users=6)


@pytest.fixture(scope="session")
def both(postgres_url, fleet_records, tmp_path_factory):
    """(sqlite store, postgresql store) holding the same generated history."""
    import psycopg  # pylint: disable=import-outside-toplevel
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA fleet")
    url = postgres_url + "?options=-csearch_path%3Dfleet"
    lite = Store(str(tmp_path_factory.mktemp("lite") / "h.sqlite"))
    pg = Store(url=url)
    fill(lite, fleet_records)
    fill(pg, fleet_records)
    yield lite, pg
    lite.close()
    pg.close()
