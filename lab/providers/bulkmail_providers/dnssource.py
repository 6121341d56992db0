"""DNS as the checks see it: a small interface, answered by the lab's BIND through dnspython.

The checks never touch the system resolver: a receiver that asked the host's resolver would
verify against the wrong internet.
"""

from __future__ import annotations

from typing import Protocol

import dns.exception
import dns.name
import dns.resolver


class DnsTemporaryError(Exception):
    """The DNS did not answer (timeout, SERVFAIL, REFUSED): results become temperror."""


class DnsSource(Protocol):
    """Empty lists mean NXDOMAIN or no data; DnsTemporaryError means no answer at all."""

    def txt(self, name: str) -> list[bytes]:
        """Each TXT record with its character-strings joined."""
        ...

    def addresses(self, name: str, version: int) -> list[str]:
        """A (version 4) or AAAA (version 6) records."""
        ...

    def mx(self, name: str) -> list[tuple[int, str]]:
        """(preference, exchange) pairs."""
        ...

    def ptr(self, name: str) -> list[str]: ...


class LabResolver:
    """DnsSource backed by one name server, e.g. the lab's BIND at 198.51.100.53."""

    def __init__(self, server: str, timeout: float = 5.0) -> None:
        self._resolver = dns.resolver.Resolver(configure=False)
        self._resolver.nameservers = [server]
        # Receivers cache, as real ones do: the sender's authoritative servers rate-limit
        # answers per client (BIND RRL), so a receiver asking anew for every message of a
        # burst would see dropped answers and record temperror for mail that is fine.
        self._resolver.cache = dns.resolver.Cache()
        # A dropped answer is retried within the lifetime instead of ending the lookup.
        self._resolver.timeout = timeout / 3
        self._resolver.lifetime = timeout
        self.server = server

    def _answer(self, name: str, rdtype: str) -> list[object]:
        try:
            qname = dns.name.from_text(name)
            return list(self._resolver.resolve(qname, rdtype, search=False))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as error:
            raise DnsTemporaryError(f"{rdtype} {name} at {self.server}: {error}") from error
        except (dns.name.LabelTooLong, dns.name.EmptyLabel, dns.name.NameTooLong):
            return []

    def txt(self, name: str) -> list[bytes]:
        return [b"".join(rdata.strings) for rdata in self._answer(name, "TXT")]  # type: ignore[attr-defined]

    def addresses(self, name: str, version: int) -> list[str]:
        rdtype = "A" if version == 4 else "AAAA"
        return [rdata.address for rdata in self._answer(name, rdtype)]  # type: ignore[attr-defined]

    def mx(self, name: str) -> list[tuple[int, str]]:
        return [
            (rdata.preference, rdata.exchange.to_text(omit_final_dot=True))  # type: ignore[attr-defined]
            for rdata in self._answer(name, "MX")
        ]

    def ptr(self, name: str) -> list[str]:
        return [
            rdata.target.to_text(omit_final_dot=True)  # type: ignore[attr-defined]
            for rdata in self._answer(name, "PTR")
        ]
