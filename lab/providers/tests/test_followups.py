"""Bounces (RFC 3464) and complaints (RFC 5965) as the smtp tier's bounce receiver gets them."""

from __future__ import annotations

import datetime
import email
import email.policy
from email.message import Message

from bulkmail_providers.config import DEFAULT_CONFIG, load_config
from bulkmail_providers.followups import build_arf, build_dsn, original_from
from conftest import VERP, Lab
from signing import make_message

GOOGLE = next(p for p in load_config(DEFAULT_CONFIG, env={}).providers if p.name == "google")
ORIGINAL = original_from(
    make_message(to="bounce-1@gmail.test"),
    mail_from=VERP,
    recipient="bounce-1@gmail.test",
    peer_ip="198.51.100.10",
    arrival=datetime.datetime(2026, 11, 23, 10, 0, tzinfo=datetime.UTC),
    from_domain="example.test",
)


def parse(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def test_dsn_is_a_delivery_status_report_about_the_recipient() -> None:
    dsn = parse(build_dsn(ORIGINAL, GOOGLE, GOOGLE.reply("unknown_user").render()))
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    assert dsn["To"] == VERP
    human, status, headers = dsn.get_payload()
    assert "bounce-1@gmail.test" in human.get_payload()
    per_message, per_recipient = status.get_payload()
    assert per_message["Reporting-MTA"] == "dns; mx.google.test"
    assert per_recipient["Final-Recipient"] == "rfc822; bounce-1@gmail.test"
    assert (per_recipient["Action"], per_recipient["Status"]) == ("failed", "5.1.1")
    assert per_recipient["Diagnostic-Code"].startswith("smtp; 550-5.1.1 The email account")
    assert headers.get_content_type() == "text/rfc822-headers"
    assert "Message-ID: <test-1@example.test>" in headers.get_payload()


def test_arf_is_an_abuse_report_carrying_the_original() -> None:
    arf = parse(build_arf(ORIGINAL, GOOGLE))
    assert arf.get_param("report-type") == "feedback-report"
    _, report, original = arf.get_payload()
    assert report.get_content_type() == "message/feedback-report"
    [fields] = report.get_payload()
    assert (fields["Feedback-Type"], fields["Version"]) == ("abuse", "1")
    assert fields["Original-Rcpt-To"] == "<bounce-1@gmail.test>"
    assert fields["Source-IP"] == "198.51.100.10"
    assert fields["Reported-Domain"] == "example.test"
    assert original.get_content_type() == "message/rfc822"
    assert original.get_payload(0)["Message-ID"] == "<test-1@example.test>"


def test_bounce_and_complaint_reach_the_senders_mx_with_a_null_sender(lab: Lab) -> None:
    with lab.client() as client:
        client.sendmail(VERP, ["bounce-1@gmail.test", "complain-1@gmail.test"], make_message())
    [record] = lab.records()
    assert record["behaviours"] == {
        "bounce-1@gmail.test": "bounce",
        "complain-1@gmail.test": "complain",
    }
    outcomes = lab.wait_for_followups()
    assert sorted((o["kind"], o["status"], o["about_rcpt"]) for o in outcomes) == [
        ("bounce", "sent", "bounce-1@gmail.test"),
        ("complain", "sent", "complain-1@gmail.test"),
    ]
    assert all(o["original_message_id"] == "<test-1@example.test>" for o in outcomes)
    reports = sorted(parse(raw).get_param("report-type") for _, _, raw in lab.sender_mx.received)
    assert reports == ["delivery-status", "feedback-report"]
    assert {(sender, tuple(rcpts)) for sender, rcpts, _ in lab.sender_mx.received} == {
        ("", (VERP,))
    }


def test_no_report_for_a_null_sender_and_a_failure_is_recorded(lab: Lab) -> None:
    with lab.client() as client:
        client.sendmail("", ["bounce-2@gmail.test"], make_message())
        client.sendmail("x@nowhere.test", ["bounce-3@gmail.test"], make_message())
    outcomes = lab.wait_for_followups()
    assert [(o["status"], o["about_rcpt"], o["attempts"]) for o in outcomes] == [
        ("failed", "bounce-3@gmail.test", 2)
    ]
    assert "no address for any MX of nowhere.test" in outcomes[0]["error"]
    assert lab.sender_mx.received == []
