"""Delivery events -> rows: what `bulkmail ingest` writes for each event, and the SQL.

`event_row()` turns a `postfix_log.Event` into its `delivery_events` row (migration 0003's
columns, every value already valid for its CHECK: a row that fails one would fail its whole
batch, and the batch would be retried for ever). `follow_ups()` says what else the event means,
written in the same transaction once the event's id is known:

- a final `bounced` delivery (the remote host refused it, at SMTP time or with a 5xx after
  DATA) gets a `bounces` row, `hard` when its class is (classify.py: invalid_recipient,
  inactive_mailbox, bad_domain, or an operator rule's disposition); a hard one also
  suppresses the recipient for the sender's tenant (`suppression`, reason hard_bounce,
  `ON CONFLICT (tenant, address) DO NOTHING`: the first reason stays).
- An expiry is never hard (classify's `expired=True` keeps a hard last answer hard, but
  Postfix gave up on time, not on a refusal: a bounces row with hard=false, no suppression).
- A soft bounce (`soft_bounces`, counted by the policy service: 3 in 7 days by default) is a
  final failure whose class is soft (`bounced` with mailbox_full, routing or unknown;
  `expired`), and a `deferred` delivery whose class is mailbox_full: a full mailbox rarely
  clears within the queue lifetime, and waiting 5 days for the expiry would keep mailing it
  meanwhile. Other deferrals count for nothing (Postfix retries them: greylisting, rate
  limits, connection failures are no failure of the recipient). At most one soft bounce is
  written per message and recipient (origin queue id and host): Postfix retries a full
  mailbox every hour, and each retry is not another bounce.
- Nothing follows from mail with the null sender (our own notices: no tenant to suppress
  for) or mail to our own feedback addresses (a VERP return path, the FBL address), or from
  handoffs and refusals (smtpd refusing a client says nothing about the recipient).

`insert_events()` and `save_state()` are the batch's SQL: multi-row VALUES in chunks,
`ON CONFLICT (event_key) DO NOTHING RETURNING id, event_key`, so an event read twice (a
replay after a crash) is stored once and its follow-ups are not written again.

Pure Python: no I/O, no Ansible import.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .classify import BOUNCE_CLASSES, HARD, SOFT, Rule, classify
from .postfix_log import BOUNCED, DEFERRED, DELIVERY, EXPIRED, REFUSAL, REJECTED, TEMPFAILED, Event
from .suppression import GLOBAL, HARD_BOUNCE, TenantMap, normalise_address

# The delivery_events columns the ingester writes, in the order of the VALUES lists.
EVENT_COLUMNS = (
    "event_key",
    "kind",
    "final",
    "status",
    "host",
    "instance",
    "transport",
    "queue_id",
    "recipient",
    "original_recipient",
    "sender",
    "message_id",
    "origin_queue_id",
    "next_queue_id",
    "notice_of",
    "upstream_unseen",
    "client_ip",
    "sasl_username",
    "relay_ip",
    "relay_port",
    "delay",
    "delays",
    "dsn",
    "remote_host",
    "detail",
    "occurred_at",
    "tenant",
    "bounce_class",
)
# Rows per INSERT: 28 parameters each, well under PostgreSQL's 65,535 per statement.
CHUNK_ROWS = 500
# Deferrals that count as a soft bounce before the expiry (see the module docstring).
COUNTED_DEFERRALS = frozenset({"mailbox_full"})
MAX_TEXT = 2000  # a reply is one line; a longer one is cut rather than stored whole
_DSN = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")
_CLASSIFIED_DELIVERIES = frozenset({BOUNCED, DEFERRED, EXPIRED})
_CLASSIFIED_REFUSALS = frozenset({REJECTED, TEMPFAILED})


@dataclass(frozen=True)
class FeedbackAddresses:
    """Recipients that are ours: mail to them bounces into nothing that suppresses.

    `addresses` are whole addresses (the FBL or postmaster address), `domains` every address
    at a domain (the return-path domains, where the VERP addresses live); both normalised.
    """

    addresses: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, items: Iterable[str]) -> FeedbackAddresses:
        """`bounces@example.test` is one address, `@bounces.example.test` a whole domain."""
        addresses, domains = set(), set()
        for item in items:
            text = item.strip()
            if not text:
                continue
            if text.startswith("@"):
                domains.add(normalise_address(text[1:]))
            elif "@" in text:
                addresses.add(normalise_address(text))
            else:
                raise ValueError(
                    f"{text!r} is neither an address (name@domain) nor a domain (@domain)"
                )
        return cls(frozenset(addresses), frozenset(domains))

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str):
            return False
        return address in self.addresses or address.rpartition("@")[2] in self.domains


def remote_host(event: Event) -> str | None:
    """The relay as Postfix logs it: `mx.example[198.51.100.25]:25`, `local`, or None."""
    if event.relay_ip is None:
        return _text(event.relay_host)
    text = f"{event.relay_host or ''}[{event.relay_ip}]"
    return _text(f"{text}:{event.relay_port}" if event.relay_port is not None else text)


def event_row(
    event: Event, tenants: TenantMap, rules: Sequence[Rule] | None = None
) -> dict[str, Any]:
    """The delivery_events row for `event` (keys: EVENT_COLUMNS), each value valid for its
    column: a malformed address, code or port becomes NULL rather than failing the batch."""
    recipient = normalise_address(event.recipient) if event.recipient else None
    tenant = None
    if event.sender:
        tenant = tenants.tenant_for_sender(event.sender)
        if tenant == GLOBAL:  # a sender domain literally named so must not suppress for all
            tenant = None
    dsn = _dsn(event.dsn)
    bounce_class = None
    if (event.kind == DELIVERY and event.status in _CLASSIFIED_DELIVERIES) or (
        event.kind == REFUSAL and event.status in _CLASSIFIED_REFUSALS
    ):
        bounce_class = classify(
            dsn, event.reply, rules, expired=event.status == EXPIRED
        ).bounce_class
    port = event.relay_port
    return {
        "event_key": event.key,
        "kind": event.kind,
        "final": event.final,
        "status": event.status,
        "host": _text(event.host),
        "instance": _text(event.instance),
        "transport": _text(event.transport),
        "queue_id": _text(event.queue_id),
        "recipient": _text(recipient),
        "original_recipient": _text(event.original_recipient),
        "sender": _text(event.sender),
        "message_id": _text(event.message_id),
        "origin_queue_id": _text(event.origin_queue_id),
        "next_queue_id": _text(event.next_queue_id),
        "notice_of": _text(event.notice_of),
        "upstream_unseen": event.upstream_unseen,
        "client_ip": _ip(event.client_ip),
        "sasl_username": _text(event.sasl_username),
        "relay_ip": _ip(event.relay_ip),
        "relay_port": port if port is not None and 0 < port < 65536 else None,
        "delay": event.delay,
        "delays": list(event.delays) if event.delays is not None else None,
        "dsn": dsn,
        "remote_host": remote_host(event),
        "detail": _text(event.reply),
        "occurred_at": datetime.fromtimestamp(event.timestamp, tz=UTC),
        "tenant": tenant,
        "bounce_class": bounce_class,
    }


# ------------------------------------------------------------------------ what follows


@dataclass(frozen=True)
class FollowUps:
    """Rows an event implies, as parameter tuples for BOUNCE_SQL, SUPPRESSION_SQL and
    SOFT_BOUNCE_SQL."""

    bounces: tuple[tuple[Any, ...], ...] = ()
    suppressions: tuple[tuple[Any, ...], ...] = ()
    soft_bounces: tuple[tuple[Any, ...], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.bounces or self.suppressions or self.soft_bounces)


NO_FOLLOW_UPS = FollowUps()

BOUNCE_SQL = (
    "INSERT INTO bounces (source_event, tenant, recipient, sender, message_id, dsn,"
    " bounce_class, hard, reply, reporting_mta, occurred_at)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (source_event) DO NOTHING"
)
SUPPRESSION_SQL = (
    "INSERT INTO suppression (tenant, address, reason, source_event, dsn, suppressed_at, note)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (tenant, address) DO NOTHING"
)
# One soft bounce per message and recipient: a retry of the same message is not another one.
SOFT_BOUNCE_SQL = (
    "INSERT INTO soft_bounces (tenant, address, dsn, source_event, occurred_at)"
    " SELECT %(tenant)s, %(address)s, %(dsn)s, %(source_event)s, %(occurred_at)s"
    " WHERE NOT EXISTS (SELECT 1 FROM soft_bounces s JOIN delivery_events d"
    " ON d.id = s.source_event WHERE s.address = %(address)s AND s.tenant = %(tenant)s"
    " AND d.origin_queue_id = %(origin_queue_id)s AND d.host = %(host)s)"
)


def follow_ups(
    row: Mapping[str, Any],
    event_id: int,
    feedback: FeedbackAddresses | None = None,
    rules: Sequence[Rule] | None = None,
) -> FollowUps:
    """What the stored event `row` (event_row()'s, its id `event_id`) implies: see the module
    docstring. `rules` must be those event_row() classified with (for the disposition)."""
    tenant, recipient = row["tenant"], row["recipient"]
    if row["kind"] != DELIVERY or tenant is None or recipient is None or not row["sender"]:
        return NO_FOLLOW_UPS
    if feedback is not None and recipient in feedback:
        return NO_FOLLOW_UPS
    status = row["status"]
    if status == DEFERRED:
        if row["bounce_class"] not in COUNTED_DEFERRALS:
            return NO_FOLLOW_UPS
        return FollowUps(soft_bounces=(_soft_bounce(row, event_id),))
    if not row["final"] or status not in (BOUNCED, EXPIRED):
        return NO_FOLLOW_UPS
    verdict = classify(row["dsn"], row["detail"], rules, expired=status == EXPIRED)
    hard = status == BOUNCED and verdict.disposition == HARD
    bounce = (
        event_id, tenant, recipient, row["sender"], row["message_id"], row["dsn"],
        verdict.bounce_class, hard, row["detail"], _relay_name(row["remote_host"]),
        row["occurred_at"],
    )  # fmt: skip
    if hard:
        note = f"bulkmail ingest: {verdict.bounce_class}"
        if verdict.rule:
            note += f" (rule {verdict.rule})"
        if row["remote_host"]:
            note += f" from {row['remote_host']}"
        suppression = (
            tenant, recipient, HARD_BOUNCE, event_id, row["dsn"], row["occurred_at"], note
        )  # fmt: skip
        return FollowUps(bounces=(bounce,), suppressions=(suppression,))
    # sender-side refusals (blocklists, rate limits) are not the recipient's: no soft bounce
    if verdict.disposition == SOFT and not BOUNCE_CLASSES[verdict.bounce_class].sender_side:
        return FollowUps(bounces=(bounce,), soft_bounces=(_soft_bounce(row, event_id),))
    return FollowUps(bounces=(bounce,))


def _soft_bounce(row: Mapping[str, Any], event_id: int) -> dict[str, Any]:
    return {
        "tenant": row["tenant"],
        "address": row["recipient"],
        "dsn": row["dsn"],
        "source_event": event_id,
        "occurred_at": row["occurred_at"],
        "origin_queue_id": row["origin_queue_id"] or row["queue_id"],
        "host": row["host"],
    }


def follow_up_statements(
    stored: Iterable[tuple[int, Mapping[str, Any]]],
    feedback: FeedbackAddresses | None = None,
    rules: Sequence[Rule] | None = None,
) -> list[tuple[str, list[Any]]]:
    """The follow-up statements for the events just stored ((id, row) pairs), each with its
    parameter list for executemany; statements with nothing to write are left out. Bounces
    come first: suppression and soft_bounces name the same event."""
    bounces: list[Any] = []
    suppressions: list[Any] = []
    soft: list[Any] = []
    for event_id, row in stored:
        found = follow_ups(row, event_id, feedback, rules)
        if found:
            bounces += found.bounces
            suppressions += found.suppressions
            soft += found.soft_bounces
    statements = [(BOUNCE_SQL, bounces), (SUPPRESSION_SQL, suppressions), (SOFT_BOUNCE_SQL, soft)]
    return [(sql, params) for sql, params in statements if params]


# ------------------------------------------------------------------------ the batch's SQL

_ROW_PLACEHOLDERS = "(" + ", ".join(["%s"] * len(EVENT_COLUMNS)) + ")"
_INSERT_HEAD = f"INSERT INTO delivery_events ({', '.join(EVENT_COLUMNS)}) VALUES "
_INSERT_TAIL = " ON CONFLICT (event_key) DO NOTHING RETURNING id, event_key"
_INSERT_CACHE: dict[int, str] = {}


def insert_events_sql(count: int) -> str:
    """INSERT of `count` rows that returns (id, event_key) of those not stored before."""
    if count < 1:
        raise ValueError("insert_events_sql: at least one row")
    sql = _INSERT_CACHE.get(count)
    if sql is None:
        sql = _INSERT_HEAD + ", ".join([_ROW_PLACEHOLDERS] * count) + _INSERT_TAIL
        if len(_INSERT_CACHE) < 64:
            _INSERT_CACHE[count] = sql
    return sql


def insert_events(
    rows: Sequence[Mapping[str, Any]], chunk: int = CHUNK_ROWS
) -> list[tuple[str, list[Any]]]:
    """The INSERT statements for `rows` (event_row()'s), `chunk` rows each, with their
    parameters flattened. A key repeated within the batch is sent once: the tracker can emit
    the same line twice only on a replay, and the repeat would be a wasted conflict."""
    seen: set[str] = set()
    unique = []
    for row in rows:
        if row["event_key"] not in seen:
            seen.add(row["event_key"])
            unique.append(row)
    statements = []
    for start in range(0, len(unique), chunk):
        part = unique[start : start + chunk]
        params = [row[column] for row in part for column in EVENT_COLUMNS]
        statements.append((insert_events_sql(len(part)), params))
    return statements


STATE_SQL = (
    "INSERT INTO ingest_state (host, journal_cursor, tracker, lines, updated_at)"
    " VALUES (%s, %s, %s::jsonb, %s, now())"
    " ON CONFLICT (host) DO UPDATE SET journal_cursor = EXCLUDED.journal_cursor,"
    " tracker = EXCLUDED.tracker, lines = EXCLUDED.lines, updated_at = now()"
)
# Between two snapshots only the cursor and the counter move (see save_state).
CURSOR_SQL = (
    "UPDATE ingest_state SET journal_cursor = %s, lines = %s, updated_at = now() WHERE host = %s"
)
LOAD_STATE_SQL = "SELECT journal_cursor, tracker, lines FROM ingest_state WHERE host = %s"


def save_state(
    host: str, cursor: str, lines: int, snapshot: Mapping[str, Any] | None
) -> tuple[str, tuple[Any, ...]]:
    """The ingest_state write of a batch. With `snapshot` (Tracker.snapshot() plus the
    `cursor` it belongs to, see `snapshot_record`): the whole row. Without: only the cursor
    and the counter, the tracker column keeping the last snapshot and its own cursor (a
    restart replays from there; event_key makes the replayed events harmless)."""
    if snapshot is None:
        return CURSOR_SQL, (cursor, lines, host)
    return STATE_SQL, (host, cursor, json.dumps(snapshot, separators=(",", ":")), lines)


def snapshot_record(snapshot: Mapping[str, Any], cursor: str) -> dict[str, Any]:
    """A Tracker.snapshot() with the journal cursor it is the state at (restore() ignores
    the extra key)."""
    return {**snapshot, "cursor": cursor}


@dataclass(frozen=True)
class ResumePoint:
    """Where a restart goes on: `cursor` is the entry the tracker `snapshot` is at (read from
    the entry after it), `committed` the last entry whose events are stored, `lines` the
    counter."""

    cursor: str
    committed: str
    snapshot: Mapping[str, Any] | None
    lines: int


def resume_point(journal_cursor: str, tracker: Any, lines: int | None) -> ResumePoint:
    """ingest_state's row read back (`tracker` as jsonb gives it, a dict, or its text)."""
    if isinstance(tracker, (str, bytes)):
        tracker = json.loads(tracker)
    snapshot = None
    if isinstance(tracker, Mapping) and tracker.get("messages") is not None:
        snapshot = tracker
    cursor = journal_cursor
    if snapshot is not None and isinstance(snapshot.get("cursor"), str) and snapshot["cursor"]:
        cursor = snapshot["cursor"]
    return ResumePoint(cursor, journal_cursor, snapshot, int(lines or 0))


# ------------------------------------------------------------------------ value checks


def _text(value: str | None) -> str | None:
    """PostgreSQL text takes no NUL; a runaway reply is cut."""
    if value is None:
        return None
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value[:MAX_TEXT] if len(value) > MAX_TEXT else value


def _dsn(value: str | None) -> str | None:
    return value if value is not None and _DSN.match(value) else None


def _ip(value: str | None) -> str | None:
    """An address PostgreSQL's inet takes, or None (Postfix logs `unknown`, `IPv6:...`)."""
    if not value:
        return None
    text = value[5:] if value[:5].lower() == "ipv6:" else value
    try:
        return str(ipaddress.ip_address(text.split("%", 1)[0]))
    except ValueError:
        return None


def _relay_name(remote: str | None) -> str | None:
    """`mx.example[198.51.100.25]:25` -> `mx.example` (bounces.reporting_mta)."""
    if not remote:
        return None
    return remote.split("[", 1)[0] or remote
