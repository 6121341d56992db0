"""`bulkmail provider-map`: a socketmap server that Postfix asks for a domain's transport."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import fake_dns
import pytest

from bulkmail.provider_map import ProviderMap, netstring

SUFFIXES = {
    "google": [".google.com", ".google.test"],
    "microsoft": [".mail.protection.outlook.com"],
}
ZONES = {
    "acme.test": (["aspmx.l.google.test.", "alt1.aspmx.l.example.net."], 300),
    "contoso.example": (["contoso-example.mail.protection.outlook.com."], 30),
    "example.org": (["mx.example.org."], 300),
}


def fake_resolver() -> fake_dns.FakeDns:
    """MX answers from this module's ZONES."""
    return fake_dns.FakeDns(ZONES)


async def ask(provider_map: ProviderMap, *requests: str) -> list[bytes]:
    """Start the server, send the requests on one connection as Postfix does, read replies."""
    server = await asyncio.start_server(provider_map.serve_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    replies = []
    for request in requests:
        writer.write(netstring(request))
        await writer.drain()
        length = await reader.readuntil(b":")
        replies.append(await reader.readexactly(int(length[:-1]) + 1))
    writer.close()
    server.close()
    await server.wait_closed()
    return [reply[:-1] for reply in replies]


def test_a_workspace_domain_goes_to_the_google_transport() -> None:
    dns = fake_resolver()
    replies = asyncio.run(
        ask(
            ProviderMap(SUFFIXES, resolve=dns),
            "transport alice@acme.test",  # Postfix asks with the whole address
            "transport acme.test",
            "transport contoso.example",
            "transport example.org",
            "transport nowhere.test",
            "transport .test",
            "transport broken.test",
            "aliases acme.test",
        )
    )
    assert replies == [
        b"OK google:",
        b"OK google:",
        b"OK microsoft:",
        b"NOTFOUND ",
        b"NOTFOUND ",
        b"NOTFOUND ",
        b"TEMP MX lookup for broken.test failed",
        b"PERM unknown map 'aliases'; this server answers 'transport'",
    ]
    assert dns.asked == ["acme.test", "contoso.example", "example.org", "nowhere.test",
                         "broken.test"]  # fmt: skip


def test_a_lane_route_map_hands_each_provider_to_its_instance() -> None:
    routes = {"lane-bulk": {"google": "handoff:[127.0.0.1]:2526",
                            "default": "handoff:[127.0.0.1]:2530"}}  # fmt: skip
    dns = fake_resolver()
    replies = asyncio.run(
        ask(
            ProviderMap(SUFFIXES, resolve=dns, routes=routes),
            "lane-bulk alice@acme.test",
            "lane-bulk bob@example.org",  # no provider claims it: the default route
            "lane-bulk carol@nowhere.test",  # no MX at all: the default route too
            "lane-bulk dave@contoso.example",  # a provider without a route of this lane
            "transport alice@acme.test",  # the provider map beside it, from the same cache
            "lane-bulk broken.test",
            "lane-news x@acme.test",
        )
    )
    assert replies == [
        b"OK handoff:[127.0.0.1]:2526",
        b"OK handoff:[127.0.0.1]:2530",
        b"OK handoff:[127.0.0.1]:2530",
        b"NOTFOUND ",
        b"OK google:",
        b"TEMP MX lookup for broken.test failed",
        b"PERM unknown map 'lane-news'; this server answers 'transport', 'lane-bulk'",
    ]
    assert dns.asked == ["acme.test", "example.org", "nowhere.test", "contoso.example",
                         "broken.test"]  # fmt: skip


def test_answers_are_cached_for_the_ttl_within_bounds() -> None:
    dns = fake_resolver()
    now = [1000.0]
    provider_map = ProviderMap(SUFFIXES, resolve=dns, clock=lambda: now[0])

    async def lookups() -> list[str]:
        got = [await provider_map.lookup("transport ACME.test.")]
        got.append(await provider_map.lookup("transport contoso.example"))
        now[0] += 59  # contoso's TTL is 30 s, but answers are kept at least 60 s
        got.append(await provider_map.lookup("transport contoso.example"))
        now[0] += 300
        got.append(await provider_map.lookup("transport acme.test"))
        return got

    assert asyncio.run(lookups()) == ["OK google:", "OK microsoft:", "OK microsoft:", "OK google:"]
    assert dns.asked == ["acme.test", "contoso.example", "acme.test"]


def test_a_bad_netstring_drops_the_client_not_the_server() -> None:
    async def scenario() -> bytes:
        provider_map = ProviderMap(SUFFIXES, resolve=fake_resolver())
        server = await asyncio.start_server(provider_map.serve_client, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _reader, bad = await asyncio.open_connection("127.0.0.1", port)
        bad.write(b"xx:garbage,")
        await bad.drain()
        bad.close()
        (reply,) = await ask_port(port, "transport acme.test")
        server.close()
        await server.wait_closed()
        return reply

    async def ask_port(port: int, request: str) -> list[bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(netstring(request))
        await writer.drain()
        length = await reader.readuntil(b":")
        reply = await reader.readexactly(int(length[:-1]) + 1)
        writer.close()
        return [reply[:-1]]

    assert asyncio.run(scenario()) == b"OK google:"


def test_the_command_serves_from_a_suffix_file(tmp_path: Path) -> None:
    table = tmp_path / "suffixes.json"
    table.write_text(json.dumps(SUFFIXES))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bulkmail", "provider-map", "--suffixes", str(table),
         "--listen", "127.0.0.1:0"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "answering socketmap 'transport'" in line
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_bad_suffix_file_is_refused(tmp_path: Path) -> None:
    table = tmp_path / "suffixes.json"
    table.write_text(json.dumps({"google": ".google.com"}))
    run = subprocess.run(
        [sys.executable, "-m", "bulkmail", "provider-map", "--suffixes", str(table)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert run.returncode != 0
    assert f"{table}: expected a JSON object of provider name -> list of suffixes" in run.stderr


@pytest.mark.parametrize("key", ["", "a b", "user@", "user@[192.0.2.1]"])
def test_keys_without_a_domain_are_not_found(key: str) -> None:
    started = time.monotonic()
    reply = asyncio.run(ProviderMap(SUFFIXES, resolve=fake_resolver()).lookup(f"transport {key}"))
    assert reply == "NOTFOUND "
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("user@.acme.test", "an empty label"),
        ("user@acme..test", "an empty label"),
        ("user@" + "a" * 64 + ".test", "a label longer than 63 octets"),
        ("user@" + ".".join(["a" * 60] * 5), "more than 253"),
    ],
)
@pytest.mark.parametrize("map_name", ["transport", "lane-bulk"])
def test_a_malformed_domain_bounces_at_once_and_dns_is_not_asked(
    key: str, problem: str, map_name: str
) -> None:
    asked: list[str] = []

    async def resolve(domain: str) -> tuple[list[str], int]:
        asked.append(domain)
        raise AssertionError("DNS must not be asked")

    routes = {"lane-bulk": {"google": "handoff:[10.25.0.10]:2526"}}
    reply = asyncio.run(
        ProviderMap(SUFFIXES, routes=routes, resolve=resolve).lookup(f"{map_name} {key}")
    )
    assert reply.startswith("OK error:5.1.2 Bad destination domain ")
    assert problem in reply
    assert asked == []
