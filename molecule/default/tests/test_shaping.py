"""Per-provider shaping by MX: a Google Workspace company goes through the google transport."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from conftest import read_secret

SMTP_SUBMISSION = "10.25.0.10"
PROVIDER_MAP = "socketmap:inet:127.0.0.1:10028:transport"


def send(client: Any, recipients: list[str]) -> list[dict[str, Any]]:
    """One authenticated submission per recipient; one JSON line per message."""
    cmd = client.run(
        "SMTP_PASSWORD=%s python3 /opt/lab-client/send_mail.py --host %s --port 587"
        " --tls required --user %s --from %s --to %s --count %s",
        read_secret("submission-app@example.test"),
        SMTP_SUBMISSION,
        "app@example.test",
        "app@example.test",
        ",".join(recipients),
        str(len(recipients)),
    )
    assert cmd.rc == 0, cmd.stdout + cmd.stderr
    return [json.loads(line) for line in cmd.stdout.splitlines() if line.strip()]


def test_the_classifier_answers_by_mx(smtp1: Any) -> None:
    answers = {
        domain: smtp1.run("postmap -q %s %s", domain, PROVIDER_MAP).stdout.strip()
        for domain in ("acme.test", "gmail.test", "outlook.test", "yahoo.test")
    }
    # acme.test is not a Google domain: only its MX (aspmx.l.google.test) says so.
    assert answers == {
        "acme.test": "google:",
        "gmail.test": "google:",
        "outlook.test": "microsoft:",
        "yahoo.test": "yahoo:",
    }


def test_postfix_uses_the_provider_transports_and_limits(smtp1: Any) -> None:
    postconf = smtp1.check_output("postconf -h transport_maps google_destination_concurrency_limit")
    maps, limit = postconf.splitlines()
    # smtp1 receives: the feedback addresses' own map comes first, then the classifier.
    assert maps.split(", ")[-1] == PROVIDER_MAP and limit == "5", postconf
    services = smtp1.check_output("postconf -M google/unix microsoft/unix yahoo/unix apple/unix")
    assert len(services.splitlines()) == 4
    reuse = smtp1.check_output("postconf -P google/unix/smtp_connection_reuse_count_limit")
    assert reuse == "google/unix/smtp_connection_reuse_count_limit = 50"


def test_mail_to_a_workspace_domain_leaves_through_the_google_transport(
    smtp1: Any, client: Any, received: Any
) -> None:
    tag = uuid.uuid4().hex[:10]
    recipients = [f"shaping-{tag}@acme.test", f"shaping-{tag}@outlook.test"]
    sent = send(client, recipients)
    assert all(m["accepted"] for m in sent)
    wanted = {m["message_id"].strip("<>") for m in sent}
    records = received(until=lambda rs: wanted <= {(r["message_id"] or "").strip("<>") for r in rs})
    got = [r for r in records if (r["message_id"] or "").strip("<>") in wanted]
    assert {r["provider"] for r in got} == {"google", "microsoft"}
    assert {r["dmarc"]["result"] for r in got} == {"pass"}

    def delivery_lines(transport: str) -> list[str]:
        """smtp1's log lines of one transport's smtp client (syslog name postfix/<t>/smtp)."""
        log = smtp1.check_output("journalctl --no-pager -o cat -t postfix/%s/smtp", transport)
        return log.splitlines()

    deadline = time.monotonic() + 30
    while True:
        google = delivery_lines("google")
        microsoft = delivery_lines("microsoft")
        done = any(f"to=<{recipients[0]}>" in ln and "status=sent" in ln for ln in google)
        if done or time.monotonic() > deadline:
            break
        time.sleep(1)
    acme = [ln for ln in google if f"to=<{recipients[0]}>" in ln]
    assert acme and all("status=sent" in ln and "relay=aspmx.l.google.test" in ln for ln in acme)
    assert not [ln for ln in google if f"to=<{recipients[1]}>" in ln]
    assert [ln for ln in microsoft if f"to=<{recipients[1]}>" in ln]


def test_a_malformed_recipient_domain_bounces_at_once(smtp1: Any) -> None:
    """A domain that can never resolve is a permanent failure with its reason, not a deferral
    retried for the queue's lifetime (DNS would refuse the name every time). Postfix itself
    refuses an empty label or one over 63 octets (smtpd: 501 5.1.3; trivial-rewrite: 5.1.3
    "bad address syntax"), and names up to 255 characters; DNS takes 253 at most, so a name of
    254 or 255 reached the classifier, whose DNS error meant TEMP, for ever."""
    route = smtp1.run("postmap -q user@acme..test %s", PROVIDER_MAP).stdout.strip()
    assert route.startswith("error:5.1.2 Bad destination domain 'acme..test'"), route

    tag = uuid.uuid4().hex[:10]
    # 254 characters, every label under 64: Postfix accepts it, DNS cannot carry it.
    domain = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 57, "test"])
    assert len(domain) == 254
    bad = f"malformed-{tag}@{domain}"
    injected = smtp1.run(
        "printf 'Subject: malformed %s\\n\\nbody\\n' | sendmail -f app@example.test %s", tag, bad
    )
    assert injected.rc == 0, injected.stderr

    deadline = time.monotonic() + 60
    while True:
        # run, not check_output: journalctl -g exits 1 while nothing matches yet
        log = smtp1.run("journalctl --no-pager -o cat -t postfix/error -g %s", f"to=<{bad}>").stdout
        if "status=bounced" in log or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert "dsn=5.1.2, status=bounced" in log, log
    assert "is 254 characters long, more than 253" in log, log
