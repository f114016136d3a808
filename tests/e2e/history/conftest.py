# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A real PostgreSQL server for the history tests: Debian's postgresql
binaries, a cluster created in a temporary directory owned by an
unprivileged user (PostgreSQL refuses to run as root), listening on
127.0.0.1 at a port the kernel picked (pgserver.py), started once per
session and stopped whatever happens. And the generated history, recorded once into SQLite and
once into PostgreSQL."""

from __future__ import annotations

import time

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._history.record import Recorder
from ansible_collections.datasteward.storage.plugins.module_utils._history.store import Store
from ansible_collections.datasteward.storage.tests.e2e.history.pgserver import NoServer, postgres_server
from ansible_collections.datasteward.storage.tests.unit.utils import history_data as gen


@pytest.fixture(scope="session")
def postgres_url():
    pytest.importorskip("psycopg")
    try:
        with postgres_server(settings=("fsync=off",)) as url:
            yield url
    except NoServer as exc:
        pytest.skip(str(exc))


@pytest.fixture
def pg_schema(postgres_url):
    """A fresh, empty schema for one test (the URL selects it through search_path)."""
    import psycopg  # pylint: disable=import-outside-toplevel

    name = "t%d" % (time.monotonic_ns() % 10**12)
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
