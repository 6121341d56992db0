"""Tenant isolation: no account and no tenant network gets mail signed as another's domain.

The battery tries, for each submission account and each sending domain it does not own,
From- and Sender-header spoofing on 587; for the tenant network (10.25.0.112/28, shop.test
only: the client's second address) the same on port 25 and on the bulk lane's intake, plus an
envelope sender of another domain. Every try must be refused with 5.7.1 naming the sender and
the domain; a try that is accepted anyway is counted as signed when it arrives with a DKIM
signature of the spoofed domain. It prints `cross_domain_signed: 0 of N tries`.
"""

from __future__ import annotations

import json
import time
from typing import Any

from conftest import lab_host, read_secret

SMTP1 = "10.25.0.10"
BULK_INTAKE = 2525
TENANT_SOURCE = "10.25.0.113"  # in 10.25.0.112/28: shop.test only (inventories/lab)
TENANT_DOMAIN = "shop.test"
RECIPIENT = "isolation@gmail.test"


def sending_domains(model: dict[str, Any]) -> list[str]:
    return [domain["name"] for domain in model["vars"]["bulkmail_domains"]]


def send(client: Any, *args: str, password: str | None = None) -> dict[str, Any]:
    command = " ".join(["python3 /opt/lab-client/send_mail.py", *args])
    env = f"SMTP_PASSWORD={password} " if password else ""
    result = client.run(env + command)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout + result.stderr
    return lines[0]


def tries(model: dict[str, Any]) -> list[dict[str, Any]]:
    """Every spoofing try: where, as whom, and the send_mail.py arguments."""
    domains = sending_domains(model)
    battery: list[dict[str, Any]] = []
    for account in (a["username"] for a in model["vars"]["bulkmail_submission_accounts"]):
        own = account.rpartition("@")[2]
        for other in (d for d in domains if d != own):
            base = [f"--host {SMTP1} --port 587 --tls required --user {account}",
                    f"--mail-from {account} --to {RECIPIENT}"]  # fmt: skip
            battery += [
                {"where": "587", "who": f"account {account}", "domain": other,
                 "args": [*base, f"--from ceo@{other}"], "password": account},
                {"where": "587", "who": f"account {account}", "domain": other,
                 "args": [*base, f"--from {account}", f"--header 'Sender: ceo@{other}'"],
                 "password": account},
            ]  # fmt: skip
    for where, port in (("25", 25), ("bulk intake", BULK_INTAKE)):
        base = [f"--host {SMTP1} --port {port} --source {TENANT_SOURCE} --to {RECIPIENT}"]
        who = f"network 10.25.0.112/28 (client {TENANT_SOURCE})"
        for other in (d for d in domains if d != TENANT_DOMAIN):
            own = f"app@{TENANT_DOMAIN}"
            battery += [
                {"where": where, "who": who, "domain": other,
                 "args": [*base, f"--mail-from {own} --from ceo@{other}"]},
                {"where": where, "who": who, "domain": other,
                 "args": [*base, f"--mail-from {own} --from {own}",
                          f"--header 'Sender: ceo@{other}'"]},
                {"where": where, "who": who, "domain": other,
                 "args": [*base, f"--mail-from ceo@{other} --from {own}"]},
            ]  # fmt: skip
    return battery


def test_no_tenant_sends_signed_as_another(
    client: Any, providers: Any, received: Any, model: dict[str, Any]
) -> None:
    providers.check_output("python3 -m bulkmail_providers reset")
    battery = tries(model)
    accepted: list[tuple[dict[str, Any], dict[str, Any]]] = []
    wrong_reply: list[str] = []
    for attempt in battery:
        account = attempt.get("password")
        line = send(
            client,
            *attempt["args"],
            "--subject isolation",
            password=read_secret(f"submission-{account}") if account else None,
        )
        if line["accepted"]:
            accepted.append((attempt, line))
            continue
        error = line["error"]
        text = f"{error['code']} {error['text']}"
        expected = f"{attempt['who']} may not send as {attempt['domain']}"
        if error["code"] != 550 or "5.7.1" not in text or expected not in text:
            wrong_reply.append(f"{attempt['where']} {attempt['args']}: {text}")

    # What was accepted anyway: did it leave signed as the spoofed domain?
    wanted = {line["message_id"].strip("<>"): attempt for attempt, line in accepted}
    signed = 0
    if wanted:
        records = received(
            until=lambda rs: set(wanted) <= {(r["message_id"] or "").strip("<>") for r in rs},
            timeout=60,
        )
        for record in records:
            attempt = wanted.get((record["message_id"] or "").strip("<>"))
            domains = {s["domain"] for s in record["dkim"]["signatures"] if s["result"] == "pass"}
            if attempt is not None and attempt["domain"] in domains:
                signed += 1
    print(f"cross_domain_signed: {signed} of {len(battery)} tries")
    print(f"cross_domain_accepted: {len(accepted)} of {len(battery)} tries")
    assert signed == 0
    assert not accepted, [(a["where"], a["args"]) for a, _ in accepted]
    assert not wrong_reply, wrong_reply


def test_a_tenant_network_still_sends_as_its_own_domain(client: Any, received: Any) -> None:
    """The guard refuses only what is not the sender's: shop.test's server sends signed."""
    sent = []
    for port in (25, BULK_INTAKE):
        line = send(
            client,
            f"--host {SMTP1} --port {port} --source {TENANT_SOURCE}",
            f"--from app@{TENANT_DOMAIN} --to tenant-own@gmail.test --subject own-domain",
        )
        assert line["accepted"], line
        sent.append(line["message_id"].strip("<>"))
    records = received(
        until=lambda rs: set(sent) <= {(r["message_id"] or "").strip("<>") for r in rs}
    )
    got = [r for r in records if (r["message_id"] or "").strip("<>") in sent]
    assert len(got) == len(sent)
    assert {(r["dkim"]["result"], r["dkim"]["domain"]) for r in got} == {("pass", TENANT_DOMAIN)}


def test_the_refusal_is_logged_with_the_reason(smtp1: Any) -> None:
    """Postfix logs the milter's reject with the guard's text (operators grep for it)."""
    deadline = time.monotonic() + 30
    while True:
        log = smtp1.run("journalctl -u bulkmail-sender-guard --no-pager -n 50").stdout
        if "refused: account app@shop.test may not send as example.test" in log:
            return
        assert time.monotonic() < deadline, log
        time.sleep(2)


def test_the_graveyard_takes_no_submission_and_holds_no_key() -> None:
    """smtp2 (smtp_fallback) relays signed mail: no 587 listener, no signer, no private key."""
    smtp2 = lab_host("smtp2")
    listening = smtp2.run("ss -Hltn 'sport = :587'").stdout.strip()
    assert listening == "", listening
    assert "submission" not in smtp2.run("postconf -M").stdout
    assert not smtp2.file("/etc/opendkim/keys").exists
    assert not smtp2.service("opendkim").is_running
    keys = smtp2.run(
        "find /etc /var /opt /usr/local /root -name '*.private' 2>/dev/null"
    ).stdout.strip()
    assert keys == "", keys
