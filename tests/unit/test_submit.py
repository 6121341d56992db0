"""`bulkmail submit`: sign once, group recipients by their MX's provider, one SMTP transaction
to each provider's instance (aiosmtpd servers here), and JSON that says who was accepted."""

from __future__ import annotations

import io
import json
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dkim
import fake_dns
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from cryptography.hazmat.primitives.asymmetric import rsa
from test_signer import MESSAGE, txt_for, write_tables

import bulkmail.submit
from bulkmail.cli import build_parser
from bulkmail.submit import (
    ConfigError,
    Delivery,
    exit_status,
    group_by_provider,
    lane_routes,
    parse_route,
    recipient_domain,
    route_for,
    run,
)

SUFFIXES = {"google": [".google.test"], "microsoft": [".outlook.test"]}
ZONES = {
    "gmail.test": ["alt1.aspmx.l.google.test.", "mx.other.test."],
    "workspace.test": ["aspmx.l.google.test."],
    "contoso.test": ["contoso-test.mail.protection.outlook.test."],
}


def fake_resolver() -> fake_dns.FakeDns:
    """MX answers from this module's ZONES."""
    return fake_dns.FakeDns({domain: (hosts, 300) for domain, hosts in ZONES.items()})


class Instance:
    """A provider's Postfix instance: records each transaction, refuses listed recipients."""

    def __init__(self, refuse: dict[str, str] | None = None) -> None:
        self.refuse = refuse or {}
        self.received: list[Envelope] = []
        self.data_reply: str | None = None  # the reply to the final dot, when not 250

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply is not None:
            return self.data_reply
        self.received.append(envelope)
        return f"250 2.0.0 Ok: queued as Q{len(self.received)}"


