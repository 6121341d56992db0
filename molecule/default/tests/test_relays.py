"""External relays per sender domain: agency.test leaves through relay1, through relay2 when
relay1 is down, logged in with the relay's own account over TLS, signed before it leaves; and
no relay gets a password before its certificate verified.

The relays are the lab's emulated smarthosts (bulkmail-relay1, -relay2, -relay3): SMTP AUTH
after STARTTLS, one account each, every accepted message recorded, every TLS handshake and
AUTH command too. relay1's certificate is signed by the lab CA the smtp hosts trust
(`secure match=nexthop`); relay2's is self-signed and pinned by its public key's digest
(`fingerprint`); relay3's is self-signed, made at start, and trusted by no one: partner.test's
mail for it must wait in the queue, its password never sent.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import SECRETS

SMTP1_INTERNAL = "10.25.0.10"
SMTP1_PUBLIC = "198.51.100.10"  # the transactional lane's source address
TLS_POLICY = "texthash:/etc/postfix/relay_tls_policy"


def relayed(providers: Any, name: str) -> list[dict[str, Any]]:
    out = providers.check_output("python3 -m bulkmail_providers relay-received --name %s", name)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def relay_events(providers: Any, name: str) -> list[dict[str, Any]]:
    """The relay's TLS handshakes and AUTH commands (never the credentials)."""
    out = providers.check_output("python3 -m bulkmail_providers relay-events --name %s", name)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def submit(
    client: Any,
    subject: str,
    sender: str = "news@agency.test",
    recipient: str = "reader@gmail.test",
) -> None:
    cmd = client.run(
        "python3 /opt/lab-client/send_mail.py --host %s --port 25 --from %s --to %s --subject %s",
        SMTP1_INTERNAL,
        sender,
        recipient,
        subject,
    )
    assert cmd.rc == 0, cmd.stdout + cmd.stderr


def wait_relayed(providers: Any, name: str, subject: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in relayed(providers, name) if (r["subject"] or "").startswith(subject)]
        if found:
            (record,) = found
            return record
        assert time.monotonic() < deadline, f"{subject} did not reach {name} in {timeout} s"
        time.sleep(1)


def docker(*argv: str) -> None:
    subprocess.run(["docker", *argv], check=True, capture_output=True, timeout=60)


def now(host: Any) -> str:
    """The host's clock as journalctl's --since takes it."""
    return "@" + host.check_output("date +%s")


def relay_tls_sessions(smtp1: Any, since: str) -> list[str]:
    """What the relay transport logged of its TLS sessions since `since`."""
    out = smtp1.run("journalctl --no-pager -o cat -t postfix/relay/smtp --since %s", since).stdout
    return [line for line in out.splitlines() if "TLS connection established to" in line]


def queue_entry(host: Any, recipient: str) -> dict[str, Any] | None:
    """The queue file holding mail for `recipient` (postqueue -j), or None."""
    for line in host.check_output("postqueue -j").splitlines():
        entry = json.loads(line)
        if any(r["address"] == recipient for r in entry["recipients"]):
            return entry
    return None


@pytest.fixture
def relay1_stopped() -> Iterator[None]:
    docker("stop", "bulkmail-relay1")
    try:
        yield
    finally:
        docker("start", "bulkmail-relay1")


def test_postfix_routes_the_domain_through_its_relays_in_order(smtp1: Any) -> None:
    route = smtp1.check_output("postmap -q agency.test texthash:/etc/postfix/sender_relay")
    assert route == "FILTER relay:[relay1.relays.test]:587, [relay2.relays.test]:587"
    route = smtp1.check_output("postmap -q partner.test texthash:/etc/postfix/sender_relay")
    assert route == "FILTER relay:[relay3.relays.test]:587"
    # no other sending domain is relayed
    assert smtp1.run("postmap -q example.test texthash:/etc/postfix/sender_relay").rc == 1
    secrets = smtp1.file("/etc/postfix/relay_passwd")
    assert (secrets.user, secrets.mode) == ("root", 0o600)


