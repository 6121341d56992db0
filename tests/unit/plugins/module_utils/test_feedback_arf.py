"""Complaints: ARF reports, Yahoo's CFL and Microsoft's JMRP find the complainer and sender."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.arf import (
    ARF,
    JMRP,
    YAHOO_CFL,
    is_redacted,
    parse_complaint,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.original import (
    FeedbackId,
    parse_feedback_id,
)

DATA = Path(__file__).parent / "data" / "feedback"
RETURN_PATHS = {"bounces.example.test": "example.test"}


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_an_arf_abuse_report() -> None:
    complaint = parse_complaint(sample("arf_abuse.eml"), return_paths=RETURN_PATHS)
    assert complaint is not None
    assert (complaint.report_format, complaint.feedback_type) == (ARF, "abuse")
    assert (complaint.recipient, complaint.recipient_source) == ("ivan@isp.example", "verp")
    assert (complaint.sender, complaint.sender_source) == ("news@example.test", "verp")
    assert complaint.message_id == "20261013101500.4718@app1.example.test"
    assert complaint.feedback_id == FeedbackId(
        sender_id="exnews01",
        stream="news",
        tenant="example",
        campaign="oct26",
        raw="oct26:example:news:exnews01",
    )
    assert complaint.original_mail_from == "news+ivan=isp.example@bounces.example.test"
    assert complaint.original_rcpt_to == ("ivan@isp.example",)
    assert complaint.arrival_date == "Tue, 13 Oct 2026 10:15:02 +0000"
    assert complaint.source_ip == "198.51.100.11"
    assert complaint.reported_domains == ("example.test",)
    assert complaint.reported_uris == ("https://example.test/october?utm=news",)
    assert (complaint.user_agent, complaint.version, complaint.incidents) == ("ISP-FBL/3.1", "1", 1)
    assert complaint.reporting_mta == "mx1.isp.example"
    assert complaint.reporter == "fbl@isp.example"
    assert complaint.original.dkim_domains == ("example.test",)


def test_without_the_verp_map_the_report_still_names_both() -> None:
    complaint = parse_complaint(sample("arf_abuse.eml"))
    assert (complaint.recipient, complaint.recipient_source) == (
        "ivan@isp.example", "original_rcpt_to",
    )  # fmt: skip
    assert (complaint.sender, complaint.sender_source) == (
        "news+ivan=isp.example@bounces.example.test", "original_mail_from",
    )  # fmt: skip
    assert complaint.verp is None


def test_a_yahoo_cfl_report_with_headers_only() -> None:
    complaint = parse_complaint(sample("yahoo_cfl.eml"), return_paths=RETURN_PATHS)
    assert complaint.report_format == YAHOO_CFL
    assert complaint.feedback_type == "abuse"
    assert (complaint.recipient, complaint.sender) == ("judy@yahoo.test", "news@example.test")
    assert complaint.message_id == "20261013101500.4719@app1.example.test"
    assert complaint.original.headers_only
    # Yahoo writes Received-Date where RFC 5965 has Arrival-Date
    assert complaint.arrival_date == "Tue, 13 Oct 2026 10:15:03 +0000 (UTC)"
    # the CFL is keyed on the DKIM domain: the report's sender says which
    assert complaint.original.dkim_domains == ("example.test",)


def test_a_jmrp_report_is_the_original_as_message_rfc822() -> None:
    complaint = parse_complaint(sample("jmrp.eml"), return_paths=RETURN_PATHS)
    assert complaint is not None
    assert (complaint.report_format, complaint.feedback_type) == (JMRP, "abuse")
    # the original's VERP Return-Path names the complainer; the To is redacted
    assert (complaint.recipient, complaint.recipient_source) == ("mallory@outlook.test", "verp")
    assert complaint.sender == "news@example.test"
    assert complaint.message_id == "20261013101500.4720@app1.example.test"
    assert complaint.original_rcpt_to == ()
    assert complaint.reporter == "staff@hotmail.com"


def test_old_jmrp_names_the_complainer_in_its_own_header() -> None:
    complaint = parse_complaint(sample("jmrp.eml"))
    assert (complaint.recipient, complaint.recipient_source) == (
        "mallory@outlook.test", "x_hmxmr_original_recipient",
    )  # fmt: skip
    assert (complaint.sender, complaint.sender_source) == (
        "news+mallory=outlook.test@bounces.example.test", "return_path",
    )  # fmt: skip


def test_microsofts_masked_arf_finds_the_complainer_by_verp_only() -> None:
    """JMRP since mid-2026: ARF with the recipient masked and no X-HmXmrOriginalRecipient."""
    report = (
        "From: staff@hotmail.com\nTo: fbl@example.test\nSubject: complaint\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="m"\n\n'
        "--m\nContent-Type: text/plain\n\nA junk report.\n"
        "--m\nContent-Type: message/feedback-report\n\n"
        "Feedback-Type: abuse\nUser-Agent: Microsoft JMRP/2.0\nVersion: 1\n"
        "Original-Rcpt-To: <redacted@outlook.test>\nSource-IP: 198.51.100.11\n\n"
        "--m\nContent-Type: message/rfc822\n\n"
        "Return-Path: <news+nina=outlook.test@bounces.example.test>\n"
        "From: news@example.test\nTo: <masked@outlook.test>\n"
        "Message-ID: <20261013101500.4721@app1.example.test>\n\nHello\n"
        "--m--\n"
    )
    complaint = parse_complaint(report, return_paths=RETURN_PATHS)
    assert complaint.report_format == JMRP
    assert (complaint.recipient, complaint.recipient_source) == ("nina@outlook.test", "verp")
    without_verp = parse_complaint(report)
    # nothing names the complainer: the caller looks the Message-ID up in its delivery events
    assert (without_verp.recipient, without_verp.message_id) == (
        None, "20261013101500.4721@app1.example.test",
    )  # fmt: skip


def test_the_message_id_finds_the_complainer_when_verp_does_not() -> None:
    sent = {"20261013101500.4721@app1.example.test": ("nina@outlook.test", "news@example.test")}
    report = sample("jmrp.eml").replace(b"X-HmXmrOriginalRecipient: <mallory@outlook.test>\n", b"")
    report = report.replace(b"Return-Path: news+mallory=outlook.test@bounces.example.test\n", b"")
    report = report.replace(b"20261013101500.4720", b"20261013101500.4721")
    complaint = parse_complaint(report, by_message_id=sent.get)
    assert (complaint.recipient, complaint.recipient_source) == ("nina@outlook.test", "message_id")
    assert (complaint.sender, complaint.sender_source) == ("news@example.test", "message_id")
    # an unknown (or shared) Message-ID leaves the other clues
    assert parse_complaint(report, by_message_id={}.get).recipient is None


@pytest.mark.parametrize("name", ["postfix_5.1.1.eml", "out_of_office.eml", "qmail_failure.eml"])
def test_bounces_and_replies_are_not_complaints(name: str) -> None:
    assert parse_complaint(sample(name), return_paths=RETURN_PATHS) is None


def test_an_outlook_com_bounce_is_not_a_jmrp_complaint() -> None:
    ndr = sample("microsoft_5.5.0.eml").replace(
        b"From: <postmaster@contoso.onmicrosoft.com>", b"From: <postmaster@outlook.com>"
    )
    assert parse_complaint(ndr, return_paths=RETURN_PATHS) is None


def test_other_feedback_types_are_kept() -> None:
    raw = sample("arf_abuse.eml").replace(b"Feedback-Type: abuse", b"Feedback-Type: Not-Spam")
    assert parse_complaint(raw).feedback_type == "not-spam"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("oct26:example:news:exnews01", ("exnews01", "news", "example", "oct26")),
        ("example:news:exnews01", ("exnews01", "news", "example", None)),
        ("exnews01", ("exnews01", None, None, None)),
        ("a:b:c:d:exnews01", ("exnews01", "d", "c", "a:b")),
        (" :news:exnews01", ("exnews01", "news", None, None)),
    ],
)
def test_feedback_id_fields_count_from_the_right(value: str, expected: tuple) -> None:
    parsed = parse_feedback_id(value)
    assert (parsed.sender_id, parsed.stream, parsed.tenant, parsed.campaign) == expected


def test_no_feedback_id_without_a_sender_id() -> None:
    assert parse_feedback_id("a:b:") is None
    assert parse_feedback_id(None) is None


@pytest.mark.parametrize(
    ("address", "redacted"),
    [
        ("redacted@outlook.test", True),
        ("xxxxxxx@aol.test", True),
        ("***@yahoo.test", True),
        (None, True),
        ("judy@yahoo.test", False),
        ("max@example.net", False),
    ],
)
def test_placeholders_are_not_taken_for_the_complainer(address: str | None, redacted: bool) -> None:
    assert is_redacted(address) is redacted