class Scripted:
    """An SMTP server that plays along up to the final dot, then sends `after_dot` (maybe a
    reply cut short, maybe nothing) and drops the connection; `silent`: it says nothing and
    keeps the connection until the client gives up; `drop_at_data`: it closes instead of 354.
    """

    def __init__(
        self, after_dot: bytes = b"", *, silent: bool = False, drop_at_data: bool = False
    ) -> None:
        self.after_dot, self.silent, self.drop_at_data = after_dot, silent, drop_at_data
        self.messages: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = int(self.listener.getsockname()[1])
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stopped.is_set():
            try:
                connection, _peer = self.listener.accept()
            except TimeoutError:
                continue
            connection.settimeout(10)
            with connection, connection.makefile("rb") as reader:
                self.converse(connection, reader)

    def converse(self, connection: socket.socket, reader: Any) -> None:
        connection.sendall(b"220 scripted ESMTP\r\n")
        for line in reader:
            verb = line[:4].upper()
            if verb == b"QUIT":
                connection.sendall(b"221 2.0.0 Bye\r\n")
                return
            if verb != b"DATA":
                connection.sendall(b"250 2.0.0 Ok\r\n")
                continue
            if self.drop_at_data:
                return
            connection.sendall(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            self.messages.append(b"".join(iter(reader.readline, b".\r\n")))
            if self.silent:
                reader.read()  # until the client closes
            connection.sendall(self.after_dot)
            return

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.listener.close()


@pytest.fixture
def scripted() -> Iterator[list[Scripted]]:
    """Start Scripted servers by appending them; all are stopped after the test."""
    servers: list[Scripted] = []
    yield servers
    for server in servers:
        server.stop()


def free_port() -> int:
    """A port nothing listens on (connections to it are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def instances() -> Iterator[dict[str, tuple[Instance, int]]]:
    """google and default instances on two ports; microsoft's port refuses connections."""
    started = {}
    for provider in ("google", "default"):
        handler = Instance()
        controller = Controller(handler, hostname="127.0.0.1", port=free_port())
        controller.start()
        started[provider] = (handler, controller)
    yield {name: (handler, ctl.port) for name, (handler, ctl) in started.items()}
    for _handler, controller in started.values():
        controller.stop()


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def submit(
    tmp_path: Path,
    key: rsa.RSAPrivateKey,
    ports: dict[str, int],
    recipients: list[str],
    *,
    dns: fake_dns.FakeDns | None = None,
    message: bytes = MESSAGE,
    lane: str = "bulk",
    break_key: Callable[[Path], None] | None = None,
) -> tuple[int, list[dict[str, Any]], str]:
    write_tables(tmp_path, key)
    if break_key is not None:
        break_key(tmp_path / "keys" / "example.test" / "lab2026a.private")
    routes, suffixes = tmp_path / "lane-routes.json", tmp_path / "provider-suffixes.json"
    routes.write_text(json.dumps({"lane-bulk": {
        provider: f"handoff:[127.0.0.1]:{port}" for provider, port in ports.items()
    }}))  # fmt: skip
    suffixes.write_text(json.dumps(SUFFIXES))
    argv = ["submit", "--lane", lane, "--from", "bounces@example.test",
            "--routes", str(routes), "--suffixes", str(suffixes),
            "--opendkim-conf", str(tmp_path / "opendkim.conf")]  # fmt: skip
    for address in recipients:
        argv += ["--to", address]
    stdout, stderr = io.StringIO(), io.StringIO()
    code = run(build_parser().parse_args(argv), dns or fake_resolver(), io.BytesIO(message), stdout,
               stderr)  # fmt: skip
    return code, [json.loads(line) for line in stdout.getvalue().splitlines()], stderr.getvalue()


# --- the pure parts --------------------------------------------------------------------------


def test_recipients_group_by_their_domains_provider_in_order() -> None:
    providers = {"gmail.test": "google", "contoso.test": "microsoft", "example.org": None}
    groups = group_by_provider(
        ["a@gmail.test", "b@contoso.test", "c@Example.ORG", "d@gmail.test"], providers
    )
    assert groups == {
        "google": ["a@gmail.test", "d@gmail.test"],
        "microsoft": ["b@contoso.test"],
        "default": ["c@Example.ORG"],
    }


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("bob", "is not an address with a domain"),
        ("bob@", "is not an address with a domain"),
        ("bob @example.org", "is not an ASCII address without spaces"),
        ("bøb@example.org", "is not an ASCII address without spaces"),
    ],
)
def test_a_recipient_smtp_cannot_take_is_refused(address: str, problem: str) -> None:
    assert recipient_domain("Bob@Example.ORG.") == "example.org"
    with pytest.raises(ConfigError, match=re.escape(f"--to {address!r} {problem}")):
        recipient_domain(address)


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        ("handoff:[10.25.0.10]:2526", ("10.25.0.10", 2526)),
        ("smtp:[ipv6:2001:db8::10]:2527", ("2001:db8::10", 2527)),
    ],
)
def test_a_route_gives_host_and_port(route: str, expected: tuple[str, int]) -> None:
    assert parse_route(route) == expected


@pytest.mark.parametrize(
    "route",
    ["[10.25.0.10]:2526", "handoff:10.25.0.10:2526", "handoff:[10.25.0.10]", "x:[h]:70000"],
)
def test_a_route_that_is_not_transport_host_port_is_refused(route: str) -> None:
    with pytest.raises(
        ConfigError, match=re.escape(f"route {route!r} is not 'transport:[host]:port'")
    ):
        parse_route(route)


def test_a_provider_without_a_route_takes_the_lanes_default() -> None:
    routes = {"lane-bulk": {"google": "handoff:[h]:1", "default": "handoff:[h]:5"}}
    source = Path("/etc/bulkmail/lane-routes.json")
    bulk = lane_routes(routes, "bulk", source)

    assert route_for(bulk, "bulk", "google", source) == "handoff:[h]:1"
    assert route_for(bulk, "bulk", "yahoo", source) == "handoff:[h]:5"
    with pytest.raises(ConfigError, match=f"^{source}: lane 'news' has no routes .*: bulk"):
        lane_routes(routes, "news", source)
    with pytest.raises(ConfigError, match=f"^{source}: lane 'bulk' has no route for 'yahoo' and"):
        route_for({"google": "handoff:[h]:1"}, "bulk", "yahoo", source)
    with pytest.raises(ConfigError, match=f"^{source}: lane 'bulk', 'google': route 'x' is not"):
        route_for({"google": "x"}, "bulk", "google", source)


