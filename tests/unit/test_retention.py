"""`bulkmail retention`: batches, transactions, the run's record and its errors, against a fake
psycopg connection (the SQL itself is test_feedback_retention's, and was run on PostgreSQL)."""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bulkmail import retention

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


class FakeConnection:
    """Answers each statement from a script keyed by the table its SQL deletes from; records
    what ran and in which transaction."""

    def __init__(self, batches: dict[str, list[tuple[int, int | None, dict[str, int]]]]) -> None:
        self.batches = {table: list(rows) for table, rows in batches.items()}
        self.locked = True
        self.fail_on: str | None = None
        self.read_only = False
        self.log: list[tuple[int | None, str, dict[str, Any]]] = []
        self.transactions = 0
        self.open_transaction: int | None = None
        self.committed: list[int] = []
        self._result: Any = None

    def __enter__(self) -> FakeConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    @contextmanager
    def transaction(self) -> Iterator[None]:
        assert self.open_transaction is None, "a transaction inside a transaction"
        self.transactions += 1
        self.open_transaction = self.transactions
        try:
            yield
            self.committed.append(self.transactions)
        finally:
            self.open_transaction = None

    @contextmanager
    def cursor(self) -> Iterator[FakeConnection]:
        yield self

    def execute(self, sql: str, params: dict[str, Any]) -> None:
        self.log.append((self.open_transaction, sql, dict(params)))
        if self.fail_on and f"DELETE FROM {self.fail_on} " in sql:
            raise psycopg.OperationalError("server closed the connection; password=hunter2")
        if "pg_try_advisory_lock" in sql:
            self._result = (self.locked,)
        elif "pg_advisory_unlock" in sql:
            self._result = (True,)
        elif sql.startswith("INSERT INTO retention_runs"):
            self._result = (17,)
        elif sql.startswith("SELECT jsonb_build_object("):
            self._result = ({"delivery_events": 5, "rolled_up": 4, "bounces": 1},)
        else:
            table = next(t for t in self.batches if f"DELETE FROM {t} " in sql)
            queue = self.batches[table]
            self._result = queue.pop(0) if queue else (0, None, {table: 0})

    def fetchone(self) -> Any:
        return self._result

    def statements(self, text: str) -> list[tuple[int | None, str, dict[str, Any]]]:
        return [entry for entry in self.log if text in entry[1]]


def arguments(tmp_path: Path, *extra: str) -> argparse.Namespace:
    conninfo = tmp_path / "database"
    conninfo.write_text("host=db dbname=bulkmail user=bulkmail_owner password=hunter2\n")
    parser = argparse.ArgumentParser()
    retention.add_arguments(parser)
    return parser.parse_args(["--database-file", str(conninfo), *extra])


def run(conn: FakeConnection, args: argparse.Namespace) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = retention.run(args, stdout=out, stderr=err, connect=lambda _conninfo: conn, now=NOW)
    return code, out.getvalue(), err.getvalue()


TABLES = (
    "delivery_events",
    "bounces",
    "complaints",
    "soft_bounces",
    "dmarc_reports",
    "tls_reports",
    "feedback_messages",
)


def test_each_batch_is_its_own_transaction_until_one_takes_fewer_rows(tmp_path: Path) -> None:
    conn = FakeConnection(
        {
            "delivery_events": [
                (3, None, {"delivery_events": 3, "rolled_up": 2}),
                (3, None, {"delivery_events": 3, "rolled_up": 3}),
                (1, None, {"delivery_events": 1, "rolled_up": 0}),
            ],
            "bounces": [(2, None, {"bounces": 2})],
            "complaints": [],
            "soft_bounces": [],
            "dmarc_reports": [(1, None, {"dmarc_reports": 1, "dmarc_records": 4})],
            "tls_reports": [],
            "feedback_messages": [
                (3, 40, {"feedback_messages": 2, "feedback_messages_emptied": 1}),
                (0, None, {"feedback_messages": 0, "feedback_messages_emptied": 0}),
            ],
        }
    )
    code, out, err = run(conn, arguments(tmp_path, "--batch", "3"))
    assert (code, err) == (0, "")
    events = conn.statements("DELETE FROM delivery_events ")
    assert len(events) == 3
    assert [entry[0] for entry in events] == [1, 2, 3]  # one transaction per batch
    assert all(entry[2]["batch"] == 3 for entry in events)
    # the feedback messages' walk goes on from the last id the batch took
    feedback = conn.statements("DELETE FROM feedback_messages ")
    assert [entry[2]["after"] for entry in feedback] == [0, 40]
    [(_tx, _sql, record)] = conn.statements("INSERT INTO retention_runs")
    assert record["rolled_up"] == 5
    assert '"delivery_events": 7' in record["deleted"] and '"dmarc_records": 4' in record["deleted"]
    assert conn.committed == list(range(1, conn.transactions + 1))
    # the lock is taken before the first batch and given back after the record
    assert "pg_try_advisory_lock" in conn.log[0][1] and conn.log[0][0] is None
    assert "pg_advisory_unlock" in conn.log[-1][1]
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines[:7]] == list(TABLES)
    assert lines[0].startswith("delivery_events: 7 deleted (before 2026-11-01T03:00:00+00:00)")
    assert "5 final events added into delivery_daily" in lines[0]
    assert "2 deleted" in lines[6] and "1 emptied" in lines[6]
    assert lines[-1] == "retention_runs: run 17 recorded"


