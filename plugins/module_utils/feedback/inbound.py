"""What the feedback addresses receive, decided: one message in, the rows to write out.

Postfix hands every message for a feedback address to `bulkmail feedback` (pipe(8), one
message and one recipient per process); that command reads the config file, calls
`process()` and writes the `Outcome`'s rows in one transaction (the statements are here:
`message_statement`, `follow_up_statements`, `dmarc_report_statement`,
`dmarc_record_statement`). Every message is stored raw in feedback_messages under the SHA-256
of its bytes and its envelope recipient, whatever it is: a message nothing here reads is kind
`unparsed`, kept for a better parser, and never refused (Postfix would retry or bounce it).

The config file (JSON, written by Ansible from the model):

    {
      "tenants": {"domains": {"example.test": "example.test", "shop.test": "shop.test"}},
      "return_path_domains": {"bounces.example.test": "example.test"},
      "senders": ["news@example.test"],
      "addresses": {
        "dmarc@example.test": "dmarc_report",
        "tls-reports@example.test": "tls_report",
        "fbl@example.test": "complaint",
        "unsubscribe@example.test": "unsubscribe"
      },
      "hard_bounce_scope": "tenant",
      "own_reporting_mtas": ["mta1.example.test", "mta2.example.test"]
    }

- `tenants`: TenantMap.load's format (sending domain -> tenant).
- `return_path_domains`: return-path domain -> sending domain (verp.return_path_domains);
  every address on one of these domains receives what comes back to the VERP return paths:
  bounces, ARF complaints (feedback loops send them to the return path too), auto-replies.
- `senders` (optional): the known sending addresses, for decode_verp.
- `addresses`: fixed addresses and what they receive: `dmarc_report`, `tls_report`,
  `complaint`, `unsubscribe` (the `mailto:` of List-Unsubscribe) or `bounce` (a fixed return
  path without VERP). `local+anything@domain` routes as `local@domain`
  (recipient_delimiter), so a mailto may carry a token.
- `hard_bounce_scope` (optional, default `tenant`): `tenant` suppresses a hard bounce for the
  tenant whose mail bounced, as complaints and unsubscribes are; `global` suppresses it for
  every tenant (an address that does not exist does not exist for anyone, but a tenant's
  mistyped list would then stop every tenant's mail to an address that a later owner takes).
- `own_reporting_mtas` (optional, default none): the `myhostname` of every Postfix instance
  of ours (addresses.own_reporting_mtas: each smtp host's name). When one of them bounces a
  message, `bulkmail ingest` reads the bounce from its log (bounces, soft_bounces,
  suppression) and its bounce(8) also mails a notice to the VERP return path, which is our
  own MX: that notice must not count the same bounce twice. A lane's instance discards its
  notices itself (postfix/inbound.py `own_notices`); the default instance cannot, as it
  receives the internet's DSNs for the same addresses.

What is decided, by route (`route()`):

- return path (`bounce`): `bounces.parse_bounce` with the VERP address decoded. A bounce
  writes a bounces row per failed recipient (recipient from VERP first, else the DSN's
  Original/Final-Recipient or flufl.bounce), tenant from the VERP sender (else the return-path
  domain's); a hard class suppresses (reason hard_bounce, with the dsn), a soft class writes a
  soft_bounces row, a sender-side class (blocklist, rate limit, authentication) only the
  bounces row. A bounce whose Reporting-MTA is one of `own_reporting_mtas` (our own
  Postfix's notice, compared without its `dns;` type and case) is stored (kind bounce) with
  no bounces, soft_bounces or suppression row: the ingester wrote those from the log line;
  a DSN naming no Reporting-MTA is taken as someone else's. A delay or success notice is
  stored (kind bounce) with nothing else. An ARF report, or Microsoft's non-ARF JMRP, goes
  to the complaint path. An auto-reply is stored (kind auto_reply) and suppresses nothing.
- `complaint`: `arf.parse_complaint`; a complaints row, and a suppression (reason complaint)
  for the tenant of the complained-about message's sender (VERP sender, else the original's
  Return-Path or From), never for another tenant. When that sender is not on a domain of ours
  (the map's), or the complainer is redacted, or the Feedback-Type is not-spam or
  auth-failure, nothing is suppressed.
- `unsubscribe`: RFC 2369 mail to the List-Unsubscribe `mailto:` address
  (`mailto:unsubscribe@domain?subject=unsubscribe-TOKEN`, unsubscribe.unsubscribe_headers).
  With the one-click token keys (`process(..., unsubscribe_keys=...)`, the endpoint's keys
  file), the token is what counts: the subject's (`Re:`, case and folded whitespace allowed),
  else the address extension's. A token that verifies suppresses its own recipient for its
  own tenant (reason unsubscribe, the campaign in the note), whatever the From says: the
  From can be forged, and a person answering from a forwarding mailbox is not the address
  we mailed. A token that does not verify (forged, another key, malformed, older than
  `unsubscribe_max_age_days` when one is set) suppresses nothing: the message is stored as
  kind unsubscribe, which it is, with the reason in the note, for a person to read. Mail
  with no token at all (clients that drop the subject exist), or any mail when no keys are
  given, is trusted by its From: the person is the message's From (the address we mailed,
  in most clients; the envelope sender is SRS or a provider's bounce address when
  forwarded), else the envelope sender, suppressed for the tenant of the unsubscribe
  mailbox's domain, so each sending domain's List-Unsubscribe must name a mailbox on that
  domain (or its return-path domain); anyone can unsubscribe anyone that way, which is the
  price of honouring such clients. A token is never written into a note when keys are
  given (without them it is noted, unread). Auto-replies and null-sender mail there
  suppress nothing.
- `dmarc_report` / `tls_report`: reports.find_reports on the attachments; one dmarc_reports
  row (with its records) per aggregate report, one tls_reports row per TLS-RPT policy.

Pure Python: no I/O, no Ansible import.
"""

