"""`bulkmail ingest`: the local Postfix journal -> delivery_events, exactly once.

    bulkmail ingest --database-file FILE --tenants FILE [--bounce-rules FILE] [--host NAME]
                    [--own-hosts ADDR,...] [--feedback-addresses ADDR|@DOMAIN,...]
                    [--batch-lines 2000] [--batch-seconds 0.5] [--snapshot-seconds 30]

Reads the journal's mail facility (SYSLOG_FACILITY=2) with python-systemd, feeds every entry
whose SYSLOG_IDENTIFIER starts with `postfix` to `postfix_log.Tracker`, and writes the events
it completes with what follows from them (bounces, hard-bounce suppression, soft bounces:
bulkmail.logic.feedback.ingest) to PostgreSQL.

Exactly once. A batch (`--batch-lines` entries or `--batch-seconds`, whichever comes first:
at least one commit per interval while lines arrive) is one transaction: its events, their
follow-up rows and `ingest_state` (the cursor of the last entry fed, the lines counter). The
tracker's state (the queue ids in flight: every deferred message's, tens of megabytes on a
busy host) goes with a batch at most every `--snapshot-seconds` (0: with every batch), with
the cursor it belongs to inside it. A restart restores that snapshot and reads on from the
entry after its cursor; the entries between it and the last committed cursor are read again
and give the same events with the same `event_key`, which `ON CONFLICT DO NOTHING` stores once
and whose follow-ups are not written again. So a kill -9 anywhere loses nothing and doubles
nothing. With no state for the host yet it starts at the journal's head: the first start
ingests whatever the journal still holds. When the journal no longer holds the saved entry
(vacuumed while the ingester was stopped) it goes on from the next entry there is, and says so.

The database down: the uncommitted batch is kept and new entries are added to it until it
holds `MAX_PENDING_LINES` (the journal keeps the rest); the commit is retried with backoff
(1 s doubling to 10 s); the outage is logged once, and its end once with how many events had
waited. It never exits because of the database. A row the database refuses (a value its
CHECKs reject) is logged and skipped, one by one, rather than holding up every later batch.
SIGTERM commits what is pending (trying for 5 s) and exits 0. While lines arrive a line is
logged every 60 s: lines read, events written, the lag behind the journal.

The connection string is read from `--database-file` (or $BULKMAIL_INGEST_DATABASE), never
logged; the role needs SELECT, INSERT, UPDATE on ingest_state and INSERT on delivery_events,
bounces, suppression, soft_bounces (SELECT on delivery_events and soft_bounces for the
soft-bounce check and RETURNING). Deployed as a systemd unit on every smtp host, as a system
account in the `systemd-journal` group (to read the journal), no state directory (the state
is in the database); Debian's python3-systemd and python3-psycopg.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import signal
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from bulkmail.logic.adapters.bounce_rule_file import load_bounce_rules
from bulkmail.logic.feedback.classify import BounceRuleError, Rule
from bulkmail.logic.feedback.ingest import (
    LOAD_STATE_SQL,
    FeedbackAddresses,
    ResumePoint,
    event_row,
    follow_up_statements,
    insert_events,
    resume_point,
    save_state,
    snapshot_record,
)
from bulkmail.logic.feedback.postfix_log import Tracker
from bulkmail.logic.feedback.suppression import TenantMap
from bulkmail.policy import conninfo_password, describe_error, load_tenants, read_conninfo

DATABASE_ENV = "BULKMAIL_INGEST_DATABASE"

LOG = logging.getLogger("bulkmail.ingest")
MAIL_FACILITY = "2"  # syslog's LOG_MAIL, Postfix's syslog_facility default
IDENTIFIER_PREFIX = "postfix"
MAX_PENDING_LINES = 200_000  # the journal holds the rest while the database is away
RETRY_FIRST, RETRY_MAX = 1.0, 10.0
STOP_GRACE = 5.0  # SIGTERM: seconds to try committing the last batch
PROGRESS_EVERY = 60.0


class StoreUnavailable(Exception):
    """The database could not take the batch; the message is safe to log."""


class StateMissing(StoreUnavailable):
    """The host's ingest_state row is gone: the next commit must write it whole."""


class Store(Protocol):
    """Where batches go: PostgresStore, or an in-memory one in the tests."""

    def load(self) -> ResumePoint | None:
        """This host's ingest_state, or None; raises StoreUnavailable."""

    def commit(
        self,
        rows: Sequence[Mapping[str, Any]],
        cursor: str,
        lines: int,
        snapshot: Mapping[str, Any] | None,
    ) -> int:
        """Store the batch in one transaction; how many events were new. Raises
        StoreUnavailable (nothing of the batch is stored then)."""

    def close(self) -> None: ...


