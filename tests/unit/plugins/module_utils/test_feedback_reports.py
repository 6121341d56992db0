"""DMARC aggregate and TLS-RPT reports read, hostile ones refused, and the dmarc-report verdict."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.reports import (
    DMARC,
    DMARC_POLICY_SQL,
    DMARC_SUMMARY_SQL,
    TLSRPT,
    ReportError,
    dmarc_summary_query,
    format_summary,
    gunzip,
    next_policy,
    parse_dmarc_xml,
    parse_tlsrpt_json,
    summarise_dmarc,
    unpack,
    unzip,
)

DATA = Path(__file__).parent / "data" / "feedback"
DMARC_XML = (DATA / "dmarc_google.xml").read_bytes()
TLSRPT_DOC = json.loads((DATA / "tlsrpt_google.json").read_bytes())


def test_dmarc_xml_fields() -> None:
    report = parse_dmarc_xml(DMARC_XML)
    assert report.date_begin == datetime(2026, 10, 13, 0, 0, tzinfo=UTC)
    assert report.email == "noreply-dmarc-support@google.com"
    first, second = report.records
    assert (first.dkim_result, first.dkim_domain, first.spf_result, first.spf_domain) == (
        "pass", "example.test", "pass", "bounces.example.test",
    )  # fmt: skip
    assert (first.disposition, first.header_from) == ("none", "example.test")
    assert (second.dkim_result, second.spf_result) == (None, "softfail")
    assert report.messages == 1000


def test_dmarc_xml_with_a_namespace_and_a_bad_record() -> None:
    xml = DMARC_XML.replace(b"<feedback>", b'<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0">')
    xml = xml.replace(b"203.0.113.9", b"not-an-ip")
    report = parse_dmarc_xml(xml)
    assert len(report.records) == 1
    assert "not-an-ip" in report.notes[0]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'<!DOCTYPE lolz [<!ENTITY lol "lol">]><feedback/>', "DTD"),
        (
            b'<?xml version="1.0"?>\n<!doctype feedback SYSTEM "file:///etc/passwd"><feedback/>',
            "DTD",
        ),
        ("<feedback/>".encode("utf-16"), "ASCII"),
        (b"<feedback><report_metadata>", "well-formed"),
        (b"<html><body/></html>", "not <feedback>"),
        (b"<feedback><policy_published/></feedback>", "report_metadata"),
    ],
)
def test_dmarc_refuses(data: bytes, message: str) -> None:
    with pytest.raises(ReportError, match=message):
        parse_dmarc_xml(data)


def test_gzip_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"\0" * 2_000_000)
    with pytest.raises(ReportError, match="more than 1000000 bytes"):
        gunzip(bomb, limit=1_000_000)
    assert gunzip(bomb, limit=2_000_000) == b"\0" * 2_000_000
    # two members, as some gzip writers make
    assert gunzip(gzip.compress(b"<a>") + gzip.compress(b"</a>")) == b"<a></a>"
    with pytest.raises(ReportError, match="truncated"):
        gunzip(gzip.compress(DMARC_XML)[:-20])


def test_zip_bomb_and_a_lying_header() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("big.xml", b"<" + b" " * 3_000_000)
    with pytest.raises(ReportError, match="more than 1000000 bytes"):
        unzip(buffer.getvalue(), limit=1_000_000)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index in range(11):
            archive.writestr(f"{index}.xml", b"<feedback/>")
    with pytest.raises(ReportError, match="11 files"):
        unzip(buffer.getvalue())
    with pytest.raises(ReportError, match="not a valid zip"):
        unzip(b"PK\x03\x04 broken")


def test_unpack_sniffs_the_bytes_not_the_label() -> None:
    assert unpack(gzip.compress(DMARC_XML), "application/octet-stream") == [(DMARC, DMARC_XML)]
    body = json.dumps(TLSRPT_DOC).encode()
    assert unpack(gzip.compress(body), "application/gzip") == [(TLSRPT, body)]
    assert unpack(body, "application/tlsrpt+json")[0][0] == TLSRPT
    with pytest.raises(ReportError, match="neither XML nor JSON"):
        unpack(b"%PDF-1.4", "application/pdf", "report.pdf")


def test_tlsrpt_rows() -> None:
    (row,) = parse_tlsrpt_json(json.dumps(TLSRPT_DOC).encode())
    assert row.organization == "Google Inc."
    assert row.date_end == datetime(2026, 10, 12, 23, 59, 59, tzinfo=UTC)
    assert row.failures[0]["failed-session-count"] == 2
    assert row.contact == "smtp-tls-reporting@google.com"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "not an object"),
        ({"organization-name": "x"}, "report-id"),
        (
            {**TLSRPT_DOC, "policies": [{"policy": {}, "summary": {}}]},
            "policy-domain",
        ),
        (
            {
                **TLSRPT_DOC,
                "policies": [
                    {
                        "policy": {"policy-type": "sts", "policy-domain": "x.test"},
                        "summary": {"total-successful-session-count": -1},
                    }
                ],
            },
            "whole numbers",
        ),
        ({**TLSRPT_DOC, "date-range": {"start-datetime": "yesterday"}}, "RFC 3339"),
    ],
)
def test_tlsrpt_refuses(document: object, message: str) -> None:
    with pytest.raises(ReportError, match=message):
        parse_tlsrpt_json(json.dumps(document).encode())


# ------------------------------------------------------------------------------ the verdict


def test_next_policy() -> None:
    assert next_policy("none") == "quarantine"
    assert next_policy("Quarantine") == "reject"
    assert next_policy("reject") is None
    assert next_policy(None) is None


def test_safe_when_every_real_source_passes() -> None:
    records = [
        ("198.51.100.11", 9900, True, True),
        ("198.51.100.12", 5000, True, False),
        ("198.51.100.12", 50, False, False),  # 1% of that source: a forwarder
        ("203.0.113.9", 40, False, False),  # 0.27% of the volume: a spoofer
    ]
    summary = summarise_dmarc("example.test", records, policy="none", reports=3)
    assert summary.safe and summary.next_policy == "quarantine"
    assert summary.messages == 14990
    by_ip = {s.source_ip: s for s in summary.sources}
    assert by_ip["198.51.100.12"].messages == 5050
    assert by_ip["198.51.100.12"].spf_rate == 0
    assert round(by_ip["198.51.100.12"].dmarc_rate, 4) == 0.9901
    assert summary.sources[0].source_ip == "198.51.100.11"
    assert "SAFE: safe to move to p=quarantine" in format_summary(summary)


def test_not_safe_names_the_sources_that_would_be_hurt() -> None:
    records = [
        ("198.51.100.11", 9000, True, True),
        ("192.0.2.77", 1000, False, True),
        ("192.0.2.78", 500, False, False),  # a CRM sending as us, unsigned
    ]
    summary = summarise_dmarc("example.test", records, policy="quarantine")
    assert not summary.safe
    assert [s.source_ip for s in summary.hurt] == ["192.0.2.78"]
    assert "192.0.2.78 (0.0% of 500)" in summary.reason
    assert "p=reject" in summary.reason
    data = summary.as_json()
    assert data["hurt"] == ["192.0.2.78"] and data["safe"] is False
    assert data["sources"][0]["dmarc_pass_rate"] == 1.0


def test_parameters_change_the_verdict() -> None:
    records = [("198.51.100.11", 990, True, True), ("192.0.2.78", 10, False, False)]
    assert summarise_dmarc("example.test", records, policy="none").safe is False  # 1% share
    assert summarise_dmarc("example.test", records, policy="none", min_share=0.02).safe
    lenient = summarise_dmarc(
        "example.test", [("198.51.100.11", 97, True, False), ("198.51.100.11", 3, False, False)],
        policy="none", min_pass_rate=0.95,
    )  # fmt: skip
    assert lenient.safe
    with pytest.raises(ValueError, match="fractions"):
        summarise_dmarc("example.test", records, min_share=5)


def test_no_data_and_already_reject_are_not_safe() -> None:
    assert "no aggregate reports" in summarise_dmarc("example.test", [], policy="none").reason
    summary = summarise_dmarc("example.test", [("198.51.100.11", 5, True, True)], policy="reject")
    assert not summary.safe and "already p=reject" in summary.reason


def test_summary_sql_and_window() -> None:
    now = datetime(2026, 10, 13, tzinfo=UTC)
    params = dmarc_summary_query("Example.TEST.", now, 7)
    assert params == {"domain": "example.test", "since": datetime(2026, 10, 6, tzinfo=UTC)}
    for sql in (DMARC_SUMMARY_SQL, DMARC_POLICY_SQL):
        assert "%(domain)s" in sql and "%(since)s" in sql
    assert "GROUP BY rec.source_ip, rec.dkim_aligned, rec.spf_aligned" in DMARC_SUMMARY_SQL
    with pytest.raises(ValueError, match="--days"):
        dmarc_summary_query("example.test", now, 0)
