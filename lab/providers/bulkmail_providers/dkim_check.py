"""DKIM verification of every signature in a message (dkimpy), keys fetched from a DnsSource."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import dkim
import dkim.util

from bulkmail_providers.dnssource import DnsSource, DnsTemporaryError

_log = logging.getLogger("bulkmail_providers.dkim")


@dataclass(frozen=True)
class DkimResult:
    result: str  # pass, fail, neutral, temperror, permerror (RFC 8601 2.7.1)
    domain: str
    selector: str
    b_prefix: str = ""  # header.b: the start of b=, tells signatures apart (RFC 6008)
    reason: str = ""


class _KeyLookup:
    """dkimpy's dnsfunc, remembering whether the key was missing or the DNS did not answer."""

    def __init__(self, dns: DnsSource) -> None:
        self.dns = dns
        self.missing = False
        self.unanswered = False

    def __call__(self, name: bytes, timeout: float = 5) -> bytes | None:
        try:
            records = self.dns.txt(name.decode("ascii"))
        except DnsTemporaryError as error:
            self.unanswered = True
            raise dkim.DnsTimeoutError(str(error)) from error
        except UnicodeDecodeError:
            records = []
        if not records:
            self.missing = True
            return None
        return records[0]


def signature_headers(message: bytes) -> list[bytes]:
    headers, _ = dkim.rfc822_parse(message)
    return [value for name, value in headers if name.lower() == b"dkim-signature"]


def check_dkim(message: bytes, dns: DnsSource) -> list[DkimResult]:
    """One result per DKIM-Signature, in header order; an empty list when unsigned."""
    results = []
    for index, header in enumerate(signature_headers(message)):
        try:
            tags = dkim.util.parse_tag_value(header)
        except dkim.util.InvalidTagValueList as error:
            results.append(DkimResult("permerror", "", "", reason=f"bad signature: {error}"))
            continue
        domain = tags.get(b"d", b"").decode("ascii", "replace").lower()
        selector = tags.get(b"s", b"").decode("ascii", "replace")
        b_prefix = b"".join(tags.get(b"b", b"").split()).decode("ascii", "replace")[:8]
        lookup = _KeyLookup(dns)
        try:
            valid = dkim.DKIM(message, logger=_log, minkey=1024).verify(idx=index, dnsfunc=lookup)
        except dkim.DKIMException as error:
            # dkimpy raises on a body hash mismatch: that is a failed check, not a broken one
            broken = "body hash mismatch" not in str(error)
            reason = "body hash did not verify" if not broken else str(error)
            result = "permerror" if broken else "fail"
            results.append(DkimResult(result, domain, selector, b_prefix, reason))
            continue
        if valid:
            result, reason = "pass", ""
        elif lookup.unanswered:
            result, reason = "temperror", "key lookup did not answer"
        elif lookup.missing:
            result, reason = "permerror", f"no key at {selector}._domainkey.{domain}"
        else:
            result, reason = "fail", "signature did not verify"
        results.append(DkimResult(result, domain, selector, b_prefix, reason))
    return results
