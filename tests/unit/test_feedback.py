"""`bulkmail feedback` and `bulkmail dmarc-report` against a recording fake of psycopg's
connection: the exit statuses Postfix acts on, one transaction, retries that write nothing."""

from __future__ import annotations

import argparse
import gzip
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from bulkmail.logic.feedback.unsubscribe import make_token

from bulkmail import dmarc_report, feedback

DATA = Path(__file__).parent / "plugins" / "module_utils" / "data" / "feedback"
NOW = datetime(2026, 10, 13, 13, 0, tzinfo=UTC)
VERP = "news+bob=example.net@bounces.example.test"
CONNINFO = "host=db.internal dbname=bulkmail user=bulkmail_feedback password=s3cret-pw"
CONFIG = {
    "tenants": {"domains": {"example.test": "example.test", "shop.test": "shop.test"}},
    "return_path_domains": {"bounces.example.test": "example.test"},
    "addresses": {
        "dmarc@example.test": "dmarc_report",
        "fbl@example.test": "complaint",
        "unsubscribe@shop.test": "unsubscribe",
    },
}
NEW_KEY = bytes(range(32))
OLD_KEY = bytes(range(100, 132))


class FakeCursor:
    def __init__(self, conn: FakeConnection) -> None:
        self.conn = conn
        self.result: list[tuple[Any, ...]] = []

    def execute(self, sql: str, params: Any = None) -> FakeCursor:
        self.conn.executed.append((sql, params))
        fail = self.conn.fail_on
        if fail is not None and fail[0] in sql and not self.conn.rolled_back:
            raise fail[1]
        if "INSERT INTO feedback_messages" in sql:
            self.result = [] if self.conn.duplicate else [(101,)]
        elif "INSERT INTO dmarc_reports" in sql:
            self.result = [(202,)]
        elif "count(*)" in sql:
            self.result = [self.conn.policy_row]
        elif sql.startswith("SELECT"):
            self.result = list(self.conn.rows)
        else:
            self.result = []
        return self

    def executemany(self, sql: str, rows: list[Any]) -> None:
        for params in rows:
            self.conn.executed.append((sql, params))

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.result[0] if self.result else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.result


class FakeConnection:
    def __init__(self) -> None:
        self.executed: list[tuple[str, Any]] = []
        self.commits = 0
        self.rolled_back = False
        self.closed = False
        self.duplicate = False
        self.fail_on: tuple[str, Exception] | None = None
        self.policy_row: tuple[Any, ...] = (0, None)
        self.rows: list[tuple[Any, ...]] = []
        self.kwargs: dict[str, Any] = {}

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    def execute(self, sql: str, params: Any = None) -> FakeCursor:
        return FakeCursor(self).execute(sql, params)

    def commit(self) -> None:
        self.commits += 1

    def rollback(self) -> None:
        self.rolled_back = True
        self.executed.clear()

    def close(self) -> None:
        self.closed = True

    def tables(self) -> list[str]:
        return [sql.split()[2] for sql, _p in self.executed if sql.startswith("INSERT")]


def connector(conn: FakeConnection) -> Callable[..., FakeConnection]:
    def connect(conninfo: str, **kwargs: Any) -> FakeConnection:
        assert conninfo == CONNINFO
        conn.kwargs = kwargs
        return conn

    return connect


@pytest.fixture
def files(tmp_path: Path) -> argparse.Namespace:
    config = tmp_path / "feedback.json"
    config.write_text(json.dumps(CONFIG))
    database = tmp_path / "feedback-db.conf"
    database.write_text(CONNINFO + "\n")
    return argparse.Namespace(
        config=config,
        database_file=database,
        sender="",
        recipient=VERP,
        max_size=feedback.MAX_MESSAGE,
        unsubscribe_keys_file=None,
        unsubscribe_max_age_days=None,
    )


def deliver(
    args: argparse.Namespace, raw: bytes, conn: FakeConnection | None = None, **kwargs: Any
) -> tuple[int, str]:
    err = io.StringIO()
    status = feedback.run(
        args,
        stdin=io.BytesIO(raw),
        stderr=err,
        now=NOW,
        connect=connector(conn or FakeConnection()),
        **kwargs,
    )
    return status, err.getvalue()


