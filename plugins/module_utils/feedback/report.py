"""What happened to the mail, in numbers: the queries `bulkmail report` runs and the dict it
prints.

Counts are over the delivery events `bulkmail ingest` writes (migration 0003): a message is a
(Message-ID, recipient) pair (the first hop's queue id stands in for a missing Message-ID),
and its outcome is its final event (sent, bounced, expired), one per message and recipient
however many hops and retries it took. A message with no final event whose latest event is a
deferral is counted as `deferred` (still in a queue, or its expiry not read yet). Bounce
classes are those of the final failures (bounced and expired, classify.py's classes);
complaints come from the complaints table (ARF reports), suppressions from the suppression
table (those made within the window), refusals are smtpd's and cleanup's (kind refusal).

`--tenant` keeps the rows of one tenant (the sender's, as the ingester recorded it), and for
suppressions also the global ones (they stop that tenant's mail too).

Pure Python: no I/O, no Ansible import.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from .suppression import GLOBAL

# The statuses the report always shows, in this order (zeros included: stable keys).
STATUSES = ("sent", "bounced", "deferred", "expired")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# One message and recipient, across its hops: the Message-ID, else the first hop's queue id.
_MESSAGE_KEY = "coalesce(message_id, host || ':' || coalesce(origin_queue_id, queue_id))"


def parse_since(text: str, now: datetime) -> datetime:
    """`1h`, `30m`, `7d`, `2w`, `90s` before `now`, or an ISO 8601 date or time (UTC unless
    it says otherwise). ValueError names what to write instead."""
    match = _DURATION.match(text)
    if match:
        return now - timedelta(seconds=float(match[1]) * _UNITS[match[2].lower()])
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (90s, 30m, 1h, 7d, 2w) nor an ISO 8601 time "
            "(2026-12-01 or 2026-12-01T17:00:00+00:00)"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _where(
    since: datetime | None, tenant: str | None, *, at: str, tenant_column: str = "tenant"
) -> tuple[str, dict[str, Any]]:
    clauses, params = [], {}
    if since is not None:
        clauses.append(f"{at} >= %(since)s")
        params["since"] = since
    if tenant is not None:
        clauses.append(f"{tenant_column} = %(tenant)s")
        params["tenant"] = tenant
    return "".join(f" AND {clause}" for clause in clauses), params


def report_queries(
    since: datetime | None, tenant: str | None = None
) -> dict[str, tuple[str, dict[str, Any]]]:
    """The queries by name, each with its parameters; `aggregate()` reads their rows."""
    events, params = _where(since, tenant, at="occurred_at")
    final = f"kind = 'delivery' AND final{events}"
    suppressed, suppressed_params = _where(since, None, at="suppressed_at")
    if tenant is not None:
        suppressed += " AND tenant IN (%(tenant)s, %(global)s)"
        suppressed_params = {**suppressed_params, "tenant": tenant, "global": GLOBAL}
    complaints, complaint_params = _where(since, tenant, at="occurred_at")
    return {
        "statuses": (
            f"SELECT status, count(*) FROM delivery_events WHERE {final} GROUP BY status",
            params,
        ),
        "messages": (
            f"SELECT count(DISTINCT ({_MESSAGE_KEY}, recipient)) FROM delivery_events"
            f" WHERE {final}",
            params,
        ),
        # the latest event of each message and recipient with none final: deferred or on
        "deferred": (
            "SELECT count(*) FROM (SELECT DISTINCT ON (key, recipient) key, recipient, status,"
            " final FROM (SELECT "
            + _MESSAGE_KEY
            + " AS key, recipient, status, final, occurred_at, id FROM delivery_events"
            f" WHERE kind IN ('delivery', 'handoff') AND recipient IS NOT NULL{events}) e"
            " ORDER BY key, recipient, final DESC, occurred_at DESC, id DESC) latest"
            " WHERE NOT final AND status = 'deferred'",
            params,
        ),
        "bounce_classes": (
            "SELECT coalesce(bounce_class, 'unknown'), count(*) FROM delivery_events"
            f" WHERE {final} AND status IN ('bounced', 'expired') GROUP BY 1",
            params,
        ),
        "complaints": (f"SELECT count(*) FROM complaints WHERE true{complaints}", complaint_params),
        "suppressed": (
            "SELECT reason, tenant, count(*) FROM suppression"
            f" WHERE true{suppressed} GROUP BY reason, tenant",
            suppressed_params,
        ),
        "refusals": (
            f"SELECT count(*) FROM delivery_events WHERE kind = 'refusal'{events}",
            params,
        ),
    }


def aggregate(
    results: Mapping[str, Sequence[Sequence[Any]]],
    since: datetime | None = None,
    tenant: str | None = None,
) -> dict[str, Any]:
    """The report from each query's rows (`report_queries()`'s names). Keys, always there:

    since (ISO 8601 or null), tenant (or null), messages (int), statuses ({sent, bounced,
    deferred, expired}: ints), bounce_classes ({class: int}, sorted), complaints (int),
    suppressed ({reason: {tenant: int}}, sorted), refusals (int).
    """
    statuses = dict.fromkeys(STATUSES, 0)
    for status, count in results.get("statuses", ()):
        if status in statuses:
            statuses[status] += int(count)
    statuses["deferred"] = _count(results.get("deferred"))
    classes: dict[str, int] = {}
    for name, count in results.get("bounce_classes", ()):
        classes[str(name)] = classes.get(str(name), 0) + int(count)
    suppressed: dict[str, dict[str, int]] = {}
    for reason, scope, count in results.get("suppressed", ()):
        by_tenant = suppressed.setdefault(str(reason), {})
        by_tenant[str(scope)] = by_tenant.get(str(scope), 0) + int(count)
    return {
        "since": since.isoformat() if since is not None else None,
        "tenant": tenant,
        "messages": _count(results.get("messages")),
        "statuses": statuses,
        "bounce_classes": dict(sorted(classes.items())),
        "complaints": _count(results.get("complaints")),
        "suppressed": {
            reason: dict(sorted(by_tenant.items()))
            for reason, by_tenant in sorted(suppressed.items())
        },
        "refusals": _count(results.get("refusals")),
    }


def _count(rows: Sequence[Sequence[Any]] | None) -> int:
    return int(rows[0][0] or 0) if rows else 0


def format_table(report: Mapping[str, Any]) -> str:
    """The report as aligned text: a label column and a number column, sections indented."""
    lines: list[tuple[str, str]] = []
    scope = report["tenant"] or "all tenants"
    window = f"since {report['since']}" if report["since"] else "all time"
    lines.append(("messages", str(report["messages"])))
    for status, count in report["statuses"].items():
        lines.append((f"  {status}", str(count)))
    lines.append(("bounces by class", str(sum(report["bounce_classes"].values()))))
    lines += [(f"  {name}", str(count)) for name, count in report["bounce_classes"].items()]
    lines.append(("complaints", str(report["complaints"])))
    total = sum(sum(by_tenant.values()) for by_tenant in report["suppressed"].values())
    lines.append(("suppressed", str(total)))
    for reason, by_tenant in report["suppressed"].items():
        lines += [(f"  {reason} {name}", str(count)) for name, count in by_tenant.items()]
    lines.append(("refusals", str(report["refusals"])))
    width = max(len(label) for label, _value in lines)
    digits = max(len(value) for _label, value in lines)
    body = [f"{label:<{width}}  {value:>{digits}}" for label, value in lines]
    return "\n".join([f"bulkmail report: {scope}, {window}", *body]) + "\n"
