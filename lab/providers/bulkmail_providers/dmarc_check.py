"""DMARC (RFC 7489): policy discovery at _dmarc, and alignment of SPF and DKIM with From."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses

from bulkmail_providers.dkim_check import DkimResult
from bulkmail_providers.dnssource import DnsSource, DnsTemporaryError
from bulkmail_providers.spf_check import SpfVerdict

POLICIES = ("none", "quarantine", "reject")


@dataclass(frozen=True)
class DmarcRecord:
    domain: str  # where the record was found: the From domain or its organisational domain
    policy: str
    subdomain_policy: str
    adkim: str  # "r" relaxed or "s" strict
    aspf: str
    pct: int = 100


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
        return self.policy if self.result == "fail" and self.policy else "none"


def organizational_domain(domain: str) -> str:
    """The last two labels: right for the lab's .test names, without a public-suffix list."""
    labels = domain.lower().rstrip(".").split(".")
    return ".".join(labels[-2:])


def is_aligned(identifier: str, from_domain: str, mode: str) -> bool:
    identifier, from_domain = identifier.lower().rstrip("."), from_domain.lower().rstrip(".")
    if not identifier or not from_domain:
        return False
    if mode == "s":
        return identifier == from_domain
    return organizational_domain(identifier) == organizational_domain(from_domain)


def parse_dmarc_record(text: str, domain: str) -> DmarcRecord | None:
    """None when the text is not a usable DMARC record (RFC 7489 6.6.3)."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags.setdefault(key.strip().lower(), value.strip())
    first = text.split(";", 1)[0].replace(" ", "")
    if first != "v=DMARC1":
        return None
    policy = tags.get("p", "").lower()
    if policy not in POLICIES:
        if "rua" not in tags:
            return None
        policy = "none"  # an invalid p with a valid rua is read as p=none
    subdomain_policy = tags.get("sp", "").lower()
    try:
        pct = max(0, min(100, int(tags.get("pct", "100"))))
    except ValueError:
        pct = 100
    return DmarcRecord(
        domain=domain,
        policy=policy,
        subdomain_policy=subdomain_policy if subdomain_policy in POLICIES else policy,
        adkim="s" if tags.get("adkim", "r").lower() == "s" else "r",
        aspf="s" if tags.get("aspf", "r").lower() == "s" else "r",
        pct=pct,
    )


def _record_at(domain: str, dns: DnsSource) -> DmarcRecord | None:
    texts = [t for t in dns.txt(f"_dmarc.{domain}") if t.lower().startswith(b"v=dmarc1")]
    if len(texts) != 1:
        return None  # none, or several: no policy either way
    return parse_dmarc_record(texts[0].decode("ascii", "replace"), domain)


def lookup_dmarc_record(from_domain: str, dns: DnsSource) -> DmarcRecord | None:
    """The From domain's record, else the organisational domain's. DnsTemporaryError passes up."""
    record = _record_at(from_domain, dns)
    if record is None:
        org = organizational_domain(from_domain)
        if org != from_domain:
            record = _record_at(org, dns)
    return record


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


def evaluate_dmarc(
    from_domain: str | None, spf: SpfVerdict, dkim_results: Sequence[DkimResult], dns: DnsSource
) -> DmarcVerdict:
    if not from_domain:
        return DmarcVerdict("permerror", "", "", reason="no single From domain")
    try:
        record = lookup_dmarc_record(from_domain, dns)
    except DnsTemporaryError as error:
        return DmarcVerdict("temperror", from_domain, "", reason=str(error))
    if record is None:
        return DmarcVerdict("none", from_domain, "", reason="no DMARC record")
    policy = record.policy if record.domain == from_domain else record.subdomain_policy
    spf_aligned = spf.result == "pass" and is_aligned(spf.domain, from_domain, record.aspf)
    dkim_aligned = any(
        d.result == "pass" and is_aligned(d.domain, from_domain, record.adkim) for d in dkim_results
    )
    return DmarcVerdict(
        result="pass" if spf_aligned or dkim_aligned else "fail",
        from_domain=from_domain,
        policy=policy,
        spf_aligned=spf_aligned,
        dkim_aligned=dkim_aligned,
        record_domain=record.domain,
    )
