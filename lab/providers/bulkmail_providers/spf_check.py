"""SPF (RFC 7208) check_host(), evaluated against a DnsSource.

Written here rather than taken from pyspf because pyspf resolves through a module-global
lookup function; this one asks only the DnsSource it is given. It implements every mechanism
and modifier, macros, the 10-lookup and 2-void-lookup limits, and the MX/PTR name limits.
"""

from __future__ import annotations

import ipaddress
import re
import time
import urllib.parse
from dataclasses import dataclass

from bulkmail_providers.dnssource import DnsSource, DnsTemporaryError

RESULT_BY_QUALIFIER = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
MAX_DNS_TERMS = 10  # RFC 7208 4.6.4
MAX_VOID_LOOKUPS = 2
MAX_NAMES = 10  # MX exchanges and PTR names looked at

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class SpfPermError(Exception):
    pass


class SpfTempError(Exception):
    pass


@dataclass(frozen=True)
class SpfVerdict:
    result: str  # pass, fail, softfail, neutral, none, temperror, permerror
    domain: str  # the checked identity's domain
    identity: str  # "mailfrom", or "helo" for a null reverse-path
    reason: str = ""


@dataclass(frozen=True)
class _Term:
    qualifier: str
    name: str
    argument: str | None = None
    cidr4: int = 32
    cidr6: int = 128


_MODIFIER = re.compile(r"^([a-z][a-z0-9_.\-]*)=(.*)$", re.IGNORECASE)
_MECHANISM = re.compile(r"^([+\-~?]?)(all|include|a|mx|ptr|ip4|ip6|exists)(.*)$", re.IGNORECASE)
_DUAL_CIDR = re.compile(r"^(?::([^/]+))?(?:/(\d{1,2}))?(?://(\d{1,3}))?$")
_MACRO_BODY = re.compile(r"^([slodiphcrtv])(\d*)(r?)([.\-+,/_=]*)$", re.IGNORECASE)


def _parse_term(term: str) -> _Term:
    match = _MECHANISM.match(term)
    if not match:
        raise SpfPermError(f"unknown mechanism {term!r}")
    qualifier, name, rest = match.group(1) or "+", match.group(2).lower(), match.group(3)
    if name == "all":
        if rest:
            raise SpfPermError(f"bad mechanism {term!r}")
        return _Term(qualifier, name)
    if name in ("include", "exists"):
        if not rest.startswith(":") or len(rest) < 2:
            raise SpfPermError(f"{name} needs a domain: {term!r}")
        return _Term(qualifier, name, rest[1:])
    if name == "ptr":
        if rest and (not rest.startswith(":") or len(rest) < 2):
            raise SpfPermError(f"bad mechanism {term!r}")
        return _Term(qualifier, name, rest[1:] or None)
    if name in ("a", "mx"):
        cidr = _DUAL_CIDR.match(rest)
        if not cidr:
            raise SpfPermError(f"bad mechanism {term!r}")
        cidr4 = int(cidr.group(2)) if cidr.group(2) else 32
        cidr6 = int(cidr.group(3)) if cidr.group(3) else 128
        if cidr4 > 32 or cidr6 > 128:
            raise SpfPermError(f"bad prefix length in {term!r}")
        return _Term(qualifier, name, cidr.group(1), cidr4, cidr6)
    # ip4, ip6: validated now so a bad address is a permerror before anything is evaluated
    if not rest.startswith(":"):
        raise SpfPermError(f"{name} needs an address: {term!r}")
    try:
        network = ipaddress.ip_network(rest[1:], strict=False)
    except ValueError:
        raise SpfPermError(f"bad address in {term!r}") from None
    if network.version != (4 if name == "ip4" else 6):
        raise SpfPermError(f"{name} with an IPv{network.version} address: {term!r}")
    return _Term(qualifier, name, str(network))


def parse_record(record: str) -> tuple[list[_Term], str | None]:
    """The directives and the redirect target of a `v=spf1` record; PermError on bad syntax."""
    terms = record.split()
    if not terms or terms[0].lower() != "v=spf1":
        raise SpfPermError(f"not an SPF record: {record!r}")
    directives: list[_Term] = []
    redirect: str | None = None
    for term in terms[1:]:
        modifier = _MODIFIER.match(term)
        if modifier:
            name = modifier.group(1).lower()
            if name in ("redirect", "exp"):
                if name == "redirect":
                    if redirect is not None:
                        raise SpfPermError("more than one redirect modifier")
                    redirect = modifier.group(2)
                if not modifier.group(2):
                    raise SpfPermError(f"{name}= needs a domain")
            continue  # unknown modifiers are ignored (RFC 7208 6)
        directives.append(_parse_term(term))
    return directives, redirect


