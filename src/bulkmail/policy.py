"""`bulkmail policy`: suppression at send time, over Postfix's policy delegation protocol.

    bulkmail policy --tenants FILE --database-file FILE [--listen 127.0.0.1:10040]
                    [--state-file /var/lib/bulkmail-policy/snapshot.jsonl | --no-state-file]
                    [--refresh-every 2] [--full-reload-every 600]
                    [--soft-bounce-threshold 3] [--soft-bounce-days 7]
                    [--erasure-keys-file FILE]

Postfix asks it about every recipient of mail that leaves through a listener taking mail to the
outside (port 25 from the trusted networks, 587 for the accounts), in the recipient
restrictions, which run after the relay restrictions' `reject_unauth_destination`:

    smtpd_recipient_restrictions =
        check_policy_service { inet:127.0.0.1:10040, default_action=DUNNO }

(in master.cf for submission: `-o smtpd_recipient_restrictions=...`; the lanes' internal
instances, which only take mail already asked about, need not ask again). A suppressed
recipient gets `554 5.7.1 <rcpt>: Recipient address rejected: rcpt is suppressed for
example.com: complaint on 2026-11-30`, which Postfix logs with the queue's context; the other
recipients of the same message go on. The decision is
`bulkmail.logic.feedback.suppression.decide` (tenants, global rows, soft bounces: see there).

`default_action=DUNNO` because the requirement is that mail keeps flowing: when this daemon is
down, stopped or too slow (`timeout`, 100 s by default; `timeout=5s` is plenty for answers in
microseconds), Postfix goes on as if it had answered DUNNO. Postfix's own default answers every
recipient `451 4.3.5` instead, and would queue the whole platform's mail on the clients for as
long as the daemon is away. Suppression is then not enforced: Postfix logs a warning for each
request it could not ask, and systemd restarts the daemon.

Answers come from a snapshot in memory: every request is a few dict lookups, on one asyncio
loop, with any number of requests per connection (Postfix keeps them open). A loader task
reads the `suppression` and `soft_bounces` tables (migration 0002) every `--refresh-every`
seconds, only the rows after the last id it saw (and ids skipped by transactions that had not
committed yet), and all of them every `--full-reload-every` seconds, which is when a deleted
row (a lifted suppression, `bulkmail forget`) stops refusing. When the database does not
answer, the daemon keeps answering from the last snapshot and logs that once, and once again
when it answers again.

The snapshot is also written to `--state-file` (JSON lines, rewritten at every full reload,
appended to in between) and read back at start, before the database is asked: a restart during
a database outage keeps refusing what was refused before, rather than mailing every
complainer and unknown address of the platform until the database is back. Without the file
and without the database the daemon still answers, DUNNO to everything, and logs that
suppression is not enforced. The file holds addresses: it is the service user's, mode 0600,
and it is rewritten from the database at every full reload, so an erasure reaches it too.

The database's connection string (libpq `key=value` or `postgresql://` URI) is read from
`--database-file` or `$BULKMAIL_POLICY_DATABASE`, never logged; the role it names needs
SELECT on the two tables only (the reader role), and gets a read-only session.

Erased people (`bulkmail forget`) stay in `suppression` as `hmac-sha256:<hex>` of their
address: with `--erasure-keys-file` (the same keys file as `bulkmail forget --keys-file`, one
hex or base64 key a line, every key tried so the first can rotate) a recipient is also looked
up by its hash, for the tenants that hold such rows only. Without the file those rows refuse
nobody, which is logged at every full reload that reads some. Keys are never logged.

Deployed (by the bulkmail_runtime role) as a systemd unit under a system account of its own
(`bulkmail-policy`), before Postfix, listening on loopback only; `StateDirectory=
bulkmail-policy` gives it /var/lib/bulkmail-policy (mode 0700) under ProtectSystem=strict; the
tenants file is `default_tenants()` of the model's sending domains (until the model has
tenants); the connection file is root's, readable by the account's group; Debian's
python3-psycopg must be installed. It raises its own open-files limit to the hard limit (1,000
Postfix connections), and its answers wait at most one chunk of rows (CHUNK) while a reload
runs; refusals are logged one line each.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from bulkmail.logic.feedback.suppression import (
    SOFT_BOUNCE_TABLE,
    SUPPRESSION_TABLE,
    Fetch,
    IdCursor,
    ProtocolError,
    RequestParser,
    SoftBouncePolicy,
    SoftBounceRow,
    SuppressionRow,
    SuppressionSnapshot,
    TenantMap,
    decide,
    fetch_query,
    format_response,
    map_rows,
    row_from_record,
)
from bulkmail.logic.feedback.unsubscribe import parse_keys

LOG = logging.getLogger("bulkmail.policy")
DEFAULT_LISTEN = "127.0.0.1:10040"
DEFAULT_STATE_FILE = Path("/var/lib/bulkmail-policy/snapshot.jsonl")
DATABASE_ENV = "BULKMAIL_POLICY_DATABASE"
STATE_FORMAT = "bulkmail-policy-snapshot"
BATCH = 1000  # rows per query
# Rows converted and applied per turn of the loop that answers Postfix: 100 rows are ~1.5 ms
# with Debian 12's pure-Python psycopg (15 us a row), then the waiting requests are answered.
CHUNK = 100
LOAD_TIMEOUT = 15.0  # a database that accepted the connection and then went silent
BACKLOG = 1024  # Postfix opens connections in bursts when many smtpd processes start

# One read of a table -> its rows, ascending ids. PostgresLoader in production; tests pass
# an in-memory one. An exception means "the database is unavailable" and its text is logged.
Load = Callable[[Fetch], Awaitable[Sequence[SuppressionRow | SoftBounceRow]]]


class DatabaseUnavailable(Exception):
    """The database could not be read; the message is safe to log (no password in it)."""


class PostgresLoader:
    """Reads the snapshot's rows from PostgreSQL with psycopg 3 (Debian's python3-psycopg).

    One connection, autocommit and read-only, opened at the first read and again after any
    failure; errors come out as DatabaseUnavailable with the password cut out.
    """

    def __init__(self, conninfo: str, *, connect_timeout: int = 5, statement_ms: int = 10000):
        self._password = conninfo_password(conninfo)
        self._conninfo = conninfo
        self._connect_timeout = connect_timeout
        self._statement_ms = statement_ms
        self._conn: Any = None

    async def __call__(self, fetch: Fetch) -> list[SuppressionRow | SoftBounceRow]:
        query, params = fetch_query(fetch)
        try:
            conn = await self._connection()
            cursor = await conn.execute(query, params)
            rows = []
            # psycopg converts rows as they are fetched: a chunk at a time, answering between
            while chunk := await cursor.fetchmany(CHUNK):
                rows += map_rows(fetch.table, chunk)
                await asyncio.sleep(0)
        except Exception as error:
            await self.close()
            raise DatabaseUnavailable(self._describe(error)) from None
        except BaseException:  # cancelled (the read timed out): the connection is unusable
            await self.close()
            raise
        return rows

    async def _connection(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=self._connect_timeout,
                application_name="bulkmail-policy",
            )
            await self._conn.execute("SET default_transaction_read_only = on")
            await self._conn.execute(f"SET statement_timeout = {int(self._statement_ms)}")
        return self._conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    def _describe(self, error: Exception) -> str:
        return describe_error(error, self._password)


class StateFile:
    """The snapshot on disk: a header line, then one JSON array per row.

    Rewritten (to a temporary file, renamed when complete) at every full reload, appended to
    with the rows read in between. A failure to write is logged once and does not stop the
    service: it only loses the snapshot for a restart during a database outage.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._new = path.with_name(path.name + ".new")
        self._rewrite: IO[str] | None = None
        self._appendable = False  # the file on disk is this process's last rewrite
        self._failing = False

    def load(self, snapshot: SuppressionSnapshot) -> bool:
        """Apply the file's rows to `snapshot`; False when there is no usable file."""
        try:
            with self.path.open(encoding="utf-8") as stream:
                header = json.loads(stream.readline() or "null")
                if not isinstance(header, dict) or header.get("format") != STATE_FORMAT:
                    LOG.warning("%s: not a snapshot file of this daemon; not read", self.path)
                    return False
                skipped = 0
                for line in stream:
                    try:
                        snapshot.apply(row_from_record(json.loads(line)))
                    except ValueError:
                        skipped += 1  # the last line of a write cut short, most often
        except FileNotFoundError:
            return False
        except (OSError, ValueError) as error:
            LOG.warning("%s: cannot read the snapshot: %s", self.path, error)
            return False
        if skipped:
            LOG.warning("%s: %d lines were not rows and were skipped", self.path, skipped)
        return True

    def start_rewrite(self) -> None:
        self.abandon_rewrite()
        try:
            self._rewrite = self._new.open("w", encoding="utf-8")
            header = {"format": STATE_FORMAT, "version": 1, "written_at": time.time()}
            self._rewrite.write(json.dumps(header) + "\n")
        except OSError as error:
            self._failed(error)
            self._rewrite = None

    def write(self, rows: Sequence[SuppressionRow | SoftBounceRow]) -> None:
        """Rows just read: into the rewrite in progress, else onto the file on disk."""
        if not rows:
            return
        lines = "".join(json.dumps(row.record(), separators=(",", ":")) + "\n" for row in rows)
        try:
            if self._rewrite is not None:
                self._rewrite.write(lines)
            elif self._appendable:
                with self.path.open("a", encoding="utf-8") as stream:
                    stream.write(lines)
        except OSError as error:
            self._failed(error)
            self.abandon_rewrite()
            self._appendable = False

    async def finish_rewrite(self) -> None:
        stream, self._rewrite = self._rewrite, None
        if stream is None:
            return
        try:
            stream.flush()
            # fsync can take long on a busy disk: not on the loop that answers Postfix
            await asyncio.to_thread(os.fsync, stream.fileno())
            stream.close()
            os.chmod(self._new, 0o600)
            os.replace(self._new, self.path)
        except OSError as error:
            stream.close()
            self._failed(error)
            return
        self._appendable = True
        if self._failing:
            LOG.warning("%s: written again", self.path)
            self._failing = False

    def abandon_rewrite(self) -> None:
        stream, self._rewrite = self._rewrite, None
        if stream is not None:
            stream.close()
            with contextlib.suppress(OSError):
                self._new.unlink()

    def _failed(self, error: OSError) -> None:
        if not self._failing:
            LOG.warning(
                "%s: cannot write the snapshot (%s); a restart while the database is down "
                "would start without it",
                self.path,
                error.strerror or error,
            )
            self._failing = True