from __future__ import annotations

import email
import email.errors
import email.utils
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import Message
from typing import Any

from .arf import Complaint, is_redacted, parse_complaint
from .bounces import (
    AUTO_REPLY,
    BOUNCE,
    COMPLAINT,
    DELAY,
    DELIVERY,
    BounceReport,
    auto_reply_reason,
    parse_bounce,
)
from .original import clean_address, clean_message_id, header_text
from .reports import DmarcReport, ReportError, TlsReport, find_reports
from .suppression import GLOBAL, TenantMap, normalise_address, normalise_domain
from .unsubscribe import (
    TokenData,
    TokenError,
    read_token,
    suppression_row,
    token_from_mailto_subject,
)
from .verp import decode_verp

# feedback_messages.kind (migration 0003)
KIND_BOUNCE = "bounce"
KIND_COMPLAINT = "complaint"
KIND_AUTO_REPLY = "auto_reply"
KIND_UNSUBSCRIBE = "unsubscribe"
KIND_DMARC = "dmarc_report"
KIND_TLS = "tls_report"
KIND_UNPARSED = "unparsed"
# route(): the address kinds, and an address that is none of ours
ADDRESS_KINDS = (KIND_BOUNCE, KIND_COMPLAINT, KIND_UNSUBSCRIBE, KIND_DMARC, KIND_TLS)
UNKNOWN = "unknown"
HARD_BOUNCE_SCOPES = ("tenant", "global")
CONFIG_KEYS = (
    "tenants",
    "return_path_domains",
    "senders",
    "addresses",
    "hard_bounce_scope",
    "own_reporting_mtas",
)
RECIPIENT_DELIMITER = "+"
# Feedback types that are no complaint about our mail (RFC 5965, RFC 6591).
_NOT_COMPLAINTS = frozenset({"not-spam", "auth-failure"})
_DSN = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")
_NULL_SENDERS = frozenset({"", "<>", "mailer-daemon"})
MAX_NOTE = 2000


class FeedbackConfigError(ValueError):
    """The config file is wrong; the message names the key and what to write."""


