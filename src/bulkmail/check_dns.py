"""`bulkmail check-dns`: check what sending domains publish in live DNS.

    bulkmail check-dns [DOMAIN...] [--nameserver IP] [--json] [--no-probe]
                       [--pool-ip IP]... [--selector SELECTOR]... [--key-store DIR]
                       [--expect FILE] [--inventory DIR]

The checks are `bulkmail.logic.dns.check` (the collection's module_utils, shared with the
`bulkmail.infra.check_dns` module), with DNS and the key store through `bulkmail.logic.adapters`;
this file only reads its arguments and the model's files, and prints.

What each domain should publish comes from flags, from the inventory model, or both:

- `--pool-ip` (repeatable): the addresses mail leaves from (SPF coverage, PTR);
- `--selector` (repeatable): the DKIM selectors to check;
- `--key-store DIR`: the DKIM key store (`<DIR>/<domain>/<selector>.private`); a selector
  whose private key is there must publish its public half;
- `--expect FILE`: a YAML or JSON file with the model's own variables, e.g. a copy of
  `group_vars/all`: `bulkmail_domains` (selectors, DMARC policy, return-path domain,
  optional `mta_sts`/`tls_rpt`), `bulkmail_ip_pools`, optional `bulkmail_dkim_key_store`;
- `--inventory DIR`: the same variables read from `DIR/group_vars/all.yml` and
  `DIR/group_vars/all/*.yml` (values that are Jinja templates or vaulted are ignored).

Report addresses (DMARC and TLS-RPT `rua=mailto:`) must receive mail: their domain needs an
MX (or an address), and its best reachable MX is asked, on port 25, `EHLO`, `MAIL FROM:<>`,
`RCPT TO:<address>` (then `RSET`, `QUIT`; never DATA). 250/251 pass, 4xx warns, 5xx or no MX
answering fails. `--no-probe` skips the SMTP part where port 25 is blocked ("not probed").

Flags win over the file. Without DOMAIN arguments every domain of the model is checked.
Exit status: 0 when every required check passes (warnings allowed), 1 when one fails,
2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import smtplib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from bulkmail.logic.adapters.dns_lookup import dnspython_resolve
from bulkmail.logic.adapters.key_store import public_keys_from_store
from bulkmail.logic.dns.check import check_domains, expectations_from_model
from bulkmail.logic.dns.report import (
    PASS,
    DomainReport,
    Expectations,
    LookupFailed,
    Probe,
    ProbeResult,
    Resolve,
    resolve_addresses,
)
from bulkmail.logic.model.domains import parse_ip_pools, pool_addresses
from bulkmail.logic.model.errors import ModelError
from bulkmail.logic.model.fields import validate_domain_name, validate_ipv4, validate_selector

DEFAULT_TIMEOUT = 5.0
PROBE_TIMEOUT = 10.0  # per SMTP connection and reply
SMTP_PORT = 25


class UsageError(Exception):
    """Bad arguments or expectations: exit status 2."""


# --- the network side: dnspython ----------------------------------------------------------


def nameserver_problem(nameserver: str, timeout: float = DEFAULT_TIMEOUT) -> str | None:
    """Why `nameserver` cannot be used, or None: one query instead of a timeout per check."""
    import dns.exception
    import dns.message
    import dns.query

    try:
        dns.query.udp(dns.message.make_query(".", "NS"), nameserver, timeout=timeout)
    except dns.exception.Timeout:
        return f"{nameserver} does not answer DNS queries (no reply within {timeout:g} s)"
    except (OSError, ValueError, dns.exception.DNSException) as error:
        return f"{nameserver} cannot be asked: {error}"
    return None  # any reply, even REFUSED, means the server is there


# --- the network side: SMTP probes of report addresses -------------------------------------


def _text(message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return " ".join(text.split())


def _converse(client: smtplib.SMTP, host: str, address: str) -> ProbeResult:
    """EHLO (HELO if refused), MAIL FROM:<>, RCPT TO:<address>; the reply that decides."""
    code, message = client.ehlo()
    if code != 250:
        code, message = client.helo()
        if code != 250:
            return ProbeResult(code, _text(message), host, "EHLO")
    code, message = client.mail("")  # MAIL FROM:<>, as reporters and bounces send
    if code != 250:
        return ProbeResult(code, _text(message), host, "MAIL FROM:<>")
    code, message = client.rcpt(address)
    result = ProbeResult(code, _text(message), host, "RCPT TO")
    try:
        client.rset()
        client.quit()
    except (OSError, smtplib.SMTPException):
        pass  # the answer is in; how the session ends does not change it
    return result


def smtp_probe(
    resolve: Resolve,
    timeout: float = PROBE_TIMEOUT,
    port: int = SMTP_PORT,
    helo: str | None = None,
) -> Probe:
    """A `probe` over smtplib: MX hosts are resolved through `resolve` (the checked DNS,
    e.g. --nameserver, not the system's), tried in order until one answers."""

    def probe(address: str, mx_hosts: Sequence[str]) -> ProbeResult:
        unreachable = []
        for host in mx_hosts:
            try:
                addresses = resolve_addresses(host, resolve)
            except LookupFailed as error:
                unreachable.append(f"{host}: {error.problem}")
                continue
            if not addresses:
                unreachable.append(f"{host}: no address")
            for ip in addresses:
                client = smtplib.SMTP(local_hostname=helo, timeout=timeout)
                try:
                    code, message = client.connect(ip, port)
                    if code != 220:
                        return ProbeResult(code, _text(message), host, "greeting")
                    return _converse(client, host, address)
                except (OSError, smtplib.SMTPException) as error:
                    unreachable.append(f"{host}[{ip}]: {error or type(error).__name__}")
                finally:
                    client.close()
        return ProbeResult(None, "; ".join(unreachable) or "no MX host")

    return probe


# --- the model side: flags and files -------------------------------------------------------


def _yaml_loader() -> Any:
    import yaml

    class Loader(yaml.SafeLoader):
        """Safe YAML that reads Ansible's !vault and !unsafe values as nothing."""

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    return Loader


def load_variables(path: Path) -> dict[str, Any]:
    """A YAML or JSON file of variables (a mapping)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as error:
            raise UsageError(f"{path} is not valid JSON: {error}") from None
    else:
        try:
            import yaml
        except ImportError:
            raise UsageError(f"{path}: reading YAML needs PyYAML (or give a .json file)") from None
        try:
            data = yaml.load(text, Loader=_yaml_loader())
        except yaml.YAMLError as error:
            raise UsageError(f"{path} is not valid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise UsageError(f"{path} is not a mapping of variables (bulkmail_domains: ...)")
    return dict(data)


def inventory_variables(inventory: Path) -> dict[str, Any]:
    """The variables of `group_vars/all`, as a file or as a directory of files."""
    group_vars = inventory / "group_vars"
    files = [group_vars / f"all{suffix}" for suffix in (".yml", ".yaml", ".json")]
    if (group_vars / "all").is_dir():
        files += sorted(
            p for p in (group_vars / "all").iterdir() if p.suffix in (".yml", ".yaml", ".json")
        )
    files = [path for path in files if path.is_file()]
    if not files:
        raise UsageError(f"{inventory} has no group_vars/all.yml or group_vars/all/*.yml")
    variables: dict[str, Any] = {}
    for path in files:
        variables.update(load_variables(path))
    return variables


def _plain_path(value: Any) -> str | None:
    """A configured path, unless it is a template only Ansible can expand."""
    return value if isinstance(value, str) and value and "{{" not in value else None


def build_expectations(args: argparse.Namespace) -> list[Expectations]:
    variables: dict[str, Any] = {}
    if args.inventory:
        variables.update(inventory_variables(Path(args.inventory)))
    if args.expect:
        variables.update(load_variables(Path(args.expect)))
    try:
        pool_ips = tuple(
            validate_ipv4(ip, f"--pool-ip[{index}]") for index, ip in enumerate(args.pool_ip)
        )
        selectors = tuple(
            validate_selector(selector, f"--selector[{index}]")
            for index, selector in enumerate(args.selector)
        )
        if not pool_ips and variables.get("bulkmail_ip_pools") is not None:
            pool_ips = pool_addresses(parse_ip_pools(variables["bulkmail_ip_pools"]))
        key_store = args.key_store or _plain_path(variables.get("bulkmail_dkim_key_store"))

        model_domains: dict[str, tuple[int, Any]] = {}
        for index, raw in enumerate(variables.get("bulkmail_domains") or []):
            if isinstance(raw, Mapping) and isinstance(raw.get("name"), str):
                model_domains[raw["name"]] = (index, raw)
        names = args.domains or list(model_domains)
        if not names:
            raise UsageError(
                "name at least one domain, or give --expect/--inventory with bulkmail_domains"
            )
        expectations = []
        for position, name in enumerate(names):
            name = validate_domain_name(name.rstrip(".").lower(), f"DOMAIN[{position}]")
            if name in model_domains:
                index, raw = model_domains[name]
                expect = expectations_from_model(raw, pool_ips, path=f"bulkmail_domains[{index}]")
            else:
                expect = Expectations(domain=name, pool_ips=pool_ips)
            if selectors:
                expect = replace(expect, dkim_selectors=selectors)
            if key_store:
                keys = public_keys_from_store(key_store, name, expect.dkim_selectors)
                expect = replace(expect, dkim_public_keys=keys)
            expectations.append(expect)
    except ModelError as error:
        raise UsageError(str(error)) from None
    return expectations


# --- output --------------------------------------------------------------------------------


def render_table(reports: Sequence[DomainReport]) -> str:
    """One line per check; a failed or warned check gets its fix on the next line."""
    rows = [
        (report.domain, check.name, check.status.upper() if check.status != PASS else PASS, check)
        for report in reports
        for check in report.checks
    ]
    headers = ("DOMAIN", "CHECK", "STATUS")
    widths = [max([len(headers[i])] + [len(row[i]) for row in rows]) for i in range(3)]
    indent = sum(widths) + 2 * 3

    def line(*cells: str) -> str:
        return (
            "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) + "  "
        )

    out = [line(*headers) + "REASON / FIX"]
    for domain, name, status, check in rows:
        optional = "" if check.required or check.status == PASS else " (optional)"
        out.append(line(domain, name, status) + check.reason + optional)
        if check.status != PASS and check.fix:
            out.append(" " * indent + "fix: " + check.fix)
    out.append("")
    for report in reports:
        failed = sum(check.failed for check in report.checks)
        warned = sum(check.status != PASS and not check.failed for check in report.checks)
        summary = f"{failed} required check(s) failed" if failed else "required checks pass"
        if warned:
            summary += f", {warned} warning(s)"
        out.append(f"{report.domain}: {report.status.upper()}: {summary}")
    return "\n".join(out)


def render_json(reports: Sequence[DomainReport]) -> str:
    return json.dumps(
        {"ok": all(report.ok for report in reports), "domains": [r.as_dict() for r in reports]},
        indent=2,
    )


# --- the command ---------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("domains", nargs="*", metavar="DOMAIN", help="sending domains to check")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--nameserver", metavar="IP", help="ask this server instead of the system's resolver"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"per query (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--pool-ip",
        action="append",
        default=[],
        metavar="IP",
        help="a sending address (repeat for each); SPF must cover it, its PTR must confirm",
    )
    parser.add_argument(
        "--selector",
        action="append",
        default=[],
        metavar="SELECTOR",
        help="a DKIM selector to check (repeat for each)",
    )
    parser.add_argument(
        "--key-store",
        metavar="DIR",
        help="DKIM key store (<DIR>/<domain>/<selector>.private): published keys must match",
    )
    parser.add_argument(
        "--expect",
        metavar="FILE",
        help="YAML/JSON with bulkmail_domains, bulkmail_ip_pools (the inventory model)",
    )
    parser.add_argument("--inventory", metavar="DIR", help="read the model from DIR/group_vars/all")
    parser.add_argument(
        "--no-probe",
        action="store_true",
        help="do not ask report addresses' MX over SMTP (port 25 blocked); only their MX is "
        "looked up",
    )


def run(
    args: argparse.Namespace,
    resolve: Resolve | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    probe: Probe | None = None,
) -> int:
    """Check, print, and return the exit status. `resolve` replaces dnspython and `probe`
    the SMTP probe of report addresses (tests)."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        expectations = build_expectations(args)
    except UsageError as error:
        print(f"bulkmail check-dns: error: {error}", file=stderr)
        return 2
    if resolve is None:
        try:
            problem = args.nameserver and nameserver_problem(args.nameserver, args.timeout)
            if problem:
                print(f"bulkmail check-dns: {problem}; nothing was checked", file=stderr)
                return 1
            resolve = dnspython_resolve(args.nameserver, args.timeout)
        except ImportError:
            print(
                "bulkmail check-dns: error: needs dnspython (apt-get install python3-dnspython)",
                file=stderr,
            )
            return 2
    if getattr(args, "no_probe", False):
        probe = None
    elif probe is None:
        probe = smtp_probe(resolve)
    reports = check_domains(expectations, resolve, probe)
    print(render_json(reports) if args.json else render_table(reports), file=stdout)
    return 0 if all(report.ok for report in reports) else 1