# ---------------------------------------------------------------------- the loop


@dataclass
class Batch:
    """What was read since the last commit."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    lines: int = 0
    cursor: str | None = None
    started: float = 0.0  # monotonic time of its first line


class Ingester:
    """Journal entries in, committed batches out. `run()` takes any iterable of entries
    (dicts with SYSLOG_IDENTIFIER, MESSAGE, __REALTIME_TIMESTAMP, _HOSTNAME, __CURSOR), and
    None for "nothing new for now", so the tests drive it without a journal."""

    def __init__(
        self,
        store: Store,
        tracker: Tracker,
        tenants: TenantMap,
        rules: Sequence[Rule] | None = None,
        *,
        host: str,
        batch_lines: int = 2000,
        batch_seconds: float = 0.5,
        snapshot_seconds: float = 30.0,
        max_pending_lines: int = MAX_PENDING_LINES,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.tracker = tracker
        self.tenants = tenants
        self.rules = rules
        self.host = host
        self.batch_lines = batch_lines
        self.batch_seconds = batch_seconds
        self.snapshot_seconds = snapshot_seconds
        self.max_pending_lines = max_pending_lines
        self.clock, self.wall, self.sleep = clock, wall, sleep
        self.batch = Batch()
        self.lines = 0  # entries read in total (ingest_state.lines)
        self.events_written = 0
        self.stopping = False
        self.database_up: bool | None = None
        self._retry_at = 0.0
        self._retry_delay = RETRY_FIRST
        self._last_snapshot: float | None = None  # None: the next commit writes one
        self._newest = 0.0  # the newest entry's timestamp
        self._progress_at = 0.0
        self._progress_lines = 0
        self._progress_events = 0

    # -- start -------------------------------------------------------------------------------

    def resume(self) -> tuple[str | None, str | None]:
        """Read this host's state (waiting for the database as long as it takes) and restore
        the tracker; (the cursor to read after, the last committed cursor). (None, None):
        no state, start at the journal's head."""
        while not self.stopping:
            try:
                point = self.store.load()
            except StoreUnavailable as error:
                self._failed(error, waiting=0)
                self.sleep(self._backoff())
                continue
            self._answered()
            break
        else:
            return None, None
        if point is None:
            LOG.info("no saved state for %s: reading the journal from its head", self.host)
            return None, None
        if point.snapshot is not None:
            try:
                self.tracker.restore(point.snapshot)
            except (ValueError, TypeError) as error:
                LOG.warning("the saved tracker state is not usable (%s): starting without", error)
            else:
                self.lines = int(point.snapshot.get("lines", point.lines))
                LOG.info(
                    "resuming %s: %d queue ids in flight, replaying from the snapshot's entry",
                    self.host,
                    len(self.tracker),
                )
                return point.cursor, point.committed
        self.lines = point.lines
        return point.committed, point.committed

    # -- reading -----------------------------------------------------------------------------

    def feed(self, entry: Mapping[str, Any]) -> None:
        """One journal entry into the batch."""
        batch = self.batch
        if not batch.lines:
            batch.started = self.clock()
        batch.lines += 1
        self.lines += 1
        batch.cursor = entry.get("__CURSOR", batch.cursor)
        stamp = entry.get("__REALTIME_TIMESTAMP")
        if isinstance(stamp, datetime):
            timestamp = stamp.timestamp()
        elif isinstance(stamp, (int, float)):
            timestamp = stamp / 1e6  # microseconds, as the journal counts
        else:
            return
        if timestamp > self._newest:
            self._newest = timestamp
        identifier = entry.get("SYSLOG_IDENTIFIER")
        if not isinstance(identifier, str) or not identifier.startswith(IDENTIFIER_PREFIX):
            return
        message = entry.get("MESSAGE")
        if isinstance(message, bytes):  # not UTF-8: python-systemd leaves the bytes
            message = message.decode("utf-8", "replace")
        if not isinstance(message, str):
            return
        host = entry.get("_HOSTNAME")
        events = self.tracker.feed_journal(
            identifier, message, timestamp, host if isinstance(host, str) else self.host
        )
        for event in events:
            batch.rows.append(event_row(event, self.tenants, self.rules))

    def due(self) -> bool:
        """Whether the batch should be committed now."""
        batch = self.batch
        if not batch.lines or self.clock() < self._retry_at:
            return False
        return batch.lines >= self.batch_lines or self.clock() - batch.started >= self.batch_seconds

    def flush(self) -> bool:
        """Commit the batch; False when the database did not take it (kept for the retry)."""
        batch = self.batch
        if not batch.lines or batch.cursor is None:
            return True
        now = self.clock()
        snapshot = None
        if self._last_snapshot is None or now - self._last_snapshot >= self.snapshot_seconds:
            snapshot = {**snapshot_record(self.tracker.snapshot(), batch.cursor)}
            snapshot["lines"] = self.lines
        try:
            written = self.store.commit(batch.rows, batch.cursor, self.lines, snapshot)
        except StateMissing as error:
            self._last_snapshot = None  # written whole at the next attempt, right away
            LOG.warning("%s", error)
            return False
        except StoreUnavailable as error:
            self._failed(error, waiting=len(batch.rows))
            self._retry_at = now + self._backoff()
            return False
        self._answered(len(batch.rows))
        if snapshot is not None:
            self._last_snapshot = now
        self.events_written += written
        self.batch = Batch()
        return True

    def run(self, entries: Iterable[Mapping[str, Any] | None]) -> None:
        """Feed `entries` until they end or stop() is called, then commit what is left."""
        for entry in entries:
            if entry is not None:
                self.feed(entry)
            if self.due():
                self.flush()
            # The database is away and the batch is full: stop reading until it takes it.
            while self.batch.lines >= self.max_pending_lines and not self.stopping:
                self.sleep(max(0.0, self._retry_at - self.clock()))
                self._retry_at = 0.0
                self.flush()
            self._progress()
            if self.stopping:
                break
        self.finish()

    def stop(self) -> None:
        """SIGTERM: leave the loop at the next entry (the reader wakes every batch interval)."""
        self.stopping = True

    def finish(self, grace: float = STOP_GRACE) -> bool:
        """Commit what is pending, trying for `grace` seconds; whether it was committed."""
        deadline = self.clock() + grace
        while self.batch.lines:
            self._retry_at = 0.0
            if self.flush():
                break
            if self.clock() + 0.5 > deadline:
                LOG.warning(
                    "stopping with %d lines (%d events) not committed: they are read again "
                    "at the next start",
                    self.batch.lines,
                    len(self.batch.rows),
                )
                return False
            self.sleep(0.5)
        return True

    # -- reporting ---------------------------------------------------------------------------

    def _progress(self) -> None:
        now = self.clock()
        if now - self._progress_at < PROGRESS_EVERY:
            return
        lines = self.lines - self._progress_lines
        events = self.events_written - self._progress_events
        if lines and self._progress_at:
            LOG.info(
                "read %d lines, wrote %d events in %.0f s; %.1f s behind the journal; "
                "%d queue ids in flight",
                lines,
                events,
                now - self._progress_at,
                max(0.0, self.wall() - self._newest),
                len(self.tracker),
            )
        self._progress_at = now
        self._progress_lines, self._progress_events = self.lines, self.events_written

    def _backoff(self) -> float:
        delay = self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, RETRY_MAX)
        return delay

    def _failed(self, error: Exception, waiting: int) -> None:
        if self.database_up is not False:
            LOG.warning(
                "database unavailable (%s): keeping %d events and reading on; retrying",
                error,
                waiting,
            )
        self.database_up = False

    def _answered(self, waited: int = 0) -> None:
        if self.database_up is False:
            LOG.warning("database answers again: %d events were waiting, committed", waited)
        self.database_up = True
        self._retry_delay = RETRY_FIRST


