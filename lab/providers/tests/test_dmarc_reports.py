"""DMARC aggregate (RFC 7489 appendix C) and TLS-RPT (RFC 8460) reports from received records."""

from __future__ import annotations

import email
import email.policy
import gzip
import io
import json
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import replace
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from bulkmail_providers.cli import main
from bulkmail_providers.config import DEFAULT_CONFIG, load_config
from bulkmail_providers.dmarc_reports import (
    Policy,
    Reporter,
    build_aggregate_xml,
    build_tlsrpt_json,
    compress_report,
    group_by_provider_and_domain,
    group_rows,
    mailto_addresses,
    report_filename,
)
from bulkmail_providers.dnssource import DnsSource
from bulkmail_providers.followups import FollowupError
from bulkmail_providers.mailstore import read_records
from conftest import VERP, Lab
from signing import make_message, sign
from static_dns import StaticDns

CONFIG = load_config(DEFAULT_CONFIG, env={})
PROVIDERS = {p.name: p for p in CONFIG.providers}


def record(
    provider: str = "google",
    peer_ip: str = "198.51.100.10",
    received_at: str = "2026-11-23T10:00:00.000Z",
    *,
    aligned: bool = True,
    disposition: str = "none",
    tls: bool = True,
    from_domain: str | None = "example.test",
) -> dict[str, Any]:
    """A received.jsonl record as server.py writes it (the members reports read)."""
    return {
        "provider": provider,
        "peer_ip": peer_ip,
        "received_at": received_at,
        "from_header_domain": from_domain,
        "mail_from": "bounce+a1@bounce.example.test",
        "tls": tls,
        "dkim": {
            "result": "pass" if aligned else "fail",
            "domain": "example.test",
            "selector": "lab2026a",
            "signatures": [
                {
                    "result": "pass" if aligned else "fail",
                    "domain": "example.test",
                    "selector": "lab2026a",
                }
            ],
        },
        "spf": {"result": "pass", "domain": "bounce.example.test", "identity": "mailfrom"},
        "dmarc": {
            "result": "pass" if aligned else "fail",
            "policy": "none",
            "disposition": disposition,
            "alignment": {"spf": aligned, "dkim": aligned},
        },
    }


POLICY = Policy("example.test", {"v": "DMARC1", "p": "quarantine", "rua": "mailto:d@example.test"})


def test_aggregate_xml_follows_appendix_c() -> None:
    records = [
        record(received_at="2026-11-23T10:00:00.000Z"),
        record(received_at="2026-11-23T11:00:00.000Z"),
        record(peer_ip="203.0.113.9", aligned=False, disposition="quarantine"),
    ]
    root = ET.fromstring(build_aggregate_xml(PROVIDERS["google"], POLICY, records, "r1"))
    assert root.tag == "feedback"
    assert [child.tag for child in root] == [
        "report_metadata", "policy_published", "record", "record",
    ]  # fmt: skip
    metadata = root.find("report_metadata")
    assert metadata is not None
    assert [c.tag for c in metadata] == ["org_name", "email", "report_id", "date_range"]
    assert metadata.findtext("org_name") == "google"
    assert metadata.findtext("email") == "noreply-dmarc-support@gmail.test"
    assert metadata.findtext("report_id") == "r1"
    assert metadata.findtext("date_range/begin") == "1795428000"  # 2026-11-23T10:00:00Z
    assert metadata.findtext("date_range/end") == "1795431600"
    published = root.find("policy_published")
    assert published is not None
    assert [(c.tag, c.text) for c in published] == [
        ("domain", "example.test"), ("adkim", "r"), ("aspf", "r"),
        ("p", "quarantine"), ("sp", "quarantine"), ("pct", "100"),
    ]  # fmt: skip
    first, second = root.findall("record")
    assert [c.tag for c in first] == ["row", "identifiers", "auth_results"]
    assert [c.tag for c in first.find("row")] == ["source_ip", "count", "policy_evaluated"]  # type: ignore[union-attr]
    assert first.findtext("row/source_ip") == "198.51.100.10"
    assert first.findtext("row/count") == "2"
    assert first.findtext("row/policy_evaluated/disposition") == "none"
    assert first.findtext("row/policy_evaluated/dkim") == "pass"
    assert first.findtext("row/policy_evaluated/spf") == "pass"
    assert first.findtext("identifiers/header_from") == "example.test"
    assert first.findtext("identifiers/envelope_from") == "bounce.example.test"
    assert first.findtext("auth_results/dkim/domain") == "example.test"
    assert first.findtext("auth_results/dkim/selector") == "lab2026a"
    assert first.findtext("auth_results/dkim/result") == "pass"
    assert first.findtext("auth_results/spf/domain") == "bounce.example.test"
    assert first.findtext("auth_results/spf/scope") == "mfrom"
    assert first.findtext("auth_results/spf/result") == "pass"
    assert second.findtext("row/source_ip") == "203.0.113.9"
    assert second.findtext("row/count") == "1"
    assert second.findtext("row/policy_evaluated/disposition") == "quarantine"
    assert second.findtext("row/policy_evaluated/dkim") == "fail"
    assert second.findtext("auth_results/dkim/result") == "fail"


