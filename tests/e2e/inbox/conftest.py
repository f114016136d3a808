# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The real SMTP server of the notify tests (aiosmtpd on a loopback port)."""

from __future__ import annotations

from tests.e2e.notify.conftest import smtp_server  # noqa: F401  pylint: disable=unused-import
