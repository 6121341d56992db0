"""Lanes and the graveyard in the running lab: who sends what from where, and what is retried where.

- transactional mail (587) leaves smtp1 from the transactional pool's 198.51.100.10, bulk mail
  (the bulk lane's 2525) from the bulk pool's 198.51.100.11, each signed and aligned;
- each lane is its own Postfix instance with its own queue, and the bulk lane is split once
  more by provider: its intake hands each provider's mail to that provider's own instance, so
  a tarpitting provider holds only its own queue;
- mail a provider defers on the bulk lane's first attempt is handed to the graveyard (smtp2),
  leaves smtp1's queue, waits on smtp2, and is delivered from smtp2's 198.51.100.12 once the
  provider accepts again.
"""

from __future__ import annotations

import json
import shlex
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import lab_host, read_secret

SMTP1_INTERNAL = "10.25.0.10"
TX_ADDRESS = "198.51.100.10"
BULK_ADDRESS = "198.51.100.11"
GRAVEYARD_ADDRESS = "198.51.100.12"
BULK_PORT = 2525
BULK_CONFIG = "/etc/postfix-bulk"
PROVIDERS = ("google", "microsoft", "yahoo", "apple", "default")
BULK_CONFIGS = (BULK_CONFIG, *(f"{BULK_CONFIG}-{p}" for p in PROVIDERS))


@pytest.fixture(scope="module")
def smtp2() -> Any:
    return lab_host("smtp2")


def submit(client: Any, *, to: str, subject: str, bulk: bool) -> dict[str, Any]:
    """One message: bulk on the bulk lane's port, transactional with SASL on 587."""
    if bulk:
        cmd = client.run(
            "python3 /opt/lab-client/send_mail.py --host %s --port %s --from news@example.test"
            " --to %s --subject %s",
            SMTP1_INTERNAL, str(BULK_PORT), to, subject,
        )  # fmt: skip
    else:
        cmd = client.run(
            "SMTP_PASSWORD=%s python3 /opt/lab-client/send_mail.py --host %s --port 587"
            " --tls required --user app@example.test --from app@example.test --to %s"
            " --subject %s",
            read_secret("submission-app@example.test"), SMTP1_INTERNAL, to, subject,
        )  # fmt: skip
    assert cmd.rc == 0, cmd.stdout + cmd.stderr
    return json.loads(cmd.stdout.splitlines()[0])


def by_subject(records: list[dict[str, Any]], subject: str) -> list[dict[str, Any]]:
    return [r for r in records if (r["subject"] or "").startswith(subject)]


def test_each_lane_is_its_own_instance_with_its_own_queue(smtp1: Any) -> None:
    instances = smtp1.check_output("postmulti -l").splitlines()
    assert [line.split()[0] for line in instances] == [
        "-", "postfix-bulk", *(f"postfix-bulk-{p}" for p in PROVIDERS)
    ]  # fmt: skip
    assert all(line.split()[2] == "y" for line in instances)  # all enabled
    for line in instances[1:]:
        assert smtp1.service(f"postfix@{line.split()[0]}").is_running
    bulk = smtp1.check_output(
        "postconf -c %s -h queue_directory smtp_bind_address smtp_fallback_relay", BULK_CONFIG
    )
    assert bulk.splitlines() == [
        "/var/spool/postfix-bulk",
        BULK_ADDRESS,
        f"[{GRAVEYARD_ADDRESS}]:25",
    ]
    assert smtp1.check_output("postconf -h queue_directory smtp_bind_address").splitlines() == [
        "/var/spool/postfix",
        TX_ADDRESS,
    ]
    # the bulk lane is fed on the internal address only, by the trusted networks only
    assert smtp1.socket(f"tcp://{SMTP1_INTERNAL}:{BULK_PORT}").is_listening
    assert not smtp1.socket(f"tcp://0.0.0.0:{BULK_PORT}").is_listening
    # each provider's instance: its own queue, the bulk lane's source and graveyard, fed by
    # the intake (or a signing dispatcher) on the internal address only
    for index, provider in enumerate(PROVIDERS):
        config = f"{BULK_CONFIG}-{provider}"
        own = smtp1.check_output(
            "postconf -c %s -h queue_directory smtp_bind_address smtp_fallback_relay", config
        )
        assert own.splitlines() == [
            f"/var/spool/postfix-bulk-{provider}", BULK_ADDRESS, f"[{GRAVEYARD_ADDRESS}]:25"
        ]  # fmt: skip
        port = BULK_PORT + 1 + index
        assert smtp1.socket(f"tcp://{SMTP1_INTERNAL}:{port}").is_listening
        assert not smtp1.socket(f"tcp://0.0.0.0:{port}").is_listening


