# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""POST a JSON body with ansible.module_utils.urls, never raising: every
outcome is ``(status, error)``, where status is the HTTP status (None when no
answer came) and error says why the post did not succeed (None on 2xx).
Redirects are not followed: urllib would turn a redirected POST into a GET."""

from __future__ import annotations

import http.client
import socket
from urllib.error import HTTPError, URLError

from ansible.module_utils.urls import open_url


def _reason(exc, timeout):
    if isinstance(exc, socket.timeout) or "timed out" in str(exc):
        return "no answer within %g s" % timeout
    return "%s: %s" % (type(exc).__name__, exc)


def post_json(url, body, timeout, headers=None, validate_certs=True):
    all_headers = {"Content-Type": "application/json"}
    all_headers.update(headers or {})
    try:
        response = open_url(url, data=body, method="POST", headers=all_headers, timeout=timeout, validate_certs=validate_certs, follow_redirects="none")
        try:
            response.read()
        finally:
            response.close()
        return response.getcode(), None
    except HTTPError as exc:
        return exc.code, "HTTP %d %s" % (exc.code, exc.reason)
    except URLError as exc:
        reason = _reason(exc.reason, timeout) if isinstance(exc.reason, Exception) else exc.reason
        return None, "cannot reach %s: %s" % (url, reason)
    except (OSError, http.client.HTTPException) as exc:  # closed connection, reset, timeout while reading
        return None, "no valid answer from %s: %s" % (url, _reason(exc, timeout))


def sender(url, timeout, headers=None, validate_certs=True):
    """``send(body) -> (status, error)`` for spool.push."""

    def send(body):
        return post_json(url, body, timeout, headers=headers, validate_certs=validate_certs)

    return send