def _reverse_name(ip: IPAddress) -> str:
    return ip.reverse_pointer


class _Evaluation:
    """One check_host() run, with its lookup counters."""

    def __init__(self, ip: IPAddress, sender: str, helo: str, dns: DnsSource) -> None:
        self.ip = ip
        self.sender = sender
        self.helo = helo
        self.dns = dns
        self.dns_terms = 0
        self.void_lookups = 0

    def _count_term(self) -> None:
        self.dns_terms += 1
        if self.dns_terms > MAX_DNS_TERMS:
            raise SpfPermError(f"more than {MAX_DNS_TERMS} DNS-querying terms")

    def _note_void(self, answer: list[object]) -> None:
        if not answer:
            self.void_lookups += 1
            if self.void_lookups > MAX_VOID_LOOKUPS:
                raise SpfPermError(f"more than {MAX_VOID_LOOKUPS} void lookups")

    def _addresses(self, name: str, version: int) -> list[str]:
        try:
            return self.dns.addresses(name, version)
        except DnsTemporaryError as error:
            raise SpfTempError(str(error)) from error

    def _record(self, domain: str) -> str | None:
        try:
            txts = self.dns.txt(domain)
        except DnsTemporaryError as error:
            raise SpfTempError(str(error)) from error
        records = [t for t in txts if t.lower() == b"v=spf1" or t.lower().startswith(b"v=spf1 ")]
        if len(records) > 1:
            raise SpfPermError(f"{domain} publishes {len(records)} SPF records")
        if not records:
            return None
        try:
            return records[0].decode("ascii")
        except UnicodeDecodeError:
            raise SpfPermError(f"non-ASCII SPF record at {domain}") from None

    def expand(self, spec: str, domain: str) -> str:
        """RFC 7208 7: macro expansion of a domain-spec."""
        out: list[str] = []
        i = 0
        while i < len(spec):
            char = spec[i]
            if char != "%":
                out.append(char)
                i += 1
                continue
            following = spec[i + 1 : i + 2]
            if following in ("%", "_", "-"):
                out.append({"%": "%", "_": " ", "-": "%20"}[following])
                i += 2
                continue
            end = spec.find("}", i)
            body = _MACRO_BODY.match(spec[i + 2 : end]) if following == "{" and end > 0 else None
            if body is None:
                raise SpfPermError(f"bad macro in {spec!r}")
            letter, digits, reverse, delimiters = body.groups()
            value = self._macro_value(letter.lower(), domain)
            parts = re.split("[" + re.escape(delimiters or ".") + "]", value)
            if reverse:
                parts.reverse()
            if digits:
                if int(digits) == 0:
                    raise SpfPermError(f"zero label count in {spec!r}")
                parts = parts[-int(digits) :]
            value = ".".join(parts)
            out.append(urllib.parse.quote(value, safe="") if letter.isupper() else value)
            i = end + 1
        expanded = "".join(out).rstrip(".")
        while len(expanded) > 253 and "." in expanded:
            expanded = expanded.split(".", 1)[1]
        return expanded

    def _macro_value(self, letter: str, domain: str) -> str:
        local, _, sender_domain = self.sender.rpartition("@")
        if letter == "i":
            if self.ip.version == 4:
                return str(self.ip)
            return ".".join(self.ip.exploded.replace(":", ""))
        values = {
            "s": self.sender,
            "l": local or "postmaster",
            "o": sender_domain,
            "d": domain,
            "p": "unknown",  # RFC 7208 7.3 allows it; the p macro is discouraged anyway
            "v": "in-addr" if self.ip.version == 4 else "ip6",
            "h": self.helo,
            "c": str(self.ip),
            "r": "unknown",
            "t": str(int(time.time())),
        }
        return values[letter]

    def check_host(self, domain: str) -> str:
        domain = domain.lower().rstrip(".")
        labels = domain.split(".")
        if len(labels) < 2 or any(not label or len(label) > 63 for label in labels):
            return "none"
        record = self._record(domain)
        if record is None:
            return "none"
        directives, redirect = parse_record(record)
        for term in directives:
            if self._matches(term, domain):
                return RESULT_BY_QUALIFIER[term.qualifier]
        if redirect is not None:
            self._count_term()
            result = self.check_host(self.expand(redirect, domain))
            if result == "none":
                raise SpfPermError(f"redirect={redirect} has no SPF record")
            return result
        return "neutral"

    def _matches(self, term: _Term, domain: str) -> bool:
        if term.name == "all":
            return True
        if term.name in ("ip4", "ip6"):
            network = ipaddress.ip_network(term.argument or "", strict=False)
            return network.version == self.ip.version and self.ip in network
        self._count_term()
        target = self.expand(term.argument, domain) if term.argument else domain
        if term.name == "include":
            result = self.check_host(target)
            if result == "temperror":
                raise SpfTempError(f"include:{target}")
            if result in ("none", "permerror"):
                raise SpfPermError(f"include:{target} has no usable SPF record")
            return result == "pass"
        if term.name == "exists":
            found = self._addresses(target, 4)
            self._note_void(found)
            return bool(found)
        prefix = term.cidr4 if self.ip.version == 4 else term.cidr6
        if term.name == "a":
            found = self._addresses(target, self.ip.version)
            self._note_void(found)
            return self._in_any(found, prefix)
        if term.name == "mx":
            try:
                exchanges = self.dns.mx(target)
            except DnsTemporaryError as error:
                raise SpfTempError(str(error)) from error
            self._note_void(exchanges)
            if len(exchanges) > MAX_NAMES:
                raise SpfPermError(f"{target} has more than {MAX_NAMES} MX records")
            return any(
                self._in_any(self._addresses(exchange, self.ip.version), prefix)
                for _, exchange in sorted(exchanges)
            )
        # ptr: the validated names of the client address, under the target domain
        try:
            names = self.dns.ptr(_reverse_name(self.ip))
        except DnsTemporaryError:
            names = []  # RFC 7208 5.5: a PTR lookup error just means no match
        self._note_void(names)
        for name in names[:MAX_NAMES]:
            name = name.lower().rstrip(".")
            if name != target and not name.endswith("." + target):
                continue
            try:
                if self._in_any(self._addresses(name, self.ip.version), None):
                    return True
            except SpfTempError:
                continue
        return False

    def _in_any(self, addresses: list[str], prefix: int | None) -> bool:
        for address in addresses:
            try:
                network = ipaddress.ip_network(
                    address if prefix is None else f"{address}/{prefix}", strict=False
                )
            except ValueError:
                continue
            if network.version == self.ip.version and self.ip in network:
                return True
        return False


