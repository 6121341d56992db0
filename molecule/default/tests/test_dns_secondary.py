"""The secondary name server: TSIG-signed transfers from the primary, refused to anyone else,
the same serials, and answers while the primary is down.

dns1 is the primary (first dns host), dns2 the secondary (inventories/lab/hosts.yml). The
TSIG secret is the one the bind role generated into the lab's secret dir.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
from conftest import lab_host, read_secret

PRIMARY_PUBLIC, PRIMARY_INTERNAL = "198.51.100.53", "10.25.0.53"
SECONDARY_PUBLIC = "198.51.100.54"
KEY_NAME = "bulkmail-transfer"
ZONES = ["example.test", "shop.test", "100.51.198.in-addr.arpa"]

# Run inside bulkmail-providers ("the internet"): AXFR without the key, and with it.
AXFR_FROM_PROVIDERS = """
import json, sys
import dns.message, dns.query, dns.rcode, dns.tsigkeyring
zone, server, name, secret = sys.argv[1:5]
out = {}
for label, keyring in (("plain", None), ("tsig", dns.tsigkeyring.from_text({name: secret}))):
    query = dns.message.make_query(zone, "AXFR")
    if keyring:
        query.use_tsig(keyring, keyname=name, algorithm="hmac-sha256")
    try:
        response = dns.query.tcp(query, server, timeout=10)
        out[label] = dns.rcode.to_text(response.rcode()) + f" answers={len(response.answer)}"
    except Exception as error:  # a refused signed query may come back unsigned
        out[label] = f"{type(error).__name__}: {error}"
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def tsig_secret() -> str:
    # The role's default: the generated letters and digits, base64-encoded.
    return base64.b64encode(read_secret(f"bind-tsig-{KEY_NAME}").encode()).decode()


@pytest.fixture(scope="module")
def dns1() -> Any:
    return lab_host("dns1")


@pytest.fixture(scope="module")
def dns2() -> Any:
    return lab_host("dns2")


def soa_serial(server: str, zone: str) -> int | None:
    try:
        response = dns.query.udp(dns.message.make_query(zone, "SOA"), server, timeout=3)
    except dns.exception.Timeout:
        return None
    if response.rcode() != dns.rcode.NOERROR or not response.flags & dns.flags.AA:
        return None
    return next(
        r.serial for rrset in response.answer for r in rrset if rrset.rdtype == dns.rdatatype.SOA
    )


def test_secondary_transfers_with_the_key_from_its_address(dns2: Any, tsig_secret: str) -> None:
    key = f"hmac-sha256:{KEY_NAME}:{tsig_secret}"
    out = dns2.check_output(f"dig +noall +answer -y {key} @{PRIMARY_INTERNAL} example.test AXFR")
    types = [line.split()[3] for line in out.splitlines() if line.strip()]
    assert types[0] == "SOA" and types[-1] == "SOA", out
    assert {"NS", "MX", "TXT", "A"} <= set(types), out
    # Without the key, even the secondary's own address gets nothing.
    refused = dns2.run(f"dig +noall +answer @{PRIMARY_INTERNAL} example.test AXFR")
    assert "SOA" not in refused.stdout, refused.stdout


@pytest.mark.parametrize("server", [PRIMARY_PUBLIC, SECONDARY_PUBLIC])
def test_transfers_to_the_internet_are_refused(server: str, tsig_secret: str) -> None:
    providers = lab_host("providers")
    cmd = f"python3 - example.test {server} {KEY_NAME} {tsig_secret} <<'EOF'\n"
    out = json.loads(providers.check_output(cmd + AXFR_FROM_PROVIDERS + "EOF"))
    # Neither without the key nor with it: the primary wants a secondary's address too.
    assert out["plain"] == "REFUSED answers=0", out
    assert out["tsig"].startswith("REFUSED answers=0"), out


def test_secondary_serves_the_primarys_serials() -> None:
    deadline = time.monotonic() + 60  # NOTIFY makes it seconds; SOA refresh is the fallback
    while True:
        pairs = {z: (soa_serial(PRIMARY_PUBLIC, z), soa_serial(SECONDARY_PUBLIC, z)) for z in ZONES}
        if all(p is not None and p == s for p, s in pairs.values()) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert all(p is not None and p == s for p, s in pairs.values()), pairs


def test_secondary_answers_while_the_primary_is_stopped(dns1: Any) -> None:
    dns1.check_output("systemctl stop named")
    try:
        assert soa_serial(PRIMARY_PUBLIC, "example.test") is None
        response = dns.query.udp(
            dns.message.make_query("_dmarc.shop.test", "TXT"), SECONDARY_PUBLIC, timeout=5
        )
        assert response.rcode() == dns.rcode.NOERROR
        assert response.flags & dns.flags.AA, "the secondary answers with authority"
        texts = [b"".join(r.strings).decode() for rrset in response.answer for r in rrset]
        assert any(t.startswith("v=DMARC1;") for t in texts), texts
    finally:
        dns1.check_output("systemctl start named")
        deadline = time.monotonic() + 30
        while soa_serial(PRIMARY_PUBLIC, "example.test") is None:
            assert time.monotonic() < deadline, "named on dns1 did not come back"
            time.sleep(1)
