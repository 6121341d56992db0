"""Per-domain behaviour set while the server runs: a provider that defers, then accepts again.

`python3 -m bulkmail_providers behave yahoo.test defer` writes `overrides.json` in the data
directory; the server reads it again whenever the file changes, so tests and benchmarks can
turn a provider's 421s on and off without restarting it. An override sits between the
local-part conventions (`tarpit-*` still tarpits) and the configured domain behaviour.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bulkmail_providers.config import Behaviour

FILE_NAME = "overrides.json"


class Overrides:
    """The overrides file, re-read when its modification time changes."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME
        self._stamp: int | None = None
        self._table: dict[str, Behaviour] = {}

    def table(self) -> dict[str, Behaviour]:
        try:
            stamp = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            self._stamp, self._table = None, {}
            return self._table
        if stamp != self._stamp:
            self._table = read(self.path)
            self._stamp = stamp
        return self._table


def read(path: Path) -> dict[str, Behaviour]:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    return {domain: Behaviour(value) for domain, value in raw.items()}


def write(data_dir: Path, domain: str, behaviour: Behaviour | None) -> dict[str, Behaviour]:
    """Set (or, with None, clear) the override of one domain; atomic for the reader."""
    path = data_dir / FILE_NAME
    table = read(path)
    if behaviour is None:
        table.pop(domain, None)
    else:
        table[domain] = behaviour
    data_dir.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({d: b.value for d, b in sorted(table.items())}))
    os.replace(temporary, path)
    return table