def check_spf(ip: str, mail_from: str, helo: str, dns: DnsSource) -> SpfVerdict:
    """SPF for MAIL FROM, or for the HELO name when the reverse-path is null (bounces)."""
    mail_from = mail_from.strip().strip("<>")
    helo = helo.strip().lower().rstrip(".")
    if mail_from:
        local, _, domain = mail_from.rpartition("@")
        sender = f"{local or 'postmaster'}@{domain}"
        identity = "mailfrom"
    else:
        domain, sender, identity = helo, f"postmaster@{helo}", "helo"
    domain = domain.lower().rstrip(".")
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return SpfVerdict("permerror", domain, identity, f"bad client address {ip!r}")
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    evaluation = _Evaluation(address, sender, helo, dns)
    try:
        result = evaluation.check_host(domain)
    except SpfTempError as error:
        return SpfVerdict("temperror", domain, identity, str(error))
    except SpfPermError as error:
        return SpfVerdict("permerror", domain, identity, str(error))
    reasons = {
        "pass": f"domain of {sender} designates {ip} as permitted sender",
        "fail": f"domain of {sender} does not designate {ip} as permitted sender",
        "softfail": f"domain of transitioning {sender} does not designate {ip} as permitted sender",
        "neutral": f"{ip} is neither permitted nor denied by domain of {sender}",
        "none": f"domain of {sender} does not designate permitted sender hosts",
    }
    return SpfVerdict(result, domain, identity, reasons[result])
