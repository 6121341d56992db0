"""Migration planning: file names, order, checksums, and what a run applies (no database)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.adapters.migration_files import (
    discover_migrations,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.postgresql.migrations import (
    AppliedMigration,
    MigrationApplyError,
    MigrationError,
    checksum_sql,
    load_migrations,
    parse_migration_filename,
    plan_migrations,
    run_migrations,
)

ROLE_MIGRATIONS = Path(__file__).parents[4] / "roles" / "postgresql" / "files" / "migrations"


def files(*names: str) -> list[tuple[str, bytes]]:
    return [(name, f"-- {name}\nSELECT 1;\n".encode()) for name in names]


def applied(*names: str, checksums: dict[str, str] | None = None) -> list[AppliedMigration]:
    rows = []
    for name, content in files(*names):
        version, short = parse_migration_filename(name)
        rows.append(
            AppliedMigration(version, short, (checksums or {}).get(name) or checksum_sql(content))
        )
    return rows


def test_migrations_are_ordered_by_number_not_by_listing() -> None:
    found = load_migrations(files("0010_later.sql", "0002_second.sql", "0001_initial.sql"))
    assert [m.filename for m in found] == ["0001_initial.sql", "0002_second.sql", "0010_later.sql"]
    assert [m.version for m in found] == [1, 2, 10]


def test_files_that_are_not_sql_are_ignored() -> None:
    found = load_migrations(
        [*files("0001_initial.sql"), ("README.md", b"notes"), (".0002_x.sql", b"x")]
    )
    assert [m.filename for m in found] == ["0001_initial.sql"]


@pytest.mark.parametrize(
    "name",
    [
        "1_initial.sql",
        "0001-initial.sql",
        "0001_Initial.sql",
        "0001_.sql",
        "0001_two__bars.sql",
        "initial.sql",
    ],
)
def test_badly_named_sql_file_is_refused_by_name(name: str) -> None:
    with pytest.raises(
        MigrationError, match=rf"^{name}: migration files must be named NNNN_name\.sql"
    ):
        load_migrations(files(name))


def test_version_zero_is_refused() -> None:
    with pytest.raises(MigrationError, match=re.escape("0000_nothing.sql: versions start at 0001")):
        parse_migration_filename("0000_nothing.sql")


def test_two_files_with_one_number_are_refused() -> None:
    with pytest.raises(
        MigrationError, match=re.escape("0002_b.sql: version 0002 is also used by 0002_a.sql")
    ):
        load_migrations(files("0002_b.sql", "0001_initial.sql", "0002_a.sql"))


def test_empty_file_is_refused() -> None:
    with pytest.raises(MigrationError, match=re.escape("0001_initial.sql: the file is empty")):
        load_migrations([("0001_initial.sql", b"  \n")])


def test_transaction_control_in_a_file_is_refused_with_its_line() -> None:
    sql = b"CREATE TABLE a (id int);\nCOMMIT;\n"
    with pytest.raises(MigrationError, match=r"0001_initial.sql: line 2 controls the transaction"):
        load_migrations([("0001_initial.sql", sql)])


def test_plpgsql_begin_end_block_is_not_transaction_control() -> None:
    sql = b"CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$\nBEGIN\n  NULL;\nEND;\n$$;\n"
    assert load_migrations([("0001_initial.sql", sql)])[0].version == 1


def test_line_endings_do_not_change_the_checksum() -> None:
    assert checksum_sql(b"SELECT 1;\r\nSELECT 2;\r\n") == checksum_sql(b"SELECT 1;\nSELECT 2;\n")


def test_plan_lists_only_files_not_yet_applied() -> None:
    plan = plan_migrations(
        load_migrations(files("0001_initial.sql", "0002_lists.sql", "0003_more.sql")),
        applied("0001_initial.sql"),
    )
    assert [m.filename for m in plan.pending] == ["0002_lists.sql", "0003_more.sql"]
    assert plan.current_version == 1


def test_changed_applied_file_is_refused_naming_the_file() -> None:
    available = load_migrations(files("0001_initial.sql", "0002_lists.sql"))
    rows = applied("0001_initial.sql", "0002_lists.sql", checksums={"0002_lists.sql": "f" * 64})
    with pytest.raises(MigrationError) as caught:
        plan_migrations(available, rows)
    message = str(caught.value)
    assert message.startswith("0002_lists.sql: changed after it was applied")
    assert "put the change in a new migration" in message


def test_removed_applied_file_is_refused() -> None:
    with pytest.raises(
        MigrationError, match=re.escape("0002_lists.sql: recorded as applied but missing")
    ):
        plan_migrations(
            load_migrations(files("0001_initial.sql")),
            applied("0001_initial.sql", "0002_lists.sql"),
        )


def test_renamed_applied_file_is_refused() -> None:
    rows = [AppliedMigration(1, "first", checksum_sql(files("0001_initial.sql")[0][1]))]
    with pytest.raises(
        MigrationError,
        match=re.escape("0001_initial.sql: version 0001 was applied as 0001_first.sql"),
    ):
        plan_migrations(load_migrations(files("0001_initial.sql")), rows)


def test_new_file_numbered_before_an_applied_one_is_refused() -> None:
    available = load_migrations(files("0001_initial.sql", "0002_late.sql", "0003_lists.sql"))
    with pytest.raises(
        MigrationError,
        match=re.escape("0002_late.sql: pending, but 0003_lists.sql is already applied"),
    ):
        plan_migrations(available, applied("0001_initial.sql", "0003_lists.sql"))


def test_the_shipped_migrations_load() -> None:
    found = discover_migrations(ROLE_MIGRATIONS)
    assert found[0].filename == "0001_initial.sql"
    assert "CREATE TABLE suppression" in found[0].sql


def test_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="nowhere: the migrations directory does not exist"):
        discover_migrations(tmp_path / "nowhere")


class FakeConnection:
    """Just enough of a psycopg 3 connection: a tracking table and a statement log."""

    def __init__(self, rows: Sequence[AppliedMigration] | None = None, fail_on: str | None = None):
        self.table: list[tuple[int, str, str]] | None = (
            None if rows is None else [(r.version, r.name, r.checksum) for r in rows]
        )
        self.fail_on = fail_on
        self.log: list[str] = []
        self._result: list[tuple[Any, ...]] = []

    def execute(self, query: str, params: Sequence[Any] | None = None) -> FakeConnection:
        self.log.append(query)
        if self.fail_on and self.fail_on in query:
            raise RuntimeError('relation "missing" does not exist')
        if query.startswith("SELECT to_regclass"):
            self._result = [(None if self.table is None else "schema_migrations",)]
        elif query.startswith("SELECT version, name, checksum"):
            self._result = list(self.table or [])
        elif query.startswith("CREATE TABLE IF NOT EXISTS"):
            self.table = self.table or []
        elif query.startswith("INSERT INTO"):
            assert self.table is not None and params is not None
            self.table.append((params[0], params[1], params[2]))
        return self

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._result[0] if self._result else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._result

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.log.append("BEGIN")
        saved = list(self.table or [])
        try:
            yield
        except Exception:
            self.table = saved
            self.log.append("ROLLBACK")
            raise
        self.log.append("COMMIT")


def test_check_mode_lists_pending_and_writes_nothing() -> None:
    conn = FakeConnection()
    result = run_migrations(conn, load_migrations(files("0001_initial.sql")), check_mode=True)
    assert result.pending == ["0001_initial.sql"]
    assert not result.changed
    assert conn.table is None
    assert not any(q.startswith(("CREATE", "INSERT", "SELECT pg_advisory")) for q in conn.log)


def test_each_file_runs_in_its_own_transaction_as_the_session_role() -> None:
    conn = FakeConnection()
    result = run_migrations(
        conn,
        load_migrations(files("0001_initial.sql", "0002_lists.sql")),
        session_role="bulkmail_owner",
    )
    assert result.applied == ["0001_initial.sql", "0002_lists.sql"]
    assert result.changed and result.pending == [] and result.current_version == 2
    assert [row[0] for row in conn.table or []] == [1, 2]
    assert conn.log.count("BEGIN") == 2 and conn.log.count("COMMIT") == 2
    begin = conn.log.index("BEGIN")
    assert conn.log[begin + 1] == 'SET LOCAL ROLE "bulkmail_owner"'


def test_second_run_applies_nothing() -> None:
    migrations = load_migrations(files("0001_initial.sql"))
    conn = FakeConnection()
    run_migrations(conn, migrations)
    again = run_migrations(conn, migrations)
    assert not again.changed and again.applied == [] and again.pending == []


def test_failing_file_is_rolled_back_and_named_after_earlier_ones_committed() -> None:
    migrations = load_migrations(
        [*files("0001_initial.sql"), ("0002_broken.sql", b"SELECT * FROM missing;\n")]
    )
    conn = FakeConnection(fail_on="FROM missing")
    with pytest.raises(MigrationApplyError) as caught:
        run_migrations(conn, migrations)
    assert str(caught.value).startswith("0002_broken.sql: failed and was rolled back")
    assert caught.value.applied == ["0001_initial.sql"]
    assert [row[0] for row in conn.table or []] == [1]
    assert conn.log[-1].startswith("SELECT pg_advisory_unlock")


def test_odd_tracking_table_name_is_refused() -> None:
    with pytest.raises(MigrationError, match="tracking table 'x; DROP'"):
        run_migrations(FakeConnection(), [], table="x; DROP", check_mode=True)
