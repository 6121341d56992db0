"""The db tier in the running lab: pg_hba refuses the internet, the schema is there, and the
migration module behaves against a real PostgreSQL (order, one transaction per file, refusal of
a changed file).

Needs the lab up and the db playbook converged (`ansible-playbook playbooks/db.yml`); skipped
otherwise. Run from the repository root: `pytest tests/integration/test_lab_db.py`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONTAINER = "bulkmail-db1"
INVENTORY = ROOT / "inventories" / "lab" / "hosts.yml"


def _lab_running() -> bool:
    if shutil.which("docker") is None:
        return False
    result = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Running}}", CONTAINER],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() == "true"


pytestmark = pytest.mark.skipif(not _lab_running(), reason=f"{CONTAINER} is not running")


def psql(sql: str, db: str = "postgres") -> str:
    result = subprocess.run(
        [
            *("docker", "exec", CONTAINER, "runuser", "-u", "postgres", "--"),
            *("psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def in_container(*argv: str) -> None:
    subprocess.run(["docker", "exec", CONTAINER, *argv], check=True, capture_output=True)


def migrate(path: str, db: str, *, check: bool = False) -> dict[str, Any]:
    """Run the module on db1 through Ansible, as the role does; return its result."""
    args = json.dumps({"path": path, "db": db})
    env = {
        **os.environ,
        "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
    }
    command = ["ansible", "db1", "-m", "bulkmail.infra.postgresql_migrations", "-a", args]
    result = subprocess.run(
        command + (["--check"] if check else []),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    output = json.loads(result.stdout)
    return output["plays"][0]["tasks"][0]["hosts"]["db1"]


@pytest.fixture
def scratch() -> Iterator[tuple[str, str]]:
    """A throw-away database and migrations directory on db1."""
    name = f"bulkmail_test_{uuid.uuid4().hex[:8]}"
    path = f"/tmp/{name}"
    psql(f"CREATE DATABASE {name}")
    in_container("mkdir", path)
    try:
        yield name, path
    finally:
        in_container("rm", "-rf", path)
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def write(path: str, name: str, sql: str) -> None:
    subprocess.run(
        ["docker", "exec", "-i", CONTAINER, "sh", "-c", f"cat > {path}/{name}"],
        input=sql,
        text=True,
        check=True,
    )


def test_internet_is_refused_by_pg_hba() -> None:
    psycopg = pytest.importorskip("psycopg")
    inventory = yaml.safe_load(INVENTORY.read_text())
    public = inventory["all"]["children"]["db"]["hosts"]["db1"]["bulkmail_public_ipv4"]
    with pytest.raises(psycopg.OperationalError, match=r"pg_hba\.conf rejects connection"):
        psycopg.connect(
            host=public, user="bulkmail_app", dbname="bulkmail", password="x", connect_timeout=5
        )


def test_schema_is_applied_and_owned_by_the_owner_role() -> None:
    tables = dict(
        line.split("|")
        for line in psql(
            "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'", "bulkmail"
        ).split()
    )
    for table in ("domains", "sender_accounts", "messages", "delivery_events", "suppression"):
        assert tables.get(table) == "bulkmail_owner", tables
    assert tables["schema_migrations"] == "postgres"


def test_converged_database_has_nothing_pending() -> None:
    result = migrate("/usr/local/share/bulkmail/migrations", "bulkmail", check=True)
    assert result.get("failed") is not True, result
    shipped = sorted(Path(__file__).parents[2].glob("roles/postgresql/files/migrations/*.sql"))
    assert (result["changed"], result["pending"]) == (False, [])
    assert result["version"] == int(shipped[-1].name.split("_", maxsplit=1)[0])


def test_migrations_apply_in_order_once(scratch: tuple[str, str]) -> None:
    db, path = scratch
    write(path, "0002_second.sql", "INSERT INTO trail VALUES ('second');\n")
    write(
        path,
        "0001_first.sql",
        "CREATE TABLE trail (step text);\nINSERT INTO trail VALUES ('first');\n",
    )
    pending = migrate(path, db, check=True)
    assert (pending["changed"], pending["pending"]) == (True, ["0001_first.sql", "0002_second.sql"])
    assert "trail" not in psql("SELECT tablename FROM pg_tables", db)
    first = migrate(path, db)
    assert first["changed"] and first["applied"] == ["0001_first.sql", "0002_second.sql"]
    assert psql("SELECT string_agg(step, ',') FROM trail", db).strip() == "first,second"
    again = migrate(path, db)
    assert (again["changed"], again["applied"]) == (False, [])


def test_failing_file_is_rolled_back_alone(scratch: tuple[str, str]) -> None:
    db, path = scratch
    write(path, "0001_first.sql", "CREATE TABLE trail (step text);\n")
    write(path, "0002_broken.sql", "INSERT INTO trail VALUES ('half');\nSELECT * FROM missing;\n")
    result = migrate(path, db)
    assert result["failed"] and result["msg"].startswith(
        "0002_broken.sql: failed and was rolled back"
    )
    assert result["applied"] == ["0001_first.sql"]
    assert psql("SELECT count(*) FROM trail", db).strip() == "0"
    assert psql("SELECT version FROM schema_migrations", db).split() == ["1"]


def test_changed_applied_file_is_refused(scratch: tuple[str, str]) -> None:
    db, path = scratch
    write(path, "0001_first.sql", "CREATE TABLE trail (step text);\n")
    assert migrate(path, db)["changed"]
    write(path, "0001_first.sql", "CREATE TABLE trail (step text, at timestamptz);\n")
    result = migrate(path, db)
    assert result["failed"]
    assert result["msg"].startswith("0001_first.sql: changed after it was applied")
