"""`bulkmail forget`: one transaction, committed only with --yes, counts printed, no secret."""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bulkmail import forget

KEY = bytes(range(32))


class FakeCursor:
    def __init__(self, conn: FakeConnection) -> None:
        self.conn = conn
        self.rowcount = -1
        self._rows: list[tuple[Any, ...]] = []

    def __enter__(self) -> FakeCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def execute(self, sql: str, params: dict[str, Any]) -> None:
        self.conn.executed.append((sql, params))
        self._rows = []
        if sql.startswith("SELECT DISTINCT tenant"):
            self._rows = [("shop",)]
        elif sql.startswith("SELECT fm.id"):
            self._rows = [(4,)]
        self.rowcount = 2 if sql.startswith("DELETE") else len(self._rows)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows


class FakeConnection:
    def __init__(self) -> None:
        self.executed: list[tuple[str, dict[str, Any]]] = []
        self.committed = self.rolled_back = False

    def __enter__(self) -> FakeConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    def commit(self) -> None:
        self.committed = True

    def rollback(self) -> None:
        self.rolled_back = True


def forget_args(tmp_path: Path, *extra: str) -> argparse.Namespace:
    keys, db = tmp_path / "keys", tmp_path / "db"
    keys.write_text(KEY.hex() + "\n")
    db.write_text("dbname=bulkmail password=s3cret\n")
    parser = argparse.ArgumentParser()
    forget.add_arguments(parser)
    return parser.parse_args(
        ["John@Example.com", "--keys-file", str(keys), "--database-file", str(db), *extra]
    )


@pytest.mark.parametrize("yes", [False, True])
def test_forget_commits_only_with_yes_and_prints_counts_not_the_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, yes: bool
) -> None:
    conn = FakeConnection()
    monkeypatch.setattr(psycopg, "connect", lambda *a, **k: conn)
    out = io.StringIO()

    code = forget.run(forget_args(tmp_path, *(["--yes"] if yes else [])), out, io.StringIO())

    assert code == 0
    assert (conn.committed, conn.rolled_back) == (yes, not yes)
    text = out.getvalue()
    assert f"delivery_events: 2 {'deleted' if yes else 'would delete'}" in text
    assert "for shop" in text
    assert "hmac" not in text and KEY.hex() not in text
    sql, params = conn.executed[-1]
    assert sql.startswith("INSERT INTO suppression") and params["tenants"] == ["shop"]
    assert params["address"].startswith("hmac-sha256:")


def test_a_database_error_erases_nothing_and_hides_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise psycopg.OperationalError("password s3cret refused\ndetail")

    monkeypatch.setattr(psycopg, "connect", refuse)
    err = io.StringIO()

    code = forget.run(forget_args(tmp_path, "--yes"), io.StringIO(), err)

    assert code == 75
    assert "nothing was erased" in err.getvalue() and "s3cret" not in err.getvalue()


def test_what_is_not_an_address_is_refused(tmp_path: Path) -> None:
    args = forget_args(tmp_path)
    args.address = "nobody"
    err = io.StringIO()

    assert forget.run(args, io.StringIO(), err) == 2
    assert "is not an address" in err.getvalue()
