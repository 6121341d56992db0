"""Record builders: the SPF, DKIM, DMARC and zone data a receiver or named will see."""

from __future__ import annotations

import base64
import random
from typing import Any

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.dns.parsers import count_spf_lookups
from ansible_collections.bulkmail.infra.plugins.module_utils.dns.records import (
    build_zones,
    dkim_key_type,
    dkim_txt_chunks,
    mta_sts_policies,
    mta_sts_policy_id,
    render_dmarc_record,
    render_mta_sts_policy,
    render_spf_record,
    render_tls_rpt_record,
    reverse_zone_name,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.model.domains import (
    MtaSts,
    TlsRpt,
    parse_domains,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.model.errors import ModelError
from ansible_collections.bulkmail.infra.plugins.module_utils.model.hosts import (
    parse_dns_hosts,
    parse_hosts,
    parse_smtp_hosts,
)

# A 2048-bit RSA SubjectPublicKeyInfo is 294 bytes: fixed bytes stand in for a real key.
RSA_KEY = base64.b64encode(bytes([0x30, 0x82, 0x01, 0x22]) + bytes(range(256)) + bytes(34))
RSA_B64 = RSA_KEY.decode()
ED25519_B64 = base64.b64encode(bytes(range(32))).decode()


# --- SPF -----------------------------------------------------------------------------------


def test_spf_lists_pool_addresses_merged_into_cidr_blocks() -> None:
    record = render_spf_record(["198.51.100.11", "198.51.100.10", "198.51.100.12"])
    assert record == "v=spf1 ip4:198.51.100.10/31 ip4:198.51.100.12 -all"


def test_spf_includes_relays_after_the_addresses() -> None:
    record = render_spf_record(["198.51.100.10"], ["amazonses.com", "_spf.google.com"])
    assert record == "v=spf1 ip4:198.51.100.10 include:amazonses.com include:_spf.google.com -all"


def test_spf_all_qualifier_can_be_soft() -> None:
    assert render_spf_record(["198.51.100.10"], all_qualifier="~") == (
        "v=spf1 ip4:198.51.100.10 ~all"
    )


def test_spf_is_the_same_whatever_the_address_order() -> None:
    addresses = [f"198.51.100.{n}" for n in range(10, 40)]
    shuffled = addresses[:]
    random.Random(1).shuffle(shuffled)
    assert render_spf_record(addresses) == render_spf_record(shuffled)


def test_spf_with_ten_lookups_is_accepted() -> None:
    includes = [f"relay{n}.example.net" for n in range(10)]
    assert count_spf_lookups(render_spf_record(["198.51.100.10"], includes)) == 10


def test_spf_over_ten_lookups_is_refused() -> None:
    includes = [f"relay{n}.example.net" for n in range(10)]
    with pytest.raises(ModelError) as caught:
        render_spf_record(["198.51.100.10"], includes, mechanisms=["mx"])
    terms = ", ".join(f"include:relay{n}.example.net" for n in range(10))
    assert str(caught.value) == (
        f"the SPF record needs 11 DNS lookups ({terms}, mx); RFC 7208 allows at most 10, "
        "beyond which receivers fail SPF (permerror): remove includes or publish those "
        "senders' addresses as ip4"
    )


@pytest.mark.parametrize(
    ("record", "lookups"),
    [
        ("v=spf1 ip4:192.0.2.1 ip6:2001:db8::1 -all", 0),
        ("v=spf1 a mx ptr -all", 3),
        ("v=spf1 a/24 mx:mail.example.com/28 ~all", 2),
        ("v=spf1 +include:a.example -exists:%{i}.b.example ?all", 2),
        ("v=spf1 ip4:192.0.2.1 redirect=_spf.example.com", 1),
        ("v=spf1 -all exp=explain.example.com", 0),
        ("V=SPF1 INCLUDE:a.example MX -ALL", 2),
    ],
)
def test_spf_lookup_counting_follows_rfc_7208(record: str, lookups: int) -> None:
    assert count_spf_lookups(record) == lookups


def test_a_non_spf_record_is_not_counted() -> None:
    with pytest.raises(ModelError, match="is not an SPF record"):
        count_spf_lookups("v=DMARC1; p=none")


def test_spf_refuses_a_bad_address() -> None:
    with pytest.raises(ModelError) as caught:
        render_spf_record(["198.51.100.300"])
    assert str(caught.value) == (
        "ip4: '198.51.100.300' is not an IPv4 address or network (write e.g. '198.51.100.10')"
    )


# --- DKIM ----------------------------------------------------------------------------------


def test_dkim_rsa_record_is_split_into_255_byte_strings() -> None:
    chunks = dkim_txt_chunks(RSA_B64, "rsa")
    assert "".join(chunks) == f"v=DKIM1; k=rsa; p={RSA_B64}"
    assert [len(chunk.encode()) for chunk in chunks] == [255, len(chunks[-1])]
    assert len(chunks[-1]) <= 255


def test_dkim_short_record_is_one_string() -> None:
    assert dkim_txt_chunks(ED25519_B64, "ed25519") == [f"v=DKIM1; k=ed25519; p={ED25519_B64}"]


def test_dkim_key_whitespace_from_pem_wrapping_is_ignored() -> None:
    wrapped = "\n".join(RSA_B64[i : i + 64] for i in range(0, len(RSA_B64), 64))
    assert dkim_txt_chunks(wrapped) == dkim_txt_chunks(RSA_B64)


def test_dkim_key_type_is_recognised_from_the_key() -> None:
    assert dkim_key_type(RSA_B64) == "rsa"
    assert dkim_key_type(ED25519_B64) == "ed25519"


@pytest.mark.parametrize(
    ("key", "key_type", "message"),
    [
        ("not base64!", "rsa", "public_key: is not valid base64"),
        ("", "rsa", "public_key: missing; pass the base64 public key"),
        (RSA_B64, "ed25519",
         "public_key: an ed25519 DKIM key is the raw 32-byte public key (RFC 8463), not 294 "
         "bytes"),
        (ED25519_B64, "rsa",
         "public_key: an rsa DKIM key is a DER SubjectPublicKeyInfo (base64 of the DER)"),
        (RSA_B64, "dsa", "key_type: 'dsa' is not one of rsa, ed25519"),
    ],
)  # fmt: skip
def test_bad_dkim_keys_are_refused(key: str, key_type: str, message: str) -> None:
    with pytest.raises(ModelError) as caught:
        dkim_txt_chunks(key, key_type)
    assert str(caught.value) == message


# --- DMARC ---------------------------------------------------------------------------------


def test_dmarc_minimal_record() -> None:
    assert render_dmarc_record({"policy": "none"}) == "v=DMARC1; p=none"


def test_dmarc_full_record_in_rfc_order() -> None:
    record = render_dmarc_record(
        {
            "policy": "quarantine",
            "pct": 25,
            "rua": ["mailto:a@example.com", "mailto:b@example.net!10m"],
            "ruf": "mailto:f@example.com",
            "adkim": "s",
            "aspf": "s",
        }
    )
    assert record == (
        "v=DMARC1; p=quarantine; pct=25; rua=mailto:a@example.com,mailto:b@example.net!10m; "
        "ruf=mailto:f@example.com; adkim=s; aspf=s"
    )


def test_dmarc_defaults_are_not_written() -> None:
    record = render_dmarc_record({"policy": "reject", "pct": 100, "adkim": "r", "aspf": "r"})
    assert record == "v=DMARC1; p=reject"


def test_dmarc_invalid_policy_is_refused() -> None:
    with pytest.raises(ModelError) as caught:
        render_dmarc_record({"policy": "block"})
    assert str(caught.value) == "dmarc.policy: 'block' is not one of none, quarantine, reject"


# --- zones ---------------------------------------------------------------------------------

DOMAINS = [
    {
        "name": "example.com",
        "dkim_selectors": ["s2026b", "s2026a"],
        "dmarc": {"policy": "reject", "rua": "mailto:dmarc@example.com"},
        "return_path_domain": "bounce.example.com",
        "spf_include": ["amazonses.com"],
    },
    {"name": "shop.example.org", "dkim_selectors": ["s1"], "dmarc": {"policy": "none"}},
]
SMTP = [
    {"inventory_hostname": "smtp1", "bulkmail_hostname": "mta1.example.com",
     "bulkmail_public_ipv4": "198.51.100.10"},
    {"inventory_hostname": "smtp2", "bulkmail_hostname": "mta2.example.com",
     "bulkmail_public_ipv4": "203.0.113.9"},
]  # fmt: skip
DNS = [
    {"inventory_hostname": "dns1", "bulkmail_hostname": "ns1.example.com",
     "bulkmail_public_ipv4": "198.51.100.53"},
]  # fmt: skip
OTHERS = [
    {"inventory_hostname": "db1", "bulkmail_hostname": "db1.example.com",
     "bulkmail_public_ipv4": "198.51.100.5"},
    {"inventory_hostname": "web1", "bulkmail_hostname": "web1.elsewhere.net",
     "bulkmail_public_ipv4": "198.51.100.80"},
    {"inventory_hostname": "client"},
]  # fmt: skip
KEYS = {
    "example.com": {"s2026a": RSA_B64, "s2026b": ED25519_B64},
    "shop.example.org": {"s1": RSA_B64},
}
POOLS = {"default": ["198.51.100.10", "203.0.113.9"]}


_DEFAULT = object()  # a sentinel: keys=None is a case of its own (no keys at all)


def zones(domains: Any = _DEFAULT, keys: Any = _DEFAULT, **kwargs: Any) -> list[dict[str, Any]]:
    domains = DOMAINS if domains is _DEFAULT else domains
    keys = KEYS if keys is _DEFAULT else keys
    smtp = parse_smtp_hosts(kwargs.pop("smtp", SMTP))
    return build_zones(
        parse_domains(domains),
        POOLS,
        smtp,
        parse_dns_hosts(kwargs.pop("dns", DNS)),
        parse_hosts(OTHERS, group="hosts"),
        keys,
        **kwargs,
    )


def by_name(result: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {zone["name"]: zone for zone in result}


def rows(zone: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (r["name"], r["type"], "".join(r["value"]) if r["type"] == "TXT" else r["value"])
        for r in zone["records"]
    ]


def test_zones_are_domains_then_reverse_zones_then_extra_zones() -> None:
    extra = [{"name": "gmail.test", "records": [{"name": "@", "type": "MX",
              "value": "5 gmail-smtp-in.l.google.test."}]}]  # fmt: skip
    result = zones(extra_zones=extra)
    assert [(z["name"], z["kind"]) for z in result] == [
        ("example.com", "domain"),
        ("shop.example.org", "domain"),
        ("100.51.198.in-addr.arpa", "reverse"),
        ("113.0.203.in-addr.arpa", "reverse"),
        ("gmail.test", "extra"),
    ]


def test_a_sending_domain_zone_has_every_record_in_dns_canonical_order() -> None:
    zone = by_name(zones())["example.com"]
    spf = "v=spf1 ip4:198.51.100.10 ip4:203.0.113.9 include:amazonses.com -all"
    assert rows(zone) == [
        ("@", "NS", "ns1.example.com."),
        ("@", "MX", "10 mta1.example.com."),
        ("@", "MX", "10 mta2.example.com."),
        ("@", "TXT", spf),
        ("_dmarc", "TXT", "v=DMARC1; p=reject; rua=mailto:dmarc@example.com"),
        ("s2026a._domainkey", "TXT", f"v=DKIM1; k=rsa; p={RSA_B64}"),
        ("s2026b._domainkey", "TXT", f"v=DKIM1; k=ed25519; p={ED25519_B64}"),
        ("bounce", "MX", "10 mta1.example.com."),
        ("bounce", "MX", "10 mta2.example.com."),
        ("bounce", "TXT", spf),
        ("db1", "A", "198.51.100.5"),
        ("mta1", "A", "198.51.100.10"),
        ("mta2", "A", "203.0.113.9"),
        ("ns1", "A", "198.51.100.53"),
    ]
    assert {r["ttl"] for r in zone["records"]} == {3600}
    assert zone["soa"] == {
        "mname": "ns1.example.com.",
        "rname": "hostmaster.example.com.",
        "refresh": 7200,
        "retry": 900,
        "expire": 1209600,
        "minimum": 300,
    }


def test_long_txt_values_are_lists_of_255_byte_strings() -> None:
    zone = by_name(zones())["example.com"]
    dkim = next(r for r in zone["records"] if r["name"] == "s2026a._domainkey")
    assert isinstance(dkim["value"], list)
    assert all(len(chunk.encode()) <= 255 for chunk in dkim["value"])
    assert len(dkim["value"]) == 2


def test_hosts_outside_every_zone_get_no_a_record() -> None:
    everything = [row for zone in zones() for row in rows(zone)]
    assert not any("198.51.100.80" in row[2] for row in everything)


def test_reverse_zones_hold_a_ptr_per_smtp_host() -> None:
    result = by_name(zones())
    assert rows(result["100.51.198.in-addr.arpa"]) == [
        ("@", "NS", "ns1.example.com."),
        ("10", "PTR", "mta1.example.com."),
    ]
    assert rows(result["113.0.203.in-addr.arpa"]) == [
        ("@", "NS", "ns1.example.com."),
        ("9", "PTR", "mta2.example.com."),
    ]


def test_reverse_zones_can_be_left_out() -> None:
    assert [z["kind"] for z in zones(reverse_zones=False)] == ["domain", "domain"]


def test_reverse_zone_name_is_the_slash_24() -> None:
    assert reverse_zone_name("198.51.100.10") == "100.51.198.in-addr.arpa"


def test_zones_are_deterministic() -> None:
    assert zones() == zones()
    shuffled_smtp = list(reversed(SMTP))
    assert (
        by_name(zones(smtp=shuffled_smtp))["example.com"]["records"]
        == (by_name(zones())["example.com"]["records"])
    )


def test_soa_and_ttl_can_be_overridden() -> None:
    zone = zones(soa={"rname": "dns.admin@example.com", "minimum": 60}, ttl=600)[0]
    assert zone["soa"]["rname"] == "dns\\.admin.example.com."
    assert zone["soa"]["minimum"] == 60
    assert zone["ttl"] == 600
    assert {r["ttl"] for r in zone["records"]} == {600}


def test_a_missing_dkim_key_names_the_selector_and_the_fix() -> None:
    keys = {"example.com": {"s2026b": ED25519_B64}, "shop.example.org": {"s1": RSA_B64}}
    with pytest.raises(ModelError) as caught:
        zones(keys=keys)
    assert str(caught.value) == (
        "bulkmail_domains[0].dkim_selectors[1]: no public key for s2026a._domainkey.example.com "
        "in bulkmail_dkim_public_keys; run the bulkmail.infra.dkim_keys role first"
    )


def test_a_broken_dkim_key_names_where_it_came_from() -> None:
    keys = dict(KEYS, **{"example.com": {"s2026a": "!!", "s2026b": ED25519_B64}})
    with pytest.raises(ModelError) as caught:
        zones(keys=keys)
    assert str(caught.value) == (
        "bulkmail_dkim_public_keys['example.com']['s2026a']: is not valid base64"
    )


def test_without_keys_the_dkim_records_are_left_out() -> None:
    zone = by_name(zones(keys=None))["example.com"]
    assert not [r for r in zone["records"] if "_domainkey" in r["name"]]


def test_spf_over_ten_lookups_names_the_domain() -> None:
    domains = [dict(DOMAINS[1], spf_include=[f"r{n}.example.net" for n in range(11)])]
    with pytest.raises(ModelError) as caught:
        zones(domains=domains)
    assert str(caught.value).startswith(
        "bulkmail_domains[0].spf_include: the SPF record needs 11 DNS lookups (include:r0."
    )


def test_a_nested_sending_domain_is_delegated_from_its_parent() -> None:
    domains = [
        {"name": "example.com", "dkim_selectors": ["s1"], "dmarc": {"policy": "none"}},
        {"name": "news.example.com", "dkim_selectors": ["s1"], "dmarc": {"policy": "none"}},
    ]
    keys = {"example.com": {"s1": RSA_B64}, "news.example.com": {"s1": RSA_B64}}
    dns = [dict(DNS[0], bulkmail_hostname="ns1.news.example.com")]
    result = by_name(zones(domains=domains, keys=keys, dns=dns, reverse_zones=False))
    parent = rows(result["example.com"])
    assert ("news", "NS", "ns1.news.example.com.") in parent
    assert ("ns1.news", "A", "198.51.100.53") in parent  # glue
    child = rows(result["news.example.com"])
    assert ("@", "NS", "ns1.news.example.com.") in child
    assert ("ns1", "A", "198.51.100.53") in child
    assert not [row for row in parent if row[0].startswith("_dmarc.news")]


def test_extra_zones_get_soa_ns_and_checked_records() -> None:
    extra = [
        {
            "name": "google.test",
            "records": [
                {"name": "gmail-smtp-in.l", "type": "a", "value": "198.51.100.25"},
                {"name": "google.test.", "type": "TXT", "value": "v=spf1 -all"},
            ],
        }
    ]
    zone = by_name(zones(extra_zones=extra))["google.test"]
    assert rows(zone) == [
        ("@", "NS", "ns1.example.com."),
        ("@", "TXT", "v=spf1 -all"),
        ("gmail-smtp-in.l", "A", "198.51.100.25"),
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([{"name": "example.com", "records": []}],
         "bind_extra_zones[0].name: 'example.com' is already served (a sending domain, a reverse "
         "zone or an extra zone listed before); its records come from the model, remove it "
         "here"),
        ([{"name": "x.test", "records": [{"name": "@", "type": "SPF", "value": "v=spf1"}]}],
         "bind_extra_zones[0].records[0].type: 'SPF' is not one of NS, MX, A, AAAA, CNAME, TXT, "
         "SRV, CAA, PTR"),
        ([{"name": "x.test", "records": [{"name": "mx", "type": "A", "value": "198.51.100"}]}],
         "bind_extra_zones[0].records[0].value: '198.51.100' is not a valid IPv4 address "
         "(write e.g. '198.51.100.10')"),
        ([{"name": "x.test", "records": [{"name": "@", "type": "MX", "value": "mx.x.test."}]}],
         "bind_extra_zones[0].records[0].value: 'mx.x.test.' is not '<preference> <host>', "
         "e.g. '10 mx.example.com.'"),
        ([{"name": "x.test", "records": [{"name": "a.other.test.", "type": "A",
                                          "value": "198.51.100.1"}]}],
         "bind_extra_zones[0].records[0].name: 'a.other.test.' is outside zone 'x.test'; write "
         "a relative name"),
        ([{"name": "x.test", "records": [{"name": "@", "type": "A"}]}],
         "bind_extra_zones[0].records[0].value: missing"),
    ],
)  # fmt: skip
def test_bad_extra_zones_are_refused_by_path(extra: Any, message: str) -> None:
    with pytest.raises(ModelError) as caught:
        zones(extra_zones=extra)
    assert str(caught.value) == message


def test_no_dns_host_is_refused() -> None:
    with pytest.raises(ModelError) as caught:
        zones(dns=[])
    assert str(caught.value) == (
        "groups['dns']: is empty; the zones need at least one dns host for NS and SOA"
    )


def test_two_different_spf_records_at_one_name_are_refused() -> None:
    domains = [
        dict(DOMAINS[0], return_path_domain="news.example.com"),
        {"name": "news.example.com", "dkim_selectors": ["s1"], "dmarc": {"policy": "none"}},
    ]
    keys = dict(KEYS, **{"news.example.com": {"s1": RSA_B64}})
    with pytest.raises(ModelError) as caught:
        zones(domains=domains, keys=keys)
    assert "two different SPF records would be published at news.example.com" in str(caught.value)


# --- MTA-STS and TLS-RPT -------------------------------------------------------------------

WEB = parse_hosts(OTHERS[1:2], group="web")
STS_DOMAIN = {
    "name": "example.com",
    "dkim_selectors": ["s2026a"],
    "dmarc": {"policy": "none"},
    "mta_sts": {"mode": "enforce", "max_age": 86400},
    "tls_rpt": {"rua": "mailto:tls@example.com"},
}


def test_mta_sts_policy_lists_the_mx_hosts_with_crlf() -> None:
    policy = render_mta_sts_policy(
        MtaSts("testing", 604800), ["mta2.example.com.", "MTA1.example.com"]
    )
    assert policy == (
        "version: STSv1\r\nmode: testing\r\nmx: mta1.example.com\r\nmx: mta2.example.com\r\n"
        "max_age: 604800\r\n"
    )


def test_mta_sts_policy_without_mx_is_refused() -> None:
    with pytest.raises(ModelError) as caught:
        render_mta_sts_policy(MtaSts("enforce"), [])
    assert (
        str(caught.value)
        == "mta_sts: no MX host to list in the policy; add a host to the smtp group"
    )


def test_mta_sts_id_follows_the_policy_content() -> None:
    one = render_mta_sts_policy(MtaSts("testing"), ["mta1.example.com"])
    two = render_mta_sts_policy(MtaSts("enforce"), ["mta1.example.com"])
    assert mta_sts_policy_id(one) != mta_sts_policy_id(two)
    assert mta_sts_policy_id(one).isalnum() and len(mta_sts_policy_id(one)) == 20


def test_tls_rpt_record() -> None:
    rua = ("mailto:tls@example.com", "https://reports.example.com/v1")
    assert render_tls_rpt_record(TlsRpt(rua)) == (
        "v=TLSRPTv1; rua=mailto:tls@example.com,https://reports.example.com/v1"
    )


def test_zone_publishes_mta_sts_and_tls_rpt() -> None:
    zone = by_name(zones([STS_DOMAIN], web_hosts=WEB))["example.com"]
    (policy,) = mta_sts_policies(parse_domains([STS_DOMAIN]), parse_smtp_hosts(SMTP))
    assert policy["host"] == "mta-sts.example.com"
    assert "mode: enforce\r\n" in policy["policy"] and "max_age: 86400\r\n" in policy["policy"]
    assert ("_mta-sts", "TXT", f"v=STSv1; id={policy['id']}") in rows(zone)
    assert ("mta-sts", "A", "198.51.100.80") in rows(zone)
    assert ("_smtp._tls", "TXT", "v=TLSRPTv1; rua=mailto:tls@example.com") in rows(zone)


def test_mta_sts_without_a_web_host_is_refused() -> None:
    with pytest.raises(ModelError) as caught:
        zones([STS_DOMAIN])
    assert str(caught.value) == (
        "bulkmail_domains[0].mta_sts: needs an smtp host (the policy's mx) and a web host to "
        "serve https://mta-sts.example.com/.well-known/mta-sts.txt; add them or remove mta_sts"
    )
