"""Suppression at send time: the policy delegation protocol and the decision, as pure logic.

Postfix asks `bulkmail policy` (src/bulkmail/policy.py) about every recipient; the daemon
parses each request with `RequestParser`, asks `decide()` against the `SuppressionSnapshot` it
keeps in memory, and writes `format_response()`'s bytes back. The snapshot is built from the
`suppression` and `soft_bounces` tables (migration 0002) with the queries and row mappings of
this module (`fetch_query`, `map_rows`), `IdCursor` remembering what was read.

The protocol (Postfix's SMTPD_POLICY_README): a request is `name=value` lines ended by an empty
line; the answer is one `action=...` line and an empty line; the connection stays open for the
next request. Names the server does not know are ignored.

The decision:

- Only `protocol_state=RCPT` is judged: per-recipient refusal belongs in
  `smtpd_recipient_restrictions`; any other state, or no recipient, is `DUNNO`.
- The message's tenant comes from the envelope sender's domain through `TenantMap` (the
  model's domain -> tenant; a subdomain such as the VERP return-path domain belongs to its
  parent's tenant; a domain the map does not know is its own tenant; the null sender has
  none, so only global rows apply to it).
- A suppression row belongs to a tenant or to `GLOBAL` (every tenant): one tenant's
  unsubscribe never stops another tenant's mail unless the row is global. Hard bounces,
  complaints, unsubscribes and manual rows refuse at once; soft bounces refuse once
  `SoftBouncePolicy.threshold` of them fall within its window (3 in 7 days by default), and
  stop refusing when the window has moved past them.
- The answer is `REJECT 5.7.1 <address> is suppressed for <tenant>: <reason> on <date> (<dsn>)`
  (dates in UTC), else `DUNNO`. Postfix replies `554 5.7.1 <address>: Recipient address
  rejected: ...` for that recipient only, and logs it.

Addresses are compared lower-cased, local part included (`normalise_address`): RFC 5321 lets a
host treat the local part as case-sensitive, but the mailbox providers do not, and a complaint
from `John@` that did not stop mail to `john@` would be a second complaint from the same
person; two mailboxes differing only in case are not worth that risk. Nothing else is
rewritten (`+tags` and Gmail's dots name what the person typed). Writers of the tables (the
bounce and complaint processors, the unsubscribe endpoint) must use `normalise_address` and
`TenantMap.tenant_for_sender` on the same tenants data, so that what they write is what the
decision looks up (the CHECKs hold addresses and tenants lower-case).

Pure Python: no I/O, no Ansible import.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# The tenant of a row that applies to every tenant; the model may not name a tenant so.
GLOBAL = "global"
DUNNO = "DUNNO"
# The reasons 0001 allows for suppression rows, and the soft-bounce refusal's own.
HARD_BOUNCE = "hard_bounce"
COMPLAINT = "complaint"
UNSUBSCRIBE = "unsubscribe"
MANUAL = "manual"
SOFT_BOUNCES = "soft_bounces"
REASON_WORDS = {
    HARD_BOUNCE: "hard bounce",
    COMPLAINT: "complaint",
    UNSUBSCRIBE: "unsubscribe",
    MANUAL: "manual suppression",
}
# The tables the snapshot is read from (roles/postgresql/files/migrations/0002_...).
SUPPRESSION_TABLE = "suppression"
SOFT_BOUNCE_TABLE = "soft_bounces"

# Postfix's requests are ~40 short attributes; these bounds only stop a runaway client.
MAX_LINE = 8192
MAX_ATTRIBUTES = 256
MAX_REPLY_TEXT = 400  # an SMTP reply line is at most 512 octets with its code
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DAY = 86400.0


class ProtocolError(ValueError):
    """The client does not speak the policy protocol: the server closes the connection."""


class RequestParser:
    """Bytes from one connection in, complete requests (attribute dicts) out.

    `feed()` takes whatever the socket gave (part of a request, several requests) and returns
    the requests it completed, in order; what is left waits for the next call. A line that is
    not `name=value`, longer than `max_line` or one attribute too many raises ProtocolError.
    Empty lines between requests are skipped; `\\r\\n` is read as `\\n` (a person with telnet).
    """

    def __init__(self, *, max_line: int = MAX_LINE, max_attributes: int = MAX_ATTRIBUTES) -> None:
        self.max_line = max_line
        self.max_attributes = max_attributes
        self._rest = b""
        self._attributes: dict[str, str] = {}

    @property
    def pending(self) -> bool:
        """Whether part of a request is buffered (the client closed in the middle of one)."""
        return bool(self._rest or self._attributes)

    def feed(self, data: bytes) -> list[dict[str, str]]:
        buffer = self._rest + data if self._rest else data
        end = buffer.rfind(b"\n")
        self._rest = buffer[end + 1 :]
        if len(self._rest) > self.max_line:
            raise ProtocolError(f"a line longer than {self.max_line} bytes")
        if end < 0:
            return []
        # One decode for every complete line: a newline never falls inside a UTF-8 sequence.
        text = buffer[:end].decode("utf-8", "replace")
        lines = text.split("\n")
        if "\r" in text:
            lines = [line.rstrip("\r") for line in lines]
        long_lines = len(text) > self.max_line
        done = []
        attributes = self._attributes
        for line in lines:
            if not line:
                if attributes:
                    done.append(attributes)
                    attributes = {}
                continue
            if long_lines and len(line.encode()) > self.max_line:
                raise ProtocolError(f"a line longer than {self.max_line} bytes")
            name, sep, value = line.partition("=")
            # Postfix's attribute names are C identifiers (client_address, ccert_subject)
            if not sep or not name.isidentifier():
                raise ProtocolError(f"{line[:60]!r} is not name=value")
            attributes[name] = value
            if len(attributes) > self.max_attributes:
                raise ProtocolError(f"more than {self.max_attributes} attributes in one request")
        self._attributes = attributes
        return done


def format_response(action: str) -> bytes:
    """The answer to one request: `action=<action>`, then the empty line that ends it."""
    return f"action={_CONTROL.sub('?', action)}\n\n".encode()


def normalise_address(address: str) -> str:
    """The form suppression keys are stored and looked up in: lower-case, no brackets, no
    trailing dot, an internationalised domain as its A-label (`xn--...`)."""
    text = address.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    local, sep, domain = text.rpartition("@")
    if not sep:
        return text.lower()
    return f"{local.lower()}@{normalise_domain(domain)}"


def normalise_domain(domain: str) -> str:
    name = domain.strip().rstrip(".").lower()
    if not name.isascii():
        # not a valid IDN: kept as sent, it matches what was written by the same rule
        with contextlib.suppress(UnicodeError):
            name = name.encode("idna").decode("ascii")
    return name


@dataclass(frozen=True)
class TenantMap:
    """Sending domain -> tenant, from the model.

    From `default_tenants()`: the model's tenants (`bulkmail_tenants`), and each sending
    domain no tenant claims as its own.
    """

    domains: Mapping[str, str]

    @classmethod
    def load(cls, data: Any, where: str = "tenants") -> TenantMap:
        """From the data file's JSON: `{"domains": {"example.com": "example.com", ...}}`."""
        if not isinstance(data, Mapping) or not isinstance(data.get("domains"), Mapping):
            raise ValueError(f'{where}: expected {{"domains": {{sending domain: tenant}}}}')
        domains = {}
        for domain, tenant in data["domains"].items():
            if not isinstance(domain, str) or not domain.strip():
                raise ValueError(f"{where}.domains: {domain!r} is not a domain name")
            if not isinstance(tenant, str) or not tenant.strip():
                raise ValueError(f"{where}.domains.{domain}: the tenant must be a non-empty name")
            name = tenant.strip().lower()
            if name == GLOBAL:
                raise ValueError(
                    f"{where}.domains.{domain}: {GLOBAL!r} means every tenant in the "
                    "suppression tables; give the tenant another name"
                )
            domains[normalise_domain(domain)] = name
        return cls(domains)

    def tenant_for_domain(self, domain: str) -> str | None:
        """The tenant of a sender domain: its own entry, its closest parent's, or itself."""
        name = normalise_domain(domain)
        if not name:
            return None
        candidate = name
        while True:
            tenant = self.domains.get(candidate)
            if tenant is not None:
                return tenant
            dot = candidate.find(".")
            if dot < 0:
                return name
            candidate = candidate[dot + 1 :]

    def tenant_for_sender(self, sender: str) -> str | None:
        """The tenant of an envelope sender; None for the null sender (only global rows)."""
        domain = sender.strip().strip("<>").rpartition("@")[2]
        return self.tenant_for_domain(domain) if "@" in sender and domain else None


