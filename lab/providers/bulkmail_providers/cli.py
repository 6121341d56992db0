"""python3 -m bulkmail_providers [serve | received | followups | dmarc-reports | reset | behave |
relay | relay-received | relay-events | lab-certs | ping | check-config]"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import smtplib
import sys
from pathlib import Path
from typing import Any

from bulkmail_providers.config import (
    Behaviour,
    ConfigError,
    ServerConfig,
    apply_environment,
    load_config,
)
from bulkmail_providers.mailstore import read_records, reset
from bulkmail_providers.overrides import write as write_override
from bulkmail_providers.routing import provider_for_domain


def _config(args: argparse.Namespace) -> ServerConfig:
    config = load_config(args.config)
    overrides: dict[str, str] = {}
    if getattr(args, "listen", None):
        overrides["PROVIDERS_LISTEN"] = args.listen
    if getattr(args, "dns", None):
        overrides["PROVIDERS_DNS"] = args.dns
    if args.data_dir:
        overrides["PROVIDERS_DATA_DIR"] = str(args.data_dir)
    return apply_environment(config, overrides)


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-connection chatter
    from bulkmail_providers.server import serve  # the server's imports are only needed here

    asyncio.run(serve(_config(args)))
    return 0


def _table_line(record: dict[str, Any]) -> str:
    return (
        f"{record['received_at']}  {record['provider']:<8} {record['mail_from'] or '<>'} -> "
        f"{','.join(record['rcpt_to'])}  dkim={record['dkim']['result']} "
        f"spf={record['spf']['result']} dmarc={record['dmarc']['result']} "
        f"tls={'yes' if record['tls'] else 'no'}  {record['message_id']}"
    )


def _received(args: argparse.Namespace) -> int:
    config = _config(args)
    records = read_records(config.received_log, since=args.since)
    if args.count:
        print(sum(1 for _ in records))
        return 0
    for record in records:
        print(_table_line(record) if args.table else json.dumps(record, sort_keys=True))
    return 0


def _followups(args: argparse.Namespace) -> int:
    config = _config(args)
    for record in read_records(config.followup_log, since=args.since):
        print(json.dumps(record, sort_keys=True))
    return 0


def _dmarc_reports(args: argparse.Namespace) -> int:
    """Send the DMARC aggregate and TLS-RPT reports of what was received; 1 if one failed."""
    from bulkmail_providers.dmarc_reports import Reporter
    from bulkmail_providers.dnssource import LabResolver

    config = _config(args)
    if args.provider and args.provider not in {p.name for p in config.providers}:
        names = ", ".join(p.name for p in config.providers)
        print(f"dmarc-reports: --provider {args.provider}: not one of {names}", file=sys.stderr)
        return 2
    reporter = Reporter(config, LabResolver(config.dns_server, config.dns_timeout))
    outcomes = reporter.run(since=args.since, provider=args.provider)
    for outcome in outcomes:
        print(json.dumps(outcome, sort_keys=True))
    return 1 if any(o["status"] == "failed" for o in outcomes) else 0


def _reset(args: argparse.Namespace) -> int:
    from bulkmail_providers.dmarc_reports import STATE_FILE

    config = _config(args)
    reset(config.followup_log)
    (config.data_dir / STATE_FILE).unlink(missing_ok=True)  # reported counts refer to the log
    dropped = reset(config.received_log, config.message_dir if args.messages else None)
    print(
        f"reset: dropped {dropped} records" + (" and the stored messages" if args.messages else "")
    )
    return 0


def _behave(args: argparse.Namespace) -> int:
    config = _config(args)
    if provider_for_domain(args.domain, config) is None:
        print(f"behave: no provider receives for {args.domain}", file=sys.stderr)
        return 2
    behaviour = None if args.behaviour == "configured" else Behaviour(args.behaviour)
    table = write_override(config.data_dir, args.domain, behaviour)
    for domain, value in table.items():
        print(f"{domain}: {value.value}")
    return 0


def _relay(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    from bulkmail_providers.relay import serve_relay

    host, _, port = args.listen.rpartition(":")
    data_dir = args.data_dir or _config(args).data_dir
    account = (args.username, args.password_file)
    certificate = args.certificate or os.environ.get("RELAY_CERTIFICATE")
    key = args.key or os.environ.get("RELAY_KEY")
    if bool(certificate) != bool(key):
        print("relay: give both --certificate and --key, or neither", file=sys.stderr)
        return 2
    files = (Path(certificate), Path(key)) if certificate and key else None
    asyncio.run(serve_relay(args.name, host or "0.0.0.0", int(port), account, data_dir, files))
    return 0


def _relay_received(args: argparse.Namespace) -> int:
    from bulkmail_providers.relay import relay_log

    data_dir = args.data_dir or _config(args).data_dir
    for record in read_records(relay_log(data_dir, args.name), since=args.since):
        print(json.dumps(record, sort_keys=True))
    return 0


def _relay_events(args: argparse.Namespace) -> int:
    from bulkmail_providers.relay import relay_events

    data_dir = args.data_dir or _config(args).data_dir
    for record in read_records(relay_events(data_dir, args.name), since=args.since):
        print(json.dumps(record, sort_keys=True))
    return 0


def _lab_certs(args: argparse.Namespace) -> int:
    from bulkmail_providers.relay import relay_hostname
    from bulkmail_providers.tls import ensure_lab_certificates

    if not args.dir.is_dir():
        print(f"lab-certs: {args.dir} is not a directory", file=sys.stderr)
        return 2
    written = ensure_lab_certificates(
        args.dir,
        ca_signed={name: relay_hostname(name) for name in args.ca_signed},
        pinned={name: relay_hostname(name) for name in args.pinned},
    )
    print(f"lab-certs: {', '.join(written) if written else 'nothing to do'} in {args.dir}")
    return 0


def _ping(args: argparse.Namespace) -> int:
    """Readiness: the server greets and answers EHLO (the container's HEALTHCHECK)."""
    port = args.port or _config(args).listen_port
    try:
        with smtplib.SMTP(args.host, port, timeout=args.timeout) as client:
            code, _ = client.ehlo("healthcheck.providers.test")
    except (OSError, smtplib.SMTPException) as error:
        print(f"ping: {args.host}:{port}: {error}", file=sys.stderr)
        return 1
    if code != 250:
        print(f"ping: EHLO answered {code}", file=sys.stderr)
        return 1
    return 0


def _check_config(args: argparse.Namespace) -> int:
    config = _config(args)
    for provider in config.providers:
        print(
            f"{provider.name}: {provider.hostname} {', '.join(provider.domains)} "
            f"behaviour={provider.behaviour.value} defer_stage={provider.defer_stage.value}"
        )
    for pattern, behaviour in config.local_parts:
        print(f"local part {pattern} -> {behaviour.value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python3 -m bulkmail_providers", description=__doc__)
    parser.add_argument("--config", type=Path, help="providers.toml (env PROVIDERS_CONFIG)")
    parser.add_argument("--data-dir", type=Path, help="env PROVIDERS_DATA_DIR")
    commands = parser.add_subparsers(dest="command")

    serve = commands.add_parser("serve", help="run the SMTP server (the default)")
    serve.add_argument("--listen", help="HOST:PORT (env PROVIDERS_LISTEN)")
    serve.add_argument("--dns", help="name server to verify against (env PROVIDERS_DNS)")
    serve.set_defaults(func=_serve)

    received = commands.add_parser("received", help="print the received-message records")
    received.add_argument("--since", type=int, default=0, help="skip the first N records")
    form = received.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="JSON lines (the default)")
    form.add_argument("--table", action="store_true", help="one readable line per record")
    form.add_argument("--count", action="store_true", help="print how many records there are")
    received.set_defaults(func=_received)

    followups = commands.add_parser("followups", help="print what became of DSNs and ARF reports")
    followups.add_argument("--since", type=int, default=0, help="skip the first N records")
    followups.set_defaults(func=_followups)

    reports = commands.add_parser(
        "dmarc-reports",
        help="mail DMARC aggregate (RFC 7489) and TLS-RPT (RFC 8460) reports of what arrived",
    )
    reports.add_argument("--dns", help="name server to look rua and MX up at (env PROVIDERS_DNS)")
    reports.add_argument(
        "--since",
        type=int,
        help="report the records after the first N (default: those not yet reported)",
    )
    reports.add_argument("--provider", help="only this provider's reports, e.g. google")
    reports.set_defaults(func=_dmarc_reports)

    reset_cmd = commands.add_parser("reset", help="truncate the received and followup logs")
    reset_cmd.add_argument("--messages", action="store_true", help="remove stored .eml too")
    reset_cmd.set_defaults(func=_reset)

    behave = commands.add_parser(
        "behave", help="set a domain's behaviour while the server runs (defer, then accept)"
    )
    behave.add_argument("domain", help="a provider domain, e.g. yahoo.test")
    behave.add_argument(
        "behaviour",
        choices=[b.value for b in Behaviour] + ["configured"],
        help="'configured' drops the override: providers.toml decides again",
    )
    behave.set_defaults(func=_behave)

    relay = commands.add_parser("relay", help="run an emulated smarthost (SMTP AUTH, records)")
    relay.add_argument("--name", required=True, help="e.g. relay1; records go to relay-NAME.jsonl")
    relay.add_argument("--listen", default="0.0.0.0:587", help="HOST:PORT (default 0.0.0.0:587)")
    relay.add_argument("--username", required=True, help="the one account's login")
    relay.add_argument("--password-file", type=Path, required=True, help="its password")
    relay.add_argument(
        "--certificate", help="kept PEM certificate (env RELAY_CERTIFICATE); else self-signed"
    )
    relay.add_argument("--key", help="its PEM private key (env RELAY_KEY)")
    relay.set_defaults(func=_relay)

    relayed = commands.add_parser("relay-received", help="print what a relay accepted")
    relayed.add_argument("--name", required=True)
    relayed.add_argument("--since", type=int, default=0, help="skip the first N records")
    relayed.set_defaults(func=_relay_received)

    events = commands.add_parser(
        "relay-events", help="print a relay's TLS handshakes and AUTH commands"
    )
    events.add_argument("--name", required=True)
    events.add_argument("--since", type=int, default=0, help="skip the first N records")
    events.set_defaults(func=_relay_events)

    certs = commands.add_parser(
        "lab-certs", help="make the relays' kept certificates (a lab CA, pins) where missing"
    )
    certs.add_argument("--dir", type=Path, required=True, help="e.g. inventories/lab/.secrets")
    certs.add_argument("--ca-signed", action="append", default=[], metavar="RELAY",
                       help="a relay whose certificate the lab CA signs (repeatable)")  # fmt: skip
    certs.add_argument("--pinned", action="append", default=[], metavar="RELAY",
                       help="a relay with a self-signed pair and its digest")  # fmt: skip
    certs.set_defaults(func=_lab_certs)

    ping = commands.add_parser("ping", help="exit 0 when the server answers EHLO")
    ping.add_argument("--host", default="127.0.0.1")
    ping.add_argument("--port", type=int, help="default: the port the server listens on")
    ping.add_argument("--timeout", type=float, default=5.0)
    ping.set_defaults(func=_ping)

    check = commands.add_parser("check-config", help="validate and summarise providers.toml")
    check.set_defaults(func=_check_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "serve"])
    try:
        return int(args.func(args))
    except ConfigError as error:
        print(f"bulkmail_providers: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