def test_an_unsigned_message_has_no_dkim_result_and_a_null_sender_reports_helo() -> None:
    unsigned = record()
    unsigned["dkim"] = {"result": "none", "domain": None, "selector": None, "signatures": []}
    unsigned["mail_from"] = ""
    unsigned["spf"] = {"result": "pass", "domain": "mta1.example.test", "identity": "helo"}
    root = ET.fromstring(build_aggregate_xml(PROVIDERS["yahoo"], POLICY, [unsigned], "r2"))
    assert root.find("record/auth_results/dkim") is None
    assert root.findtext("record/auth_results/spf/scope") == "helo"
    assert root.findtext("record/identifiers/envelope_from") == "mta1.example.test"


def test_rows_group_by_source_disposition_and_aligned_results() -> None:
    rows = group_rows(
        [
            record(),
            record(received_at="2026-11-23T12:00:00.000Z"),
            record(peer_ip="198.51.100.11"),
            record(aligned=False),
            record(aligned=False, disposition="reject"),
        ]
    )
    assert [(r.source_ip, r.disposition, r.dkim, r.spf, n) for r, n in rows] == [
        ("198.51.100.10", "none", "pass", "pass", 2),
        ("198.51.100.11", "none", "pass", "pass", 1),
        ("198.51.100.10", "none", "fail", "fail", 1),
        ("198.51.100.10", "reject", "fail", "fail", 1),
    ]


def test_reports_are_per_provider_and_from_domain() -> None:
    batches = group_by_provider_and_domain(
        [
            record(),
            record(provider="yahoo"),
            record(from_domain="shop.test"),
            record(from_domain=None),  # no single From domain: about no one
            record(),
        ]
    )
    assert {key: len(value) for key, value in batches.items()} == {
        ("google", "example.test"): 2,
        ("yahoo", "example.test"): 1,
        ("google", "shop.test"): 1,
    }
    assert list(group_by_provider_and_domain([record(), record("yahoo")], "yahoo")) == [
        ("yahoo", "example.test")
    ]


def test_google_attaches_a_zip_the_others_xml_gz() -> None:
    base = report_filename("gmail.test", "example.test", 1795428000, 1795431600, "xml")
    assert base == "gmail.test!example.test!1795428000!1795431600.xml"
    base = base.removesuffix(".xml")
    zipped = compress_report(PROVIDERS["google"], base, b"<feedback/>")
    assert (zipped.filename, zipped.content_type) == (f"{base}.zip", "application/zip")
    with zipfile.ZipFile(io.BytesIO(zipped.data)) as archive:
        assert archive.namelist() == [f"{base}.xml"]
        assert archive.read(f"{base}.xml") == b"<feedback/>"
    for name in ("yahoo", "microsoft"):
        gz = compress_report(PROVIDERS[name], base, b"<feedback/>")
        assert (gz.filename, gz.content_type) == (f"{base}.xml.gz", "application/gzip")
        assert gzip.decompress(gz.data) == b"<feedback/>"


