# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The notify engine (``mail``): turns the messages roles send into one
combined mail per recipient, with addresses resolved and checked and header
values that cannot carry an injection, and renders a mail as an RFC 5322
message for the spool. Used by the ``datasteward.storage.notify_*`` filters;
no AnsibleModule, no network."""
