"""Parsers of published records: what makes receivers return permerror, and tag lists."""

from __future__ import annotations

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.dns.parsers import (
    spf_lookup_terms,
    spf_syntax_problems,
    split_spf_term,
    tag_list,
)


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ("v=spf1 ip4:198.51.100.300 -all", "'198.51.100.300' is not an IPv4 address or network"),
        ("v=spf1 include -all", "include needs a domain"),
        ("v=spf1 ipv4:198.51.100.10 -all", "'ipv4:198.51.100.10' is not an SPF mechanism"),
        ("v=spf1 a/33 -all", "prefix length out of range"),
        ("v=spf1 redirect=a.test redirect=b.test", "redirect= may appear only once"),
        ("v=spf1 include:exa_mple..test -all", "empty label"),
    ],
)
def test_spf_syntax_problems(record: str, problem: str) -> None:
    assert any(problem in found for found in spf_syntax_problems(record))


def test_spf_syntax_accepts_what_receivers_accept() -> None:
    record = (
        "v=spf1 a mx:mail.example.test/24//64 ptr ip4:198.51.100.0/24 ip6:2001:db8::/32 "
        "exists:%{i}._spf.example.test include:_spf.google.test exp=explain.example.test -all"
    )
    assert spf_syntax_problems(record) == []


def test_tag_list_reports_duplicates() -> None:
    tags, problems = tag_list("v=DKIM1; k=rsa; k=ed25519; p=abc;")
    assert tags == {"v": "DKIM1", "k": "rsa", "p": "abc"}
    assert problems == ["tag 'k' appears twice"]


def test_lookup_terms_are_the_terms_that_cost_a_query() -> None:
    record = (
        "v=spf1 ip4:198.51.100.10 a mx/24 include:_spf.test exists:%{i}.x.test ptr "
        "redirect=b.test exp=e.test -all"
    )
    assert spf_lookup_terms(record) == [
        "a", "mx/24", "include:_spf.test", "exists:%{i}.x.test", "ptr", "redirect=b.test"
    ]  # fmt: skip


def test_an_spf_term_splits_into_qualifier_name_separator_and_argument() -> None:
    assert split_spf_term("-include:_spf.test") == ("-", "include", ":", "_spf.test")
    assert split_spf_term("mx/24//64") == ("", "mx", "", "/24//64")
    assert split_spf_term("Redirect=b.test") == ("", "redirect", "=", "b.test")
    assert split_spf_term("%bad") == ("", "", "", "")
