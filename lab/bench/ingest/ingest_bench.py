#!/usr/bin/env python3
"""bench-ingest's helper, run on smtp1 with the installed runtime (/opt/bulkmail/bin/python).

    ingest_bench.py throughput --lines 500000 --host bench-TAG --tag TAG --database-file FILE
    ingest_bench.py log-rate --since T0 --until T1 [--window 10]
    ingest_bench.py lag --database-file FILE --sender ADDR --since T0 --expect N [--timeout 120]
    ingest_bench.py cleanup --database-file FILE --host bench-TAG --tag TAG [--sender ADDR]

`throughput` makes N journal entries of the shapes Postfix logs on this platform (the bulk
lane's intake and handoff, a provider instance's delivery, the transactional lane, hard and
soft bounces, deferrals retried, NOQUEUE refusals: `journal_entries`), then times the real
`bulkmail ingest` loop (Ingester, Tracker, PostgresStore, the deployed batch settings) feeding
them into PostgreSQL under the scratch host name, and deletes what it wrote. Its sender domain
is the scratch tenant `bench-TAG.test`, so its hard bounces suppress no real tenant's mail.
`log-rate` counts the journal entries the ingester reads (the mail facility) between two
times, with python-systemd like the ingester, and the busiest `--window` seconds among them.
`lag` waits until the deployed ingester has stored the run's N deliveries (by their unique
sender), then prints recorded_at - occurred_at percentiles (occurred_at is the journal stamp;
recorded_at the insert's transaction start, on db1's clock: the same kernel in the lab), and
deletes those rows. Figures as `name: value` on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

OWN_HOSTS = ("10.25.0.10", "198.51.100.10")  # smtp1 internal and public
APP = "app.internal[10.25.0.100]"
GMAIL_MX = "gmail-smtp-in.l.gmail.test[198.51.100.25]:25"
OUTLOOK_MX = "outlook-com.olc.protection.outlook.test[198.51.100.25]:25"
_SAFE = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"  # Postfix's long-id alphabet
# Message shapes by n % 100: (shape, share in percent).
SHAPES = (
    ("bulk_sent", 60),
    ("tx_sent", 20),
    ("bulk_hard_bounce", 5),
    ("bulk_full_then_sent", 4),
    ("tx_greylisted_then_sent", 5),
    ("bulk_soft_bounce", 2),
    ("noqueue_reject", 4),
)


def queue_id(number: int) -> str:
    """A long queue id (enable_long_queue_ids = yes), unique per number."""
    digits = ""
    value = number
    while value or len(digits) < 7:
        value, digit = divmod(value, len(_SAFE))
        digits = _SAFE[digit] + digits
    return "4ZkRq" + digits + "z" + _SAFE[number % (len(_SAFE) - 1)]


def shape_of(number: int) -> str:
    slot = number % 100
    for shape, share in SHAPES:
        if slot < share:
            return shape
        slot -= share
    raise AssertionError("SHAPES must add up to 100")


def message_lines(number: int, tag: str) -> list[tuple[float, str, str]]:
    """(seconds after the message's start, SYSLOG_IDENTIFIER, MESSAGE) for message `number`."""
    shape = shape_of(number)
    rcpt = f"u{number:07d}-{tag}@{('gmail.test', 'outlook.test')[number % 2]}"
    mx = (GMAIL_MX, OUTLOOK_MX)[number % 2]
    provider = ("google", "microsoft")[number % 2]
    sender = f"news+u{number}={rcpt.rpartition('@')[2]}@bounces.bench-{tag}.test"
    message_id = f"c{number}.{tag}@bench-{tag}.test"
    up, down = queue_id(2 * number), queue_id(2 * number + 1)
    if shape == "noqueue_reject":
        return [(0.0, "postfix/smtpd",
                 f"NOQUEUE: reject: RCPT from unknown[203.0.113.{number % 250 + 1}]: 554 5.7.1 "
                 f"<{rcpt}>: Relay access denied; from=<{sender}> to=<{rcpt}> proto=ESMTP "
                 "helo=<client.example>")]  # fmt: skip
    if shape.startswith("tx_"):
        lines = [
            (0.00, "postfix/smtpd", f"{up}: client={APP}"),
            (0.01, "postfix/cleanup", f"{up}: message-id=<{message_id}>"),
            (0.02, "postfix/qmgr", f"{up}: from=<{sender}>, size=4211, nrcpt=1 (queue active)"),
        ]
        t = 0.5
        if shape == "tx_greylisted_then_sent":
            lines.append((t, "postfix/smtp",
                          f"{up}: to=<{rcpt}>, relay={mx}, delay=0.5, delays=0.02/0/0.3/0.2, "
                          f"dsn=4.7.1, status=deferred (host {mx[:-3]} said: 451 4.7.1 "
                          "Greylisted, retry later)"))  # fmt: skip
            t = 300.0
        lines += [
            (t, "postfix/smtp",
             f"{up}: to=<{rcpt}>, relay={mx}, delay={t:.1f}, delays=0.02/0/0.3/0.2, dsn=2.0.0, "
             "status=sent (250 2.0.0 OK  1733072402 x12si123 - gsmtp)"),
            (t + 0.01, "postfix/qmgr", f"{up}: removed"),
        ]  # fmt: skip
        return lines
    instance = f"postfix-bulk-{provider}"
    lines = [
        (0.00, "postfix-bulk/smtpd", f"{up}: client={APP}"),
        (0.01, "postfix-bulk/cleanup", f"{up}: message-id=<{message_id}>"),
        (0.02, "postfix-bulk/qmgr",
         f"{up}: from=<{sender}>, size=4211, nrcpt=1 (queue active)"),
        (0.10, f"{instance}/smtpd", f"{down}: client=smtp1.internal[10.25.0.10]"),
        (0.11, f"{instance}/cleanup", f"{down}: message-id=<{message_id}>"),
        (0.12, "postfix-bulk/handoff/smtp",
         f"{up}: to=<{rcpt}>, relay=10.25.0.10[10.25.0.10]:2526, delay=0.12, "
         f"delays=0.05/0.01/0.03/0.03, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as {down})"),
        (0.13, "postfix-bulk/qmgr", f"{up}: removed"),
        (0.14, f"{instance}/qmgr", f"{down}: from=<{sender}>, size=4520, nrcpt=1 (queue active)"),
    ]  # fmt: skip
    agent = f"{instance}/{provider}/smtp"
    t = 0.9
    if shape == "bulk_hard_bounce":
        lines += [
            (t, agent,
             f"{down}: to=<{rcpt}>, relay={mx}, delay=0.8, delays=0.01/0.01/0.5/0.28, "
             f"dsn=5.1.1, status=bounced (host {mx[:-3]} said: 550-5.1.1 The email account "
             "that you tried to reach does not exist (in reply to RCPT TO command))"),
            (t + 0.05, f"{instance}/bounce",
             f"{down}: sender non-delivery notification: {queue_id(10**9 + number)}"),
        ]  # fmt: skip
    elif shape in ("bulk_full_then_sent", "bulk_soft_bounce"):
        lines.append((t, agent,
                      f"{down}: to=<{rcpt}>, relay={mx}, delay=0.8, delays=0.01/0.01/0.5/0.28, "
                      f"dsn=4.2.2, status=deferred (host {mx[:-3]} said: 452 4.2.2 The "
                      "mailbox is over quota)"))  # fmt: skip
        t = 600.0
        if shape == "bulk_soft_bounce":
            lines.append((t, agent,
                          f"{down}: to=<{rcpt}>, relay={mx}, delay={t:.0f}, "
                          f"delays=0.01/599/0.5/0.28, dsn=5.2.2, status=bounced (host "
                          f"{mx[:-3]} said: 552 5.2.2 The mailbox is full)"))  # fmt: skip
    if shape in ("bulk_sent", "bulk_full_then_sent"):
        lines.append((t, agent,
                      f"{down}: to=<{rcpt}>, relay={mx}, delay={t:.1f}, "
                      "delays=0.01/0.01/0.5/0.38, dsn=2.0.0, status=sent (250 2.0.0 OK  "
                      "1733072402 x12si123 - gsmtp)"))  # fmt: skip
    lines.append((t + 0.1, f"{instance}/qmgr", f"{down}: removed"))
    return lines


def journal_entries(
    count: int, tag: str, start: float, messages_per_s: float = 500.0
) -> list[tuple[int, str, str]]:
    """`count` entries as (__REALTIME_TIMESTAMP in microseconds, identifier, message), in
    time order: message n starts at start + n / messages_per_s, so hundreds are in flight
    and retried ones (greylisting, full mailboxes) finish minutes later, among the others."""
    entries: list[tuple[int, str, str]] = []
    number = 0
    # Make a little more than asked, sort, cut: the cut drops the latest lines, which are
    # the retries of the last messages (their start is what orders them).
    while len(entries) < count * 1.02 + 100:
        begin = start + number / messages_per_s
        for offset, identifier, message in message_lines(number, tag):
            # the microsecond makes stamps unique, as the journal's are in practice
            entries.append((int((begin + offset) * 1e6) + number % 997, identifier, message))
        number += 1
    entries.sort(key=lambda entry: entry[0])
    return entries[:count]


def as_journal(
    entries: Sequence[tuple[int, str, str]], host: str, cursor_tag: str
) -> Iterator[Mapping[str, Any]]:
    """The dicts python-systemd's Reader gives the ingester (the fields it reads)."""
    for index, (stamp, identifier, message) in enumerate(entries):
        yield {
            "__REALTIME_TIMESTAMP": stamp,
            "__CURSOR": f"s={cursor_tag};i={index:x}",
            "SYSLOG_IDENTIFIER": identifier,
            "SYSLOG_FACILITY": "2",
            "MESSAGE": message,
            "_HOSTNAME": host,
        }


def tenants(tag: str) -> dict[str, dict[str, str]]:
    return {"domains": {f"bench-{tag}.test": f"bench-{tag}.test"}}


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest rank on sorted `values`."""
    if not values:
        return math.nan
    rank = max(1, math.ceil(share * len(values)))
    return values[min(rank, len(values)) - 1]


def busiest_window(stamps: Sequence[float], window: float) -> float:
    """The most entries within any `window` seconds (sorted stamps), per second."""
    best, first = 0, 0
    for last, stamp in enumerate(stamps):
        while stamp - stamps[first] > window:
            first += 1
        best = max(best, last - first + 1)
    return best / window


# ---------------------------------------------------------------------- the SQL


def cleanup_statements(
    host: str, tag: str, sender: str | None
) -> list[tuple[str, tuple[Any, ...]]]:
    """What the run wrote, deleted: the scratch tenant's follow-ups, the scratch host's
    events and state, and (with `sender`) the load's events the deployed ingester stored."""
    tenant = f"bench-{tag}.test"
    statements: list[tuple[str, tuple[Any, ...]]] = [
        ("DELETE FROM suppression WHERE tenant = %s", (tenant,)),
        ("DELETE FROM soft_bounces WHERE tenant = %s", (tenant,)),
        ("DELETE FROM bounces WHERE tenant = %s", (tenant,)),
        ("DELETE FROM delivery_events WHERE host = %s", (host,)),
        ("DELETE FROM ingest_state WHERE host = %s", (host,)),
    ]
    if sender:
        statements += [
            ("DELETE FROM bounces WHERE source_event IN (SELECT id FROM delivery_events"
             " WHERE split_part(sender, '@', 1) = split_part(%s, '@', 1))", (sender,)),
            ("DELETE FROM delivery_events"
             " WHERE split_part(sender, '@', 1) = split_part(%s, '@', 1)", (sender,)),
        ]  # fmt: skip
    return statements


# The load's envelope sender leaves moved to example.test's return-path domain (VERP:
# bench-ingest-TAG@bounces.example.test): match its local part, which is unique per run.
LAG_COUNT_SQL = (
    "SELECT count(*) FROM delivery_events WHERE split_part(sender, '@', 1) = split_part(%s, '@', 1)"
    " AND kind = 'delivery' AND final"
    " AND occurred_at >= to_timestamp(%s)"
)
LAG_SQL = (
    "SELECT extract(epoch FROM recorded_at - occurred_at)::float8 FROM delivery_events"
    " WHERE split_part(sender, '@', 1) = split_part(%s, '@', 1)"
    " AND kind = 'delivery' AND final AND occurred_at >= to_timestamp(%s)"
    " ORDER BY 1"
)


# ---------------------------------------------------------------------- the commands


def _conninfo(path: Path) -> str:
    from bulkmail.policy import read_conninfo

    return read_conninfo(path)


def _execute_all(conninfo: str, statements: Sequence[tuple[str, tuple[Any, ...]]]) -> None:
    import psycopg

    with psycopg.connect(conninfo, application_name="bulkmail-bench") as conn:
        for sql, params in statements:
            conn.execute(sql, params)


def throughput(args: argparse.Namespace) -> int:
    from bulkmail.logic.feedback.postfix_log import Tracker
    from bulkmail.logic.feedback.suppression import TenantMap

    from bulkmail.ingest import Ingester, PostgresStore

    print(f"ingest_bench: making {args.lines} journal entries", file=sys.stderr)
    start = time.time() - 7200  # the recent past: inside every window that counts
    entries = journal_entries(args.lines, args.tag, start)
    conninfo = _conninfo(args.database_file)
    store = PostgresStore(conninfo, args.host)
    tenant_map = TenantMap.load(tenants(args.tag))
    ingester = Ingester(store, Tracker(OWN_HOSTS), tenant_map, host=args.host)
    try:
        ingester.resume()
        print(f"ingest_bench: feeding them to PostgreSQL as host {args.host}", file=sys.stderr)
        began = time.monotonic()
        ingester.run(as_journal(entries, args.host, f"bench{args.tag}"))
        seconds = time.monotonic() - began
        store.close()
        if ingester.batch.lines:
            print("ingest_bench: the last batch was not committed", file=sys.stderr)
            return 1
        print(f"ingest_lines_per_s: {args.lines / seconds:.0f}")
        print(f"ingest_events_per_s: {ingester.events_written / seconds:.0f}")
        print(f"ingest_lines: {args.lines}")
        print(f"ingest_events: {ingester.events_written}")
        print(f"ingest_seconds: {seconds:.1f}")
    finally:
        store.close()
        if not args.keep:
            print("ingest_bench: deleting the scratch rows", file=sys.stderr)
            _execute_all(
                _conninfo(args.cleanup_database_file),
                cleanup_statements(args.host, args.tag, None),
            )
    return 0


def log_rate(args: argparse.Namespace) -> int:
    from systemd import journal

    reader = journal.Reader(flags=journal.LOCAL_ONLY, converters={"__REALTIME_TIMESTAMP": int})
    reader.add_match(SYSLOG_FACILITY="2")
    reader.seek_realtime(int(args.since * 1e6))
    stamps: list[float] = []
    began = time.monotonic()
    for entry in reader:
        stamp = entry["__REALTIME_TIMESTAMP"] / 1e6
        if stamp > args.until:
            break
        stamps.append(stamp)
    read_seconds = time.monotonic() - began
    span = args.until - args.since
    print(f"mta_log_lines: {len(stamps)}")
    print(f"mta_mean_log_lines_per_s: {len(stamps) / span:.0f}")
    print(f"mta_peak_log_lines_per_s: {busiest_window(stamps, args.window):.0f}")
    if stamps and read_seconds > 0:
        print(f"journal_read_entries_per_s: {len(stamps) / read_seconds:.0f}")
    return 0 if stamps else 1


def lag(args: argparse.Namespace) -> int:
    import psycopg

    conninfo = _conninfo(args.database_file)
    deadline = time.monotonic() + args.timeout
    try:
        with psycopg.connect(conninfo, autocommit=True, application_name="bulkmail-bench") as conn:
            while True:
                (stored,) = conn.execute(LAG_COUNT_SQL, (args.sender, args.since)).fetchone()
                if stored >= args.expect or time.monotonic() > deadline:
                    break
                time.sleep(1)
            lags = [row[0] for row in conn.execute(LAG_SQL, (args.sender, args.since))]
    finally:
        if not args.keep:
            _execute_all(
                _conninfo(args.cleanup_database_file),
                cleanup_statements("", "none", args.sender),
            )
    print(f"ingest_lag_rows: {len(lags)}/{args.expect}")
    if not lags:
        return 1
    print(f"ingest_lag_p50_s: {percentile(lags, 0.5):.2f}")
    print(f"ingest_lag_p99_s: {percentile(lags, 0.99):.2f}")
    print(f"ingest_lag_max_s: {lags[-1]:.2f}")
    return 0 if len(lags) >= args.expect else 1


def cleanup(args: argparse.Namespace) -> int:
    _execute_all(
        _conninfo(args.cleanup_database_file),
        cleanup_statements(args.host, args.tag, args.sender),
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    database = argparse.ArgumentParser(add_help=False)
    database.add_argument(
        "--database-file", type=Path, default=Path("/etc/bulkmail/ingest-db.conf")
    )
    # The ingest role may not delete: what the run wrote goes with the role that purges.
    database.add_argument(
        "--cleanup-database-file", type=Path, default=Path("/etc/bulkmail/retention-db.conf")
    )
    database.add_argument("--keep", action="store_true", help="leave the rows (to look at them)")
    one = commands.add_parser("throughput", parents=[database])
    one.add_argument("--lines", type=int, default=500_000)
    one.add_argument("--host", required=True, help="the scratch host name (bench-TAG)")
    one.add_argument("--tag", required=True, help="lower-case letters and digits")
    one.set_defaults(func=throughput)
    rate = commands.add_parser("log-rate")
    rate.add_argument("--since", type=float, required=True, help="seconds since the epoch")
    rate.add_argument("--until", type=float, required=True)
    rate.add_argument("--window", type=float, default=10.0)
    rate.set_defaults(func=log_rate)
    late = commands.add_parser("lag", parents=[database])
    late.add_argument("--sender", required=True)
    late.add_argument("--since", type=float, required=True)
    late.add_argument("--expect", type=int, required=True, help="deliveries the load made")
    late.add_argument("--timeout", type=float, default=120.0)
    late.set_defaults(func=lag)
    clean = commands.add_parser("cleanup", parents=[database])
    clean.add_argument("--host", required=True)
    clean.add_argument("--tag", required=True)
    clean.add_argument("--sender")
    clean.set_defaults(func=cleanup)
    args = parser.parse_args(argv)
    tag = getattr(args, "tag", "x")
    if not tag.isalnum() or tag.lower() != tag:
        parser.error("--tag: lower-case letters and digits only")
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
