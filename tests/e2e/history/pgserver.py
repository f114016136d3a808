# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Start and stop a throw-away PostgreSQL server (Debian's binaries) as an
unprivileged user in a temporary directory, on 127.0.0.1 at a port the
kernel picked. Used by the history tests' fixture and benchmarks/bench_history.py."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

PG_USER = "nobody"


class NoServer(Exception):
    """Why no server can be started here (the tests skip with it)."""


def pg_bindir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return os.path.dirname(found[-1]) if found else None


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def as_user(cmd):
    return subprocess.run(
        ["setpriv", "--reuid=%s" % PG_USER, "--regid=nogroup", "--clear-groups", "--"] + cmd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
        check=False,
    )


@contextlib.contextmanager
def postgres_server(settings=()):
    """Yields the server's URL; the server and its directory are gone afterwards."""
    bindir = pg_bindir()
    if bindir is None:
        raise NoServer("PostgreSQL is not installed (Debian package postgresql; make test-deps installs it)")
    if os.geteuid() != 0:
        raise NoServer("the PostgreSQL server is started as an unprivileged user, which needs root")
    # pytest's tmp dirs are private to root; the server's user needs its own.
    base = Path(tempfile.mkdtemp(prefix="datasteward-pg-"))
    data, sock = base / "data", base / "sock"
    try:
        sock.mkdir()
        uid = pwd.getpwnam(PG_USER).pw_uid
        for path in (base, sock):
            os.chown(str(path), uid, -1)
        os.chmod(str(base), 0o755)
        init = as_user([os.path.join(bindir, "initdb"), "-D", str(data), "-A", "trust", "-U", PG_USER, "--locale=C.UTF-8", "-E", "UTF8"])
        if init.returncode:
            raise RuntimeError("initdb failed: %s%s" % (init.stdout, init.stderr))
        port = free_port()
        options = "-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s" % (port, sock)
        options += "".join(" -c %s" % s for s in settings)
        start = as_user([os.path.join(bindir, "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w", "-t", "60", "-o", options, "start"])
        if start.returncode:
            log = (base / "log").read_text() if (base / "log").exists() else ""
            raise RuntimeError("pg_ctl start failed: %s%s%s" % (start.stdout, start.stderr, log))
        try:
            yield "postgresql://%s@127.0.0.1:%d/postgres" % (PG_USER, port)
        finally:
            as_user([os.path.join(bindir, "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
    finally:
        shutil.rmtree(str(base), ignore_errors=True)
