"""Signed, aligned mail arrives: 100 SASL submissions on 587, two domains, three providers."""

from __future__ import annotations

import json
from typing import Any

from conftest import read_secret

SMTP_SUBMISSION = "10.25.0.10"
PROVIDER_RECIPIENTS = "alice@gmail.test,bob@outlook.test,carol@yahoo.test"


def submit(client: Any, account: str, count: int) -> list[dict[str, Any]]:
    """Authenticated submission on 587 from the client container; one JSON line per message."""
    cmd = client.run(
        "SMTP_PASSWORD=%s python3 /opt/lab-client/send_mail.py --host %s --port 587"
        " --tls required --user %s --from %s --to %s --count %s",
        read_secret(f"submission-{account}"),
        SMTP_SUBMISSION,
        account,
        account,
        PROVIDER_RECIPIENTS,
        str(count),
    )
    assert cmd.rc == 0, cmd.stdout + cmd.stderr
    return [json.loads(line) for line in cmd.stdout.splitlines() if line.strip()]


def test_100_messages_arrive_signed_and_aligned(client: Any, providers: Any, received: Any) -> None:
    providers.check_output("python3 -m bulkmail_providers reset")
    sent = submit(client, "app@example.test", 50) + submit(client, "app@shop.test", 50)
    assert len(sent) == 100 and all(m["accepted"] for m in sent)
    wanted = {m["message_id"].strip("<>") for m in sent}

    records = received(until=lambda rs: wanted <= {(r["message_id"] or "").strip("<>") for r in rs})
    got = {
        r["message_id"].strip("<>"): r
        for r in records
        if (r["message_id"] or "").strip("<>") in wanted
    }
    missing = wanted - set(got)
    assert not missing, f"{len(missing)} of 100 never arrived, e.g. {sorted(missing)[:3]}"

    verdicts = {
        (r["dkim"]["result"], r["spf"]["result"], r["dmarc"]["result"]) for r in got.values()
    }
    assert verdicts == {("pass", "pass", "pass")}, verdicts
    providers_hit = {r["provider"] for r in got.values()}
    assert providers_hit == {"google", "microsoft", "yahoo"}
    from_domains = {r["from_header_domain"] for r in got.values()}
    assert from_domains == {"example.test", "shop.test"}
    assert {r["peer_ip"] for r in got.values()} == {"198.51.100.10"}
    assert all(r["dkim"]["selector"] == "lab2026a" for r in got.values())
