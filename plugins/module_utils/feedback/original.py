"""The message a bounce or a complaint is about, as far as the report carries it.

DSNs (RFC 3464) and ARF reports (RFC 5965) end with the original message (`message/rfc822`)
or only its header (`text/rfc822-headers`); what identifies our mail is there: the Message-ID
the delivery events hold, the VERP Return-Path, the Feedback-ID header and the DKIM domains.
Everything here takes `email.message.Message` objects (or bytes/str) and returns data.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.header
import email.parser
import email.utils
import quopri
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message

# Parts whose payload is itself a message (or header blocks): not walked into when looking
# for the report's own parts, so the original's body is never read as the report.
_MESSAGE_TYPES = ("message/rfc822", "message/global", "text/rfc822-headers")
_DKIM_DOMAIN = re.compile(r"(?:^|;)\s*d\s*=\s*([^;\s]+)", re.IGNORECASE)
_BLOCK_SEPARATOR = re.compile(r"\r?\n[ \t]*\r?\n")


@dataclass(frozen=True)
class FeedbackId:
    """A `Feedback-ID` header in Gmail's form, `campaign:tenant:stream:sender`.

    Gmail counts the fields from the right and requires only the last (the SenderId), so a
    shorter value fills the rightmost fields first: `tenant:stream:sender` has no campaign.
    """

    sender_id: str
    stream: str | None
    tenant: str | None
    campaign: str | None
    raw: str


@dataclass(frozen=True)
class OriginalMessage:
    """The headers of the reported message that tie it back to a delivery.

    `message_id` is without the angle brackets; `return_path` is the envelope sender (the
    VERP address when the sending domain has a return-path domain); `headers_only` says the
    report carried only the header (text/rfc822-headers, or a provider that strips bodies).
    """

    message_id: str | None
    return_path: str | None
    from_address: str | None
    to: tuple[str, ...]
    subject: str | None
    date: str | None
    feedback_id: FeedbackId | None
    dkim_domains: tuple[str, ...]
    # Microsoft's JMRP named the complainer here until mid-2026; its ARF reports no longer do.
    hotmail_original_recipient: str | None
    headers_only: bool


def to_message(message: Message | bytes | str) -> Message:
    """A parsed message from raw bytes or text (compat32: tolerant of broken headers)."""
    if isinstance(message, Message):
        return message
    if isinstance(message, bytes):
        return email.message_from_bytes(message)
    return email.message_from_string(message)


def header_text(message: Message, name: str) -> str | None:
    """A header's value with RFC 2047 words decoded and whitespace collapsed, or None."""
    value = message.get(name)
    if value is None:
        return None
    try:
        text = str(email.header.make_header(email.header.decode_header(str(value))))
    except (ValueError, LookupError, UnicodeError):
        text = str(value)
    text = " ".join(text.split())
    return text or None


def clean_address(value: str | None) -> str | None:
    """`local@domain` with the domain in lower case, from `<a@b>`, `Name <a@b>` or `a@b`.

    The local part keeps its case (RFC 5321 leaves it to the receiver); None when `value`
    holds no address.
    """
    if not value:
        return None
    text = value.strip()
    if text.startswith("<") and text.endswith(">"):
        address = text[1:-1].strip()
    else:
        address = email.utils.parseaddr(text)[1] or text
    address = address.strip().strip("<>").strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in domain):
        return None
    return f"{local}@{domain.rstrip('.').lower()}"


def clean_message_id(value: str | None) -> str | None:
    """A Message-ID without the angle brackets and whitespace (`<id@host>` -> `id@host`)."""
    if not value:
        return None
    text = "".join(value.split())
    match = re.search(r"<([^<>]+)>", text)
    text = match.group(1) if match else text.strip("<>")
    return text or None


def parse_feedback_id(value: str | None) -> FeedbackId | None:
    """A Feedback-ID header split into its fields (counted from the right), or None."""
    if not value:
        return None
    raw = "".join(value.split())
    fields = raw.split(":")
    sender_id = fields[-1]
    if not sender_id:
        return None

    def field(position: int) -> str | None:
        return (fields[position] or None) if len(fields) >= -position else None

    campaign = (":".join(fields[:-3]) or None) if len(fields) > 3 else None
    return FeedbackId(
        sender_id=sender_id, stream=field(-2), tenant=field(-3), campaign=campaign, raw=raw
    )


