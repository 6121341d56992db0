"""`bulkmail provider-map`: Postfix's transport_maps by MX, over the socketmap protocol.

    bulkmail provider-map --suffixes FILE [--listen 127.0.0.1:10028] [--map transport]

Postfix looks each recipient up in `transport_maps =
socketmap:inet:127.0.0.1:10028:transport` (the whole address: Postfix sends a socketmap
no partial keys); this daemon resolves the address's domain's MX, and when the
best MX host ends with a provider's suffix (`bulkmail.logic.postfix.tuning.transport_for_mx`,
the same table the tuning model derives) answers `OK <provider>:`, so the provider's transport
delivers with its own limits. Anything else is `NOTFOUND` (Postfix's default transport); a DNS
failure is `TEMP` (Postfix defers and asks again). A domain that can never resolve (an empty
label, a label over 63 octets, a name over 253) is routed to the error transport with 5.1.2:
it bounces at once, with the reason, instead of deferring for the queue's lifetime. Answers
are cached for the record's TTL.

A lane split by provider (`bulkmail_lanes.<lane>.per_provider`) asks another map of the
same daemon, `lane-<lane>`: the answer is the route to that provider's own instance
(`OK handoff:[10.25.0.10]:2526`), from `--routes FILE` (map name -> provider -> reply, derived
by `bulkmail.logic.postfix.lanes`); a domain no provider claims takes the `default` route.

The socketmap protocol (socketmap_table(5)): requests and replies are netstrings,
`<length>:<payload>,`; a request is `<map name> <key>`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

from bulkmail.logic.postfix.tuning import (
    bad_domain_route,
    recipient_domain_problem,
    transport_for_mx,
)

LOG = logging.getLogger("bulkmail.provider-map")
MAX_REQUEST = 10000  # Postfix keys are addresses or domains: far below this
MIN_TTL, MAX_TTL, NEGATIVE_TTL = 60, 3600, 300
MAX_CACHE = 100000


class NoMx(Exception):
    """The domain has no MX (NXDOMAIN or no answer): Postfix falls back to the default."""


class TemporaryDnsError(Exception):
    """DNS did not answer (timeout, SERVFAIL): Postfix should defer and retry."""


# domain -> (MX hosts best first, TTL)
ResolveMx = Callable[[str], Awaitable[tuple[list[str], int]]]


async def resolve_mx(domain: str) -> tuple[list[str], int]:
    """The domain's MX hosts, best preference first, and the answer's TTL (dnspython)."""
    import dns.asyncresolver
    import dns.exception
    import dns.resolver

    try:
        answer = await dns.asyncresolver.resolve(domain, "MX", lifetime=5.0)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer) as error:
        raise NoMx(str(error)) from error
    except dns.exception.DNSException as error:
        raise TemporaryDnsError(str(error)) from error
    records = sorted(answer, key=lambda r: r.preference)
    return [r.exchange.to_text() for r in records], answer.rrset.ttl


def netstring(payload: str) -> bytes:
    data = payload.encode()
    return str(len(data)).encode() + b":" + data + b","


async def read_netstring(reader: asyncio.StreamReader) -> str | None:
    """One netstring's payload, or None at end of stream."""
    try:
        length = await reader.readuntil(b":")
    except asyncio.IncompleteReadError:
        return None
    digits = length[:-1]
    if not digits.isdigit() or int(digits) > MAX_REQUEST:
        raise ValueError("bad netstring length")
    payload = await reader.readexactly(int(digits) + 1)
    if payload[-1:] != b",":
        raise ValueError("netstring without trailing comma")
    return payload[:-1].decode("utf-8", "replace")


