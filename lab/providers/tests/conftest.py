"""The package lives in lab/providers, outside src/: put it (and these helpers) on the path.

The `lab` fixture runs the providers' server on 127.0.0.1 with dict-backed DNS answers.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for path in (HERE.parent, HERE):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from aiosmtpd.smtp import SMTP, Envelope, Session
from bulkmail_providers.config import DEFAULT_CONFIG, load_config
from bulkmail_providers.mailstore import read_records
from bulkmail_providers.server import ProvidersServer
from signing import dkim_key
from static_dns import StaticDns

HELO = "mta1.example.test"
VERP = "bounce+a1b2@bounce.example.test"


def lab_dns() -> StaticDns:
    return (
        StaticDns()
        .add("bounce.example.test", "TXT", "v=spf1 ip4:127.0.0.1 -all")
        .add("example.test", "TXT", "v=spf1 ip4:127.0.0.1 -all")
        .add("_dmarc.example.test", "TXT", "v=DMARC1; p=none; rua=mailto:dmarc@example.test")
        .add("lab2026a._domainkey.example.test", "TXT", dkim_key().txt)
        .add("shop.test", "TXT", "v=spf1 ip4:198.51.100.10 -all")
        .add("_dmarc.shop.test", "TXT", "v=DMARC1; p=reject")
        # where DSNs and ARF reports for the VERP domain go: the SenderMx below
        .add("bounce.example.test", "MX", (10, "mta1.example.test"))
        .add("mta1.example.test", "A", "127.0.0.1")
        .add("mta1.example.test", "TXT", "v=spf1 a -all")
    )


class SenderMx:
    """Stands in for the smtp tier's bounce receiver: keeps what it is sent."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append(
            (
                (envelope.mail_from or "").strip("<>"),
                list(envelope.rcpt_tos),
                envelope.original_content or b"",
            )
        )
        return "250 2.0.0 Ok: queued"


class Lab:
    def __init__(
        self,
        server: ProvidersServer,
        data_dir: Path,
        sender_mx: SenderMx,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.server = server
        self.data_dir = data_dir
        self.sender_mx = sender_mx
        self.loop = loop

    def wait_for_followups(self) -> list[dict]:
        asyncio.run_coroutine_threadsafe(self.server.followups.drain(), self.loop).result(30)
        return list(read_records(self.data_dir / "followups.jsonl"))

    def client(self) -> smtplib.SMTP:
        client = smtplib.SMTP("127.0.0.1", self.server.port, local_hostname=HELO, timeout=10)
        client.ehlo()
        return client

    def tls_client(self) -> smtplib.SMTP:
        client = self.client()
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        client.starttls(context=context)
        client.ehlo()
        return client

    def records(self) -> list[dict]:
        return list(read_records(self.data_dir / "received.jsonl"))


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    loop = asyncio.new_event_loop()
    sender_mx = SenderMx()
    sink = loop.run_until_complete(
        loop.create_server(lambda: SMTP(sender_mx), host="127.0.0.1", port=0)
    )
    config = replace(
        load_config(DEFAULT_CONFIG, env={}),
        listen_host="127.0.0.1",
        listen_port=0,
        data_dir=tmp_path,
        tarpit_seconds=1.0,
        followup_delay_seconds=0.0,
        followup_port=sink.sockets[0].getsockname()[1],
    )
    server = ProvidersServer(config, dns=lab_dns())
    server.followups.retry_delays = (0.1,)
    loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield Lab(server, tmp_path, sender_mx, loop)
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        sink.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
