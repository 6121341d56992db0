"""The inventory model: what a user sees when bulkmail_domains or bulkmail_ip_pools is wrong."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.model import model_summary
from ansible_collections.bulkmail.infra.plugins.module_utils.model.domains import (
    Dmarc,
    parse_dmarc,
    parse_ip_pools,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.model.errors import (
    ModelError,
    ModelErrors,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.model.fields import (
    validate_domain_name,
)
from model_inventory import VOLUME, build_model, inventory, problem

GOOD_DOMAINS: list[dict[str, Any]] = [
    {
        "name": "example.com",
        "dkim_selectors": ["s2026b", "s2026a"],
        "dmarc": {
            "policy": "quarantine",
            "pct": 25,
            "rua": "mailto:dmarc@example.com",
            "ruf": ["mailto:forensic@example.com!10m"],
            "adkim": "s",
        },
        "return_path_domain": "bounce.example.com",
        "spf_include": ["amazonses.com", "_spf.google.com"],
    },
    {"name": "shop.example.org", "dkim_selectors": ["s1"], "dmarc": {"policy": "none"}},
]
POOLS = {"bulk": ["198.51.100.11", "198.51.100.10"]}
SMTP = [
    {"inventory_hostname": "smtp1", "bulkmail_hostname": "mta1.example.com",
     "bulkmail_public_ipv4": "198.51.100.10", "bulkmail_internal_ipv4": "10.25.0.10"},
    {"inventory_hostname": "smtp2", "bulkmail_hostname": "mta2.example.com",
     "bulkmail_public_ipv4": "198.51.100.11"},
]  # fmt: skip
DNS = [
    {"inventory_hostname": "dns1", "bulkmail_hostname": "ns1.example.com",
     "bulkmail_public_ipv4": "198.51.100.53"},
]  # fmt: skip


def variables(domains: Any = None, pools: Any = None, *, volume: Any = None) -> dict[str, Any]:
    """The model's variables: GOOD_DOMAINS and POOLS unless given, and a volume profile."""
    return {
        "bulkmail_domains": GOOD_DOMAINS if domains is None else domains,
        "bulkmail_ip_pools": POOLS if pools is None else pools,
        "bulkmail_volume": VOLUME if volume is None else volume,
    }


def domains_with(index: int, **changes: Any) -> list[dict[str, Any]]:
    domains = copy.deepcopy(GOOD_DOMAINS)
    for key, value in changes.items():
        if value is None:
            domains[index].pop(key, None)
        else:
            domains[index][key] = value
    return domains


def dmarc_error(**dmarc: Any) -> str:
    return problem(inventory(variables(domains_with(1, dmarc=dmarc))))


def domain_error(index: int = 1, **changes: Any) -> str:
    return problem(inventory(variables(domains_with(index, **changes))))


def pools_error(pools: Any) -> str:
    return problem(inventory(variables(pools=pools)))


# --- good input ----------------------------------------------------------------------------


def test_parses_a_complete_domain_with_defaults_filled_in() -> None:
    first, second = build_model(variables()).domains
    assert first.name == "example.com"
    assert first.dkim_selectors == ("s2026b", "s2026a")
    assert first.signing_selector == "s2026b"
    assert first.dmarc == Dmarc(
        policy="quarantine",
        pct=25,
        rua=("mailto:dmarc@example.com",),
        ruf=("mailto:forensic@example.com!10m",),
        adkim="s",
        aspf="r",
    )
    assert first.return_path_domain == "bounce.example.com"
    assert first.spf_include == ("amazonses.com", "_spf.google.com")
    assert second.dmarc == Dmarc(policy="none")
    assert second.return_path_domain is None


def test_a_single_selector_or_include_may_be_written_as_a_string() -> None:
    (domain,) = build_model(variables(
        [{"name": "a.example", "dkim_selectors": "s1", "dmarc": {"policy": "none"},
          "spf_include": "relay.example.net"}]
    )).domains  # fmt: skip
    assert domain.dkim_selectors == ("s1",)
    assert domain.spf_include == ("relay.example.net",)


