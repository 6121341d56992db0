"""`bulkmail submit`: sign a message and hand it to each recipient's provider instance.

    bulkmail submit --lane bulk --from SENDER --to RCPT [--to RCPT ...] [--routes FILE]
                    [--suffixes FILE] [--opendkim-conf FILE] < message

A lane split by provider has a Postfix instance per provider, without a milter. This
dispatcher signs the message once (`bulkmail.signer`, OpenDKIM's keys and tables), classifies
each recipient domain by its best MX as the lane's intake would (`ProviderMap.provider`),
and delivers each provider's recipients in one SMTP transaction to that provider's instance
(`lane-<lane>` of the routes file; a provider without a route takes `default`).

Output: one JSON line per provider group: `provider`, `route` (`host:port`), and either
`reply` (the instance took the message for `recipients`) or `error` and `temporary` (it did
not, for `recipients`); `refused`, if present, maps recipients refused at RCPT TO to their
reply. Accepted recipients must never be sent again: a caller retries only the others.

Exit status: 0 all taken; 75 (EX_TEMPFAIL) some recipient failed temporarily, or a DNS
lookup failed (then nothing was sent); 1 some failed permanently and none temporarily;
2 nothing sent because the message cannot be signed or the configuration is wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import smtplib
import socket
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from bulkmail import signer
from bulkmail.logic.model.lanes import ROUTE_MAP_PREFIX, route_map_name
from bulkmail.provider_map import (
    ProviderMap,
    ResolveMx,
    TemporaryDnsError,
    load_routes,
    load_suffixes,
    resolve_mx,
)

ROUTES = Path("/etc/bulkmail/lane-routes.json")
SUFFIXES = Path("/etc/bulkmail/provider-suffixes.json")
DEFAULT = "default"
EX_TEMPFAIL = 75
SMTP_TIMEOUT = 60.0
_ROUTE = re.compile(r"^[^:\s]+:\[([^\]\s]+)\]:(\d{1,5})$")


class ConfigError(Exception):
    """The command line or the routes do not say where the mail goes."""


@dataclass
class Delivery:
    """What one provider group's SMTP transaction did."""

    provider: str
    route: str
    recipients: list[str]
    reply: str | None = None
    error: str | None = None
    temporary: bool = False
    refused: dict[str, str] = field(default_factory=dict)
    refused_temporarily: bool = False

    def as_dict(self) -> dict[str, Any]:
        host, port = parse_route(self.route)
        result: dict[str, Any] = {
            "provider": self.provider,
            "route": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
            "recipients": self.recipients,
        }
        if self.error is not None:
            result.update(error=self.error, temporary=self.temporary)
        else:
            result["reply"] = self.reply
        if self.refused:
            result["refused"] = self.refused
        return result


def check_address(address: str, option: str) -> str:
    """An envelope address smtplib can send (ASCII, no spaces); ConfigError names a bad one."""
    if not address.isascii() or any(c.isspace() or c in "<>" for c in address):
        raise ConfigError(f"{option} {address!r} is not an ASCII address without spaces")
    return address


def recipient_domain(address: str) -> str:
    """The domain of an envelope address, lower case; ConfigError names a bad one."""
    domain = check_address(address, "--to").rpartition("@")[2].rstrip(".").lower()
    if "@" not in address or not domain:
        raise ConfigError(f"--to {address!r} is not an address with a domain")
    return domain


def group_by_provider(
    recipients: Iterable[str], providers: Mapping[str, str | None]
) -> dict[str, list[str]]:
    """Recipients by the provider of their domain (None: `default`), in order of first use."""
    groups: dict[str, list[str]] = {}
    for address in recipients:
        groups.setdefault(providers[recipient_domain(address)] or DEFAULT, []).append(address)
    return groups


def parse_route(route: str) -> tuple[str, int]:
    """(host, port) of a route `transport:[host]:port`, as the role writes lane-routes.json."""
    match = _ROUTE.match(route)
    if not match or not 0 < int(match[2]) < 65536:
        raise ConfigError(f"route {route!r} is not 'transport:[host]:port'")
    return match[1].removeprefix("ipv6:"), int(match[2])


def lane_routes(
    routes: Mapping[str, Mapping[str, str]], lane: str, source: Path
) -> Mapping[str, str]:
    """The lane's map (`lane-<lane>`): provider -> route (`source`: for errors)."""
    found = routes.get(route_map_name(lane))
    if found is None:
        known = ", ".join(sorted(name.removeprefix(ROUTE_MAP_PREFIX) for name in routes)) or "none"
        raise ConfigError(f"{source}: lane {lane!r} has no routes (lanes with routes: {known})")
    return found


def route_for(routes: Mapping[str, str], lane: str, provider: str, source: Path) -> str:
    """The lane's route for a provider, else the lane's default route (`source`: for errors)."""
    route = routes.get(provider) or routes.get(DEFAULT)
    if route is None:
        raise ConfigError(
            f"{source}: lane {lane!r} has no route for {provider!r} and no 'default' route"
        )
    try:
        parse_route(route)
    except ConfigError as error:
        raise ConfigError(f"{source}: lane {lane!r}, {provider!r}: {error}") from None
    return route


