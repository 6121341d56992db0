"""All three checks on one message, and the Authentication-Results header (RFC 8601) they give."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bulkmail_providers.dkim_check import DkimResult, check_dkim
from bulkmail_providers.dmarc_check import (
    DmarcVerdict,
    evaluate_dmarc,
    from_domains,
    is_aligned,
)
from bulkmail_providers.dnssource import DnsSource
from bulkmail_providers.spf_check import SpfVerdict, check_spf


@dataclass(frozen=True)
class Verdicts:
    dkim: list[DkimResult]
    spf: SpfVerdict
    dmarc: DmarcVerdict
    from_domain: str | None

    def dkim_summary(self) -> DkimResult | None:
        """The signature a receiver would quote: aligned pass, any pass, else the first one."""
        if self.from_domain:
            for result in self.dkim:
                if result.result == "pass" and is_aligned(result.domain, self.from_domain, "r"):
                    return result
        for result in self.dkim:
            if result.result == "pass":
                return result
        return self.dkim[0] if self.dkim else None

    def as_record(self) -> dict[str, Any]:
        """The dkim, spf and dmarc members of a received.jsonl record."""
        summary = self.dkim_summary()
        return {
            "dkim": {
                "result": summary.result if summary else "none",
                "domain": summary.domain if summary else None,
                "selector": summary.selector if summary else None,
                "signatures": [
                    {"result": d.result, "domain": d.domain, "selector": d.selector}
                    for d in self.dkim
                ],
            },
            "spf": {
                "result": self.spf.result,
                "domain": self.spf.domain,
                "identity": self.spf.identity,
            },
            "dmarc": {
                "result": self.dmarc.result,
                "policy": self.dmarc.policy or None,
                "disposition": self.dmarc.disposition,
                "alignment": {"spf": self.dmarc.spf_aligned, "dkim": self.dmarc.dkim_aligned},
            },
        }


def verify_message(
    message: bytes, peer_ip: str, mail_from: str, helo: str, dns: DnsSource
) -> Verdicts:
    domains = from_domains(message)
    from_domain = domains[0] if len(domains) == 1 else None
    dkim_results = check_dkim(message, dns)
    spf = check_spf(peer_ip, mail_from, helo, dns)
    dmarc = evaluate_dmarc(from_domain, spf, dkim_results, dns)
    return Verdicts(dkim_results, spf, dmarc, from_domain)


def _comment(text: str) -> str:
    """An RFC 5322 comment, with a leading space; parentheses inside would end it early."""
    if not text:
        return ""
    return " (" + text.replace("(", "[").replace(")", "]").replace("\\", "/") + ")"


def authentication_results(authserv_id: str, verdicts: Verdicts) -> str:
    """The header field, folded one method per line, without the final CRLF."""
    parts = []
    for d in verdicts.dkim:
        comment = _comment(d.reason)
        parts.append(
            f"dkim={d.result}{comment} header.d={d.domain or 'none'} "
            f"header.s={d.selector or 'none'} header.b={d.b_prefix or 'none'}"
        )
    if not verdicts.dkim:
        parts.append("dkim=none (message not signed)")
    spf = verdicts.spf
    prop = "smtp.mailfrom" if spf.identity == "mailfrom" else "smtp.helo"
    comment = _comment(f"{authserv_id}: {spf.reason}")
    parts.append(f"spf={spf.result}{comment} {prop}={spf.domain or 'none'}")
    dmarc = verdicts.dmarc
    if dmarc.policy:
        comment = _comment(f"p={dmarc.policy.upper()} dis={dmarc.disposition.upper()}")
    else:
        comment = _comment(dmarc.reason)
    parts.append(f"dmarc={dmarc.result}{comment} header.from={dmarc.from_domain or 'none'}")
    return f"Authentication-Results: {authserv_id};\r\n       " + ";\r\n       ".join(parts)
