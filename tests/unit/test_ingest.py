"""`bulkmail ingest`: exactly once across failed commits, restarts and kills, driven with
journal entries as dicts and a store in memory that fails on demand."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from bulkmail.logic.feedback.ingest import ResumePoint, follow_up_statements, resume_point
from bulkmail.logic.feedback.postfix_log import Tracker
from bulkmail.logic.feedback.suppression import TenantMap, default_tenants

from bulkmail.ingest import Ingester, StoreUnavailable, add_arguments, run

TENANTS = TenantMap.load(default_tenants(["example.test"]))
T0 = datetime(2026, 12, 1, 17, 0, tzinfo=UTC).timestamp()
OWN = ("10.25.0.10",)
VERP = "news+x=gmail.test@bounces.example.test"
MX = "mx.gmail.test[198.51.100.25]:25"


class MemoryStore:
    """What PostgreSQL keeps, with the same rules: a key stored once, follow-ups for new
    events only, everything of a batch or nothing."""

    def __init__(self) -> None:
        self.events: dict[str, dict[str, Any]] = {}
        self.ids: dict[str, int] = {}
        self.follow_ups: list[tuple[str, Any]] = []
        self.soft_counted: set[tuple[str, str, str, str]] = set()
        self.state: dict[str, Any] | None = None
        self.fail = 0  # the next n calls fail
        self.commits = 0

    def load(self) -> ResumePoint | None:
        self._maybe_fail()
        if self.state is None:
            return None
        return resume_point(self.state["cursor"], self.state["tracker"], self.state["lines"])

    def commit(
        self,
        rows: Sequence[Mapping[str, Any]],
        cursor: str,
        lines: int,
        snapshot: Mapping[str, Any] | None,
    ) -> int:
        self._maybe_fail()
        stored = []
        for row in rows:
            if row["event_key"] not in self.events:
                self.ids[row["event_key"]] = event_id = len(self.ids) + 1
                self.events[row["event_key"]] = dict(row)
                stored.append((event_id, row))
        for sql, params in follow_up_statements(stored):
            table = sql.split()[2]
            for one in params:
                if table == "soft_bounces":  # SOFT_BOUNCE_SQL's NOT EXISTS: once per message
                    message = (one["tenant"], one["address"], one["origin_queue_id"], one["host"])
                    if message in self.soft_counted:
                        continue
                    self.soft_counted.add(message)
                self.follow_ups.append((table, one))
        tracker = snapshot if snapshot is not None else (self.state or {}).get("tracker")
        self.state = {"cursor": cursor, "tracker": tracker, "lines": lines}
        self.commits += 1
        return len(stored)

    def close(self) -> None:
        pass

    def _maybe_fail(self) -> None:
        if self.fail:
            self.fail -= 1
            raise StoreUnavailable("OperationalError: connection refused")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def journal_line(n: int, identifier: str, message: str) -> dict[str, Any]:
    return {
        "SYSLOG_IDENTIFIER": identifier,
        "MESSAGE": message,
        "__REALTIME_TIMESTAMP": int((T0 + n) * 1e6),
        "_HOSTNAME": "smtp1",
        "__CURSOR": f"s=1;i={n:x}",
    }


def message_lines(number: int, outcome: str) -> list[tuple[str, str]]:
    qid = f"ABCDEF{number:04X}"
    rcpt = f"u{number}@gmail.test"
    verdicts = {
        "sent": f"dsn=2.0.0, status=sent (250 2.0.0 OK {number})",
        "bounced": "dsn=5.1.1, status=bounced (host mx said: 550 5.1.1 no such user)",
        "full": "dsn=4.2.2, status=deferred (host mx said: 452 4.2.2 mailbox over quota)",
    }
    lines = [
        ("postfix/smtpd", f"{qid}: client=app.internal[10.25.0.100]"),
        ("postfix/cleanup", f"{qid}: message-id=<m{number}@example.test>"),
        ("postfix/qmgr", f"{qid}: from=<{VERP}>, size=100, nrcpt=1 (queue active)"),
        ("kernel", "unrelated noise"),
        (
            "postfix/smtp",
            f"{qid}: to=<{rcpt}>, relay={MX}, delay=1, delays=0.1/0/0.5/0.4, " + verdicts[outcome],
        ),
    ]
    if outcome == "full":  # retried an hour later: still full
        lines.append(lines[-1])
    lines.append(("postfix/qmgr", f"{qid}: removed"))
    return lines


def journal(count: int = 30) -> list[dict[str, Any]]:
    """`count` messages, a third bounced, a third with a full mailbox, as journal entries."""
    lines: list[tuple[str, str]] = []
    for number in range(count):
        lines += message_lines(number, ("sent", "bounced", "full")[number % 3])
    return [journal_line(n, ident, text) for n, (ident, text) in enumerate(lines)]


def after(entries: list[dict[str, Any]], cursor: str | None) -> Iterator[dict[str, Any]]:
    """The entries after `cursor`, as open_journal + journal_entries would give them."""
    start = 0
    if cursor is not None:
        cursors = [e["__CURSOR"] for e in entries]
        start = cursors.index(cursor) + 1
    yield from entries[start:]


def ingester(store: MemoryStore, clock: Clock | None = None, **options: Any) -> Ingester:
    clock = clock or Clock()
    return Ingester(
        store,
        Tracker(OWN),
        TENANTS,
        host="smtp1",
        clock=clock,
        wall=clock,
        sleep=clock.sleep,
        **options,
    )


def reference(entries: list[dict[str, Any]]) -> MemoryStore:
    store = MemoryStore()
    ingester(store, batch_lines=7).run(entries)
    return store


def tables(store: MemoryStore) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table, _params in store.follow_ups:
        counts[table] = counts.get(table, 0) + 1
    return counts


def test_a_run_writes_every_event_and_its_follow_ups() -> None:
    entries = journal()
    store = reference(entries)
    assert len(store.events) == 30 + 10  # one per message, and the full mailbox's retry
    assert tables(store) == {"bounces": 10, "suppression": 10, "soft_bounces": 10}
    assert store.state is not None and store.state["cursor"] == entries[-1]["__CURSOR"]
    assert store.state["lines"] == len(entries)
    final = store.events[next(iter(store.events))]
    assert final["message_id"] == "m0@example.test" and final["tenant"] == "example.test"


def test_a_failed_commit_keeps_the_batch_and_the_retry_writes_each_event_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    entries = journal()
    store = MemoryStore()
    store.fail = 3
    clock = Clock()
    with caplog.at_level(logging.WARNING, "bulkmail.ingest"):
        ingester(store, clock, batch_lines=5).run(entries)
    assert store.events.keys() == reference(entries).events.keys()
    assert tables(store) == {"bounces": 10, "suppression": 10, "soft_bounces": 10}
    downs = [r for r in caplog.records if "unavailable" in r.getMessage()]
    backs = [r for r in caplog.records if "answers again" in r.getMessage()]
    assert len(downs) == 1 and len(backs) == 1  # once when it goes, once when it is back
    assert "connection refused" in downs[0].getMessage()


def test_the_database_down_at_start_is_waited_for() -> None:
    store = MemoryStore()
    store.fail = 4
    clock = Clock()
    worker = ingester(store, clock)
    assert worker.resume() == (None, None)
    assert clock.now == 1000.0 + 1 + 2 + 4 + 8  # backoff: 1 s doubling


def test_reading_stops_while_a_full_batch_waits_for_the_database() -> None:
    entries = journal()
    store = MemoryStore()
    store.fail = 1_000_000
    clock = Clock()
    worker = ingester(store, clock, batch_lines=5, max_pending_lines=20)
    held: list[int] = []

    def sleep(seconds: float) -> None:
        held.append(worker.batch.lines)
        if len(held) == 3:
            store.fail = 0  # back after three waits
        clock.sleep(seconds)

    worker.sleep = sleep
    worker.run(iter(entries))
    assert held == [20, 20, 20]  # the reader waited; never more than the bound in memory
    assert store.events.keys() == reference(entries).events.keys()


@pytest.mark.parametrize("snapshot_seconds", [0.0, 1e9])
@pytest.mark.parametrize("kill_after", [1, 12, 40, 77])
def test_a_kill_between_batches_and_a_restart_neither_lose_nor_double(
    snapshot_seconds: float, kill_after: int
) -> None:
    """kill -9 after `kill_after` entries: what was committed stays, the rest is read again.
    With snapshots only at the first commit (1e9 s) the restart replays from there."""
    entries = journal()
    store = MemoryStore()
    clock = Clock()
    first = ingester(store, clock, batch_lines=5, snapshot_seconds=snapshot_seconds)
    first.resume()
    for entry in entries[:kill_after]:
        first.feed(entry)
        if first.due():
            first.flush()
    # killed: the pending batch is gone with the process
    second = ingester(store, clock, batch_lines=5, snapshot_seconds=snapshot_seconds)
    start, _committed = second.resume()
    second.run(after(entries, start))
    expected = reference(entries)
    assert store.events.keys() == expected.events.keys()
    assert store.events == expected.events  # the same rows: the context survived the restart
    assert sorted(map(repr, store.follow_ups)) == sorted(map(repr, expected.follow_ups))
    assert store.state is not None and store.state["lines"] == len(entries)


def test_a_restart_after_a_clean_stop_reads_only_what_is_new() -> None:
    entries = journal()
    store = MemoryStore()
    ingester(store).run(entries[:50])
    commits = store.commits
    worker = ingester(store)
    start, committed = worker.resume()
    assert start == committed == entries[49]["__CURSOR"]  # stopped: the snapshot is current
    worker.run(after(entries, start))
    assert store.events.keys() == reference(entries).events.keys()
    assert store.commits > commits


def test_stop_commits_what_is_pending() -> None:
    entries = journal()
    store = MemoryStore()
    worker = ingester(store, batch_lines=10_000, batch_seconds=1e9)

    def stream() -> Iterator[dict[str, Any]]:
        for n, entry in enumerate(entries):
            if n == 20:
                worker.stop()
            yield entry

    worker.run(stream())
    assert store.state is not None and store.state["cursor"] == entries[20]["__CURSOR"]


def test_stop_gives_up_after_the_grace_period(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    store.fail = 1_000
    clock = Clock()
    worker = ingester(store, clock, batch_lines=10_000, batch_seconds=1e9)
    for entry in journal()[:10]:
        worker.feed(entry)
    with caplog.at_level(logging.WARNING, "bulkmail.ingest"):
        assert worker.finish(grace=5.0) is False
    assert clock.now - 1000.0 <= 5.0
    assert "read again at the next start" in caplog.text


def test_a_batch_is_committed_every_interval_while_lines_arrive() -> None:
    store = MemoryStore()
    clock = Clock()
    worker = ingester(store, clock, batch_lines=10_000, batch_seconds=0.5)
    for entry in journal()[:4]:
        clock.now += 0.2
        worker.feed(entry)
        if worker.due():
            worker.flush()
    assert store.commits == 1  # lines at 0.2, 0.4, 0.6: committed at 0.6 (>= 0.5 after 0.2)


def test_ticks_without_entries_commit_the_tail() -> None:
    store = MemoryStore()
    clock = Clock()
    worker = ingester(store, clock, batch_lines=10_000, batch_seconds=0.5)
    entries: list[dict[str, Any] | None] = [*journal()[:3]]

    def stream() -> Iterator[dict[str, Any] | None]:
        yield from entries
        for _tick in range(3):
            clock.now += 0.5
            yield None
        worker.stop()
        yield None

    worker.run(stream())
    assert store.commits == 1 and store.state is not None


def test_entries_in_the_forms_python_systemd_gives() -> None:
    store = MemoryStore()
    entries = journal()[:7]
    entries[4] = dict(entries[4])
    entries[4]["MESSAGE"] = entries[4]["MESSAGE"].encode()  # not UTF-8: bytes
    stamp = entries[4]["__REALTIME_TIMESTAMP"] / 1e6
    entries[4]["__REALTIME_TIMESTAMP"] = datetime.fromtimestamp(stamp)  # naive local time
    ingester(store).run(entries)
    rows = list(store.events.values())
    assert len(rows) == 1
    assert rows[0]["occurred_at"] == datetime.fromtimestamp(stamp, UTC)


def test_the_progress_line_says_lines_events_and_lag(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    clock = Clock()
    clock.now = T0 + 100
    worker = ingester(store, clock, batch_lines=2)
    entries = journal()

    def stream() -> Iterator[dict[str, Any]]:
        for entry in entries:
            clock.now += 1.0
            yield entry

    with caplog.at_level(logging.INFO, "bulkmail.ingest"):
        worker.run(stream())
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("read ")]
    assert progress and "behind the journal" in progress[0]


def test_the_command_line(tmp_path: Any) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    tenants = tmp_path / "tenants.json"
    tenants.write_text('{"domains": {"example.test": "example.test"}}')
    args = parser.parse_args(["--tenants", str(tenants), "--database-file", "/nonexistent"])
    assert (args.batch_lines, args.batch_seconds, args.snapshot_seconds) == (2000, 0.5, 30.0)
    with pytest.raises(SystemExit, match=r"ingest: --database-file /nonexistent"):
        run(args)
    bad = parser.parse_args(["--tenants", str(tmp_path / "missing.json")])
    with pytest.raises(SystemExit, match=r"^ingest: .*missing.json"):
        run(bad)
    args = parser.parse_args(["--tenants", str(tenants), "--feedback-addresses", "postmaster"])
    with pytest.raises(SystemExit, match="--feedback-addresses"):
        run(args)
    args = parser.parse_args(["--tenants", str(tenants), "--batch-lines", "0"])
    with pytest.raises(SystemExit, match="--batch-lines"):
        run(args)
