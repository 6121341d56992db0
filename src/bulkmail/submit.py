"""`bulkmail submit`: sign a message and hand it to each recipient's provider instance.

    bulkmail submit --lane bulk --from SENDER --to RCPT [--to RCPT ...] [--routes FILE]
                    [--suffixes FILE] [--opendkim-conf FILE]
                    [--campaign ID [--tenant T] [--stream S] [--feedback-sender-id ID]
                     [--unsubscribe-keys-file FILE --unsubscribe-url BASE
                      [--unsubscribe-mailto ADDR]]] < message

A lane split by provider has a Postfix instance per provider, without a milter. This
dispatcher signs the message once (`bulkmail.signer`, OpenDKIM's keys and tables), classifies
each recipient domain by its best MX as the lane's intake would (`ProviderMap.provider`),
and delivers each provider's recipients in one SMTP transaction to that provider's instance
(`lane-<lane>` of the routes file; a provider without a route takes `default`).

With `--campaign`, the message gets `Feedback-ID: campaign:tenant:stream:sender-id` (Gmail's
form); with `--unsubscribe-keys-file` and `--unsubscribe-url` too, RFC 8058's
`List-Unsubscribe` (the HTTPS URI of `bulkmail unsubscribe-web`, and a mailto: one with
`--unsubscribe-mailto`) and `List-Unsubscribe-Post: List-Unsubscribe=One-Click`, with a token
for the one recipient (so exactly one `--to`). They replace any headers of those names and are
added before signing: the signature covers them (`signer.ALWAYS_SIGNED`), which Gmail and
Yahoo require. The tenant is `--tenant`, else the From header's domain (the sending domain,
each its own tenant until the model has tenants; the policy service's tenant of the mail).

Output: one JSON line per provider group: `provider`, `route` (`host:port`), and either
`reply` (the instance took the message for `recipients`) or `error` and `temporary` (it did
not, for `recipients`); `refused`, if present, maps recipients refused at RCPT TO to their
reply. `unknown: true` marks a group whose connection was lost after the message's final
dot and before the reply: the instance may have taken it, so it is neither sent nor failed.
`internal_error: true` marks a group a bug of bulkmail's interrupted. Accepted recipients
must never be sent again: a caller retries only the others.

Exit status: EXIT_STATUSES below, which `bulkmail submit --help` prints.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import json
import re
import smtplib
import socket
import sys
import time
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from bulkmail import signer
from bulkmail.logic.feedback.suppression import normalise_domain
from bulkmail.logic.feedback.unsubscribe import (
    feedback_id,
    replace_headers,
    unsubscribe_headers,
)
from bulkmail.logic.model.lanes import ROUTE_MAP_PREFIX, route_map_name
from bulkmail.policy import read_keys_file
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
EXIT_REFUSED = 1
EXIT_NOT_SENT = 2
# Not a sysexits code: none says "sent, but whether it arrived is not known".
EXIT_UNKNOWN = 3
EX_SOFTWARE = 70
EX_TEMPFAIL = 75
EXIT_STATUSES = """\
exit status:
  0   every recipient was taken
  1   the server refused (5xx) the message or some recipients permanently, none temporarily
  2   nothing was sent: the message cannot be signed (no key for its From domain, a key
      file unreadable or not a key) or the command line, routes or suffixes are wrong
  3   unknown: a connection was lost after the message's final "." and before the reply,
      so the server may have taken it ("unknown": true in that group's line); do not
      resend those recipients blindly: look for the Message-ID in the server's log first
  70  internal error (a bug in bulkmail): nothing was sent, or the JSON lines say what was
  75  try again later: some recipients were deferred (4xx, connection refused or lost
      before the end of the message), or an MX lookup failed and nothing was sent
when several apply, the first of 70, 3, 75, 1 is the status
"""
SMTP_TIMEOUT = 60.0
# RFC 5321 4.5.3.2.6 (and Postfix's smtp_data_done_timeout): 10 minutes for the reply to the
# final dot; giving up sooner makes an unknown outcome of a message the server is queueing.
DATA_END_TIMEOUT = 600.0
MAX_REPLY_LINE = 8192
_ROUTE = re.compile(r"^[^:\s]+:\[([^\]\s]+)\]:(\d{1,5})$")


class ConfigError(Exception):
    """The command line or the routes do not say where the mail goes."""


class LostAfterData(Exception):
    """The connection ended after the final dot without a reply that says what happened."""

    def __init__(self, reason: str, partial: bytes) -> None:
        super().__init__(reason)
        self.reason = reason
        self.partial = partial


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
    # The final dot went out: from here a lost connection leaves the outcome unknown.
    data_sent: bool = False
    unknown: bool = False
    internal: bool = False

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
        if self.unknown:
            result["unknown"] = True
        if self.internal:
            result["internal_error"] = True
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


def deliver(delivery: Delivery, sender: str, message: bytes, message_id: str = "") -> Delivery:
    """One SMTP transaction for the group; fills in reply or error (never raises).

    `message_id`: named in the report of an unknown outcome, to look the message up by.
    """
    host, port = parse_route(delivery.route)
    where = f"{host}:{port}"
    smtp = None
    try:
        smtp = smtplib.SMTP(host, port, local_hostname=socket.gethostname(), timeout=SMTP_TIMEOUT)
        _transaction(smtp, delivery, sender, message)
    except LostAfterData as error:
        _unknown(delivery, where, error.reason, error.partial, message_id)
    except smtplib.SMTPResponseException as error:  # 4xx or 5xx to EHLO, MAIL or DATA
        delivery.error = f"{where}: {_reply(error.smtp_code, error.smtp_error)}"
        delivery.temporary = not 500 <= error.smtp_code < 600
    except (OSError, smtplib.SMTPException) as error:  # refused, lost connection, timeout
        delivery.error, delivery.temporary = f"{where}: {error}", True
    except Exception as error:  # a bug of ours: never reported as the server's answer
        delivery.internal = True
        problem = f"internal error (a bug in bulkmail): {type(error).__name__}: {error}"
        if delivery.data_sent:
            _unknown(delivery, where, problem, b"", message_id)
        else:
            delivery.error = f"{where}: {problem}; the message was not sent to these recipients"
            delivery.temporary = False
    finally:
        if smtp is not None:
            try:
                smtp.quit()  # after 250 to DATA the message is taken, whatever QUIT says
            except (OSError, smtplib.SMTPException):
                smtp.close()
    return delivery


def _unknown(delivery: Delivery, where: str, reason: str, partial: bytes, message_id: str) -> None:
    """Neither sent nor failed: the instance may have queued the message before the loss."""
    heard = (
        f"the only reply was {partial.decode('utf-8', 'replace')!r}, cut short"
        if partial.strip()
        else "no reply and no queue id came"
    )
    look = f"for Message-ID {message_id}" if message_id else "for the message"
    delivery.unknown, delivery.temporary = True, False
    delivery.error = (
        f"{where}: outcome unknown: the connection was lost after the message's final '.' "
        f"and before the reply ({reason}); {heard}. The server may have taken the message for "
        f"these recipients: do not resend blindly, look in its log {look} first"
    )


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
    # smtplib's data() cannot tell a connection lost before the final dot (not sent: retry)
    # from one lost after it (maybe taken): the steps are taken one by one here.
    code, text = smtp.docmd("data")
    if code != 354:
        raise smtplib.SMTPDataError(code, text)
    body = re.sub(rb"(?m)^\.", b"..", message)
    smtp.send(body + (b"" if body.endswith(b"\r\n") else b"\r\n") + b".\r\n")
    delivery.data_sent = True
    code, text = data_end_reply(smtp)
    if not 200 <= code < 300:
        raise smtplib.SMTPDataError(code, text)
    delivery.reply = _reply(code, text)


def _reply_code(data: bytes) -> int | None:
    """The code a (maybe partial) reply starts with, when it is a whole 2xx, 4xx or 5xx."""
    if len(data) >= 3 and data[:3].isdigit() and data[:1] in b"245":
        return int(data[:3]) if data[3:4] in (b"", b" ", b"-", b"\r", b"\n") else None
    return None


def data_end_reply(smtp: smtplib.SMTP) -> tuple[int, bytes]:
    """The reply to the final dot. A reply cut short still counts once its code is whole: the
    server says 250 only after it has queued the message. LostAfterData otherwise."""
    if smtp.sock is None or smtp.file is None:  # the 354 reply came through smtp.file
        raise LostAfterData("the connection is closed", b"")
    smtp.sock.settimeout(DATA_END_TIMEOUT)
    lines: list[bytes] = []
    try:
        while True:
            line = smtp.file.readline(MAX_REPLY_LINE + 1)
            if not line:
                raise EOFError("the server closed the connection")
            lines.append(line)
            if len(line) > MAX_REPLY_LINE or sum(map(len, lines)) > 8 * MAX_REPLY_LINE:
                raise EOFError("the reply is too long")
            if line.endswith(b"\n") and line[3:4] != b"-":
                break
    except (OSError, EOFError) as error:  # OSError: reset, timeout
        read = b"".join(lines)
        code = _reply_code(read)
        if code is None:
            raise LostAfterData(str(error) or type(error).__name__, read) from None
        text = b" ".join(line[4:].strip() for line in lines)
        return code, text + f" (the reply was cut short: {error})".encode()
    code = _reply_code(lines[0])
    if code is None or any(_reply_code(line) != code for line in lines):
        raise LostAfterData("the reply is not an SMTP reply", b"".join(lines))
    return code, b"\n".join(line[4:].strip(b" \t\r\n") for line in lines)


def exit_status(deliveries: Iterable[Delivery]) -> int:
    """EXIT_STATUSES: a bug first, then unknown, then retry, then refused."""
    deliveries = list(deliveries)
    if any(d.internal for d in deliveries):
        return EX_SOFTWARE
    if any(d.unknown for d in deliveries):
        return EXIT_UNKNOWN
    if any((d.error and d.temporary) or d.refused_temporarily for d in deliveries):
        return EX_TEMPFAIL
    return EXIT_REFUSED if any(d.error or d.refused for d in deliveries) else 0


def message_id(message: bytes) -> str:
    """The message's Message-ID header, if it has one (to find it in a server's log)."""
    value = BytesHeaderParser().parsebytes(message).get("Message-ID")
    return " ".join(str(value).split()) if value else ""


DEFAULT_FEEDBACK_SENDER_ID = "bulkmail"


def from_domain(message: bytes) -> str:
    """The domain of the message's From address, normalised; ConfigError without one."""
    value = BytesHeaderParser().parsebytes(message).get_all("From") or []
    addresses = [address for _name, address in email.utils.getaddresses(map(str, value))]
    if len(value) != 1 or not addresses or "@" not in addresses[0]:
        raise ConfigError("the message needs one From header with an address, to name a tenant")
    return normalise_domain(addresses[0].rpartition("@")[2])