class PolicyService:
    """The policy server: answers from `snapshot`, which `refresh()` keeps up to date."""

    def __init__(
        self,
        tenants: TenantMap,
        *,
        load: Load,
        soft_policy: SoftBouncePolicy | None = None,
        state: StateFile | None = None,
        clock: Callable[[], float] = time.time,
        full_reload_every: float = 600.0,
        batch: int = BATCH,
        load_timeout: float = LOAD_TIMEOUT,
        hash_keys: Sequence[bytes] = (),
    ) -> None:
        self.tenants = tenants
        self.hash_keys = tuple(hash_keys)
        self.load = load
        self.soft_policy = soft_policy or SoftBouncePolicy()
        self.state = state
        self.clock = clock
        self.full_reload_every = full_reload_every
        self.batch = batch
        self.load_timeout = load_timeout
        self.snapshot = self._new_snapshot()
        self.cursors = self._new_cursors()
        self.enforcing = False  # a snapshot is loaded (from the file or the database)
        self.from_database = False  # the snapshot is this process's read of the database
        self.database_up: bool | None = None  # None: not asked yet
        self.last_full_reload = 0.0
        self.requests = 0
        self.refused = 0

    def _new_snapshot(self) -> SuppressionSnapshot:
        return SuppressionSnapshot(self.soft_policy, self.hash_keys)

    @staticmethod
    def _new_cursors() -> dict[str, IdCursor]:
        return {SUPPRESSION_TABLE: IdCursor(), SOFT_BOUNCE_TABLE: IdCursor()}

    def restore(self) -> None:
        """Load the state file, before serving: what was refused before a restart still is."""
        if self.state is None:
            return
        snapshot = self._new_snapshot()
        gc.disable()  # as during a full reload
        try:
            loaded = self.state.load(snapshot)
        finally:
            gc.freeze()
            gc.enable()
        if loaded:
            self.snapshot, self.enforcing = snapshot, True
            LOG.info(
                "restored %s from %s, until the database answers",
                self._counts(snapshot),
                self.state.path,
            )

    # -- answering ---------------------------------------------------------------------------

    def answer(self, request: Mapping[str, str]) -> str:
        """The action for one request; a refusal is logged with its reason."""
        self.requests += 1
        decision = decide(request, self.snapshot, self.tenants, self.clock())
        if decision.refusal is not None:
            self.refused += 1
            LOG.info(
                "refused %s (sender <%s>, client %s, instance %s): %s",
                decision.refusal.address,
                request.get("sender", ""),
                request.get("client_address", "-"),
                request.get("instance", "-"),
                decision.action.removeprefix("REJECT 5.7.1 "),
            )
        return decision.action

    def connection(self) -> PolicyConnection:
        """A protocol for one connection (`loop.create_server(service.connection, ...)`)."""
        return PolicyConnection(self)

    # -- loading -----------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Read what is new (or everything, when a full reload is due); raises when the
        database cannot be read, leaving the snapshot as it was (a full reload is all or
        nothing; an incremental one keeps the batches it applied)."""
        now = self.clock()
        full = not self.from_database or now - self.last_full_reload >= self.full_reload_every
        if not full:
            for table in (SUPPRESSION_TABLE, SOFT_BOUNCE_TABLE):
                await self._read(table, self.snapshot, self.cursors[table], now)
            return
        started = time.monotonic()
        # A million new rows would start full collections that scan them all, stalling the
        # answers; after the reload they are frozen (refcounting still frees the old ones).
        gc.disable()
        snapshot, cursors = self._new_snapshot(), self._new_cursors()
        if self.state is not None:
            self.state.start_rewrite()
        try:
            for table in (SUPPRESSION_TABLE, SOFT_BOUNCE_TABLE):
                await self._read(table, snapshot, cursors[table], now)
        except BaseException:
            if self.state is not None:
                self.state.abandon_rewrite()
            raise
        finally:
            gc.freeze()
            gc.enable()
        replaced, self.snapshot, self.cursors = self.snapshot, snapshot, cursors
        self.enforcing = self.from_database = True
        self.last_full_reload = now
        if self.state is not None:
            await self.state.finish_rewrite()
        while replaced.shrink(10 * CHUNK):
            await asyncio.sleep(0)  # freeing a million rows at once would pause the answers
        LOG.info(
            "read %s from the database in %.1f s",
            self._counts(snapshot),
            time.monotonic() - started,
        )
        if snapshot.erased and not self.hash_keys:
            LOG.warning(
                "%d suppression rows are erased addresses (hmac-sha256:...) and there is no "
                "--erasure-keys-file: those people are NOT refused",
                snapshot.erased,
            )

    async def _read(
        self, table: str, snapshot: SuppressionSnapshot, cursor: IdCursor, now: float
    ) -> None:
        since = now - self.soft_policy.window
        while True:
            fetch = Fetch(table, cursor.after, cursor.holes(now), self.batch, since)
            rows = await asyncio.wait_for(self.load(fetch), self.load_timeout)
            for start in range(0, len(rows), CHUNK):
                if start:
                    await asyncio.sleep(0)  # the requests waiting are answered in between
                chunk = rows[start : start + CHUNK]
                snapshot.apply_all(chunk)
                if self.state is not None:
                    self.state.write(chunk)
            progressed = cursor.advance((row.id for row in rows), now)
            if len(rows) < self.batch or not progressed:
                return
            await asyncio.sleep(0)  # requests waiting get their turn between two batches

    async def keep_fresh(self, every: float) -> None:
        """Refresh every `every` seconds, forever; log when the database goes and comes back."""
        while True:
            try:
                await self.refresh()
            except Exception as error:
                self._database_failed(error)
            else:
                self._database_answered()
            await asyncio.sleep(every)

    def _database_failed(self, error: Exception) -> None:
        if self.database_up is False:
            return
        self.database_up = False
        reason = str(error) or type(error).__name__
        if self.enforcing:
            LOG.warning(
                "database unavailable (%s): answering from the last snapshot (%s) until it "
                "answers again",
                reason,
                self._counts(self.snapshot),
            )
        else:
            LOG.warning(
                "database unavailable (%s) and no snapshot: suppression is NOT enforced, "
                "every recipient gets DUNNO, until it answers",
                reason,
            )

    def _database_answered(self) -> None:
        if self.database_up is False:
            LOG.warning("database answers again: %s", self._counts(self.snapshot))
        self.database_up = True

    @staticmethod
    def _counts(snapshot: SuppressionSnapshot) -> str:
        return (
            f"{snapshot.suppressions} suppressions, "
            f"{snapshot.soft_addresses} addresses with soft bounces"
        )


class PolicyConnection(asyncio.Protocol):
    """One Postfix connection: any number of requests, answered in order, until it closes.

    A protocol rather than streams: an answer is written from the callback that received its
    request, with no task switch in between (the per-request cost is the parser and a dict
    lookup). A client that does not speak the protocol is dropped; so is one whose request
    made this code fail: Postfix then applies its default_action, and reconnects.
    """

    def __init__(self, service: PolicyService) -> None:
        self.service = service
        self.parser = RequestParser()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        assert transport is not None
        try:
            requests = self.parser.feed(data)
            if requests:
                answer = self.service.answer
                transport.write(b"".join(format_response(answer(r)) for r in requests))
        except ProtocolError as error:
            LOG.warning("dropping a client that does not speak the policy protocol: %s", error)
            transport.close()
        except Exception:
            LOG.exception("dropping a client: answering its request failed")
            transport.close()

    # A client that sends without reading its answers is not read from until it does.
    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()


def load_tenants(path: Path) -> TenantMap:
    try:
        return TenantMap.load(json.loads(path.read_text(encoding="utf-8")), str(path))
    except (OSError, ValueError) as error:
        raise SystemExit(f"policy: {path}: {error}") from error


def read_keys_file(path: Path, option: str) -> list[bytes]:
    """The keys of a keys file (one hex or base64 key a line, `parse_keys`), the first first.
    ValueError beginning with `option` and naming the file (and the line), never a key: each
    command wraps it in its own way of failing. Every keys file the commands take is read
    here (the one-click keys, the erasure keys)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise ValueError(f"{option} {path}: {reason}") from None
    try:
        return parse_keys(text, str(path))
    except ValueError as error:
        raise ValueError(f"{option} {error}") from None


