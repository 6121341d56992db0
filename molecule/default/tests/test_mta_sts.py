"""MTA-STS and TLS-RPT as a sender sees them: the TXT records, the policy over HTTPS from the
web tier, and the checker passing them.

The policy is fetched from bulkmail-providers ("the internet") at web1's public address
with the policy host's name, as a sending MTA would after resolving mta-sts.<domain>.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from typing import Any

import dns.message
import dns.query
import pytest
from conftest import INVENTORY, REPO, SECRETS, lab_host

DNS_PUBLIC = "198.51.100.53"
WEB_PUBLIC = "198.51.100.80"
# The lab's sending domains, each with a policy (inventories/lab/group_vars/all/bulkmail.yml).
STS_DOMAINS = ["example.test", "shop.test", "agency.test", "partner.test"]

# Run inside bulkmail-providers: GET the policy with the policy host's name (SNI and Host).
FETCH = """
import json, socket, ssl, sys, http.client
address, host = sys.argv[1:3]
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE  # the lab's certificate is self-signed


class Pinned(http.client.HTTPSConnection):
    def connect(self):
        sock = socket.create_connection((address, 443), timeout=10)
        self.sock = context.wrap_socket(sock, server_hostname=host)


connection = Pinned(host, 443, context=context)
connection.request("GET", "/.well-known/mta-sts.txt")
response = connection.getresponse()
print(json.dumps({"status": response.status, "type": response.getheader("Content-Type"),
                  "body": response.read().decode()}))
"""


def txt(name: str) -> list[str]:
    response = dns.query.udp(dns.message.make_query(name, "TXT"), DNS_PUBLIC, timeout=5)
    return [b"".join(r.strings).decode() for rrset in response.answer for r in rrset]


def sts_domains(model: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for d in model["vars"]["bulkmail_domains"] if d.get("mta_sts")]


def test_the_lab_publishes_mta_sts_for_its_domains(model: dict[str, Any]) -> None:
    assert {d["name"] for d in sts_domains(model)} == set(STS_DOMAINS)


@pytest.mark.parametrize("name", STS_DOMAINS)
def test_policy_is_served_and_matches_the_txt_id(
    model: dict[str, Any], lab_model: Any, name: str
) -> None:
    domain = next(d for d in sts_domains(model) if d["name"] == name)
    (record,) = [t for t in txt(f"_mta-sts.{name}") if t.startswith("v=STSv1")]
    sts_id = record.split("id=", 1)[1].strip()

    cmd = f"python3 - {WEB_PUBLIC} mta-sts.{name} <<'EOF'\n{FETCH}EOF"
    got = json.loads(lab_host("providers").check_output(cmd))
    assert got["status"] == 200, got
    assert got["type"].startswith("text/plain"), got
    policy = got["body"]
    assert hashlib.sha256(policy.encode()).hexdigest()[:20] == sts_id, (policy, record)

    lines = policy.split("\r\n")
    assert lines[0] == "version: STSv1"
    assert f"mode: {domain['mta_sts']['mode']}" in lines
    # The policy's mx lines are the MX: the receiving hosts (a graveyard receives nothing).
    mx_hosts = {str(host.hostname) for host in lab_model.receivers}
    assert {line[4:] for line in lines if line.startswith("mx: ")} == mx_hosts
    assert f"max_age: {domain['mta_sts']['max_age']}" in lines


@pytest.mark.parametrize("name", STS_DOMAINS)
def test_tls_rpt_record_names_the_models_rua(model: dict[str, Any], name: str) -> None:
    domain = next(d for d in sts_domains(model) if d["name"] == name)
    assert txt(f"_smtp._tls.{name}") == [f"v=TLSRPTv1; rua={domain['tls_rpt']['rua']}"]


def test_the_checker_passes_mta_sts_and_tls_rpt_as_required() -> None:
    run = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "bulkmail"),
            "check-dns",
            "--json",
            "--inventory",
            str(INVENTORY),
            "--key-store",
            str(SECRETS / "dkim"),
            "--nameserver",
            DNS_PUBLIC,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)
    domains = report["domains"] if isinstance(report, dict) else report
    for domain in domains:
        checks = {c["name"]: c for c in domain["checks"]}
        for name in ("mta_sts", "tls_rpt"):
            assert checks[name]["required"] is True, checks[name]
            assert checks[name]["status"] == "pass", checks[name]
