"""Retention: the cutoffs, and the SQL of one run (rollup and purge in one statement)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.retention import (
    COUNTS,
    RUN_LOCK,
    RetentionAges,
    add_counts,
    cutoffs,
    dry_run_query,
    empty_counts,
    lock_query,
    purge_steps,
    retention_run,
    summary_lines,
)

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
MIGRATIONS = Path(__file__).parents[4] / "roles/postgresql/files/migrations"
SCHEMA = "\n".join(path.read_text() for path in sorted(MIGRATIONS.glob("*.sql")))


def test_the_default_ages_cut_30_90_and_400_days_back() -> None:
    cut = cutoffs(NOW, RetentionAges())
    assert NOW - cut.events == timedelta(days=30)
    assert NOW - cut.feedback == timedelta(days=90)
    assert NOW - cut.soft_bounces == timedelta(days=90)
    assert NOW - cut.reports == timedelta(days=400)


def test_soft_bounces_are_never_purged_inside_the_policy_window() -> None:
    cut = cutoffs(NOW, RetentionAges(feedback_days=3, soft_bounce_days=7))
    assert NOW - cut.feedback == timedelta(days=3)
    assert NOW - cut.soft_bounces == timedelta(days=7)


@pytest.mark.parametrize(
    ("ages", "option"),
    [
        ({"events_days": 0}, "--events-days 0"),
        ({"feedback_days": -1}, "--feedback-days -1"),
        ({"reports_days": True}, "--reports-days True"),
        ({"soft_bounce_days": float("nan")}, "--soft-bounce-days nan"),
    ],
)
def test_an_age_that_is_not_a_positive_number_names_its_option(ages: dict, option: str) -> None:
    with pytest.raises(ValueError, match=re.escape(option)):
        RetentionAges(**ages)


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        cutoffs(datetime(2026, 12, 1), RetentionAges())


@pytest.mark.parametrize("batch", [0, -5, True, 2.5])
def test_the_batch_is_a_whole_number_of_rows(batch: object) -> None:
    with pytest.raises(ValueError, match="--batch"):
        purge_steps(cutoffs(NOW, RetentionAges()), batch)  # type: ignore[arg-type]


def test_the_run_purges_events_feedback_reports_then_feedback_messages() -> None:
    cut = cutoffs(NOW, RetentionAges())
    steps = purge_steps(cut, 1000)
    assert [step.table for step in steps] == [
        "delivery_events",
        "bounces",
        "complaints",
        "soft_bounces",
        "dmarc_reports",
        "tls_reports",
        "feedback_messages",
    ]
    by_table = {step.table: step for step in steps}
    assert by_table["delivery_events"].params == {"cutoff": cut.events, "batch": 1000, "after": 0}
    assert by_table["bounces"].cutoff == by_table["feedback_messages"].cutoff == cut.feedback
    assert by_table["soft_bounces"].cutoff == cut.soft_bounces
    assert by_table["dmarc_reports"].cutoff == by_table["tls_reports"].cutoff == cut.reports
    for step in steps:
        assert f"DELETE FROM {step.table} " in step.sql
        assert "LIMIT %(batch)s" in step.sql  # batched: no statement takes the whole table


def test_events_are_rolled_up_by_the_statement_that_deletes_them() -> None:
    """Exactly once: the rows counted are the rows deleted, in one statement."""
    events = purge_steps(cutoffs(NOW, RetentionAges()))[0].sql
    assert events.count(";") == 0
    assert re.search(
        r"gone AS \(DELETE FROM delivery_events .* RETURNING .*\).*"
        r"INSERT INTO delivery_daily .* FROM gone WHERE final GROUP BY",
        events,
    )
    assert (
        "ON CONFLICT (day, tenant, instance, status, bounce_class)"
        " DO UPDATE SET events = daily.events + EXCLUDED.events" in events
    )
    # the day is UTC's whatever the session's TimeZone; unknowns are '' (the key is NOT NULL)
    assert "(occurred_at AT TIME ZONE 'UTC')::date" in events
    for column in ("tenant", "instance", "bounce_class"):
        assert f"coalesce({column}, '')" in events
    assert "occurred_at < %(cutoff)s" in events


def test_suppression_is_never_purged() -> None:
    cut = cutoffs(NOW, RetentionAges())
    for sql in [step.sql for step in purge_steps(cut)] + [retention_run(cut, {})[0]]:
        assert not re.search(r"(DELETE FROM|UPDATE|TRUNCATE) suppression\b", sql)


def test_a_feedback_message_with_a_kept_report_is_emptied_not_deleted() -> None:
    """Its FK cascades into the report: deleting it would take a report younger than its age."""
    feedback = purge_steps(cutoffs(NOW, RetentionAges()))[-1].sql
    assert "dmarc_reports WHERE feedback_message IS NOT NULL" in feedback
    assert "tls_reports WHERE feedback_message IS NOT NULL" in feedback
    assert "SET raw = ''::bytea" in feedback and "AND doomed.reported" in feedback
    assert "NOT doomed.reported" in feedback.split("DELETE FROM feedback_messages", 1)[1]
    # walked by id from the last batch's, so the kept rows are not taken again and again
    assert "fm.id > %(after)s" in feedback and "ORDER BY fm.id" in feedback
    assert "(SELECT max(id) FROM doomed)" in feedback


def test_dmarc_records_are_deleted_and_counted_with_their_reports() -> None:
    dmarc = purge_steps(cutoffs(NOW, RetentionAges()))[4].sql
    assert "DELETE FROM dmarc_records r USING doomed WHERE r.report = doomed.id" in dmarc
    assert "date_end < %(cutoff)s" in dmarc


def test_the_statements_name_only_tables_and_columns_the_migrations_create() -> None:
    cut = cutoffs(NOW, RetentionAges())
    sql = " ".join(
        [step.sql for step in purge_steps(cut)] + [dry_run_query(cut)[0], retention_run(cut, {})[0]]
    )
    ctes = set(re.findall(r"\b([a-z_]+) AS \(", sql))
    tables = set(re.findall(r"\b(?:FROM|INTO|UPDATE|JOIN)\s+([a-z_]+)", sql)) - ctes
    assert {"delivery_events", "delivery_daily", "feedback_messages", "retention_runs"} <= tables
    for table in tables:
        assert re.search(rf"CREATE TABLE {table} \(", SCHEMA), table
    for table, columns in {
        "delivery_events": ("occurred_at", "final", "tenant", "instance", "status", "bounce_class"),
        "delivery_daily": ("day", "tenant", "instance", "status", "bounce_class", "events"),
        "feedback_messages": ("received_at", "raw"),
        "dmarc_reports": ("feedback_message", "date_end"),
        "dmarc_records": ("report",),
        "tls_reports": ("feedback_message", "date_end"),
        "retention_runs": ("cutoff", "rolled_up", "deleted"),
    }.items():
        for column in columns:
            created = rf"CREATE TABLE {table} \([^;]*\b{column}\b"
            added = rf"ALTER TABLE {table}[^;]*ADD COLUMN\s+{column}\b"
            assert re.search(created, SCHEMA) or re.search(added, SCHEMA), (table, column)


def test_the_dry_run_counts_every_key_and_is_read_only() -> None:
    cut = cutoffs(NOW, RetentionAges())
    sql, params = dry_run_query(cut)
    for name in COUNTS:
        assert f"'{name}'" in sql
    assert not re.search(r"\b(DELETE|UPDATE|INSERT)\b", sql)
    assert params == {"e": cut.events, "f": cut.feedback, "s": cut.soft_bounces, "r": cut.reports}
    # NOT IN over a NULL feedback_message would count no message at all
    assert "WHERE feedback_message IS NOT NULL AND date_end >= %(r)s" in sql


def test_the_run_is_recorded_with_its_counts() -> None:
    cut = cutoffs(NOW, RetentionAges())
    counts = empty_counts()
    add_counts(counts, {"delivery_events": 3, "rolled_up": 2})
    add_counts(counts, {"delivery_events": 1, "rolled_up": 1, "bounces": 4})
    sql, params = retention_run(cut, counts)
    assert sql.startswith("INSERT INTO retention_runs (cutoff, rolled_up, deleted)")
    assert (params["cutoff"], params["rolled_up"]) == (cut.events, 3)
    deleted = json.loads(params["deleted"])
    assert deleted["delivery_events"] == 4 and deleted["bounces"] == 4
    assert set(deleted) == set(COUNTS) - {"rolled_up"}


def test_one_run_at_a_time_by_an_advisory_lock() -> None:
    assert lock_query() == ("SELECT pg_try_advisory_lock(%(key)s)", {"key": RUN_LOCK})


def test_the_summary_is_one_line_per_table() -> None:
    cut = cutoffs(NOW, RetentionAges())
    counts = empty_counts() | {
        "delivery_events": 10,
        "rolled_up": 7,
        "feedback_messages_emptied": 2,
    }
    lines = summary_lines(cut, counts, done=True)
    assert [line.split(":", maxsplit=1)[0] for line in lines] == [
        "delivery_events",
        "bounces",
        "complaints",
        "soft_bounces",
        "dmarc_reports",
        "tls_reports",
        "feedback_messages",
    ]
    assert lines[0] == (
        "delivery_events: 10 deleted (before 2026-11-01T03:00:00+00:00), "
        "7 final events added into delivery_daily"
    )
    assert "2 emptied" in lines[-1]
    assert summary_lines(cut, counts, done=False)[1].startswith("bounces: 0 would delete")
