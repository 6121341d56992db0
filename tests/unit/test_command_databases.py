"""Each command that talks to PostgreSQL names itself and its own variable when it has no
database: an operator who runs `bulkmail report` must not be told about the policy service."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bulkmail import cli

VARIABLES = (
    "BULKMAIL_POLICY_DATABASE",
    "BULKMAIL_INGEST_DATABASE",
    "BULKMAIL_REPORT_DATABASE",
    "BULKMAIL_RETENTION_DATABASE",
    "BULKMAIL_FORGET_DATABASE",
    "BULKMAIL_UNSUBSCRIBE_DATABASE",
)


@pytest.fixture(autouse=True)
def no_database_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("argv", "command", "variable"),
    [
        (["report"], "report", "BULKMAIL_REPORT_DATABASE"),
        (["retention"], "retention", "BULKMAIL_RETENTION_DATABASE"),
        (["ingest", "--tenants", "{tenants}"], "ingest", "BULKMAIL_INGEST_DATABASE"),
    ],
)
def test_no_database_names_the_command_and_its_variable(
    tmp_path: Path, argv: list[str], command: str, variable: str
) -> None:
    tenants = tmp_path / "tenants.json"
    tenants.write_text(json.dumps({"domains": {}}))
    with pytest.raises(SystemExit) as stopped:
        cli.main([arg.format(tenants=tenants) for arg in argv])
    message = str(stopped.value.code)
    assert message.startswith(f"{command}: no database: "), message
    assert f"${variable} " in message
    assert "POLICY" not in message


def test_an_empty_database_file_is_named(tmp_path: Path) -> None:
    empty = tmp_path / "report-db.conf"
    empty.write_text("\n")
    with pytest.raises(SystemExit, match=rf"^report: --database-file {empty} is empty$"):
        cli.main(["report", "--database-file", str(empty)])


def test_the_feedback_pipe_defers_without_a_prefix_twice(tmp_path: Path) -> None:
    from bulkmail.policy import read_conninfo

    with pytest.raises(SystemExit) as stopped:
        read_conninfo(tmp_path / "missing.conf", {}, command=None)
    assert str(stopped.value.code).startswith("--database-file ")
