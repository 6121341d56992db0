"""Schema migration files on disk: a directory of ``NNNN_name.sql`` read for postgresql/.

postgresql/migrations.py plans and applies migrations from ``(filename, content)`` pairs;
this file reads them from the directory the postgresql_migrations module is given.
"""

from __future__ import annotations

from pathlib import Path

from ..postgresql.migrations import Migration, MigrationError, load_migrations


def discover_migrations(directory: str | Path) -> list[Migration]:
    """Read the migrations of a directory (not recursive)."""
    path = Path(directory)
    if not path.is_dir():
        raise MigrationError(f"{path}: the migrations directory does not exist")
    files = sorted(p for p in path.iterdir() if p.is_file())
    return load_migrations((p.name, p.read_bytes()) for p in files)
