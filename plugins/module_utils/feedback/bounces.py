"""Bounces read: what a message sent back to a VERP address says about each recipient.

An ARF report (some feedback loops send complaints to the return path) is no bounce: its
kind is `complaint`, for arf.parse_complaint. Otherwise, in order of trust:

1. an RFC 3464 report (`multipart/report; report-type=delivery-status`, or any
   `message/delivery-status` / `message/global-delivery-status` part): per recipient the
   Final-Recipient, Original-Recipient, Action, Status, Diagnostic-Code and Remote-MTA, as
   Postfix, Gmail, Microsoft and Yahoo write them;
2. not a report, and an auto-reply (RFC 3834 `Auto-Submitted: auto-replied`, `X-Autoreply`,
   `Precedence: auto_reply`, an "Out of office" subject) from someone other than a mailer
   daemon: not a bounce at all;
3. flufl.bounce's detectors for the non-standard bounces (qmail, Exim, old Exchange...);
   they give addresses only, split into temporary and permanent; the status and text are
   read from the bounce's own text where it has one;
4. a mailer daemon's message that none of these reads: a bounce for the VERP recipient.

flufl.bounce (Debian 12: python3-flufl.bounce 4.0) is optional: without it step 3 is
skipped and the report says so in `notes`; FLUFL_BOUNCE_AVAILABLE tells a caller up front.

The VERP address the bounce came to (decode it with verp.decode_verp and pass it in) names
the recipient we mailed whatever the report says: a forwarded mailbox's DSN names the
final address, not ours. Action delayed is a delay, not a bounce; relayed, delivered and
expanded are no failures.
"""

from __future__ import annotations

import email.parser
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message
from typing import Any

from .classify import Classification, Rule, classify, clean_dsn, normalize_reply
from .original import (
    OriginalMessage,
    clean_address,
    find_original,
    header_blocks,
    header_text,
    original_from_headers,
    part_text,
    report_parts,
    to_message,
)
from .verp import VerpAddress

try:
    from flufl.bounce import all_failures as _flufl_all_failures
except ImportError:  # optional: RFC 3464 reports and VERP still read without it
    _flufl_all_failures = None

FLUFL_BOUNCE_AVAILABLE = _flufl_all_failures is not None

BOUNCE = "bounce"
DELAY = "delay"
DELIVERY = "delivery"
AUTO_REPLY = "auto_reply"
COMPLAINT = "complaint"
UNRECOGNISED = "unrecognised"

FAILED = "failed"
DELAYED = "delayed"
_NOT_FAILURES = frozenset({"delivered", "relayed", "expanded"})
_STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
_ADDRESS_TYPES = frozenset({"rfc822", "utf-8", ""})

