"""`bulkmail feedback`: one message a feedback address received, stored with what it says.

    bulkmail feedback --config FILE --database-file FILE [--unsubscribe-keys-file FILE]
                      [--unsubscribe-max-age-days N] --sender=S --recipient R < message

Postfix's pipe(8) runs it once per message and recipient, on the smtp tier, for every
feedback address (the VERP return paths, the FBL, DMARC, TLS-RPT and unsubscribe mailboxes):

    bulkmail-feedback unix - n n - 4 pipe flags=DRXq null_sender= user=bulkmail-feedback
      argv=/opt/bulkmail/bin/bulkmail feedback --config /etc/bulkmail/feedback.json
      --database-file /etc/bulkmail/feedback-db.conf
      --unsubscribe-keys-file /etc/bulkmail/unsubscribe-keys --sender=${sender}
      --recipient ${original_recipient}

with `bulkmail-feedback_destination_recipient_limit = 1` in main.cf (one ${original_recipient}
per process). What the message is and which rows it becomes is decided by
`bulkmail.logic.feedback.inbound.process` (the config file's format is documented there);
this module reads stdin, writes the rows in one transaction and answers Postfix by its exit
status:

- 0: stored (or stored before: the feedback_messages row is unique by the SHA-256 of the
  bytes and the envelope recipient, so a retried delivery that had committed writes nothing).
  A message nothing reads is stored too (kind unparsed): accepted mail is never lost, and
  never retried for ever. Rows the database refuses (a CHECK the parser did not foresee) are
  rolled back and the message is stored alone, unparsed, with the database's reason.
- 75 (EX_TEMPFAIL): the database is unreachable, the config, connection or keys file is
  unreadable, or a bug (its traceback on stderr): Postfix keeps the message and retries.

`--unsubscribe-keys-file` is the one-click endpoint's keys file (`bulkmail unsubscribe-web
--keys-file`: one hex or base64 key a line, the signing key first, every key verifies). With
it, mail to the List-Unsubscribe `mailto:` address is decided by its token: a token that
verifies unsubscribes the address it names for its tenant, a token that does not suppresses
nothing, and only mail with no token is trusted by its From. Without it every such message is
trusted by its From (see inbound.py). `--unsubscribe-max-age-days` is the endpoint's
`--max-age-days`, for those who set one: give both the same value. The keys are never printed.
The file must be readable by the pipe's account (root:bulkmail-feedback 0640): one it cannot
read defers every message, as a missing connection file does, rather than trust the From.

One line on stderr says what was done; Postfix logs a pipe's output only when it fails, so the
line matters for the 75s. The connection string is read from `--database-file` (libpq
key=value or a postgresql:// URI, `bulkmail.policy.read_conninfo`) and never printed; the role
needs INSERT on feedback_messages, bounces, suppression, soft_bounces, complaints,
dmarc_reports, dmarc_records and tls_reports, and USAGE on their identity sequences.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from bulkmail.logic.feedback.inbound import (
    KIND_UNPARSED,
    FeedbackConfig,
    FeedbackConfigError,
    Outcome,
    dmarc_record_statement,
    dmarc_report_statement,
    follow_up_statements,
    message_statement,
    process,
)
from bulkmail.policy import conninfo_password, describe_error, read_conninfo, read_keys_file

EX_OK = 0
EX_TEMPFAIL = 75  # sysexits.h: Postfix defers and retries
MAX_MESSAGE = 25 * 1024 * 1024
CONNECT_TIMEOUT = 5
STATEMENT_TIMEOUT_MS = 30000
PROG = "bulkmail feedback"


class DatabaseUnavailable(Exception):
    """The database could not be reached or lost the connection; safe to print."""


class Tempfail(Exception):
    """A reason to have Postfix retry (config unreadable...); the message is safe to print."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        required=True,
        help="JSON file: tenants, return_path_domains, senders, addresses (see inbound.py)",
    )
    parser.add_argument(
        "--database-file",
        type=Path,
        required=True,
        help="file holding the database's connection string (never logged)",
    )
    parser.add_argument(
        "--unsubscribe-keys-file",
        type=Path,
        help="the one-click token keys (unsubscribe-web's --keys-file): with it, a mailto "
        "unsubscribe is decided by its token, not by its From",
    )
    parser.add_argument(
        "--unsubscribe-max-age-days",
        type=int,
        default=None,
        help="refuse mailto tokens older than this, as unsubscribe-web's --max-age-days "
        "(default: never)",
    )
    parser.add_argument(
        "--sender",
        default="",
        help="the envelope sender (pipe(8)'s ${sender}; empty or MAILER-DAEMON: the null sender)",
    )
    parser.add_argument(
        "--recipient",
        required=True,
        help="the envelope recipient (pipe(8)'s ${original_recipient})",
    )
    parser.add_argument(
        "--max-size",
        type=int,
        default=MAX_MESSAGE,
        help="bytes of the message kept; a longer one is stored truncated, unparsed",
    )


