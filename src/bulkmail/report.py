"""`bulkmail report`: what happened to the mail, from the delivery events.

    bulkmail report --database-file FILE [--since 24h | --since 2026-12-01] [--tenant T]
                    [--json]

Counts the final delivery events per status (sent, bounced, expired; deferred: messages and
recipients whose latest event is a deferral and that have no final one yet), the final
failures per bounce class, complaints, suppressions made in the window per reason and tenant,
smtpd's and cleanup's refusals, and `messages`: the (Message-ID, recipient) pairs with a final
event. The queries and the counting are bulkmail.logic.feedback.report's.

`--json` prints one object, its keys always present:

    {"since": "2026-12-01T17:00:00+00:00" | null, "tenant": "example.test" | null,
     "messages": 0, "statuses": {"sent": 0, "bounced": 0, "deferred": 0, "expired": 0},
     "bounce_classes": {"invalid_recipient": 0, ...}, "complaints": 0,
     "suppressed": {"hard_bounce": {"example.test": 0, "global": 0}, ...}, "refusals": 0}

Without it, an aligned table. `--since all` counts everything. The connection string is read
from `--database-file` (or $BULKMAIL_REPORT_DATABASE), never printed; the session is read-only
(the reader role suffices). Exit 1 when the database cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from bulkmail.logic.feedback.report import aggregate, format_table, parse_since, report_queries
from bulkmail.policy import conninfo_password, describe_error, read_conninfo

DATABASE_ENV = "BULKMAIL_REPORT_DATABASE"

DEFAULT_SINCE = "24h"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-file",
        type=Path,
        help=f"file holding the database's connection string (else ${DATABASE_ENV})",
    )
    parser.add_argument(
        "--since",
        default=DEFAULT_SINCE,
        help="window start: a duration back from now (90s, 30m, 1h, 7d, 2w), an ISO 8601 "
        f"date or time (UTC unless given), or 'all' (default {DEFAULT_SINCE})",
    )
    parser.add_argument("--tenant", help="count only this tenant's mail (and global rows)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def fetch(conninfo: str, queries: dict[str, tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Each query's rows, in one read-only transaction (one consistent view)."""
    import psycopg

    with psycopg.connect(conninfo, connect_timeout=10, application_name="bulkmail-report") as conn:
        conn.read_only = True
        with conn.cursor() as cur:
            results = {}
            for name, (sql, params) in queries.items():
                cur.execute(sql, params)
                results[name] = cur.fetchall()
        return results


def run(args: argparse.Namespace, *, stdout: TextIO | None = None) -> int:
    out = stdout or sys.stdout
    since = None
    if args.since.strip().lower() != "all":
        try:
            since = parse_since(args.since, datetime.now(UTC))
        except ValueError as error:
            raise SystemExit(f"report: --since {error}") from None
    tenant = args.tenant.strip().lower() if args.tenant else None
    try:
        conninfo = read_conninfo(args.database_file, command="report", env=DATABASE_ENV)
    except SystemExit as error:
        raise SystemExit(error.code) from None
    try:
        import psycopg
    except ImportError:
        raise SystemExit("report: psycopg 3 is missing: install Debian's python3-psycopg") from None
    try:
        results = fetch(conninfo, report_queries(since, tenant))
    except psycopg.Error as error:
        text = describe_error(error, _password(conninfo))
        print(f"report: the database cannot be read: {text}", file=sys.stderr)
        return 1
    report = aggregate(results, since, tenant)
    if args.json:
        out.write(json.dumps(report, sort_keys=False) + "\n")
    else:
        out.write(format_table(report))
    return 0


def _password(conninfo: str) -> str:
    try:
        return conninfo_password(conninfo)
    except ValueError:
        return ""