def list_headers(
    args: argparse.Namespace, message: bytes, today: int | None = None
) -> list[tuple[str, str]]:
    """The Feedback-ID and one-click unsubscribe headers the options ask for (none without
    --campaign); ConfigError when the options do not go together."""
    unsubscribe = (args.unsubscribe_keys_file, args.unsubscribe_url, args.unsubscribe_mailto)
    if args.campaign is None:
        if any(unsubscribe) or args.tenant is not None:
            raise ConfigError(
                "--unsubscribe-... and --tenant need --campaign ID (the token and the "
                "Feedback-ID name the campaign)"
            )
        return []
    tenant = (args.tenant or from_domain(message)).strip().lower()
    headers = []
    if any(unsubscribe):
        if not (args.unsubscribe_keys_file and args.unsubscribe_url):
            raise ConfigError(
                "one-click unsubscribe needs both --unsubscribe-keys-file and --unsubscribe-url "
                "(RFC 8058: the HTTPS URI is required, the mailto: one is optional)"
            )
        if len(args.recipients) != 1:
            raise ConfigError(
                f"unsubscribe tokens are per recipient: give exactly one --to with "
                f"--unsubscribe-keys-file, not {len(args.recipients)}"
            )
        path = args.unsubscribe_keys_file
        try:
            keys = read_keys_file(path, "--unsubscribe-keys-file")
        except ValueError as error:
            raise ConfigError(str(error)) from None
        day = int(time.time() // 86400) if today is None else today
        headers += unsubscribe_headers(
            keys[0], tenant, args.recipients[0], args.campaign, args.unsubscribe_url,
            args.unsubscribe_mailto, day,
        )  # fmt: skip
    stream = args.stream or args.lane
    headers.append(("Feedback-ID", feedback_id(args.campaign, tenant, stream, args.sender_id)))
    return headers


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
    marking = parser.add_argument_group("bulk mail headers (added before signing)")
    marking.add_argument(
        "--campaign",
        metavar="ID",
        help="the campaign: Feedback-ID's first field and the unsubscribe token's list",
    )
    marking.add_argument(
        "--tenant", metavar="T", help="the tenant (default: the From header's domain)"
    )
    marking.add_argument(
        "--stream", metavar="S", help="Feedback-ID's stream field (default: the lane)"
    )
    marking.add_argument(
        "--feedback-sender-id",
        dest="sender_id",
        metavar="ID",
        default=DEFAULT_FEEDBACK_SENDER_ID,
        help=f"Feedback-ID's SenderId, 5 to 15 characters (default {DEFAULT_FEEDBACK_SENDER_ID})",
    )
    marking.add_argument(
        "--unsubscribe-keys-file",
        type=Path,
        metavar="FILE",
        help="the token keys (bulkmail unsubscribe-web's --keys-file; the first signs)",
    )
    marking.add_argument(
        "--unsubscribe-url",
        metavar="BASE",
        help="https:// base of bulkmail unsubscribe-web: List-Unsubscribe gets BASE/u/TOKEN",
    )
    marking.add_argument(
        "--unsubscribe-mailto",
        metavar="ADDR",
        help="also a mailto:ADDR?subject=unsubscribe-TOKEN in List-Unsubscribe",
    )


@dataclass
class Progress:
    """What run() did so far: told to the user when a bug of ours stops it."""

    delivered: list[Delivery] = field(default_factory=list)
    reported: int = 0

    def untold(self) -> str:
        if not self.delivered:
            return "nothing was sent"
        rest = self.delivered[self.reported :]
        told = "the lines printed say what was sent; nothing else was"
        return "; ".join([told, *(json.dumps(d.as_dict()) for d in rest)])


def run(
    args: argparse.Namespace,
    resolve: ResolveMx = resolve_mx,
    stdin: BinaryIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Sign, classify, route, deliver; print one JSON line per group; the exit status."""
    stdin, stdout, stderr = stdin or sys.stdin.buffer, stdout or sys.stdout, stderr or sys.stderr
    progress = Progress()
    try:
        return _run(args, resolve, stdin, stdout, stderr, progress)
    except Exception as error:  # a bug of ours: never 1, which would say the server refused
        traceback.print_exc(file=stderr)
        print(
            f"bulkmail submit: internal error (a bug in bulkmail): {type(error).__name__}: "
            f"{error}; {progress.untold()}",
            file=stderr,
        )
        return EX_SOFTWARE


def _run(
    args: argparse.Namespace,
    resolve: ResolveMx,
    stdin: BinaryIO,
    stdout: TextIO,
    stderr: TextIO,
    progress: Progress,
) -> int:
    try:
        # SMTP's line ends before signing: the message goes out as it was signed.
        message = re.sub(rb"\r?\n", b"\r\n", stdin.read())
        headers = list_headers(args, message)
        if headers:
            message = replace_headers(message, headers)
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
        # OSError, ValueError: stdin, the routes or the suffixes are unreadable or malformed
        print(f"bulkmail submit: error: {error}; nothing was sent", file=stderr)
        return EXIT_NOT_SENT
    except TemporaryDnsError as error:
        print(f"bulkmail submit: {error}; nothing was sent, try again later", file=stderr)
        return EX_TEMPFAIL
    identifier = message_id(message)
    for delivery in deliveries:
        progress.delivered.append(deliver(delivery, args.sender, signed, identifier))
        print(json.dumps(delivery.as_dict()), file=stdout, flush=True)
        progress.reported += 1
        if delivery.unknown or delivery.internal:
            print(f"bulkmail submit: {delivery.provider}: {delivery.error}", file=stderr)
    return exit_status(deliveries)