# ---------------------------------------------------------------------- PostgreSQL


class PostgresStore:
    """Batches into PostgreSQL with psycopg 3: one connection, autocommit off, opened at the
    first use and again after any failure. Errors come out as StoreUnavailable with the
    password cut out of the message."""

    def __init__(
        self,
        conninfo: str,
        host: str,
        feedback: FeedbackAddresses | None = None,
        rules: Sequence[Rule] | None = None,
        *,
        connect_timeout: int = 5,
        statement_ms: int = 60_000,
    ) -> None:
        self._password = conninfo_password(conninfo)
        self._conninfo = conninfo
        self.host = host
        self.feedback = feedback
        self.rules = rules
        self._connect_timeout = connect_timeout
        self._statement_ms = statement_ms
        self._conn: Any = None

    def _connection(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self._conninfo,
                autocommit=False,
                connect_timeout=self._connect_timeout,
                application_name="bulkmail-ingest",
            )
            self._conn.execute(f"SET statement_timeout = {int(self._statement_ms)}")
            self._conn.commit()
        return self._conn

    def load(self) -> ResumePoint | None:
        import psycopg

        try:
            conn = self._connection()
            row = conn.execute(LOAD_STATE_SQL, (self.host,)).fetchone()
            conn.rollback()
        except psycopg.Error as error:
            self.close()
            raise StoreUnavailable(self._describe(error)) from None
        if row is None:
            return None
        try:
            return resume_point(row[0], row[1], row[2])
        except ValueError as error:
            LOG.warning("ingest_state.tracker of %s is not readable (%s)", self.host, error)
            return resume_point(row[0], None, row[2])

    def commit(
        self,
        rows: Sequence[Mapping[str, Any]],
        cursor: str,
        lines: int,
        snapshot: Mapping[str, Any] | None,
    ) -> int:
        import psycopg

        try:
            conn = self._connection()
            try:
                with conn.cursor() as cur:
                    written = self._write(cur, rows, cursor, lines, snapshot, careful=False)
            except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as error:
                # A value the database refuses: find it, skip it, store the rest.
                conn.rollback()
                LOG.warning("the batch was refused (%s): storing it row by row", error)
                with conn.cursor() as cur:
                    written = self._write(cur, rows, cursor, lines, snapshot, careful=True)
            conn.commit()
        except StoreUnavailable:
            self._rollback()
            raise
        except psycopg.Error as error:
            self.close()
            raise StoreUnavailable(self._describe(error)) from None
        return written

    def _write(
        self,
        cur: Any,
        rows: Sequence[Mapping[str, Any]],
        cursor: str,
        lines: int,
        snapshot: Mapping[str, Any] | None,
        *,
        careful: bool,
    ) -> int:
        by_key = {row["event_key"]: row for row in rows}
        stored: list[tuple[int, Mapping[str, Any]]] = []
        statements = insert_events(rows, chunk=1 if careful else 500)
        for sql, params in statements:
            if not self._execute(cur, sql, params, careful):
                continue
            stored += [(event_id, by_key[key]) for event_id, key in cur.fetchall()]
        for sql, params_list in follow_up_statements(stored, self.feedback, self.rules):
            if careful:
                for params in params_list:
                    self._execute(cur, sql, params, careful)
            else:
                cur.executemany(sql, params_list)
        sql, params = save_state(self.host, cursor, lines, snapshot)
        cur.execute(sql, params)
        if cur.rowcount == 0:
            raise StateMissing(f"ingest_state has no row for {self.host}: writing it whole")
        return len(stored)

    @staticmethod
    def _execute(cur: Any, sql: str, params: Any, careful: bool) -> bool:
        if not careful:
            cur.execute(sql, params)
            return True
        import psycopg

        cur.execute("SAVEPOINT ingest_row")
        try:
            cur.execute(sql, params)
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as error:
            cur.execute("ROLLBACK TO SAVEPOINT ingest_row")
            LOG.warning("skipped a row the database refuses: %s", str(error).splitlines()[0])
            return False
        cur.execute("RELEASE SAVEPOINT ingest_row")
        return True

    def _rollback(self) -> None:
        if self._conn is not None:
            try:
                self._conn.rollback()
            except Exception:
                self.close()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _describe(self, error: Exception) -> str:
        return describe_error(error, self._password)


