"""External relays per sender domain: agency.test leaves through relay1, through relay2 when
relay1 is down, logged in with the relay's own account over TLS, signed before it leaves.

The relays are the lab's emulated smarthosts (bulkmail-relay1, bulkmail-relay2): SMTP AUTH
after STARTTLS, one account each, every accepted message recorded.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

SMTP1_INTERNAL = "10.25.0.10"


def relayed(providers: Any, name: str) -> list[dict[str, Any]]:
    out = providers.check_output("python3 -m bulkmail_providers relay-received --name %s", name)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def submit(client: Any, subject: str) -> None:
    cmd = client.run(
        "python3 /opt/lab-client/send_mail.py --host %s --port 25 --from news@agency.test"
        " --to reader@gmail.test --subject %s",
        SMTP1_INTERNAL,
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
    # no other sending domain is relayed
    assert smtp1.run("postmap -q example.test texthash:/etc/postfix/sender_relay").rc == 1
    secrets = smtp1.file("/etc/postfix/relay_passwd")
    assert (secrets.user, secrets.mode) == ("root", 0o600)


def test_a_relayed_sender_goes_to_the_first_relay_logged_in_over_tls(
    client: Any, providers: Any, received: Callable[..., list[dict[str, Any]]]
) -> None:
    subject = f"relay-first-{uuid.uuid4().hex[:10]}"
    submit(client, subject)
    record = wait_relayed(providers, "relay1", subject)
    assert record["peer_ip"] == "198.51.100.10"
    assert (record["login"], record["tls"]) == ("lab-agency", True)
    assert record["dkim_signature"] is True  # signed by our OpenDKIM before it left
    assert record["mail_from"] == "news@agency.test"
    assert not [r for r in received(timeout=0) if (r["subject"] or "").startswith(subject)]


def test_when_the_first_relay_is_down_the_backup_takes_the_mail(
    client: Any, providers: Any, relay1_stopped: None
) -> None:
    subject = f"relay-backup-{uuid.uuid4().hex[:10]}"
    submit(client, subject)
    record = wait_relayed(providers, "relay2", subject)
    assert (record["login"], record["tls"]) == ("lab-agency", True)
    assert not [r for r in relayed(providers, "relay1") if (r["subject"] or "").startswith(subject)]