def test_rua_mailto_addresses_drop_size_limits_and_other_schemes() -> None:
    assert mailto_addresses(
        "mailto:dmarc@example.test!10m, https://r.example.test/x,MAILTO:b@agency.test"
    ) == ["dmarc@example.test", "b@agency.test"]


def test_tlsrpt_counts_sessions_with_and_without_tls() -> None:
    records = [record(), record(), record(tls=False, peer_ip="198.51.100.11")]
    report = json.loads(build_tlsrpt_json(PROVIDERS["microsoft"], "example.test", records, "t1"))
    assert report["organization-name"] == "microsoft"
    assert report["report-id"] == "t1"
    assert report["date-range"]["start-datetime"] == "2026-11-23T10:00:00Z"
    [policy] = report["policies"]
    assert policy["policy"] == {"policy-type": "no-policy-found", "policy-domain": "example.test"}
    assert policy["summary"] == {
        "total-successful-session-count": 2,
        "total-failure-session-count": 1,
    }
    assert policy["failure-details"] == [
        {
            "result-type": "starttls-not-supported",
            "sending-mta-ip": "198.51.100.11",
            "receiving-mx-hostname": PROVIDERS["microsoft"].hostname,
            "failed-session-count": 1,
        }
    ]


# --- sending: a stand-in delivery, then a real one through the lab fixture ---------------


class Outbox:
    def __init__(self, failures: int = 0) -> None:
        self.sent: list[tuple[str, Message]] = []
        self.failures = failures

    def __call__(self, mail: bytes, to: str, dns: DnsSource, helo: str, port: int) -> str:
        if self.failures:
            self.failures -= 1
            raise FollowupError("mx.example.test[127.0.0.1]: 451 try later")
        self.sent.append((to, email.message_from_bytes(mail, policy=email.policy.compat32)))
        return "mx.example.test[127.0.0.1]"


def report_dns() -> StaticDns:
    return (
        StaticDns()
        .add("_dmarc.example.test", "TXT", "v=DMARC1; p=none; rua=mailto:dmarc@example.test")
        .add("_smtp._tls.example.test", "TXT", "v=TLSRPTv1; rua=mailto:tls@example.test")
        .add("_dmarc.shop.test", "TXT", "v=DMARC1; p=reject; rua=mailto:dmarc@agency.test")
    )


def write_records(data_dir: Path, records: list[dict[str, Any]]) -> None:
    with (data_dir / "received.jsonl").open("a", encoding="utf-8") as file:
        for item in records:
            file.write(json.dumps(item) + "\n")


def test_each_record_is_reported_once_with_retries_logged(tmp_path: Path) -> None:
    config = replace(CONFIG, data_dir=tmp_path)
    outbox = Outbox(failures=1)
    reporter = Reporter(config, report_dns(), retry_delays=(0.0,), deliver=outbox)
    write_records(tmp_path, [record(), record(provider="yahoo", tls=False)])

    outcomes = reporter.run()
    assert sorted((o["kind"], o["provider"], o["to"], o["status"]) for o in outcomes) == [
        ("dmarc_report", "google", "dmarc@example.test", "sent"),
        ("dmarc_report", "yahoo", "dmarc@example.test", "sent"),
        ("tls_report", "google", "tls@example.test", "sent"),
        ("tls_report", "yahoo", "tls@example.test", "sent"),
    ]
    assert [o["attempts"] for o in outcomes].count(2) == 1  # the first delivery was retried
    logged = list(read_records(tmp_path / "followups.jsonl"))
    assert [o["report_id"] for o in logged] == [o["report_id"] for o in outcomes]

    dmarc_mail = next(m for to, m in outbox.sent if to == "dmarc@example.test")
    assert dmarc_mail.get_content_type() == "multipart/mixed"
    assert dmarc_mail["From"] == "noreply-dmarc-support@gmail.test"
    assert dmarc_mail["Subject"].startswith("Report Domain: example.test Submitter: gmail.test")
    _, attachment = dmarc_mail.get_payload()
    assert attachment.get_content_type() == "application/zip"
    assert attachment.get_filename().startswith("gmail.test!example.test!")
    tls_mail = next(m for to, m in outbox.sent if to == "tls@example.test")
    assert tls_mail.get_content_type() == "multipart/report"
    assert tls_mail.get_param("report-type") == "tlsrpt"
    assert tls_mail["TLS-Report-Domain"] == "example.test"
    _, tls_attachment = tls_mail.get_payload()
    assert tls_attachment.get_content_type() == "application/tlsrpt+gzip"
    assert tls_attachment.get_filename().endswith(".json.gz")
    json.loads(gzip.decompress(tls_attachment.get_payload(decode=True)))

    assert reporter.run() == []  # nothing new
    write_records(tmp_path, [record(received_at="2026-11-24T10:00:00.000Z")])
    again = reporter.run(provider="google")
    assert [(o["kind"], o["messages"]) for o in again] == [("dmarc_report", 1), ("tls_report", 1)]
    assert [o["provider"] for o in reporter.run(since=0, provider="yahoo")] == ["yahoo", "yahoo"]


