"""The TLS-RPT check: `_smtp._tls` TXT with where reports of TLS failures go (RFC 8460).

Pure Python, no network code (also `bulkmail.logic.dns.check_tls_rpt`): DNS through `resolve`.
"""

from __future__ import annotations

from ..model.domains import validate_mailto
from ..model.errors import ModelError
from .check_report_address import report_addresses_check
from .parsers import tag_list
from .report import (
    Check,
    Probe,
    Resolve,
    join_reasons,
    one_versioned_txt,
    problem_check,
)


def check_tls_rpt(
    domain: str, resolve: Resolve, required: bool = False, probe: Probe | None = None
) -> Check:
    """`_smtp._tls` TXT `v=TLSRPTv1; rua=mailto:...|https://...` (RFC 8460 3).

    Each mailto: address must receive mail: its MX is looked up and, with `probe`, asked
    RCPT TO; https: destinations are not fetched.
    """
    name = "tls_rpt"
    owner = f"_smtp._tls.{domain}"
    fix = f"Publish TXT 'v=TLSRPTv1; rua=mailto:tls-reports@{domain}' at {owner}."
    record = one_versioned_txt(
        name,
        owner,
        "TLSRPTv1",
        resolve,
        required,
        kind="TLS-RPT",
        absent=(
            f"no TLS-RPT record at {owner}: you get no reports of TLS failures delivering to "
            f"{domain} (RFC 8460)"
        ),
        fix=fix,
        several="senders then send no reports",
    )
    if isinstance(record, Check):
        return record
    tags, problems = tag_list(record)
    uris = [uri.strip() for uri in tags.get("rua", "").split(",") if uri.strip()]
    if not uris:
        problems.append("there is no rua= (where reports go)")
    for uri in uris:
        if uri.startswith("mailto:"):
            try:
                validate_mailto(uri, "rua")
            except ModelError as error:
                problems.append(f"rua=: {error.problem}")
        elif not uri.startswith("https://"):
            problems.append(f"rua=: {uri!r} is neither mailto: nor https:")
    if problems:
        return problem_check(
            name, f"{owner}: {join_reasons(problems)}", fix, owner, required=required
        )
    return report_addresses_check(name, owner, "reports", uris, resolve, probe, required=required)
