"""The MX check: MX present, not null, and every target resolves to an address.

Pure Python, no network code (also `bulkmail.logic.dns.check_mx`): DNS through `resolve`.
"""

from __future__ import annotations

from .report import (
    Check,
    LookupFailed,
    Resolve,
    bare_host,
    join_reasons,
    lookup_failed_check,
    ok_check,
    problem_check,
    resolve_addresses,
)


def check_mx(domain: str, resolve: Resolve, name: str = "mx") -> Check:
    """MX present, not null, and every target resolves to an address."""
    try:
        answers = resolve(domain, "MX")
    except LookupFailed as error:
        return lookup_failed_check(name, error)
    fix = (
        f"Publish MX records at {domain} that point to hosts receiving its mail (the dns tier "
        "points them at the smtp hosts)."
    )
    if not answers:
        return problem_check(
            name,
            f"no MX record at {domain}: bounces and replies to it cannot be delivered, and "
            "receivers may reject mail from a domain that cannot receive",
            fix,
            domain,
        )
    targets: list[tuple[int, str]] = []
    for answer in answers:
        number, _space, target = answer.partition(" ")
        targets.append((int(number) if number.isdigit() else 0, bare_host(target)))
    if any(target in ("", ".") for _preference, target in targets):
        return problem_check(
            name,
            f"{domain} publishes a null MX (RFC 7505): it declares that it accepts no mail, so "
            "bounces and feedback to it are lost",
            fix,
            domain,
        )
    resolved: dict[str, list[str]] = {}
    broken: list[str] = []
    for preference, target in sorted(targets):
        try:
            found = resolve_addresses(target, resolve)
        except LookupFailed as error:
            broken.append(f"{target} (the lookup failed: {error.problem})")
            continue
        if found:
            resolved[target] = found
        else:
            broken.append(f"{target} (MX {preference}) has no A or AAAA record")
    details = {"mx": [f"{p} {t}" for p, t in sorted(targets)], "addresses": resolved}
    if broken:
        return problem_check(
            name,
            f"MX targets of {domain} do not resolve: {join_reasons(broken)}",
            "Give each MX target an A record, or point the MX at a host that has one.",
            domain,
            details=details,
        )
    shown = ", ".join(f"{p} {t} ({', '.join(resolved.get(t, []))})" for p, t in sorted(targets))
    return ok_check(name, shown, domain, details=details)
