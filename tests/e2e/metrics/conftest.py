# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Servers for the metrics end-to-end tests, each on a loopback port the
kernel picks, stopped whatever happens: an HTTP receiver whose behaviour the
test switches (answer 200, answer 500, never answer, close the connection), a
pattoo receiver built on pattoo-shared, and Debian's node_exporter reading a
textfile directory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
ISOLATED = REPO / ".venv" / "isolated"
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        server = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        mode = server.mode
        server.received.append((mode, body))
        if mode == "hang":
            server.release.wait(60)
            return
        if mode == "close":
            self.close_connection = True
            return
        status = 200 if mode == "ok" else 500
        if status == 200:
            server.accepted.append(body)
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK" if status == 200 else b"no")

    def log_message(self, *args):
        pass


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.mode = "ok"
        self.received = []  # (mode, body) of every request
        self.accepted = []  # bodies answered with 200
        self.release = threading.Event()

    @property
    def url(self):
        return "http://127.0.0.1:%d/pattoo/api/v1/agent/receive/agent" % self.server_address[1]


@pytest.fixture
def receiver():
    """An HTTP server whose ``mode`` is ok (200), error (500), hang (never answers) or close."""
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


def pattoo_env(tmp_path):
    """Environment for a Python that imports pattoo-shared (the isolated install)."""
    if not (ISOLATED / "pattoo_shared").is_dir():
        pytest.fail("pattoo-shared is not installed in %s: run make setup" % ISOLATED)
    config = tmp_path / "pattoo-config"
    config.mkdir()
    (config / "pattoo.yaml").write_text("pattoo:\n  log_directory: %s\n  log_level: debug\n" % tmp_path)
    return dict(os.environ, PYTHONPATH=str(ISOLATED), PATTOO_CONFIGDIR=str(config))


@pytest.fixture
def pattoo_receiver(tmp_path):
    """(url prefix, records file) of a pattoo agent API receiver on pattoo-shared."""
    records = tmp_path / "records.jsonl"
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("pattoo_check.py")), "serve", str(records)],
        env=pattoo_env(tmp_path),
        stdout=subprocess.PIPE,
        cwd=str(tmp_path),
        text=True,
    )
    try:
        port = int(proc.stdout.readline())
        yield "http://127.0.0.1:%d/pattoo/api/v1/agent/receive/" % port, records
    finally:
        proc.kill()
        proc.wait(10)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(url, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode("utf-8")
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def node_exporter(tmp_path):
    """``scrape()`` of a real node_exporter with only the textfile collector, reading ``directory``."""
    if not os.access(NODE_EXPORTER, os.X_OK):
        pytest.fail("%s is missing: make test installs the Debian package prometheus-node-exporter" % NODE_EXPORTER)
    directory = tmp_path / "textfile"
    directory.mkdir()
    port = free_port()
    proc = subprocess.Popen(
        [
            NODE_EXPORTER,
            "--web.listen-address=127.0.0.1:%d" % port,
            "--collector.disable-defaults",
            "--collector.textfile",
            "--collector.textfile.directory=%s" % directory,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield directory, lambda: scrape("http://127.0.0.1:%d/metrics" % port)
    finally:
        proc.kill()
        proc.wait(10)
