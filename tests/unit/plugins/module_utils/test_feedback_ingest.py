"""Delivery events -> rows: the delivery_events row of each event, what follows from it
(bounces, hard-bounce suppression, soft bounces) and the batch's SQL."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.ingest import (
    BOUNCE_SQL,
    CURSOR_SQL,
    EVENT_COLUMNS,
    SOFT_BOUNCE_SQL,
    STATE_SQL,
    SUPPRESSION_SQL,
    FeedbackAddresses,
    event_row,
    follow_up_statements,
    follow_ups,
    insert_events,
    resume_point,
    save_state,
    snapshot_record,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.postfix_log import (
    Event,
    Tracker,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.suppression import (
    TenantMap,
    default_tenants,
)

TENANTS = TenantMap.load(default_tenants(["example.test", "shop.test"]))
VERP = "news+bob=gmail.test@bounces.example.test"
T0 = datetime(2026, 12, 1, 17, 0, tzinfo=UTC).timestamp()
MX = "mx.gmail.test[198.51.100.25]:25"


def events(*messages: str, sender: str = VERP) -> list[Event]:
    """The events of smtp lines for queue id D53A72713E5 (its qmgr line first)."""
    track = Tracker(("10.25.0.10",))
    found = track.feed_journal(
        "postfix/qmgr", f"D53A72713E5: from=<{sender}>, size=10, nrcpt=1 (queue active)", T0, "h1"
    )
    for second, message in enumerate(messages, start=1):
        found += track.feed_journal("postfix/smtp", f"D53A72713E5: {message}", T0 + second, "h1")
    return found


def delivery(status: str, dsn: str, reply: str, rcpt: str = "Bob@Gmail.test") -> str:
    return (
        f"to=<{rcpt}>, relay={MX}, delay=1.2, delays=0.1/0/0.6/0.5, dsn={dsn}, "
        f"status={status} ({reply})"
    )


BOUNCED_511 = delivery(
    "bounced",
    "5.1.1",
    f"host {MX[:-3]} said: 550-5.1.1 The email account that you tried to reach does not "
    "exist (in reply to RCPT TO command)",
)
FULL = delivery("deferred", "4.2.2", f"host {MX[:-3]} said: 452 4.2.2 The mailbox is over quota")
GREYLISTED = delivery("deferred", "4.7.1", f"host {MX[:-3]} said: 451 4.7.1 Greylisted, retry")


def row_of(message: str, **options: object) -> dict[str, object]:
    (event,) = events(message, **options)  # type: ignore[arg-type]
    return event_row(event, TENANTS)


# ---------------------------------------------------------------------- the row


def test_a_sent_delivery_becomes_its_delivery_events_row() -> None:
    (event,) = events(delivery("sent", "2.0.0", "250 2.0.0 OK queued"))
    row = event_row(event, TENANTS)
    assert tuple(row) == EVENT_COLUMNS
    assert row["event_key"] == event.key
    assert (row["kind"], row["status"], row["final"]) == ("delivery", "sent", True)
    assert row["recipient"] == "bob@gmail.test"  # normalised: the suppression key
    assert row["sender"] == VERP
    assert row["tenant"] == "example.test"  # the return-path domain's parent
    assert row["remote_host"] == MX
    assert (row["relay_ip"], row["relay_port"]) == ("198.51.100.25", 25)
    assert row["delays"] == [0.1, 0.0, 0.6, 0.5] and row["delay"] == 1.2
    assert row["detail"] == "250 2.0.0 OK queued" and row["dsn"] == "2.0.0"
    assert row["occurred_at"] == datetime(2026, 12, 1, 17, 0, 1, tzinfo=UTC)
    assert row["bounce_class"] is None
    assert (row["host"], row["instance"], row["transport"]) == ("h1", "postfix", "smtp")
    assert row["queue_id"] == row["origin_queue_id"] == "D53A72713E5"


def test_failures_carry_their_class_and_successes_none() -> None:
    assert row_of(BOUNCED_511)["bounce_class"] == "invalid_recipient"
    assert row_of(FULL)["bounce_class"] == "mailbox_full"
    assert row_of(GREYLISTED)["bounce_class"] == "transient"


def test_an_expiry_is_classified_as_one() -> None:
    found = events(FULL)
    track_expired = Tracker()
    track_expired.feed_journal(
        "postfix/qmgr", f"D53A72713E5: from=<{VERP}>, size=10, nrcpt=1 (queue active)", T0, "h1"
    )
    track_expired.feed_journal("postfix/smtp", f"D53A72713E5: {FULL}", T0 + 1, "h1")
    (expired,) = track_expired.feed_journal(
        "postfix/qmgr", "D53A72713E5: from=<" + VERP + ">, status=expired, returned to sender",
        T0 + 2, "h1",
    )  # fmt: skip
    row = event_row(expired, TENANTS)
    assert found and row["status"] == "expired" and row["final"]
    assert row["bounce_class"] == "expired" and row["dsn"] == "4.2.2"


def test_the_null_sender_has_no_tenant() -> None:
    row = row_of(BOUNCED_511, sender="")
    assert row["sender"] == "" and row["tenant"] is None


def test_values_a_check_would_refuse_become_null() -> None:
    (event,) = events(delivery("sent", "2.0.0", "250 ok"))
    odd = dataclasses.replace(
        event,
        dsn="9.9.9",
        client_ip="unknown",
        relay_ip="IPv6:2001:DB8::1",
        relay_port=70000,
        reply="250 ok\x00 with a NUL",
        recipient=None,
    )
    row = event_row(odd, TENANTS)
    assert row["dsn"] is None and row["client_ip"] is None
    assert row["relay_ip"] == "2001:db8::1" and row["relay_port"] is None
    assert row["detail"] == "250 ok with a NUL" and row["recipient"] is None


def test_relay_local_and_none() -> None:
    (event,) = events(delivery("sent", "2.0.0", "250 ok"))
    assert event_row(dataclasses.replace(event, relay_ip=None, relay_host="local"), TENANTS)[
        "remote_host"
    ] == "local"  # fmt: skip
    none = dataclasses.replace(event, relay_ip=None, relay_host=None, relay_port=None)
    assert event_row(none, TENANTS)["remote_host"] is None


# ---------------------------------------------------------------------- what follows


def test_a_hard_bounce_is_a_bounce_and_suppresses_for_the_senders_tenant() -> None:
    row = row_of(BOUNCED_511)
    found = follow_ups(row, 41)
    (bounce,) = found.bounces
    assert bounce[:8] == (
        41, "example.test", "bob@gmail.test", VERP, None, "5.1.1", "invalid_recipient", True
    )  # fmt: skip
    assert bounce[9] == "mx.gmail.test"  # reporting_mta
    (suppression,) = found.suppressions
    tenant, address, reason, source, dsn, at, note = suppression
    assert (tenant, address, reason, source, dsn) == (
        "example.test", "bob@gmail.test", "hard_bounce", 41, "5.1.1"
    )  # fmt: skip
    assert at == row["occurred_at"]
    assert "invalid_recipient" in note and MX in note
    assert not found.soft_bounces


def test_a_full_mailbox_deferral_is_one_soft_bounce() -> None:
    found = follow_ups(row_of(FULL), 7)
    assert not found.bounces and not found.suppressions
    (soft,) = found.soft_bounces
    assert soft["tenant"] == "example.test" and soft["address"] == "bob@gmail.test"
    assert (soft["dsn"], soft["source_event"]) == ("4.2.2", 7)
    # the message and host it belongs to: one soft bounce per message, whatever the retries
    assert (soft["origin_queue_id"], soft["host"]) == ("D53A72713E5", "h1")


def test_other_deferrals_count_for_nothing() -> None:
    assert not follow_ups(row_of(GREYLISTED), 1)
    rate = delivery("deferred", "4.7.28", "421 4.7.28 unusual rate of unsolicited mail")
    assert not follow_ups(row_of(rate), 1)


def test_a_soft_final_bounce_is_a_bounce_and_a_soft_bounce() -> None:
    full = delivery("bounced", "5.2.2", "552 5.2.2 mailbox full")
    found = follow_ups(row_of(full), 3)
    (bounce,) = found.bounces
    assert bounce[6:8] == ("mailbox_full", False)
    assert not found.suppressions and len(found.soft_bounces) == 1


def test_a_refusal_about_us_is_a_bounce_but_counts_against_nobody() -> None:
    blocked = delivery("bounced", "5.7.1", "554 5.7.1 Service unavailable; listed by Spamhaus")
    found = follow_ups(row_of(blocked), 3)
    assert found.bounces[0][6:8] == ("reputation_block", False)
    assert not found.suppressions and not found.soft_bounces


def test_an_expiry_is_never_hard() -> None:
    row = row_of(BOUNCED_511) | {"status": "expired", "bounce_class": "invalid_recipient"}
    found = follow_ups(row, 5)
    assert found.bounces[0][7] is False and not found.suppressions
    row = row_of(FULL) | {"status": "expired", "final": True, "bounce_class": "expired"}
    found = follow_ups(row, 5)
    assert found.bounces[0][6:8] == ("expired", False) and len(found.soft_bounces) == 1


def test_our_own_notices_and_feedback_addresses_suppress_nothing() -> None:
    assert not follow_ups(row_of(BOUNCED_511, sender=""), 1)
    ours = FeedbackAddresses.parse(["fbl@example.test", "@bounces.example.test"])
    assert "fbl@example.test" in ours and "x+y=z@bounces.example.test" in ours
    assert "bob@gmail.test" not in ours
    to_fbl = delivery("bounced", "5.1.1", "550 5.1.1 no such user", rcpt="FBL@example.test")
    assert not follow_ups(row_of(to_fbl), 1, ours)
    assert follow_ups(row_of(BOUNCED_511), 1, ours).suppressions


def test_feedback_addresses_refuse_a_bare_word() -> None:
    with pytest.raises(ValueError, match="neither an address"):
        FeedbackAddresses.parse(["postmaster"])


def test_handoffs_sends_and_refusals_have_no_follow_ups() -> None:
    assert not follow_ups(row_of(delivery("sent", "2.0.0", "250 ok")), 1)
    refusal = row_of(BOUNCED_511) | {"kind": "refusal", "status": "rejected"}
    assert not follow_ups(refusal, 1)
    handoff = row_of(BOUNCED_511) | {"kind": "handoff"}
    assert not follow_ups(handoff, 1)


def test_follow_up_statements_group_rows_by_table_bounces_first() -> None:
    stored = [(1, row_of(BOUNCED_511)), (2, row_of(FULL)), (3, row_of(GREYLISTED))]
    statements = follow_up_statements(stored)
    assert [sql for sql, _params in statements] == [BOUNCE_SQL, SUPPRESSION_SQL, SOFT_BOUNCE_SQL]
    assert [len(params) for _sql, params in statements] == [1, 1, 1]
    assert follow_up_statements([(3, row_of(GREYLISTED))]) == []


def test_the_soft_bounce_statement_skips_a_message_already_counted() -> None:
    assert "NOT EXISTS" in SOFT_BOUNCE_SQL and "origin_queue_id" in SOFT_BOUNCE_SQL
    assert "ON CONFLICT (tenant, address) DO NOTHING" in SUPPRESSION_SQL
    assert "ON CONFLICT (source_event) DO NOTHING" in BOUNCE_SQL


# ---------------------------------------------------------------------- the batch's SQL


def test_events_go_in_chunks_of_multi_row_values_returning_what_was_new() -> None:
    (event,) = events(delivery("sent", "2.0.0", "250 ok"))
    rows = [event_row(dataclasses.replace(event, key=f"k{n}"), TENANTS) for n in range(5)]
    statements = insert_events([*rows, rows[0]], chunk=2)  # a key twice: sent once
    assert [len(params) for _sql, params in statements] == [2 * 28, 2 * 28, 28]
    sql, params = statements[0]
    assert sql.startswith("INSERT INTO delivery_events (event_key, kind, final, status,")
    assert sql.count("(%s,") == 2
    assert sql.endswith("ON CONFLICT (event_key) DO NOTHING RETURNING id, event_key")
    assert params[0] == "k0" and params[28] == "k1"
    assert insert_events([]) == []


def test_the_state_is_written_whole_with_a_snapshot_and_only_the_cursor_between() -> None:
    track = Tracker()
    track.feed_journal("postfix/qmgr", f"D53A72713E5: from=<{VERP}>, size=1, nrcpt=1", T0, "h1")
    record = snapshot_record(track.snapshot(), "s=abc")
    sql, params = save_state("h1", "s=abc", 120, record)
    assert sql == STATE_SQL and "ON CONFLICT (host) DO UPDATE" in sql
    assert params[:2] == ("h1", "s=abc") and params[3] == 120
    assert json.loads(params[2])["cursor"] == "s=abc"
    assert save_state("h1", "s=def", 130, None) == (CURSOR_SQL, ("s=def", 130, "h1"))


def test_a_restart_resumes_at_the_snapshots_cursor_and_restores_it() -> None:
    track = Tracker()
    track.feed_journal("postfix/qmgr", f"D53A72713E5: from=<{VERP}>, size=1, nrcpt=1", T0, "h1")
    record = snapshot_record(track.snapshot(), "s=old")
    point = resume_point("s=new", json.dumps(record), 99)
    assert (point.cursor, point.committed, point.lines) == ("s=old", "s=new", 99)
    again = Tracker()
    assert point.snapshot is not None
    again.restore(point.snapshot)  # the extra key is no obstacle
    assert len(again) == 1
    bare = resume_point("s=new", {"something": "else"}, None)
    assert (bare.cursor, bare.snapshot, bare.lines) == ("s=new", None, 0)