# --- the command against SMTP servers ------------------------------------------------------


def test_two_providers_get_one_signed_transaction_each(
    tmp_path: Path, key: rsa.RSAPrivateKey, instances: dict[str, tuple[Instance, int]]
) -> None:
    ports = {name: port for name, (_handler, port) in instances.items()}
    dns = fake_resolver()

    code, lines, err = submit(
        tmp_path, key, ports, ["a@gmail.test", "b@example.org", "c@workspace.test"], dns=dns
    )

    assert (code, err) == (0, "")
    assert lines == [
        {"provider": "google", "route": f"127.0.0.1:{ports['google']}",
         "recipients": ["a@gmail.test", "c@workspace.test"],
         "reply": "250 2.0.0 Ok: queued as Q1"},
        {"provider": "default", "route": f"127.0.0.1:{ports['default']}",
         "recipients": ["b@example.org"], "reply": "250 2.0.0 Ok: queued as Q1"},
    ]  # fmt: skip
    assert sorted(dns.asked) == ["example.org", "gmail.test", "workspace.test"]
    for provider, recipients in (("google", ["a@gmail.test", "c@workspace.test"]),
                                 ("default", ["b@example.org"])):  # fmt: skip
        [envelope] = instances[provider][0].received
        assert envelope.mail_from == "bounces@example.test"
        assert envelope.rcpt_tos == recipients
        assert isinstance(envelope.original_content, bytes)
        assert envelope.original_content.count(b"DKIM-Signature:") == 1
        assert dkim.verify(envelope.original_content, dnsfunc=txt_for(key))


def test_a_refused_port_fails_its_group_with_75_and_the_others_are_delivered(
    tmp_path: Path, key: rsa.RSAPrivateKey, instances: dict[str, tuple[Instance, int]]
) -> None:
    ports = {name: port for name, (_handler, port) in instances.items()}
    ports["microsoft"] = free_port()

    code, lines, _err = submit(tmp_path, key, ports, ["a@contoso.test", "b@gmail.test"])

    assert code == 75
    assert lines[0]["provider"] == "microsoft"
    assert lines[0]["recipients"] == ["a@contoso.test"]
    assert lines[0]["temporary"] is True
    assert "Connection refused" in lines[0]["error"]
    assert "reply" not in lines[0]
    assert lines[1] == {
        "provider": "google",
        "route": f"127.0.0.1:{ports['google']}",
        "recipients": ["b@gmail.test"],
        "reply": "250 2.0.0 Ok: queued as Q1",
    }
    assert len(instances["google"][0].received) == 1


def test_refused_recipients_are_listed_and_only_the_accepted_are_reported_sent(
    tmp_path: Path, key: rsa.RSAPrivateKey, instances: dict[str, tuple[Instance, int]]
) -> None:
    google, port = instances["google"]
    google.refuse = {
        "gone@gmail.test": "550 5.1.1 no such user",
        "full@gmail.test": "452 4.2.2 full",
    }

    code, [line], _err = submit(
        tmp_path, key, {"default": port},
        ["a@gmail.test", "gone@gmail.test", "full@gmail.test"],
    )  # fmt: skip

    assert code == 75  # full@ is worth another try
    assert line["recipients"] == ["a@gmail.test"]
    assert line["refused"] == {"gone@gmail.test": "550 5.1.1 no such user",
                               "full@gmail.test": "452 4.2.2 full"}  # fmt: skip
    assert google.received[0].rcpt_tos == ["a@gmail.test"]

    google.refuse = {"gone@gmail.test": "550 5.1.1 no such user"}
    code, [line], _err = submit(tmp_path / "2", key, {"default": port}, ["gone@gmail.test"])
    assert code == 1
    assert line["error"] == "no recipient was accepted"
    assert line["temporary"] is False