def default_tenants(
    domain_names: Iterable[str], tenants: Mapping[str, Iterable[str]] | None = None
) -> dict[str, dict[str, str]]:
    """The tenants data file: each sending domain -> the tenant of `tenants` (name ->
    domains, the model's `bulkmail_tenants`) that holds it, or itself when none does (a
    model without tenants). Subdomains (return-path domains) follow their parent in
    `TenantMap.tenant_for_domain`, so they need no entry."""
    owners = {
        normalise_domain(domain): name.strip().lower()
        for name, domains in (tenants or {}).items()
        for domain in domains
    }
    names = sorted({normalise_domain(name) for name in domain_names})
    return {"domains": {name: owners.get(name, name) for name in names}}


@dataclass(frozen=True)
class SoftBouncePolicy:
    """Soft bounces refuse a recipient once `threshold` of them fall within `window_days`."""

    threshold: int = 3
    window_days: float = 7.0

    def __post_init__(self) -> None:
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, int):
            raise ValueError(f"soft bounce threshold {self.threshold!r}: give a whole number")
        if self.threshold < 1:
            raise ValueError(f"soft bounce threshold {self.threshold}: at least 1")
        if not self.window_days > 0:
            raise ValueError(f"soft bounce window {self.window_days!r} days: more than 0")

    @property
    def window(self) -> float:
        """The window in seconds."""
        return self.window_days * _DAY