@dataclass(frozen=True)
class FeedbackConfig:
    """The config file, read (see the module's docstring)."""

    tenants: TenantMap
    return_paths: Mapping[str, str]
    senders: tuple[str, ...] = ()
    addresses: Mapping[str, str] = field(default_factory=dict)
    hard_bounce_scope: str = "tenant"
    # Our Postfix instances' myhostnames, normalised: their notices count no bounce.
    own_reporting_mtas: frozenset[str] = frozenset()

    @classmethod
    def load(cls, data: Any, where: str = "feedback config") -> FeedbackConfig:
        if not isinstance(data, Mapping):
            raise FeedbackConfigError(f"{where}: expected a JSON object with {CONFIG_KEYS}")
        unknown = sorted(str(k) for k in data if k not in CONFIG_KEYS)
        if unknown:
            raise FeedbackConfigError(
                f"{where}: unknown key {unknown[0]!r}; the keys are {', '.join(CONFIG_KEYS)}"
            )
        try:
            tenants = TenantMap.load(data.get("tenants"), f"{where}.tenants")
        except ValueError as error:
            raise FeedbackConfigError(str(error)) from None
        return_paths = _domain_map(data.get("return_path_domains", {}), where)
        senders = data.get("senders", [])
        if not isinstance(senders, list) or not all(isinstance(s, str) for s in senders):
            raise FeedbackConfigError(f"{where}.senders: a list of addresses")
        addresses = {}
        raw_addresses = data.get("addresses", {})
        if not isinstance(raw_addresses, Mapping):
            raise FeedbackConfigError(f"{where}.addresses: {{address: kind}}")
        for address, kind in raw_addresses.items():
            if not isinstance(address, str) or "@" not in address:
                raise FeedbackConfigError(f"{where}.addresses: {address!r} is not an address")
            if kind not in ADDRESS_KINDS:
                raise FeedbackConfigError(
                    f"{where}.addresses.{address}: {kind!r} is not one of "
                    + ", ".join(ADDRESS_KINDS)
                )
            addresses[normalise_address(address)] = kind
        scope = data.get("hard_bounce_scope", "tenant")
        if scope not in HARD_BOUNCE_SCOPES:
            raise FeedbackConfigError(
                f"{where}.hard_bounce_scope: {scope!r} is not one of "
                + ", ".join(HARD_BOUNCE_SCOPES)
            )
        own = data.get("own_reporting_mtas", [])
        if not isinstance(own, list) or not all(isinstance(n, str) and n.strip() for n in own):
            raise FeedbackConfigError(
                f"{where}.own_reporting_mtas: a list of our Postfix hosts' names (myhostname)"
            )
        own_mtas = frozenset(normalise_domain(name) for name in own)
        return cls(tenants, return_paths, tuple(senders), addresses, scope, own_mtas)

    def is_own_notice(self, report: BounceReport) -> bool:
        """Whether our own Postfix wrote this report (its Reporting-MTA, which parse_bounce
        gives without its `dns;` type, in lower case)."""
        mta = report.reporting_mta
        return mta is not None and normalise_domain(mta) in self.own_reporting_mtas

    def mailbox_tenant(self, address: str) -> str | None:
        """The tenant a feedback mailbox belongs to: its domain's, a return-path domain
        standing for its sending domain."""
        domain = normalise_domain(address.strip().strip("<>").rpartition("@")[2])
        return self.tenants.tenant_for_domain(self.return_paths.get(domain, domain))

    def known_tenant(self, address: str | None) -> str | None:
        """The tenant of an address on a domain of ours (the map's or a return-path domain,
        or a subdomain of one), None for anyone else's domain."""
        if not address or "@" not in address:
            return None
        domain = normalise_domain(address.strip().strip("<>").rpartition("@")[2])
        domain = self.return_paths.get(domain, domain)
        candidate = domain
        while candidate:
            tenant = self.tenants.domains.get(candidate)
            if tenant is not None:
                return tenant
            candidate = candidate.partition(".")[2]
        return None


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class FeedbackMessageRow:
    kind: str
    envelope_sender: str
    envelope_recipient: str
    message_id: str | None
    digest: str
    raw: bytes
    note: str | None


@dataclass(frozen=True)
class BounceRow:
    tenant: str
    recipient: str
    sender: str | None
    message_id: str | None
    dsn: str | None
    bounce_class: str
    hard: bool
    reply: str | None
    reporting_mta: str | None
    occurred_at: datetime


@dataclass(frozen=True)
class SuppressionEntry:
    tenant: str
    address: str
    reason: str
    dsn: str | None
    note: str | None
    suppressed_at: datetime


@dataclass(frozen=True)
class SoftBounceEntry:
    tenant: str
    address: str
    dsn: str | None
    occurred_at: datetime


@dataclass(frozen=True)
class ComplaintRow:
    tenant: str
    recipient: str | None
    sender: str | None
    message_id: str | None
    feedback_type: str | None
    feedback_id: str | None
    reporter: str | None
    occurred_at: datetime