def test_a_failed_delivery_and_an_unauthorized_destination_are_logged(tmp_path: Path) -> None:
    config = replace(CONFIG, data_dir=tmp_path)
    reporter = Reporter(config, report_dns(), retry_delays=(0.0,), deliver=Outbox(failures=9))
    write_records(tmp_path, [record(), record(from_domain="shop.test")])
    outcomes = reporter.run(provider="google")
    assert sorted((o["kind"], o["to"], o["status"]) for o in outcomes) == [
        ("dmarc_report", "dmarc@agency.test", "skipped"),  # agency.test did not consent
        ("dmarc_report", "dmarc@example.test", "failed"),
        ("tls_report", "tls@example.test", "failed"),
    ]
    failed = next(o for o in outcomes if o["status"] == "failed")
    assert failed["attempts"] == 2 and "451 try later" in failed["error"]


def test_the_command_mails_a_report_to_the_rua_domains_mx(lab: Lab) -> None:
    """End to end: a message arrives, the command reports it over SMTP to the rua's MX."""
    dns = lab.server.dns
    assert isinstance(dns, StaticDns)
    dns.add("example.test", "MX", (10, "mta1.example.test"))
    with lab.client() as client:
        client.sendmail(VERP, ["alice@gmail.test"], sign(make_message(to="alice@gmail.test")))
    reporter = Reporter(lab.server.config, dns, retry_delays=())
    [outcome] = reporter.run()
    assert (outcome["kind"], outcome["status"], outcome["to"]) == (
        "dmarc_report", "sent", "dmarc@example.test",
    )  # fmt: skip
    [(sender, rcpts, raw)] = lab.sender_mx.received
    assert (sender, rcpts) == ("", ["dmarc@example.test"])
    _, attachment = email.message_from_bytes(raw, policy=email.policy.compat32).get_payload()
    with zipfile.ZipFile(io.BytesIO(attachment.get_payload(decode=True))) as archive:
        [name] = archive.namelist()
        root = ET.fromstring(archive.read(name))
    assert root.findtext("record/row/count") == "1"
    assert root.findtext("record/row/policy_evaluated/dkim") == "pass"
    assert root.findtext("record/auth_results/dkim/selector") == "lab2026a"


def test_the_command_refuses_an_unknown_provider(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--data-dir", str(tmp_path), "dmarc-reports", "--provider", "aol"]) == 2
    assert "not one of google" in capsys.readouterr().err


def test_reset_forgets_what_was_reported(tmp_path: Path) -> None:
    (tmp_path / "dmarc-reports.json").write_text('{"reported": {"google": 3}}')
    assert main(["--data-dir", str(tmp_path), "reset"]) == 0
    assert not (tmp_path / "dmarc-reports.json").exists()
