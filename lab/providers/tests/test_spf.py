"""SPF as a receiver evaluates it (pyspf behind check_spf, fed a dict DNS): the results a
sender's postmaster would see."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from bulkmail_providers.spf_check import check_spf
from static_dns import StaticDns

SMTP1 = "198.51.100.10"


def spf(dns: StaticDns, ip: str = SMTP1, mail_from: str = "bounce@example.test", helo: str = ""):
    return check_spf(ip, mail_from, helo or "mta1.example.test", dns)


def test_pass_for_the_pool_address_and_fail_for_others() -> None:
    dns = StaticDns().add("example.test", "TXT", "v=spf1 ip4:198.51.100.10 -all")
    assert spf(dns).result == "pass"
    assert spf(dns, ip="203.0.113.7").result == "fail"
    assert spf(dns).domain == "example.test"


@pytest.mark.parametrize(
    ("qualifier", "result"), [("~", "softfail"), ("?", "neutral"), ("+", "pass"), ("-", "fail")]
)
def test_qualifiers(qualifier: str, result: str) -> None:
    dns = StaticDns().add("example.test", "TXT", f"v=spf1 {qualifier}all")
    assert spf(dns).result == result


def test_no_record_is_none_and_other_txt_records_are_ignored() -> None:
    dns = StaticDns().add("example.test", "TXT", "google-site-verification=abc", "v=spf10 -all")
    assert spf(dns).result == "none"


def test_two_records_are_a_permerror() -> None:
    dns = StaticDns().add("example.test", "TXT", "v=spf1 -all", "v=spf1 +all")
    assert spf(dns).result == "permerror"


def test_include_and_redirect() -> None:
    dns = (
        StaticDns()
        .add("example.test", "TXT", "v=spf1 include:relay.test -all")
        .add("relay.test", "TXT", "v=spf1 ip4:203.0.113.0/24 -all")
        .add("shop.test", "TXT", "v=spf1 redirect=example.test")
    )
    assert spf(dns, ip="203.0.113.20").result == "pass"
    assert spf(dns, ip="192.0.2.1").result == "fail"
    assert spf(dns, ip="203.0.113.20", mail_from="x@shop.test").result == "pass"


def test_include_of_a_domain_without_spf_is_a_permerror() -> None:
    dns = StaticDns().add("example.test", "TXT", "v=spf1 include:nothing.test -all")
    assert spf(dns).result == "permerror"


def test_a_and_mx_mechanisms_with_prefixes() -> None:
    dns = (
        StaticDns()
        .add("example.test", "TXT", "v=spf1 mx a:web.example.test/24 -all")
        .add("example.test", "MX", (10, "mta1.example.test"))
        .add("mta1.example.test", "A", SMTP1)
        .add("web.example.test", "A", "192.0.2.80")
    )
    assert spf(dns).result == "pass"
    assert spf(dns, ip="192.0.2.200").result == "pass"  # inside web's /24
    assert spf(dns, ip="192.0.3.1").result == "fail"


def test_exists_with_macros() -> None:
    dns = (
        StaticDns()
        .add("example.test", "TXT", "v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} -all")
        .add("10.100.51.198.bounce._spf.example.test", "A", "127.0.0.2")
    )
    assert spf(dns, mail_from="bounce+abc@example.test").result == "pass"
    assert spf(dns, mail_from="other@example.test").result == "fail"


def test_ip6() -> None:
    dns = StaticDns().add("example.test", "TXT", "v=spf1 ip6:2001:db8::/32 -all")
    assert spf(dns, ip="2001:db8::25").result == "pass"
    assert spf(dns, ip="2001:db9::25").result == "fail"
    assert spf(dns).result == "fail"  # an IPv4 client never matches ip6


def test_null_sender_is_checked_against_helo() -> None:
    dns = StaticDns().add("mta1.example.test", "TXT", "v=spf1 a -all")
    dns.add("mta1.example.test", "A", SMTP1)
    verdict = spf(dns, mail_from="", helo="mta1.example.test")
    assert (verdict.result, verdict.identity, verdict.domain) == (
        "pass",
        "helo",
        "mta1.example.test",
    )


def test_more_than_ten_lookups_is_a_permerror() -> None:
    dns = StaticDns().add("example.test", "TXT", "v=spf1 " + " ".join(["a"] * 11) + " -all")
    dns.add("example.test", "A", "192.0.2.9")
    assert spf(dns).result == "permerror"


def test_more_than_two_void_lookups_is_a_permerror() -> None:
    record = "v=spf1 a:n1.test a:n2.test a:n3.test ip4:198.51.100.10 -all"
    assert spf(StaticDns().add("example.test", "TXT", record)).result == "permerror"


def test_dns_timeout_is_a_temperror() -> None:
    dns = StaticDns()
    dns.unanswered.add("example.test")
    assert spf(dns).result == "temperror"


def test_every_answer_comes_from_the_dns_source_given() -> None:
    dns = StaticDns().add("example.test", "TXT", "v=spf1 include:relay.test -all")
    dns.add("relay.test", "TXT", "v=spf1 ip4:198.51.100.10 -all")
    assert spf(dns).result == "pass"
    assert [name for name, _ in dns.queries] == ["example.test", "relay.test"]


def test_concurrent_checks_each_ask_their_own_dns() -> None:
    passing = StaticDns().add("example.test", "TXT", "v=spf1 +all")
    failing = StaticDns().add("example.test", "TXT", "v=spf1 -all")
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda n: spf(passing if n % 2 else failing).result, range(64)))
    assert results == ["fail", "pass"] * 32


def test_syntax_error_anywhere_is_a_permerror_even_after_a_match() -> None:
    dns = StaticDns().add("example.test", "TXT", "v=spf1 ip4:198.51.100.10 ip4:not-an-ip -all")
    assert spf(dns).result == "permerror"