def test_arguments_as_pipe_passes_them() -> None:
    parser = argparse.ArgumentParser()
    feedback.add_arguments(parser)
    args = parser.parse_args(
        ["--config", "c.json", "--database-file", "d.conf", "--sender=", "--recipient", VERP]
    )
    assert (args.sender, args.recipient, args.max_size) == ("", VERP, 25 * 1024 * 1024)
    assert (args.unsubscribe_keys_file, args.unsubscribe_max_age_days) == (None, None)
    args = parser.parse_args(
        ["--config", "c.json", "--database-file", "d.conf", "--recipient", VERP,
         "--unsubscribe-keys-file", "/etc/bulkmail/unsubscribe-keys",
         "--unsubscribe-max-age-days", "400"]
    )  # fmt: skip
    assert args.unsubscribe_keys_file == Path("/etc/bulkmail/unsubscribe-keys")
    assert args.unsubscribe_max_age_days == 400


def test_a_bounce_is_written_in_one_transaction(files: argparse.Namespace) -> None:
    conn = FakeConnection()
    status, err = deliver(files, (DATA / "postfix_5.1.1.eml").read_bytes(), conn)
    assert status == 0
    assert conn.tables() == ["feedback_messages", "bounces", "suppression"]
    assert conn.commits == 1 and conn.closed
    assert conn.kwargs["connect_timeout"] == 5
    assert err.startswith("bulkmail feedback: stored: bounce to ")
    assert "s3cret" not in err


def test_a_retried_delivery_writes_nothing_else(files: argparse.Namespace) -> None:
    conn = FakeConnection()
    conn.duplicate = True
    status, err = deliver(files, (DATA / "postfix_5.1.1.eml").read_bytes(), conn)
    assert status == 0
    assert conn.tables() == ["feedback_messages"]
    assert "duplicate" in err


def test_a_dmarc_report_with_its_records(files: argparse.Namespace) -> None:
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = "noreply-dmarc-support@google.com"
    message["To"] = "dmarc@example.test"
    message.set_content("report")
    message.add_attachment(
        gzip.compress((DATA / "dmarc_google.xml").read_bytes()),
        maintype="application",
        subtype="gzip",
        filename="r.xml.gz",
    )
    files.recipient = "dmarc@example.test"
    conn = FakeConnection()
    status, _err = deliver(files, message.as_bytes(), conn)
    assert status == 0
    assert conn.tables() == [
        "feedback_messages", "dmarc_reports", "dmarc_records", "dmarc_records",
    ]  # fmt: skip
    assert conn.executed[-1][1][0] == 202


def test_garbage_is_stored_and_delivered(files: argparse.Namespace) -> None:
    conn = FakeConnection()
    status, _err = deliver(files, b"\x00\xffnot mail at all", conn)
    assert status == 0
    assert conn.tables() == ["feedback_messages"]
    assert conn.executed[1][1][0] == "unparsed"


def test_rows_the_database_refuses_leave_the_message_alone(files: argparse.Namespace) -> None:
    conn = FakeConnection()
    conn.fail_on = ("INSERT INTO bounces", psycopg.errors.CheckViolation("bounces_dsn_check"))
    status, err = deliver(files, (DATA / "postfix_5.1.1.eml").read_bytes(), conn)
    assert status == 0
    assert conn.tables() == ["feedback_messages"]
    assert conn.executed[0][1][0] == "unparsed"
    assert "refused by the database" in conn.executed[0][1][-1]
    assert "stored unparsed" in err


def test_database_down_defers(files: argparse.Namespace) -> None:
    def down(conninfo: str, **kwargs: Any) -> None:
        raise psycopg.OperationalError(
            'connection to server at "db.internal" failed: password s3cret-pw timeout'
        )

    err = io.StringIO()
    status = feedback.run(files, stdin=io.BytesIO(b"x"), stderr=err, now=NOW, connect=down)
    assert status == feedback.EX_TEMPFAIL
    assert err.getvalue().count("\n") == 1
    assert "database unavailable" in err.getvalue() and "s3cret" not in err.getvalue()


def test_connection_lost_mid_transaction_defers(files: argparse.Namespace) -> None:
    conn = FakeConnection()
    conn.fail_on = ("INSERT INTO suppression", psycopg.OperationalError("server closed"))
    status, _err = deliver(files, (DATA / "postfix_5.1.1.eml").read_bytes(), conn)
    assert status == feedback.EX_TEMPFAIL
    assert conn.commits == 0


