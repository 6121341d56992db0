"""`bulkmail retention`: roll the raw delivery events up into delivery_daily, then purge what is
older than its age.

    bulkmail retention --database-file FILE [--events-days 30] [--feedback-days 90]
                       [--reports-days 400] [--soft-bounce-days 7] [--batch 50000] [--dry-run]

Deletes, `--batch` rows per transaction: delivery events older than `--events-days` (the final
ones are added into delivery_daily by the same statement that deletes them, so a day is
counted exactly once whatever crashes), bounces, complaints and soft bounces older than
`--feedback-days` (soft bounces never inside `--soft-bounce-days`, the policy service's
window: give the same value), DMARC and TLS reports that ended before `--reports-days`, and
the raw feedback messages older than `--feedback-days` (those a kept report came from are
emptied, not deleted). Then records the run in retention_runs. Suppression rows are never
purged. The SQL is bulkmail.logic.feedback.retention's.

Prints one line per table with its counts; `--dry-run` counts what a run would delete, in a
read-only transaction, and changes nothing. One run at a time across the hosts (an advisory
lock): a second one says so and exits 0. The connection string is read from
`--database-file` (or $BULKMAIL_RETENTION_DATABASE), never printed; the
role needs SELECT and DELETE on the tables above, UPDATE on feedback_messages, INSERT and
UPDATE on delivery_daily and INSERT on retention_runs (the schema owner or the writer role).
Exit 1 when the database fails: the batches committed before stay done (each is whole), and
the next run goes on.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from bulkmail.logic.feedback.retention import (
    DEFAULT_BATCH,
    Cutoffs,
    RetentionAges,
    add_counts,
    cutoffs,
    dry_run_query,
    empty_counts,
    lock_query,
    purge_steps,
    retention_run,
    summary_lines,
    unlock_query,
)
from bulkmail.policy import conninfo_password, describe_error, read_conninfo

DATABASE_ENV = "BULKMAIL_RETENTION_DATABASE"


class LockHeld(Exception):
    """Another run holds the retention lock."""


def purge(conn: Any, cut: Cutoffs, batch: int, counts: dict[str, int]) -> int:
    """Run every batch on an autocommit psycopg connection, each in its own transaction, then
    record the run; its retention_runs id. `counts` is added to batch by batch, so a failure
    leaves in it what was committed."""
    with conn.cursor() as cursor:
        cursor.execute(*lock_query())
        if not cursor.fetchone()[0]:
            raise LockHeld
        try:
            for step in purge_steps(cut, batch):
                params = dict(step.params)
                while True:
                    with conn.transaction():
                        cursor.execute(step.sql, params)
                        taken, last_id, batch_counts = cursor.fetchone()
                    add_counts(counts, batch_counts)
                    if last_id is not None:
                        params["after"] = last_id
                    if taken < batch:
                        break
            with conn.transaction():
                cursor.execute(*retention_run(cut, counts))
                run_id = int(cursor.fetchone()[0])
        finally:
            cursor.execute(*unlock_query())
    return run_id


def dry_run(conn: Any, cut: Cutoffs) -> dict[str, int]:
    """What a run would delete, read in one read-only transaction."""
    conn.read_only = True
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute(*dry_run_query(cut))
        counted = cursor.fetchone()[0]
    counts = empty_counts()
    add_counts(counts, counted)
    return counts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = RetentionAges()
    parser.add_argument(
        "--database-file",
        type=Path,
        help=f"file holding the database's connection string (else ${DATABASE_ENV})",
    )
    parser.add_argument(
        "--events-days",
        type=float,
        default=defaults.events_days,
        help="delivery events kept, days (their final ones stay counted in delivery_daily)",
    )
    parser.add_argument(
        "--feedback-days",
        type=float,
        default=defaults.feedback_days,
        help="bounces, complaints, soft bounces and raw feedback messages kept, days",
    )
    parser.add_argument(
        "--reports-days",
        type=float,
        default=defaults.reports_days,
        help="DMARC and TLS reports kept after their end, days",
    )
    parser.add_argument(
        "--soft-bounce-days",
        type=float,
        default=defaults.soft_bounce_days,
        help="the policy service's soft-bounce window (its --soft-bounce-days): soft bounces "
        "are kept at least this long",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=DEFAULT_BATCH,
        help="rows per transaction (each batch holds its locks only while it runs)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="count what would be deleted; change nothing"
    )


def run(
    args: argparse.Namespace,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    connect: Callable[[str], Any] | None = None,
    now: datetime | None = None,
) -> int:
    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        ages = RetentionAges(
            args.events_days, args.feedback_days, args.reports_days, args.soft_bounce_days
        )
        cut = cutoffs(now or datetime.now(UTC), ages)
        purge_steps(cut, args.batch)  # checks --batch before connecting
    except ValueError as error:
        raise SystemExit(f"retention: {error}") from None
    try:
        conninfo = read_conninfo(args.database_file, command="retention", env=DATABASE_ENV)
    except SystemExit as error:
        raise SystemExit(error.code) from None
    try:
        import psycopg
    except ImportError:
        raise SystemExit(
            "retention: psycopg 3 is missing: install Debian's python3-psycopg"
        ) from None
    connect = connect or _connect
    counts = empty_counts()
    run_id = None
    try:
        with connect(conninfo) as conn:
            if args.dry_run:
                counts = dry_run(conn, cut)
            else:
                run_id = purge(conn, cut, args.batch, counts)
    except LockHeld:
        print("retention: another run holds the lock (bulkmail retention on another host); "
              "nothing done", file=out)  # fmt: skip
        return 0
    except psycopg.Error as error:
        print(f"retention: database error: {_describe(error, conninfo)}", file=err)
        if not args.dry_run and any(counts.values()):
            print("retention: the batches before it are committed; the next run goes on. "
                  "Done so far:", file=err)  # fmt: skip
            for line in summary_lines(cut, counts, done=True):
                print(f"  {line}", file=err)
        return 1
    for line in summary_lines(cut, counts, done=not args.dry_run):
        print(line, file=out)
    if run_id is None:
        print("dry run: nothing was changed", file=out)
    else:
        print(f"retention_runs: run {run_id} recorded", file=out)
    return 0


def _connect(conninfo: str) -> Any:
    import psycopg

    return psycopg.connect(
        conninfo, autocommit=True, connect_timeout=10, application_name="bulkmail-retention"
    )


def _describe(error: Exception, conninfo: str) -> str:
    """The error's first line, the password cut out."""
    try:
        password = conninfo_password(conninfo)
    except ValueError:
        password = ""
    return describe_error(error, password)
