"""Daemons come back by themselves: after kill -9 of each one's main process, systemd starts it
again within seconds (roles/restart_on_failure), and mail accepted before the kill arrives."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from conftest import lab_host
from test_shaping import send

BACK_WITHIN = 10.0
# (lab host, unit): every daemon the stack runs on Debian's units.
DAEMONS = [
    ("smtp1", "postfix@-.service"),
    ("smtp1", "opendkim.service"),
    ("smtp1", "dovecot.service"),
    ("dns1", "named.service"),
    ("db1", "postgresql@15-main.service"),
]


def main_pid(host: Any, unit: str) -> int:
    return int(host.check_output("systemctl show -p MainPID --value %s", unit) or 0)


def kill_and_wait(host: Any, unit: str) -> float:
    """kill -9 the unit's main process; seconds until it runs again under a new main process."""
    before = main_pid(host, unit)
    assert before > 0, f"{unit} has no main process to kill"
    host.check_output("kill -9 %s", str(before))
    killed = time.monotonic()
    while time.monotonic() - killed < BACK_WITHIN + 5:
        active = host.run("systemctl is-active %s", unit).stdout.strip() == "active"
        pid = main_pid(host, unit)
        if active and pid not in (0, before):
            return time.monotonic() - killed
        time.sleep(0.5)
    status = host.run("systemctl status --no-pager %s", unit).stdout
    raise AssertionError(f"{unit} was not back {BACK_WITHIN + 5:g} s after kill -9:\n{status}")


@pytest.mark.parametrize(("name", "unit"), DAEMONS)
def test_a_killed_daemon_is_back_within_seconds(name: str, unit: str) -> None:
    host = lab_host(name)
    assert "Restart=on-failure" in host.check_output("systemctl cat %s", unit)
    assert kill_and_wait(host, unit) <= BACK_WITHIN


def test_mail_accepted_before_postfix_is_killed_arrives(
    smtp1: Any, client: Any, received: Any
) -> None:
    tag = uuid.uuid4().hex[:10]
    recipients = [f"restart-{tag}-{n}@gmail.test" for n in range(5)]
    sent = send(client, recipients)
    assert all(m["accepted"] for m in sent), sent
    # The queue is on disk: killing the master with mail in it loses nothing.
    kill_and_wait(smtp1, "postfix@-.service")
    wanted = {m["message_id"].strip("<>") for m in sent}
    records = received(until=lambda rs: wanted <= {(r["message_id"] or "").strip("<>") for r in rs})
    got = {(r["message_id"] or "").strip("<>") for r in records} & wanted
    assert got == wanted, f"{len(wanted - got)} of {len(wanted)} accepted messages never arrived"
