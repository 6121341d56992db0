"""`bulkmail archive`: every entry shipped once into the archive across failed puts, crashes
and re-runs, driven with a journal of dicts and an S3 client in memory (no systemd, no boto3)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
from bulkmail.logic.feedback.archive import content_md5, read_lines

from bulkmail import archive
from bulkmail.archive import add_arguments, read_journal, run

T0 = 1_767_225_600_000_000  # 2026-01-01 00:00:00 UTC, microseconds
KEY_ID = "AKIA-Test-Key-Id-4Hs"
SECRET = "Test-Secret-Key-b7Vq1"
CONFIG = {
    "endpoint": "http://10.25.0.200:5000",
    "bucket": "bulkmail-logs",
    "region": "us-east-1",
    "prefix": "postfix/",
    "addressing_style": "path",
    "chunk_lines": 100,
    "interval_minutes": 15,
}


def entry(number: int, identifier: str = "postfix/smtp") -> dict[str, Any]:
    return {
        "__CURSOR": f"s=abc;i={number:x}",
        "__REALTIME_TIMESTAMP": T0 + number * 1_000_000,
        "SYSLOG_IDENTIFIER": identifier,
        "_PID": 4000 + number,
        "MESSAGE": f"Q{number}: to=<a@b.test>, status=sent",
        "_HOSTNAME": "mta1",
    }


class Journal:
    """The mail facility's entries; called with the saved cursor, gives the ones after it."""

    def __init__(self, count: int = 0) -> None:
        self.entries = [entry(n) for n in range(1, count + 1)]
        self.opened: list[str | None] = []

    def grow(self, count: int) -> None:
        start = len(self.entries) + 1
        self.entries += [entry(n) for n in range(start, start + count)]

    def __call__(self, after: str | None) -> Iterator[Mapping[str, Any]]:
        self.opened.append(after)
        cursors = [e["__CURSOR"] for e in self.entries]
        start = 0 if after is None else cursors.index(after) + 1
        return iter(list(self.entries[start:]))