@dataclass(frozen=True)
class Outcome:
    """The rows one received message becomes; `message.note` says it in words."""

    message: FeedbackMessageRow
    bounces: tuple[BounceRow, ...] = ()
    suppressions: tuple[SuppressionEntry, ...] = ()
    soft_bounces: tuple[SoftBounceEntry, ...] = ()
    complaints: tuple[ComplaintRow, ...] = ()
    dmarc_reports: tuple[DmarcReport, ...] = ()
    tls_reports: tuple[TlsReport, ...] = ()

    @property
    def kind(self) -> str:
        return self.message.kind

    def summary(self) -> str:
        """One line for the log: the kind, the counts, the note."""
        counts = [
            f"{len(rows)} {name}"
            for name, rows in (
                ("bounces", self.bounces),
                ("suppressions", self.suppressions),
                ("soft bounces", self.soft_bounces),
                ("complaints", self.complaints),
                ("DMARC reports", self.dmarc_reports),
                ("TLS report rows", self.tls_reports),
            )
            if rows
        ]
        text = f"{self.kind} to {self.message.envelope_recipient}"
        if counts:
            text += ": " + ", ".join(counts)
        if self.message.note:
            text += f" ({self.message.note})"
        return " ".join(text.split())[:MAX_NOTE]


# --------------------------------------------------------------------------- routing


def route(recipient: str, config: FeedbackConfig) -> str:
    """What an envelope recipient receives: one of ADDRESS_KINDS, or UNKNOWN.

    A fixed address first (as written, then without its `+extension`), then any address on
    a return-path domain (the VERP return paths: `bounce`).
    """
    address = normalise_address(recipient)
    kind = config.addresses.get(address)
    if kind is not None:
        return kind
    local, at, domain = address.rpartition("@")
    if at and RECIPIENT_DELIMITER in local:
        base = local.split(RECIPIENT_DELIMITER, 1)[0]
        kind = config.addresses.get(f"{base}@{domain}")
        if kind is not None:
            return kind
    if at and domain in config.return_paths:
        return KIND_BOUNCE
    return UNKNOWN


def process(
    raw: bytes,
    sender: str,
    recipient: str,
    config: FeedbackConfig,
    now: datetime,
    *,
    unsubscribe_keys: Sequence[bytes] = (),
    unsubscribe_max_age_days: int | None = None,
) -> Outcome:
    """The rows for one received message (see the module's docstring).

    `sender` and `recipient` are the envelope's (Postfix's ${sender}, ${original_recipient});
    `now` (aware, UTC) dates what the message does not date itself. `unsubscribe_keys` verify
    the mailto unsubscribe's token (unsubscribe.parse_keys's list; none: the From is trusted),
    `unsubscribe_max_age_days` refuses older tokens as the endpoint's `--max-age-days` does.
    They are parameters, not config fields: the config is a dataclass whose repr would show
    them. Never raises for a message it cannot read: that is kind unparsed, with the reason
    in the note.
    """
    envelope_sender = _envelope_sender(sender)
    envelope_recipient = recipient.strip().strip("<>")
    base = _Base(raw, envelope_sender, envelope_recipient, config, now)
    base.unsubscribe_keys = tuple(unsubscribe_keys)
    base.unsubscribe_max_age_days = unsubscribe_max_age_days
    where = route(envelope_recipient, config)
    if where == UNKNOWN:
        return base.unparsed(f"{envelope_recipient} is not a feedback address of the config")
    try:
        msg = email.message_from_bytes(raw)
        base.message_id = clean_message_id(header_text(msg, "Message-ID"))
        if where == KIND_BOUNCE:
            return _return_path(msg, base)
        if where == KIND_COMPLAINT:
            return _complaint(msg, base, None)
        if where == KIND_UNSUBSCRIBE:
            return _unsubscribe(msg, base)
        return _reports(msg, base, where)
    except (ValueError, LookupError, UnicodeError, email.errors.MessageError) as error:
        # broken mail meets the email package's and our parsers' limits: kept, not retried
        return base.unparsed(f"not read: {type(error).__name__}: {error}")


# --------------------------------------------------------------------------- SQL