def load_config(path: Path) -> FeedbackConfig:
    """The config file, or Tempfail naming the file and the problem."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise Tempfail(f"--config {path}: {error.strerror}") from None
    except ValueError as error:
        raise Tempfail(f"--config {path}: not JSON: {error}") from None
    try:
        return FeedbackConfig.load(data, str(path))
    except FeedbackConfigError as error:
        raise Tempfail(str(error)) from None


def load_unsubscribe_keys(path: Path | None) -> tuple[bytes, ...]:
    """The keys file's keys (parse_keys, as unsubscribe-web reads the same file), none without
    one; Tempfail naming the option, the file and the line, never a key."""
    if path is None:
        return ()
    try:
        return tuple(read_keys_file(path, "--unsubscribe-keys-file"))
    except ValueError as error:
        raise Tempfail(str(error)) from None


def read_message(stream: IO[bytes], limit: int) -> tuple[bytes, bool]:
    """At most `limit` bytes of the message, and whether there was more (read and dropped, so
    that Postfix's write does not fail on a closed pipe)."""
    data = stream.read(limit + 1)
    if len(data) <= limit:
        return data, False
    while stream.read(1 << 20):
        pass
    return data[:limit], True


def truncated_outcome(outcome: Outcome, limit: int) -> Outcome:
    """A message over the limit: its first `limit` bytes, unparsed, nothing else."""
    note = f"longer than {limit} bytes: stored truncated, not read"
    return Outcome(dataclasses.replace(outcome.message, kind=KIND_UNPARSED, note=note))


def unparsed_outcome(outcome: Outcome, why: str) -> Outcome:
    """The message alone, unparsed: what its rows could not be written for."""
    note = f"{outcome.kind} rows refused by the database ({why}); was: {outcome.message.note}"
    return Outcome(dataclasses.replace(outcome.message, kind=KIND_UNPARSED, note=note[:2000]))


def write_outcome(conn: Any, outcome: Outcome) -> bool:
    """Insert the outcome's rows on an open connection, in its current transaction; False when
    the message was stored before (nothing else is written then). The caller commits."""
    cursor = conn.cursor()
    sql, params = message_statement(outcome.message)
    cursor.execute(sql, params)
    row = cursor.fetchone()
    if row is None:
        return False
    message_row = row[0]
    for sql, params in follow_up_statements(outcome, message_row):
        cursor.execute(sql, params)
    for report in outcome.dmarc_reports:
        sql, params = dmarc_report_statement(report, message_row)
        cursor.execute(sql, params)
        found = cursor.fetchone()
        if found is not None and report.records:
            sql, rows = dmarc_record_statement(report, found[0])
            cursor.executemany(sql, rows)
    return True


def store(conninfo: str, outcome: Outcome, *, connect: Callable[..., Any] | None = None) -> str:
    """Write the outcome in one transaction: `stored`, `duplicate` or `stored unparsed` (the
    rows were refused and the message was stored alone). DatabaseUnavailable when the
    database cannot be reached or the connection breaks."""
    import psycopg

    password = _password(conninfo)
    if connect is None:
        connect = psycopg.connect
    try:
        conn = connect(
            conninfo,
            connect_timeout=CONNECT_TIMEOUT,
            application_name="bulkmail-feedback",
        )
    except psycopg.Error as error:
        raise DatabaseUnavailable(_describe(error, password)) from None
    try:
        try:
            conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
            written = write_outcome(conn, outcome)
            conn.commit()
            return "stored" if written else "duplicate"
        except (psycopg.IntegrityError, psycopg.DataError) as error:
            # the rows, not the database: keep the message alone rather than retry for ever
            conn.rollback()
            why = _describe(error, password)
            written = write_outcome(conn, unparsed_outcome(outcome, why))
            conn.commit()
            return f"stored unparsed ({why})" if written else "duplicate"
    except psycopg.OperationalError as error:
        raise DatabaseUnavailable(_describe(error, password)) from None
    finally:
        with contextlib.suppress(Exception):  # closing a broken connection
            conn.close()


def run(
    args: argparse.Namespace,
    *,
    stdin: IO[bytes] | None = None,
    stderr: IO[str] | None = None,
    now: datetime | None = None,
    connect: Callable[..., Any] | None = None,
) -> int:
    """One delivery; the exit status is Postfix's instruction (see the module docstring)."""
    err = stderr if stderr is not None else sys.stderr
    # flufl.bounce logs each detector that trips on broken mail: noise in Postfix's log
    logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)
    try:
        config = load_config(args.config)
        try:
            conninfo = read_conninfo(args.database_file, environ={}, command=None)
        except SystemExit as error:  # its message names the option, never the string
            raise Tempfail(str(error.code)) from None
        keys = load_unsubscribe_keys(args.unsubscribe_keys_file)
        max_age = args.unsubscribe_max_age_days
        if max_age is not None and max_age < 0:
            raise Tempfail(f"--unsubscribe-max-age-days {max_age}: give 0 or more days")
        raw, truncated = read_message(
            stdin if stdin is not None else sys.stdin.buffer, args.max_size
        )
        when = now or datetime.now(UTC)
        outcome = process(
            raw,
            args.sender,
            args.recipient,
            config,
            when,
            unsubscribe_keys=keys,
            unsubscribe_max_age_days=max_age,
        )
        if truncated:
            outcome = truncated_outcome(outcome, args.max_size)
        result = store(conninfo, outcome, connect=connect)
    except Tempfail as error:
        print(f"{PROG}: {error}; deferred", file=err)
        return EX_TEMPFAIL
    except DatabaseUnavailable as error:
        print(f"{PROG}: database unavailable ({error}); deferred", file=err)
        return EX_TEMPFAIL
    except ImportError:
        print(f"{PROG}: psycopg 3 is missing (Debian's python3-psycopg); deferred", file=err)
        return EX_TEMPFAIL
    except Exception:
        print(f"{PROG}: unexpected error, deferred:", file=err)
        traceback.print_exc(file=err)
        return EX_TEMPFAIL
    print(f"{PROG}: {result}: {outcome.summary()}", file=err)
    return EX_OK


def _password(conninfo: str) -> str:
    """The password in the string, to cut out of error messages; Tempfail when the string is
    not libpq syntax (the parser's message would quote it)."""
    try:
        return conninfo_password(conninfo)
    except ValueError:
        raise Tempfail(
            "the connection string in --database-file is not libpq syntax (key=value pairs or "
            "a postgresql:// URI); the parser's message is not shown, it may quote a password"
        ) from None


_describe = describe_error
