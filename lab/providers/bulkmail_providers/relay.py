"""An emulated smarthost (Amazon SES, Mailgun, Zoho...): SMTP AUTH after STARTTLS, then relay.

`python3 -m bulkmail_providers relay --name relay1 --username USER --password-file FILE
[--certificate FILE --key FILE]` runs one. It refuses MAIL before a successful AUTH, AUTH
before STARTTLS (538), and any credentials but USER with the password in FILE (its first
word, re-read at every AUTH: the lab's password lookup creates the file at the first
converge, after the container starts). It offers the kept certificate it is given, or a
self-signed one made at start. Accepted mail is not passed on: each message is recorded as
one JSON line in `<data dir>/relay-<name>.jsonl` (who logged in, from which address,
envelope and Subject), which `relay-received` prints; each TLS handshake and each AUTH
command, whatever its outcome, is one line in `relay-<name>-events.jsonl` (`relay-events`),
so a test can tell that a client reached the relay and never offered it credentials.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import signal
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, syntax

from bulkmail_providers.tls import server_tls_context

log = logging.getLogger("bulkmail_providers.relay")


def read_password(path: Path) -> str | None:
    """The first word of `path` (the password lookup may append ` salt=...`), or None."""
    try:
        words = path.read_text(encoding="utf-8").split()
    except FileNotFoundError:
        return None
    return words[0] if words else None


class Authenticator:
    """aiosmtpd authenticator: one account, its password read from a file at each attempt."""

    def __init__(self, username: str, password_file: Path) -> None:
        self.username = username
        self.password_file = password_file

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        password = read_password(self.password_file)
        if not isinstance(data, LoginPassword) or password is None:
            return AuthResult(success=False, handled=False)
        given = (data.login.decode("utf-8", "replace"), data.password.decode("utf-8", "replace"))
        if given != (self.username, password):
            return AuthResult(success=False, handled=False)  # aiosmtpd answers 535
        return AuthResult(success=True, auth_data=given[0])


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def _append(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(json.dumps(record, sort_keys=True) + "\n")


class RelayHandler:
    def __init__(self, name: str, log_path: Path, events_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.events_path = events_path

    def event(self, session: Session, event: str, **details: Any) -> None:
        """One line of the events log: a TLS handshake, an AUTH command (never its data)."""
        _append(self.events_path, {
            "relay": self.name, "at": _now(), "event": event,
            "peer_ip": session.peer[0] if session.peer else None,
            "tls": session.ssl is not None, **details,
        })  # fmt: skip

    def handle_STARTTLS(self, server: SMTP, session: Session, envelope: Envelope) -> bool:
        """After the handshake: the client is in TLS (whether it trusts us, it alone knows)."""
        self.event(session, "tls")
        return True

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
        record = {
            "relay": self.name,
            "received_at": _now(),
            "peer_ip": session.peer[0] if session.peer else None,
            "login": session.auth_data,
            "tls": session.ssl is not None,
            "mail_from": (envelope.mail_from or "").strip("<>"),
            "rcpt_to": list(envelope.rcpt_tos),
            "subject": headers.get("Subject"),
            "dkim_signature": headers.get("DKIM-Signature") is not None,
            "size": len(raw),
        }
        _append(self.log_path, record)
        log.info("relayed from=<%s> to=%s login=%s", record["mail_from"],
                 ",".join(envelope.rcpt_tos), record["login"])  # fmt: skip
        return "250 2.0.0 Ok: queued by " + self.name


class RecordingSMTP(SMTP):
    """aiosmtpd's SMTP, recording every AUTH command before it is answered."""

    def __init__(self, handler: RelayHandler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.relay = handler

    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg: str) -> None:
        assert self.session is not None
        mechanism = arg.split()[0].upper() if arg.split() else ""
        await super().smtp_AUTH(arg)
        self.relay.event(self.session, "auth", mechanism=mechanism,
                         authenticated=bool(self.session.authenticated))  # fmt: skip


def relay_hostname(name: str) -> str:
    return f"{name}.relays.test"


def relay_log(data_dir: Path, name: str) -> Path:
    return data_dir / f"relay-{name}.jsonl"


def relay_events(data_dir: Path, name: str) -> Path:
    return data_dir / f"relay-{name}-events.jsonl"


async def start_relay(
    name: str,
    host: str,
    port: int,
    account: tuple[str, Path],
    data_dir: Path,
    certificate: tuple[Path, Path] | None = None,
) -> asyncio.Server:
    """Listen as relay `name`, with the kept (certificate, key) or a self-signed pair made
    now; the caller closes the returned server."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handler = RelayHandler(name, relay_log(data_dir, name), relay_events(data_dir, name))
    hostname = relay_hostname(name)
    tls = server_tls_context([hostname], certificate)

    def protocol() -> SMTP:
        # Not require_starttls: AUTH before STARTTLS must reach smtp_AUTH to be recorded;
        # auth_require_tls answers it 538, and auth_required refuses MAIL before AUTH.
        return RecordingSMTP(
            handler,
            hostname=hostname,
            ident=f"ESMTP {name} (bulkmail lab relay)",
            tls_context=tls,
            auth_required=True,
            auth_require_tls=True,
            authenticator=Authenticator(*account),
        )

    return await asyncio.get_running_loop().create_server(protocol, host=host, port=port)


async def serve_relay(
    name: str,
    host: str,
    port: int,
    account: tuple[str, Path],
    data_dir: Path,
    certificate: tuple[Path, Path] | None = None,
) -> None:
    """Run until SIGTERM or SIGINT."""
    server = await start_relay(name, host, port, account, data_dir, certificate)
    log.info("relay %s listening on %s:%d; account %s; certificate %s", name, host, port,
             account[0], certificate[0] if certificate else "self-signed, made now")  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()
