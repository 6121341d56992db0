"""DMARC policy discovery and alignment, as a receiver decides pass or fail."""

from __future__ import annotations

import pytest
from bulkmail_providers.dkim_check import DkimResult
from bulkmail_providers.dmarc_check import (
    evaluate_dmarc,
    from_domains,
    is_aligned,
    organizational_domain,
    parse_dmarc_record,
)
from bulkmail_providers.spf_check import SpfVerdict
from static_dns import StaticDns

SPF_PASS_BOUNCE = SpfVerdict("pass", "bounce.example.test", "mailfrom")
SPF_FAIL = SpfVerdict("fail", "example.test", "mailfrom")


def dkim(result: str, domain: str) -> DkimResult:
    return DkimResult(result, domain, "lab2026a")


@pytest.mark.parametrize(
    ("identifier", "from_domain", "mode", "aligned"),
    [
        ("bounce.example.test", "example.test", "r", True),
        ("bounce.example.test", "example.test", "s", False),
        ("example.test", "example.test", "s", True),
        ("Example.TEST.", "example.test", "s", True),
        ("example.test", "news.example.test", "r", True),
        ("shop.test", "example.test", "r", False),
        ("", "example.test", "r", False),
    ],
)
def test_alignment(identifier: str, from_domain: str, mode: str, aligned: bool) -> None:
    assert is_aligned(identifier, from_domain, mode) is aligned


def test_organizational_domain_is_the_last_two_labels() -> None:
    assert organizational_domain("a.b.news.example.test") == "example.test"
    assert organizational_domain("example.test") == "example.test"


def test_record_parsing() -> None:
    record = parse_dmarc_record(
        "v=DMARC1; p=reject; sp=none; adkim=s; rua=mailto:d@x.test", "x.test"
    )
    assert record is not None
    assert (record.policy, record.subdomain_policy, record.adkim, record.aspf) == (
        "reject",
        "none",
        "s",
        "r",
    )
    assert parse_dmarc_record("v=spf1 -all", "x.test") is None
    assert parse_dmarc_record("p=none; v=DMARC1", "x.test") is None  # v must come first
    bad_p = parse_dmarc_record("v=DMARC1; p=bogus; rua=mailto:d@x.test", "x.test")
    assert bad_p is not None and bad_p.policy == "none"


def test_pass_through_relaxed_spf_alignment_of_the_verp_domain() -> None:
    dns = StaticDns().add(
        "_dmarc.example.test", "TXT", "v=DMARC1; p=none; rua=mailto:d@example.test"
    )
    verdict = evaluate_dmarc("example.test", SPF_PASS_BOUNCE, [], dns)
    assert (verdict.result, verdict.policy, verdict.spf_aligned, verdict.dkim_aligned) == (
        "pass",
        "none",
        True,
        False,
    )


def test_strict_spf_alignment_rejects_the_verp_subdomain_but_dkim_saves_it() -> None:
    dns = StaticDns().add("_dmarc.shop.test", "TXT", "v=DMARC1; p=reject; aspf=s")
    spf_only = evaluate_dmarc(
        "shop.test", SpfVerdict("pass", "bounce.shop.test", "mailfrom"), [], dns
    )
    assert (spf_only.result, spf_only.disposition) == ("fail", "reject")
    both = evaluate_dmarc(
        "shop.test",
        SpfVerdict("pass", "bounce.shop.test", "mailfrom"),
        [dkim("pass", "shop.test")],
        dns,
    )
    assert (both.result, both.dkim_aligned, both.disposition) == ("pass", True, "none")


def test_an_unaligned_dkim_pass_does_not_count() -> None:
    dns = StaticDns().add("_dmarc.shop.test", "TXT", "v=DMARC1; p=reject")
    verdict = evaluate_dmarc("shop.test", SPF_FAIL, [dkim("pass", "esp.test")], dns)
    assert verdict.result == "fail"


def test_a_failing_aligned_dkim_signature_does_not_count() -> None:
    dns = StaticDns().add("_dmarc.shop.test", "TXT", "v=DMARC1; p=reject")
    assert evaluate_dmarc("shop.test", SPF_FAIL, [dkim("fail", "shop.test")], dns).result == "fail"


def test_subdomain_uses_the_organisational_record_and_its_sp() -> None:
    dns = StaticDns().add("_dmarc.example.test", "TXT", "v=DMARC1; p=reject; sp=quarantine")
    verdict = evaluate_dmarc("news.example.test", SPF_FAIL, [], dns)
    assert (verdict.result, verdict.policy, verdict.record_domain) == (
        "fail",
        "quarantine",
        "example.test",
    )


def test_no_record_is_none_and_dns_failure_is_temperror() -> None:
    assert evaluate_dmarc("example.test", SPF_PASS_BOUNCE, [], StaticDns()).result == "none"
    dns = StaticDns()
    dns.unanswered.add("_dmarc.example.test")
    assert evaluate_dmarc("example.test", SPF_PASS_BOUNCE, [], dns).result == "temperror"


def test_from_domains() -> None:
    message = b"From: App <app@Example.test>\r\nTo: a@gmail.test\r\n\r\nbody\r\n"
    assert from_domains(message) == ["example.test"]
    two = b"From: a@example.test, b@shop.test\r\n\r\n"
    assert from_domains(two) == ["example.test", "shop.test"]
    assert evaluate_dmarc(None, SPF_PASS_BOUNCE, [], StaticDns()).result == "permerror"