def test_bad_config_and_bad_connection_string_defer(
    files: argparse.Namespace, tmp_path: Path
) -> None:
    files.config = tmp_path / "missing.json"
    status, err = deliver(files, b"x")
    assert status == feedback.EX_TEMPFAIL and "missing.json" in err
    files.config = tmp_path / "bad.json"
    files.config.write_text(json.dumps({**CONFIG, "addresses": {"x@y.test": "nope"}}))
    status, err = deliver(files, b"x")
    assert status == feedback.EX_TEMPFAIL and "'nope' is not one of" in err
    files.config = tmp_path / "feedback.json"
    files.database_file.write_text("host='unterminated password=s3cret-pw")
    err_stream = io.StringIO()
    status = feedback.run(files, stdin=io.BytesIO(b"x"), stderr=err_stream, now=NOW)
    assert status == feedback.EX_TEMPFAIL
    assert "not libpq syntax" in err_stream.getvalue()
    assert "s3cret" not in err_stream.getvalue()


def test_a_bug_defers_with_its_traceback(
    files: argparse.Namespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(feedback, "process", broken)
    status, err = deliver(files, b"Subject: x\n\nx")
    assert status == feedback.EX_TEMPFAIL
    assert "Traceback" in err and "KeyError" in err


def test_an_oversized_message_is_kept_truncated(files: argparse.Namespace) -> None:
    files.max_size = 100
    conn = FakeConnection()
    raw = (DATA / "postfix_5.1.1.eml").read_bytes()
    status, _err = deliver(files, raw, conn)
    assert status == 0
    ((_sql, params),) = conn.executed[1:]
    assert params[0] == "unparsed" and params[5] == raw[:100]
    assert "longer than 100 bytes" in params[6]


# ------------------------------------------------------------------------------ mailto unsubscribe


def mailto(subject: str, sender: str = "mia@forward.test") -> bytes:
    return (
        f"From: Mia <{sender}>\nTo: unsubscribe@shop.test\nSubject: {subject}\n"
        "Date: Tue, 13 Oct 2026 11:00:00 +0000\n\nunsubscribe\n"
    ).encode()


def keyed(files: argparse.Namespace, tmp_path: Path) -> argparse.Namespace:
    keys = tmp_path / "unsubscribe-keys"
    keys.write_text(f"# signing key first\n{NEW_KEY.hex()}\n{OLD_KEY.hex()}  # retired\n")
    files.unsubscribe_keys_file = keys
    files.recipient = "unsubscribe@shop.test"
    files.sender = "srs0=hash=mia@forward.test"
    return files


def suppressions(conn: FakeConnection) -> list[tuple[str, str]]:
    return [p[:2] for sql, p in conn.executed if sql.startswith("INSERT INTO suppression")]


def test_a_mailto_token_signed_with_either_key_unsubscribes_its_address(
    files: argparse.Namespace, tmp_path: Path
) -> None:
    args = keyed(files, tmp_path)
    for key in (NEW_KEY, OLD_KEY):
        token = make_token(key, "shop.test", "bob@example.net", "october-sale", 20000)
        conn = FakeConnection()
        status, err = deliver(args, mailto(f"Re: unsubscribe-{token}"), conn)
        assert status == 0
        assert suppressions(conn) == [("shop.test", "bob@example.net")]
        assert "with a valid token" in err
        everything = err + repr(conn.executed)
        assert token not in err and NEW_KEY.hex() not in everything
        assert OLD_KEY.hex() not in everything and repr(NEW_KEY) not in everything


def test_a_forged_mailto_token_suppresses_nothing(
    files: argparse.Namespace, tmp_path: Path
) -> None:
    token = make_token(b"f" * 32, "shop.test", "victim@example.net", "x", 20000)
    conn = FakeConnection()
    status, err = deliver(keyed(files, tmp_path), mailto(f"unsubscribe-{token}"), conn)
    assert status == 0
    assert conn.tables() == ["feedback_messages"]
    assert conn.executed[1][1][0] == "unsubscribe"
    assert "the token did not verify" in err


def test_without_the_keys_file_the_from_is_trusted(files: argparse.Namespace) -> None:
    token = make_token(NEW_KEY, "shop.test", "bob@example.net", "october-sale", 20000)
    files.recipient, files.sender = "unsubscribe@shop.test", "mia@forward.test"
    conn = FakeConnection()
    status, _err = deliver(files, mailto(f"unsubscribe-{token}"), conn)
    assert status == 0
    assert suppressions(conn) == [("shop.test", "mia@forward.test")]


def test_unsubscribe_max_age_days_reaches_the_token_check(
    files: argparse.Namespace, tmp_path: Path
) -> None:
    args = keyed(files, tmp_path)
    today = int(NOW.timestamp() // 86400)
    token = make_token(NEW_KEY, "shop.test", "bob@example.net", "old", today - 10)
    args.unsubscribe_max_age_days = 9
    conn = FakeConnection()
    status, err = deliver(args, mailto(f"unsubscribe-{token}"), conn)
    assert status == 0 and suppressions(conn) == [] and "10 days old" in err
    args.unsubscribe_max_age_days = -1
    status, err = deliver(args, mailto(f"unsubscribe-{token}"))
    assert status == feedback.EX_TEMPFAIL and "--unsubscribe-max-age-days -1" in err


def test_an_unreadable_keys_file_defers_naming_the_option(
    files: argparse.Namespace, tmp_path: Path
) -> None:
    files.unsubscribe_keys_file = tmp_path / "missing-keys"
    status, err = deliver(files, mailto("unsubscribe"))
    assert status == feedback.EX_TEMPFAIL
    assert err == (
        f"bulkmail feedback: --unsubscribe-keys-file {tmp_path / 'missing-keys'}: "
        "No such file or directory; deferred\n"
    )
    short = "ab" * 31
    files.unsubscribe_keys_file.write_text(f"{NEW_KEY.hex()}\n{short}\n")
    status, err = deliver(files, mailto("unsubscribe"))
    assert status == feedback.EX_TEMPFAIL
    assert f"--unsubscribe-keys-file {files.unsubscribe_keys_file}:2: the key is 31 bytes" in err
    assert short not in err and NEW_KEY.hex() not in err
    files.unsubscribe_keys_file.write_bytes(b"\xff\xfe" + NEW_KEY.hex().encode())
    status, err = deliver(files, mailto("unsubscribe"))
    assert status == feedback.EX_TEMPFAIL and "not UTF-8 text" in err
    files.unsubscribe_keys_file.write_text("# no key yet\n")
    status, err = deliver(files, mailto("unsubscribe"))
    assert status == feedback.EX_TEMPFAIL and "no key in the file" in err


# ------------------------------------------------------------------------------ dmarc-report


def report_args(tmp_path: Path, **overrides: Any) -> argparse.Namespace:
    database = tmp_path / "db.conf"
    database.write_text(CONNINFO)
    parser = argparse.ArgumentParser()
    dmarc_report.add_arguments(parser)
    args = parser.parse_args(["Example.test", "--database-file", str(database)])
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def test_dmarc_report_table_and_verdict(tmp_path: Path) -> None:
    conn = FakeConnection()
    conn.policy_row = (4, "none")
    conn.rows = [
        ("198.51.100.11", 9000, True, True),
        ("192.0.2.78", 500, False, False),
    ]
    out = io.StringIO()
    status = dmarc_report.run(
        report_args(tmp_path), stdout=out, stderr=io.StringIO(), now=NOW, connect=connector(conn)
    )
    assert status == 1
    text = out.getvalue()
    assert text.startswith("example.test: 9500 messages in 4 reports, policy p=none")
    assert "192.0.2.78" in text and "NOT SAFE" in text
    assert conn.executed[0][0] == "SET default_transaction_read_only = on"
    assert conn.executed[1][1]["since"] == datetime(2026, 10, 6, 13, 0, tzinfo=UTC)


def test_dmarc_report_json(tmp_path: Path) -> None:
    conn = FakeConnection()
    conn.policy_row = (1, "quarantine")
    conn.rows = [("198.51.100.11", 100, True, False)]
    out = io.StringIO()
    args = report_args(tmp_path, json=True)
    status = dmarc_report.run(
        args, stdout=out, stderr=io.StringIO(), now=NOW, connect=connector(conn)
    )
    data = json.loads(out.getvalue())
    assert status == 0
    assert (data["safe"], data["next_policy"], data["messages"]) == (True, "reject", 100)


def test_dmarc_report_database_down(tmp_path: Path) -> None:
    def down(conninfo: str, **kwargs: Any) -> None:
        raise psycopg.OperationalError("connection failed: password s3cret-pw refused")

    err = io.StringIO()
    status = dmarc_report.run(report_args(tmp_path), stdout=io.StringIO(), stderr=err, connect=down)
    assert status == 2
    assert "database unavailable" in err.getvalue() and "s3cret" not in err.getvalue()