@dataclass(frozen=True, slots=True)
class SuppressionRow:
    """A row of the `suppression` table; `at` is `suppressed_at` in seconds since the epoch."""

    id: int
    tenant: str
    address: str
    reason: str
    dsn: str | None
    at: float

    def record(self) -> list[Any]:
        """The row as the daemon's snapshot file keeps it (a JSON array)."""
        return ["s", self.id, self.tenant, self.address, self.reason, self.dsn, self.at]


@dataclass(frozen=True, slots=True)
class SoftBounceRow:
    """A row of the `soft_bounces` table; `at` is `occurred_at` in seconds since the epoch."""

    id: int
    tenant: str
    address: str
    dsn: str | None
    at: float

    def record(self) -> list[Any]:
        return ["b", self.id, self.tenant, self.address, self.dsn, self.at]


def row_from_record(record: Any) -> SuppressionRow | SoftBounceRow:
    """A snapshot file's array back to its row; ValueError when it is not one."""
    if isinstance(record, list) and record:
        kind, *fields = record
        if kind == "s" and len(fields) == 6:
            row_id, tenant, address, reason, dsn, at = fields
            if _row_fields_ok(row_id, tenant, address, dsn, at) and isinstance(reason, str):
                return SuppressionRow(
                    row_id, _shared(tenant), address, _shared(reason), _text(dsn), float(at)
                )
        if kind == "b" and len(fields) == 5:
            row_id, tenant, address, dsn, at = fields
            if _row_fields_ok(row_id, tenant, address, dsn, at):
                return SoftBounceRow(row_id, _shared(tenant), address, _text(dsn), float(at))
    raise ValueError(f"not a snapshot record: {str(record)[:80]}")


def _row_fields_ok(row_id: Any, tenant: Any, address: Any, dsn: Any, at: Any) -> bool:
    return (
        isinstance(row_id, int)
        and isinstance(tenant, str)
        and isinstance(address, str)
        and (dsn is None or isinstance(dsn, str))
        and isinstance(at, (int, float))
    )


@dataclass(frozen=True)
class Refusal:
    """Why a recipient is refused: what `REJECT 5.7.1 ...` says."""

    address: str
    tenant: str
    reason: str
    at: float
    dsn: str | None = None
    count: int = 1
    window_days: float = 0.0

    def text(self) -> str:
        scope = "every tenant (global)" if self.tenant == GLOBAL else self.tenant
        day = datetime.fromtimestamp(self.at, tz=UTC).date().isoformat()
        if self.reason == SOFT_BOUNCES:
            what = f"{self.count} soft bounces in {self.window_days:g} days, the last on {day}"
        else:
            what = f"{REASON_WORDS.get(self.reason, self.reason.replace('_', ' '))} on {day}"
        if self.dsn:
            what += f" ({self.dsn})"
        return f"{self.address} is suppressed for {scope}: {what}"[:MAX_REPLY_TEXT]

    def action(self) -> str:
        return f"REJECT 5.7.1 {self.text()}"


