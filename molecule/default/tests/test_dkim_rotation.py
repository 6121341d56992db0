"""A DKIM key rotation, stage by stage, while mail flows: every message verifies at the receiver.

roles/dkim_keys/README.md: one variable change and one run per stage. Stage 1 publishes a new
selector next to lab2026a, stage 2 makes it sign, stage 3 drops lab2026a. A sender in the
client container submits mail before, during and after every stage; each message must arrive
with dkim=pass under the selector that signed when it was submitted. The rotation guard must
refuse stage 2 while the new record is younger than the minimum, and change nothing then.

Each stage runs only what a rotation touches (`site.yml --tags dns,opendkim`). The selector
is new on every run; at the end the inventory's own domains are converged again (guard off,
since lab2026a signs again at once) and the new key is deleted, so the other tests and a
rerun find the lab as before.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.adapters.dns_lookup import (
    ask_authoritative,
)
from conftest import SECRETS, ansible_playbook, playbook_failures, read_secret

DOMAIN = "example.test"
OLD = "lab2026a"
ACCOUNT = "app@example.test"
SMTP_SUBMISSION = "10.25.0.10"
RECIPIENTS = "alice@gmail.test,bob@outlook.test,carol@yahoo.test"
NAMESERVERS = ("198.51.100.53", "198.51.100.54")  # primary, secondary
MIN_PUBLISH_SECONDS = 5  # the guard's minimum in this test (in production: the TTL, 3600 s)
TAGS = "dns,opendkim"  # validation, the guard, the dns tier and OpenDKIM; not Postfix
SKIPPED = "check_dns,firewall,restart_on_failure"
# Mail keeps flowing (about one message a second) without starving the converge of the two
# cores it shares with the sender.
BATCH_PAUSE_SECONDS = 2.0


@dataclass
class Submission:
    message_id: str
    accepted: bool
    started: float  # the batch it was in: submitted between started and ended
    ended: float
    error: dict[str, Any] | None = None


class Sender(threading.Thread):
    """Submits small batches on 587 from the client container until stopped."""

    def __init__(self, password: str) -> None:
        super().__init__(daemon=True)
        self.password = password
        self.halt = threading.Event()
        self.lock = threading.Lock()
        self.submissions: list[Submission] = []
        self.failure: str | None = None

    def run(self) -> None:
        while not self.halt.is_set():
            started = time.time()
            batch = subprocess.run(
                ["docker", "exec", "-e", f"SMTP_PASSWORD={self.password}", "bulkmail-client",
                 "python3", "/opt/lab-client/send_mail.py", "--host", SMTP_SUBMISSION,
                 "--port", "587", "--tls", "required", "--user", ACCOUNT, "--from", ACCOUNT,
                 "--to", RECIPIENTS, "--count", "3", "--subject", "dkim rotation"],
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            ended = time.time()
            lines = [json.loads(line) for line in batch.stdout.splitlines() if line.strip()]
            if not lines:
                self.failure = f"send_mail.py printed nothing: {batch.stderr.strip()}"
                return
            with self.lock:
                self.submissions += [
                    Submission(
                        line["message_id"].strip("<>"),
                        line["accepted"],
                        started,
                        ended,
                        line.get("error"),
                    )
                    for line in lines
                ]
            self.halt.wait(BATCH_PAUSE_SECONDS)

    def snapshot(self) -> list[Submission]:
        with self.lock:
            return list(self.submissions)

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=150)


def domains_with(model: dict[str, Any], selectors: list[str]) -> list[dict[str, Any]]:
    """The inventory's bulkmail_domains with example.test's dkim_selectors replaced."""
    domains = json.loads(json.dumps(model["vars"]["bulkmail_domains"]))
    (entry,) = [d for d in domains if d["name"] == DOMAIN]
    entry["dkim_selectors"] = selectors
    return domains


def stage(
    model: dict[str, Any], selectors: list[str] | None, min_seconds: int
) -> subprocess.CompletedProcess[str]:
    extra: dict[str, Any] = {"bulkmail_dkim_min_publish_seconds": min_seconds}
    if selectors is not None:
        extra["bulkmail_domains"] = domains_with(model, selectors)
    # Left out: the checker's play (the test asks both name servers itself, at each stage)
    # and the roles a rotation does not touch in the tiers it runs (the firewall, the
    # restart policy): each stage then costs what the rotation does.
    return ansible_playbook("site.yml", "--tags", TAGS, "--skip-tags", SKIPPED,
                            extra_vars=extra)  # fmt: skip


def ok(run: subprocess.CompletedProcess[str]) -> None:
    assert run.returncode == 0, playbook_failures(run.stdout) or run.stdout[-4000:] + run.stderr


def signers(model: dict[str, Any]) -> list[str]:
    """The smtp hosts that sign: every one but the graveyards, which hold no key."""
    yards = model["groups"].get("smtp_fallback") or {}
    return sorted(host for host in model["groups"]["smtp"] if host not in yards)


def signing_tables(model: dict[str, Any]) -> dict[str, str]:
    """What OpenDKIM signs example.test with on every signing smtp host."""
    tables = {}
    for host in signers(model):
        table = subprocess.run(
            ["docker", "exec", f"bulkmail-{host}", "cat", "/etc/opendkim/SigningTable"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        (line,) = [x for x in table.splitlines() if x.startswith(f"*@{DOMAIN} ")]
        tables[host] = line.split()[1].split("._domainkey.")[0]
    return tables


def served(selector: str) -> dict[str, bool]:
    """Whether each name server answers the selector's key record."""
    owner = f"{selector}._domainkey.{DOMAIN}"
    return {ns: bool(ask_authoritative(ns, owner)[0]) for ns in NAMESERVERS}