def load_erasure_keys(path: Path | None) -> tuple[bytes, ...]:
    """The keys erased addresses were hashed with (`bulkmail forget --keys-file`'s file);
    SystemExit naming the file and the line, never a key."""
    if path is None:
        return ()
    try:
        return tuple(read_keys_file(path, "--erasure-keys-file"))
    except ValueError as error:
        raise SystemExit(f"policy: {error}") from None


def read_conninfo(
    path: Path | None,
    environ: Mapping[str, str] | None = None,
    *,
    command: str | None = "policy",
    env: str = DATABASE_ENV,
) -> str:
    """The connection string from the file, else from the environment variable `env`
    (never logged); errors begin with `command` (none when it is None). Every command that
    talks to PostgreSQL reads it here."""
    environ = os.environ if environ is None else environ
    prefix = f"{command}: " if command else ""
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise SystemExit(f"{prefix}--database-file {path}: {error.strerror}") from None
        if not text:
            raise SystemExit(f"{prefix}--database-file {path} is empty")
        return text
    if environ.get(env, "").strip():
        return environ[env].strip()
    raise SystemExit(
        f"{prefix}no database: give its connection string in --database-file FILE or "
        f"${env} (libpq key=value pairs or a postgresql:// URI)"
    )


def conninfo_password(conninfo: str) -> str:
    """The password in a libpq connection string ("" without one), to cut out of error
    messages. ValueError when the string is not libpq syntax: the parser's own message is
    not passed on, it quotes the string, password and all."""
    import psycopg
    import psycopg.conninfo

    try:
        return psycopg.conninfo.conninfo_to_dict(conninfo).get("password") or ""
    except psycopg.Error:
        raise ValueError(
            "the database connection string is not libpq syntax (key=value pairs or a "
            "postgresql:// URI); the parser's message is not shown, it may quote a password"
        ) from None


