"""Retention (`bulkmail retention`): the SQL that rolls the raw delivery events up into
`delivery_daily` and purges what is older than its age, in batches.

One run, for the cutoffs `cutoffs()` computes from `now` and the ages:

1. `delivery_events` older than the events age: each batch deletes up to `batch` rows and adds
   the final ones among them into `delivery_daily` (day in UTC, tenant, instance, status,
   bounce class; unknown ones as '') in ONE statement, `WITH gone AS (DELETE ... RETURNING)
   INSERT ... SELECT ... FROM gone ... ON CONFLICT DO UPDATE`. A row is counted in the same
   transaction that removes it, so "not rolled up yet" is "still in delivery_events": a crash
   or a second run at the same time (its DELETE waits for ours, then finds the rows gone)
   never counts a day twice, and no event is lost.
2. `bounces`, `complaints` (occurred_at) and `soft_bounces` (occurred_at, never younger than
   the policy service's soft-bounce window, whatever the feedback age) older than the
   feedback age.
3. `dmarc_reports` (their `dmarc_records` with them) and `tls_reports` whose date_end is older
   than the reports age (400 days by default: a year of DMARC pass rates to compare).
4. `feedback_messages` received before the feedback age. A message that a DMARC or TLS report
   still younger than the reports age came from is NOT deleted (its FK cascades, and would
   take the report): its `raw` is emptied instead, which is what the age is for (the bytes,
   which may name people), and the row keeps the report's provenance (who sent it, when).
   Once the report has gone (step 3 of a later run), the next run deletes the row. Bounces
   and complaints left on an old message (an occurred_at later than its receipt) go with it.
5. `retention_run()`: one `retention_runs` row with the events cutoff and the counts.

Every batch is a statement of its own transaction (the caller commits after each), so a first
run over a year of events holds its row locks for one batch at a time, not for minutes. Each
statement returns one row: how many rows the batch took (the caller stops when fewer than
`batch`), the last id it took (for `feedback_messages`, whose kept rows are walked past by
id, not taken again) and its counts as a JSON object.

Suppression rows are never purged: they are the memory that keeps a person from being mailed
again (erasure is `bulkmail forget`).

Pure Python: no I/O, no Ansible import.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

DEFAULT_BATCH = 50_000
# The advisory lock a run holds (pg_try_advisory_lock): the timer runs on every smtp host, and
# one run at a time is enough. Any bigint works; this one is "bulkret" in ASCII.
RUN_LOCK = 0x62756C6B726574
# The counts one run reports, in the order it prints them (stable keys in retention_runs).
COUNTS = (
    "delivery_events",
    "rolled_up",
    "bounces",
    "complaints",
    "soft_bounces",
    "dmarc_reports",
    "dmarc_records",
    "tls_reports",
    "feedback_messages",
    "feedback_messages_emptied",
)


@dataclass(frozen=True)
class RetentionAges:
    """How long raw rows are kept, in days; `soft_bounce_days` is the policy service's
    soft-bounce window (its --soft-bounce-days), which soft bounces always outlive."""

    events_days: float = 30.0
    feedback_days: float = 90.0
    reports_days: float = 400.0
    soft_bounce_days: float = 7.0

    def __post_init__(self) -> None:
        for name in ("events_days", "feedback_days", "reports_days", "soft_bounce_days"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value <= 0
            ):
                option = "--" + name.replace("_", "-")
                raise ValueError(f"{option} {value!r}: give a number of days above 0")


@dataclass(frozen=True)
class Cutoffs:
    """Rows older than these go (timestamptz parameters, aware datetimes)."""

    events: datetime
    feedback: datetime
    soft_bounces: datetime
    reports: datetime


def cutoffs(now: datetime, ages: RetentionAges) -> Cutoffs:
    """The cutoffs of a run at `now` (aware)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    feedback = now - timedelta(days=ages.feedback_days)
    return Cutoffs(
        events=now - timedelta(days=ages.events_days),
        feedback=feedback,
        # the policy service counts soft bounces over its window: never purge inside it
        soft_bounces=min(feedback, now - timedelta(days=ages.soft_bounce_days)),
        reports=now - timedelta(days=ages.reports_days),
    )


@dataclass(frozen=True)
class Purge:
    """One table's batch statement, run again until a batch takes fewer than `batch` rows.

    `params["after"]` is the keyset position: the caller sets it to the last id a batch
    returned (only `feedback_messages` uses it; the others delete what they take).
    """

    table: str
    sql: str
    params: dict[str, Any]
    cutoff: datetime


# The rollup's key: the day in UTC whatever the session's TimeZone, unknowns as ''.
_DAILY_KEY = (
    "(occurred_at AT TIME ZONE 'UTC')::date, coalesce(tenant, ''), coalesce(instance, ''),"
    " status, coalesce(bounce_class, '')"
)

