"""lab/client/send_mail.py against the providers: what the lab's tests rely on it to report."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from conftest import Lab

SEND_MAIL = Path(__file__).resolve().parents[2] / "client" / "send_mail.py"


def send_mail(*args: str) -> tuple[int, list[dict]]:
    done = subprocess.run(
        [sys.executable, str(SEND_MAIL), "--host", "127.0.0.1", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()]


def test_round_robin_delivery_with_unique_message_ids(lab: Lab) -> None:
    port = str(lab.server.port)
    status, lines = send_mail(
        "--port", port, "--from", "app@example.test", "--to", "a@gmail.test,b@yahoo.test",
        "--count", "3",
    )  # fmt: skip
    assert status == 0
    assert [line["to"] for line in lines] == ["a@gmail.test", "b@yahoo.test", "a@gmail.test"]
    assert all(line["accepted"] for line in lines)
    records = lab.records()
    assert [r["message_id"] for r in records] == [line["message_id"] for line in lines]
    assert len({r["message_id"] for r in records}) == 3
    assert all(r["tls"] for r in records)  # STARTTLS when offered
    assert all(r["list_unsubscribe_post"] == "List-Unsubscribe=One-Click" for r in records)
    assert all(1800 < r["size"] < 4000 for r in records)


def test_a_refusal_fails_the_run_unless_it_is_expected(lab: Lab) -> None:
    port = str(lab.server.port)
    common = ["--port", port, "--from", "app@example.test"]
    status, [line] = send_mail(*common, "--to", "user-unknown@gmail.test")
    assert status == 1
    assert line["error"]["stage"] == "rcpt" and line["error"]["code"] == 550
    status, _ = send_mail(*common, "--to", "someone@example.test", "--expect-refusal")
    assert status == 0
    status, _ = send_mail(*common, "--to", "x@gmail.test,user-unknown@gmail.test", "--count", "2",
                          "--expect-refusal")  # fmt: skip
    assert status == 1  # one was accepted


def test_no_server_is_not_a_refusal() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    status, [line] = send_mail("--port", port, "--from", "a@example.test", "--to", "b@gmail.test",
                               "--expect-refusal")  # fmt: skip
    assert status == 1
    assert line["error"]["stage"] == "connect"


def test_auth_requested_where_none_is_offered_is_a_refusal(lab: Lab) -> None:
    status, [line] = send_mail(
        "--port", str(lab.server.port), "--user", "app@example.test", "--password", "x",
        "--from", "app@example.test", "--to", "a@gmail.test", "--expect-refusal",
    )  # fmt: skip
    assert status == 0
    assert line["error"]["stage"] == "auth"