def describe_error(error: BaseException, password: str) -> str:
    """`Type: first line of the message`, with the password cut out: what the commands log
    or print of a database error."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0] if lines else 'no message'}"
    return text.replace(password, "***") if password else text


def raise_open_files_limit(wanted: int = 65536) -> None:
    """1,000 Postfix connections and more: the soft limit is 1024 unless the unit says more."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tenants",
        type=Path,
        required=True,
        help='JSON file: {"domains": {sending domain: tenant}} (the model\'s)',
    )
    parser.add_argument("--listen", default=DEFAULT_LISTEN, help="host:port to listen on")
    parser.add_argument(
        "--database-file",
        type=Path,
        help=f"file holding the database's connection string (else ${DATABASE_ENV})",
    )
    state = parser.add_mutually_exclusive_group()
    state.add_argument(
        "--state-file",
        type=Path,
        default=DEFAULT_STATE_FILE,
        help="where the snapshot is kept for a restart while the database is down",
    )
    state.add_argument(
        "--no-state-file",
        dest="state_file",
        action="store_const",
        const=None,
        help="keep no snapshot on disk (a restart without the database enforces nothing)",
    )
    parser.add_argument(
        "--refresh-every", type=float, default=2.0, help="seconds between reads of new rows"
    )
    parser.add_argument(
        "--full-reload-every",
        type=float,
        default=600.0,
        help="seconds between reads of every row (deleted rows stop refusing then)",
    )
    parser.add_argument(
        "--soft-bounce-threshold",
        type=int,
        default=SoftBouncePolicy.threshold,
        help="soft bounces within the window that suppress a recipient",
    )
    parser.add_argument(
        "--soft-bounce-days",
        type=float,
        default=SoftBouncePolicy.window_days,
        help="the soft-bounce window, days",
    )
    parser.add_argument(
        "--erasure-keys-file",
        type=Path,
        help="the keys `bulkmail forget` hashes erased addresses with (its --keys-file), one "
        "hex or base64 a line: erased people are refused by their hash",
    )