_DAEMON_LOCALS = frozenset(
    {"mailer-daemon", "mailerdaemon", "mail-daemon", "postmaster", "mdaemon", "mail.daemon"}
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (status notification|failure|failed|has failed|problem"
    r"|notification)|returned mail|mail delivery (failed|failure|system)|failure notice"
    r"|non[- ]?delivery|could not be delivered|unzustellbar|non remis|nondeliverable"
    r"|delivery report|mail system error",
    re.IGNORECASE,
)
# At the start of the subject (auto-replies echo ours, which may say anything).
_AUTO_REPLY_SUBJECT = re.compile(
    r"^\W*(?:(?:re|aw|fw|fwd|sv|vs)\s*:\s*)*(?:auto(?:matic)?[ -]?(?:reply|response|antwort"
    r"|respuesta)|autoreply|auto\s*:|out of (?:the )?office|ooo\b|away from (?:the |my )?(?:office"
    r"|desk)|on (?:vacation|holiday|leave)|vacation (?:reply|message|notice)|abwesen|absence"
    r"|r[ée]ponse automatique|respuesta autom[áa]tica|risposta automatica|fuera de la oficina"
    r"|i am (?:currently )?(?:out|away))",
    re.IGNORECASE,
)
_DELAY_TEXT = re.compile(
    r"warning|delayed|will (continue|keep) (trying|to try)|still (trying|being retried)"
    r"|not yet been delivered|will retry",
    re.IGNORECASE,
)
# Where a bounce's text stops and the returned message begins.
_ORIGINAL_MARKER = re.compile(
    r"^(-+ ?(original message|below this line|this is a copy)|.*original message follows"
    r"|content-type: message/rfc822|return-path:|received: )",
    re.IGNORECASE | re.MULTILINE,
)
_HEADER_LINE = re.compile(r"^[A-Za-z][\w-]*:")
_DIAGNOSTIC_LINE = re.compile(
    r"(?:^|\s)(?:[45]\d\d[ -])?[45]\.\d{1,3}\.\d{1,3}(?![\d.]*\d)|^\s*[45]\d\d[ -]\S"
    r"|\(#[45]\.\d+\.\d+\)",
    re.MULTILINE,
)


@dataclass(frozen=True)
class RecipientStatus:
    """One recipient's outcome.

    `recipient` is the address we mailed, taken from (in order) the VERP address when the
    report is about one recipient, the Original-Recipient, the Final-Recipient, the address
    flufl.bounce found; `recipient_source` says which. `status` is the enhanced code as the
    report gives it (or as read from the bounce's text); `diagnostic` is the reply in one
    line. `classification` is classify()'s verdict, an expiry (failed with a 4.x.x status)
    counted as one.
    """

    recipient: str | None
    recipient_source: str | None
    action: str
    status: str | None
    diagnostic: str | None
    diagnostic_type: str | None
    final_recipient: str | None
    original_recipient: str | None
    remote_mta: str | None
    last_attempt_date: str | None
    will_retry_until: str | None
    classification: Classification

    @property
    def failed(self) -> bool:
        return self.action == FAILED


@dataclass(frozen=True)
class BounceReport:
    """What a message sent back says.

    `kind`: bounce (at least one recipient failed), delay (none failed, one delayed),
    delivery (a success notice: delivered, relayed, expanded), auto_reply (an out-of-office
    or other RFC 3834 reply: not a bounce), complaint (an ARF report, which some feedback
    loops send to the return path: arf.parse_complaint reads it), unrecognised (nothing
    said who failed: a human reply to the return path, spam, or a bounce no reader knows).
    `source`: dsn, flufl.bounce, verp or none. `queue_id` and `postfix_sender` are Postfix's
    own fields (X-Postfix-Queue-ID), set when our Postfix made the report, which its log
    already told.
    """

    kind: str
    source: str
    recipients: tuple[RecipientStatus, ...]
    verp: VerpAddress | None
    reporting_mta: str | None
    queue_id: str | None
    postfix_sender: str | None
    original: OriginalMessage | None
    subject: str | None
    from_address: str | None
    auto_reply_reason: str | None
    notes: tuple[str, ...]

    @property
    def failures(self) -> tuple[RecipientStatus, ...]:
        return tuple(r for r in self.recipients if r.failed)


def parse_bounce(
    message: Message | bytes | str,
    *,
    verp: VerpAddress | None = None,
    rules: Sequence[Rule] | None = None,
) -> BounceReport:
    """Read a message that came back to a return path (see the module's docstring).

    `verp` is the decoded envelope recipient it came to, or None; `rules` go to classify()
    (None: the defaults).
    """
    msg = to_message(message)
    base: dict[str, Any] = {
        "verp": verp,
        "original": find_original(msg) or inline_original(msg),
        "subject": header_text(msg, "Subject"),
        "from_address": clean_address(header_text(msg, "From")),
    }
    notes: list[str] = []
    if any(p.get_content_type() == "message/feedback-report" for p in report_parts(msg)):
        return _report(
            COMPLAINT, "none", (), base, ["an ARF report: read it with arf.parse_complaint"]
        )
    status_parts = [p for p in report_parts(msg) if p.get_content_type() in _STATUS_TYPES]
    if status_parts:
        report = _from_delivery_status(status_parts, verp, rules, base)
        if report is not None:
            return report
        notes.append("the delivery-status part names no recipient")
    reason = auto_reply_reason(msg)
    if reason is not None:
        return _report(AUTO_REPLY, "none", (), base, notes, auto_reply_reason=reason)
    diagnostic = body_diagnostic(msg)
    if _flufl_all_failures is None:
        notes.append("flufl.bounce is not installed: non-standard bounces are read by VERP only")
    else:
        found = _flufl_recipients(msg, verp, diagnostic, rules, notes)
        if found:
            kind = BOUNCE if any(r.failed for r in found) else DELAY
            return _report(kind, "flufl.bounce", found, base, notes)
    if verp is not None and _from_mailer_daemon(msg):
        status = normalize_reply(diagnostic).dsn if diagnostic else None
        delayed = (status or "").startswith("4") or bool(_DELAY_TEXT.search(base["subject"] or ""))
        recipient = _recipient_status(
            recipient=verp.recipient,
            source="verp",
            action=DELAYED if delayed else FAILED,
            status=status,
            diagnostic=diagnostic,
            rules=rules,
        )
        return _report(DELAY if delayed else BOUNCE, "verp", (recipient,), base, notes)
    return _report(UNRECOGNISED, "none", (), base, notes)


def auto_reply_reason(message: Message | bytes | str) -> str | None:
    """Why a message is an automatic reply (RFC 3834 and common practice), or None.

    A mailer daemon's bounce carries Auto-Submitted too (Postfix, Exim): a message from
    mailer-daemon or postmaster, or with X-Failed-Recipients or Exchange's NDR header, is
    never called an auto-reply. Subjects count only by how they start.
    """
    msg = to_message(message)
    if _from_mailer_daemon(msg, by_subject=False):
        return None
    subject = header_text(msg, "Subject") or ""
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder"):
        if msg.get(name) is not None:
            return f"{name} header"
    for name in ("Precedence", "X-Precedence"):
        if (header_text(msg, name) or "").lower() == "auto_reply":
            return f"{name}: auto_reply"
    submitted = (header_text(msg, "Auto-Submitted") or "").lower()
    if submitted.startswith("auto-replied"):
        return "Auto-Submitted: auto-replied"
    if _AUTO_REPLY_SUBJECT.search(subject):
        return f"subject {subject!r}"
    if msg.get("X-Auto-Response-Suppress") is not None and submitted.startswith("auto-"):
        return "X-Auto-Response-Suppress and Auto-Submitted"
    return None


def body_diagnostic(message: Message) -> str | None:
    """The first line of a bounce's own text that carries an SMTP or enhanced status code.

    Only the report's text parts before the returned message are read, so a code quoted in
    the original is not taken for the answer.
    """
    for part in report_parts(message):
        if part.get_content_type() != "text/plain":
            continue
        text = part_text(part)
        marker = _ORIGINAL_MARKER.search(text)
        if marker:
            text = text[: marker.start()]
        lines = text.splitlines()
        for index, line in enumerate(lines):
            if _DIAGNOSTIC_LINE.search(line):
                # qmail puts the reason on the line after the address, the code at its end.
                found = line.strip()
                if re.fullmatch(r"\(?#?[245]\.\d+\.\d+\)?", found) and index:
                    found = f"{lines[index - 1].strip()} {found}"
                return " ".join(found.split())
    return None


def inline_original(message: Message) -> OriginalMessage | None:
    """The header of the message a non-MIME bounce (qmail, old Exim) quotes below its text."""
    for part in report_parts(message):
        if part.get_content_type() != "text/plain":
            continue
        text = part_text(part)
        marker = _ORIGINAL_MARKER.search(text)
        if marker is None:
            continue
        lines = text[marker.start() :].splitlines()
        if lines and not _HEADER_LINE.match(lines[0]):
            lines = lines[1:]  # the marker's own line ("--- Below this line is a copy ...")
        while lines and not lines[0].strip():
            lines = lines[1:]
        if not lines or not _HEADER_LINE.match(lines[0]):
            continue
        headers = email.parser.HeaderParser().parsestr("\n".join(lines))
        if headers.get("Message-ID") or headers.get("From") or headers.get("Return-Path"):
            return original_from_headers(headers, headers_only=False)
    return None


# --------------------------------------------------------------------------- internals


def _report(
    kind: str,
    source: str,
    recipients: Sequence[RecipientStatus],
    base: dict[str, Any],
    notes: list[str],
    *,
    reporting_mta: str | None = None,
    queue_id: str | None = None,
    postfix_sender: str | None = None,
    auto_reply_reason: str | None = None,
) -> BounceReport:
    return BounceReport(
        kind=kind,
        source=source,
        recipients=tuple(recipients),
        reporting_mta=reporting_mta,
        queue_id=queue_id,
        postfix_sender=postfix_sender,
        auto_reply_reason=auto_reply_reason,
        notes=tuple(notes),
        **base,
    )


def _from_delivery_status(
    parts: Sequence[Message],
    verp: VerpAddress | None,
    rules: Sequence[Rule] | None,
    base: dict[str, Any],
) -> BounceReport | None:
    per_message: Message | None = None
    per_recipient: list[Message] = []
    for part in parts:
        blocks = header_blocks(part)
        for block in blocks:
            if block.get("Final-Recipient") or block.get("Original-Recipient"):
                per_recipient.append(block)
            elif per_message is None and block.get("Action") is None:
                per_message = block
            elif block.get("Action") is not None:
                per_recipient.append(block)  # no recipient field: VERP names it
    if not per_recipient:
        return None
    one_recipient = len(per_recipient) == 1
    recipients = []
    for block in per_recipient:
        final = _typed_address(header_text(block, "Final-Recipient"))
        original = _typed_address(header_text(block, "Original-Recipient"))
        if verp is not None and one_recipient:
            recipient, source = verp.recipient, "verp"
        elif original:
            recipient, source = original, "original_recipient"
        elif final:
            recipient, source = final, "final_recipient"
        elif verp is not None:
            recipient, source = verp.recipient, "verp"
        else:
            recipient, source = None, None
        diagnostic_type, diagnostic = _typed_value(header_text(block, "Diagnostic-Code"))
        recipients.append(
            _recipient_status(
                recipient=recipient,
                source=source,
                action=_first_word(header_text(block, "Action")),
                status=header_text(block, "Status"),
                diagnostic=diagnostic,
                diagnostic_type=diagnostic_type,
                final_recipient=final,
                original_recipient=original,
                remote_mta=_host(_typed_value(header_text(block, "Remote-MTA"))[1]),
                last_attempt_date=header_text(block, "Last-Attempt-Date"),
                will_retry_until=header_text(block, "Will-Retry-Until"),
                rules=rules,
            )
        )
    actions = {r.action for r in recipients}
    if FAILED in actions:
        kind = BOUNCE
    elif DELAYED in actions:
        kind = DELAY
    elif actions & _NOT_FAILURES:
        kind = DELIVERY
    else:
        kind = UNRECOGNISED
    info = per_message if per_message is not None else Message()
    return _report(
        kind,
        "dsn",
        recipients,
        base,
        [],
        reporting_mta=_host(_typed_value(header_text(info, "Reporting-MTA"))[1]),
        queue_id=header_text(info, "X-Postfix-Queue-ID"),
        postfix_sender=_typed_address(header_text(info, "X-Postfix-Sender")),
    )


def _recipient_status(
    *,
    recipient: str | None,
    source: str | None,
    action: str,
    status: str | None,
    diagnostic: str | None,
    rules: Sequence[Rule] | None,
    diagnostic_type: str | None = None,
    final_recipient: str | None = None,
    original_recipient: str | None = None,
    remote_mta: str | None = None,
    last_attempt_date: str | None = None,
    will_retry_until: str | None = None,
) -> RecipientStatus:
    code = clean_dsn(status)
    reply_text = normalize_reply(diagnostic).text if diagnostic else None
    expired = action == FAILED and (code or "").startswith("4")
    return RecipientStatus(
        recipient=recipient,
        recipient_source=source,
        action=action,
        status=code or (status.split(maxsplit=1)[0] if status else None),
        diagnostic=reply_text,
        diagnostic_type=diagnostic_type,
        final_recipient=final_recipient,
        original_recipient=original_recipient,
        remote_mta=remote_mta,
        last_attempt_date=last_attempt_date,
        will_retry_until=will_retry_until,
        classification=classify(code, diagnostic, rules, expired=expired),
    )


def _flufl_recipients(
    msg: Message,
    verp: VerpAddress | None,
    diagnostic: str | None,
    rules: Sequence[Rule] | None,
    notes: list[str],
) -> tuple[RecipientStatus, ...]:
    try:
        temporary, permanent = _flufl_all_failures(msg)
    except Exception as error:  # its heuristics meet every kind of broken mail
        notes.append(f"flufl.bounce failed on this message: {error}")
        return ()
    found = [(_decoded(a), FAILED) for a in sorted(permanent)]
    found += [(_decoded(a), DELAYED) for a in sorted(temporary) if a not in permanent]
    found = [(a, action) for a, action in found if a]
    status = normalize_reply(diagnostic).dsn if diagnostic else None
    one = len(found) == 1
    return tuple(
        _recipient_status(
            recipient=verp.recipient if verp is not None and one else address,
            source="verp" if verp is not None and one else "flufl.bounce",
            action=action,
            # the text's code, when it agrees with flufl.bounce on permanent or temporary
            status=status if status and status[0] == ("5" if action == FAILED else "4") else None,
            diagnostic=diagnostic,
            final_recipient=address,
            rules=rules,
        )
        for address, action in found
    )


def _decoded(address: bytes | str) -> str | None:
    text = address.decode("utf-8", "replace") if isinstance(address, bytes) else address
    return clean_address(text)


def _from_mailer_daemon(msg: Message, *, by_subject: bool = True) -> bool:
    """A mailer daemon's message: its From, its bounce headers, or (`by_subject`) its subject.

    The subject is no proof against an auto-reply, which echoes our subject.
    """
    sender = clean_address(header_text(msg, "From")) or ""
    if sender.rpartition("@")[0].lower() in _DAEMON_LOCALS:
        return True
    if msg.get("X-Failed-Recipients") is not None:
        return True
    if msg.get("X-MS-Exchange-Message-Is-Ndr") is not None:
        return True
    return by_subject and bool(_BOUNCE_SUBJECT.search(header_text(msg, "Subject") or ""))


def _typed_value(value: str | None) -> tuple[str | None, str | None]:
    """`type; value` fields (RFC 3464): (`smtp`, `550 ...`); a value without a type keeps it."""
    if not value:
        return None, None
    kind, semi, rest = value.partition(";")
    if semi and re.fullmatch(r"\s*[A-Za-z][\w.-]*\s*", kind):
        return kind.strip().lower(), rest.strip() or None
    return None, value.strip() or None


def _first_word(value: str | None) -> str:
    words = (value or "").lower().split(maxsplit=1)
    return words[0] if words else ""


def _host(value: str | None) -> str | None:
    """`gmail-smtp-in.l.google.com. (2607:f8b0::1b, the server for ...)` -> the host name."""
    words = (value or "").split(maxsplit=1)
    return (words[0].rstrip(".").lower() or None) if words else None


def _typed_address(value: str | None) -> str | None:
    kind, address = _typed_value(value)
    if (kind or "") not in _ADDRESS_TYPES:
        return None
    return clean_address(address)
