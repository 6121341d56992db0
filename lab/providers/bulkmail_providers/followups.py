"""What a provider sends back later: bounces (RFC 3464 DSN) and complaints (RFC 5965 ARF).

Both go to the original envelope sender (the VERP address, so the smtp tier's bounce receiver
can tell which recipient they are about), through that domain's MX as found in the lab DNS,
with a null reverse-path so that they can never bounce back. Each outcome is one line of
followups.jsonl beside received.jsonl.
"""

from __future__ import annotations

import asyncio
import datetime
import email.policy
import email.utils
import json
import logging
import os
import smtplib
import ssl
from dataclasses import dataclass
from email.message import Message
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.parser import BytesHeaderParser, BytesParser
from pathlib import Path
from typing import Any

from bulkmail_providers import __version__
from bulkmail_providers.config import Provider
from bulkmail_providers.dnssource import DnsSource, DnsTemporaryError

log = logging.getLogger("bulkmail_providers.followups")

RETRY_DELAYS = (10.0, 30.0, 60.0, 120.0)  # seconds between delivery attempts


class FollowupError(Exception):
    pass


@dataclass(frozen=True)
class Original:
    """What a report needs to know about the message it is about."""

    raw: bytes
    mail_from: str
    recipient: str
    peer_ip: str
    arrival: datetime.datetime
    message_id: str | None
    from_domain: str | None


def _headers_block(fields: list[tuple[str, str]]) -> Message:
    block = Message()
    for name, value in fields:
        block[name] = value
    return block


def _report(report_type: str, provider: Provider, to: str, subject: str) -> MIMEMultipart:
    report = MIMEMultipart("report", report_type=report_type)
    report["From"] = f"Mail Delivery Subsystem <mailer-daemon@{provider.hostname}>"
    report["To"] = to
    report["Subject"] = subject
    report["Date"] = email.utils.format_datetime(datetime.datetime.now(datetime.UTC))
    report["Message-ID"] = email.utils.make_msgid(domain=provider.hostname)
    report["Auto-Submitted"] = "auto-replied"
    return report


def _machine_part(subtype: str, blocks: list[Message]) -> Message:
    part = Message()
    part.set_type(f"message/{subtype}")
    del part["MIME-Version"]
    part.set_payload(blocks)
    return part


def build_dsn(original: Original, provider: Provider, diagnostic: str) -> bytes:
    """A failure DSN for one recipient, with the original's headers (text/rfc822-headers)."""
    status = diagnostic[4:].split(" ", 1)[0] if diagnostic[:3].isdigit() else "5.0.0"
    report = _report(
        "delivery-status",
        provider,
        original.mail_from,
        "Delivery Status Notification (Failure)",
    )
    report.attach(
        MIMEText(
            f"Your message to {original.recipient} could not be delivered.\n\n"
            f"The response from the remote server was:\n{diagnostic}\n"
        )
    )
    when = email.utils.format_datetime(original.arrival)
    per_message = _headers_block(
        [("Reporting-MTA", f"dns; {provider.hostname}"), ("Arrival-Date", when)]
    )
    per_recipient = _headers_block(
        [
            ("Final-Recipient", f"rfc822; {original.recipient}"),
            ("Action", "failed"),
            ("Status", status),
            ("Remote-MTA", f"dns; {provider.hostname}"),
            ("Diagnostic-Code", f"smtp; {diagnostic}"),
            ("Last-Attempt-Date", email.utils.format_datetime(datetime.datetime.now(datetime.UTC))),
        ]
    )
    report.attach(_machine_part("delivery-status", [per_message, per_recipient]))
    headers = original.raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    headers_part = MIMEText(headers.decode("utf-8", "replace") + "\n", "rfc822-headers")
    report.attach(headers_part)
    return report.as_bytes(policy=email.policy.SMTP)


def build_arf(original: Original, provider: Provider) -> bytes:
    """An abuse report (RFC 5965) carrying the whole original message."""
    report = _report(
        "feedback-report",
        provider,
        original.mail_from,
        "Complaint about message from " + (original.from_domain or "unknown"),
    )
    report.attach(
        MIMEText(
            f"This is an email abuse report for an email message received from IP "
            f"{original.peer_ip} on {email.utils.format_datetime(original.arrival)}.\n"
            f"A user of {provider.name} marked it as spam.\n"
        )
    )
    fields = [
        ("Feedback-Type", "abuse"),
        ("User-Agent", f"bulkmail-lab-providers/{__version__}"),
        ("Version", "1"),
        ("Original-Mail-From", f"<{original.mail_from}>"),
        ("Original-Rcpt-To", f"<{original.recipient}>"),
        ("Arrival-Date", email.utils.format_datetime(original.arrival)),
        ("Reporting-MTA", f"dns; {provider.hostname}"),
        ("Source-IP", original.peer_ip),
    ]
    if original.from_domain:
        fields.append(("Reported-Domain", original.from_domain))
    report.attach(_machine_part("feedback-report", [_headers_block(fields)]))
    report.attach(MIMEMessage(BytesParser(policy=email.policy.compat32).parsebytes(original.raw)))
    return report.as_bytes(policy=email.policy.SMTP)