# ---------------------------------------------------------------------- the journal


def open_journal(
    after: str | None, *, command: str = "ingest", log: logging.Logger = LOG
) -> tuple[Any, Mapping[str, Any] | None]:
    """The local journal's mail facility, placed after the entry at cursor `after` (at the
    head without one); and the first entry to feed when that entry is gone from it.
    `command` and `log` are the caller's (bulkmail archive reads the same entries)."""
    try:
        from systemd import journal
    except ImportError:
        raise SystemExit(
            f"{command}: python-systemd is missing: install Debian's python3-systemd"
        ) from None
    # The stamp as the journal's integer microseconds: no naive local datetime to convert.
    reader = journal.Reader(flags=journal.LOCAL_ONLY, converters={"__REALTIME_TIMESTAMP": int})
    reader.add_match(SYSLOG_FACILITY=MAIL_FACILITY)
    if after is None:
        reader.seek_head()
        return reader, None
    reader.seek_cursor(after)
    entry = reader.get_next()
    if entry and not reader.test_cursor(after):
        log.warning(
            "the journal no longer holds the saved entry (vacuumed or rotated while stopped): "
            "reading on from the oldest entry after it; lines in between are lost"
        )
        return reader, entry
    return reader, None


def journal_entries(
    reader: Any,
    first: Mapping[str, Any] | None,
    stopping: Callable[[], bool],
    wait_seconds: float,
) -> Iterator[Mapping[str, Any] | None]:
    """The entries as they come; None after each wait with nothing new (a tick)."""
    if first is not None:
        yield first
    while not stopping():
        entry = reader.get_next()
        if entry:
            yield entry
            continue
        try:
            reader.wait(wait_seconds)
        except OSError as error:  # a signal during the wait
            if error.errno != errno.EINTR:
                raise
        yield None


