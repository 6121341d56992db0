"""What a sending domain publishes in DNS, checked against what it should publish.

Pure Python, no Ansible import and no network code (also `bulkmail.logic.dns.check`): runs
one domain's checks (check_spf.py, check_dkim.py, ... one file per record kind) through the
caller's `resolve` (report.py says its contract). The two doors are the `bulkmail check-dns`
command (src/bulkmail/check_dns.py) and the `bulkmail.infra.check_dns` module, both with
adapters/dns_lookup.py's dnspython resolver and adapters/key_store.py's DKIM keys.

Report addresses are probed over SMTP only when the caller passes a `probe` (report.py): the
command does, with smtplib, unless `--no-probe`; the Ansible module does not (it runs where
port 25 may be blocked, and a playbook should not depend on it), so there the report checks
look the address's MX up and say "not probed".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..model.domains import parse_domain
from ..model.errors import ModelError
from ..model.fields import validate_ipv4
from .check_dkim import check_dkim
from .check_dmarc import check_dmarc
from .check_mta_sts import check_mta_sts
from .check_mx import check_mx
from .check_ptr import check_ptr
from .check_spf import check_spf
from .check_tls_rpt import check_tls_rpt
from .report import (
    DomainReport,
    Expectations,
    LookupFailed,
    Probe,
    ProbeResult,
    Resolve,
    bare_host,
    problem_check,
)


def check_domain(
    expect: Expectations, resolve: Resolve, probe: Probe | None = None
) -> DomainReport:
    """Every check of one domain, in a stable order; `probe` tries the report addresses."""
    domain = expect.domain
    checks = check_spf(domain, expect.pool_ips, resolve)
    return_path = expect.return_path_domain
    if return_path and return_path != domain:
        checks += check_spf(return_path, expect.pool_ips, resolve, prefix="return_path.spf")
    if expect.dkim_selectors:
        for selector in expect.dkim_selectors:
            key = expect.dkim_public_keys.get(selector)
            checks.append(check_dkim(domain, selector, resolve, key))
    else:
        checks.append(
            problem_check(
                "dkim",
                "no DKIM selectors given, so no key was checked (DNS cannot list selectors)",
                "Pass the selectors that sign for this domain (--selector, or the domain's "
                "dkim_selectors).",
                domain,
                required=False,
            )
        )
    checks += check_dmarc(domain, resolve, expect.dmarc, return_path, probe)
    checks.append(check_mx(domain, resolve))
    if return_path and return_path != domain:
        checks.append(check_mx(return_path, resolve, name="return_path.mx"))
    if expect.pool_ips:
        checks.extend(check_ptr(address, resolve) for address in expect.pool_ips)
    else:
        checks.append(
            problem_check(
                "ptr",
                "no pool addresses given, so reverse DNS was not checked",
                "Pass the sending addresses (--pool-ip, or pool_ips in the module).",
                domain,
                required=False,
            )
        )
    checks.append(check_mta_sts(domain, resolve, expect.require_mta_sts, expect.mta_sts))
    checks.append(check_tls_rpt(domain, resolve, expect.require_tls_rpt, probe))
    return DomainReport(domain, tuple(checks))


def cached(resolve: Resolve) -> Resolve:
    """`resolve` that asks each question once (pool PTRs are shared by every domain)."""
    answers: dict[tuple[str, str], list[str] | LookupFailed] = {}

    def lookup(name: str, rdtype: str) -> list[str]:
        key = (bare_host(name), rdtype.upper())
        if key not in answers:
            try:
                answers[key] = list(resolve(*key))
            except LookupFailed as error:
                answers[key] = error
        answer = answers[key]
        if isinstance(answer, LookupFailed):
            raise answer
        return list(answer)

    return lookup


def cached_probe(probe: Probe) -> Probe:
    """`probe` that asks about each address once (domains often share one report mailbox)."""
    results: dict[str, ProbeResult] = {}

    def ask(address: str, mx_hosts: Sequence[str]) -> ProbeResult:
        key = address.lower()
        if key not in results:
            results[key] = probe(address, mx_hosts)
        return results[key]

    return ask


def check_domains(
    expectations: Iterable[Expectations], resolve: Resolve, probe: Probe | None = None
) -> list[DomainReport]:
    """Every domain's checks; without `probe` the report addresses are not probed."""
    lookup = cached(resolve)
    asked = cached_probe(probe) if probe is not None else None
    return [check_domain(expect, lookup, asked) for expect in expectations]


def failure_lines(reports: Iterable[DomainReport]) -> list[str]:
    """One line per failing required check: `domain check: reason. Fix: ...`."""
    return [
        f"{report.domain} {check.name}: {check.reason}. Fix: {check.fix}"
        for report in reports
        for check in report.checks
        if check.failed
    ]


# --- expectations from the inventory model -------------------------------------------------


def expectations_from_model(
    raw_domain: Any,
    pool_ips: Iterable[str] = (),
    dkim_public_keys: Mapping[str, Mapping[str, str]] | None = None,
    path: str = "bulkmail_domains[0]",
) -> Expectations:
    """Expectations for one `bulkmail_domains` entry; a ModelError names the faulty field."""
    if not isinstance(raw_domain, Mapping):
        raise ModelError(path, f"{raw_domain!r} is not a mapping with at least name and dmarc")
    domain = parse_domain(raw_domain, path)
    addresses = tuple(
        validate_ipv4(address, f"pool_ips[{index}]") for index, address in enumerate(pool_ips)
    )
    keys = dict((dkim_public_keys or {}).get(domain.name) or {})
    return Expectations(
        domain=domain.name,
        pool_ips=addresses,
        dkim_selectors=domain.dkim_selectors,
        dkim_public_keys=keys,
        dmarc=domain.dmarc,
        return_path_domain=domain.return_path_domain,
        # The model publishes them (mode none too: it withdraws a policy), so they must be there.
        require_mta_sts=domain.mta_sts is not None,
        require_tls_rpt=domain.tls_rpt is not None,
        mta_sts=domain.mta_sts,
    )