def deliver_report(
    report: bytes, recipient: str, dns: DnsSource, helo: str, port: int = 25, timeout: float = 30
) -> str:
    """Send with MAIL FROM:<> to the recipient domain's MX; returns host[address] used."""
    domain = recipient.rpartition("@")[2].lower()
    try:
        exchanges = sorted(dns.mx(domain)) or [(0, domain)]  # no MX: the implicit MX
        targets = [(host, a) for _, host in exchanges for a in dns.addresses(host, 4)]
    except DnsTemporaryError as error:
        raise FollowupError(f"MX lookup for {domain}: {error}") from error
    if not targets:
        raise FollowupError(f"no address for any MX of {domain}")
    errors = []
    for host, address in targets:
        try:
            with smtplib.SMTP(address, port, local_hostname=helo, timeout=timeout) as client:
                client.ehlo()
                if client.has_extn("starttls"):
                    context = ssl.create_default_context()
                    context.check_hostname = False  # opportunistic, as MTAs do
                    context.verify_mode = ssl.CERT_NONE
                    client.starttls(context=context)
                    client.ehlo()
                client.sendmail("", [recipient], report)
            return f"{host}[{address}]"
        except (OSError, smtplib.SMTPException) as error:
            errors.append(f"{host}[{address}]: {error}")
    raise FollowupError("; ".join(errors))


def append_outcome(log_path: Path, record: dict[str, Any]) -> None:
    """One line of followups.jsonl, on disk before the caller goes on (a test reads it next)."""
    with log_path.open("a", encoding="utf-8") as file:
        file.write(json.dumps(record, sort_keys=True) + "\n")
        file.flush()
        os.fsync(file.fileno())


class Followups:
    """Schedules DSNs and ARF reports after acceptance and records what became of them."""

    def __init__(
        self,
        dns: DnsSource,
        log_path: Path,
        delay: float,
        port: int = 25,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
    ) -> None:
        self.dns = dns
        self.log_path = log_path
        self.delay = delay
        self.port = port
        self.retry_delays = retry_delays
        self._tasks: set[asyncio.Task[None]] = set()

    def schedule(self, kind: str, original: Original, provider: Provider) -> None:
        if not original.mail_from:
            log.info("no %s for %s: the original had a null sender", kind, original.recipient)
            return
        task = asyncio.get_running_loop().create_task(self._run(kind, original, provider))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, kind: str, original: Original, provider: Provider) -> None:
        if kind == "bounce":
            report = build_dsn(original, provider, provider.reply("unknown_user").render())
        else:
            report = build_arf(original, provider)
        await asyncio.sleep(self.delay)
        loop = asyncio.get_running_loop()
        error = ""
        for attempt, pause in enumerate((*self.retry_delays, None), start=1):
            try:
                via = await loop.run_in_executor(
                    None, deliver_report, report, original.mail_from, self.dns,
                    provider.hostname, self.port,
                )  # fmt: skip
            except FollowupError as failure:
                error = str(failure)
                log.warning(
                    "%s to <%s> attempt %d failed: %s", kind, original.mail_from, attempt, error
                )
                if pause is None:
                    break
                await asyncio.sleep(pause)
                continue
            self._record(kind, original, provider, "sent", via=via, attempts=attempt)
            log.info(
                "%s for %s sent to <%s> via %s", kind, original.recipient, original.mail_from, via
            )
            return
        self._record(kind, original, provider, "failed", error=error, attempts=attempt)

    def _record(
        self, kind: str, original: Original, provider: Provider, status: str, **extra: Any
    ) -> None:
        record = {
            "kind": kind,
            "status": status,
            "provider": provider.name,
            "to": original.mail_from,
            "about_rcpt": original.recipient,
            "original_message_id": original.message_id,
            "at": datetime.datetime.now(datetime.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            **extra,
        }
        append_outcome(self.log_path, record)

    async def drain(self) -> None:
        """Wait for the scheduled reports (tests; a stopping server just lets them go)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def original_from(raw: bytes, **fields: Any) -> Original:
    headers = BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    message_id = headers.get("Message-ID")
    return Original(raw=raw, message_id=str(message_id).strip() if message_id else None, **fields)