def soa_serial() -> int:
    (soa,), _ttl = ask_authoritative(NAMESERVERS[0], DOMAIN, "SOA")
    return int(soa.split()[2])


def publication(selector: str) -> dict[str, Any] | None:
    path = SECRETS / "dkim" / DOMAIN / f"{selector}.published"
    return json.loads(path.read_text()) if path.exists() else None


def arrived(
    received: Callable[..., list[dict[str, Any]]], wanted: set[str]
) -> dict[str, dict[str, Any]]:
    def ids(records: list[dict[str, Any]]) -> set[str]:
        return {(r["message_id"] or "").strip("<>") for r in records}

    records = received(until=lambda rs: wanted <= ids(rs), timeout=180)
    return {
        (r["message_id"] or "").strip("<>"): r
        for r in records
        if (r["message_id"] or "").strip("<>") in wanted
    }


@pytest.fixture
def new_selector(model: dict[str, Any]) -> Any:
    """A selector no earlier run used; afterwards the inventory's state, and no trace of it."""
    selector = f"rot{int(time.time())}"
    yield selector
    restore = stage(model, None, 0)  # lab2026a signs again at once: the guard is off
    assert restore.returncode == 0, (
        f"restoring the inventory's selectors failed, so the lab may still sign with {selector} "
        "(its key is kept); converge with -e bulkmail_dkim_min_publish_seconds=0:\n"
        + (playbook_failures(restore.stdout) or restore.stdout[-4000:])
    )
    for suffix in ("private", "published"):
        (SECRETS / "dkim" / DOMAIN / f"{selector}.{suffix}").unlink(missing_ok=True)
    for host in signers(model):  # the opendkim role leaves keys it no longer uses
        subprocess.run(
            ["docker", "exec", f"bulkmail-{host}", "rm", "-f",
             f"/etc/opendkim/keys/{DOMAIN}/{selector}.private"],
            check=False,
        )  # fmt: skip
    assert set(signing_tables(model).values()) == {OLD}


