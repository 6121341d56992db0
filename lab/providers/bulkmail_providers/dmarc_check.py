"""DMARC (RFC 7489) as authheaders evaluates it, with its DNS answers taken from a DnsSource.

authheaders finds the policy (the From domain's record, else the organisational domain's) and
decides alignment. Its organisational domain comes from the public suffix list that ships in a
package (Debian's `publicsuffix` where authheaders has Debian's `findpsl`, else the copy inside
authheaders), read with publicsuffix2; nothing is downloaded. Two workarounds, each tested:

- authheaders re-reads the list at every alignment check (~50 ms each), and publicsuffix2's
  get_sld() skips the list's default `*` rule, so every name under an unlisted TLD such as the
  lab's `.test` would be one organisation (`test`). `organizational_domain` parses the list once
  and applies the rule; authheaders is bound to it.
- authheaders applies `sp=` to the From domain's own record; RFC 7489 6.3 applies `p=` there.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from functools import cache
from pathlib import Path

import authheaders
import authheaders.dmarc_lookup
from authres import DKIMAuthenticationResult, SPFAuthenticationResult
from publicsuffix2 import PublicSuffixList

from bulkmail_providers.dkim_check import DkimResult
from bulkmail_providers.dnssource import DnsSource, DnsTemporaryError
from bulkmail_providers.spf_check import SpfVerdict

POLICIES = ("none", "quarantine", "reject")

# A record authheaders cannot parse: DMARCException from 0.16, IndexError from Debian's 0.15.
_BROKEN_RECORD: tuple[type[Exception], ...] = (
    IndexError,
    getattr(authheaders.dmarc_lookup, "DMARCException", IndexError),
)


@dataclass(frozen=True)
class DmarcVerdict:
    result: str  # pass, fail, none, temperror, permerror
    from_domain: str
    policy: str  # the policy that applies to this From domain ("" without a record)
    spf_aligned: bool = False
    dkim_aligned: bool = False
    record_domain: str = ""
    reason: str = ""

    @property
    def disposition(self) -> str:
        return self.policy if self.result == "fail" and self.policy in POLICIES else "none"


def public_suffix_list_path() -> Path:
    """The list authheaders itself reads: Debian's through its `findpsl`, else its own copy."""
    try:
        from authheaders.findpsl import location  # type: ignore[import-not-found]
    except ModuleNotFoundError:
        return Path(str(importlib.resources.files("authheaders") / "public_suffix_list.txt"))
    return Path(location)


@cache
def _suffix_list() -> PublicSuffixList:
    with public_suffix_list_path().open(encoding="utf-8") as lines:
        return PublicSuffixList(lines)


def organizational_domain(domain: str) -> str:
    """The public suffix plus one label (RFC 7489 3.2): reports.agency.co.uk -> agency.co.uk."""
    name = domain.lower().rstrip(".")
    # get_tld() applies the list's default rule "*": an unlisted TLD is itself the suffix
    suffix = _suffix_list().get_tld(name)
    if not suffix or name == suffix:
        return name
    return ".".join(name.split(".")[-(suffix.count(".") + 2) :])


authheaders.get_org_domain = organizational_domain
authheaders.dmarc_lookup.get_org_domain = organizational_domain


def is_aligned(identifier: str, from_domain: str, mode: str) -> bool:
    identifier, from_domain = identifier.lower().rstrip("."), from_domain.lower().rstrip(".")
    if not identifier or not from_domain:
        return False
    if mode == "s":
        return identifier == from_domain
    return organizational_domain(identifier) == organizational_domain(from_domain)


class _DmarcTxt:
    """authheaders' dnsfunc: the one `v=DMARC1` TXT record at a name, or None.

    Several records count as none (RFC 7489 6.6.3), as authheaders decides for its own
    resolver. Answers are kept for one evaluation, which asks authheaders more than once.
    """

    def __init__(self, dns: DnsSource) -> None:
        self.dns = dns
        self.answers: dict[str, str | None] = {}

    def __call__(self, name: str) -> str | None:
        if name not in self.answers:
            records = [t for t in self.dns.txt(name) if t.startswith(b"v=DMARC1")]
            only = records[0].decode("ascii", "replace") if len(records) == 1 else None
            self.answers[name] = only
        return self.answers[name]


def from_domains(message: bytes) -> list[str]:
    """The distinct domains of the From header's addresses."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(message)
    values = [str(v) for v in headers.get_all("From", [])]
    domains = []
    for _, address in getaddresses(values):
        domain = address.rpartition("@")[2].lower().rstrip(">").rstrip(".")
        if domain and domain not in domains:
            domains.append(domain)
    return domains


def _passes(
    from_domain: str,
    dnsfunc: _DmarcTxt,
    spf_result: SPFAuthenticationResult | None = None,
    dkim_result: DKIMAuthenticationResult | None = None,
) -> bool:
    """Whether authheaders finds this one authenticated identifier aligned with From."""
    result = authheaders.dmarc_per_from(
        from_domain, spf_result=spf_result, dkim_result=dkim_result, dnsfunc=dnsfunc
    )
    return bool(result[0] == "pass")


def evaluate_dmarc(
    from_domain: str | None, spf: SpfVerdict, dkim_results: Sequence[DkimResult], dns: DnsSource
) -> DmarcVerdict:
    if not from_domain:
        return DmarcVerdict("permerror", "", "", reason="no single From domain")
    dnsfunc = _DmarcTxt(dns)
    try:
        found = authheaders.dmarc_per_from(from_domain, dnsfunc=dnsfunc, policy_only=True)
        _, record_domain, comment, policy, record, _ = found
        if not record:
            return DmarcVerdict("none", from_domain, "", reason="no DMARC record")
        if record_domain == from_domain:
            policy = record.get("p", policy)
        # one identifier at a time, so the verdict says which of them aligned
        spf_aligned = spf.result == "pass" and _passes(
            from_domain,
            dnsfunc,
            spf_result=SPFAuthenticationResult(
                result="pass", smtp_mailfrom=f"postmaster@{spf.domain}"
            ),
        )
        dkim_aligned = any(
            d.result == "pass"
            and _passes(
                from_domain,
                dnsfunc,
                dkim_result=DKIMAuthenticationResult(result="pass", header_d=d.domain),
            )
            for d in dkim_results
        )
    except DnsTemporaryError as error:
        return DmarcVerdict("temperror", from_domain, "", reason=str(error))
    except _BROKEN_RECORD as error:
        return DmarcVerdict("permerror", from_domain, "", reason=f"unreadable record: {error}")
    return DmarcVerdict(
        result="pass" if spf_aligned or dkim_aligned else "fail",
        from_domain=from_domain,
        policy=policy,
        spf_aligned=spf_aligned,
        dkim_aligned=dkim_aligned,
        record_domain=record_domain or "",
        reason=comment,
    )