def test_a_dns_failure_sends_nothing_and_exits_75(
    tmp_path: Path, key: rsa.RSAPrivateKey, instances: dict[str, tuple[Instance, int]]
) -> None:
    ports = {name: port for name, (_handler, port) in instances.items()}

    code, lines, err = submit(tmp_path, key, ports, ["a@gmail.test", "b@broken.test"])

    assert (code, lines) == (75, [])
    assert "the MX lookup of broken.test failed" in err
    assert all(not handler.received for handler, _port in instances.values())


@pytest.mark.parametrize(
    ("lane", "message", "error"),
    [
        ("bulk", MESSAGE.replace(b"alice@example.test", b"alice@shop.test"),
         "no KeyTable/SigningTable entry signs mail from shop.test"),
        ("news", MESSAGE, "lane-routes.json: lane 'news' has no routes (lanes with routes: bulk)"),
    ],
)  # fmt: skip
def test_what_cannot_be_signed_or_routed_exits_2_before_sending(
    tmp_path: Path,
    key: rsa.RSAPrivateKey,
    instances: dict[str, tuple[Instance, int]],
    lane: str,
    message: bytes,
    error: str,
) -> None:
    ports = {name: port for name, (_handler, port) in instances.items()}
    dns = fake_resolver()

    code, lines, err = submit(
        tmp_path, key, ports, ["a@gmail.test"], dns=dns, message=message, lane=lane
    )

    assert (code, lines) == (2, [])
    assert error in err
    assert err.startswith("bulkmail submit: error: ") and err.rstrip().endswith("nothing was sent")
    assert all(not handler.received for handler, _port in instances.values())
    assert dns.asked == []  # the message is signed, the lane known, before any lookup


