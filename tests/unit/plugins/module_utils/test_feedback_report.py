"""`bulkmail report`'s queries and counting: stable keys, zeros shown, tenants kept apart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.report import (
    aggregate,
    format_table,
    parse_since,
    report_queries,
)

NOW = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)


def test_since_takes_durations_and_iso_times() -> None:
    assert parse_since("1h", NOW) == NOW - timedelta(hours=1)
    assert parse_since("30m", NOW) == NOW - timedelta(minutes=30)
    assert parse_since("7d", NOW) == NOW - timedelta(days=7)
    assert parse_since("2w", NOW) == NOW - timedelta(weeks=2)
    assert parse_since("2026-11-30", NOW) == datetime(2026, 11, 30, tzinfo=UTC)
    assert parse_since("2026-11-30T10:00:00+01:00", NOW).utcoffset() == timedelta(hours=1)
    with pytest.raises(ValueError, match="neither a duration"):
        parse_since("yesterday", NOW)


def test_the_queries_filter_by_window_and_tenant() -> None:
    queries = report_queries(NOW, "example.test")
    assert set(queries) == {
        "statuses", "messages", "deferred", "bounce_classes", "complaints", "suppressed",
        "refusals",
    }  # fmt: skip
    sql, params = queries["statuses"]
    assert "kind = 'delivery' AND final" in sql and "occurred_at >= %(since)s" in sql
    assert params == {"since": NOW, "tenant": "example.test"}
    sql, params = queries["suppressed"]
    assert "tenant IN (%(tenant)s, %(global)s)" in sql and params["global"] == "global"
    assert "suppressed_at >= %(since)s" in sql
    sql, params = report_queries(None)["refusals"]
    assert params == {} and "%(" not in sql


def test_aggregate_has_every_key_with_zeros() -> None:
    report = aggregate({})
    assert report == {
        "since": None,
        "tenant": None,
        "messages": 0,
        "statuses": {"sent": 0, "bounced": 0, "deferred": 0, "expired": 0},
        "bounce_classes": {},
        "complaints": 0,
        "suppressed": {},
        "refusals": 0,
    }


def test_aggregate_counts_the_rows() -> None:
    results = {
        "statuses": [("sent", 90), ("bounced", 6), ("expired", 1)],
        "messages": [(97,)],
        "deferred": [(3,)],
        "bounce_classes": [("invalid_recipient", 5), ("mailbox_full", 1), ("expired", 1)],
        "complaints": [(2,)],
        "suppressed": [("hard_bounce", "example.test", 5), ("complaint", "global", 1)],
        "refusals": [(4,)],
    }
    report = aggregate(results, NOW, "example.test")
    assert report["since"] == "2026-12-01T17:00:00+00:00" and report["tenant"] == "example.test"
    assert report["statuses"] == {"sent": 90, "bounced": 6, "deferred": 3, "expired": 1}
    assert list(report["bounce_classes"]) == ["expired", "invalid_recipient", "mailbox_full"]
    assert report["suppressed"] == {
        "complaint": {"global": 1},
        "hard_bounce": {"example.test": 5},
    }
    assert (report["messages"], report["complaints"], report["refusals"]) == (97, 2, 4)
    table = format_table(report)
    lines = table.splitlines()
    assert lines[0] == "bulkmail report: example.test, since 2026-12-01T17:00:00+00:00"
    assert len({len(line) for line in lines[1:]}) == 1  # aligned
    assert any(line.startswith("  hard_bounce example.test") for line in lines)