MESSAGE_SQL = (
    "INSERT INTO feedback_messages"
    " (kind, envelope_sender, envelope_recipient, message_id, digest, raw, note)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (digest, envelope_recipient) DO NOTHING RETURNING id"
)
BOUNCE_SQL = (
    "INSERT INTO bounces (feedback_message, tenant, recipient, sender, message_id, dsn,"
    " bounce_class, hard, reply, reporting_mta, occurred_at)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
SUPPRESSION_SQL = (
    "INSERT INTO suppression (tenant, address, reason, dsn, note, suppressed_at)"
    " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (tenant, address) DO NOTHING"
)
SOFT_BOUNCE_SQL = (
    "INSERT INTO soft_bounces (tenant, address, dsn, occurred_at) VALUES (%s, %s, %s, %s)"
)
COMPLAINT_SQL = (
    "INSERT INTO complaints (feedback_message, tenant, recipient, sender, message_id,"
    " feedback_type, feedback_id, reporter, occurred_at)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
TLS_REPORT_SQL = (
    "INSERT INTO tls_reports (feedback_message, organization, report_id, policy_domain,"
    " policy_type, date_begin, date_end, successful, failed, failures)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)"
    " ON CONFLICT (organization, report_id, policy_domain, policy_type) DO NOTHING"
)
DMARC_REPORT_SQL = (
    "INSERT INTO dmarc_reports (feedback_message, org_name, report_id, domain, date_begin,"
    " date_end, policy) VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb)"
    " ON CONFLICT (org_name, report_id) DO NOTHING RETURNING id"
)
DMARC_RECORD_SQL = (
    "INSERT INTO dmarc_records (report, source_ip, count, disposition, dkim_aligned,"
    " spf_aligned, dkim_result, dkim_domain, spf_result, spf_domain, header_from,"
    " envelope_from) VALUES (%s, %s::inet, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)

Statement = tuple[str, tuple[Any, ...]]


def message_statement(row: FeedbackMessageRow) -> Statement:
    """The feedback_messages insert; no row back means this message was stored before
    (Postfix retried a delivery that had committed): write nothing else."""
    return MESSAGE_SQL, (
        row.kind,
        row.envelope_sender,
        row.envelope_recipient,
        row.message_id,
        row.digest,
        row.raw,
        row.note,
    )


def follow_up_statements(outcome: Outcome, message_row_id: int) -> list[Statement]:
    """Every insert after the feedback_messages row except the DMARC reports (which need
    their id back: dmarc_report_statement)."""
    statements: list[Statement] = []
    for b in outcome.bounces:
        statements.append(
            (
                BOUNCE_SQL,
                (
                    message_row_id,
                    b.tenant,
                    b.recipient,
                    b.sender,
                    b.message_id,
                    b.dsn,
                    b.bounce_class,
                    b.hard,
                    b.reply,
                    b.reporting_mta,
                    b.occurred_at,
                ),
            )
        )
    for s in outcome.suppressions:
        statements.append(
            (SUPPRESSION_SQL, (s.tenant, s.address, s.reason, s.dsn, s.note, s.suppressed_at))
        )
    for soft in outcome.soft_bounces:
        statements.append(
            (SOFT_BOUNCE_SQL, (soft.tenant, soft.address, soft.dsn, soft.occurred_at))
        )
    for c in outcome.complaints:
        statements.append(
            (
                COMPLAINT_SQL,
                (
                    message_row_id,
                    c.tenant,
                    c.recipient,
                    c.sender,
                    c.message_id,
                    c.feedback_type,
                    c.feedback_id,
                    c.reporter,
                    c.occurred_at,
                ),
            )
        )
    for t in outcome.tls_reports:
        statements.append(
            (
                TLS_REPORT_SQL,
                (
                    message_row_id,
                    t.organization,
                    t.report_id,
                    t.policy_domain,
                    t.policy_type,
                    t.date_begin,
                    t.date_end,
                    t.successful,
                    t.failed,
                    json.dumps(list(t.failures), sort_keys=True),
                ),
            )
        )
    return statements


def dmarc_report_statement(report: DmarcReport, message_row_id: int) -> Statement:
    """The dmarc_reports insert; no id back: the same report was stored before (another
    copy, another address): its records are not written again."""
    return DMARC_REPORT_SQL, (
        message_row_id,
        report.org_name,
        report.report_id,
        report.domain,
        report.date_begin,
        report.date_end,
        json.dumps(report.policy_published, sort_keys=True),
    )


def dmarc_record_statement(
    report: DmarcReport, report_row_id: int
) -> tuple[str, list[tuple[Any, ...]]]:
    """The dmarc_records inserts of one report, for executemany."""
    return DMARC_RECORD_SQL, [
        (
            report_row_id,
            r.source_ip,
            r.count,
            r.disposition,
            r.dkim_aligned,
            r.spf_aligned,
            r.dkim_result,
            r.dkim_domain,
            r.spf_result,
            r.spf_domain,
            r.header_from,
            r.envelope_from,
        )
        for r in report.records
    ]


# --------------------------------------------------------------------------- internals


class _Base:
    """What every outcome of one message shares: its feedback_messages row's fields."""

    def __init__(
        self,
        raw: bytes,
        sender: str,
        recipient: str,
        config: FeedbackConfig,
        now: datetime,
    ) -> None:
        self.raw = raw
        self.digest = hashlib.sha256(raw).hexdigest()
        self.sender = sender
        self.recipient = recipient
        self.config = config
        self.now = now
        self.message_id: str | None = None
        self.unsubscribe_keys: tuple[bytes, ...] = ()
        self.unsubscribe_max_age_days: int | None = None

    def row(self, kind: str, note: str | None) -> FeedbackMessageRow:
        text = " ".join(note.split())[:MAX_NOTE] if note else None
        return FeedbackMessageRow(
            kind, self.sender, self.recipient, self.message_id, self.digest, self.raw, text
        )

    def unparsed(self, note: str) -> Outcome:
        return Outcome(self.row(KIND_UNPARSED, note))

    def when(self, value: str | None) -> datetime:
        """A date the message gives (RFC 5322), else now; one too far off is not believed."""
        if value:
            try:
                parsed = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                parsed = None
            if parsed is not None:
                if parsed.tzinfo is None:
                    parsed = parsed.replace(tzinfo=self.now.tzinfo)
                if self.now - timedelta(days=365) <= parsed <= self.now + timedelta(days=1):
                    return parsed
        return self.now


def _return_path(msg: Message, base: _Base) -> Outcome:
    config = base.config
    verp = decode_verp(base.recipient, config.return_paths, senders=config.senders)
    report = parse_bounce(msg, verp=verp)
    if report.kind == COMPLAINT:
        return _complaint(msg, base, verp.sender if verp else None)
    if report.kind == AUTO_REPLY:
        return Outcome(base.row(KIND_AUTO_REPLY, f"auto-reply ({report.auto_reply_reason})"))
    if report.kind == BOUNCE:
        if config.is_own_notice(report):
            # the ingester wrote this bounce's rows from the log line: none a second time
            failed = ", ".join(
                sorted({normalise_address(f.recipient) for f in report.failures if f.recipient})
            )
            return Outcome(
                base.row(
                    KIND_BOUNCE,
                    f"our own notice; the bounce is counted from the log (reported by "
                    f"{report.reporting_mta} for {failed or 'an unnamed recipient'})",
                )
            )
        return _bounce(report, base, verp.sender if verp else None)
    if report.kind in (DELAY, DELIVERY):
        what = "a delay warning" if report.kind == DELAY else "a delivery notice"
        return Outcome(base.row(KIND_BOUNCE, f"{what} (no failure): nothing recorded"))
    # Microsoft's old JMRP wraps the original in message/rfc822 with no report part
    complaint = _complaint(msg, base, verp.sender if verp else None)
    if complaint.kind == KIND_COMPLAINT:
        return complaint
    notes = "; ".join(report.notes)
    return base.unparsed("neither a bounce nor a complaint" + (f": {notes}" if notes else ""))


def _bounce(report: BounceReport, base: _Base, verp_sender: str | None) -> Outcome:
    config = base.config
    tenant = (
        config.tenants.tenant_for_sender(verp_sender) if verp_sender else None
    ) or config.mailbox_tenant(base.recipient)
    if tenant is None:
        return base.unparsed("a bounce to a mailbox with no tenant")
    message_id = report.original.message_id if report.original else None
    bounce_rows: list[BounceRow] = []
    suppressions: list[SuppressionEntry] = []
    soft: list[SoftBounceEntry] = []
    notes: list[str] = []
    for failure in report.failures:
        if not failure.recipient:
            notes.append("a failed recipient the report does not name")
            continue
        address = normalise_address(failure.recipient)
        verdict = failure.classification
        dsn = _dsn(verdict.dsn) or _dsn(failure.status)
        occurred = base.when(failure.last_attempt_date)
        bounce_rows.append(
            BounceRow(
                tenant=tenant,
                recipient=address,
                sender=normalise_address(verp_sender) if verp_sender else None,
                message_id=message_id,
                dsn=dsn,
                bounce_class=verdict.bounce_class,
                hard=verdict.is_hard,
                reply=(failure.diagnostic or None) and failure.diagnostic[:MAX_NOTE],
                reporting_mta=report.reporting_mta,
                occurred_at=occurred,
            )
        )
        what = f"{address} {dsn or '-'} {verdict.bounce_class}"
        if verdict.is_hard:
            scope = GLOBAL if config.hard_bounce_scope == "global" else tenant
            suppressions.append(
                SuppressionEntry(
                    tenant=scope,
                    address=address,
                    reason="hard_bounce",
                    dsn=dsn,
                    note=f"bounce ({verdict.bounce_class}) reported by "
                    f"{report.reporting_mta or 'an unnamed MTA'} for {tenant}'s mail",
                    suppressed_at=occurred,
                )
            )
            notes.append(f"{what} hard, suppressed for {scope}")
        elif verdict.is_soft:
            soft.append(SoftBounceEntry(tenant, address, dsn, occurred))
            notes.append(f"{what} soft")
        else:
            notes.append(f"{what} not the recipient's doing")
    return Outcome(
        base.row(KIND_BOUNCE, f"bounce ({report.source}) for {tenant}: " + "; ".join(notes)),
        bounces=tuple(bounce_rows),
        suppressions=tuple(suppressions),
        soft_bounces=tuple(soft),
    )


def _complaint(msg: Message, base: _Base, verp_sender: str | None) -> Outcome:
    config = base.config
    complaint = parse_complaint(msg, return_paths=config.return_paths, senders=config.senders)
    if complaint is None:
        reason = auto_reply_reason(msg)
        if reason is not None:
            return Outcome(base.row(KIND_AUTO_REPLY, f"auto-reply ({reason})"))
        return base.unparsed("no complaint report (ARF) in it")
    sender = complaint.sender or verp_sender
    tenant = config.known_tenant(sender)
    recipient = complaint.recipient
    usable = recipient is not None and not is_redacted(recipient) and "@" in recipient
    address = normalise_address(recipient) if usable and recipient else None
    occurred = base.when(complaint.arrival_date)
    feedback_type = complaint.feedback_type
    if tenant is None:
        # about mail not sent as a domain of ours: recorded under the mailbox, not acted on
        note = f"complaint about mail from {sender or 'an unknown sender'}, not ours"
        row_tenant = config.mailbox_tenant(base.recipient) or GLOBAL
        suppressions: tuple[SuppressionEntry, ...] = ()
    else:
        row_tenant = tenant
        if address is None:
            note = f"complaint for {tenant}, the complainer is not named: nothing suppressed"
            suppressions = ()
        elif feedback_type in _NOT_COMPLAINTS:
            note = f"{feedback_type} report for {tenant}: nothing suppressed"
            suppressions = ()
        else:
            note = f"complaint ({feedback_type}) by {address}, suppressed for {tenant}"
            suppressions = (
                SuppressionEntry(
                    tenant=tenant,
                    address=address,
                    reason="complaint",
                    dsn=None,
                    note=_complaint_note(complaint),
                    suppressed_at=occurred,
                ),
            )
    row = ComplaintRow(
        tenant=row_tenant,
        recipient=address,
        sender=normalise_address(sender) if sender else None,
        message_id=complaint.message_id,
        feedback_type=feedback_type,
        feedback_id=complaint.feedback_id.raw if complaint.feedback_id else None,
        reporter=complaint.reporter,
        occurred_at=occurred,
    )
    return Outcome(
        base.row(KIND_COMPLAINT, note), complaints=(row,), suppressions=tuple(suppressions)
    )


def _complaint_note(complaint: Complaint) -> str:
    by = complaint.reporter or complaint.reporting_mta or "a feedback loop"
    return f"{complaint.report_format} {complaint.feedback_type} report from {by}"


def _unsubscribe(msg: Message, base: _Base) -> Outcome:
    reason = auto_reply_reason(msg)
    if reason is not None:
        return Outcome(base.row(KIND_AUTO_REPLY, f"auto-reply ({reason})"))
    if not base.sender:
        return base.unparsed("null-sender mail (a bounce?) to the unsubscribe address")
    local, at, domain = base.recipient.rpartition("@")
    base_local, delimiter, extension = local.partition(RECIPIENT_DELIMITER)
    subject = header_text(msg, "Subject")
    candidates = [
        (where, token)
        for where, token in (
            ("the subject", token_from_mailto_subject(subject)),
            ("the address extension", extension if delimiter else None),
        )
        if token
    ]
    if base.unsubscribe_keys and candidates:
        return _unsubscribe_token(msg, base, candidates, f"{base_local}{at}{domain}")
    person = clean_address(header_text(msg, "From")) or clean_address(base.sender)
    if person is None:
        return base.unparsed("an unsubscribe request naming no address")
    tenant = base.config.mailbox_tenant(base.recipient)
    if tenant is None:
        return base.unparsed("an unsubscribe address with no tenant")
    address = normalise_address(person)
    details = [f"mailto unsubscribe to {base.recipient}"]
    if extension:
        details.append(f"token {extension}")
    if subject:
        details.append(f"subject {subject[:200]!r}")
    details.append(
        "no token: the From is trusted"
        if base.unsubscribe_keys
        else "no token keys given: the From is trusted"
    )
    note = "; ".join(details)
    return Outcome(
        base.row(KIND_UNSUBSCRIBE, f"{address} unsubscribed from {tenant}: {note}"),
        suppressions=(
            SuppressionEntry(
                tenant=tenant,
                address=address,
                reason="unsubscribe",
                dsn=None,
                note=note[:MAX_NOTE],
                suppressed_at=base.when(header_text(msg, "Date")),
            ),
        ),
    )


def _unsubscribe_token(
    msg: Message, base: _Base, candidates: Sequence[tuple[str, str]], mailbox: str
) -> Outcome:
    """The token path: the first candidate that verifies decides; none does, nothing is
    suppressed. Notes name the mailbox without its extension and never quote the subject:
    both may carry the token."""
    today = int(base.now.timestamp() // 86400)
    data: TokenData | None = None
    where = ""
    failures: list[str] = []
    for where, token in candidates:
        try:
            data = read_token(
                base.unsubscribe_keys,
                token,
                max_age_days=base.unsubscribe_max_age_days,
                today=today,
            )
        except TokenError as error:  # its message names neither the token nor a key
            failures.append(f"{where}: {error}")
            continue
        break
    sender = clean_address(header_text(msg, "From")) or clean_address(base.sender)
    claimed = f" from {normalise_address(sender)}" if sender else ""
    if data is None:
        return Outcome(
            base.row(
                KIND_UNSUBSCRIBE,
                f"mailto unsubscribe to {mailbox}{claimed}: the token did not verify "
                f"({'; '.join(failures)}): nothing suppressed",
            )
        )
    row = suppression_row(data)
    note = f"mailto unsubscribe with a valid token (campaign {row.note!r})"
    return Outcome(
        base.row(
            KIND_UNSUBSCRIBE,
            f"{row.address} unsubscribed from {row.tenant}: {note} in {where}, to {mailbox}"
            f"{claimed}",
        ),
        suppressions=(
            SuppressionEntry(
                tenant=row.tenant,
                address=row.address,
                reason=row.reason,
                dsn=None,
                note=note[:MAX_NOTE],
                suppressed_at=base.when(header_text(msg, "Date")),
            ),
        ),
    )


def _reports(msg: Message, base: _Base, where: str) -> Outcome:
    try:
        found = find_reports(msg)
    except ReportError as error:
        return base.unparsed(f"no report read: {error}")
    problems = "; ".join(found.problems)
    if not found.dmarc and not found.tls:
        reason = auto_reply_reason(msg)
        if reason is not None:
            return Outcome(base.row(KIND_AUTO_REPLY, f"auto-reply ({reason})"))
        return base.unparsed(
            "no DMARC or TLS report attached" + (f": {problems}" if problems else "")
        )
    kind = KIND_DMARC if found.dmarc and (where == KIND_DMARC or not found.tls) else KIND_TLS
    parts = [
        f"DMARC report {r.report_id} from {r.org_name} for {r.domain}: "
        f"{len(r.records)} records, {r.messages} messages"
        for r in found.dmarc
    ]
    parts += [
        f"TLS report {t.report_id} from {t.organization} for {t.policy_domain} ({t.policy_type}):"
        f" {t.successful} successful, {t.failed} failed sessions"
        for t in found.tls
    ]
    notes = [n for r in found.dmarc for n in r.notes]
    if problems:
        notes.append(problems)
    note = "; ".join(parts + notes)
    return Outcome(base.row(kind, note), dmarc_reports=found.dmarc, tls_reports=found.tls)


def _envelope_sender(sender: str) -> str:
    """The null sender as '' (pipe(8) says MAILER-DAEMON unless null_sender= is set)."""
    text = sender.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    return "" if text.lower() in _NULL_SENDERS else text


def _dsn(value: str | None) -> str | None:
    return value if value and _DSN.match(value) else None


def _domain_map(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise FeedbackConfigError(
            f"{where}.return_path_domains: {{return-path domain: sending domain}}"
        )
    out = {}
    for key, target in value.items():
        if not isinstance(key, str) or not isinstance(target, str) or not key or not target:
            raise FeedbackConfigError(
                f"{where}.return_path_domains.{key}: a sending domain name, not {target!r}"
            )
        out[normalise_domain(key)] = normalise_domain(target)
    return out
