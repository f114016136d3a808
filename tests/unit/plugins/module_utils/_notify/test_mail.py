# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The notify engine: recipients, combining, header safety, the .eml text."""

from __future__ import annotations

import email
from email import policy

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._notify.mail import (
    NotifyError,
    check_sender,
    header_text,
    plan_mails,
    render_eml,
)

ADMINS = ["ops@example.org"]


def plan(messages, **kwargs):
    kwargs.setdefault("domain", "example.org")
    kwargs.setdefault("admins", ADMINS)
    return plan_mails(messages, **kwargs)


def by_to(result):
    return {mail["to"]: mail for mail in result["mails"]}


def test_one_mail_per_recipient_with_every_message_once():
    result = plan(
        [
            {"to": ["alice", "bob"], "subject": "a", "lines": ["1"], "source": "scratch"},
            {"to": ["alice", "alice"], "admins": True, "subject": "b", "body": "2\n3", "source": "smart"},
        ],
        host="node1",
    )
    mails = by_to(result)
    assert list(mails) == ["alice@example.org", "bob@example.org", "ops@example.org"]
    assert [m["subject"] for m in mails["alice@example.org"]["messages"]] == ["a", "b"]
    assert mails["alice@example.org"]["subject"] == "2 messages: scratch, smart on node1"
    assert mails["bob@example.org"]["subject"] == "a"
    assert mails["ops@example.org"]["messages"][0]["lines"] == ["2", "3"]
    assert result["count"] == 3 and result["rejected"] == []


def test_admins_given_as_text_is_read_as_ansible_reads_it():
    result = plan([{"to": ["alice"], "admins": "false", "subject": "s", "lines": []}, {"to": "bob", "admins": "yes", "subject": "t", "lines": "one line"}])
    mails = by_to(result)
    assert list(mails) == ["alice@example.org", "bob@example.org", "ops@example.org"]
    assert mails["ops@example.org"]["messages"][0]["lines"] == ["one line"]


def test_address_map_wins_over_the_domain_and_addresses_are_kept():
    result = plan(
        [{"to": ["carol", "dave", "x@lab.example.net"], "subject": "s", "lines": []}],
        addresses={"carol": "carol@lab.example.net", "dave": ["d1@example.net", "d2@example.net"]},
    )
    assert sorted(by_to(result)) == ["carol@lab.example.net", "d1@example.net", "d2@example.net", "x@lab.example.net"]


@pytest.mark.parametrize("name", ["evil\nBcc: x@y", "a b", "", "x@y\r\nBcc: z@w", "a|b@example.org", "<a@b.org>"])
def test_a_recipient_that_is_no_plain_address_goes_to_the_admins(name):
    result = plan([{"to": [name], "subject": "s", "lines": ["l"]}])
    (mail,) = result["mails"]
    assert mail["to"] == "ops@example.org"
    assert result["rejected"][0]["message"] == 0
    assert "\n" not in result["rejected"][0]["recipient"]
    assert "could not be mailed" in mail["notes"][0]


def test_without_domain_an_unmapped_user_is_rejected_and_without_admins_nothing_is_sent():
    result = plan([{"to": ["alice"], "subject": "s", "lines": []}], domain="", admins=[])
    assert result["mails"] == []
    assert "datasteward_mail_domain" in result["rejected"][0]["reason"]


def test_subjects_are_one_header_line_without_bars():
    assert header_text("a\r\nBcc: x@y | z\x00") == "a Bcc: x@y / z"
    assert len(header_text("x" * 500)) == 200
    result = plan([{"admins": True, "subject": "full\nBcc: x@y", "lines": ["f\rake", "tab\tok"]}], subject_prefix="[ds]")
    (mail,) = result["mails"]
    assert mail["subject"] == "[ds] full Bcc: x@y"
    assert mail["messages"][0]["lines"] == ["f\\x0dake", "tab\tok"]


@pytest.mark.parametrize(
    "message, words",
    [
        ({"to": ["a"], "lines": []}, "needs a subject"),
        ({"subject": "s", "lines": []}, "no recipient"),
        ({"to": ["a"], "subject": "s"}, "needs one of lines, body or template"),
        ({"to": ["a"], "subject": "s", "lines": [], "severity": 1}, "unknown field(s) severity"),
        ({"to": ["a"], "subject": "s", "template": "x.j2"}, "was not rendered"),
        ("text", "must be a dict"),
    ],
)
def test_bad_messages_are_named(message, words):
    with pytest.raises(NotifyError, match=r"notify_messages\[0\]") as info:
        plan([message])
    assert words in str(info.value)


def test_bad_settings_are_named():
    with pytest.raises(NotifyError, match="datasteward_admin_mail"):
        plan([], admins=["not an address"])
    with pytest.raises(NotifyError, match="datasteward_mail_domain"):
        plan([], domain="bad domain")
    with pytest.raises(NotifyError, match="datasteward_mail_addresses"):
        plan([], addresses=["x"])
    with pytest.raises(NotifyError, match="datasteward_mail_sender"):
        plan([], sender="a@b.org\nBcc: c@d.org")
    with pytest.raises(NotifyError, match="must be a list"):
        plan({"to": "a"})
    assert check_sender("Data Steward <ds@example.org>") == "Data Steward <ds@example.org>"


def test_the_mail_id_is_stable_and_follows_the_content():
    messages = [{"to": ["alice"], "subject": "s", "lines": ["1"]}]
    first, again = plan(messages)["mails"][0], plan(messages)["mails"][0]
    assert first["id"] == again["id"] and first["file_name"] == "alice@example.org-%s.eml" % first["id"]
    changed = plan([{"to": ["alice"], "subject": "s", "lines": ["2"]}])["mails"][0]
    assert changed["id"] != first["id"]


def test_eml_parses_back_with_one_recipient_and_no_injected_header():
    (mail,) = plan([{"to": ["alice"], "subject": "x\nBcc: y@z.org", "lines": ["bödy"]}])["mails"]
    text = render_eml(mail, "bödy\nline 2\n", "Data Steward <ds@example.org>", headers={"X-Datasteward-Sources": "smart"})
    parsed = email.message_from_string(text, policy=policy.default)
    assert parsed["To"] == "alice@example.org"
    assert parsed["Subject"] == "x Bcc: y@z.org"
    assert parsed["Bcc"] is None
    assert parsed["X-Datasteward-Sources"] == "smart"
    assert parsed.get_content() == "bödy\nline 2\n"
    with pytest.raises(NotifyError):
        render_eml({"subject": "s"}, "", "ds@example.org")
