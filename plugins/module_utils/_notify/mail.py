# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Mail planning for the notify role.

``plan_mails`` takes the messages of one call (or of a run's queue) and
returns one mail per recipient address: every message for that address,
in order and once each, under one subject. Recipients are user names
(``user@domain`` unless the address map names another address) or
addresses; anything that is not a plain address after resolution (a user
named ``evil\\nBcc: x@y``, an empty name, a name with no domain to send to)
is never put into a header: it is listed in ``rejected`` and its messages go
to the admins with a note. Header values (subjects) have control characters
and ``|`` (which community.general.mail splits header values on) replaced.

``render_eml`` turns a planned mail and its rendered body into the text of
an RFC 5322 message (what the spool keeps when mail is not enabled).
"""

from __future__ import annotations

import hashlib
import json
import re
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import parseaddr

# A deliberately narrow address: no quoting, no comments, no phrase, no
# separators a header parser or community.general.mail would split on.
_LOCAL = r"[A-Za-z0-9][A-Za-z0-9._%+=-]*"
_DOMAIN = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
ADDRESS = re.compile(r"^%s@%s$" % (_LOCAL, _DOMAIN))
LOCAL_PART = re.compile(r"^%s$" % _LOCAL)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_BODY_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]")
SUBJECT_MAX = 200
BODY_FIELDS = ("lines", "body")
MESSAGE_FIELDS = ("to", "admins", "subject", "lines", "body", "template", "template_vars", "source", "host")


class NotifyError(ValueError):
    """A message or a setting the plan cannot use; the text names it."""


def visible(text):
    """``text`` with control characters shown as escapes (for notes and errors)."""
    return _CONTROL.sub(lambda m: "\\x%02x" % ord(m.group()) if ord(m.group()) < 0x100 else "\\u%04x" % ord(m.group()), str(text))


def header_text(text, limit=SUBJECT_MAX):
    """One header line: CR, LF and other control characters become spaces,
    ``|`` becomes ``/``, runs of blanks collapse; cut to ``limit`` characters."""
    text = _CONTROL.sub(" ", str(text)).replace("|", "/")
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 3].rstrip() + "..."
    return text


def body_line(text):
    """A body line: no CR, no vertical tab or other control characters
    (tabs stay), so a file name cannot fake the structure of the mail."""
    return _BODY_CONTROL.sub(lambda m: "\\x%02x" % ord(m.group()), str(text))


def check_sender(sender):
    """The sender as given (``Name <addr>`` or ``addr``) if it is one line
    with a plain address; else NotifyError naming datasteward_mail_sender."""
    text = str(sender or "")
    if _CONTROL.search(text) or "|" in text:
        raise NotifyError("datasteward_mail_sender %r contains a line break, control character or '|'" % visible(text))
    address = parseaddr(text)[1]
    if not ADDRESS.match(address):
        raise NotifyError("datasteward_mail_sender %r is not an address (user@domain)" % visible(text))
    return text


class Resolver(object):
    """Maps what a message's ``to`` says to addresses, or to a reason why not."""

    def __init__(self, domain="", addresses=None):
        self.domain = str(domain or "").strip()
        if self.domain and not re.match("^%s$" % _DOMAIN, self.domain):
            raise NotifyError("datasteward_mail_domain %r is not a domain name" % visible(self.domain))
        if addresses is not None and not isinstance(addresses, dict):
            raise NotifyError("datasteward_mail_addresses must be a dict of user name to address(es), got %s" % type(addresses).__name__)
        self.addresses = addresses or {}

    def resolve(self, recipient):
        """(addresses, None) or ([], reason)."""
        if not isinstance(recipient, str):
            return [], "not a string"
        if recipient in self.addresses:
            mapped = self.addresses[recipient]
            mapped = [mapped] if isinstance(mapped, str) else mapped
            if not isinstance(mapped, list) or not mapped:
                return [], "datasteward_mail_addresses maps it to nothing usable"
            bad = [m for m in mapped if not isinstance(m, str) or not ADDRESS.match(m)]
            if bad:
                return [], "datasteward_mail_addresses maps it to %r, not an address" % visible(bad[0])
            return list(mapped), None
        if "@" in recipient:
            if ADDRESS.match(recipient):
                return [recipient], None
            return [], "not an address (user@domain)"
        if not LOCAL_PART.match(recipient):
            return [], "not a user name that can be part of an address"
        if not self.domain:
            return [], "no datasteward_mail_domain to send to and not in datasteward_mail_addresses"
        return ["%s@%s" % (recipient, self.domain)], None


def _as_bool(value):
    """Ansible's reading of a boolean given as text ('no', 'false', '0', ...)."""
    if isinstance(value, str):
        return value.strip().lower() in ("yes", "on", "1", "true", "y", "t")
    return bool(value)


def _as_list(value, where):
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise NotifyError("%s must be a list of user names or addresses, got %s" % (where, type(value).__name__))


def normalise_message(message, index, host=""):
    """One message as the plan uses it: subject (header-safe), lines, source,
    host, to (list), admins (bool). NotifyError names the message and field."""
    where = "notify_messages[%d]" % index
    if not isinstance(message, dict):
        raise NotifyError("%s must be a dict, got %s" % (where, type(message).__name__))
    unknown = sorted(set(message) - set(MESSAGE_FIELDS))
    if unknown:
        raise NotifyError("%s has unknown field(s) %s (known: %s)" % (where, ", ".join(unknown), ", ".join(MESSAGE_FIELDS)))
    subject = header_text(message.get("subject") or "")
    if not subject:
        raise NotifyError("%s needs a subject" % where)
    to = _as_list(message.get("to"), where + ".to")
    admins = _as_bool(message.get("admins", False))
    if not to and not admins:
        raise NotifyError("%s (%s) has no recipient: give 'to' and/or 'admins: true'" % (where, subject))
    if message.get("lines") is not None:
        lines = _as_list(message["lines"], where + ".lines")
    elif message.get("body") is not None:
        lines = str(message["body"]).splitlines()
    elif message.get("template"):
        raise NotifyError("%s: its template %r was not rendered (the role renders templates before the plan)" % (where, message["template"]))
    else:
        raise NotifyError("%s (%s) needs one of lines, body or template" % (where, subject))
    return {
        "subject": subject,
        "lines": [body_line(line) for line in lines],
        "source": header_text(message.get("source") or "", 60),
        "host": header_text(message.get("host") or host or "", 120),
        "to": to,
        "admins": admins,
    }


def _combined_subject(messages, prefix):
    prefix = header_text(prefix or "")
    if len(messages) == 1:
        subject = messages[0]["subject"]
    else:
        sources = []
        for message in messages:
            if message["source"] and message["source"] not in sources:
                sources.append(message["source"])
        hosts = sorted(set(message["host"] for message in messages if message["host"]))
        subject = "%d messages" % len(messages)
        if sources:
            subject += ": " + ", ".join(sources)
        if len(hosts) == 1:
            subject += " on " + hosts[0]
        elif hosts:
            subject += " from %d hosts" % len(hosts)
    return header_text(("%s %s" % (prefix, subject)).strip())


def _mail_id(address, subject, messages, notes):
    blob = json.dumps([address, subject, messages, notes], sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(blob.encode("ascii")).hexdigest()[:16]


def plan_mails(messages, domain="", addresses=None, admins=None, subject_prefix="", host="", sender=None):
    """One mail per recipient address. Returns a dict:

    mails: [{to, subject, messages: [{subject, lines, source, host}], notes, id, file_name}]
           in the order recipients first appear;
    rejected: [{recipient (escaped), reason, message (index), subject}];
    count: number of mails.
    """
    if messages is None:
        messages = []
    if not isinstance(messages, list):
        raise NotifyError("notify_messages must be a list of messages, got %s" % type(messages).__name__)
    if sender is not None:
        check_sender(sender)
    resolver = Resolver(domain, addresses)
    admin_list = _as_list(admins, "datasteward_admin_mail")
    bad_admins = [a for a in admin_list if not isinstance(a, str) or not ADDRESS.match(a)]
    if bad_admins:
        raise NotifyError("datasteward_admin_mail has %r, which is not an address (user@domain)" % visible(bad_admins[0]))
    normalised = [normalise_message(message, index, host) for index, message in enumerate(messages)]

    order = []  # addresses in first-seen order
    wanted = {}  # address -> [message indices], each once
    notes = {}  # address -> [note]
    rejected = []

    def add(address, index, note=None):
        if address not in wanted:
            order.append(address)
            wanted[address] = []
            notes[address] = []
        if index not in wanted[address]:
            wanted[address].append(index)
        if note and note not in notes[address]:
            notes[address].append(note)

    for index, message in enumerate(normalised):
        for recipient in message["to"]:
            found, reason = resolver.resolve(recipient)
            if reason:
                rejected.append({"recipient": visible(recipient), "reason": reason, "message": index, "subject": message["subject"]})
                note = "'%s' could not be mailed (%s); the message for it is in this mail" % (visible(recipient), reason)
                for admin in admin_list:
                    add(admin, index, note)
                continue
            for address in found:
                add(address, index)
        if message["admins"]:
            for admin in admin_list:
                add(admin, index)

    mails = []
    for address in order:
        mine = [{key: normalised[i][key] for key in ("subject", "lines", "source", "host")} for i in wanted[address]]
        subject = _combined_subject(mine, subject_prefix)
        mail_id = _mail_id(address, subject, mine, notes[address])
        stem = re.sub(r"[^A-Za-z0-9._@+-]", "_", address)
        mails.append({"to": address, "subject": subject, "messages": mine, "notes": notes[address], "id": mail_id, "file_name": "%s-%s.eml" % (stem, mail_id)})
    return {"mails": mails, "rejected": rejected, "count": len(mails)}


def render_eml(mail, body, sender, headers=None):
    """The mail as RFC 5322 text (LF line ends). The header values come from
    a plan (already one line each) and are checked again by the email
    package, which refuses a line break in any header."""
    if not isinstance(mail, dict) or "to" not in mail or "subject" not in mail:
        raise NotifyError("notify_eml needs a mail of the plan (with 'to' and 'subject')")
    message = EmailMessage(policy=SMTP.clone(linesep="\n"))
    message["From"] = check_sender(sender)
    message["To"] = mail["to"]
    message["Subject"] = header_text(mail["subject"])
    for name, value in sorted((headers or {}).items()):
        if header_text(value):
            message[header_text(name, 60).replace(" ", "-")] = header_text(value)
    message.set_content(str(body))
    return message.as_string()
