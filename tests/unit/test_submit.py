"""`bulkmail submit`: sign once, group recipients by their MX's provider, one SMTP transaction
to each provider's instance (aiosmtpd servers here), and JSON that says who was accepted."""

from __future__ import annotations

import io
import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dkim
import fake_dns
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from cryptography.hazmat.primitives.asymmetric import rsa
from test_signer import MESSAGE, txt_for, write_tables

from bulkmail.cli import build_parser
from bulkmail.submit import (
    ConfigError,
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

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append(envelope)
        return f"250 2.0.0 Ok: queued as Q{len(self.received)}"


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
) -> tuple[int, list[dict[str, Any]], str]:
    write_tables(tmp_path, key)
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
