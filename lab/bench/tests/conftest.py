"""The benchmarks' helpers live beside their `run` scripts, outside src/: put them on the path.

Their pure parts are tested here, and the load generators against the real daemons' code
in-process (no Docker, no database).
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
for path in (BENCH / "policy", BENCH / "ingest"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
