"""`bulkmail forget`: erase a person (GDPR Art. 17) and keep only what stops mailing them.

    bulkmail forget ADDRESS --database-file FILE --keys-file FILE [--yes]

Deletes the address's rows everywhere in one transaction (delivery events as recipient or
original recipient, messages, bounces, complaints, soft bounces, suppression, and the raw
feedback messages that are only theirs), then writes a suppression row per tenant that had
one (`global` if none) whose address is `hmac-sha256:<hex>` of the normalised address, reason
`manual`, note `erased`: the policy service refuses the address by its hash, and the table no
longer names it. The SQL is `bulkmail.logic.feedback.erasure`'s.

Without `--yes` it is a dry run: the same statements in a transaction that is rolled back,
printing what would be deleted. It prints counts per table, never the address's hash or key.

The key is the first of `--keys-file` (one hex or base64 key a line, at least 32 bytes); the
policy service must hold the same file to refuse by the hash. The connection string comes from
`--database-file` or $BULKMAIL_FORGET_DATABASE, never printed; its role needs SELECT and
DELETE on the tables above and INSERT on suppression: the app role, whose file on an smtp host
is /etc/bulkmail/retention-db.conf (run as root). The ingest role cannot delete.

What stays elsewhere: the policy service's snapshot file until its next full reload (10
minutes), the journal's Postfix lines until journald rotates them, backups until they expire,
and the unsubscribe endpoint's spool until it is flushed (at most minutes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from bulkmail.logic.feedback.erasure import (
    delete_steps,
    erasure_forms,
    feedback_ids_query,
    tenants_query,
    tombstone_insert,
)
from bulkmail.logic.feedback.suppression import address_hash
from bulkmail.policy import conninfo_password, describe_error, read_conninfo
from bulkmail.unsubscribe import load_keys

DATABASE_ENV = "BULKMAIL_FORGET_DATABASE"
EXIT_USAGE = 2
EX_TEMPFAIL = 75


def erase(conn: Any, key: bytes, address: str) -> tuple[dict[str, int], list[str]]:
    """Run the erasure on an open psycopg connection, inside the caller's transaction:
    rows deleted per table, and the tenants the hash is kept for."""
    forms = erasure_forms(address)
    hashed = address_hash(key, address)
    with conn.cursor() as cursor:
        cursor.execute(*tenants_query(forms, hashed))
        tenants = [str(row[0]) for row in cursor.fetchall()]
        cursor.execute(*feedback_ids_query(forms))
        feedback_ids = [int(row[0]) for row in cursor.fetchall()]
        counts = {}
        for step in delete_steps(forms, feedback_ids):
            cursor.execute(step.sql, step.params)
            counts[step.table] = max(cursor.rowcount, 0)
        tombstone = tombstone_insert(key, address, tenants)
        cursor.execute(tombstone.sql, tombstone.params)
    return counts, tombstone.params["tenants"]


def report(counts: dict[str, int], tenants: list[str], done: bool, out: TextIO) -> None:
    verb = "deleted" if done else "would delete"
    for table, count in counts.items():
        print(f"{table}: {count} {verb}", file=out)
    kept = "kept" if done else "would keep"
    print(f"suppression: {kept} the keyed hash for {', '.join(tenants)} (reason manual)", file=out)
    if not done:
        print("dry run: nothing was changed; run again with --yes to erase", file=out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("address", metavar="ADDRESS", help="the person's email address")
    parser.add_argument(
        "--database-file",
        type=Path,
        help=f"file holding the database's connection string (else ${DATABASE_ENV})",
    )
    parser.add_argument(
        "--keys-file",
        type=Path,
        required=True,
        help="the address-hash keys (the policy service's), one hex or base64 a line; "
        "the first hashes",
    )
    parser.add_argument(
        "--yes", action="store_true", help="erase (without it: a dry run that changes nothing)"
    )


def run(
    args: argparse.Namespace, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    try:
        erasure_forms(args.address)
    except ValueError as error:
        print(f"bulkmail forget: error: {error}", file=stderr)
        return EXIT_USAGE
    key = load_keys(args.keys_file, "forget")[0]
    conninfo = read_conninfo(args.database_file, command="forget", env=DATABASE_ENV)
    try:
        import psycopg
        import psycopg.conninfo
    except ImportError:
        raise SystemExit("forget: psycopg 3 is missing: install Debian's python3-psycopg") from None
    try:
        password = conninfo_password(conninfo)
    except ValueError:
        raise SystemExit(
            "forget: the database connection string is not libpq syntax (its parser's message "
            "is not shown, it may quote a password)"
        ) from None
    try:
        with psycopg.connect(
            conninfo, connect_timeout=10, application_name="bulkmail-forget"
        ) as conn:
            counts, tenants = erase(conn, key, args.address)
            if args.yes:
                conn.commit()
            else:
                conn.rollback()
    except psycopg.Error as error:
        text = describe_error(error, password)
        print(f"bulkmail forget: database error, nothing was erased: {text}", file=stderr)
        return EX_TEMPFAIL if isinstance(error, psycopg.OperationalError) else 1
    report(counts, tenants, args.yes, stdout)
    return 0