async def serve(service: PolicyService, listen: str, refresh_every: float) -> None:
    host, _sep, port = listen.rpartition(":")
    service.restore()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(service.connection, host, int(port), backlog=BACKLOG)
    this = asyncio.current_task()
    if this is not None:  # systemd stops it with SIGTERM: leave through the finally blocks
        loop.add_signal_handler(signal.SIGTERM, this.cancel)
    bound = server.sockets[0].getsockname()
    LOG.info("answering policy requests on %s:%d", bound[0], bound[1])
    if not service.enforcing:
        LOG.warning("no snapshot yet: every recipient gets DUNNO until the database answers")
    refresher = asyncio.create_task(service.keep_fresh(refresh_every))
    try:
        async with server:
            await server.serve_forever()
    finally:
        refresher.cancel()


def run(args: argparse.Namespace) -> int:
    # Straight to stderr (journald): a logging thread was measured worse, its GIL hand-offs
    # delaying the answers more than the writes it took off the loop.
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    tenants = load_tenants(args.tenants)
    try:
        soft_policy = SoftBouncePolicy(args.soft_bounce_threshold, args.soft_bounce_days)
    except ValueError as error:
        raise SystemExit(f"policy: {error}") from None
    hash_keys = load_erasure_keys(args.erasure_keys_file)
    conninfo = read_conninfo(args.database_file)
    try:
        load = PostgresLoader(conninfo)
    except ImportError:
        raise SystemExit(
            "policy: psycopg 3 is missing: install Debian's python3-psycopg "
            "(or the wheel's [db] extra)"
        ) from None
    except ValueError as error:
        raise SystemExit(f"policy: {error}") from None
    raise_open_files_limit()
    state = StateFile(args.state_file) if args.state_file is not None else None
    service = PolicyService(
        tenants,
        load=load,
        soft_policy=soft_policy,
        state=state,
        full_reload_every=args.full_reload_every,
        hash_keys=hash_keys,
    )
    if hash_keys:
        LOG.info("erased addresses are refused by their hash (%d keys)", len(hash_keys))
    with contextlib.suppress(asyncio.CancelledError):
        asyncio.run(serve(service, args.listen, args.refresh_every))
    LOG.info("stopped")
    return 0