def test_the_whole_model_validates_and_summarises() -> None:
    model = build_model(variables(), smtp=SMTP, dns=DNS)
    summary = model_summary(model)
    assert summary["pool_addresses"] == ["198.51.100.10", "198.51.100.11"]
    assert summary["smtp_hosts"] == ["smtp1", "smtp2"]
    assert summary["domains"][1]["dmarc"]["pct"] == 100


# --- domain names --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("exa_mple.com", "'exa_mple.com' is not a valid domain name: label 'exa_mple' may "
                         "contain only letters, digits and hyphens"),
        ("-shop.example.com", "'-shop.example.com' is not a valid domain name: label "
                              "'-shop' must not start or end with a hyphen"),
        ("shop..example.com", "'shop..example.com' is not a valid domain name: empty label"),
        ("Example.com", "'Example.com' must be written in lower case: 'example.com'"),
        ("example.com.", "'example.com.' must not end with a dot: write 'example.com'"),
        ("localhost", "'localhost' is not a fully qualified domain name: write e.g. "
                      "'localhost.com'"),
        ("192.0.2.1", "'192.0.2.1' is an address, not a domain name"),
        ("a" * 64 + ".com", f"'{'a' * 64}.com' is not a valid domain name: label "
                            f"'{'a' * 64}' is longer than 63"),
        ("bücher.example", "'bücher.example' is not ASCII; write internationalized names in "
                           "punycode: write 'xn--bcher-kva.example'"),
        (42, "42 (int) is not a domain name"),
    ],
)  # fmt: skip
def test_malformed_domain_names_are_refused_with_the_fix(name: Any, message: str) -> None:
    assert domain_error(name=name) == f"bulkmail_domains[1].name: {message}"


def test_a_missing_name_is_named() -> None:
    assert domain_error(name=None) == (
        "bulkmail_domains[1].name: missing; set a domain name such as 'example.com'"
    )


def test_names_longer_than_253_characters_are_refused() -> None:
    name = ".".join(["a" * 60] * 5) + ".com"
    with pytest.raises(ModelError, match="is longer than 253 characters"):
        validate_domain_name(name, "x")


def test_duplicate_domains_are_refused() -> None:
    domains = [*GOOD_DOMAINS, copy.deepcopy(GOOD_DOMAINS[0])]
    assert problem(inventory(variables(domains))) == (
        "bulkmail_domains[2].name: 'example.com' is already listed at bulkmail_domains[0]; "
        "list each domain once"
    )


def test_an_unknown_key_names_the_known_ones() -> None:
    assert domain_error(dkim_selector=["s1"]) == (
        "bulkmail_domains[1]: unknown key(s) dkim_selector; known keys are name, "
        "dkim_selectors, dmarc, return_path_domain, spf_include, relays, mta_sts, tls_rpt "
        "(docs/model.md)"
    )


@pytest.mark.parametrize("raw", [None, [], "example.com", {"name": "example.com"}])
def test_bulkmail_domains_must_be_a_non_empty_list(raw: Any) -> None:
    assert problem(inventory({**variables(), "bulkmail_domains": raw})).startswith(
        "bulkmail_domains: "
    )


# --- selectors -----------------------------------------------------------------------------


def test_selectors_are_required() -> None:
    assert domain_error(dkim_selectors=[]) == (
        "bulkmail_domains[1].dkim_selectors: missing; list at least one selector, e.g. [s2026a]"
    )


def test_a_malformed_selector_is_refused() -> None:
    assert domain_error(dkim_selectors=["s1", "jan_2026"]) == (
        "bulkmail_domains[1].dkim_selectors[1]: 'jan_2026' is not a valid DKIM selector: use "
        "letters, digits and hyphens, e.g. 's2026a'"
    )


def test_a_repeated_selector_is_refused() -> None:
    assert domain_error(dkim_selectors=["s1", "s1"]) == (
        "bulkmail_domains[1].dkim_selectors[1]: 's1' is listed twice; list each selector once"
    )


def test_numeric_and_dotted_selectors_are_valid() -> None:
    (domain,) = build_model(
        variables(
            [{"name": "a.example", "dkim_selectors": ["2026", "eu.s1"],
              "dmarc": {"policy": "none"}}]
        )
    ).domains  # fmt: skip
    assert domain.dkim_selectors == ("2026", "eu.s1")


# --- DMARC ---------------------------------------------------------------------------------


