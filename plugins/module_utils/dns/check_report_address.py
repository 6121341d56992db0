"""Whether a report address (DMARC or TLS-RPT `rua=mailto:`) can receive mail.

Pure Python, no network code (also `bulkmail.logic.dns.check_report_address`): DNS through
`resolve`, the SMTP conversation through the caller's `probe` (report.py says its contract).
A published record whose address accepts no mail looks fine and yields nothing: reporters
try, get a bounce, and the operator never learns why the reports stopped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .report import (
    FAIL,
    PASS,
    WARN,
    Check,
    LookupFailed,
    Probe,
    ProbeResult,
    Resolve,
    bare_host,
    ok_check,
    problem_check,
    resolve_addresses,
)

ACCEPTED = (250, 251)


@dataclass(frozen=True)
class Deliverability:
    """One address's verdict: PASS, WARN (try later) or FAIL, and the words for it."""

    address: str
    status: str
    text: str


def mailto_address(uri: str) -> str:
    """`mailto:dmarc@example.com!10m` -> `dmarc@example.com` (RFC 7489 6.2 size limit off)."""
    return uri[len("mailto:") :].partition("!")[0].strip()


def _mail_hosts(domain: str, resolve: Resolve) -> tuple[list[str], str]:
    """The hosts receiving for `domain` by preference, or ([], why none)."""
    try:
        answers = resolve(domain, "MX")
    except LookupFailed as error:
        return [], f"the MX lookup of {domain} failed ({error.problem})"
    targets = []
    for answer in answers:
        number, _space, target = answer.partition(" ")
        targets.append((int(number) if number.isdigit() else 0, bare_host(target)))
    if any(target in ("", ".") for _preference, target in targets):
        return [], f"{domain} publishes a null MX (RFC 7505): it accepts no mail"
    if targets:
        return [target for _preference, target in sorted(targets)], ""
    try:
        addresses = resolve_addresses(domain, resolve)
    except LookupFailed as error:
        return [], f"{domain} has no MX and the lookup of its address failed ({error.problem})"
    if addresses:
        return [domain], ""  # the implicit MX (RFC 5321 5.1)
    return [], f"{domain} has no MX and no address: nobody receives mail for it"


def _reply(result: ProbeResult) -> str:
    return f"{result.code} {result.reply}".strip()


def address_deliverability(address: str, resolve: Resolve, probe: Probe | None) -> Deliverability:
    """MX (or A) of the address's domain, then, with a probe, what its best MX says to RCPT."""
    domain = address.rpartition("@")[2].lower()
    hosts, problem = _mail_hosts(domain, resolve)
    if not hosts:
        return Deliverability(address, FAIL, problem)
    if probe is None:
        return Deliverability(address, PASS, f"MX {hosts[0]}; not probed")
    result = probe(address, hosts)
    if result.code is None:
        return Deliverability(
            address, FAIL, f"no MX of {domain} answered on port 25 ({result.reply})"
        )
    if result.code in ACCEPTED:
        return Deliverability(address, PASS, f"{result.host} accepts it ({_reply(result)})")
    if 400 <= result.code < 500:
        return Deliverability(
            address,
            WARN,
            f"{result.host} answered {result.stage} with {_reply(result)}: a temporary "
            "refusal, try later",
        )
    return Deliverability(
        address, FAIL, f"{result.host} refuses it: {result.stage} answered {_reply(result)}"
    )


def report_addresses_check(
    name: str,
    owner: str,
    what: str,
    uris: Sequence[str],
    resolve: Resolve,
    probe: Probe | None,
    skipped: Iterable[str] = (),
    required: bool = True,
) -> Check:
    """One check over the mailto: URIs of a `rua=`: any undeliverable address fails it.

    `what` says what goes there ("aggregate reports"); `skipped` are URIs already reported
    on (not authorized); https: URIs are listed but not probed. A FAIL is required even where
    the record is optional: a published address that bounces is an error, not an absence.
    """
    left_out = set(skipped)
    verdicts = [
        address_deliverability(mailto_address(uri), resolve, probe)
        for uri in uris
        if uri.startswith("mailto:") and uri not in left_out
    ]
    details = {"addresses": {v.address: {"status": v.status, "text": v.text} for v in verdicts}}
    failing = [v for v in verdicts if v.status == FAIL]
    if failing:
        shown = "; ".join(f"{v.address}: {v.text}" for v in failing)
        return problem_check(
            name,
            f"{what} cannot be delivered: {shown}",
            "Make each address receive mail (an MX that accepts RCPT TO for it), or point "
            f"rua= at a mailbox that does, in {owner}.",
            owner,
            details=details,
        )
    waiting = [v for v in verdicts if v.status == WARN]
    if waiting:
        shown = "; ".join(f"{v.address}: {v.text}" for v in waiting)
        return problem_check(
            name,
            f"{what}: {shown}",
            "Run the check again later; if the refusal stays, ask why the MX defers it.",
            owner,
            required=False,
            details=details,
        )
    texts = {mailto_address(uri): "" for uri in uris}
    texts.update({v.address: f" ({v.text})" for v in verdicts})
    shown = ", ".join(
        f"{uri}{texts.get(mailto_address(uri), '')}" if uri.startswith("mailto:") else uri
        for uri in uris
    )
    return ok_check(name, f"{what} to {shown}", owner, required=required, details=details)
