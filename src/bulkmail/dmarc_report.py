"""`bulkmail dmarc-report DOMAIN`: what the DMARC aggregate reports say, and whether p= can move.

    bulkmail dmarc-report DOMAIN [--database-file FILE] [--days 7] [--json]
                                 [--min-share 0.005] [--min-pass-rate 0.98]

Reads the dmarc_reports and dmarc_records rows `bulkmail feedback` stored for DOMAIN whose
period ended within the last `--days`, and prints per source IP the messages, their share, and
the aligned DKIM, aligned SPF and DMARC pass rates, then the verdict on moving the policy one
step (none -> quarantine -> reject): safe when every source with at least `--min-share` of the
volume passes DMARC on `--min-pass-rate` of its mail or more; otherwise the sources that would
lose mail are named (`bulkmail.logic.feedback.reports.summarise_dmarc`).

Exit status: 0 safe, 1 not safe (or no data), 2 database or usage error. The connection string
is read from `--database-file` (default /etc/bulkmail/dmarc-report-db.conf), never printed; the
session is read-only, and the role needs SELECT on the two tables.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from bulkmail.logic.feedback.reports import (
    DEFAULT_MIN_PASS_RATE,
    DEFAULT_MIN_SHARE,
    DMARC_POLICY_SQL,
    DMARC_SUMMARY_SQL,
    DmarcSummary,
    dmarc_summary_query,
    format_summary,
    summarise_dmarc,
)
from bulkmail.policy import conninfo_password, describe_error, read_conninfo

DEFAULT_DATABASE_FILE = Path("/etc/bulkmail/dmarc-report-db.conf")
PROG = "bulkmail dmarc-report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("domain", metavar="DOMAIN", help="the sending domain (header From)")
    parser.add_argument(
        "--database-file",
        type=Path,
        default=DEFAULT_DATABASE_FILE,
        help=f"file holding the database's connection string (default {DEFAULT_DATABASE_FILE})",
    )
    parser.add_argument(
        "--days", type=float, default=7.0, help="reports whose period ended in these last days"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument(
        "--min-share",
        type=float,
        default=DEFAULT_MIN_SHARE,
        help="a source counts from this share of the volume on (default 0.005 = 0.5%%)",
    )
    parser.add_argument(
        "--min-pass-rate",
        type=float,
        default=DEFAULT_MIN_PASS_RATE,
        help="the DMARC pass rate every counted source needs (default 0.98)",
    )


def fetch_summary(
    conn: Any,
    domain: str,
    now: datetime,
    days: float,
    *,
    min_share: float = DEFAULT_MIN_SHARE,
    min_pass_rate: float = DEFAULT_MIN_PASS_RATE,
) -> DmarcSummary:
    """Read the window's rows on an open connection and judge them."""
    params = dmarc_summary_query(domain, now, days)
    reports, policy = conn.execute(DMARC_POLICY_SQL, params).fetchone() or (0, None)
    rows = conn.execute(DMARC_SUMMARY_SQL, params).fetchall()
    return summarise_dmarc(
        params["domain"],
        rows,
        policy=policy,
        reports=int(reports or 0),
        min_share=min_share,
        min_pass_rate=min_pass_rate,
    )


def run(
    args: argparse.Namespace,
    *,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    now: datetime | None = None,
    connect: Callable[..., Any] | None = None,
) -> int:
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    try:
        conninfo = read_conninfo(args.database_file, environ={}, command=PROG)
    except SystemExit as error:
        print(error.code, file=err)
        return 2
    try:
        import psycopg
    except ImportError:
        print(f"{PROG}: psycopg 3 is missing: install Debian's python3-psycopg", file=err)
        return 2
    try:
        password = conninfo_password(conninfo)
    except ValueError as error:
        print(f"{PROG}: --database-file: {error}", file=err)
        return 2
    when = now or datetime.now(UTC)
    try:
        connection = (connect or psycopg.connect)(
            conninfo, connect_timeout=5, application_name="bulkmail-dmarc-report"
        )
    except psycopg.Error as error:
        print(f"{PROG}: database unavailable: {describe_error(error, password)}", file=err)
        return 2
    try:
        connection.execute("SET default_transaction_read_only = on")
        summary = fetch_summary(
            connection,
            args.domain,
            when,
            args.days,
            min_share=args.min_share,
            min_pass_rate=args.min_pass_rate,
        )
    except ValueError as error:
        print(f"{PROG}: {error}", file=err)
        return 2
    except psycopg.Error as error:
        print(f"{PROG}: the query failed: {describe_error(error, password)}", file=err)
        return 2
    finally:
        with contextlib.suppress(Exception):
            connection.close()
    if args.json:
        json.dump(summary.as_json(), out, indent=2)
        out.write("\n")
    else:
        out.write(format_summary(summary))
    return 0 if summary.safe else 1
