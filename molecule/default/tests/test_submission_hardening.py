"""Port 587 as a client meets it: TLS 1.2 or newer only, an AEAD suite whenever the client has
one (even a client that would rather have CBC), and a per-client limit on AUTH commands.

The probes run in bulkmail-client with Python's ssl (OpenSSL 3.0, Debian 12).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

SMTP1_INTERNAL = "10.25.0.10"

# Run inside bulkmail-client: STARTTLS on 587 with the given client preferences.
PROBE = """
import json, smtplib, ssl, sys
host, mode = sys.argv[1:3]
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE  # the lab's certificate is Debian's snakeoil
if mode == "tls1.1":
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 would not even offer it otherwise
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
else:  # TLS 1.2, CBC suites preferred, one AEAD suite last
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-RSA-AES256-SHA384:ECDHE-RSA-AES256-SHA:ECDHE-RSA-AES128-GCM-SHA256")
try:
    with smtplib.SMTP(host, 587, timeout=10) as smtp:
        smtp.ehlo("probe.client.test")
        smtp.starttls(context=context)
        print(json.dumps({"version": smtp.sock.version(), "cipher": smtp.sock.cipher()[0]}))
except (ssl.SSLError, smtplib.SMTPException, OSError) as error:
    print(json.dumps({"error": type(error).__name__ + ": " + str(error)}))
"""


def probe(client: Any, mode: str) -> dict[str, Any]:
    out = client.check_output(f"python3 - {SMTP1_INTERNAL} {mode} <<'EOF'\n{PROBE}EOF")
    return dict(json.loads(out))


def test_a_client_that_prefers_cbc_gets_an_aead_suite(client: Any) -> None:
    # the server's order wins on 587 (tls_preempt_cipherlist), and it has every AEAD suite
    # before every CBC one
    assert probe(client, "tls1.2") == {
        "version": "TLSv1.2",
        "cipher": "ECDHE-RSA-AES128-GCM-SHA256",
    }


def test_tls_older_than_1_2_is_refused(client: Any) -> None:
    result = probe(client, "tls1.1")
    assert "error" in result, result
    assert "SSLError" in result["error"], result


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("smtpd_client_auth_rate_limit", "10"),  # postfix_auth_rate_limit's default
        ("anvil_rate_time_unit", "60s"),
        ("smtpd_tls_mandatory_protocols", ">=TLSv1.2"),
        ("smtpd_tls_mandatory_ciphers", "high"),
    ],
)
def test_the_submission_limits_are_in_main_cf(smtp1: Any, parameter: str, value: str) -> None:
    assert smtp1.check_output("postconf -h %s", parameter) == value
    assert smtp1.check_output("postconf -P submission/inet/tls_preempt_cipherlist") == (
        "submission/inet/tls_preempt_cipherlist = yes"
    )
