"""Postfix log lines -> delivery events: one final event per message and recipient.

Every instance logs under its own `syslog_name` (`postfix/smtp`, `postfix/submission/smtpd`,
`postfix-bulk/handoff/smtp`, `postfix-bulk-google/google/smtp`): the first part names the
instance, the last the program, the one before it (if any) the master.cf service. A message
crosses instances and hosts: a lane's intake hands it to a provider instance on the same host,
a first attempt that fails hands it to the graveyard. Each hop is a new queue id, announced by
the upstream smtp client's `status=sent (250 2.0.0 Ok: queued as NEWQID)` to a host of ours.
That line is not final: `Tracker` reports it as a HANDOFF event, links NEWQID to the
message's origin (client, SASL login, sender, Message-ID), and the downstream queue id's
sent, bounced or expired line is the final event.

`Tracker.feed(line)` takes a syslog line (`Dec  1 17:00:00 mta1 postfix-bulk/smtp[123]: ...` or
RFC 3339 stamps); `Tracker.feed_journal(identifier, message, timestamp, host)` takes a journal
entry's SYSLOG_IDENTIFIER, MESSAGE, realtime stamp (seconds) and _HOSTNAME. Both return the
events the line completes. State is per queue id, dropped at `removed`, bounded by a count and
an age (a message forgotten early still gets its final event, with fewer context fields), and
`snapshot()`/`restore()` carry it over a restart next to the journal cursor.

Pure Python: no I/O, no Ansible import.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, NamedTuple

# Event kinds. DELIVERY: a delivery agent's verdict for one recipient (final unless deferred).
# HANDOFF: a hop to another instance or host of ours (never final: the next queue id goes on).
# REFUSAL: smtpd or cleanup refused (NOQUEUE reject, milter-reject, header checks).
DELIVERY = "delivery"
HANDOFF = "handoff"
REFUSAL = "refusal"
# Statuses of DELIVERY and HANDOFF events: Postfix's words.
SENT = "sent"
DEFERRED = "deferred"
BOUNCED = "bounced"
EXPIRED = "expired"
# Statuses of REFUSAL events: by the reply's class (5xx, 4xx) or by the action.
REJECTED = "rejected"
TEMPFAILED = "tempfailed"
_ACTION_STATUS = {
    "reject_warning": "warned",
    "discard": "discarded",
    "milter-discard": "discarded",
    "hold": "held",
    "milter-hold": "held",
}
_REJECTS = frozenset({"reject", "milter-reject"})
_DELIVERY_STATUSES = frozenset({SENT, DEFERRED, BOUNCED})
# A delivery to these is a hop inside this host, whatever the caller's own_hosts say.
LOOPBACK = frozenset({"127.0.0.1", "::1"})
# Snapshot layout; restore() refuses another.
SNAPSHOT_VERSION = 1

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
}
# `<22>` (a PRI kept by some relays), then a classic or an RFC 3339 stamp, host, program[pid]:
_SYSLOG = re.compile(
    r"(?:<\d{1,3}>)?"
    r"(?:(?P<mon>[A-Z][a-z]{2}) {1,2}(?P<day>\d{1,2}) (?P<h>\d\d):(?P<m>\d\d):(?P<s>\d\d)"
    r"|(?P<iso>\d{4}-\d\d-\d\dT[0-9:.]+(?:Z|[+-]\d\d:?\d\d)?))"
    r" (?P<host>\S+) (?P<ident>[^\s\[:]+)(?:\[\d+\])?: (?P<message>.*)"
)
# Short queue ids are hex (enable_long_queue_ids = no); long ones are Postfix's safe alphabet
# (no vowels): at least ten characters of time, 'z', the inode in base 51 (no 'z').
_QUEUE_ID = re.compile(
    r"[0-9A-F]{6,}|[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{10,}z[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-y]+"
)
_DELIVERY_LINE = re.compile(
    r"to=<(?P<to>.*?)>, (?:orig_to=<(?P<orig>.*?)>, )?relay=(?P<relay>[^,]*), "
    r"(?:[a-z_]+=[^,]*, )*?delay=(?P<delay>[0-9.]+), (?:delays=(?P<delays>[0-9./]+), )?"
    r"dsn=(?P<dsn>\d\.\d{1,3}\.\d{1,3}), status=(?P<status>[a-z]+)(?: \((?P<reply>.*)\))?$"
)
_RELAY = re.compile(r"(?P<host>[^\[]*)\[(?P<ip>[^\]]*)\](?::(?P<port>\d+))?$")
_QUEUED_AS = re.compile(r"queued as ([0-9A-Za-z]+)")
_QMGR_FROM = re.compile(r"from=<(?P<from>.*?)>, (?:size=|(?P<expired>status=expired))")
_CLIENT = re.compile(
    r"client=(?P<host>[^\[,]*)\[(?P<ip>[^\]]*)\](?::\d+)?"
    r"(?:, sasl_method=[^,]*, sasl_username=(?P<login>[^,]*))?"
)
_PICKUP = re.compile(r"uid=\d+ from=<(?P<from>.*?)>")
_NOTICE = re.compile(r"(?:sender|postmaster) (?:non-delivery|delivery status) notification: (\S+)")
_REFUSAL_LINE = re.compile(
    r"(?P<action>[a-z_-]+): (?P<stage>.*?) from (?P<host>[^\s\[;]*)"
    r"(?:\[(?P<ip>[^\]]*)\](?::\d+)?)?(?:: (?P<reply>.*?))?;"
    r"(?: from=<(?P<from>[^>]*)>)?(?: to=<(?P<to>[^>]*)>)?(?: proto=\S+)?(?: helo=<[^>]*>)?"
    r"(?:: (?P<after>.*))?$"
)
_REPLY_CODES = re.compile(r"(?P<code>[245]\d\d)?[ -]?(?P<dsn>[245]\.\d{1,3}\.\d{1,3})?")


@dataclass(frozen=True, slots=True)
class Event:
    """One row for the delivery_events table. `key` is stable for the same log line, so an
    ingester that reads a line twice (a restart before its cursor was saved) writes it once."""

    kind: str  # DELIVERY, HANDOFF or REFUSAL
    status: str
    # The last word on this recipient of this message (count these, not every row).
    final: bool
    timestamp: float  # seconds since the epoch, UTC
    host: str
    instance: str  # syslog_name's first part: postfix, postfix-bulk, postfix-bulk-google
    transport: str  # the master.cf service: smtp, relay, handoff, google, smtpd, submission
    queue_id: str | None
    recipient: str | None  # None: an expiry whose deferred recipients this tracker never saw
    original_recipient: str | None  # orig_to: the address before aliasing
    sender: str | None  # "" is the null sender (a bounce)
    message_id: str | None  # without the angle brackets
    client_host: str | None  # who submitted it: smtpd's client= of the first hop
    client_ip: str | None
    sasl_username: str | None
    relay_host: str | None  # None with relay=none
    relay_ip: str | None
    relay_port: int | None
    dsn: str | None
    reply: str | None  # status=...'s parenthesised text, or the refusal's reply
    delay: float | None
    delays: tuple[float, ...] | None  # before queue manager, in it, connection, transmission
    origin_queue_id: str | None  # the first hop's queue id (this one's when there was none)
    next_queue_id: str | None  # HANDOFF: the queue id the next hop gave it
    notice_of: str | None  # a bounce notification: the queue id of the message it reports on
    # It came from a host of ours, but this tracker never saw that hop's HANDOFF: join it to
    # the HANDOFF event whose next_queue_id is this queue_id (another host's ingester has it).
    upstream_unseen: bool
    key: str

    def as_row(self) -> dict[str, Any]:
        """The event as plain data (the delays as a list)."""
        row = asdict(self)
        if self.delays is not None:
            row["delays"] = list(self.delays)
        return row


class _Attempt(NamedTuple):
    """A recipient's last deferred attempt: what an expiry reports."""

    original_recipient: str | None
    transport: str
    relay_host: str | None
    relay_ip: str | None
    relay_port: int | None
    dsn: str | None
    reply: str | None


