"""bench-ingest's journal: every shape is one the ingester reads, with the events and
follow-ups a real campaign gives, none of them for a real tenant; and its figures."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import ingest_bench
from bulkmail.logic.feedback.ingest import follow_up_statements
from bulkmail.logic.feedback.postfix_log import Tracker
from bulkmail.logic.feedback.suppression import TenantMap
from ingest_bench import (
    OWN_HOSTS,
    as_journal,
    busiest_window,
    cleanup_statements,
    journal_entries,
    message_lines,
    percentile,
    shape_of,
)

from bulkmail.ingest import Ingester

TAG = "t1"


class MemoryStore:
    """Keeps the batches (events by key, follow-up rows by table)."""

    def __init__(self) -> None:
        self.events: dict[str, Mapping[str, Any]] = {}
        self.follow_ups: Counter[str] = Counter()
        self.tenants: set[str] = set()

    def load(self) -> None:
        return None

    def commit(
        self,
        rows: Sequence[Mapping[str, Any]],
        cursor: str,
        lines: int,
        snapshot: Mapping[str, Any] | None,
    ) -> int:
        stored = []
        for row in rows:
            if row["event_key"] not in self.events:
                self.events[row["event_key"]] = row
                stored.append((len(self.events), row))
        for sql, params in follow_up_statements(stored):
            table = sql.split()[2]
            self.follow_ups[table] += len(params)
            for one in params:  # each table's tenant column (ingest.py's tuples, the dict)
                tenant = one["tenant"] if isinstance(one, dict) else one[table == "bounces"]
                self.tenants.add(tenant)
        return len(stored)

    def close(self) -> None:
        pass


def ingest(count: int) -> tuple[MemoryStore, Ingester]:
    entries = journal_entries(count, TAG, time.time() - 7200)
    store = MemoryStore()
    tenants = TenantMap.load(ingest_bench.tenants(TAG))
    ingester = Ingester(store, Tracker(OWN_HOSTS), tenants, host="bench-t1")  # type: ignore[arg-type]
    ingester.run(as_journal(entries, "bench-t1", "bench"))
    return store, ingester


def test_every_message_gets_its_final_event_and_the_shapes_their_follow_ups() -> None:
    count = 20_000
    store, ingester = ingest(count)
    assert ingester.lines == count and not ingester.batch.lines
    rows = list(store.events.values())
    finals = Counter(row["status"] for row in rows if row["final"])
    kinds = Counter(row["kind"] for row in rows)
    assert kinds["handoff"] > 0 and kinds["refusal"] > 0
    assert finals["sent"] > 0 and finals["bounced"] > 0
    # every final delivery joined to its message's sender across the handoff
    assert all(row["sender"] and row["tenant"] == "bench-t1.test" for row in rows
               if row["kind"] == "delivery")  # fmt: skip
    assert all(row["host"] == "bench-t1" for row in rows)
    assert store.follow_ups["bounces"] > 0
    assert store.follow_ups["suppression"] > 0 and store.follow_ups["soft_bounces"] > 0
    assert store.tenants == {"bench-t1.test"}  # no real tenant is touched


def test_entries_are_in_time_order_and_messages_overlap() -> None:
    entries = journal_entries(5000, TAG, 1_000_000.0)
    stamps = [stamp for stamp, _identifier, _message in entries]
    assert stamps == sorted(stamps) and len(entries) == 5000
    assert len(set(stamps)) == len(stamps)


def test_the_shapes_add_up_and_each_has_lines() -> None:
    shapes = Counter(shape_of(n) for n in range(100))
    assert sum(shapes.values()) == 100 and shapes["bulk_sent"] == 60
    for number in range(100):
        assert message_lines(number, TAG)


def test_busiest_window_and_percentiles() -> None:
    stamps = [0.0, 0.5, 1.0, 1.1, 1.2, 1.3, 5.0]
    assert busiest_window(stamps, 1.0) == 5.0  # 0.5 .. 1.3
    assert busiest_window([], 10.0) == 0.0
    assert percentile([1.0, 2.0, 3.0], 0.99) == 3.0


def test_cleanup_names_only_the_scratch_host_tenant_and_sender() -> None:
    statements = cleanup_statements("bench-t1", TAG, "lag-t1@example.test")
    tables = [sql.split()[2] for sql, _params in statements]
    assert tables.index("bounces") < tables.index("delivery_events")
    assert tables[-1] == "delivery_events"
    for sql, params in statements:
        assert "WHERE" in sql and params
        assert set(params) <= {"bench-t1", "bench-t1.test", "lag-t1@example.test"}