def report_parts(message: Message) -> Iterator[Message]:
    """The message and its MIME parts, not descending into attached messages."""
    yield message
    if message.get_content_maintype() == "message" or message.get_content_type() in (
        _MESSAGE_TYPES
    ):
        return
    payload = message.get_payload()
    if isinstance(payload, list):
        for part in payload:
            if isinstance(part, Message):
                yield from report_parts(part)


def part_text(part: Message) -> str:
    """The decoded text of a leaf part (charset errors replaced), or "" for a container."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")


def header_blocks(part: Message) -> list[Message]:
    """The header blocks of a `message/delivery-status` or `message/feedback-report` part.

    The `email` parser splits message/delivery-status into blocks itself; the other types,
    a transfer encoding on the part (some Exchange servers base64 it) or a part sent as text
    are read here from the part's text, split on blank lines.
    """
    payload = part.get_payload()
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if (
        part.get_content_type() == "message/delivery-status"
        and isinstance(payload, list)
        and encoding not in ("base64", "quoted-printable")
    ):
        return [block for block in payload if isinstance(block, Message) and len(block)]
    if isinstance(payload, list):
        text = "\n".join(_block_source(block) for block in payload if isinstance(block, Message))
    else:
        text = str(payload)
    text = _decode_transfer(text, encoding)
    parser = email.parser.HeaderParser()
    blocks = [parser.parsestr(chunk.strip("\r\n") + "\n") for chunk in _BLOCK_SEPARATOR.split(text)]
    return [block for block in blocks if len(block)]


def _block_source(block: Message) -> str:
    headers = "".join(f"{name}: {value}\n" for name, value in block.items())
    body = block.get_payload()
    return headers + ("\n" + body if isinstance(body, str) and body else "")


def _decode_transfer(text: str, encoding: str) -> str:
    if encoding == "base64":
        try:
            return base64.b64decode("".join(text.split())).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return text
    if encoding == "quoted-printable":
        return quopri.decodestring(text.encode("utf-8", "replace")).decode("utf-8", "replace")
    return text


def find_original(message: Message) -> OriginalMessage | None:
    """The original message (or its header) attached to a report, or None."""
    for part in report_parts(message):
        if part is message:
            continue
        content_type = part.get_content_type()
        if content_type in ("message/rfc822", "message/global"):
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                return original_from_headers(inner[0], headers_only=not inner[0].get_payload())
            if isinstance(inner, str) and inner.strip():
                return original_from_headers(email.message_from_string(inner), headers_only=False)
        elif content_type == "text/rfc822-headers":
            text = part_text(part) or str(part.get_payload())
            headers = email.parser.HeaderParser().parsestr(text.lstrip("\r\n"))
            return original_from_headers(headers, headers_only=True)
    return None


def original_from_headers(headers: Message, *, headers_only: bool) -> OriginalMessage:
    """What identifies a message of ours, read from its header."""
    to = tuple(
        address
        for _name, raw in email.utils.getaddresses([str(v) for v in headers.get_all("To", [])])
        if (address := clean_address(raw))
    )
    dkim_domains: list[str] = []
    for signature in headers.get_all("DKIM-Signature", []):
        match = _DKIM_DOMAIN.search("".join(str(signature).split()))
        if match and match.group(1).lower() not in dkim_domains:
            dkim_domains.append(match.group(1).lower())
    return OriginalMessage(
        message_id=clean_message_id(header_text(headers, "Message-ID")),
        return_path=clean_address(header_text(headers, "Return-Path")),
        from_address=clean_address(header_text(headers, "From")),
        to=to,
        subject=header_text(headers, "Subject"),
        date=header_text(headers, "Date"),
        feedback_id=parse_feedback_id(header_text(headers, "Feedback-ID")),
        dkim_domains=tuple(dkim_domains),
        hotmail_original_recipient=clean_address(header_text(headers, "X-HmXmrOriginalRecipient")),
        headers_only=headers_only,
    )