class SuppressionSnapshot:
    """What the policy service knows: suppression rows and recent soft bounces, by tenant
    (or GLOBAL) and address. Every lookup is a few dict reads.

    Erased people (`bulkmail forget`) are rows keyed by `address_hash(key, address)`: with
    `hash_keys` (every key the erasures may have used, so a key can rotate), a recipient not
    found as written is looked up again under each key's hash, in the same scopes. That costs
    one HMAC per key, and only for the scopes that hold such a row: none, for the common case.
    """

    def __init__(
        self, soft_policy: SoftBouncePolicy | None = None, hash_keys: Sequence[bytes] = ()
    ) -> None:
        self.soft_policy = soft_policy or SoftBouncePolicy()
        # the keyed HMACs, ready: each lookup copies one instead of setting the key up again
        self._hashers = tuple(_hasher(key) for key in hash_keys)
        self._suppressed: dict[str, dict[str, SuppressionRow]] = {}
        # tenant -> address -> the latest `threshold` soft bounces, oldest first
        self._soft: dict[str, dict[str, list[SoftBounceRow]]] = {}
        # tenant -> its rows keyed by an erased address's hash; a tenant with none is absent
        self._erased: dict[str, int] = {}
        self.suppressions = 0  # (tenant, address) pairs suppressed
        self.soft_addresses = 0  # (tenant, address) pairs with soft bounces

    @property
    def erased(self) -> int:
        """(tenant, hash) pairs held for erased people, refused only with `hash_keys`."""
        return sum(self._erased.values())

    def apply(self, row: SuppressionRow | SoftBounceRow) -> None:
        """Add a row read from the database or the snapshot file (again is harmless)."""
        if isinstance(row, SuppressionRow):
            by_address = self._suppressed.setdefault(row.tenant, {})
            if row.address not in by_address:
                self.suppressions += 1
                # a row read again replaces one with the same address: counted once
                if row.address.startswith(ERASED_PREFIX):
                    self._erased[row.tenant] = self._erased.get(row.tenant, 0) + 1
            by_address[row.address] = row
            return
        histories = self._soft.setdefault(row.tenant, {})
        history = histories.get(row.address)
        if history is None:
            history = histories[row.address] = []
            self.soft_addresses += 1
        elif any(seen.id == row.id for seen in history):
            return
        history.append(row)
        history.sort(key=_soft_order)
        del history[: -self.soft_policy.threshold]

    def apply_all(self, rows: Iterable[SuppressionRow | SoftBounceRow]) -> None:
        for row in rows:
            self.apply(row)

    def refusal(self, address: str, tenant: str | None, now: float) -> Refusal | None:
        """Why `address` (normalised) may not be mailed for `tenant`, or None."""
        scopes = (tenant, GLOBAL) if tenant is not None and tenant != GLOBAL else (GLOBAL,)
        for scope in scopes:
            row = self._suppressed.get(scope, {}).get(address)
            if row is not None:
                return Refusal(address, scope, row.reason, row.at, row.dsn)
        if self._erased and self._hashers:
            refusal = self._erased_refusal(address, scopes)
            if refusal is not None:
                return refusal
        policy = self.soft_policy
        horizon = now - policy.window
        for scope in scopes:
            history = self._soft.get(scope, {}).get(address)
            # the oldest of the latest `threshold` still inside the window
            if history and len(history) >= policy.threshold and history[0].at >= horizon:
                last = history[-1]
                return Refusal(
                    address,
                    scope,
                    SOFT_BOUNCES,
                    last.at,
                    last.dsn,
                    count=len(history),
                    window_days=policy.window_days,
                )
        return None

    def _erased_refusal(self, address: str, scopes: tuple[str, ...]) -> Refusal | None:
        """The refusal of an erased person: their hash under any key, in a scope holding
        hashes. The Refusal names the recipient as given, never the hash."""
        held = [scope for scope in scopes if scope in self._erased]
        if not held:
            return None
        data = address.encode("utf-8")
        for hasher in self._hashers:
            keyed = hasher.copy()
            keyed.update(data)
            hashed = ERASED_PREFIX + keyed.hexdigest()
            for scope in held:
                row = self._suppressed.get(scope, {}).get(hashed)
                if row is not None:
                    return Refusal(address, scope, row.reason, row.at, row.dsn)
        return None

    def shrink(self, count: int) -> bool:
        """Forget up to `count` addresses; whether any are left. A replaced snapshot of a
        million rows is freed this way, a little at a time, not in one long pause."""
        self._erased.clear()  # a snapshot being emptied looks no hash up any more
        for store in (self._suppressed, self._soft):
            while store and count > 0:
                by_address: dict[str, Any] = next(iter(store.values()))
                while by_address and count > 0:
                    by_address.popitem()
                    count -= 1
                if not by_address:
                    del store[next(iter(store))]
        return bool(self._suppressed or self._soft)

    def rows(self) -> Iterable[SuppressionRow | SoftBounceRow]:
        """Every row held, for the snapshot file."""
        for by_address in self._suppressed.values():
            yield from by_address.values()
        for histories in self._soft.values():
            for history in histories.values():
                yield from history


