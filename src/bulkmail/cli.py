"""`bulkmail`: the runtime's command line, one subcommand per job.

    bulkmail check-dns DOMAIN... [--json] [--nameserver IP] ...   (see bulkmail.check_dns)
    bulkmail policy --tenants FILE --database-file FILE [--listen HOST:PORT]
                                                                   (see bulkmail.policy)
    bulkmail ingest --tenants FILE --database-file FILE [--own-hosts A,B] (see bulkmail.ingest)
    bulkmail report --database-file FILE [--since 24h] [--json]    (see bulkmail.report)
    bulkmail feedback --config FILE --database-file FILE --sender S --recipient R < message
                                                                   (see bulkmail.feedback)
    bulkmail dmarc-report DOMAIN [--days 7] [--json]               (see bulkmail.dmarc_report)
    bulkmail unsubscribe-web --keys-file FILE --database-file FILE (see bulkmail.unsubscribe)
    bulkmail forget ADDRESS --keys-file FILE [--yes]               (see bulkmail.forget)
    bulkmail retention --database-file FILE [--events-days 30]     (see bulkmail.retention)
    bulkmail archive --config FILE --credentials-file FILE [--dry-run] (see bulkmail.archive)
    bulkmail provider-map --suffixes FILE [--listen HOST:PORT]     (see bulkmail.provider_map)
    bulkmail sender-guard --identities FILE [--listen HOST:PORT]   (see bulkmail.sender_guard)
    bulkmail sign [--opendkim-conf FILE] [--count N] < message
                                                                   (see bulkmail.signer)
    bulkmail submit --lane LANE --from SENDER --to RCPT... < message (see bulkmail.submit)
    bulkmail --version

Installed as the `bulkmail` console script (pyproject.toml) and as `python -m bulkmail`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import TextIO

from bulkmail import (
    archive,
    check_dns,
    dmarc_report,
    feedback,
    forget,
    ingest,
    policy,
    provider_map,
    report,
    retention,
    sender_guard,
    signer,
    submit,
    unsubscribe,
)
from bulkmail.logic.dns.report import Resolve


def package_version() -> str:
    """The installed distribution's version: pyproject.toml's, as the wheel carries it."""
    try:
        return metadata.version("bulkmail")
    except metadata.PackageNotFoundError:
        return "unknown (the bulkmail package is not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bulkmail", description="The bulkmail runtime: checks and services around Postfix."
    )
    parser.add_argument("--version", action="version", version=f"bulkmail {package_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    check = commands.add_parser(
        "check-dns",
        help="check SPF, DKIM, DMARC, MX, PTR, MTA-STS and TLS-RPT of sending domains",
        description=(
            "Query live DNS and report, per domain, every check with its status, reason and "
            "fix. Exit 1 when a required check fails."
        ),
    )
    check_dns.add_arguments(check)
    suppress = commands.add_parser(
        "policy",
        help="answer Postfix's policy requests: refuse recipients on the suppression list",
        description=(
            "Serve Postfix's policy delegation protocol: a recipient suppressed for the "
            "sender's tenant (or for all) is refused with 5.7.1 and the reason; answers come "
            "from a snapshot of the database that is refreshed every few seconds."
        ),
    )
    policy.add_arguments(suppress)
    feed = commands.add_parser(
        "ingest",
        help="read Postfix's journal into delivery_events, exactly once",
        description=(
            "Follow the local journal's mail facility, join Postfix's lines into one final "
            "event per message and recipient, and write them with their bounces, hard-bounce "
            "suppressions and soft bounces, committing the journal cursor in the same "
            "transaction. Waits out a database outage; SIGTERM commits and exits 0."
        ),
    )
    ingest.add_arguments(feed)
    summary = commands.add_parser(
        "report",
        help="count what happened to the mail: outcomes, bounce classes, complaints",
        description=(
            "Count the final delivery events per status, the failures per bounce class, "
            "complaints, suppressions per reason and tenant, and refusals, over a window "
            "(--since 24h by default); --json prints one object with stable keys."
        ),
    )
    report.add_arguments(summary)
    store = commands.add_parser(
        "feedback",
        help="store one message a feedback address received (Postfix's pipe): bounces, "
        "complaints, reports, unsubscribes",
        description=(
            "Read the message on stdin, store it and what it says in one transaction. Exit 0 "
            "when stored (or stored before), 75 to have Postfix keep it and retry."
        ),
    )
    feedback.add_arguments(store)
    dmarc = commands.add_parser(
        "dmarc-report",
        help="per source IP DMARC pass rates from the aggregate reports, and whether p= can move",
        description=(
            "Summarise the stored DMARC aggregate reports of DOMAIN: per source IP the volume "
            "and the aligned DKIM, SPF and DMARC pass rates, and whether moving p= one step "
            "up is safe. Exit 0 safe, 1 not safe or no data, 2 error."
        ),
    )
    dmarc_report.add_arguments(dmarc)
    web = commands.add_parser(
        "unsubscribe-web",
        help="answer RFC 8058 one-click unsubscribe POSTs (behind nginx) into the suppression list",
        description=(
            "Serve HTTP on loopback for nginx: POST /u/TOKEN suppresses the token's recipient "
            "for its tenant, GET shows a confirmation form; a database outage spools to disk."
        ),
    )
    unsubscribe.add_arguments(web)
    erase = commands.add_parser(
        "forget",
        help="erase an address everywhere (GDPR Art. 17), keeping only a keyed hash",
        description=(
            "Delete the address's rows in every table in one transaction and keep an "
            "hmac-sha256 suppression row per tenant. Without --yes: a dry run."
        ),
    )
    forget.add_arguments(erase)
    purge = commands.add_parser(
        "retention",
        help="roll delivery events up into delivery_daily and purge raw rows past their age",
        description=(
            "Per batch, in one transaction: delete raw delivery events older than "
            "--events-days and add the final ones to delivery_daily (exactly once); purge "
            "bounces, complaints, soft bounces, feedback messages and reports past their ages. "
            "Suppression is never purged."
        ),
    )
    retention.add_arguments(purge)
    ship = commands.add_parser(
        "archive",
        help="ship Postfix's journal lines to S3-compatible storage, gzipped",
        description=(
            "Read the local journal's mail facility from the saved cursor to its end, put the "
            "Postfix entries in gzipped JSON-lines objects under keys fixed by each object's "
            "first entry, and save the cursor after each put. Exit 0 done, 1 retry later, "
            "2 bad configuration."
        ),
    )
    archive.add_arguments(ship)
    shaping = commands.add_parser(
        "provider-map",
        help="answer Postfix's transport_maps by the recipient domain's MX (socketmap)",
        description=(
            "Serve Postfix's socketmap protocol: a recipient domain whose best MX host ends "
            "with a provider's suffix maps to that provider's transport."
        ),
    )
    provider_map.add_arguments(shaping)
    guard = commands.add_parser(
        "sender-guard",
        help="milter: an account or trusted network sends only as the domains it owns",
        description=(
            "Serve the milter protocol in front of OpenDKIM: a message whose From or Sender "
            "header names a domain its sender (SASL account or trusted network) does not own "
            "is rejected with 5.7.1 and never signed."
        ),
    )
    sender_guard.add_arguments(guard)
    sign = commands.add_parser(
        "sign",
        help="DKIM-sign the message on stdin with OpenDKIM's keys and tables",
        description=(
            "Write the message on stdin to stdout with the DKIM-Signature OpenDKIM would add "
            "(its KeyTable and SigningTable choose the key by the From address). Exit 2, "
            "writing nothing, when no key signs the From domain."
        ),
    )
    signer.add_arguments(sign)
    dispatch = commands.add_parser(
        "submit",
        help="sign the message on stdin and hand it to each recipient's provider instance",
        description=(
            # raw text (for the epilog's table): the lines are broken here
            "Sign the message once, classify each recipient domain by its MX, and deliver\n"
            "each provider's recipients in one SMTP transaction to that provider's instance\n"
            "of the lane. One JSON line per provider; the exit status says what to do next."
        ),
        epilog=submit.EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    submit.add_arguments(dispatch)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    resolve: Resolve | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run one command; `resolve` replaces live DNS (tests inject a fake one)."""
    args = build_parser().parse_args(argv)
    if args.command == "check-dns":
        return check_dns.run(args, resolve=resolve, stdout=stdout, stderr=stderr)
    if args.command == "policy":
        return policy.run(args)
    if args.command == "ingest":
        return ingest.run(args)
    if args.command == "report":
        return report.run(args)
    if args.command == "feedback":
        return feedback.run(args)
    if args.command == "dmarc-report":
        return dmarc_report.run(args)
    if args.command == "unsubscribe-web":
        return unsubscribe.run(args)
    if args.command == "forget":
        return forget.run(args)
    if args.command == "retention":
        return retention.run(args)
    if args.command == "archive":
        return archive.run(args)
    if args.command == "provider-map":
        return provider_map.run(args)
    if args.command == "sender-guard":
        return sender_guard.run(args)
    if args.command == "sign":
        return signer.run(args)
    if args.command == "submit":
        return submit.run(args)
    raise AssertionError(f"unhandled command {args.command}")  # argparse refuses others


if __name__ == "__main__":
    sys.exit(main())
