"""The DMARC checks at `_dmarc.<domain>`: one record, syntax, policy, reports, alignment.

Pure Python, no network code (also `bulkmail.logic.dns.check_dmarc`): DNS through `resolve`.
"""

from __future__ import annotations

from ..model.domains import Dmarc
from .check_report_address import report_addresses_check
from .parsers import DMARC_TAGS, has_version, parse_dmarc_record
from .records import render_dmarc_record
from .report import (
    Check,
    LookupFailed,
    Probe,
    Resolve,
    join_reasons,
    lookup_failed_check,
    ok_check,
    problem_check,
)


def _dmarc_differences(published: Dmarc, expected: Dmarc) -> list[str]:
    differences = []
    for tag, attribute in (("p", "policy"), ("pct", "pct"), ("adkim", "adkim"), ("aspf", "aspf")):
        have, want = getattr(published, attribute), getattr(expected, attribute)
        if have != want:
            differences.append(f"{tag}={have} is published, the model says {tag}={want}")
    if expected.rua and set(published.rua) != set(expected.rua):
        differences.append(
            f"rua={','.join(published.rua) or '(none)'} is published, the model says "
            f"rua={','.join(expected.rua)}"
        )
    return differences


def check_dmarc(
    domain: str,
    resolve: Resolve,
    expected: Dmarc | None = None,
    return_path_domain: str | None = None,
    probe: Probe | None = None,
) -> list[Check]:
    """DMARC at _dmarc.<domain>: one record, syntax, policy, reports, alignment.

    With `probe`, each mailto: report address must accept RCPT TO at its MX; without, only
    its MX is looked up and the check says "not probed".
    """
    owner = f"_dmarc.{domain}"
    suggestion = (
        render_dmarc_record(expected)
        if expected
        else f"v=DMARC1; p=none; rua=mailto:dmarc@{domain}"
    )
    try:
        texts = resolve(owner, "TXT")
    except LookupFailed as error:
        return [lookup_failed_check("dmarc.record", error)]
    found = [text for text in texts if has_version(text, "DMARC1")]
    if not found:
        return [
            problem_check(
                "dmarc.record",
                f"no DMARC record at {owner}: Gmail and Yahoo require one from bulk senders "
                "and reject or spam-folder their mail without it",
                f"Publish TXT at {owner}: {suggestion!r} (start at p=none, tighten once the "
                "reports are clean).",
                owner,
            )
        ]
    if len(found) > 1:
        return [
            problem_check(
                "dmarc.record",
                f"{len(found)} DMARC records at {owner}; RFC 7489 6.6.3 says receivers then "
                "apply no DMARC policy at all",
                f"Keep one TXT record at {owner}: {suggestion!r}.",
                owner,
                details={"records": found},
            )
        ]
    record = found[0]
    checks = [
        ok_check("dmarc.record", f"one DMARC record: {record!r}", owner, details={"record": record})
    ]
    published, tags, problems = parse_dmarc_record(record)
    if published is None:
        checks.append(
            problem_check(
                "dmarc.syntax",
                f"the DMARC record at {owner} is invalid: {join_reasons(problems)}",
                f"Replace it with {suggestion!r}.",
                owner,
                details={"problems": problems},
            )
        )
        return checks
    unknown = [tag for tag in tags if tag not in DMARC_TAGS]
    if unknown:
        checks.append(
            problem_check(
                "dmarc.syntax",
                f"the DMARC record at {owner} has tags receivers ignore: {', '.join(unknown)}",
                f"Remove {', '.join(unknown)} from the DMARC record (typo?).",
                owner,
                required=False,
            )
        )
    else:
        checks.append(ok_check("dmarc.syntax", "valid DMARC syntax", owner))
    checks.append(_dmarc_policy_check(owner, published, expected))
    checks.append(_dmarc_reports_check(domain, owner, published, resolve, probe))
    checks.append(_dmarc_alignment_check(domain, owner, published, expected, return_path_domain))
    return checks