def test_an_invalid_dmarc_policy_names_the_choices() -> None:
    assert dmarc_error(policy="block") == (
        "bulkmail_domains[1].dmarc.policy: 'block' is not one of none, quarantine, reject"
    )


def test_a_missing_dmarc_policy_is_named() -> None:
    assert dmarc_error(rua="mailto:d@example.org") == (
        "bulkmail_domains[1].dmarc.policy: missing; set it to one of none, quarantine, reject"
    )


def test_a_missing_dmarc_block_says_why_it_is_needed() -> None:
    assert domain_error(dmarc=None) == (
        "bulkmail_domains[1].dmarc: missing; bulk senders must publish DMARC: add at least "
        "{policy: none, rua: 'mailto:dmarc@<domain>'}"
    )


@pytest.mark.parametrize(
    ("rua", "path", "message"),
    [
        ("dmarc@example.org", "rua",
         "'dmarc@example.org' is not a mailto: URI; write it as 'mailto:dmarc@example.org'"),
        ("https://example.org/dmarc", "rua",
         "'https://example.org/dmarc' is not a mailto: URI; write it as "
         "'mailto:dmarc@example.com'"),
        ("mailto:dmarc", "rua",
         "'mailto:dmarc' is not a valid mailbox address; write it as "
         "'mailto:dmarc@example.com'"),
        ("mailto:dmarc@example", "rua",
         "'mailto:dmarc@example' does not name a valid mail domain ('example'); write it as "
         "'mailto:dmarc@example.com'"),
        ("mailto:dmarc@example.org!ten", "rua",
         "'mailto:dmarc@example.org!ten' has an invalid size limit 'ten'; use e.g. '!10m'"),
        (["mailto:a@example.org", "b@example.org"], "rua[1]",
         "'b@example.org' is not a mailto: URI; write it as 'mailto:b@example.org'"),
    ],
)  # fmt: skip
def test_bad_report_uris_are_refused(rua: Any, path: str, message: str) -> None:
    assert dmarc_error(policy="none", rua=rua) == f"bulkmail_domains[1].dmarc.{path}: {message}"


def test_bad_ruf_is_refused_like_rua() -> None:
    assert dmarc_error(policy="reject", ruf="forensic@example.org") == (
        "bulkmail_domains[1].dmarc.ruf: 'forensic@example.org' is not a mailto: URI; write it "
        "as 'mailto:forensic@example.org'"
    )


@pytest.mark.parametrize("pct", [101, -1, "half", True, 12.5])
def test_pct_must_be_a_percentage(pct: Any) -> None:
    message = dmarc_error(policy="quarantine", pct=pct)
    assert message.startswith("bulkmail_domains[1].dmarc.pct: ")
    assert message.endswith("is not a percentage from 0 to 100")


def test_pct_with_policy_none_is_refused() -> None:
    assert dmarc_error(policy="none", pct=50) == (
        "bulkmail_domains[1].dmarc.pct: applies only to policy quarantine or reject; remove pct "
        "or raise the policy"
    )


def test_alignment_modes_are_r_or_s() -> None:
    assert dmarc_error(policy="none", aspf="strict") == (
        "bulkmail_domains[1].dmarc.aspf: 'strict' is not one of r (relaxed), s (strict)"
    )


def test_an_unknown_dmarc_tag_is_refused() -> None:
    assert dmarc_error(policy="none", sp="reject") == (
        "bulkmail_domains[1].dmarc: unknown key(s) sp; known keys are policy, pct, rua, ruf, "
        "adkim, aspf (docs/model.md)"
    )


def test_parse_dmarc_accepts_numeric_strings_for_pct() -> None:
    assert parse_dmarc({"policy": "reject", "pct": "30"}, "d").pct == 30


# --- return path and SPF includes ----------------------------------------------------------


def test_a_return_path_outside_the_domain_is_refused() -> None:
    assert domain_error(0, return_path_domain="bounces.example.net") == (
        "bulkmail_domains[0].return_path_domain: 'bounces.example.net' is not 'example.com' or "
        "a subdomain of it, so SPF would not align with the From domain under DMARC; use e.g. "
        "'bounce.example.com'"
    )