def test_rotation_stage_by_stage_keeps_every_message_verifying(
    model: dict[str, Any], received: Callable[..., list[dict[str, Any]]], new_selector: str
) -> None:
    new = new_selector
    assert set(signing_tables(model).values()) == {OLD}, "the lab must start signing lab2026a"
    sender = Sender(read_secret(f"submission-{ACCOUNT}"))
    sender.start()
    windows: dict[str, tuple[float, float]] = {}
    try:
        time.sleep(3)  # mail before stage 1

        # Stage 1: publish the new selector; lab2026a still signs.
        started = time.time()
        ok(stage(model, [OLD, new], MIN_PUBLISH_SECONDS))
        windows["stage 1"] = (started, time.time())
        assert served(new) == {ns: True for ns in NAMESERVERS}
        record = publication(new)
        assert record is not None, "stage 1 must record when the new selector was served"
        published_at = datetime.fromisoformat(record["published_at"].replace("Z", "+00:00"))
        assert record["ttl"] > 0
        assert set(signing_tables(model).values()) == {OLD}

        # Stage 2 too early: refused before anything changes.
        serial = soa_serial()
        early = stage(model, [new, OLD], 86400)
        assert early.returncode != 0
        output = " ".join(early.stdout.split())
        assert (
            f"bulkmail_domains[0].dkim_selectors: {new} would sign for {DOMAIN} in place of "
            f"{OLD}, but its record {new}._domainkey.{DOMAIN} has been published for only "
        ) in output, early.stdout[-3000:]
        assert "less than 1 d 0 h (bulkmail_dkim_min_publish_seconds)" in output
        assert "It may be moved first from " in output
        assert f"until then keep [{OLD}, {new}]" in output
        assert set(signing_tables(model).values()) == {OLD}
        assert soa_serial() == serial
        assert publication(new) == record

        # Stage 2: the new selector signs, once published for the minimum.
        time.sleep(max(0.0, published_at.timestamp() + MIN_PUBLISH_SECONDS - time.time()))
        started = time.time()
        ok(stage(model, [new, OLD], MIN_PUBLISH_SECONDS))
        windows["stage 2"] = (started, time.time())
        assert set(signing_tables(model).values()) == {new}
        assert served(OLD) == {ns: True for ns in NAMESERVERS}

        # The retention time, in small: mail signed with lab2026a has left the queue.
        signed_old = {s.message_id for s in sender.snapshot() if s.accepted}
        arrived(received, signed_old)

        # Stage 3: drop lab2026a.
        started = time.time()
        ok(stage(model, [new], MIN_PUBLISH_SECONDS))
        windows["stage 3"] = (started, time.time())
        assert served(OLD) == {ns: False for ns in NAMESERVERS}
        assert publication(OLD) is None, "a withdrawn selector's publication record goes"
        time.sleep(3)  # mail after stage 3
    finally:
        sender.stop()
    assert sender.failure is None, sender.failure

    submissions = sender.snapshot()
    refused = [s for s in submissions if not s.accepted]
    assert not refused, f"{len(refused)} submissions refused, e.g. {refused[0].error}"
    for name, (begin, end) in windows.items():
        during = [s for s in submissions if s.started < end and s.ended > begin]
        assert during, f"no mail was submitted during {name}"
    got = arrived(received, {s.message_id for s in submissions})
    missing = {s.message_id for s in submissions} - set(got)
    assert not missing, f"{len(missing)} of {len(submissions)} never arrived"

    stage2_begin, stage2_end = windows["stage 2"]
    wrong = []
    for submission in submissions:
        record = got[submission.message_id]
        if submission.ended < stage2_begin:
            expected = {OLD}
        elif submission.started > stage2_end:
            expected = {new}
        else:
            expected = {OLD, new}
        verdict = (record["dkim"]["result"], record["dkim"]["selector"], record["dmarc"]["result"])
        if verdict[0] != "pass" or verdict[1] not in expected or verdict[2] != "pass":
            wrong.append((submission.message_id, verdict, sorted(expected)))
    assert not wrong, f"{len(wrong)} of {len(submissions)} did not verify as expected: {wrong[:5]}"
    signed = {s: sum(r["dkim"]["selector"] == s for r in got.values()) for s in (OLD, new)}
    shown = ", ".join(f"{name} {end - begin:.0f} s" for name, (begin, end) in windows.items())
    print(f"\n{len(submissions)} messages, all dkim=pass: {signed}; runs: {shown}")