class ClientError(Exception):
    """botocore's shape: the code and status in `.response`, a message that may say more."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(
            f"An error occurred ({code}) when calling the PutObject operation: {message}"
        )
        self.response = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": 404 if code == "NoSuchBucket" else 403},
        }


class Store:
    """An S3 bucket in memory; `fail_at` makes the n-th put (from 1) raise `error`."""

    def __init__(self, fail_at: int = 0, error: Exception | None = None) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.puts: list[str] = []
        self.fail_at = fail_at
        self.error = error or ClientError("NoSuchBucket", "The specified bucket does not exist")

    def put_object(self, **request: Any) -> dict[str, Any]:
        self.puts.append(request["Key"])
        if len(self.puts) == self.fail_at:
            raise self.error
        assert request["ContentMD5"] == content_md5(request["Body"])  # the store checks it
        self.objects[request["Key"]] = request
        return {"ETag": '"x"'}

    def lines(self) -> list[dict[str, Any]]:
        return [line for key in sorted(self.objects) for line in read_lines(self.body(key))]

    def body(self, key: str) -> bytes:
        return self.objects[key]["Body"]


class Refuses:
    def put_object(self, **request: Any) -> None:
        raise AssertionError("a dry run must not put")


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "state").mkdir()
    config = tmp_path / "archive.json"
    config.write_text(json.dumps(CONFIG))
    credentials = tmp_path / "archive-credentials"
    credentials.write_text(json.dumps({"access_key_id": KEY_ID, "secret_access_key": SECRET}))
    return {"config": config, "credentials": credentials, "state": tmp_path / "state"}


def arguments(files: Mapping[str, Path], *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(
        [
            "--config",
            str(files["config"]),
            "--credentials-file",
            str(files["credentials"]),
            "--state-dir",
            str(files["state"]),
            "--host",
            "smtp1",
            *extra,
        ]
    )


def saved(files: Mapping[str, Path]) -> str | None:
    path = files["state"] / "cursor"
    return path.read_text().strip() if path.exists() else None


def test_arguments_and_their_defaults() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--config", "c", "--credentials-file", "k"])
    assert args.state_dir == Path("/var/lib/bulkmail-archive")
    assert args.host is None and args.dry_run is False


def test_ships_every_entry_in_objects_of_chunk_lines(
    files: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    journal, store = Journal(250), Store()
    journal.entries.insert(10, entry(900, "opendkim"))  # the mail facility, not Postfix's
    assert run(arguments(files), journal=journal, client=store) == 0
    assert journal.opened == [None]
    assert len(store.objects) == 3
    assert [line["cursor"] for line in store.lines()] == [f"s=abc;i={n:x}" for n in range(1, 251)]
    assert store.lines()[0] == {
        "realtime_us": T0 + 1_000_000,
        "cursor": "s=abc;i=1",
        "hostname": "mta1",
        "identifier": "postfix/smtp",
        "pid": 4001,
        "message": "Q1: to=<a@b.test>, status=sent",
    }
    first = store.objects[store.puts[0]]
    assert first["Bucket"] == "bulkmail-logs"
    assert first["Key"].startswith("postfix/smtp1/2026/01/01/000001-")
    assert first["Key"].endswith(".jsonl.gz")
    assert first["ContentType"] == "application/gzip"
    assert first["Metadata"]["entries"] == "100"
    assert saved(files) == "s=abc;i=fa"
    summary = caplog.records[-1].getMessage()
    assert summary.startswith("shipped 250 entries in 3 objects, ")
    assert "bytes, to bucket bulkmail-logs in " in summary


def test_resumes_after_the_saved_cursor(files: dict[str, Path]) -> None:
    journal, store = Journal(30), Store()
    assert run(arguments(files), journal=journal, client=store) == 0
    journal.grow(20)
    assert run(arguments(files), journal=journal, client=store) == 0
    assert journal.opened == [None, "s=abc;i=1e"]
    assert len(store.objects) == 2
    assert [line["cursor"] for line in store.lines()] == [e["__CURSOR"] for e in journal.entries]
    assert saved(files) == "s=abc;i=32"
    # Nothing new: nothing put, exit 0.
    assert run(arguments(files), journal=journal, client=store) == 0
    assert len(store.puts) == 2


def test_a_crash_between_put_and_save_puts_the_same_key_again_with_a_superset(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    journal, store = Journal(30), Store()

    def killed(self: Any, cursor: str) -> None:
        raise KeyboardInterrupt  # kill -9 after the put, before the save

    with monkeypatch.context() as patch:
        patch.setattr(archive.CursorFile, "save", killed)
        with pytest.raises(KeyboardInterrupt):
            run(arguments(files), journal=journal, client=store)
    assert saved(files) is None and len(store.objects) == 1
    journal.grow(40)
    assert run(arguments(files), journal=journal, client=store) == 0
    assert store.puts[0] == store.puts[1]  # the same key, overwritten
    assert len(store.objects) == 1
    assert len(store.lines()) == 70  # the 30 and the 40 that came since, once each
    assert saved(files) == "s=abc;i=46"


def test_a_failing_put_keeps_the_cursor_and_exits_1_then_the_next_run_ships_the_rest(
    files: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    journal = Journal(250)
    failing = Store(fail_at=2)
    assert run(arguments(files), journal=journal, client=failing) == 1
    assert saved(files) == "s=abc;i=64"  # the first object's last entry
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "into bucket bulkmail-logs failed: NoSuchBucket (HTTP 404)" in errors[0]
    assert "the next run retries" in errors[0]
    store = Store()
    assert run(arguments(files), journal=journal, client=store) == 0
    assert len(failing.objects) + len(store.objects) == 3
    cursors = [line["cursor"] for line in failing.lines() + store.lines()]
    assert cursors == [e["__CURSOR"] for e in journal.entries]  # nothing lost, nothing twice


def test_secrets_never_appear_in_output_or_logs(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    journal = Journal(150)
    # A store that echoes the request, credentials and all, in its error's text.
    echo = ClientError("SignatureDoesNotMatch", f"key {KEY_ID} secret {SECRET}")
    assert run(arguments(files), journal=journal, client=Store(1, echo)) == 1
    down = ConnectionError(f"connection refused; signing with {KEY_ID}/{SECRET}")
    assert run(arguments(files), journal=journal, client=Store(1, down)) == 1
    assert run(arguments(files, "--dry-run"), journal=journal, client=Refuses()) == 0
    assert run(arguments(files), journal=journal, client=Store()) == 0
    captured = capsys.readouterr()
    text = captured.out + captured.err + caplog.text
    assert "SignatureDoesNotMatch" in text and "ConnectionError" in text
    assert KEY_ID not in text and SECRET not in text


def test_a_dry_run_prints_what_it_would_put_and_writes_nothing(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    journal = Journal(150)
    assert run(arguments(files, "--dry-run"), journal=journal, client=Refuses()) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3
    assert out[0].startswith("would put postfix/smtp1/2026/01/01/000001-")
    assert ": 100 entries, " in out[0] and ": 50 entries, " in out[1]
    assert out[2].startswith("dry run: would ship 150 entries in 2 objects, ")
    assert list(files["state"].iterdir()) == []
    # Its keys are the ones a real run puts.
    store = Store()
    assert run(arguments(files), journal=journal, client=store) == 0
    assert [line.split()[2].rstrip(":") for line in out[:2]] == store.puts


def test_a_dry_run_needs_no_state_directory(files: dict[str, Path], tmp_path: Path) -> None:
    args = arguments(files, "--dry-run")
    args.state_dir = tmp_path / "missing"
    assert run(args, journal=Journal(5), client=Refuses()) == 0
    assert not args.state_dir.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "--credentials-file {path}: No such file or directory"),
        (f'{{"access_key_id": "{KEY_ID}", "secret_access_key": "{SECRET}",}}', "is not JSON"),
        (f'{{"access_key_id": "{KEY_ID}"}}', "secret_access_key: missing or empty"),
        (f'{{"access_key_id": "{KEY_ID}", "secret_access_key": "{SECRET} "}}', "whitespace"),
        (f'["{SECRET}"]', "is not a JSON object"),
        (f'{{"{SECRET}": "{KEY_ID}"}}', "holds keys other than access_key_id"),
    ],
)
def test_a_bad_credentials_file_is_named_and_never_quoted(
    files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    message: str,
) -> None:
    path = files["credentials"]
    if content is None:
        path.unlink()
    else:
        path.write_text(content)
    assert run(arguments(files), journal=Journal(5), client=Store()) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"archive: --credentials-file {path}: ")
    assert message.format(path=path) in err
    assert KEY_ID not in err and SECRET not in err
    assert saved(files) is None


def test_a_bad_config_is_named(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    files["config"].write_text(json.dumps({**CONFIG, "bucket": "Logs"}))
    assert run(arguments(files), journal=Journal(5), client=Store()) == 2
    assert capsys.readouterr().err.startswith(
        f"archive: --config {files['config']}: bucket: 'Logs' is not a bucket name"
    )
    files["config"].write_text("{")
    assert run(arguments(files), journal=Journal(5), client=Store()) == 2
    assert "--config" in capsys.readouterr().err


def test_a_missing_state_directory_and_a_bad_host_are_named(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = arguments(files)
    args.state_dir = tmp_path / "missing"
    assert run(args, journal=Journal(5), client=Store()) == 2
    assert f"--state-dir {args.state_dir}: no such directory" in capsys.readouterr().err
    assert run(arguments(files, "--host", "a/b"), journal=Journal(5), client=Store()) == 2
    assert "archive: --host: 'a/b' is not a host name" in capsys.readouterr().err


def test_a_saved_cursor_the_journal_refuses_is_named(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    (files["state"] / "cursor").write_text("s=abc;i=999\n")

    def refuses(after: str | None) -> Any:
        raise OSError(22, "Invalid argument")

    assert run(arguments(files), journal=refuses, client=Store()) == 2
    err = capsys.readouterr().err
    assert "the saved cursor is not one of this journal" in err
    assert f"remove {files['state'] / 'cursor'}" in err


def test_another_run_holding_the_lock_is_left_to_it(files: dict[str, Path]) -> None:
    store = Store()
    with archive.CursorFile(files["state"]).locked() as held:
        assert held
        assert run(arguments(files), journal=Journal(5), client=store) == 0
    assert store.puts == [] and saved(files) is None


def test_the_cursor_is_replaced_whole(files: dict[str, Path]) -> None:
    state = archive.CursorFile(files["state"])
    state.save("s=1;i=2")
    state.save("s=1;i=3")
    assert state.load() == "s=1;i=3"
    assert sorted(p.name for p in files["state"].iterdir()) == ["cursor"]


# ---------------------------------------------------------------------- without fakes of ours


class FakeReader:
    """python-systemd's journal.Reader over a list, with its cursor calls."""

    instances: ClassVar[list[FakeReader]] = []

    def __init__(self, flags: int = 0, converters: Any = None) -> None:
        self.entries = [entry(n) for n in (5, 6, 7)]
        self.position = 0
        self.matches: list[dict[str, str]] = []
        self.closed = False
        FakeReader.instances.append(self)

    def add_match(self, **match: str) -> None:
        self.matches.append(match)

    def seek_head(self) -> None:
        self.position = 0

    def seek_cursor(self, cursor: str) -> None:
        # The saved entry, or where it would be: here, before the oldest one (vacuumed).
        cursors = [e["__CURSOR"] for e in self.entries]
        self.position = cursors.index(cursor) if cursor in cursors else 0

    def get_next(self) -> dict[str, Any]:
        if self.position >= len(self.entries):
            return {}
        self.position += 1
        self.current = self.entries[self.position - 1]
        return self.current

    def test_cursor(self, cursor: str) -> bool:
        return self.current["__CURSOR"] == cursor

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def systemd(monkeypatch: pytest.MonkeyPatch) -> type[FakeReader]:
    journal = types.SimpleNamespace(Reader=FakeReader, LOCAL_ONLY=1)
    monkeypatch.setitem(sys.modules, "systemd", types.SimpleNamespace(journal=journal))
    monkeypatch.setitem(sys.modules, "systemd.journal", journal)
    FakeReader.instances = []
    return FakeReader