def _soft_order(row: SoftBounceRow) -> tuple[float, int]:
    return (row.at, row.id)


@dataclass(frozen=True)
class Decision:
    """The action for one request, and the refusal behind it when there is one."""

    action: str
    refusal: Refusal | None = None
    tenant: str | None = None


def decide(
    request: Mapping[str, str],
    snapshot: SuppressionSnapshot,
    tenants: TenantMap,
    now: float,
) -> Decision:
    """The answer to one policy request (`now`: seconds since the epoch)."""
    if request.get("request", "smtpd_access_policy") != "smtpd_access_policy":
        return Decision(DUNNO)
    if request.get("protocol_state", "RCPT").upper() != "RCPT":
        return Decision(DUNNO)
    recipient = request.get("recipient", "")
    if not recipient.strip():
        return Decision(DUNNO)
    tenant = tenants.tenant_for_sender(request.get("sender", ""))
    refusal = snapshot.refusal(normalise_address(recipient), tenant, now)
    if refusal is None:
        return Decision(DUNNO, None, tenant)
    return Decision(refusal.action(), refusal, tenant)


class IdCursor:
    """Which rows of a table were read, so the next read asks only for what is new.

    New rows have higher ids, but transactions commit out of id order: a row whose id is below
    the highest one seen may still appear. Ids skipped over are kept as holes and asked for
    again (`id > after OR id = ANY(holes)`) for `hole_ttl` seconds; most are ids that never
    become rows (a rolled-back insert, `ON CONFLICT DO NOTHING`), so at most `max_holes` of
    the highest are kept. The daemon's full reload is the backstop for anything older.
    """

    def __init__(self, *, hole_ttl: float = 120.0, max_holes: int = 1000) -> None:
        self.after = 0
        self.hole_ttl = hole_ttl
        self.max_holes = max_holes
        self._holes: dict[int, float] = {}  # id -> when it was first missing; ascending ids

    def holes(self, now: float) -> tuple[int, ...]:
        """The ids to ask for again, after forgetting those missing for longer than the TTL."""
        expired = [hole for hole, since in self._holes.items() if since < now - self.hole_ttl]
        for hole in expired:
            del self._holes[hole]
        return tuple(self._holes)

    def advance(self, ids: Iterable[int], now: float) -> bool:
        """Take the ids a read returned (ascending); whether anything was new."""
        progressed = False
        for row_id in ids:
            if row_id <= self.after:
                progressed |= self._holes.pop(row_id, None) is not None
                continue
            for hole in range(max(self.after + 1, row_id - self.max_holes), row_id):
                self._holes[hole] = now
            self.after = row_id
            progressed = True
        while len(self._holes) > self.max_holes:
            del self._holes[next(iter(self._holes))]
        return progressed