class _Message:
    """What one queue id has told so far."""

    __slots__ = (
        "client_host",
        "client_ip",
        "host",
        "instance",
        "linked",
        "message_id",
        "notice_of",
        "orig_to",
        "origin",
        "pending",
        "queue_id",
        "sasl_username",
        "seen",
        "sender",
    )

    def __init__(self, queue_id: str, host: str, instance: str, seen: float) -> None:
        self.queue_id = queue_id
        self.host = host
        self.instance = instance
        self.seen = seen
        self.sender: str | None = None
        self.message_id: str | None = None
        self.client_host: str | None = None
        self.client_ip: str | None = None
        self.sasl_username: str | None = None
        self.origin = queue_id
        self.notice_of: str | None = None
        # True once an upstream hop's handoff named this queue id: the origin's fields win.
        self.linked = False
        self.orig_to: dict[str, str] = {}
        self.pending: dict[str, _Attempt] = {}

    def adopt(self, upstream: _Message) -> None:
        """Take the origin's fields: this queue id continues `upstream`'s message."""
        for name in ("sender", "message_id", "client_host", "client_ip", "sasl_username"):
            value = getattr(upstream, name)
            if value is not None:
                setattr(self, name, value)
        self.origin = upstream.origin
        self.notice_of = upstream.notice_of or self.notice_of
        self.linked = True

    def state(self) -> list[Any]:
        pending = {rcpt: list(attempt) for rcpt, attempt in self.pending.items()}
        return [
            self.queue_id, self.host, self.instance, self.seen, self.sender, self.message_id,
            self.client_host, self.client_ip, self.sasl_username, self.origin, self.notice_of,
            self.linked, dict(self.orig_to), pending,
        ]  # fmt: skip

    @classmethod
    def from_state(cls, data: list[Any]) -> _Message:
        (queue_id, host, instance, seen, sender, message_id, client_host, client_ip,
         sasl_username, origin, notice_of, linked, orig_to, pending) = data  # fmt: skip
        message = cls(str(queue_id), str(host), str(instance), float(seen))
        message.sender, message.message_id = sender, message_id
        message.client_host, message.client_ip = client_host, client_ip
        message.sasl_username, message.origin, message.notice_of = sasl_username, origin, notice_of
        message.linked = bool(linked)
        message.orig_to = dict(orig_to)
        message.pending = {rcpt: _Attempt(*attempt) for rcpt, attempt in pending.items()}
        return message