def test_a_return_path_subdomain_with_strict_spf_alignment_is_refused() -> None:
    domains = domains_with(0)
    domains[0]["dmarc"]["aspf"] = "s"
    assert problem(inventory(variables(domains))) == (
        "bulkmail_domains[0].return_path_domain: 'bounce.example.com' does not align with "
        "'example.com' under strict SPF alignment (dmarc.aspf: s); set dmarc.aspf to r or "
        "return_path_domain to 'example.com'"
    )


def test_an_spf_include_written_as_a_mechanism_is_refused_with_the_fix() -> None:
    assert domain_error(0, spf_include=["include:amazonses.com"]) == (
        "bulkmail_domains[0].spf_include[0]: write the domain only: 'amazonses.com'"
    )


def test_a_malformed_spf_include_is_refused() -> None:
    assert domain_error(0, spf_include=["amazon ses.com"]) == (
        "bulkmail_domains[0].spf_include[0]: 'amazon ses.com' is not a valid domain name: label "
        "'amazon ses' may contain only letters, digits, hyphens and underscores"
    )


# --- pools ---------------------------------------------------------------------------------


def test_pools_parse_to_canonical_addresses() -> None:
    assert parse_ip_pools({"transactional": ["198.51.100.10"], "bulk": ["198.51.100.11"]}) == {
        "transactional": ("198.51.100.10",),
        "bulk": ("198.51.100.11",),
    }


def test_an_empty_pool_is_refused() -> None:
    assert pools_error({"transactional": ["198.51.100.10"], "bulk": []}) == (
        "bulkmail_ip_pools.bulk: is empty; list at least one address or remove the pool"
    )


@pytest.mark.parametrize("address", ["198.51.100.300", "2001:db8::1", "198.51.100.0/24", 7])
def test_an_invalid_pool_address_is_refused(address: Any) -> None:
    message = pools_error({"bulk": ["198.51.100.10", address]})
    assert message.startswith("bulkmail_ip_pools.bulk[1]: ")
    assert message.endswith("is not a valid IPv4 address (write e.g. '198.51.100.10')")


def test_a_repeated_pool_address_is_refused() -> None:
    assert pools_error({"bulk": ["198.51.100.10", "198.51.100.10"]}) == (
        "bulkmail_ip_pools.bulk[1]: 198.51.100.10 is listed twice in this pool"
    )


@pytest.mark.parametrize("raw", [None, {}, ["198.51.100.10"]])
def test_pools_must_be_a_non_empty_mapping(raw: Any) -> None:
    assert problem(inventory({**variables(), "bulkmail_ip_pools": raw})).startswith(
        "bulkmail_ip_pools: "
    )


# --- hosts and cross-checks ----------------------------------------------------------------


def test_a_pool_address_no_smtp_host_owns_is_refused() -> None:
    pools = {"bulk": ["198.51.100.10", "198.51.100.11", "198.51.100.12"]}
    inputs = inventory(variables(pools=pools), smtp=SMTP, dns=DNS)
    assert problem(inputs) == (
        "bulkmail_ip_pools.bulk[2]: 198.51.100.12 is not an address (bulkmail_public_ipv4 or "
        "bulkmail_extra_ipv4) of any smtp host (smtp1: 198.51.100.10; smtp2: 198.51.100.11); add "
        "it to the host that owns it or remove it from the pool"
    )


def test_an_smtp_host_without_a_hostname_is_refused() -> None:
    smtp = [{"inventory_hostname": "smtp9", "bulkmail_public_ipv4": "198.51.100.10"}]
    inputs = inventory(variables(pools={"bulk": ["198.51.100.10"]}), smtp=smtp, dns=DNS)
    assert problem(inputs) == (
        "hostvars['smtp9'].bulkmail_hostname: missing; every smtp host needs its FQDN and "
        "public address (MX, PTR, SPF, HELO)"
    )


def test_a_bad_host_address_is_named() -> None:
    smtp = [dict(SMTP[0], bulkmail_internal_ipv4="10.25.0.300")]
    inputs = inventory(variables(pools={"bulk": ["198.51.100.10"]}), smtp=smtp, dns=DNS)
    # Once, though the host is read as an smtp host and as a host of the inventory.
    assert problem(inputs) == (
        "hostvars['smtp1'].bulkmail_internal_ipv4: '10.25.0.300' is not a valid IPv4 address "
        "(write e.g. '198.51.100.10')"
    )