_EVENTS = (
    "WITH doomed AS ("
    "SELECT id FROM delivery_events WHERE occurred_at < %(cutoff)s"
    " ORDER BY occurred_at LIMIT %(batch)s FOR UPDATE),"
    " gone AS ("
    "DELETE FROM delivery_events d USING doomed WHERE d.id = doomed.id"
    " RETURNING d.occurred_at, d.tenant, d.instance, d.status, d.bounce_class, d.final),"
    " rolled AS ("
    "INSERT INTO delivery_daily AS daily (day, tenant, instance, status, bounce_class, events)"
    f" SELECT {_DAILY_KEY}, count(*) FROM gone WHERE final GROUP BY 1, 2, 3, 4, 5"
    " ON CONFLICT (day, tenant, instance, status, bounce_class)"
    " DO UPDATE SET events = daily.events + EXCLUDED.events)"
    " SELECT (SELECT count(*) FROM doomed), NULL::bigint, jsonb_build_object("
    "'delivery_events', (SELECT count(*) FROM gone),"
    " 'rolled_up', (SELECT count(*) FROM gone WHERE final))"
)


def _by_time(table: str, column: str) -> str:
    """A plain batch: the oldest `batch` rows before the cutoff (the column is indexed)."""
    return (
        f"WITH doomed AS (SELECT id FROM {table} WHERE {column} < %(cutoff)s"
        f" ORDER BY {column} LIMIT %(batch)s FOR UPDATE),"
        f" gone AS (DELETE FROM {table} t USING doomed WHERE t.id = doomed.id RETURNING t.id)"
        " SELECT (SELECT count(*) FROM doomed), NULL::bigint,"
        f" jsonb_build_object('{table}', (SELECT count(*) FROM gone))"
    )


# The records are deleted by the statement itself (not left to the cascade) to be counted.
_DMARC = (
    "WITH doomed AS (SELECT id FROM dmarc_reports WHERE date_end < %(cutoff)s"
    " ORDER BY id LIMIT %(batch)s FOR UPDATE),"
    " records AS (DELETE FROM dmarc_records r USING doomed WHERE r.report = doomed.id"
    " RETURNING r.id),"
    " gone AS (DELETE FROM dmarc_reports t USING doomed WHERE t.id = doomed.id RETURNING t.id)"
    " SELECT (SELECT count(*) FROM doomed), NULL::bigint, jsonb_build_object("
    "'dmarc_reports', (SELECT count(*) FROM gone),"
    " 'dmarc_records', (SELECT count(*) FROM records))"
)

_TLS = (
    "WITH doomed AS (SELECT id FROM tls_reports WHERE date_end < %(cutoff)s"
    " ORDER BY id LIMIT %(batch)s FOR UPDATE),"
    " gone AS (DELETE FROM tls_reports t USING doomed WHERE t.id = doomed.id RETURNING t.id)"
    " SELECT (SELECT count(*) FROM doomed), NULL::bigint,"
    " jsonb_build_object('tls_reports', (SELECT count(*) FROM gone))"
)

# A message a report still points at: its FK cascades, so it is emptied, not deleted.
_REPORTED = (
    "(fm.id IN (SELECT feedback_message FROM dmarc_reports WHERE feedback_message IS NOT NULL)"
    " OR fm.id IN (SELECT feedback_message FROM tls_reports WHERE feedback_message IS NOT NULL))"
)

# Walked by id from `after`: the rows kept for their reports are passed over once per run,
# not taken again by every batch (received_at is no key: a message can be stored late).
_FEEDBACK = (
    "WITH doomed AS ("
    f"SELECT fm.id, {_REPORTED} AS reported FROM feedback_messages fm"
    " WHERE fm.id > %(after)s AND fm.received_at < %(cutoff)s"
    " ORDER BY fm.id LIMIT %(batch)s FOR UPDATE OF fm),"
    " emptied AS (UPDATE feedback_messages t SET raw = ''::bytea FROM doomed"
    " WHERE t.id = doomed.id AND doomed.reported AND octet_length(t.raw) > 0 RETURNING t.id),"
    " gone AS (DELETE FROM feedback_messages t USING doomed"
    " WHERE t.id = doomed.id AND NOT doomed.reported RETURNING t.id)"
    " SELECT (SELECT count(*) FROM doomed), (SELECT max(id) FROM doomed), jsonb_build_object("
    "'feedback_messages', (SELECT count(*) FROM gone),"
    " 'feedback_messages_emptied', (SELECT count(*) FROM emptied))"
)


