"""DKIM verification of messages signed here with dkimpy and a key made for the run."""

from __future__ import annotations

from bulkmail_providers.dkim_check import check_dkim
from signing import dkim_key, make_message, sign
from static_dns import StaticDns


def key_dns() -> StaticDns:
    return StaticDns().add("lab2026a._domainkey.example.test", "TXT", dkim_key().txt)


def test_a_good_signature_passes_and_names_domain_and_selector() -> None:
    [result] = check_dkim(sign(make_message()), key_dns())
    assert (result.result, result.domain, result.selector) == ("pass", "example.test", "lab2026a")
    assert len(result.b_prefix) == 8


def test_a_changed_body_fails() -> None:
    signed = sign(make_message()).replace(b"Hello from the lab.", b"Hello from elsewhere.")
    assert [r.result for r in check_dkim(signed, key_dns())] == ["fail"]


def test_a_changed_signed_header_fails() -> None:
    signed = sign(make_message()).replace(b"Subject: lab test", b"Subject: lab t3st")
    assert [r.result for r in check_dkim(signed, key_dns())] == ["fail"]


def test_a_missing_key_is_a_permerror_and_an_unanswered_lookup_a_temperror() -> None:
    signed = sign(make_message())
    assert [r.result for r in check_dkim(signed, StaticDns())] == ["permerror"]
    dns = StaticDns()
    dns.unanswered.add("lab2026a._domainkey.example.test")
    assert [r.result for r in check_dkim(signed, dns)] == ["temperror"]


def test_every_signature_gets_a_result() -> None:
    twice = sign(sign(make_message()), domain="esp.test", selector="s1")
    dns = key_dns().add("s1._domainkey.esp.test", "TXT", dkim_key().txt)
    assert [(r.domain, r.result) for r in check_dkim(twice, dns)] == [
        ("esp.test", "pass"),
        ("example.test", "pass"),
    ]


def test_an_unsigned_message_has_no_results() -> None:
    assert check_dkim(make_message(), key_dns()) == []
