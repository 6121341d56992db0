"""Bounces read from the messages that come back to the VERP return paths.

The samples in data/feedback/ are written after what Postfix, Gmail, Exchange Online, Yahoo
(through Postfix) and qmail send; the addresses are the lab's.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback import bounces
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.bounces import (
    AUTO_REPLY,
    BOUNCE,
    COMPLAINT,
    DELAY,
    DELIVERY,
    UNRECOGNISED,
    auto_reply_reason,
    parse_bounce,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.classify import (
    combined_rules,
    parse_rules,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.original import to_message
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.verp import (
    VerpAddress,
    decode_verp,
)

DATA = Path(__file__).parent / "data" / "feedback"
RETURN_PATHS = {"bounces.example.test": "example.test"}


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def verp_for(recipient: str) -> VerpAddress:
    local, _at, domain = recipient.rpartition("@")
    verp = decode_verp(f"news+{local}={domain}@bounces.example.test", RETURN_PATHS)
    assert verp is not None
    return verp


def test_postfix_dsn_for_a_5_1_1() -> None:
    report = parse_bounce(sample("postfix_5.1.1.eml"), verp=verp_for("bob@example.net"))
    assert (report.kind, report.source) == (BOUNCE, "dsn")
    # our own Postfix made it: its queue id ties it to the log's bounced event
    assert (report.reporting_mta, report.queue_id) == ("smtp1.example.test", "4Bx1Yk2Lz3z9sQ")
    (failure,) = report.failures
    assert (failure.recipient, failure.recipient_source) == ("bob@example.net", "verp")
    assert (failure.action, failure.status, failure.remote_mta) == (
        "failed", "5.1.1", "mx.example.net",
    )  # fmt: skip
    assert failure.diagnostic_type == "smtp"
    assert failure.diagnostic == (
        "550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown in virtual "
        "mailbox table"
    )
    assert (failure.classification.bounce_class, failure.classification.disposition) == (
        "invalid_recipient", "hard",
    )  # fmt: skip
    # the returned header finds the message and its sender
    assert report.original is not None
    assert report.original.message_id == "20261013101500.4711@app1.example.test"
    assert report.original.headers_only
    assert report.original.feedback_id.sender_id == "exnews01"
    assert report.original.dkim_domains == ("example.test",)


def test_gmail_dsn_with_a_multi_line_diagnostic() -> None:
    report = parse_bounce(sample("gmail_5.1.1.eml"), verp=verp_for("alice@gmail.test"))
    assert report.kind == BOUNCE
    (failure,) = report.failures
    assert failure.recipient == "alice@gmail.test"
    assert failure.remote_mta == "gmail-smtp-in.l.google.com"
    assert failure.diagnostic.startswith(
        "550 5.1.1 The email account that you tried to reach does not exist. Please try "
        "double-checking the recipient's email address"
    )
    assert "550-5.1.1" not in failure.diagnostic
    assert failure.classification.bounce_class == "invalid_recipient"
    assert report.original.message_id == "20261013101500.4712@app1.example.test"
    assert not report.original.headers_only


def test_microsoft_ndr_5_5_0() -> None:
    report = parse_bounce(sample("microsoft_5.5.0.eml"), verp=verp_for("carol@contoso.test"))
    (failure,) = report.failures
    assert (failure.status, failure.classification.bounce_class) == ("5.5.0", "invalid_recipient")
    assert failure.diagnostic.startswith(
        "550 5.5.0 Requested action not taken: mailbox unavailable"
    )
    assert report.reporting_mta == "am9pr04mb8210.eurprd04.prod.outlook.com"
    assert report.original.return_path == "news+carol=contoso.test@bounces.example.test"


def test_yahoo_554_delivery_error_through_postfix() -> None:
    """Yahoo gives no enhanced code: Postfix writes 5.0.0, the text says the user is unknown."""
    report = parse_bounce(sample("yahoo_554.eml"), verp=verp_for("dave@yahoo.test"))
    (failure,) = report.failures
    assert failure.status == "5.0.0"
    assert (failure.classification.bounce_class, failure.classification.disposition) == (
        "invalid_recipient", "hard",
    )  # fmt: skip
    assert failure.diagnostic.startswith("554 delivery error: dd This user doesn't have a")


def test_552_mailbox_full_is_soft() -> None:
    report = parse_bounce(sample("mailbox_full_552.eml"), verp=verp_for("erin@example.org"))
    (failure,) = report.failures
    assert (failure.classification.bounce_class, failure.classification.disposition) == (
        "mailbox_full", "soft",
    )  # fmt: skip


def test_a_delayed_dsn_is_a_delay_not_a_bounce() -> None:
    report = parse_bounce(sample("delayed_4.4.1.eml"), verp=verp_for("frank@slow.example"))
    assert report.kind == DELAY
    assert report.failures == ()
    (delayed,) = report.recipients
    assert (delayed.action, delayed.status) == ("delayed", "4.4.1")
    assert delayed.will_retry_until == "Sun, 18 Oct 2026 10:15:01 +0000 (UTC)"
    assert delayed.diagnostic_type == "x-postfix"
    assert delayed.classification.bounce_class == "connection"


def test_an_out_of_office_reply_is_not_a_bounce() -> None:
    raw = sample("out_of_office.eml")
    report = parse_bounce(raw, verp=verp_for("grace@example.org"))
    assert (report.kind, report.recipients) == (AUTO_REPLY, ())
    assert report.auto_reply_reason == "Auto-Submitted: auto-replied"
    # the same reply from a server that marks it only by its subject
    bare = raw.replace(b"Auto-Submitted: auto-replied\n", b"").replace(
        b"X-Auto-Response-Suppress: All\n", b""
    )
    assert auto_reply_reason(bare) == "subject 'Automatic reply: October news'"
    assert parse_bounce(bare, verp=verp_for("grace@example.org")).kind == AUTO_REPLY


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("X-Autoreply: yes", "X-Autoreply header"),
        ("Precedence: auto_reply", "Precedence: auto_reply"),
        ("Subject: Out of Office: October news", "subject 'Out of Office: October news'"),
        ("Subject: Abwesenheitsnotiz: October news", "subject 'Abwesenheitsnotiz: October news'"),
    ],
)
def test_auto_reply_markers(header: str, reason: str) -> None:
    message = f"From: grace@example.org\nTo: news@example.test\n{header}\n\nAway.\n"
    assert auto_reply_reason(message) == reason


def test_an_auto_reply_echoing_a_bounce_like_subject_is_still_an_auto_reply() -> None:
    reply = (
        "From: grace@example.org\nTo: news+grace=example.org@bounces.example.test\n"
        "Subject: Automatic reply: Delivery failure? Our new tracking page\n\nAway.\n"
    )
    report = parse_bounce(reply, verp=verp_for("grace@example.org"))
    assert report.kind == AUTO_REPLY
    # while "out of office" inside our own subject does not make a bounce an auto-reply
    assert (
        auto_reply_reason("From: x@example.org\nSubject: Re: Out of office ideas\n\n") is not None
    )
    assert auto_reply_reason("From: x@example.org\nSubject: Your out of office ideas\n\n") is None


def test_an_address_in_a_bounce_text_is_not_a_status_code() -> None:
    text = (
        "From: MAILER-DAEMON@mx.example.net\nSubject: failure notice\n\n"
        "Could not reach 5.10.20.30 for you.\nThe answer was: 550 5.7.1 Rejected by policy\n"
    )
    assert (
        bounces.body_diagnostic(to_message(text)) == "The answer was: 550 5.7.1 Rejected by policy"
    )


def test_a_mailer_daemons_bounce_is_never_an_auto_reply() -> None:
    """Postfix and Exim put Auto-Submitted: auto-replied on their bounces too."""
    exim = (
        "From: Mail Delivery System <Mailer-Daemon@mx.example.net>\n"
        "To: news+kim=example.net@bounces.example.test\n"
        "Subject: Mail delivery failed: returning message to sender\n"
        "Auto-Submitted: auto-replied\n"
        "X-Failed-Recipients: kim@example.net\n\n"
        "This message was created automatically by mail delivery software.\n\n"
        "A message that you sent could not be delivered to one or more of its\n"
        "recipients. This is a permanent error. The following address(es) failed:\n\n"
        "  kim@example.net\n"
        "    host mx.example.net [192.0.2.25]\n"
        "    SMTP error from remote mail server after RCPT TO:<kim@example.net>:\n"
        "    550 5.1.1 User unknown\n"
    )
    assert auto_reply_reason(exim) is None
    report = parse_bounce(exim, verp=verp_for("kim@example.net"))
    assert report.kind == BOUNCE
    (failure,) = report.failures
    assert failure.recipient == "kim@example.net"
    assert failure.classification.bounce_class == "invalid_recipient"


def test_a_non_standard_bounce_only_flufl_bounce_reads() -> None:
    pytest.importorskip("flufl.bounce")
    report = parse_bounce(sample("qmail_failure.eml"), verp=verp_for("heidi@oldhost.example"))
    assert (report.kind, report.source) == (BOUNCE, "flufl.bounce")
    (failure,) = report.failures
    assert (failure.recipient, failure.final_recipient) == (
        "heidi@oldhost.example", "heidi@oldhost.example",
    )  # fmt: skip
    # the reason comes from the bounce's own text, not from the returned copy below it
    assert failure.diagnostic == "Sorry, no mailbox here by that name. (#5.1.1)"
    assert (failure.status, failure.classification.bounce_class) == ("5.1.1", "invalid_recipient")
    # the copy below the text still names the message
    assert report.original.message_id == "20261013101500.4717@app1.example.test"


def test_flufl_bounce_finds_the_recipient_without_verp_too() -> None:
    pytest.importorskip("flufl.bounce")
    report = parse_bounce(sample("qmail_failure.eml"))
    (failure,) = report.failures
    assert (failure.recipient, failure.recipient_source) == (
        "heidi@oldhost.example", "flufl.bounce",
    )  # fmt: skip


def test_without_flufl_bounce_the_verp_address_still_names_the_recipient(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bounces, "_flufl_all_failures", None)
    report = parse_bounce(sample("qmail_failure.eml"), verp=verp_for("heidi@oldhost.example"))
    assert (report.kind, report.source) == (BOUNCE, "verp")
    (failure,) = report.failures
    assert failure.recipient == "heidi@oldhost.example"
    assert failure.classification.bounce_class == "invalid_recipient"
    assert any("flufl.bounce is not installed" in note for note in report.notes)
    # and without VERP nothing says who it was for
    assert parse_bounce(sample("qmail_failure.eml")).kind == UNRECOGNISED


def test_without_verp_the_dsn_names_the_recipients() -> None:
    report = parse_bounce(sample("postfix_5.1.1.eml"))
    (failure,) = report.failures
    assert (failure.recipient, failure.recipient_source) == (
        "bob@example.net", "original_recipient",
    )  # fmt: skip


def test_a_forwarded_mailbox_bounce_suppresses_the_address_we_mailed() -> None:
    raw = sample("postfix_5.1.1.eml").replace(
        b"Final-Recipient: rfc822; bob@example.net", b"Final-Recipient: rfc822; bob@forward.test"
    )
    (failure,) = parse_bounce(raw, verp=verp_for("bob@example.net")).failures
    assert (failure.recipient, failure.final_recipient) == ("bob@example.net", "bob@forward.test")


def dsn(
    per_recipient: str, *, encoding: str = "", content_type: str = "message/delivery-status"
) -> str:
    body = f"Reporting-MTA: dns; mx.example.net\n\n{per_recipient}"
    if encoding == "base64":
        body = base64.encodebytes(body.encode()).decode()
    cte = f"Content-Transfer-Encoding: {encoding}\n" if encoding else ""
    return (
        "From: MAILER-DAEMON@mx.example.net\n"
        "To: news@example.test\n"
        "Subject: Delivery report\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nSee below.\n\n"
        f"--b\nContent-Type: {content_type}\n{cte}\n{body}\n"
        "--b--\n"
    )


TWO_RECIPIENTS = (
    "Final-Recipient: rfc822; a@example.net\nAction: failed\nStatus: 5.1.1\n"
    "Diagnostic-Code: smtp; 550 5.1.1 unknown user\n\n"
    "Final-Recipient: rfc822; b@example.net\nAction: delivered\nStatus: 2.0.0\n"
)


def test_a_report_on_several_recipients_keeps_each() -> None:
    report = parse_bounce(dsn(TWO_RECIPIENTS))
    assert report.kind == BOUNCE
    assert [(r.recipient, r.action) for r in report.recipients] == [
        ("a@example.net", "failed"),
        ("b@example.net", "delivered"),
    ]
    assert [r.recipient for r in report.failures] == ["a@example.net"]


def test_base64_and_global_delivery_status_parts_are_read() -> None:
    for message in (
        dsn(TWO_RECIPIENTS, encoding="base64"),
        dsn(TWO_RECIPIENTS, content_type="message/global-delivery-status"),
    ):
        report = parse_bounce(message)
        assert [r.recipient for r in report.failures] == ["a@example.net"]
        assert report.reporting_mta == "mx.example.net"


@pytest.mark.parametrize("action", ["relayed", "delivered", "expanded"])
def test_success_notices_are_not_failures(action: str) -> None:
    report = parse_bounce(dsn(f"Final-Recipient: rfc822; a@example.net\nAction: {action}\n"))
    assert (report.kind, report.failures) == (DELIVERY, ())


def test_failed_with_a_temporary_status_is_an_expiry() -> None:
    report = parse_bounce(
        dsn(
            "Final-Recipient: rfc822; a@example.net\nAction: failed\nStatus: 4.4.1\n"
            "Diagnostic-Code: X-Postfix; connect to mx.example.net[192.0.2.25]:25: "
            "Connection timed out\n"
        )
    )
    (failure,) = report.failures
    assert (failure.classification.bounce_class, failure.classification.cause) == (
        "expired", "connection",
    )  # fmt: skip


def test_the_operators_rules_reach_the_bounce_reader() -> None:
    rules = combined_rules(
        parse_rules(
            {"rules": [{"name": "v", "class": "policy", "dsn": "5.1.1", "text": "virtual"}]}
        )
    )
    (failure,) = parse_bounce(sample("postfix_5.1.1.eml"), rules=rules).failures
    assert (failure.classification.bounce_class, failure.classification.rule) == ("policy", "v")


def test_a_human_reply_to_the_return_path_is_unrecognised() -> None:
    reply = (
        "From: someone@example.net\nTo: news+x=example.net@bounces.example.test\n"
        "Subject: Re: October news\n\nThanks!\n"
    )
    report = parse_bounce(reply, verp=verp_for("x@example.net"))
    assert (report.kind, report.recipients) == (UNRECOGNISED, ())
    assert report.verp.recipient == "x@example.net"


@pytest.mark.parametrize("name", ["arf_abuse.eml", "yahoo_cfl.eml"])
def test_a_complaint_sent_to_the_return_path_is_not_a_bounce(name: str) -> None:
    """Feedback loops (and the lab's providers) send ARF to the envelope sender too."""
    report = parse_bounce(sample(name), verp=verp_for("ivan@isp.example"))
    assert (report.kind, report.recipients) == (COMPLAINT, ())
    # even when it comes from a mailer daemon
    raw = sample(name).replace(
        b"From: Abuse Desk <fbl@isp.example>", b"From: MAILER-DAEMON@isp.example"
    )
    assert parse_bounce(raw, verp=verp_for("ivan@isp.example")).kind == COMPLAINT