def test_transactional_and_bulk_mail_leave_from_their_pools_addresses(
    client: Any, received: Callable[..., list[dict[str, Any]]]
) -> None:
    tag = uuid.uuid4().hex[:10]
    submit(client, to=f"lane-tx-{tag}@gmail.test", subject=f"lane-tx-{tag}", bulk=False)
    submit(client, to=f"lane-bulk-{tag}@gmail.test", subject=f"lane-bulk-{tag}", bulk=True)
    records = received(lambda rs: len(by_subject(rs, f"lane-tx-{tag}")) == 1
                       and len(by_subject(rs, f"lane-bulk-{tag}")) == 1)  # fmt: skip
    (tx,) = by_subject(records, f"lane-tx-{tag}")
    (bulk,) = by_subject(records, f"lane-bulk-{tag}")
    assert tx["peer_ip"] == TX_ADDRESS
    assert bulk["peer_ip"] == BULK_ADDRESS
    for record in (tx, bulk):
        assert (record["dkim"]["result"], record["spf"]["result"], record["dmarc"]["result"]) == (
            "pass", "pass", "pass",
        ), record  # fmt: skip
        assert record["helo"] == "mta1.example.test"
    # VERP on example.test's return-path domain; SPF passes for it and aligns (relaxed)
    assert tx["mail_from"] == f"app+lane-tx-{tag}=gmail.test@bounces.example.test"
    assert bulk["mail_from"] == f"news+lane-bulk-{tag}=gmail.test@bounces.example.test"
    assert bulk["spf"]["domain"] == "bounces.example.test"


def test_the_bulk_lane_refuses_clients_outside_the_trusted_networks() -> None:
    # the providers' host is on the internet side: it cannot even reach the internal address,
    # so ask from smtp2's internal side, which is not a trusted network either
    # (the host firewall drops it before Postfix could refuse it; Postfix's own
    # smtpd_client_restrictions would answer 5xx, and a connection that gets through must)
    yard = lab_host("smtp2")
    script = (
        "import smtplib, socket\n"
        "try:\n"
        f"    s = smtplib.SMTP('{SMTP1_INTERNAL}', {BULK_PORT}, timeout=5)\n"
        "except (socket.timeout, ConnectionRefusedError):\n"
        "    print('no-connection')\n"
        "else:\n"
        "    s.ehlo('probe.test')\n"
        "    print(max(s.mail('x@example.test')[0], s.rcpt('someone@gmail.test')[0]))\n"
    )
    probe = yard.run("python3 -c %s", script)
    assert probe.rc == 0, probe.stderr
    answer = probe.stdout.strip()
    assert answer == "no-connection" or 500 <= int(answer) < 600, probe.stdout


@pytest.fixture
def yahoo_defers(providers: Any) -> Iterator[None]:
    providers.check_output("python3 -m bulkmail_providers behave yahoo.test defer")
    try:
        yield
    finally:
        providers.check_output("python3 -m bulkmail_providers behave yahoo.test configured")


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(1)


def delay_reason(host: Any, recipient: str) -> str:
    """Why the queue holds mail for `recipient` ("" while it is still being tried)."""
    for line in host.check_output("postqueue -j").splitlines():
        entry = json.loads(line)
        for rcpt in entry["recipients"]:
            if rcpt["address"] == recipient:
                return str(rcpt.get("delay_reason", ""))
    return ""


def queued(host: Any, recipient: str, config: str = "/etc/postfix") -> bool:
    return recipient in host.check_output("postqueue -c %s -p", config)


def test_deferred_bulk_mail_is_retried_by_the_graveyard_and_delivered_from_there(
    smtp1: Any,
    smtp2: Any,
    client: Any,
    providers: Any,
    received: Callable[..., list[dict[str, Any]]],
    yahoo_defers: None,
) -> None:
    tag = uuid.uuid4().hex[:10]
    recipient = f"grave-{tag}@yahoo.test"
    submit(client, to=recipient, subject=f"grave-{tag}", bulk=True)
    # Yahoo's 421 on the first attempt: the primary hands the message over at once
    wait_for(lambda: queued(smtp2, recipient), 60, "the message in smtp2's queue")
    for config in BULK_CONFIGS:
        assert not queued(smtp1, recipient, config), f"{config} still holds the message"
    # the graveyard's own first attempt meets the same 421 and keeps the message
    wait_for(lambda: "421 4.7.0 [TSS04]" in delay_reason(smtp2, recipient), 60,
             "smtp2's first attempt to be deferred")  # fmt: skip
    assert by_subject(received(timeout=0), f"grave-{tag}") == []

    # the provider accepts again; the graveyard's next run (forced here, instead of waiting
    # out its 10-minute minimal backoff) delivers it
    providers.check_output("python3 -m bulkmail_providers behave yahoo.test configured")
    smtp2.check_output("postqueue -f")
    records = by_subject(received(lambda rs: by_subject(rs, f"grave-{tag}")), f"grave-{tag}")
    assert len(records) == 1, "delivered once, not lost, not twice"
    (record,) = records
    assert record["peer_ip"] == GRAVEYARD_ADDRESS
    assert record["helo"] == "mta2.example.test"
    # signed once, by the primary, and still verifying after the detour
    assert (record["dkim"]["result"], record["spf"]["result"], record["dmarc"]["result"]) == (
        "pass", "pass", "pass",
    ), record  # fmt: skip
    wait_for(lambda: not queued(smtp2, recipient), 30, "smtp2's queue to empty")