def purge_steps(cut: Cutoffs, batch: int = DEFAULT_BATCH) -> list[Purge]:
    """The run's batch statements, in order: events (with their rollup), the feedback rows,
    the reports, then the feedback messages (after their reports, so a report deleted in
    this run frees its message in this run too)."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"--batch {batch!r}: give a whole number of rows, at least 1")

    def step(table: str, sql: str, cutoff: datetime) -> Purge:
        return Purge(table, sql, {"cutoff": cutoff, "batch": batch, "after": 0}, cutoff)

    return [
        step("delivery_events", _EVENTS, cut.events),
        step("bounces", _by_time("bounces", "occurred_at"), cut.feedback),
        step("complaints", _by_time("complaints", "occurred_at"), cut.feedback),
        step("soft_bounces", _by_time("soft_bounces", "occurred_at"), cut.soft_bounces),
        step("dmarc_reports", _DMARC, cut.reports),
        step("tls_reports", _TLS, cut.reports),
        step("feedback_messages", _FEEDBACK, cut.feedback),
    ]


def dry_run_query(cut: Cutoffs) -> tuple[str, dict[str, Any]]:
    """What a run would do, counted without changing anything: one row, one JSON object with
    the keys of COUNTS. The feedback messages are counted as if this run had deleted the old
    reports first, as it would."""
    # the reports this run would keep (NOT IN over a NULL would count nothing: kept out)
    reported = _REPORTED.replace(
        "WHERE feedback_message IS NOT NULL",
        "WHERE feedback_message IS NOT NULL AND date_end >= %(r)s",
    )
    sql = (
        "SELECT jsonb_build_object("
        "'delivery_events', (SELECT count(*) FROM delivery_events WHERE occurred_at < %(e)s),"
        " 'rolled_up', (SELECT count(*) FROM delivery_events WHERE final AND occurred_at < %(e)s),"
        " 'bounces', (SELECT count(*) FROM bounces WHERE occurred_at < %(f)s),"
        " 'complaints', (SELECT count(*) FROM complaints WHERE occurred_at < %(f)s),"
        " 'soft_bounces', (SELECT count(*) FROM soft_bounces WHERE occurred_at < %(s)s),"
        " 'dmarc_reports', (SELECT count(*) FROM dmarc_reports WHERE date_end < %(r)s),"
        " 'dmarc_records', (SELECT count(*) FROM dmarc_records WHERE report IN"
        " (SELECT id FROM dmarc_reports WHERE date_end < %(r)s)),"
        " 'tls_reports', (SELECT count(*) FROM tls_reports WHERE date_end < %(r)s),"
        " 'feedback_messages', (SELECT count(*) FROM feedback_messages fm"
        f" WHERE received_at < %(f)s AND NOT {reported}),"
        " 'feedback_messages_emptied', (SELECT count(*) FROM feedback_messages fm"
        f" WHERE received_at < %(f)s AND octet_length(raw) > 0 AND {reported}))"
    )
    params = {"e": cut.events, "f": cut.feedback, "s": cut.soft_bounces, "r": cut.reports}
    return sql, params


def add_counts(total: dict[str, int], batch: Mapping[str, Any]) -> None:
    """Add one batch's counts (its JSON object) into the run's."""
    for name, value in batch.items():
        total[name] = total.get(name, 0) + int(value)


def empty_counts() -> dict[str, int]:
    return dict.fromkeys(COUNTS, 0)


def retention_run(cut: Cutoffs, counts: Mapping[str, int]) -> tuple[str, dict[str, Any]]:
    """The run's record: the events cutoff, the final events rolled up, the rest per table."""
    deleted = {name: int(counts.get(name, 0)) for name in COUNTS if name != "rolled_up"}
    return (
        "INSERT INTO retention_runs (cutoff, rolled_up, deleted)"
        " VALUES (%(cutoff)s, %(rolled_up)s, %(deleted)s::jsonb) RETURNING id",
        {
            "cutoff": cut.events,
            "rolled_up": int(counts.get("rolled_up", 0)),
            "deleted": json.dumps(deleted, sort_keys=False),
        },
    )


def lock_query() -> tuple[str, dict[str, Any]]:
    """Take the run lock for the session, without waiting: true when this run may go on."""
    return "SELECT pg_try_advisory_lock(%(key)s)", {"key": RUN_LOCK}


def unlock_query() -> tuple[str, dict[str, Any]]:
    return "SELECT pg_advisory_unlock(%(key)s)", {"key": RUN_LOCK}


def summary_lines(cut: Cutoffs, counts: Mapping[str, int], *, done: bool) -> list[str]:
    """One line per table, as `bulkmail retention` prints them."""
    verb = "deleted" if done else "would delete"

    def day(when: datetime) -> str:
        return when.isoformat(timespec="seconds")

    lines = [
        f"delivery_events: {counts.get('delivery_events', 0)} {verb} (before "
        f"{day(cut.events)}), {counts.get('rolled_up', 0)} final events "
        f"{'added' if done else 'to add'} into delivery_daily"
    ]
    for table, cutoff in (
        ("bounces", cut.feedback),
        ("complaints", cut.feedback),
        ("soft_bounces", cut.soft_bounces),
    ):
        lines.append(f"{table}: {counts.get(table, 0)} {verb} (before {day(cutoff)})")
    lines.append(
        f"dmarc_reports: {counts.get('dmarc_reports', 0)} {verb} (ended before "
        f"{day(cut.reports)}), with {counts.get('dmarc_records', 0)} dmarc_records"
    )
    lines.append(
        f"tls_reports: {counts.get('tls_reports', 0)} {verb} (ended before {day(cut.reports)})"
    )
    lines.append(
        f"feedback_messages: {counts.get('feedback_messages', 0)} {verb} (received before "
        f"{day(cut.feedback)}), {counts.get('feedback_messages_emptied', 0)} "
        f"{'emptied' if done else 'to empty'} (raw dropped, kept for their reports)"
    )
    return lines