def test_two_hosts_with_one_hostname_are_refused() -> None:
    db = [{"inventory_hostname": "db1", "bulkmail_hostname": "mta1.example.com"}]
    assert problem(inventory(variables(), smtp=SMTP, dns=DNS, db=db)) == (
        "hostvars['db1'].bulkmail_hostname: 'mta1.example.com' is also the hostname of smtp1; "
        "give each host its own FQDN"
    )


def test_two_smtp_hosts_with_one_address_are_refused() -> None:
    smtp = [SMTP[0], dict(SMTP[1], bulkmail_public_ipv4="198.51.100.10")]
    inputs = inventory(variables(pools={"bulk": ["198.51.100.10"]}), smtp=smtp, dns=DNS)
    assert problem(inputs).startswith("hostvars['smtp2'].bulkmail_public_ipv4: ")


def test_every_problem_is_reported_at_once() -> None:
    domains = domains_with(1, dmarc={"policy": "block"})
    domains[0]["name"] = "Example.com"
    with pytest.raises(ModelErrors) as caught:
        build_model(variables(domains, {"bulk": []}))
    assert str(caught.value) == (
        "3 problems in the inventory model:\n"
        "- bulkmail_domains[0].name: 'Example.com' must be written in lower case: "
        "'example.com'\n"
        "- bulkmail_domains[1].dmarc.policy: 'block' is not one of none, quarantine, reject\n"
        "- bulkmail_ip_pools.bulk: is empty; list at least one address or remove the pool"
    )
    assert len(caught.value.errors) == 3


def test_model_errors_are_value_errors() -> None:
    assert issubclass(ModelError, ValueError)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "mta_sts",
            "enforce",
            "bulkmail_domains[1].mta_sts: 'enforce' is not a mapping such as {mode: testing}",
        ),
        (
            "mta_sts",
            {},
            "bulkmail_domains[1].mta_sts.mode: missing; set it to one of testing, enforce, none "
            "(start with testing)",
        ),
        (
            "mta_sts",
            {"mode": "strict"},
            "bulkmail_domains[1].mta_sts.mode: 'strict' is not one of testing, enforce, none",
        ),
        (
            "mta_sts",
            {"mode": "enforce", "max_age": 0},
            "bulkmail_domains[1].mta_sts.max_age: 0 (int) is not a number of seconds from 1 to "
            "31557600 (RFC 8461 3.2); e.g. 604800 for a week",
        ),
        (
            "mta_sts",
            {"mode": "testing", "maxage": 1},
            "bulkmail_domains[1].mta_sts: unknown key(s) maxage; known keys are mode, max_age "
            "(docs/model.md)",
        ),
        (
            "tls_rpt",
            {},
            "bulkmail_domains[1].tls_rpt.rua: missing; say where reports go, e.g. "
            "'mailto:tls-reports@<domain>'",
        ),
        (
            "tls_rpt",
            {"rua": "tls@example.com"},
            "bulkmail_domains[1].tls_rpt.rua: 'tls@example.com' is not a mailto: URI; write it as "
            "'mailto:tls@example.com'",
        ),
        (
            "tls_rpt",
            {"rua": ["mailto:tls@example.com!10m"]},
            "bulkmail_domains[1].tls_rpt.rua[0]: 'mailto:tls@example.com!10m': TLS-RPT takes no "
            "size limit; remove the '!...'",
        ),
    ],
)
def test_bad_mta_sts_and_tls_rpt(field: str, value: Any, message: str) -> None:
    assert domain_error(**{field: value}) == message


def test_mta_sts_and_tls_rpt_parsed() -> None:
    raw = copy.deepcopy(GOOD_DOMAINS[0])
    raw["mta_sts"] = {"mode": "enforce", "max_age": "86400"}
    raw["tls_rpt"] = {"rua": ["mailto:tls@example.com", "https://reports.example.com/tls"]}
    (domain,) = build_model(variables([raw])).domains
    assert (domain.mta_sts.mode, domain.mta_sts.max_age) == ("enforce", 86400)
    assert domain.tls_rpt.rua == ("mailto:tls@example.com", "https://reports.example.com/tls")
