# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A real SMTP server (aiosmtpd) on a loopback port the kernel picks, in a
thread of its own, stopped whatever happens. It keeps every message it
accepts with its envelope, and refuses recipients whose address starts
with ``refused``."""

from __future__ import annotations

import asyncio
import collections
import email
import threading
from email import policy

import pytest
from aiosmtpd.smtp import SMTP

Received = collections.namedtuple("Received", "sender rcpt message")


class Handler:
    def __init__(self):
        self.messages = []  # Received(mail_from, rcpt_tos, parsed message)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 (aiosmtpd's name)
        if address.startswith("refused"):
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        parsed = email.message_from_bytes(envelope.original_content, policy=policy.default)
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"


class SmtpServer:
    def __init__(self):
        self.handler = Handler()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.server = None
        self.port = None

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            self.loop.create_server(lambda: SMTP(self.handler, hostname="smtp.test", ident="datasteward-test"), "127.0.0.1", 0)
        )
        self.port = self.server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    def start(self):
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("the SMTP server did not start")

    def stop(self):
        if self.loop.is_closed():
            return

        def close():
            self.server.close()
            self.loop.stop()

        self.loop.call_soon_threadsafe(close)
        self.thread.join(10)
        self.loop.close()

    @property
    def messages(self):
        return self.handler.messages


@pytest.fixture
def smtp_server():
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
