"""DMARC as a receiver decides pass or fail: authheaders behind evaluate_dmarc, fed a dict DNS."""

from __future__ import annotations

import pytest
from bulkmail_providers.dkim_check import DkimResult
from bulkmail_providers.dmarc_check import (
    evaluate_dmarc,
    from_domains,
    is_aligned,
    organizational_domain,
    public_suffix_list_path,
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


@pytest.mark.parametrize(
    ("domain", "org"),
    [
        ("reports.agency.co.uk", "agency.co.uk"),
        ("shop.co.uk", "shop.co.uk"),
        ("a.b.news.example.test", "example.test"),  # .test is unlisted: the default "*" rule
        ("example.test", "example.test"),
        ("mail.example.com", "example.com"),
        ("co.uk", "co.uk"),
    ],
)
def test_organisational_domain_comes_from_the_public_suffix_list(domain: str, org: str) -> None:
    assert organizational_domain(domain) == org


def test_the_public_suffix_list_is_a_packaged_file() -> None:
    path = public_suffix_list_path()
    assert path.is_file()
    assert "co.uk" in path.read_text(encoding="utf-8").split("\n")


def test_two_registrations_under_one_public_suffix_are_not_one_organisation() -> None:
    dns = (
        StaticDns()
        .add("_dmarc.shop.co.uk", "TXT", "v=DMARC1; p=reject")
        .add("_dmarc.agency.co.uk", "TXT", "v=DMARC1; p=quarantine")
    )
    agency_spf = SpfVerdict("pass", "reports.agency.co.uk", "mailfrom")
    agency_dkim = [dkim("pass", "reports.agency.co.uk")]
    shop = evaluate_dmarc("shop.co.uk", agency_spf, agency_dkim, dns)
    assert (shop.result, shop.spf_aligned, shop.dkim_aligned, shop.disposition) == (
        "fail",
        False,
        False,
        "reject",
    )
    agency = evaluate_dmarc("agency.co.uk", agency_spf, agency_dkim, dns)
    assert (agency.result, agency.spf_aligned, agency.dkim_aligned) == ("pass", True, True)


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


def test_strict_dkim_alignment_wants_the_from_domain_itself() -> None:
    dns = StaticDns().add("_dmarc.shop.test", "TXT", "v=DMARC1; p=reject; adkim=s")
    verdict = evaluate_dmarc("shop.test", SPF_FAIL, [dkim("pass", "mail.shop.test")], dns)
    assert (verdict.result, verdict.dkim_aligned) == ("fail", False)


def test_any_aligned_signature_among_several_counts() -> None:
    dns = StaticDns().add("_dmarc.shop.test", "TXT", "v=DMARC1; p=reject")
    signatures = [dkim("pass", "esp.test"), dkim("pass", "shop.test")]
    assert evaluate_dmarc("shop.test", SPF_FAIL, signatures, dns).dkim_aligned is True


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


def test_the_from_domains_own_record_applies_p_not_sp() -> None:
    dns = StaticDns().add("_dmarc.example.test", "TXT", "v=DMARC1; p=reject; sp=none")
    verdict = evaluate_dmarc("example.test", SPF_FAIL, [], dns)
    assert (verdict.policy, verdict.disposition) == ("reject", "reject")


def test_no_record_or_several_records_is_none_and_dns_failure_is_temperror() -> None:
    assert evaluate_dmarc("example.test", SPF_PASS_BOUNCE, [], StaticDns()).result == "none"
    other_txt = StaticDns().add("_dmarc.example.test", "TXT", "v=spf1 -all")
    assert evaluate_dmarc("example.test", SPF_PASS_BOUNCE, [], other_txt).result == "none"
    two = StaticDns().add("_dmarc.example.test", "TXT", "v=DMARC1; p=none", "v=DMARC1; p=reject")
    assert evaluate_dmarc("example.test", SPF_FAIL, [], two).result == "none"
    dns = StaticDns()
    dns.unanswered.add("_dmarc.example.test")
    assert evaluate_dmarc("example.test", SPF_PASS_BOUNCE, [], dns).result == "temperror"


def test_an_unreadable_record_is_a_permerror() -> None:
    dns = StaticDns().add("_dmarc.example.test", "TXT", "v=DMARC1; p=reject; rua")
    assert evaluate_dmarc("example.test", SPF_FAIL, [], dns).result == "permerror"


def test_from_domains() -> None:
    message = b"From: App <app@Example.test>\r\nTo: a@gmail.test\r\n\r\nbody\r\n"
    assert from_domains(message) == ["example.test"]
    two = b"From: a@example.test, b@shop.test\r\n\r\n"
    assert from_domains(two) == ["example.test", "shop.test"]
    assert evaluate_dmarc(None, SPF_PASS_BOUNCE, [], StaticDns()).result == "permerror"