def event_key(host: str, queue_id: str | None, recipient: str | None, status: str,
              timestamp: float) -> str:  # fmt: skip
    """The idempotency key: the same line gives the same key, wherever it is read from."""
    text = f"{host}\0{queue_id or ''}\0{recipient or ''}\0{status}\0{timestamp:.6f}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def split_identifier(identifier: str) -> tuple[str, str, str]:
    """`postfix-bulk/handoff/smtp` -> (instance, service, program): postfix-bulk, handoff, smtp;
    `postfix/smtp` -> postfix, smtp, smtp."""
    parts = identifier.split("/")
    program = parts[-1]
    service = parts[-2] if len(parts) > 2 else program
    return parts[0], service, program


def _relay(relay: str) -> tuple[str | None, str | None, int | None]:
    """`mx.example[198.51.100.25]:25` -> host, ip, port; `none` -> all None."""
    if relay == "none":
        return None, None, None
    match = _RELAY.match(relay)
    if match is None:
        return relay, None, None  # relay=local, relay=virtual
    port = match["port"]
    return match["host"] or None, match["ip"] or None, int(port) if port else None


def _message_id(value: str) -> str:
    value = value.strip()
    if value.startswith("<") and value.endswith(">"):
        return value[1:-1]
    return value


class Tracker:
    """Joins Postfix's log lines on the queue id and emits delivery events.

    `own_hosts`: the addresses (IPs, as Postfix logs them in relay=name[ip]) of this
    deployment's Postfix hosts, internal and public; a `status=sent ... queued as X` to one of
    them is a handoff, not a delivery. Loopback always counts. `identifier_prefix`: program
    names to read (every instance's syslog_name starts with it). `max_messages` and
    `max_age` (seconds since a queue id's last line) bound the state; `year` and `tz` place
    classic syslog stamps, which carry neither.
    """

    def __init__(
        self,
        own_hosts: Iterable[str] = (),
        *,
        identifier_prefix: str = "postfix",
        max_messages: int = 200_000,
        max_age: float = 86_400.0,
        year: int | None = None,
        tz: tzinfo = UTC,
    ) -> None:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        self.own_hosts = frozenset(own_hosts) | LOOPBACK
        self.identifier_prefix = identifier_prefix
        self.max_messages = max_messages
        self.max_age = max_age
        self.year = year if year is not None else datetime.now(UTC).year
        self.tz = tz
        self._messages: OrderedDict[str, _Message] = OrderedDict()
        self._identifiers: dict[str, tuple[str, str, str]] = {}
        self._hours: dict[tuple[int, int, int], float] = {}
        self._next_sweep = 0.0
        self.stats = {"lines": 0, "events": 0, "evicted": 0}

    def __len__(self) -> int:
        """How many queue ids the tracker holds."""
        return len(self._messages)

    def __bool__(self) -> bool:
        return True  # an empty tracker is still a tracker (`tracker or Tracker()`)

    # ------------------------------------------------------------------ input

    def feed(self, line: str) -> list[Event]:
        """One syslog line (a trailing newline is fine); other programs' lines give nothing."""
        match = _SYSLOG.match(line.rstrip("\n"))
        if match is None:
            self.stats["lines"] += 1
            return []
        if match["iso"] is not None:
            try:
                stamp = datetime.fromisoformat(match["iso"])
            except ValueError:
                self.stats["lines"] += 1
                return []
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=self.tz)
            timestamp = stamp.timestamp()
        else:
            timestamp = self._classic_time(
                _MONTHS.get(match["mon"], 0), int(match["day"]),
                int(match["h"]), int(match["m"]), int(match["s"]),
            )  # fmt: skip
        return self.feed_journal(match["ident"], match["message"], timestamp, match["host"])

    def feed_journal(
        self, identifier: str, message: str, timestamp: float, host: str = ""
    ) -> list[Event]:
        """One journal entry: SYSLOG_IDENTIFIER, MESSAGE, __REALTIME_TIMESTAMP in seconds (the
        journal's microseconds / 1e6) and _HOSTNAME."""
        self.stats["lines"] += 1
        if not identifier.startswith(self.identifier_prefix):
            return []
        names = self._identifiers.get(identifier)
        if names is None:
            names = self._identifiers[identifier] = split_identifier(identifier)
        if timestamp >= self._next_sweep:
            self._sweep(timestamp)
        head, sep, rest = message.partition(": ")
        if not sep:
            return []
        if head == "NOQUEUE":
            events = self._refusal(None, rest, timestamp, host, names)
        elif _QUEUE_ID.fullmatch(head):
            events = self._queued(head, rest, timestamp, host, names)
        else:
            return []
        self.stats["events"] += len(events)
        return events

    def _classic_time(self, month: int, day: int, hour: int, minute: int, second: int) -> float:
        start = self._hours.get((month, day, hour))
        if start is None:
            try:
                start = datetime(self.year, month, day, hour, tzinfo=self.tz).timestamp()
            except ValueError:  # an unknown month, Feb 29 in the wrong year
                start = 0.0
            self._hours[(month, day, hour)] = start
        return start + minute * 60 + second

    # ------------------------------------------------------------------ lines with a queue id

    def _queued(
        self, queue_id: str, rest: str, timestamp: float, host: str, names: tuple[str, str, str]
    ) -> list[Event]:
        if rest.startswith("to="):
            return self._delivery(queue_id, rest, timestamp, host, names)
        if rest.startswith("from="):
            match = _QMGR_FROM.match(rest)
            if match is None:
                return []
            message = self._touch(queue_id, timestamp, host, names[0])
            if message.sender is None:
                message.sender = match["from"]
            if match["expired"]:
                return self._expired(message, timestamp, host, names)
            return []
        if rest.startswith("client="):
            match = _CLIENT.match(rest)
            if match is not None:
                message = self._touch(queue_id, timestamp, host, names[0])
                if message.client_ip is None:
                    message.client_host = match["host"] or None
                    message.client_ip = match["ip"] or None
                    message.sasl_username = match["login"] or None
            return []
        if rest.startswith("message-id="):
            message = self._touch(queue_id, timestamp, host, names[0])
            if message.message_id is None:
                message.message_id = _message_id(rest[len("message-id=") :])
            return []
        if rest == "removed":
            self._messages.pop(queue_id, None)
            return []
        if rest.startswith("uid="):
            match = _PICKUP.match(rest)
            if match is not None:
                message = self._touch(queue_id, timestamp, host, names[0])
                if message.sender is None:
                    message.sender = match["from"]
            return []
        match = _NOTICE.match(rest)
        if match is not None:
            if _QUEUE_ID.fullmatch(match[1]):
                notice = self._touch(match[1], timestamp, "", "")
                notice.notice_of = self._touch(queue_id, timestamp, host, names[0]).origin
            return []
        action = rest.split(": ", maxsplit=1)[0]
        if action in _REJECTS or action in _ACTION_STATUS:
            return self._refusal(queue_id, rest, timestamp, host, names)
        return []

    def _delivery(
        self, queue_id: str, rest: str, timestamp: float, host: str, names: tuple[str, str, str]
    ) -> list[Event]:
        match = _DELIVERY_LINE.match(rest)
        if match is None:
            return []
        status = match["status"]
        if status not in _DELIVERY_STATUSES:  # deliverable/undeliverable: address probes
            return []
        message = self._touch(queue_id, timestamp, host, names[0])
        recipient = match["to"]
        original = match["orig"] or message.orig_to.get(recipient)
        relay_host, relay_ip, relay_port = _relay(match["relay"])
        reply = match["reply"]
        delays = match["delays"]
        kind, final, next_queue_id = DELIVERY, status != DEFERRED, None
        own = self.own_hosts
        if status == SENT and reply and (relay_ip in own or relay_host in own):
            queued = _QUEUED_AS.search(reply)
            if queued is not None and _QUEUE_ID.fullmatch(queued[1]):
                kind, final, next_queue_id = HANDOFF, False, queued[1]
                self._link(message, next_queue_id, recipient, original, timestamp)
        if status == DEFERRED:
            message.pending[recipient] = _Attempt(
                original, names[1], relay_host, relay_ip, relay_port, match["dsn"], reply
            )
        else:
            message.pending.pop(recipient, None)
        return [
            self._event(
                message, kind, status, final, timestamp, host, names[1], recipient, original,
                relay_host, relay_ip, relay_port, match["dsn"], reply, float(match["delay"]),
                tuple(float(value) for value in delays.split("/")) if delays else None,
                next_queue_id,
            )
        ]  # fmt: skip

    def _expired(
        self, message: _Message, timestamp: float, host: str, names: tuple[str, str, str]
    ) -> list[Event]:
        """qmgr gave up on every recipient still deferred: one final event for each (one with
        no recipient when none was seen: the ingester takes them from the deferred rows)."""
        if not message.pending:
            return [self._event(
                message, DELIVERY, EXPIRED, True, timestamp, host, names[1], None, None,
                None, None, None, None, None, None, None, None,
            )]  # fmt: skip
        events = [
            self._event(
                message, DELIVERY, EXPIRED, True, timestamp, host, attempt.transport, recipient,
                attempt.original_recipient, attempt.relay_host, attempt.relay_ip,
                attempt.relay_port, attempt.dsn, attempt.reply, None, None, None,
            )
            for recipient, attempt in message.pending.items()
        ]  # fmt: skip
        message.pending = {}
        return events

    def _refusal(
        self,
        queue_id: str | None,
        rest: str,
        timestamp: float,
        host: str,
        names: tuple[str, str, str],
    ) -> list[Event]:
        match = _REFUSAL_LINE.match(rest)
        if match is None:
            return []
        action = match["action"]
        if action not in _REJECTS and action not in _ACTION_STATUS:
            return []
        reply = match["reply"] or match["after"]
        status, dsn = _ACTION_STATUS.get(action, REJECTED), None
        if reply:
            codes = _REPLY_CODES.match(reply)
            dsn = codes["dsn"]
            first = codes["code"] or dsn or "5"
            if action in _REJECTS and first[0] == "4":
                status = TEMPFAILED
        message = None
        if queue_id is not None:
            message = self._messages.get(queue_id)
            if names[2] == "cleanup" and action in _REJECTS:
                # cleanup refused the whole message: it never reaches the queue
                self._messages.pop(queue_id, None)
        sender = match["from"]
        recipient = match["to"]
        client_host = match["host"] or None
        client_ip = match["ip"] or None
        return [
            Event(
                kind=REFUSAL,
                status=status,
                final=False,
                timestamp=timestamp,
                host=host,
                instance=names[0],
                transport=names[1],
                queue_id=queue_id,
                recipient=recipient,
                original_recipient=None,
                sender=sender if sender is not None else (message.sender if message else None),
                message_id=message.message_id if message else None,
                client_host=client_host,
                client_ip=client_ip,
                sasl_username=message.sasl_username if message else None,
                relay_host=None,
                relay_ip=None,
                relay_port=None,
                dsn=dsn,
                reply=reply,
                delay=None,
                delays=None,
                origin_queue_id=message.origin if message else queue_id,
                next_queue_id=None,
                notice_of=message.notice_of if message else None,
                upstream_unseen=False,
                # NOQUEUE: the client stands in for the queue id
                key=event_key(
                    host, queue_id or f"NOQUEUE {client_ip}", recipient, status, timestamp
                ),
            )
        ]

    # ------------------------------------------------------------------ state

    def _touch(self, queue_id: str, timestamp: float, host: str, instance: str) -> _Message:
        message = self._messages.get(queue_id)
        if message is None:
            message = self._messages[queue_id] = _Message(queue_id, host, instance, timestamp)
            if len(self._messages) > self.max_messages:
                self._messages.popitem(last=False)
                self.stats["evicted"] += 1
            return message
        self._messages.move_to_end(queue_id)
        if timestamp > message.seen:
            message.seen = timestamp
        if not message.host:
            message.host = host
        if not message.instance:
            message.instance = instance
        return message

    def _link(
        self,
        upstream: _Message,
        next_queue_id: str,
        recipient: str,
        original: str | None,
        timestamp: float,
    ) -> None:
        downstream = self._messages.get(next_queue_id)
        if downstream is None:
            # The next hop's own lines are still to come (or are another tracker's).
            downstream = self._touch(next_queue_id, timestamp, "", "")
        downstream.adopt(upstream)
        if original is not None:
            downstream.orig_to[recipient] = original

    def _sweep(self, now: float) -> None:
        """Forget queue ids silent for max_age (oldest first: the dict is in touch order)."""
        limit = now - self.max_age
        messages = self._messages
        while messages:
            oldest = next(iter(messages.values()))
            if oldest.seen >= limit:
                break
            messages.popitem(last=False)
            self.stats["evicted"] += 1
        self._next_sweep = now + min(60.0, self.max_age / 10)

    def _event(
        self,
        message: _Message,
        kind: str,
        status: str,
        final: bool,
        timestamp: float,
        host: str,
        transport: str,
        recipient: str | None,
        original: str | None,
        relay_host: str | None,
        relay_ip: str | None,
        relay_port: int | None,
        dsn: str | None,
        reply: str | None,
        delay: float | None,
        delays: tuple[float, ...] | None,
        next_queue_id: str | None,
    ) -> Event:
        return Event(
            kind=kind,
            status=status,
            final=final,
            timestamp=timestamp,
            host=host,
            instance=message.instance,
            transport=transport,
            queue_id=message.queue_id,
            recipient=recipient,
            original_recipient=original,
            sender=message.sender,
            message_id=message.message_id,
            client_host=message.client_host,
            client_ip=message.client_ip,
            sasl_username=message.sasl_username,
            relay_host=relay_host,
            relay_ip=relay_ip,
            relay_port=relay_port,
            dsn=dsn,
            reply=reply,
            delay=delay,
            delays=delays,
            origin_queue_id=message.origin,
            next_queue_id=next_queue_id,
            notice_of=message.notice_of,
            upstream_unseen=not message.linked and message.client_ip in self.own_hosts,
            key=event_key(host, message.queue_id, recipient, status, timestamp),
        )

    def snapshot(self) -> dict[str, Any]:
        """The state as plain data (JSON), to store with the journal cursor it belongs to."""
        return {
            "version": SNAPSHOT_VERSION,
            "messages": [message.state() for message in self._messages.values()],
        }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Take back a snapshot() (replacing the current state)."""
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise ValueError(
                f"tracker snapshot version {snapshot.get('version')!r} is not "
                f"{SNAPSHOT_VERSION}: start without it (in-flight messages lose their context)"
            )
        self._messages.clear()
        for data in snapshot.get("messages", []):
            message = _Message.from_state(data)
            self._messages[message.queue_id] = message
        while len(self._messages) > self.max_messages:
            self._messages.popitem(last=False)