def test_every_relay_is_verified_and_passwords_need_verified_tls(smtp1: Any) -> None:
    pin = (SECRETS / "relay-relay2-tls.sha256").read_text().strip()
    policies = {
        relay: smtp1.check_output("postmap -q %s %s", f"[{relay}.relays.test]:587", TLS_POLICY)
        for relay in ("relay1", "relay2", "relay3")
    }
    assert policies == {
        "relay1": "secure match=nexthop",  # the lab CA, which the smtp hosts trust
        "relay2": f"fingerprint match={pin}",  # its public key, pinned in the inventory
        "relay3": "secure match=nexthop",  # self-signed: it cannot pass
    }
    options = smtp1.check_output(
        "postconf -h smtp_sasl_security_options smtp_sasl_tls_security_options"
        " smtp_sasl_tls_verified_security_options smtp_tls_fingerprint_digest"
    ).splitlines()
    assert options == ["noanonymous, noplaintext", "noanonymous, noplaintext", "noanonymous",
                       "sha256"]  # fmt: skip
    # the lab CA is among the host's CAs, which smtp_tls_CAfile names
    assert smtp1.file("/usr/local/share/ca-certificates/bulkmail-lab-ca.crt").exists
    bundle = smtp1.check_output("postconf -h smtp_tls_CAfile")
    ca = (SECRETS / "lab-ca.crt").read_text().strip()
    assert ca in smtp1.file(bundle).content_string


def test_a_relayed_sender_goes_to_the_first_relay_logged_in_over_tls(
    smtp1: Any, client: Any, providers: Any, received: Callable[..., list[dict[str, Any]]]
) -> None:
    since = now(smtp1)
    subject = f"relay-first-{uuid.uuid4().hex[:10]}"
    submit(client, subject)
    record = wait_relayed(providers, "relay1", subject)
    assert record["peer_ip"] == SMTP1_PUBLIC
    assert (record["login"], record["tls"]) == ("lab-agency", True)
    assert record["dkim_signature"] is True  # signed by our OpenDKIM before it left
    assert record["mail_from"] == "news@agency.test"
    assert not [r for r in received(timeout=0) if (r["subject"] or "").startswith(subject)]
    # the certificate chained to the lab CA and named relay1: Postfix says "Verified"
    sessions = [s for s in relay_tls_sessions(smtp1, since) if "relay1.relays.test[" in s]
    assert sessions and all(s.startswith("Verified TLS connection") for s in sessions), sessions
    assert all(re.search(r": TLSv1\.[23] with cipher", s) for s in sessions), sessions


def test_when_the_first_relay_is_down_the_backup_takes_the_mail(
    smtp1: Any, client: Any, providers: Any, relay1_stopped: None
) -> None:
    since = now(smtp1)
    subject = f"relay-backup-{uuid.uuid4().hex[:10]}"
    submit(client, subject)
    record = wait_relayed(providers, "relay2", subject)
    assert (record["login"], record["tls"]) == ("lab-agency", True)
    assert not [r for r in relayed(providers, "relay1") if (r["subject"] or "").startswith(subject)]
    # relay2's self-signed certificate matched its pinned public-key digest
    sessions = [s for s in relay_tls_sessions(smtp1, since) if "relay2.relays.test[" in s]
    assert sessions and all(s.startswith("Verified TLS connection") for s in sessions), sessions


def test_a_relay_whose_certificate_does_not_verify_gets_no_password(
    smtp1: Any, client: Any, providers: Any
) -> None:
    tag = uuid.uuid4().hex[:10]
    recipient = f"partner-{tag}@gmail.test"
    submit(client, f"relay-unverified-{tag}", sender="news@partner.test", recipient=recipient)
    entry: dict[str, Any] | None = None
    try:
        deadline = time.monotonic() + 90
        while True:
            entry = queue_entry(smtp1, recipient)
            assert entry is not None, "the message left the queue: it must wait for relay3"
            reasons = [r.get("delay_reason", "") for r in entry["recipients"]]
            if entry["queue_name"] == "deferred" and all(reasons):
                break
            assert time.monotonic() < deadline, f"no deferral after 90 s: {entry}"
            time.sleep(1)
        # deferred, and the reason names the certificate (4.7.5, smtp_proto.c)
        (reason,) = reasons
        assert re.search(r"Server certificate not (trusted|verified)", reason), reason
        # smtp1 did reach relay3 and finish the TLS handshake (for this message, or for an
        # earlier one if relay3 is still "temporarily suspended": a rerun within 5 minutes)...
        events = relay_events(providers, "relay3")
        assert any(e["event"] == "tls" and e["peer_ip"] == SMTP1_PUBLIC for e in events), events
        # ...and sent no AUTH command, this time or ever, and no mail
        assert [e for e in events if e["event"] == "auth"] == []
        assert relayed(providers, "relay3") == []
    finally:
        entry = entry or queue_entry(smtp1, recipient)
        if entry is not None:  # leave the queue as the other tests expect it
            smtp1.check_output("postsuper -d %s", entry["queue_id"])