@dataclass(frozen=True)
class Fetch:
    """One read of a table, ordered by id: at most `limit` rows after `after`, and those of
    `holes` that exist now; soft bounces only from `since` (seconds since the epoch) on.
    A read that returns `limit` rows or more may have left new rows for the next one."""

    table: str
    after: int
    holes: tuple[int, ...] = ()
    limit: int = 1000
    since: float = 0.0


# Two branches, so the new rows are one ordered range scan of the primary key (an OR would
# make PostgreSQL read every row above `after` and sort them, batch after batch); the holes
# are at most IdCursor.max_holes primary-key lookups.
_QUERIES = {
    SUPPRESSION_TABLE: (
        "(SELECT id, tenant, address, reason, dsn, extract(epoch FROM suppressed_at)::float8"
        " FROM suppression WHERE id > %(after)s ORDER BY id LIMIT %(limit)s)"
        " UNION ALL"
        " (SELECT id, tenant, address, reason, dsn, extract(epoch FROM suppressed_at)::float8"
        " FROM suppression WHERE id = ANY(%(holes)s::bigint[]) AND id <= %(after)s)"
        " ORDER BY 1"
    ),
    SOFT_BOUNCE_TABLE: (
        "(SELECT id, tenant, address, dsn, extract(epoch FROM occurred_at)::float8"
        " FROM soft_bounces WHERE id > %(after)s AND occurred_at >= to_timestamp(%(since)s)"
        " ORDER BY id LIMIT %(limit)s)"
        " UNION ALL"
        " (SELECT id, tenant, address, dsn, extract(epoch FROM occurred_at)::float8"
        " FROM soft_bounces WHERE id = ANY(%(holes)s::bigint[]) AND id <= %(after)s"
        " AND occurred_at >= to_timestamp(%(since)s))"
        " ORDER BY 1"
    ),
}


def fetch_query(fetch: Fetch) -> tuple[str, dict[str, Any]]:
    """The SQL and psycopg parameters for one read (one index range on the primary key, plus
    the holes; soft bounces also by occurred_at)."""
    if fetch.table not in _QUERIES:
        raise ValueError(f"table {fetch.table!r}: the snapshot reads {sorted(_QUERIES)}")
    params: dict[str, Any] = {
        "after": fetch.after,
        "holes": list(fetch.holes),
        "limit": fetch.limit,
    }
    if fetch.table == SOFT_BOUNCE_TABLE:
        params["since"] = fetch.since
    return _QUERIES[fetch.table], params


def map_rows(table: str, records: Iterable[Sequence[Any]]) -> list[SuppressionRow | SoftBounceRow]:
    """The query's result rows as snapshot rows."""
    if table == SUPPRESSION_TABLE:
        return [
            SuppressionRow(
                int(r[0]), _shared(r[1]), str(r[2]), _shared(r[3]), _text(r[4]), float(r[5])
            )
            for r in records
        ]
    if table == SOFT_BOUNCE_TABLE:
        return [
            SoftBounceRow(int(r[0]), _shared(r[1]), str(r[2]), _text(r[3]), float(r[4]))
            for r in records
        ]
    raise ValueError(f"table {table!r}: the snapshot reads {sorted(_QUERIES)}")


def _text(value: Any) -> str | None:
    return None if value is None else _shared(value)


def _shared(value: Any) -> str:
    """One string object per tenant, reason and code, not one per row (a million rows)."""
    return sys.intern(str(value))


# Erased addresses (`bulkmail forget`, GDPR Art. 17): what stays in `suppression` is this keyed
# hash, so the person is not mailed again and the table no longer names them.
ERASED_PREFIX = "hmac-sha256:"


def address_hash(key: bytes, address: str) -> str:
    """`hmac-sha256:<hex>` of the normalised address: the suppression key of an erased person.

    Keyed, so the table cannot be reversed by hashing a list of addresses; lower-case hex, so
    the table's lower-case CHECK holds. The policy service looks a recipient up under this
    form too (with every key it holds, so the key can rotate).
    """
    digest = _hasher(key)
    digest.update(normalise_address(address).encode("utf-8"))
    return ERASED_PREFIX + digest.hexdigest()


def _hasher(key: bytes) -> hmac.HMAC:
    """HMAC-SHA256 under `key`, nothing hashed yet: the one recipe of `address_hash`."""
    return hmac.new(key, digestmod=hashlib.sha256)
