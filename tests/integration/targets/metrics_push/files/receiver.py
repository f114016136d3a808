# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A receiver for the metrics_push target: listens on a loopback port the
kernel picks (written to DIR/port), answers 503 while DIR/down exists and 200
otherwise, appends every accepted body to DIR/received, and stops by itself
after 300 seconds."""

import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

DIR = sys.argv[1]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        down = os.path.exists(os.path.join(DIR, "down"))
        if not down:
            with open(os.path.join(DIR, "received"), "ab") as handle:
                handle.write(body + b"\n")
        self.send_response(503 if down else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
with open(os.path.join(DIR, "pid"), "w") as pid:
    pid.write(str(os.getpid()))
with open(os.path.join(DIR, "port.tmp"), "w") as port:
    port.write(str(server.server_address[1]))
os.rename(os.path.join(DIR, "port.tmp"), os.path.join(DIR, "port"))
threading.Timer(300, server.shutdown).start()
server.serve_forever()