async def classify(
    domains: Iterable[str], suffixes: Mapping[str, Sequence[str]], resolve: ResolveMx
) -> dict[str, str | None]:
    """Each domain's provider by its best MX (None: no MX or no provider), each looked up once.

    TemporaryDnsError carries the domain whose lookup failed.
    """
    classifier = ProviderMap(suffixes, resolve=resolve)
    unique = sorted(set(domains))

    async def provider(domain: str) -> str | None:
        try:
            return await classifier.provider(domain)
        except TemporaryDnsError as error:
            raise TemporaryDnsError(f"the MX lookup of {domain} failed: {error}") from error

    return dict(zip(unique, await asyncio.gather(*map(provider, unique)), strict=True))


def _reply(code: int, text: bytes | str) -> str:
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {text}".replace("\n", " ")


def deliver(delivery: Delivery, sender: str, message: bytes) -> Delivery:
    """One SMTP transaction for the group; fills in reply or error (never raises)."""
    host, port = parse_route(delivery.route)
    smtp = None
    try:
        smtp = smtplib.SMTP(host, port, local_hostname=socket.gethostname(), timeout=SMTP_TIMEOUT)
        _transaction(smtp, delivery, sender, message)
    except smtplib.SMTPResponseException as error:  # 4xx or 5xx to EHLO, MAIL or DATA
        delivery.error = f"{host}:{port}: {_reply(error.smtp_code, error.smtp_error)}"
        delivery.temporary = not 500 <= error.smtp_code < 600
    except (OSError, smtplib.SMTPException) as error:  # refused, lost connection, timeout
        delivery.error, delivery.temporary = f"{host}:{port}: {error}", True
    finally:
        if smtp is not None:
            try:
                smtp.quit()  # after 250 to DATA the message is taken, whatever QUIT says
            except (OSError, smtplib.SMTPException):
                smtp.close()
    return delivery


def _transaction(smtp: smtplib.SMTP, delivery: Delivery, sender: str, message: bytes) -> None:
    code, text = smtp.ehlo()
    if code != 250:
        raise smtplib.SMTPHeloError(code, text)
    code, text = smtp.mail(sender)
    if code != 250:
        raise smtplib.SMTPSenderRefused(code, text, sender)
    accepted = []
    for address in delivery.recipients:
        code, text = smtp.rcpt(address)
        if code in (250, 251):
            accepted.append(address)
        else:
            delivery.refused[address] = _reply(code, text)
            delivery.refused_temporarily |= not 500 <= code < 600
    delivery.recipients = accepted  # from here on, what the reply or error applies to
    if not accepted:
        delivery.error, delivery.temporary = "no recipient was accepted", False
        return
    code, text = smtp.data(message)
    if code != 250:
        raise smtplib.SMTPDataError(code, text)
    delivery.reply = _reply(code, text)


def exit_status(deliveries: Iterable[Delivery]) -> int:
    """75 when anything failed temporarily (retry it), else 1 when anything failed, else 0."""
    deliveries = list(deliveries)
    if any((d.error and d.temporary) or d.refused_temporarily for d in deliveries):
        return EX_TEMPFAIL
    return 1 if any(d.error or d.refused for d in deliveries) else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lane", required=True, help="the lane, e.g. bulk (its map: lane-bulk)")
    parser.add_argument(
        "--from", dest="sender", required=True, metavar="SENDER", help="envelope sender (MAIL FROM)"
    )
    parser.add_argument(
        "--to",
        dest="recipients",
        action="append",
        required=True,
        metavar="RCPT",
        help="envelope recipient; repeat for more",
    )
    parser.add_argument(
        "--routes",
        type=Path,
        default=ROUTES,
        help=f"JSON: lane map -> provider -> route (default {ROUTES})",
    )
    parser.add_argument(
        "--suffixes",
        type=Path,
        default=SUFFIXES,
        help=f"JSON: provider -> MX host suffixes (default {SUFFIXES})",
    )
    signer.add_table_arguments(parser)


def run(
    args: argparse.Namespace,
    resolve: ResolveMx = resolve_mx,
    stdin: BinaryIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Sign, classify, route, deliver; print one JSON line per group; the exit status."""
    stdin, stdout, stderr = stdin or sys.stdin.buffer, stdout or sys.stdout, stderr or sys.stderr
    # SMTP's line ends before signing: smtplib sends bytes as they are.
    message = re.sub(rb"\r?\n", b"\r\n", stdin.read())
    try:
        signed = signer.Signer.from_conf(args.opendkim_conf).sign(message)
        routes = lane_routes(load_routes(args.routes), args.lane, args.routes)
        suffixes = load_suffixes(args.suffixes)
        check_address(args.sender, "--from")
        domains = [recipient_domain(address) for address in args.recipients]
        providers = asyncio.run(classify(domains, suffixes, resolve))
        deliveries = [
            Delivery(provider, route_for(routes, args.lane, provider, args.routes), recipients)
            for provider, recipients in group_by_provider(args.recipients, providers).items()
        ]
    except (signer.SigningError, ConfigError, OSError, ValueError) as error:
        # OSError, ValueError: the routes or suffixes file is unreadable or malformed
        print(f"bulkmail submit: error: {error}; nothing was sent", file=stderr)
        return 2
    except TemporaryDnsError as error:
        print(f"bulkmail submit: {error}; nothing was sent, try again later", file=stderr)
        return EX_TEMPFAIL
    for delivery in deliveries:
        deliver(delivery, args.sender, signed)
        print(json.dumps(delivery.as_dict()), file=stdout, flush=True)
    return exit_status(deliveries)