@pytest.fixture
def outlook_tarpits(providers: Any) -> Iterator[None]:
    providers.check_output("python3 -m bulkmail_providers behave outlook.test tarpit")
    try:
        yield
    finally:
        providers.check_output("python3 -m bulkmail_providers behave outlook.test configured")


def test_a_tarpitting_provider_holds_only_its_own_instance_of_the_bulk_lane(
    smtp1: Any,
    client: Any,
    received: Callable[..., list[dict[str, Any]]],
    outlook_tarpits: None,
) -> None:
    tag = uuid.uuid4().hex[:10]
    slow, fast = f"slow-{tag}@outlook.test", f"fast-{tag}@gmail.test"
    submit(client, to=slow, subject=f"slow-{tag}", bulk=True)
    # the intake handed it to Microsoft's instance at once, where it waits on the tarpit
    microsoft = f"{BULK_CONFIG}-microsoft"
    wait_for(lambda: queued(smtp1, slow, microsoft), 30, "the message in Microsoft's instance")
    assert not queued(smtp1, slow, BULK_CONFIG), "the intake still holds the message"
    submit(client, to=fast, subject=f"fast-{tag}", bulk=True)
    records = received(lambda rs: by_subject(rs, f"fast-{tag}"), timeout=20)
    assert len(by_subject(records, f"fast-{tag}")) == 1, "Gmail's mail waited on the tarpit"
    assert by_subject(records, f"slow-{tag}") == [], "the tarpit answered early"
    assert queued(smtp1, slow, microsoft)
    # delivered by Google's instance, through its own transport and limits
    log = smtp1.check_output(
        "journalctl --no-pager -q -t postfix-bulk-google/google/smtp -g %s", f"to=<{fast}>"
    )
    assert "status=sent" in log, log


def test_a_signing_dispatcher_feeds_the_providers_instances_directly(
    smtp1: Any, received: Callable[..., list[dict[str, Any]]]
) -> None:
    """`bulkmail submit` signs with OpenDKIM's own configuration and keys, and hands each
    provider's recipients to that provider's instance: one queue, no milter on the way."""
    tag = uuid.uuid4().hex[:10]
    recipients = [f"dispatch-{tag}@gmail.test", f"dispatch-{tag}@outlook.test"]
    message = (
        f"From: news@example.test\nTo: readers@example.test\nSubject: dispatch-{tag}\n"
        f"Date: Mon, 23 Nov 2026 12:00:00 +0000\nMessage-ID: <dispatch-{tag}@example.test>\n"
        f"MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\nHello.\n"
    )
    argv = " ".join(f"--to {r}" for r in recipients)
    run = smtp1.run(
        f"printf %s {shlex.quote(message)} | "
        f"bulkmail submit --lane bulk --from news@example.test {argv}"
    )
    assert run.rc == 0, run.stdout + run.stderr
    groups = {g["provider"]: g for g in map(json.loads, run.stdout.splitlines())}
    assert {p: (g["route"], g["recipients"]) for p, g in groups.items()} == {
        "google": (f"{SMTP1_INTERNAL}:{BULK_PORT + 1}", [recipients[0]]),
        "microsoft": (f"{SMTP1_INTERNAL}:{BULK_PORT + 2}", [recipients[1]]),
    }
    records = by_subject(
        received(lambda rs: len(by_subject(rs, f"dispatch-{tag}")) == 2), f"dispatch-{tag}"
    )
    assert sorted(r["rcpt_to"][0] for r in records) == sorted(recipients)
    for record in records:
        assert record["peer_ip"] == BULK_ADDRESS
        assert (record["dkim"]["result"], record["spf"]["result"], record["dmarc"]["result"]) == (
            "pass", "pass", "pass",
        ), record  # fmt: skip
        # one signature (the dispatcher's, no second by a milter), and VERP all the same
        assert len(record["dkim"]["signatures"]) == 1
        rcpt = record["rcpt_to"][0]
        local, domain = rcpt.split("@")
        assert record["mail_from"] == f"news+{local}={domain}@bounces.example.test"
