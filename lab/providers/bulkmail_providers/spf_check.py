"""SPF (RFC 7208) as pyspf evaluates it, with every DNS answer taken from a DnsSource.

pyspf resolves through one module attribute, `spf.DNSLookup`, which would otherwise ask the
host's resolver. It is bound once to `_lookup`, which answers from the DnsSource of the check
running in the calling thread (a context variable), so concurrent checks never share answers.
"""

from __future__ import annotations

import contextvars
import ipaddress
from dataclasses import dataclass

import spf

from bulkmail_providers.dnssource import DnsSource, DnsTemporaryError

# RFC 7208 4.6.4: a receiver may limit a whole check's DNS time; pyspf's check2 uses 20 s.
CHECK_SECONDS = 20

_dns_of_this_check: contextvars.ContextVar[DnsSource] = contextvars.ContextVar("spf_dns")


@dataclass(frozen=True)
class SpfVerdict:
    result: str  # pass, fail, softfail, neutral, none, temperror, permerror
    domain: str  # the checked identity's domain
    identity: str  # "mailfrom", or "helo" for a null reverse-path
    reason: str = ""


def _answers(dns: DnsSource, name: str, qtype: str) -> list[object]:
    if qtype == "TXT":
        return [[text] for text in dns.txt(name)]  # pyspf joins each record's strings
    if qtype in ("A", "AAAA"):
        return list(dns.addresses(name, 4 if qtype == "A" else 6))
    if qtype == "MX":
        return list(dns.mx(name))
    if qtype == "PTR":
        return list(dns.ptr(name))
    return []  # type SPF (99) is asked only in pyspf's "harsh" mode, never here


def _lookup(
    name: str, qtype: str, strict: object = True, timeout: float = 30
) -> list[tuple[tuple[str, str], object]]:
    """pyspf's DNSLookup interface: ((name, type), value) pairs; TempError when unanswered."""
    dns = _dns_of_this_check.get()
    try:
        return [((name, qtype), value) for value in _answers(dns, name, qtype)]
    except DnsTemporaryError as error:
        raise spf.TempError(f"DNS {error}") from error


spf.DNSLookup = _lookup


def check_spf(ip: str, mail_from: str, helo: str, dns: DnsSource) -> SpfVerdict:
    """SPF for MAIL FROM, or for the HELO name when the reverse-path is null (bounces)."""
    mail_from = mail_from.strip().strip("<>")
    helo = helo.strip().lower().rstrip(".")
    identity = "mailfrom" if mail_from else "helo"
    domain = (mail_from.rpartition("@")[2] if mail_from else helo).lower().rstrip(".")
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return SpfVerdict("permerror", domain, identity, f"bad client address {ip!r}")
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    token = _dns_of_this_check.set(dns)
    try:
        query = spf.query(i=str(address), s=mail_from, h=helo, querytime=CHECK_SECONDS)
        result, _code, explanation = query.check()
    finally:
        _dns_of_this_check.reset(token)
    return SpfVerdict(result, domain, query.ident, explanation)