def test_a_run_while_another_holds_the_lock_does_nothing(tmp_path: Path) -> None:
    conn = FakeConnection({table: [] for table in TABLES})
    conn.locked = False
    code, out, _err = run(conn, arguments(tmp_path))
    assert code == 0
    assert "another run holds the lock" in out
    assert not conn.statements("DELETE FROM")
    assert not conn.statements("INSERT INTO retention_runs")


def test_a_dry_run_counts_in_a_read_only_transaction_and_changes_nothing(tmp_path: Path) -> None:
    conn = FakeConnection({table: [] for table in TABLES})
    code, out, _err = run(conn, arguments(tmp_path, "--dry-run"))
    assert code == 0 and conn.read_only
    assert len(conn.log) == 1 and conn.log[0][1].startswith("SELECT jsonb_build_object(")
    assert out.splitlines()[0].startswith("delivery_events: 5 would delete")
    assert "4 final events to add into delivery_daily" in out
    assert out.splitlines()[-1] == "dry run: nothing was changed"


def test_a_database_error_exits_1_without_the_password_and_says_what_was_done(
    tmp_path: Path,
) -> None:
    conn = FakeConnection(
        {"delivery_events": [(1, None, {"delivery_events": 1, "rolled_up": 1})]}
        | {table: [] for table in TABLES[1:]}
    )
    conn.fail_on = "complaints"
    code, out, err = run(conn, arguments(tmp_path, "--batch", "5"))
    assert (code, out) == (1, "")
    assert err.startswith("retention: database error: OperationalError: server closed")
    assert "hunter2" not in err
    assert "the batches before it are committed" in err
    assert "delivery_events: 1 deleted" in err
    assert not conn.statements("INSERT INTO retention_runs")
    assert "pg_advisory_unlock" in conn.log[-1][1]


def test_an_unreachable_database_is_reported_without_the_password(tmp_path: Path) -> None:
    args = arguments(tmp_path)
    args.database_file.write_text("host=127.0.0.1 port=1 dbname=x user=x password=hunter2")
    err = io.StringIO()
    assert retention.run(args, stdout=io.StringIO(), stderr=err, now=NOW) == 1
    assert err.getvalue().startswith("retention: database error: OperationalError:")
    assert "hunter2" not in err.getvalue()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--events-days", "0"), "retention: --events-days 0.0: give a number of days above 0"),
        (("--batch", "0"), "retention: --batch 0: give a whole number of rows, at least 1"),
    ],
)
def test_bad_arguments_name_their_option(tmp_path: Path, extra: tuple[str, ...], message: str):
    with pytest.raises(SystemExit, match=message):
        run(FakeConnection({}), arguments(tmp_path, *extra))


def test_a_missing_connection_file_is_named(tmp_path: Path) -> None:
    args = arguments(tmp_path)
    args.database_file = tmp_path / "missing"
    with pytest.raises(SystemExit, match=r"^retention: --database-file .*missing"):
        run(FakeConnection({}), args)


def test_the_defaults() -> None:
    parser = argparse.ArgumentParser()
    retention.add_arguments(parser)
    args = parser.parse_args([])
    assert (args.events_days, args.feedback_days, args.reports_days) == (30, 90, 400)
    assert (args.soft_bounce_days, args.batch, args.dry_run) == (7, 50000, False)
