"""A dict-backed DnsSource: the checks' logic tested on records a test writes down.

The lab itself always answers from BIND through LabResolver; this only replaces the wire.
"""

from __future__ import annotations

from bulkmail_providers.dnssource import DnsTemporaryError


class StaticDns:
    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[object]] = {}
        self.unanswered: set[str] = set()  # names whose queries time out
        self.queries: list[tuple[str, str]] = []

    def add(self, name: str, rdtype: str, *values: object) -> StaticDns:
        self.records.setdefault((name.lower().rstrip("."), rdtype), []).extend(values)
        return self

    def _get(self, name: str, rdtype: str) -> list[object]:
        name = name.lower().rstrip(".")
        self.queries.append((name, rdtype))
        if name in self.unanswered:
            raise DnsTemporaryError(f"{rdtype} {name}: timed out")
        return list(self.records.get((name, rdtype), []))

    def txt(self, name: str) -> list[bytes]:
        return [v.encode() if isinstance(v, str) else v for v in self._get(name, "TXT")]  # type: ignore[misc]

    def addresses(self, name: str, version: int) -> list[str]:
        return [str(v) for v in self._get(name, "A" if version == 4 else "AAAA")]

    def mx(self, name: str) -> list[tuple[int, str]]:
        return [v for v in self._get(name, "MX")]  # type: ignore[misc]

    def ptr(self, name: str) -> list[str]:
        return [str(v) for v in self._get(name, "PTR")]