class ProviderMap:
    """Answers socketmap lookups: recipient domain -> `OK <provider>:` by its MX.

    `routes` adds maps named after lanes: provider -> the reply for that provider's route.
    """

    def __init__(
        self,
        suffixes: Mapping[str, Sequence[str]],
        *,
        map_name: str = "transport",
        routes: Mapping[str, Mapping[str, str]] | None = None,
        resolve: ResolveMx = resolve_mx,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.suffixes = suffixes
        self.map_name = map_name
        self.routes = dict(routes or {})
        self.resolve = resolve
        self.clock = clock
        # domain -> (expiry, provider or None for "no provider claims it")
        self.cache: dict[str, tuple[float, str | None]] = {}

    async def lookup(self, request: str) -> str:
        """The reply payload for one request payload."""
        name, _sep, key = request.partition(" ")
        if name != self.map_name and name not in self.routes:
            known = ", ".join(repr(n) for n in [self.map_name, *self.routes])
            return f"PERM unknown map {name!r}; this server answers {known}"
        # Postfix treats a socketmap like a regexp table: it asks once, with the whole
        # recipient address, never with the domain alone. The domain has the MX.
        address = key.strip()
        key = address.rpartition("@")[2].rstrip(".").lower()
        if not key or any(c.isspace() for c in key) or key.startswith("["):
            return "NOTFOUND "  # no domain, or an address literal: nothing to classify
        if key.startswith(".") and "@" not in address:
            return "NOTFOUND "  # a parent-domain key (.example.com), not a recipient's domain
        problem = recipient_domain_problem(key)
        if problem is not None:
            LOG.info("%s: bounced, %s", key[:80], problem)
            return f"OK {bad_domain_route(key, problem)}"
        try:
            provider = await self.provider(key)
        except TemporaryDnsError as error:
            LOG.warning("MX of %s: %s", key, error)
            return f"TEMP MX lookup for {key} failed"
        if name == self.map_name:
            return f"OK {provider}:" if provider else "NOTFOUND "
        route = self.routes[name].get(provider or "default")
        return f"OK {route}" if route else "NOTFOUND "

    async def provider(self, domain: str) -> str | None:
        """The provider whose suffix the domain's best MX host ends with (cached for its TTL)."""
        cached = self.cache.get(domain)
        if cached and cached[0] > self.clock():
            return cached[1]
        try:
            hosts, ttl = await self.resolve(domain)
        except NoMx:
            return self._remember(domain, None, NEGATIVE_TTL)
        provider = transport_for_mx(hosts[0], self.suffixes) if hosts else None
        LOG.info("%s: MX %s -> %s", domain, hosts[0] if hosts else "-", provider or "default")
        return self._remember(domain, provider, min(max(ttl, MIN_TTL), MAX_TTL))

    def _remember(self, key: str, provider: str | None, ttl: int) -> str | None:
        if len(self.cache) >= MAX_CACHE:
            self.cache.pop(next(iter(self.cache)))  # the oldest entry
        self.cache[key] = (self.clock() + ttl, provider)
        return provider

    async def serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """One Postfix connection: any number of requests until it closes."""
        try:
            while (request := await read_netstring(reader)) is not None:
                writer.write(netstring(await self.lookup(request)))
                await writer.drain()
        except (ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
            LOG.warning("dropping a client: %s", error)
        except ConnectionError:
            pass
        finally:
            writer.close()


def load_suffixes(path: Path) -> dict[str, list[str]]:
    """The provider -> MX suffix table the role writes (tuning model's provider_suffixes)."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not all(
        isinstance(v, list) and all(isinstance(s, str) for s in v) for v in data.values()
    ):
        raise ValueError(f"{path}: expected a JSON object of provider name -> list of suffixes")
    return data


def load_routes(path: Path | None) -> dict[str, dict[str, str]]:
    """The lanes' route maps the role writes: map name -> provider -> reply."""
    if path is None:
        return {}
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not all(
        isinstance(routes, dict) and all(isinstance(r, str) for r in routes.values())
        for routes in data.values()
    ):
        raise ValueError(f"{path}: expected a JSON object of map name -> provider -> route")
    return data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suffixes", type=Path, required=True,
                        help="JSON file: provider name -> MX host suffixes")  # fmt: skip
    parser.add_argument("--listen", default="127.0.0.1:10028", help="host:port to listen on")
    parser.add_argument("--map", default="transport", help="the socketmap name Postfix asks")
    parser.add_argument("--routes", type=Path, default=None,
                        help="JSON file: lane map name -> provider -> route reply")  # fmt: skip


async def serve(args: argparse.Namespace) -> None:
    host, _sep, port = args.listen.rpartition(":")
    provider_map = ProviderMap(
        load_suffixes(args.suffixes), map_name=args.map, routes=load_routes(args.routes)
    )
    server = await asyncio.start_server(provider_map.serve_client, host, int(port))
    names = ", ".join(repr(name) for name in [args.map, *provider_map.routes])
    LOG.info("answering socketmap %s on %s", names, args.listen)
    async with server:
        await server.serve_forever()


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    asyncio.run(serve(args))
    return 0
