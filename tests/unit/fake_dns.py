"""A stand-in for `bulkmail.provider_map.resolve_mx`: MX answers from a table, no network.

`broken.test` fails temporarily (SERVFAIL), a domain not in the table has no MX (NXDOMAIN);
`asked` records every lookup, so a test can show what was cached or never asked.
"""

from __future__ import annotations

from collections.abc import Mapping

from bulkmail.provider_map import NoMx, TemporaryDnsError


class FakeDns:
    def __init__(self, zones: Mapping[str, tuple[list[str], int]]) -> None:
        self.zones = zones
        self.asked: list[str] = []

    async def __call__(self, domain: str) -> tuple[list[str], int]:
        self.asked.append(domain)
        if domain == "broken.test":
            raise TemporaryDnsError("SERVFAIL")
        if domain not in self.zones:
            raise NoMx("NXDOMAIN")
        return self.zones[domain]
