"""The SMTP side: one aiosmtpd server answering for every provider as PROVIDERS.md says."""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import logging
import secrets
import signal
import ssl
import weakref
from collections.abc import Sequence
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from bulkmail_providers.config import Behaviour, Provider, Reply, ServerConfig
from bulkmail_providers.dnssource import DnsSource, LabResolver
from bulkmail_providers.followups import Followups, original_from
from bulkmail_providers.mailstore import MailStore
from bulkmail_providers.overrides import Overrides
from bulkmail_providers.routing import (
    RCPT_OK,
    Decision,
    choose_behaviour,
    group_by_provider,
    refusal_after_data,
    wants_tarpit,
)
from bulkmail_providers.tls import server_tls_context
from bulkmail_providers.verdicts import Verdicts, authentication_results, verify_message

log = logging.getLogger("bulkmail_providers")

DATA_SIZE_LIMIT = 50 * 1024 * 1024


def _header(headers: Any, name: str) -> str | None:
    value = headers.get(name)
    return " ".join(str(value).split()) if value is not None else None


def _tls_version(session: Session) -> str | None:
    if session.ssl is None:
        return None
    ssl_object = session.ssl.get("ssl_object")
    return ssl_object.version() if ssl_object is not None else "TLS"


def received_record(
    *,
    provider: Provider,
    recipients: Sequence[str],
    behaviours: dict[str, str],
    raw: bytes,
    mail_from: str,
    peer_ip: str,
    helo: str,
    tls_version: str | None,
    verdicts: Verdicts,
    queue_id: str,
    stored_as: str,
    received_at: datetime.datetime,
) -> dict[str, Any]:
    """One line of received.jsonl (see README.md for the fields)."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    record: dict[str, Any] = {
        "message_id": _header(headers, "Message-ID"),
        "subject": _header(headers, "Subject"),
        "mail_from": mail_from,
        "rcpt_to": list(recipients),
        "behaviours": {r: behaviours[r] for r in recipients},
        "from_header_domain": verdicts.from_domain,
        "peer_ip": peer_ip,
        "helo": helo,
        "provider": provider.name,
        "provider_host": provider.hostname,
        "tls": tls_version is not None,
        "tls_version": tls_version,
        "list_unsubscribe": _header(headers, "List-Unsubscribe"),
        "list_unsubscribe_post": _header(headers, "List-Unsubscribe-Post"),
        "queue_id": queue_id,
        "received_at": received_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "size": len(raw),
        "stored_as": stored_as,
    }
    record.update(verdicts.as_record())
    return record


def trace_headers(
    *,
    provider: Provider,
    verdicts: Verdicts,
    peer_ip: str,
    helo: str,
    tls_version: str | None,
    queue_id: str,
    recipients: Sequence[str],
    when: datetime.datetime,
) -> bytes:
    """Authentication-Results and Received, as the receiving provider prepends them."""
    protocol = "ESMTPS" if tls_version else "ESMTP"
    tls = f" ({tls_version})" if tls_version else ""
    for_clause = f"\r\n        for <{recipients[0]}>" if len(recipients) == 1 else ""
    received = (
        f"Received: from {helo or 'unknown'} ([{peer_ip}])\r\n"
        f"        by {provider.hostname} with {protocol}{tls} id {queue_id}{for_clause};\r\n"
        f"        {email.utils.format_datetime(when)}"
    )
    text = authentication_results(provider.hostname, verdicts) + "\r\n" + received + "\r\n"
    return text.encode("utf-8")


class ProviderHandler:
    """aiosmtpd handler: RCPT and DATA decisions, verification, recording."""

    def __init__(
        self, config: ServerConfig, dns: DnsSource, store: MailStore, followups: Followups
    ) -> None:
        self.config = config
        self.dns = dns
        self.store = store
        self.followups = followups
        self.overrides = Overrides(config.data_dir)

    @staticmethod
    def _close_after_reply(server: SMTP, reply: Reply) -> None:
        # a 421 reply ends the session, as it does at the real providers
        if reply.code == 421 and server.transport is not None:
            asyncio.get_running_loop().call_soon(server.transport.close)

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        # an MX offers no AUTH; aiosmtpd would advertise it after STARTTLS
        return [r for r in responses if not r[4:].upper().startswith("AUTH")]

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        peer_ip = session.peer[0] if session.peer else ""
        decision = choose_behaviour(address, self.config, self.overrides.table())
        refusal = decision.refusal_at_rcpt(self.config)
        if refusal is not None:
            log.info(
                "refused rcpt provider=%s from=<%s> to=<%s> behaviour=%s reply=%r",
                decision.provider.name if decision.provider else "-",
                (envelope.mail_from or "").strip("<>"),
                address,
                decision.behaviour.value if decision.provider else "relay",
                refusal.render(ip=peer_ip).splitlines()[-1],
            )
            self._close_after_reply(server, refusal)
            return refusal.render(ip=peer_ip)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return RCPT_OK

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        peer_ip = session.peer[0] if session.peer else ""
        helo = session.host_name or ""
        mail_from = (envelope.mail_from or "").strip("<>")  # aiosmtpd keeps a null sender as "<>"
        overrides = self.overrides.table()
        decisions = [choose_behaviour(r, self.config, overrides) for r in envelope.rcpt_tos]
        refusal = refusal_after_data(decisions)
        if refusal is not None:
            log.info(
                "deferred after data from=<%s> to=%s reply=%r",
                mail_from,
                ",".join(envelope.rcpt_tos),
                refusal.render(ip=peer_ip).splitlines()[-1],
            )
            self._close_after_reply(server, refusal)
            return refusal.render(ip=peer_ip)
        if wants_tarpit(decisions):
            await asyncio.sleep(self.config.tarpit_seconds)
        raw = envelope.original_content or b""
        verdicts = await asyncio.get_running_loop().run_in_executor(
            None, verify_message, raw, peer_ip, mail_from, helo, self.dns
        )
        queue_id = secrets.token_hex(6).upper()
        accepted = self._record(
            decisions, raw, mail_from, peer_ip, helo, session, verdicts, queue_id
        )
        return accepted.reply("accepted").render(ip=peer_ip, queue_id=queue_id)

    def _record(
        self,
        decisions: list[Decision],
        raw: bytes,
        mail_from: str,
        peer_ip: str,
        helo: str,
        session: Session,
        verdicts: Verdicts,
        queue_id: str,
    ) -> Provider:
        now = datetime.datetime.now(datetime.UTC)
        tls_version = _tls_version(session)
        behaviours = {d.recipient: d.behaviour.value for d in decisions}
        first: Provider | None = None
        for provider, recipients in group_by_provider(decisions).values():
            first = first or provider
            header = trace_headers(
                provider=provider,
                verdicts=verdicts,
                peer_ip=peer_ip,
                helo=helo,
                tls_version=tls_version,
                queue_id=queue_id,
                recipients=recipients,
                when=now,
            )
            path = self.store.store_message(provider.name, header + raw)
            record = received_record(
                provider=provider,
                recipients=recipients,
                behaviours=behaviours,
                raw=raw,
                mail_from=mail_from,
                peer_ip=peer_ip,
                helo=helo,
                tls_version=tls_version,
                verdicts=verdicts,
                queue_id=queue_id,
                stored_as=str(path.relative_to(self.store.message_dir.parent)),
                received_at=now,
            )
            self.store.append_record(record)
            followups = [r for r in recipients if behaviours[r] in _FOLLOWUPS]
            for recipient in followups:
                original = original_from(
                    raw,
                    mail_from=mail_from,
                    recipient=recipient,
                    peer_ip=peer_ip,
                    arrival=now,
                    from_domain=verdicts.from_domain,
                )
                self.followups.schedule(behaviours[recipient], original, provider)
            log.info(
                "accepted provider=%s id=%s from=<%s> to=%s message_id=%s tls=%s "
                "dkim=%s spf=%s dmarc=%s%s",
                provider.name,
                queue_id,
                mail_from,
                ",".join(recipients),
                record["message_id"],
                tls_version or "no",
                record["dkim"]["result"],
                record["spf"]["result"],
                record["dmarc"]["result"],
                f" followup={','.join(followups)}" if followups else "",
            )
        assert first is not None, "DATA is only reached with accepted recipients"
        return first


# Behaviours that accept now and report later (followups.py).
_FOLLOWUPS = {Behaviour.BOUNCE.value, Behaviour.COMPLAIN.value}


class ProvidersServer:
    """The listening server; start() and stop() inside a running event loop."""

    def __init__(
        self,
        config: ServerConfig,
        dns: DnsSource | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config
        self.dns = dns or LabResolver(config.dns_server, config.dns_timeout)
        self.store = MailStore(config.data_dir)
        self.followups = Followups(
            self.dns, config.followup_log, config.followup_delay_seconds, config.followup_port
        )
        self.handler = ProviderHandler(config, self.dns, self.store, self.followups)
        hostnames = [config.hostname, *(p.hostname for p in config.providers)]
        self.tls_context = tls_context or server_tls_context(hostnames)
        self._server: asyncio.Server | None = None
        self._sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()

    def _protocol(self) -> SMTP:
        session = SMTP(
            self.handler,
            hostname=self.config.hostname,
            ident="ESMTP bulkmail lab providers",
            tls_context=self.tls_context,
            require_starttls=False,
            enable_SMTPUTF8=True,
            data_size_limit=DATA_SIZE_LIMIT,
            timeout=max(300.0, self.config.tarpit_seconds + 60),
        )
        self._sessions.add(session)
        return session

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol, host=self.config.listen_host, port=self.config.listen_port
        )

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and end open sessions (a record is written before its 250, or not)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.close()
        await asyncio.sleep(0)  # let the sessions' tasks see the closed connections


async def serve(config: ServerConfig) -> None:
    """Run until SIGTERM or SIGINT (the container's PID 1 must handle them itself)."""
    server = ProvidersServer(config)
    await server.start()
    domains = ", ".join(f"{p.name}={'/'.join(p.domains)}" for p in config.providers)
    log.info(
        "listening on %s:%d as %s; dns=%s; data=%s; providers: %s",
        config.listen_host,
        server.port,
        config.hostname,
        config.dns_server,
        config.data_dir,
        domains,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("stopping")
    await server.stop()