# ---------------------------------------------------------------------- the command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-file",
        type=Path,
        help=f"file holding the database's connection string (else ${DATABASE_ENV})",
    )
    parser.add_argument(
        "--tenants",
        type=Path,
        required=True,
        help='JSON file: {"domains": {sending domain: tenant}} (the model\'s)',
    )
    parser.add_argument(
        "--bounce-rules", type=Path, help="the operator's bounce rules (YAML), before the defaults"
    )
    parser.add_argument(
        "--host",
        help="this host's name in ingest_state (default: the system's host name)",
    )
    parser.add_argument(
        "--own-hosts",
        default="",
        help="comma-separated addresses of our Postfix hosts: a delivery to one is a handoff",
    )
    parser.add_argument(
        "--feedback-addresses",
        default="",
        help="comma-separated addresses (name@domain) and domains (@domain) that are ours: "
        "their bounces suppress nothing",
    )
    parser.add_argument(
        "--batch-lines", type=int, default=2000, help="journal entries per transaction at most"
    )
    parser.add_argument(
        "--batch-seconds", type=float, default=0.5, help="seconds between commits at most"
    )
    parser.add_argument(
        "--snapshot-seconds",
        type=float,
        default=30.0,
        help="seconds between saves of the tracker's state (0: with every batch)",
    )


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if args.batch_lines < 1:
        raise SystemExit(f"ingest: --batch-lines {args.batch_lines}: at least 1")
    if not args.batch_seconds > 0:
        raise SystemExit(f"ingest: --batch-seconds {args.batch_seconds}: more than 0")
    if args.snapshot_seconds < 0:
        raise SystemExit(f"ingest: --snapshot-seconds {args.snapshot_seconds}: 0 or more")
    try:
        tenants = load_tenants(args.tenants)
    except SystemExit as error:
        raise SystemExit(f"ingest: {str(error.code).removeprefix('policy: ')}") from None
    try:
        rules = load_bounce_rules(args.bounce_rules)
    except BounceRuleError as error:
        raise SystemExit(f"ingest: --bounce-rules {error}") from None
    try:
        feedback = FeedbackAddresses.parse(_split(args.feedback_addresses))
    except ValueError as error:
        raise SystemExit(f"ingest: --feedback-addresses: {error}") from None
    try:
        conninfo = read_conninfo(args.database_file, command="ingest", env=DATABASE_ENV)
    except SystemExit as error:
        raise SystemExit(error.code) from None
    host = args.host or socket.gethostname()
    try:
        store = PostgresStore(conninfo, host, feedback, rules)
    except ImportError:
        raise SystemExit("ingest: psycopg 3 is missing: install Debian's python3-psycopg") from None
    except ValueError as error:
        raise SystemExit(f"ingest: {error}") from None
    # Check python-systemd before waiting for the database: a missing package is no outage.
    try:
        import systemd.journal  # noqa: F401
    except ImportError:
        raise SystemExit(
            "ingest: python-systemd is missing: install Debian's python3-systemd"
        ) from None
    ingester = Ingester(
        store,
        Tracker(_split(args.own_hosts), identifier_prefix=IDENTIFIER_PREFIX),
        tenants,
        rules,
        host=host,
        batch_lines=args.batch_lines,
        batch_seconds=args.batch_seconds,
        snapshot_seconds=args.snapshot_seconds,
    )
    signal.signal(signal.SIGTERM, lambda *_: ingester.stop())
    signal.signal(signal.SIGINT, lambda *_: ingester.stop())
    after, _committed = ingester.resume()
    if not ingester.stopping:
        reader, first = open_journal(after)
        LOG.info("reading the journal of %s", host)
        ingester.run(journal_entries(reader, first, lambda: ingester.stopping, args.batch_seconds))
    else:
        ingester.finish()
    store.close()
    LOG.info("stopped after %d lines, %d events written", ingester.lines, ingester.events_written)
    return 0