def test_python_dash_m_bulkmail_submit(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    write_tables(tmp_path, key)
    routes = tmp_path / "lane-routes.json"
    routes.write_text(json.dumps({"lane-bulk": {"default": "handoff:[127.0.0.1]:2530"}}))
    result = subprocess.run(
        [sys.executable, "-m", "bulkmail", "submit", "--lane", "news", "--from", "b@example.test",
         "--to", "a@example.org", "--routes", str(routes), "--opendkim-conf",
         str(tmp_path / "opendkim.conf")],
        input=MESSAGE, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (2, b"")
    assert b"lane 'news' has no routes (lanes with routes: bulk)" in result.stderr


# --- what is not the server's permanent refusal never exits 1 ------------------------------


def test_a_connection_lost_after_the_final_dot_is_unknown_and_exits_3(
    tmp_path: Path,
    key: rsa.RSAPrivateKey,
    instances: dict[str, tuple[Instance, int]],
    scripted: list[Scripted],
) -> None:
    """The instance may have queued the message: neither sent nor failed, never retried as
    temporary, and each group says what is known of it."""
    dropper = Scripted()
    scripted.append(dropper)
    ports = {"google": instances["google"][1], "default": dropper.port, "microsoft": free_port()}

    code, lines, err = submit(
        tmp_path, key, ports, ["a@gmail.test", "b@example.org", "c@example.org", "d@contoso.test"]
    )

    assert code == 3
    google, default, microsoft = lines
    assert google["reply"] == "250 2.0.0 Ok: queued as Q1"
    assert microsoft["temporary"] is True and "unknown" not in microsoft
    assert default["recipients"] == ["b@example.org", "c@example.org"]
    assert default["unknown"] is True
    assert default["temporary"] is False  # a caller retrying what is temporary leaves it alone
    assert "reply" not in default
    error = default["error"]
    assert error.startswith(f"127.0.0.1:{dropper.port}: outcome unknown: the connection was lost ")
    assert "after the message's final '.' and before the reply" in error
    assert "no reply and no queue id came" in error
    assert "do not resend blindly, look in its log for Message-ID <1@example.test> first" in error
    assert f"bulkmail submit: default: {error}" in err
    [message] = dropper.messages  # it did arrive, whole and signed
    assert message.startswith(b"DKIM-Signature:") and message.endswith(b"for a 2 KB body.\r\n")


@pytest.mark.parametrize(
    ("after_dot", "heard"),
    [
        (b"25", "the only reply was '25', cut short"),
        (b"\r\n", "no reply and no queue id came"),
        (b"ok, thanks\r\n", "the only reply was 'ok, thanks\\r\\n', cut short"),
    ],
)
def test_a_reply_that_does_not_say_what_happened_is_unknown(
    tmp_path: Path,
    key: rsa.RSAPrivateKey,
    scripted: list[Scripted],
    after_dot: bytes,
    heard: str,
) -> None:
    server = Scripted(after_dot)
    scripted.append(server)

    code, [line], _err = submit(tmp_path, key, {"default": server.port}, ["b@example.org"])

    assert (code, line["unknown"]) == (3, True)
    assert heard in line["error"]


def test_a_reply_cut_short_after_its_code_says_what_happened(
    tmp_path: Path, key: rsa.RSAPrivateKey, scripted: list[Scripted]
) -> None:
    """The code is whole: the server took the message (250) or refused it (554)."""
    taken = Scripted(b"250 2.0.0 Ok: queued as 4Xk2")
    refused = Scripted(b"554 5.7.1 no")
    scripted += [taken, refused]

    code, [line], _err = submit(tmp_path, key, {"default": taken.port}, ["b@example.org"])
    assert code == 0
    assert line["reply"].startswith("250 2.0.0 Ok: queued as 4Xk2 (the reply was cut short: ")

    code, [line], _err = submit(tmp_path / "2", key, {"default": refused.port}, ["b@example.org"])
    assert (code, line["temporary"]) == (1, False)
    assert "unknown" not in line


def test_no_reply_within_the_wait_after_the_final_dot_is_unknown(
    tmp_path: Path,
    key: rsa.RSAPrivateKey,
    scripted: list[Scripted],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bulkmail.submit, "DATA_END_TIMEOUT", 0.3)
    server = Scripted(silent=True)
    scripted.append(server)

    code, [line], _err = submit(tmp_path, key, {"default": server.port}, ["b@example.org"])

    assert (code, line["unknown"]) == (3, True)
    assert "before the reply (timed out)" in line["error"]
    assert len(server.messages) == 1


def test_a_connection_lost_before_the_message_was_sent_is_temporary(
    tmp_path: Path, key: rsa.RSAPrivateKey, scripted: list[Scripted]
) -> None:
    server = Scripted(drop_at_data=True)
    scripted.append(server)

    code, [line], _err = submit(tmp_path, key, {"default": server.port}, ["b@example.org"])

    assert (code, line["temporary"]) == (75, True)
    assert "unknown" not in line
    assert "Connection unexpectedly closed" in line["error"]
    assert server.messages == []


@pytest.mark.parametrize(
    ("reply", "status", "temporary"),
    [("554 5.7.1 Message refused", 1, False), ("451 4.3.0 Try again later", 75, True)],
)
def test_the_reply_to_the_final_dot_decides_refused_or_retry(
    tmp_path: Path,
    key: rsa.RSAPrivateKey,
    instances: dict[str, tuple[Instance, int]],
    reply: str,
    status: int,
    temporary: bool,
) -> None:
    handler, port = instances["default"]
    handler.data_reply = reply

    code, [line], err = submit(tmp_path, key, {"default": port}, ["b@example.org"])

    assert (code, line["temporary"], err) == (status, temporary, "")
    assert line["error"] == f"127.0.0.1:{port}: {reply}"
    assert "unknown" not in line and "reply" not in line


@pytest.mark.parametrize(
    ("key_file", "problem"),
    [("garbage", "is not a PEM private key"), ("directory", "cannot read key")],
)
def test_a_key_file_that_is_not_a_key_exits_2_not_1(
    tmp_path: Path,
    key: rsa.RSAPrivateKey,
    instances: dict[str, tuple[Instance, int]],
    key_file: str,
    problem: str,
) -> None:
    def break_key(path: Path) -> None:
        path.unlink()
        if key_file == "garbage":
            path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
        else:
            path.mkdir()

    ports = {name: port for name, (_handler, port) in instances.items()}

    code, lines, err = submit(tmp_path, key, ports, ["a@gmail.test"], break_key=break_key)

    assert (code, lines) == (2, [])
    assert "KeyTable:2: " in err and problem in err
    assert err.rstrip().endswith("; nothing was sent")
    assert all(not handler.received for handler, _port in instances.values())


def test_a_bug_before_sending_exits_70_and_says_nothing_was_sent(
    tmp_path: Path,
    key: rsa.RSAPrivateKey,
    instances: dict[str, tuple[Instance, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken_classify(*_args: Any) -> dict[str, str | None]:
        raise KeyError("mx")

    monkeypatch.setattr(bulkmail.submit, "classify", broken_classify)
    ports = {name: port for name, (_handler, port) in instances.items()}

    code, lines, err = submit(tmp_path, key, ports, ["a@gmail.test"])

    assert (code, lines) == (70, [])
    assert "Traceback (most recent call last)" in err
    assert err.splitlines()[-1] == (
        "bulkmail submit: internal error (a bug in bulkmail): KeyError: 'mx'; nothing was sent"
    )
    assert all(not handler.received for handler, _port in instances.values())


def test_a_bug_during_a_transaction_exits_70_and_says_what_was_sent(
    tmp_path: Path,
    key: rsa.RSAPrivateKey,
    instances: dict[str, tuple[Instance, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before the final dot the group was not sent; after it, its outcome is unknown."""
    ports = {name: port for name, (_handler, port) in instances.items()}
    real_reply = bulkmail.submit.data_end_reply

    def broken_reply(smtp: Any) -> tuple[int, bytes]:
        if smtp.sock.getpeername()[1] == ports["default"]:
            raise ZeroDivisionError("division by zero")
        return real_reply(smtp)

    monkeypatch.setattr(bulkmail.submit, "data_end_reply", broken_reply)

    code, [google, default], err = submit(tmp_path, key, ports, ["a@gmail.test", "b@example.org"])

    assert code == 70
    assert google["reply"] == "250 2.0.0 Ok: queued as Q1"
    assert (default["unknown"], default["internal_error"], default["temporary"]) == (
        True, True, False,
    )  # fmt: skip
    assert "outcome unknown: " in default["error"]
    assert (
        "(internal error (a bug in bulkmail): ZeroDivisionError: division by zero)"
        in (default["error"])
    )
    assert "bulkmail submit: default: " in err

    def broken_rcpt(*_args: Any) -> tuple[int, bytes]:
        raise TypeError("rcpt")

    monkeypatch.setattr(bulkmail.submit.smtplib.SMTP, "rcpt", broken_rcpt)
    code, [line], _err = submit(tmp_path / "2", key, ports, ["c@example.org"])
    assert code == 70
    assert line["error"] == (
        f"127.0.0.1:{ports['default']}: internal error (a bug in bulkmail): TypeError: rcpt; "
        "the message was not sent to these recipients"
    )
    assert (line["internal_error"], line["temporary"]) == (True, False)
    assert "unknown" not in line
    assert len(instances["default"][0].received) == 1  # b@, before; nothing for c@


def test_the_exit_status_puts_a_bug_then_unknown_then_retry_then_refused() -> None:
    def group(**state: Any) -> Delivery:
        return Delivery("p", "handoff:[h]:1", ["a@x.test"], **state)

    taken = group(reply="250 ok")
    refused = group(error="550", temporary=False)
    deferred = group(error="451", temporary=True)
    unknown = group(error="lost", unknown=True)
    bug = group(error="bug", internal=True)
    assert exit_status([taken]) == 0
    assert exit_status([taken, refused]) == 1
    assert exit_status([refused, deferred]) == 75
    assert exit_status([refused, deferred, unknown]) == 3
    assert exit_status([unknown, bug, deferred]) == 70


def test_the_help_lists_every_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["submit", "--help"])
    out = capsys.readouterr().out
    for status in ("0   every", "1   the server refused", "2   nothing was sent", "3   unknown",
                   "70  internal error", "75  try again later"):  # fmt: skip
        assert f"\n  {status}" in out