def cursors(entries: Any) -> list[str]:
    return [e["__CURSOR"] for e in entries]


def test_the_journal_s_mail_facility_is_read_to_its_end(systemd: type[FakeReader]) -> None:
    assert cursors(read_journal(None)) == ["s=abc;i=5", "s=abc;i=6", "s=abc;i=7"]
    assert systemd.instances[0].matches == [{"SYSLOG_FACILITY": "2"}]
    assert systemd.instances[0].closed
    assert cursors(read_journal("s=abc;i=6")) == ["s=abc;i=7"]


def test_a_vacuumed_cursor_warns_and_goes_on_from_the_oldest_entry_after_it(
    systemd: type[FakeReader], caplog: pytest.LogCaptureFixture
) -> None:
    assert cursors(read_journal("s=abc;i=2")) == ["s=abc;i=5", "s=abc;i=6", "s=abc;i=7"]
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.name == "bulkmail.archive"
    assert "no longer holds the saved entry" in warning.getMessage()


def test_run_reads_the_real_journal_when_none_is_given(
    files: dict[str, Path], systemd: type[FakeReader]
) -> None:
    store = Store()
    assert run(arguments(files), client=store) == 0
    assert len(store.lines()) == 3 and saved(files) == "s=abc;i=7"


def test_missing_packages_are_named(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "systemd", None)
    monkeypatch.setitem(sys.modules, "systemd.journal", None)
    assert run(arguments(files), client=Store()) == 2
    assert "install Debian's python3-systemd" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "boto3", None)
    assert run(arguments(files), journal=Journal(5)) == 2
    assert capsys.readouterr().err == "archive: boto3 is missing: install Debian's python3-boto3\n"


