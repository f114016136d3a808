# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters of the notify role: ``notify_plan`` and ``notify_eml`` (documented
in notify_plan.yml and notify_eml.yml beside this file). The work is done by
plugins/module_utils/_notify/mail.py; these only turn its errors into
Ansible's."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.datasteward.storage.plugins.module_utils._notify.mail import (
    NotifyError,
    plan_mails,
    render_eml,
)


def notify_plan(messages, domain="", addresses=None, admins=None, subject_prefix="", host="", sender=None):
    try:
        return plan_mails(messages, domain=domain, addresses=addresses, admins=admins, subject_prefix=subject_prefix, host=host, sender=sender)
    except NotifyError as exc:
        raise AnsibleFilterError("notify: %s" % exc)


def notify_eml(mail, body, sender, headers=None):
    try:
        return render_eml(mail, body, sender, headers=headers)
    except NotifyError as exc:
        raise AnsibleFilterError("notify: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"notify_plan": notify_plan, "notify_eml": notify_eml}
