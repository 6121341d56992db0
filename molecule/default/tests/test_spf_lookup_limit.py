"""An SPF include chain past 10 DNS lookups, and a PTR that does not forward-confirm, both
published in the lab's DNS, fail the checker with their reasons.

The throwaway domain spfchain.test is served for the length of the test the way the lab
serves any zone that is not a sending domain: as one more of the dns tier's
`bind_extra_zones` (the inventory's own, plus this one), converged with playbooks/dns.yml.
Its SPF record includes three services whose own records include further ones: 12 lookups
counting the nested ones, which receivers answer with permerror. Afterwards the dns tier is
converged with the inventory's zones again, which removes the zone from both name servers.
The same converge serves a throwaway reverse zone in which an address (documentation range
203.0.113.0/24; only DNS data, no traffic) has a PTR to mta1.example.test, whose A records
do not include it: what an operator sees after renumbering without updating the PTR.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from ansible_collections.bulkmail.infra.plugins.module_utils.adapters.dns_lookup import (
    ask_authoritative,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.dns.report import LookupFailed
from conftest import INVENTORY, REPO, ansible_playbook, playbook_failures

ZONE = "spfchain.test"
POOL_IP = "198.51.100.10"
NAMESERVERS = ("198.51.100.53", "198.51.100.54")

# owner (relative to ZONE) -> SPF record; the lookups each record adds are in the comments.
SPF = {
    "@": f"v=spf1 ip4:{POOL_IP} include:_spf.crm.{ZONE} include:_spf.news.{ZONE} "
    f"include:_spf.help.{ZONE} mx -all",  # 3 includes + mx = 4
    "_spf.crm": f"v=spf1 include:_a.crm.{ZONE} include:_b.crm.{ZONE} -all",  # 2
    "_a.crm": "v=spf1 ip4:192.0.2.0/26 -all",  # 0
    "_b.crm": f"v=spf1 ip4:192.0.2.64/26 a:out.crm.{ZONE} -all",  # 1
    "_spf.news": f"v=spf1 include:_a.news.{ZONE} mx:news.{ZONE} -all",  # 2
    "_a.news": "v=spf1 ip4:192.0.2.128/26 -all",  # 0
    "_spf.help": f"v=spf1 include:_a.help.{ZONE} -all",  # 1
    "_a.help": f"v=spf1 ip4:192.0.2.192/26 include:_b.help.{ZONE} -all",  # 1
    "_b.help": "v=spf1 ip4:203.0.113.0/28 a -all",  # 1
}
LOOKUPS = 12
STRAY_IP = "203.0.113.7"
REVERSE_ZONE = "113.0.203.in-addr.arpa"


def lab_extra_zones() -> list[dict[str, Any]]:
    """The inventory's bind_extra_zones (group_vars/dns.yml), which -e would otherwise replace."""
    return yaml.safe_load((INVENTORY / "group_vars" / "dns.yml").read_text())["bind_extra_zones"]


def chain_zone() -> dict[str, Any]:
    records = [{"name": owner, "type": "TXT", "value": text} for owner, text in SPF.items()]
    records += [
        {"name": "@", "type": "MX", "value": f"10 out.crm.{ZONE}."},
        {"name": "news", "type": "MX", "value": f"10 out.crm.{ZONE}."},
        {"name": "out.crm", "type": "A", "value": "192.0.2.70"},
    ]
    return {"name": ZONE, "records": records}


def converge_dns(extra_zones: list[dict[str, Any]] | None) -> None:
    extra = None if extra_zones is None else {"bind_extra_zones": extra_zones}
    # Only the zones change: the tier's firewall and restart policy are left out (16 s a run).
    run = ansible_playbook("playbooks/dns.yml", "--skip-tags", "firewall,restart_on_failure",
                           extra_vars=extra)  # fmt: skip
    assert run.returncode == 0, playbook_failures(run.stdout) or run.stdout[-4000:] + run.stderr