def _dmarc_policy_check(owner: str, published: Dmarc, expected: Dmarc | None) -> Check:
    details = {"policy": published.policy, "pct": published.pct}
    differences = _dmarc_differences(published, expected) if expected else []
    policy_differences = [d for d in differences if d.startswith(("p=", "pct="))]
    if policy_differences:
        return problem_check(
            "dmarc.policy",
            f"the DMARC policy at {owner} is not the model's: {join_reasons(policy_differences)}",
            f"Run the dns tier to publish {render_dmarc_record(expected)!r}." if expected else "",
            owner,
            details=details,
        )
    if published.policy == "none":
        reason = (
            "p=none: monitoring only, receivers act on nothing; raise it once reports are clean"
        )
    elif published.pct < 100:
        reason = f"p={published.policy} on {published.pct}% of failing mail"
    else:
        reason = f"p={published.policy}"
    return ok_check("dmarc.policy", reason, owner, details=details)


def _org_guess(name: str) -> str:
    """The last two labels: a stand-in for the organizational domain (no public suffix list)."""
    return ".".join(name.split(".")[-2:])


def _dmarc_reports_check(
    domain: str, owner: str, published: Dmarc, resolve: Resolve, probe: Probe | None
) -> Check:
    if not published.rua:
        return problem_check(
            "dmarc.reports",
            f"the DMARC record at {owner} has no rua=: you get no aggregate reports, so you "
            "cannot see what fails before tightening the policy",
            f"Add rua=mailto:dmarc@{domain} to the DMARC record.",
            owner,
            required=False,
        )
    unauthorized = []
    for uri in published.rua:
        if not uri.startswith("mailto:"):
            continue
        target = uri.partition("@")[2].partition("!")[0].lower()
        if not target or _org_guess(target) == _org_guess(domain):
            continue
        # RFC 7489 7.1: reports go to another domain only if that domain agrees
        authorization = f"{domain}._report._dmarc.{target}"
        try:
            texts = resolve(authorization, "TXT")
        except LookupFailed:
            texts = []
        if not any(has_version(text, "DMARC1") for text in texts):
            unauthorized.append((uri, authorization))
    delivery = report_addresses_check(
        "dmarc.reports",
        owner,
        "aggregate reports",
        published.rua,
        resolve,
        probe,
        skipped=[uri for uri, _name in unauthorized],
    )
    if delivery.failed:
        return delivery  # an address that bounces matters more than one that is not allowed
    if unauthorized:
        shown = ", ".join(uri for uri, _name in unauthorized)
        names = ", ".join(name for _uri, name in unauthorized)
        return problem_check(
            "dmarc.reports",
            f"reports go to {shown} in another domain, which does not authorize them "
            "(RFC 7489 7.1): receivers send them nowhere",
            f"Publish TXT 'v=DMARC1' at {names}.",
            owner,
            required=False,
        )
    return delivery


def _dmarc_alignment_check(
    domain: str,
    owner: str,
    published: Dmarc,
    expected: Dmarc | None,
    return_path_domain: str | None,
) -> Check:
    differences = _dmarc_differences(published, expected) if expected else []
    alignment = [d for d in differences if d.startswith(("adkim=", "aspf="))]
    shown = f"adkim={published.adkim} aspf={published.aspf}"
    if alignment:
        return problem_check(
            "dmarc.alignment",
            f"the DMARC alignment at {owner} is not the model's: {join_reasons(alignment)}",
            f"Run the dns tier to publish {render_dmarc_record(expected)!r}." if expected else "",
            owner,
        )
    if published.aspf == "s" and return_path_domain and return_path_domain != domain:
        return problem_check(
            "dmarc.alignment",
            f"aspf=s at {owner}, but bounces use {return_path_domain}: SPF never aligns with "
            f"{domain} under strict alignment, so DMARC rests on DKIM alone",
            f"Set aspf=r, or use {domain} as the return-path domain.",
            owner,
        )
    modes = {"r": "relaxed", "s": "strict"}
    return ok_check(
        "dmarc.alignment",
        f"{shown} (DKIM {modes[published.adkim]}, SPF {modes[published.aspf]})",
        owner,
    )