def test_the_s3_client_is_made_as_the_hosts_boto3_expects(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    made: dict[str, Any] = {}
    store = Store()

    class Session:
        def client(self, service: str, **options: Any) -> Store:
            made.update(options, service=service)
            return store

    class Config:
        def __init__(self, **options: Any) -> None:
            self.options = options

    boto3 = types.SimpleNamespace(session=types.SimpleNamespace(Session=Session))
    botocore_config = types.SimpleNamespace(Config=Config)
    monkeypatch.setitem(sys.modules, "boto3", boto3)
    monkeypatch.setitem(sys.modules, "botocore", types.SimpleNamespace(config=botocore_config))
    monkeypatch.setitem(sys.modules, "botocore.config", botocore_config)
    assert run(arguments(files), journal=Journal(5)) == 0
    config = made.pop("config")
    assert made == {
        "service": "s3",
        "endpoint_url": "http://10.25.0.200:5000",
        "region_name": "us-east-1",
        "aws_access_key_id": KEY_ID,
        "aws_secret_access_key": SECRET,
    }
    assert config.options == {
        "s3": {"addressing_style": "path"},
        "retries": {"max_attempts": 3, "mode": "standard"},
        "connect_timeout": 10,
        "read_timeout": 60,
        "signature_version": "s3v4",
    }
    assert len(store.lines()) == 5


def test_a_damaged_cursor_file_is_named(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    (files["state"] / "cursor").write_text("s=abc i=1\n")
    store = Store()
    assert run(arguments(files), journal=Journal(5), client=store) == 2
    assert "cursor is not a journal cursor; remove it" in capsys.readouterr().err
    assert store.puts == []
