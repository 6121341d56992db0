"""What a DNS check reports, and the pieces every checker builds its checks from.

Pure Python, no Ansible import and no network code (also `bulkmail.logic.dns.report`). Every
checker takes a `resolve(name, rdtype) -> list[str]` function (`Resolve`); the two doors pass
adapters/dns_lookup.py's dnspython one. The contract of `resolve`:

- `name` is lower case without a trailing dot; `rdtype` is "TXT", "MX", "A", "AAAA" or "PTR";
- it returns one string per record in presentation form ("10 mta1.example.com.",
  "198.51.100.10", "mta1.example.com."), except TXT: the record's character-strings joined
  with nothing in between and without quotes, as receivers read it;
- it returns [] when the name does not exist (NXDOMAIN) or has no record of that type;
- it raises `LookupFailed` when it gets no usable answer (timeout, SERVFAIL, REFUSED).

Report addresses (DMARC `rua=`, TLS-RPT `rua=`) are also probed over SMTP when the caller
passes a `probe(address, mx_hosts) -> ProbeResult` (`Probe`): the best reachable MX of the
address's domain is asked `RCPT TO:<address>` and never sent data. The socket side lives in
src/bulkmail/check_dns.py; without a probe (the Ansible module, `--no-probe`) the check only
looks the MX up and says "not probed".

Every check has a name, a status (pass, warn, fail), whether it is required, the reason an
operator reads and one sentence saying what to do. A required check that fails makes the
domain fail; problems in checks that are not required are warnings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..model.domains import Dmarc, MtaSts
from .parsers import has_version

PASS, WARN, FAIL = "pass", "warn", "fail"
STATUSES = (PASS, WARN, FAIL)

Resolve = Callable[[str, str], list[str]]


class LookupFailed(Exception):
    """No usable answer for a query (timeout, SERVFAIL, REFUSED); not the same as no records."""

    def __init__(self, name: str, rdtype: str, problem: str) -> None:
        self.name = name
        self.rdtype = rdtype
        self.problem = problem
        super().__init__(f"{name} {rdtype}: {problem}")


@dataclass(frozen=True)
class ProbeResult:
    """What the best reachable MX of a report address said, or why none answered."""

    code: int | None  # the reply that decides (RCPT TO, or an earlier refusal); None: no MX
    reply: str = ""  # that reply's text, or why no MX could be reached
    host: str = ""  # the MX that answered
    stage: str = "RCPT TO"  # the command it answered: greeting, EHLO, MAIL FROM:<>, RCPT TO


# probe(address, mx_hosts by preference) -> ProbeResult; EHLO, MAIL FROM:<>, RCPT TO, never DATA
Probe = Callable[[str, Sequence[str]], ProbeResult]


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    required: bool
    reason: str
    fix: str = ""
    subject: str = ""  # the DNS name the check looked at
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """True when this check makes the domain fail."""
        return self.status == FAIL and self.required

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "required": self.required,
            "reason": self.reason,
            "fix": self.fix,
            "subject": self.subject,
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class DomainReport:
    domain: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return not any(check.failed for check in self.checks)

    @property
    def status(self) -> str:
        if not self.ok:
            return FAIL
        return WARN if any(check.status != PASS for check in self.checks) else PASS

    def as_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "status": self.status,
            "ok": self.ok,
            "checks": [check.as_dict() for check in self.checks],
        }


@dataclass(frozen=True)
class Expectations:
    """What one domain should publish. Empty fields are not checked (or checked loosely)."""

    domain: str
    pool_ips: tuple[str, ...] = ()
    dkim_selectors: tuple[str, ...] = ()
    # selector -> base64 public key as DKIM publishes it (dkim_keys.public_key_b64)
    dkim_public_keys: Mapping[str, str] = field(default_factory=dict)
    dmarc: Dmarc | None = None
    return_path_domain: str | None = None
    require_mta_sts: bool = False
    require_tls_rpt: bool = False
    mta_sts: MtaSts | None = None  # the model's policy: the published id must be its hash


def ok_check(
    name: str,
    reason: str,
    subject: str,
    *,
    required: bool = True,
    details: Mapping[str, Any] | None = None,
) -> Check:
    return Check(name, PASS, required, reason, "", subject, dict(details or {}))


def problem_check(
    name: str,
    reason: str,
    fix: str,
    subject: str,
    *,
    required: bool = True,
    details: Mapping[str, Any] | None = None,
) -> Check:
    """A fail when the check is required, else a warning."""
    status = FAIL if required else WARN
    return Check(name, status, required, reason, fix, subject, dict(details or {}))


def lookup_failed_check(name: str, error: LookupFailed, required: bool = True) -> Check:
    return problem_check(
        name,
        f"the lookup of {error.name} {error.rdtype} failed ({error.problem}); receivers that "
        "hit the same error defer or fail the mail",
        f"Make the name servers of {error.name} answer (try: dig {error.name} {error.rdtype}), "
        "then run the check again.",
        error.name,
        required=required,
    )


def join_reasons(items: Iterable[str]) -> str:
    """Problems as one reason an operator reads."""
    return "; ".join(items)


def bare_host(name: str) -> str:
    """A DNS name as `resolve` takes it: lower case, no trailing dot."""
    return name.rstrip(".").lower()


def resolve_addresses(name: str, resolve: Resolve) -> list[str]:
    """The A and AAAA records of `name`."""
    return [*resolve(name, "A"), *resolve(name, "AAAA")]


def one_versioned_txt(
    name: str,
    owner: str,
    version: str,
    resolve: Resolve,
    required: bool,
    *,
    kind: str,
    absent: str,
    fix: str,
    several: str,
) -> str | Check:
    """The one TXT record at `owner` starting `v=<version>`, or the Check saying why not.

    `absent` is the reason when there is none; `several` what senders do when there are more.
    MTA-STS and TLS-RPT records open the same way.
    """
    try:
        texts = resolve(owner, "TXT")
    except LookupFailed as error:
        return lookup_failed_check(name, error, required)
    found = [text for text in texts if has_version(text, version)]
    if not found:
        return problem_check(name, absent, fix, owner, required=required)
    if len(found) > 1:
        return problem_check(
            name,
            f"{len(found)} {kind} records at {owner}; {several}",
            f"Keep one TXT record at {owner}.",
            owner,
            required=required,
        )
    return found[0]
