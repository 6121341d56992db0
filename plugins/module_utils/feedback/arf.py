"""Complaints read: ARF reports (RFC 5965), Yahoo's CFL and Microsoft's JMRP.

An ARF report is `multipart/report; report-type=feedback-report` with a
`message/feedback-report` part (Feedback-Type, User-Agent, Version, Original-Mail-From,
Original-Rcpt-To, Arrival-Date, Source-IP, Reported-Domain...) and the original message or
its header. Yahoo's CFL sends ARF with the full original (keyed by the DKIM domain), lately
sometimes headers only. Microsoft's JMRP sent the original as `message/rfc822` with little
around it (the complainer in `X-HmXmrOriginalRecipient`); since mid-2026 it sends ARF with
the recipient masked. So the complainer is found, in order of trust, from:

1. the VERP return path (Original-Mail-From, else the original's Return-Path): we wrote it;
2. the original's Message-ID, looked up in what we sent (the caller's `by_message_id`);
3. Original-Rcpt-To, unless redacted;
4. the original's X-HmXmrOriginalRecipient (old JMRP);
5. the original's To, when it names exactly one address that is not redacted;

and the sending account from the VERP sender, else the Message-ID's delivery, else
Original-Mail-From or the original's Return-Path, else its From. The Message-ID and the
Feedback-ID are returned too; `recipient_source`/`sender_source` say what was used.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.message import Message

from .original import (
    FeedbackId,
    OriginalMessage,
    clean_address,
    find_original,
    header_blocks,
    header_text,
    report_parts,
    to_message,
)
from .verp import VerpAddress, decode_verp

ARF = "arf"
YAHOO_CFL = "yahoo_cfl"
JMRP = "jmrp"

_STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
_YAHOO_DOMAINS = ("yahoo.com", "yahoo.net", "yahoodns.net", "aol.com", "verizonmedia.com")
_MICROSOFT_DOMAINS = ("hotmail.com", "outlook.com", "microsoft.com", "live.com", "msn.com")
_REDACTED = re.compile(r"redacted|masked|anonymi[sz]ed|\*{2,}|^x{3,}@", re.IGNORECASE)


@dataclass(frozen=True)
class Complaint:
    """One complaint about one message.

    `report_format`: arf, yahoo_cfl or jmrp. `feedback_type` is RFC 5965's (abuse, fraud,
    virus, other, not-spam, auth-failure), in lower case; JMRP's non-ARF reports are abuse.
    `recipient` is the complainer (None when the report hides it and no VERP address was
    there: look the message up by `message_id`); `sender` the sending account.
    """

    report_format: str
    feedback_type: str
    recipient: str | None
    recipient_source: str | None
    sender: str | None
    sender_source: str | None
    message_id: str | None
    feedback_id: FeedbackId | None
    verp: VerpAddress | None
    original_mail_from: str | None
    original_rcpt_to: tuple[str, ...]
    arrival_date: str | None
    source_ip: str | None
    reported_domains: tuple[str, ...]
    reported_uris: tuple[str, ...]
    user_agent: str | None
    version: str | None
    reporting_mta: str | None
    incidents: int
    reporter: str | None
    original: OriginalMessage | None


def parse_complaint(
    message: Message | bytes | str,
    *,
    return_paths: Mapping[str, str] | None = None,
    senders: Iterable[str] = (),
    by_message_id: Callable[[str], tuple[str, str | None] | None] | None = None,
) -> Complaint | None:
    """Read a complaint report, or None when `message` is not one (a bounce, a reply).

    `return_paths` and `senders` go to verp.decode_verp (return_path_domains(model.domains)
    and the submission accounts), so that a VERP return path in the report names the
    complainer and the sending account. `by_message_id(message_id)` answers from the
    delivery events: `(recipient, sender)` of the one delivery with that Message-ID, or None
    when there is none or several (one message to many recipients shares its Message-ID).
    """
    msg = to_message(message)
    if any(p.get_content_type() in _STATUS_TYPES for p in report_parts(msg)):
        return None  # a DSN carries the original too, and Outlook.com's come from outlook.com
    reporter = clean_address(header_text(msg, "From"))
    original = find_original(msg)
    fields = _feedback_fields(msg)
    if fields is None:
        if original is None or not _is_microsoft(reporter, original):
            return None
        fields = Message()
        report_format = JMRP
    else:
        report_format = _format_of(reporter, header_text(fields, "User-Agent"), original)
    senders = tuple(senders)
    mail_from = clean_address(header_text(fields, "Original-Mail-From"))
    rcpt_to = tuple(
        address
        for value in fields.get_all("Original-Rcpt-To", [])
        for part in str(value).split(",")
        if (address := clean_address(part))
    )
    verp = None
    for candidate in (mail_from, original.return_path if original else None):
        if candidate and return_paths:
            verp = decode_verp(candidate, return_paths, senders=senders)
            if verp is not None:
                break
    known = None
    if verp is None and by_message_id is not None and original and original.message_id:
        known = by_message_id(original.message_id)
    recipient, recipient_source = _complainer(verp, known, rcpt_to, original)
    sender, sender_source = _sending_account(verp, known, mail_from, original)
    feedback_type = (header_text(fields, "Feedback-Type") or "abuse").lower()
    return Complaint(
        report_format=report_format,
        feedback_type=feedback_type,
        recipient=recipient,
        recipient_source=recipient_source,
        sender=sender,
        sender_source=sender_source,
        message_id=original.message_id if original else None,
        feedback_id=original.feedback_id if original else None,
        verp=verp,
        original_mail_from=mail_from,
        original_rcpt_to=rcpt_to,
        arrival_date=header_text(fields, "Arrival-Date") or header_text(fields, "Received-Date"),
        source_ip=header_text(fields, "Source-IP"),
        reported_domains=_values(fields, "Reported-Domain"),
        reported_uris=_values(fields, "Reported-URI"),
        user_agent=header_text(fields, "User-Agent"),
        version=header_text(fields, "Version"),
        reporting_mta=_reporting_mta(header_text(fields, "Reporting-MTA")),
        incidents=_incidents(header_text(fields, "Incidents")),
        reporter=reporter,
        original=original,
    )


def is_redacted(address: str | None) -> bool:
    """Whether a provider replaced the address with a placeholder."""
    return not address or bool(_REDACTED.search(address))


# --------------------------------------------------------------------------- internals


def _feedback_fields(msg: Message) -> Message | None:
    for part in report_parts(msg):
        if part.get_content_type() == "message/feedback-report":
            blocks = header_blocks(part)
            merged = Message()
            for block in blocks:
                for name, value in block.items():
                    merged[name] = value
            return merged
    return None


def _format_of(
    reporter: str | None, user_agent: str | None, original: OriginalMessage | None
) -> str:
    agent = (user_agent or "").lower()
    if _domain_in(reporter, _YAHOO_DOMAINS) or agent.startswith(("yahoo", "aol")):
        return YAHOO_CFL
    if _is_microsoft(reporter, original) or "hotmail" in agent or "microsoft" in agent:
        return JMRP
    return ARF


def _is_microsoft(reporter: str | None, original: OriginalMessage | None) -> bool:
    if _domain_in(reporter, _MICROSOFT_DOMAINS):
        return True
    return original is not None and original.hotmail_original_recipient is not None


def _domain_in(address: str | None, domains: tuple[str, ...]) -> bool:
    domain = (address or "").rpartition("@")[2]
    return any(domain == d or domain.endswith("." + d) for d in domains)


def _complainer(
    verp: VerpAddress | None,
    known: tuple[str, str | None] | None,
    rcpt_to: tuple[str, ...],
    original: OriginalMessage | None,
) -> tuple[str | None, str | None]:
    if verp is not None:
        return verp.recipient, "verp"
    if known is not None and known[0]:
        return known[0], "message_id"
    usable = [a for a in rcpt_to if not is_redacted(a)]
    if len(usable) == 1:
        return usable[0], "original_rcpt_to"
    if original is not None:
        hotmail = original.hotmail_original_recipient
        if hotmail and not is_redacted(hotmail):
            return hotmail, "x_hmxmr_original_recipient"
        if len(original.to) == 1 and not is_redacted(original.to[0]):
            return original.to[0], "to_header"
    return None, None


def _sending_account(
    verp: VerpAddress | None,
    known: tuple[str, str | None] | None,
    mail_from: str | None,
    original: OriginalMessage | None,
) -> tuple[str | None, str | None]:
    if verp is not None:
        return verp.sender, "verp"
    if known is not None and known[1]:
        return known[1], "message_id"
    if mail_from:
        return mail_from, "original_mail_from"
    if original is not None and original.return_path:
        return original.return_path, "return_path"
    if original is not None and original.from_address:
        return original.from_address, "from_header"
    return None, None


def _values(fields: Message, name: str) -> tuple[str, ...]:
    values: list[str] = []
    for value in fields.get_all(name, []):
        for item in str(value).split(","):
            cleaned = " ".join(item.split()).strip("<>")
            if cleaned and cleaned not in values:
                values.append(cleaned)
    return tuple(values)


def _reporting_mta(value: str | None) -> str | None:
    if not value:
        return None
    host = value.partition(";")[2] if ";" in value else value
    words = host.split(maxsplit=1)
    return words[0].rstrip(".").lower() if words else None


def _incidents(value: str | None) -> int:
    try:
        return max(1, int((value or "1").split(maxsplit=1)[0]))
    except ValueError:
        return 1
