"""The log archive's pure half: records, keys, objects, Content-MD5, the runtime's files."""

from __future__ import annotations

import base64
import gzip
import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.archive import (
    Chunk,
    Credentials,
    check_host,
    content_md5,
    describe_upload_error,
    journal_record,
    load_config,
    load_credentials,
    object_key,
    pack,
    read_lines,
    realtime_us,
    serialise,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.model.errors import ModelError

# 2026-01-01 00:00:00 UTC in microseconds.
T0 = 1_767_225_600_000_000


def entry(
    number: int, identifier: str = "postfix/smtp", message: str | None = None
) -> dict[str, Any]:
    return {
        "__CURSOR": f"s=abc;i={number:x}",
        "__REALTIME_TIMESTAMP": T0 + number * 1_000_000,
        "SYSLOG_IDENTIFIER": identifier,
        "_PID": 4000 + number,
        "MESSAGE": message if message is not None else f"Q{number}: to=<a@b.test>, status=sent",
        "_HOSTNAME": "mta1",
    }


def test_a_record_has_what_a_later_reader_needs() -> None:
    assert journal_record(entry(1), "smtp1") == {
        "realtime_us": T0 + 1_000_000,
        "cursor": "s=abc;i=1",
        "hostname": "mta1",
        "identifier": "postfix/smtp",
        "pid": 4001,
        "message": "Q1: to=<a@b.test>, status=sent",
    }


def test_only_postfix_s_entries_are_records() -> None:
    assert journal_record(entry(1, "opendkim"), "smtp1") is None
    assert journal_record(entry(1, "postfix-bulk/smtp"), "smtp1") is not None
    assert journal_record({**entry(1), "SYSLOG_IDENTIFIER": None}, "smtp1") is None
    assert journal_record({**entry(1), "__CURSOR": None}, "smtp1") is None
    assert journal_record({**entry(1), "MESSAGE": None}, "smtp1") is None


def test_fields_as_the_journal_hands_them_over() -> None:
    raw = {**entry(1), "_PID": "77", "MESSAGE": b"caf\xe9", "_HOSTNAME": None}
    record = journal_record(raw, "smtp1")
    assert record is not None
    assert record["pid"] == 77
    assert record["message"] == "caf\ufffd"
    assert record["hostname"] == "smtp1"  # the --host when the entry has none
    assert journal_record({**entry(1), "_PID": None, "SYSLOG_PID": "9"}, "h")["pid"] == 9
    assert journal_record({**entry(1), "_PID": None}, "h")["pid"] is None


def test_timestamps() -> None:
    assert realtime_us(T0) == T0
    assert realtime_us(str(T0)) == T0
    assert realtime_us(datetime(2026, 1, 1, 0, 0, 0, 5, tzinfo=UTC)) == T0 + 5
    assert realtime_us(True) is None
    assert realtime_us("soon") is None


def test_a_line_is_compact_json_and_deterministic() -> None:
    record = journal_record(entry(1, message="é"), "smtp1")
    line = serialise(record)
    assert line.endswith(b"\n") and b"\n" not in line[:-1]
    assert line.startswith(b'{"realtime_us":1767225601000000,"cursor":"s=abc;i=1",')
    assert "é".encode() in line
    assert serialise(dict(record)) == line
    # A lone surrogate (not UTF-8) does not break the object.
    assert serialise(journal_record(entry(1, message="a\udcffb"), "smtp1")).endswith(b'a?b"}\n')


def test_the_key_follows_from_the_first_entry() -> None:
    digest = hashlib.sha256(b"s=abc;i=1").hexdigest()[:16]
    assert object_key("postfix/", "smtp1", T0 + 3_723_000_000, "s=abc;i=1") == (
        f"postfix/smtp1/2026/01/01/010203-{digest}.jsonl.gz"
    )
    assert object_key("", "smtp1", T0, "c").startswith("smtp1/2026/01/01/000000-")


def test_content_md5_is_base64_of_the_digest() -> None:
    assert content_md5(b"") == "1B2M2Y8AsgTpgAmY7PhCfg=="
    assert content_md5(b"x") == base64.b64encode(hashlib.md5(b"x").digest()).decode()


def test_pack_cuts_objects_of_at_most_chunk_lines() -> None:
    entries = [entry(n) for n in range(1, 251)]
    chunks = list(pack(entries, prefix="postfix/", host="smtp1", chunk_lines=100))
    assert [chunk.entries for chunk in chunks] == [100, 100, 50]
    assert [chunk.first_cursor for chunk in chunks] == ["s=abc;i=1", "s=abc;i=65", "s=abc;i=c9"]
    assert chunks[-1].last_cursor == "s=abc;i=fa"
    lines = [line for chunk in chunks for line in read_lines(chunk.body)]
    assert [line["cursor"] for line in lines] == [e["__CURSOR"] for e in entries]
    first = chunks[0]
    assert first.key == object_key("postfix/", "smtp1", T0 + 1_000_000, "s=abc;i=1")
    assert first.metadata == {
        "entries": "100",
        "first-cursor-sha256": hashlib.sha256(b"s=abc;i=1").hexdigest(),
    }
    assert first.md5 == content_md5(first.body)


def test_an_object_is_plain_gzip_without_a_time() -> None:
    (chunk,) = pack([entry(1)], prefix="", host="h", chunk_lines=100)
    assert chunk.body[:2] == b"\x1f\x8b"
    assert chunk.body[4:8] == b"\0\0\0\0"  # MTIME 0
    assert gzip.decompress(chunk.body) == serialise(journal_record(entry(1), "h"))


def test_the_same_entries_give_the_same_bytes_and_a_longer_run_the_same_key() -> None:
    def keys_and_bodies(count: int) -> list[tuple[str, bytes]]:
        chunks = pack([entry(n) for n in range(count)], prefix="p/", host="h", chunk_lines=100)
        return [(chunk.key, chunk.body) for chunk in chunks]

    assert keys_and_bodies(30) == keys_and_bodies(30)
    short, longer = keys_and_bodies(30), keys_and_bodies(80)
    assert short[0][0] == longer[0][0]  # a re-run after a crash overwrites, with a superset
    assert read_lines(short[0][1]) == read_lines(longer[0][1])[:30]


def test_other_entries_between_objects_belong_to_the_earlier_one() -> None:
    entries = [
        entry(1, "opendkim"),  # before any object: no object covers it
        entry(2),
        entry(3),
        entry(4, "opendkim"),
        entry(5),
        entry(6, "bulkmail"),
    ]
    chunks = list(pack(entries, prefix="", host="h", chunk_lines=2))
    assert [(c.entries, c.first_cursor, c.last_cursor) for c in chunks] == [
        (2, "s=abc;i=2", "s=abc;i=4"),
        (1, "s=abc;i=5", "s=abc;i=6"),
    ]


def test_nothing_but_other_entries_moves_the_cursor_on_with_an_empty_chunk() -> None:
    chunks = list(
        pack([entry(1, "opendkim"), entry(2, "sshd")], prefix="", host="h", chunk_lines=5)
    )
    assert chunks == [Chunk("", b"", 0, "", "s=abc;i=2")]
    assert list(pack([], prefix="", host="h", chunk_lines=5)) == []


def test_pack_is_lazy() -> None:
    read: list[int] = []

    def entries():
        for number in range(1, 1000):
            read.append(number)
            yield entry(number)

    first = next(pack(entries(), prefix="", host="h", chunk_lines=100))
    assert first.entries == 100
    assert len(read) == 101  # the 101st entry closed the first object


def test_the_runtime_s_config() -> None:
    config = {
        "endpoint": "http://10.25.0.200:5000",
        "bucket": "bulkmail-logs",
        "region": "us-east-1",
        "prefix": "postfix/",
        "addressing_style": "path",
        "chunk_lines": 50000,
        "interval_minutes": 15,
    }
    assert load_config(config).config() == config
    with pytest.raises(ModelError, match=r"^chunk_lines: 5 is out of range"):
        load_config({**config, "chunk_lines": 5})


def test_credentials_are_checked_and_never_shown() -> None:
    credentials = load_credentials({"access_key_id": "AKIA1", "secret_access_key": "S3cr3t-x"})
    assert credentials == Credentials("AKIA1", "S3cr3t-x")
    assert "AKIA1" not in repr(credentials) and "S3cr3t-x" not in repr(credentials)
    assert credentials.secrets == ("AKIA1", "S3cr3t-x")
    for raw, message in [
        (["AKIA1"], "is not a JSON object"),
        ({"access_key_id": "AKIA1"}, "secret_access_key: missing or empty"),
        ({"access_key_id": "AKIA1", "secret_access_key": "a b"}, "secret_access_key: contains"),
        ({"access_key_id": "AKIA1", "secret_access_key": "x", "S3cr3t-x": 1}, "holds keys other"),
    ]:
        with pytest.raises(ModelError, match=message) as caught:
            load_credentials(raw)
        assert "S3cr3t-x" not in str(caught.value)


def test_host_names_in_keys() -> None:
    assert check_host("mta1.example.test") == "mta1.example.test"
    for bad in ("", "..", "a/b", "a b", "a\x00"):
        with pytest.raises(ModelError):
            check_host(bad)


class ClientError(Exception):
    """botocore's shape: `.response` with the error code and HTTP status."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(message)
        self.response = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }


def test_an_upload_error_is_one_line_without_the_store_s_message_or_a_secret() -> None:
    error = ClientError("NoSuchBucket", 404, "The bucket does not exist (key AKIA1)")
    assert describe_upload_error(error, ["AKIA1"]) == (
        "NoSuchBucket (HTTP 404): the bucket does not exist: create it, or correct "
        "bulkmail_log_archive.bucket"
    )
    assert describe_upload_error(ClientError("Teapot", 418, "x")) == "Teapot (HTTP 418)"
    down = ConnectionError('Could not connect to "http://10.25.0.200:5000/"\n signed S3cr3t-x')
    text = describe_upload_error(down, ["AKIA1", "S3cr3t-x"])
    assert text == 'ConnectionError: Could not connect to "http://10.25.0.200:5000/" signed ***'