def stray_reverse_zone() -> dict[str, Any]:
    return {
        "name": REVERSE_ZONE,
        "records": [{"name": "7", "type": "PTR", "value": "mta1.example.test."}],
    }


@pytest.fixture(scope="module")
def spf_chain() -> Iterator[str]:
    converge_dns([*lab_extra_zones(), chain_zone(), stray_reverse_zone()])
    try:
        yield ZONE
    finally:
        converge_dns(None)
        assert [ns for ns in NAMESERVERS if serves(ns, ZONE)] == [], f"{ZONE} is still served"
        # BIND keeps serving 113.0.203.in-addr.arpa as one of its built-in empty zones
        # (RFC 6303, documentation ranges): what must be gone is the stray PTR.
        assert [ns for ns in NAMESERVERS if stray_ptr(ns)] == [], "the stray PTR is still served"


def stray_ptr(nameserver: str) -> bool:
    try:
        return bool(ask_authoritative(nameserver, f"7.{REVERSE_ZONE}", "PTR")[0])
    except LookupFailed:  # REFUSED or not authoritative: not served
        return False


def serves(nameserver: str, zone: str) -> bool:
    try:
        return bool(ask_authoritative(nameserver, zone, "SOA")[0])
    except LookupFailed:  # REFUSED or not authoritative: not served
        return False


def check_dns(domain: str, pool_ip: str = POOL_IP) -> tuple[int, dict[str, dict[str, Any]]]:
    run = subprocess.run(
        [str(REPO / ".venv" / "bin" / "bulkmail"), "check-dns", "--json", "--nameserver",
         NAMESERVERS[0], "--pool-ip", pool_ip, domain],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    report = json.loads(run.stdout)
    (result,) = report["domains"]
    return run.returncode, {check["name"]: check for check in result["checks"]}


def test_an_include_chain_past_ten_lookups_fails_with_the_count_and_a_fix(
    spf_chain: str,
) -> None:
    for ns in NAMESERVERS:  # the secondary has it too, by NOTIFY and transfer
        texts, _ttl = ask_authoritative(ns, spf_chain, "TXT")
        assert texts == [SPF["@"]], ns

    code, checks = check_dns(spf_chain)

    assert code == 1
    assert checks["spf.record"]["status"] == "pass"
    assert checks["spf.syntax"]["status"] == "pass"
    assert checks["spf.pool_ips"]["status"] == "pass"
    lookups = checks["spf.lookups"]
    assert lookups["status"] == "fail"
    assert lookups["details"]["lookups"] == LOOKUPS
    assert lookups["reason"].startswith(
        f"the SPF record at {ZONE} needs {LOOKUPS} DNS lookups, counting nested includes "
        f"(include:_spf.crm.{ZONE} (in {ZONE}), include:_a.crm.{ZONE} (in _spf.crm.{ZONE}),"
    )
    assert lookups["reason"].endswith(
        "RFC 7208 allows at most 10, beyond which receivers return permerror and SPF fails"
    )
    assert lookups["fix"] == (
        "Replace includes with the ip4: ranges they stand for, or drop includes of services "
        "you no longer send through, until 10 or fewer remain."
    )


def test_a_ptr_that_does_not_forward_confirm_fails_with_both_names(spf_chain: str) -> None:
    del spf_chain  # the fixture serves the stray reverse zone too
    code, checks = check_dns("example.test", pool_ip=STRAY_IP)
    assert code == 1
    ptr = checks[f"ptr.{STRAY_IP}"]
    assert ptr["status"] == "fail"
    assert ptr["reason"].startswith(
        f"{STRAY_IP} has PTR mta1.example.test, but mta1.example.test resolves to "
    )
    assert f"not {STRAY_IP}: the reverse DNS is not forward-confirmed" in ptr["reason"]
    assert ptr["fix"].startswith(f"Set the A record of mta1.example.test to {STRAY_IP}")
