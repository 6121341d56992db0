# Copyright: bulkmail.infra developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Schema migrations: ``NNNN_name.sql`` files applied in order, once, each in its own transaction.

The planning half is pure (file names, checksums, what is pending, what is inconsistent) and is
unit-tested without a database. The applying half talks to a psycopg-3-like connection passed in
by the caller (``execute(query, params)`` returning a cursor, and ``transaction()``), so this file
imports no database driver and no Ansible.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

FILENAME_RE = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9]+(?:_[a-z0-9]+)*)\.sql$")
FILENAME_HELP = (
    "migration files must be named NNNN_name.sql: four digits, an underscore, then lower-case "
    "letters, digits and single underscores (e.g. 0002_add_lists.sql)"
)
IDENTIFIER_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Transaction control inside a file would break "one file, one transaction". (Not END: it
# closes every PL/pgSQL block; "BEGIN;" with the semicolon is never PL/pgSQL.)
TRANSACTION_CONTROL_RE = re.compile(
    r"^\s*(BEGIN(\s+(WORK|TRANSACTION))?|START\s+TRANSACTION|COMMIT(\s+(WORK|TRANSACTION))?"
    r"|ROLLBACK(\s+(WORK|TRANSACTION))?)\s*;",
    re.IGNORECASE | re.MULTILINE,
)
# Any value works as long as every runner on a cluster uses the same one.
ADVISORY_LOCK_KEY = "bulkmail.infra postgresql_migrations"


class MigrationError(Exception):
    """A migration set that must not be applied; the message names the file and the fix."""


class MigrationApplyError(MigrationError):
    """A migration failed in the database; files before it were applied and committed."""

    def __init__(self, message: str, applied: Sequence[str]) -> None:
        super().__init__(message)
        self.applied = list(applied)


@dataclass(frozen=True)
class Migration:
    """One migration file, read from disk."""

    version: int
    name: str
    filename: str
    checksum: str
    sql: str


@dataclass(frozen=True)
class AppliedMigration:
    """One row of the tracking table."""

    version: int
    name: str
    checksum: str


@dataclass(frozen=True)
class MigrationPlan:
    """What the database has and what it still needs, in order."""

    applied: tuple[Migration, ...]
    pending: tuple[Migration, ...]

    @property
    def current_version(self) -> int | None:
        return self.applied[-1].version if self.applied else None


@dataclass
class MigrationResult:
    """What a run did (or, in check mode, would do)."""

    applied: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    before: list[str] = field(default_factory=list)
    current_version: int | None = None

    @property
    def changed(self) -> bool:
        return bool(self.applied)


def parse_migration_filename(filename: str) -> tuple[int, str]:
    """Return ``(version, name)`` for ``NNNN_name.sql``; raise MigrationError naming the file."""
    match = FILENAME_RE.match(filename)
    if match is None:
        raise MigrationError(f"{filename}: {FILENAME_HELP}")
    version = int(match.group("version"))
    if version == 0:
        raise MigrationError(f"{filename}: versions start at 0001")
    return version, match.group("name")


def checksum_sql(content: bytes) -> str:
    """SHA-256 of a migration, with CRLF read as LF so a checkout's line endings don't matter."""
    return hashlib.sha256(content.replace(b"\r\n", b"\n")).hexdigest()


def load_migration(filename: str, content: bytes) -> Migration:
    """Build a Migration from a file's name and bytes, checking what can be checked offline."""
    version, name = parse_migration_filename(filename)
    try:
        sql = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MigrationError(
            f"{filename}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from exc
    if not sql.strip():
        raise MigrationError(f"{filename}: the file is empty")
    control = TRANSACTION_CONTROL_RE.search(sql)
    if control is not None:
        line = sql.count("\n", 0, control.start()) + 1
        raise MigrationError(
            f"{filename}: line {line} controls the transaction ({control.group(0).strip()!r}); "
            "each migration already runs in its own transaction, remove the statement"
        )
    return Migration(version, name, filename, checksum_sql(content), sql)


def load_migrations(files: Iterable[tuple[str, bytes]]) -> list[Migration]:
    """Migrations from ``(filename, content)`` pairs, ordered by version.

    Only ``*.sql`` files are migrations; anything else (a README, an editor backup) is ignored.
    """
    migrations: dict[int, Migration] = {}
    for filename, content in files:
        if not filename.endswith(".sql") or filename.startswith("."):
            continue
        migration = load_migration(filename, content)
        other = migrations.get(migration.version)
        if other is not None:
            first, second = sorted((other.filename, migration.filename))
            raise MigrationError(
                f"{second}: version {migration.version:04d} is also used by {first}; "
                "give each migration its own number"
            )
        migrations[migration.version] = migration
    return [migrations[version] for version in sorted(migrations)]


def plan_migrations(
    available: Sequence[Migration], applied: Sequence[AppliedMigration]
) -> MigrationPlan:
    """Compare the files with the tracking table.

    Refuses (MigrationError) when an applied file changed, was renamed or removed, or when a new
    file sorts before one already applied: each would leave databases that ran the same set of
    files in different states.
    """
    by_version = {m.version: m for m in available}
    done: list[Migration] = []
    for row in sorted(applied, key=lambda r: r.version):
        migration = by_version.get(row.version)
        label = f"{row.version:04d}_{row.name}.sql"
        if migration is None:
            raise MigrationError(
                f"{label}: recorded as applied but missing from the migrations directory; "
                "restore the file (applied migrations are never removed)"
            )
        if migration.name != row.name:
            raise MigrationError(
                f"{migration.filename}: version {row.version:04d} was applied as {label}; "
                "restore the original name (applied migrations are never renamed)"
            )
        if migration.checksum != row.checksum:
            raise MigrationError(
                f"{migration.filename}: changed after it was applied (checksum {row.checksum[:12]} "
                f"in the database, {migration.checksum[:12]} on disk); restore the applied "
                "version and put the change in a new migration"
            )
        done.append(migration)
    done_versions = {m.version for m in done}
    pending = [m for m in available if m.version not in done_versions]
    if pending and done and pending[0].version < done[-1].version:
        raise MigrationError(
            f"{pending[0].filename}: pending, but {done[-1].filename} is already applied; "
            f"renumber it after {done[-1].version:04d}"
        )
    return MigrationPlan(tuple(done), tuple(pending))


def quote_identifier(name: str, what: str = "identifier") -> str:
    """Double-quote a plain lower-case SQL identifier; anything else is refused, not escaped."""
    if not IDENTIFIER_RE.match(name):
        raise MigrationError(
            f"{what} {name!r}: use lower-case letters, digits and underscores (at most 63)"
        )
    return f'"{name}"'


class Cursor(Protocol):
    def fetchall(self) -> list[tuple[Any, ...]]: ...

    def fetchone(self) -> tuple[Any, ...] | None: ...


class Connection(Protocol):
    """The part of a psycopg 3 connection (autocommit on) the runner uses."""

    def execute(self, query: str, params: Sequence[Any] | None = None) -> Cursor: ...

    def transaction(self) -> Any: ...


def read_applied(conn: Connection, table: str) -> list[AppliedMigration] | None:
    """Rows of the tracking table, or None when it does not exist yet."""
    quoted = quote_identifier(table, "tracking table")
    row = conn.execute("SELECT to_regclass(%s)", [quoted]).fetchone()
    if row is None or row[0] is None:
        return None
    rows = conn.execute(f"SELECT version, name, checksum FROM {quoted} ORDER BY version").fetchall()
    return [AppliedMigration(int(v), str(n), str(c)) for v, n, c in rows]


def tracking_table_ddl(table: str) -> str:
    quoted = quote_identifier(table, "tracking table")
    return (
        f"CREATE TABLE IF NOT EXISTS {quoted} ("
        " version integer PRIMARY KEY,"
        " name text NOT NULL,"
        " checksum text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )


def run_migrations(
    conn: Connection,
    migrations: Sequence[Migration],
    *,
    table: str = "schema_migrations",
    session_role: str | None = None,
    check_mode: bool = False,
) -> MigrationResult:
    """Apply the pending migrations, each in its own transaction.

    The tracking table belongs to the connecting user (the superuser); each migration runs
    with ``SET LOCAL ROLE session_role`` so the objects it creates belong to that role.
    In check mode nothing is written and ``pending`` lists what would be applied.
    """
    quoted = quote_identifier(table, "tracking table")
    role = quote_identifier(session_role, "session_role") if session_role else None
    if not check_mode:
        # Two runners at once would both see the same file as pending.
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", [ADVISORY_LOCK_KEY])
    try:
        plan = plan_migrations(migrations, read_applied(conn, table) or [])
        result = MigrationResult(
            pending=[m.filename for m in plan.pending],
            before=[m.filename for m in plan.applied],
            current_version=plan.current_version,
        )
        if check_mode or not plan.pending:
            return result
        conn.execute(tracking_table_ddl(table))
        for migration in plan.pending:
            try:
                with conn.transaction():
                    if role:
                        conn.execute(f"SET LOCAL ROLE {role}")
                    conn.execute(migration.sql)
                    if role:
                        conn.execute("RESET ROLE")
                    conn.execute(
                        f"INSERT INTO {quoted} (version, name, checksum) VALUES (%s, %s, %s)",
                        [migration.version, migration.name, migration.checksum],
                    )
            except Exception as exc:
                done = ", ".join(result.applied) or "none"
                raise MigrationApplyError(
                    f"{migration.filename}: failed and was rolled back: {exc}".rstrip()
                    + f" (applied before it in this run: {done})",
                    result.applied,
                ) from exc
            result.applied.append(migration.filename)
            result.pending.remove(migration.filename)
            result.current_version = migration.version
        return result
    finally:
        if not check_mode:
            # A broken connection has lost the lock already; keep the original error.
            with contextlib.suppress(Exception):
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", [ADVISORY_LOCK_KEY])
