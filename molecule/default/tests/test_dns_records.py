"""The dns tier answers exactly the records the inventory model implies.

The expectation is computed by the same builders the bind role uses
(plugins/module_utils/dns/records.py), from the lab inventory and the DKIM key store,
and compared with what BIND answers to a stranger on the internet side.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
import yaml
from ansible_collections.bulkmail.infra.plugins.module_utils.adapters.key_store import (
    key_path,
    load_private_key,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.dkim.keys import public_key_b64
from ansible_collections.bulkmail.infra.plugins.module_utils.dns.records import build_zones
from ansible_collections.bulkmail.infra.plugins.module_utils.model.domains import parse_domains
from ansible_collections.bulkmail.infra.plugins.module_utils.model.hosts import (
    parse_dns_hosts,
    parse_hosts,
    parse_smtp_hosts,
)
from conftest import INVENTORY, SECRETS

DNS_PUBLIC = "198.51.100.53"
Answers = dict[tuple[str, str], set[str]]


def hostvars(members: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"inventory_hostname": name, **(v or {})} for name, v in members.items()]


@pytest.fixture(scope="module")
def expected(model: dict[str, Any], lab_model: Any) -> Answers:
    variables, groups = model["vars"], model["groups"]
    domains = parse_domains(variables["bulkmail_domains"])
    keys = {
        d.name: {
            s: public_key_b64(load_private_key(key_path(str(SECRETS / "dkim"), d.name, s)))
            for s in d.dkim_selectors
        }
        for d in domains
    }
    extra = yaml.safe_load((INVENTORY / "group_vars" / "dns.yml").read_text())["bind_extra_zones"]
    zones = build_zones(
        domains,
        variables["bulkmail_ip_pools"],
        parse_smtp_hosts(hostvars(groups["smtp"])),
        parse_dns_hosts(hostvars(groups["dns"])),
        parse_hosts(hostvars(groups["all"]), group="hosts"),
        keys,
        extra_zones=extra,
        web_hosts=parse_hosts(hostvars(groups["web"]), group="web"),
        # The MX are the receiving hosts (bulkmail_feedback.receivers), and the one-click
        # hosts point at the web hosts once the model has unsubscribe keys.
        mx_hosts=lab_model.receivers,
        unsubscribe=bool(variables.get("bulkmail_unsubscribe_keys")),
    )
    answers: Answers = defaultdict(set)
    for zone in zones:
        for record in zone["records"]:
            name = zone["name"] if record["name"] == "@" else f"{record['name']}.{zone['name']}"
            value = record["value"]
            text = "".join(value) if record["type"] == "TXT" else str(value)
            answers[(name.lower() + ".", record["type"])].add(normalise(record["type"], text))
    return answers


def normalise(rtype: str, text: str) -> str:
    if rtype in ("MX", "NS", "PTR", "CNAME"):
        return " ".join(part.lower().rstrip(".") for part in text.split())
    return text


def ask(name: str, rtype: str) -> set[str]:
    response = dns.query.udp(dns.message.make_query(name, rtype), DNS_PUBLIC, timeout=5)
    assert response.rcode() == dns.rcode.NOERROR, (name, rtype, dns.rcode.to_text(response.rcode()))
    found = set()
    for rrset in response.answer:
        if rrset.rdtype != dns.rdatatype.from_text(rtype):
            continue
        for rdata in rrset:
            if rtype == "TXT":
                found.add(b"".join(rdata.strings).decode())
            else:
                found.add(normalise(rtype, rdata.to_text()))
    return found


def test_every_record_the_model_implies_is_served(expected: Answers) -> None:
    assert expected, "the model implies no records at all"
    wrong = {key: (want, got) for key, want in expected.items() if (got := ask(*key)) != want}
    assert not wrong, wrong


@pytest.mark.parametrize("domain", ["example.test", "shop.test"])
def test_each_sending_domain_has_spf_dkim_dmarc_and_mx(expected: Answers, domain: str) -> None:
    txt = expected[(f"{domain}.", "TXT")]
    assert any(t.startswith("v=spf1 ") and "ip4:198.51.100.10" in t for t in txt)
    dkim = expected[(f"lab2026a._domainkey.{domain}.", "TXT")]
    assert any(t.startswith("v=DKIM1;") for t in dkim)
    assert any(t.startswith("v=DMARC1;") for t in expected[(f"_dmarc.{domain}.", "TXT")])
    assert expected[(f"{domain}.", "MX")]
    assert ask(f"{domain}.", "TXT") == txt


@pytest.mark.parametrize("last_octet", ["10", "11", "12"])  # smtp1 (both lanes), smtp2
def test_ptr_of_every_sending_address_confirms_forward(last_octet: str) -> None:
    (name,) = ask(f"{last_octet}.100.51.198.in-addr.arpa.", "PTR")
    assert f"198.51.100.{last_octet}" in ask(name + ".", "A")
