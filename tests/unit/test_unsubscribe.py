"""`bulkmail unsubscribe-web`: a provider's one-click POST suppresses the recipient for the
tenant, a GET never does, a bad link says only that, and a database outage loses nothing."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import pytest
from bulkmail.logic.feedback.unsubscribe import UnsubscribeRow, make_token

from bulkmail.unsubscribe import (
    MAX_HEAD,
    DatabaseUnavailable,
    RowsRejected,
    Spool,
    UnsubscribeService,
    load_keys,
    read_conninfo,
)

KEY = bytes(range(32))
DAY = 20730
TOKEN = make_token(KEY, "shop", "John@Example.com", "spring", DAY)
ROW = UnsubscribeRow("shop", "john@example.com", "unsubscribe", "spring")
ONE_CLICK = b"List-Unsubscribe=One-Click"


class FakeDatabase:
    """Inserts into a list; `down` makes it fail as a database that does not answer."""

    def __init__(self) -> None:
        self.rows: list[UnsubscribeRow] = []
        self.down = False
        self.refuse: set[str] = set()

    async def __call__(self, rows: Sequence[UnsubscribeRow]) -> None:
        if self.down:
            raise DatabaseUnavailable("OperationalError: connection refused")
        if any(row.address in self.refuse for row in rows):
            raise RowsRejected("CheckViolation")
        for row in rows:
            if all((r.tenant, r.address) != (row.tenant, row.address) for r in self.rows):
                self.rows.append(row)


async def exchange(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data


def post(path: str, body: bytes = ONE_CLICK) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: unsub.example.com\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: unsub.example.com\r\nConnection: close\r\n\r\n".encode()


def status(data: bytes) -> int:
    return int(data.split(b" ", 2)[1])


def body(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[1]


def run_with_server(service: UnsubscribeService, requests: Sequence[bytes]) -> list[bytes]:
    async def scenario() -> list[bytes]:
        server = await asyncio.start_server(service.handle, "127.0.0.1", 0, limit=MAX_HEAD)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return [await exchange(port, raw) for raw in requests]

    return asyncio.run(scenario())


@pytest.fixture
def database() -> FakeDatabase:
    return FakeDatabase()


@pytest.fixture
def service(tmp_path: Path, database: FakeDatabase) -> UnsubscribeService:
    return UnsubscribeService([KEY], database, Spool(tmp_path / "spool.jsonl"), today=lambda: DAY)


def test_a_one_click_post_suppresses_the_recipient_for_the_tenant(
    service: UnsubscribeService, database: FakeDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "bulkmail.unsubscribe")

    [first, again] = run_with_server(service, [post(f"/u/{TOKEN}"), post(f"/u/{TOKEN}")])

    assert (status(first), status(again)) == (200, 200)
    assert b"unsubscribed" in body(first)
    assert database.rows == [ROW]
    assert "tenant=shop campaign=spring address=" in caplog.text
    assert "john" not in caplog.text.lower()


def test_a_get_shows_a_form_that_posts_and_unsubscribes_nobody(
    service: UnsubscribeService, database: FakeDatabase
) -> None:
    [page] = run_with_server(service, [get(f"/u/{TOKEN}")])

    assert status(page) == 200
    assert b'<form method="post">' in body(page)
    assert b'name="List-Unsubscribe" value="One-Click"' in body(page)
    assert b"Referrer-Policy: no-referrer" in page
    assert database.rows == []


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_bad_token_says_invalid_link_and_nothing_else(
    service: UnsubscribeService, database: FakeDatabase, method: str
) -> None:
    other = make_token(b"\x07" * 32, "shop", "a@example.com", "c", DAY)
    requests = [get(f"/u/{other}"), get("/u/garbage")] if method == "GET" else [
        post(f"/u/{other}"), post(f"/u/{TOKEN[:-2]}")
    ]  # fmt: skip

    answers = run_with_server(service, requests)

    assert [(status(a), body(a)) for a in answers] == [(400, b"invalid link\n")] * 2
    assert database.rows == []


def test_health_other_paths_and_methods(service: UnsubscribeService) -> None:
    put = f"PUT /u/{TOKEN} HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()

    health, missing, wrong = run_with_server(service, [get("/healthz"), get("/x"), put])

    assert (status(health), body(health)) == (200, b"ok\n")
    assert status(missing) == 404
    assert status(wrong) == 405 and b"Allow: GET, HEAD, POST" in wrong


def test_a_database_outage_spools_and_the_flush_writes_it_later(
    tmp_path: Path, service: UnsubscribeService, database: FakeDatabase
) -> None:
    database.down = True

    [answer] = run_with_server(service, [post(f"/u/{TOKEN}")])

    assert status(answer) == 200  # the provider is told it is done: it is, on disk
    spool = tmp_path / "spool.jsonl"
    assert [json.loads(line) for line in spool.read_text().splitlines()] == [ROW.record()]
    assert spool.stat().st_mode & 0o777 == 0o600
    with pytest.raises(DatabaseUnavailable):
        asyncio.run(service.flush())
    assert database.rows == [] and service.spool.flushing.exists()

    database.down = False
    asyncio.run(service.flush())

    assert database.rows == [ROW]
    assert not spool.exists() and not service.spool.flushing.exists()


def test_with_neither_database_nor_spool_the_answer_is_503_with_retry_after(
    tmp_path: Path, database: FakeDatabase
) -> None:
    database.down = True
    spool = Spool(tmp_path / "missing-dir" / "spool.jsonl")
    service = UnsubscribeService([KEY], database, spool, today=lambda: DAY)

    [answer] = run_with_server(service, [post(f"/u/{TOKEN}")])

    assert status(answer) == 503 and b"Retry-After: 300" in answer


def test_a_row_the_database_refuses_is_kept_aside_not_retried_forever(
    tmp_path: Path, service: UnsubscribeService, database: FakeDatabase
) -> None:
    database.down = True
    other = make_token(KEY, "shop", "jane@example.com", "spring", DAY)
    run_with_server(service, [post(f"/u/{TOKEN}"), post(f"/u/{other}")])
    database.down, database.refuse = False, {"john@example.com"}

    asyncio.run(service.flush())

    assert [row.address for row in database.rows] == ["jane@example.com"]
    assert "john@example.com" in service.spool.rejected.read_text()
    assert not service.spool.pending()


def test_limits_body_size_head_size_length_and_connections(
    service: UnsubscribeService,
) -> None:
    big = post(f"/u/{TOKEN}", b"x" * 5000)
    chunked = f"POST /u/{TOKEN} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".encode()
    huge_head = f"GET /u/{TOKEN} HTTP/1.1\r\nX: {'a' * 10000}\r\n\r\n".encode()
    smuggle = (
        f"POST /u/{TOKEN} HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".encode()
    )

    answers = run_with_server(service, [big, chunked, huge_head, smuggle])

    assert [status(a) for a in answers] == [413, 411, 431, 400]
    service.active = service.max_connections
    [busy] = run_with_server(service, [get("/healthz")])
    assert status(busy) == 503


def test_a_silent_client_is_dropped_after_the_header_timeout(tmp_path: Path) -> None:
    service = UnsubscribeService(
        [KEY], FakeDatabase(), Spool(tmp_path / "s"), header_timeout=0.2, today=lambda: DAY
    )

    [answer] = run_with_server(service, [b"GET /healthz HTTP/1.1\r\n"])

    assert answer == b""


def test_keep_alive_serves_several_requests_on_one_connection(
    service: UnsubscribeService, database: FakeDatabase
) -> None:
    keep = f"GET /u/{TOKEN} HTTP/1.1\r\nHost: x\r\n\r\n".encode()

    [answers] = run_with_server(service, [keep + post(f"/u/{TOKEN}")])

    assert answers.count(b"HTTP/1.1 200 OK") == 2
    assert database.rows == [ROW]


def test_expired_tokens_only_with_a_maximum_age(tmp_path: Path, database: FakeDatabase) -> None:
    service = UnsubscribeService([KEY], database, Spool(tmp_path / "s"), max_age_days=10,
                                 today=lambda: DAY + 11)  # fmt: skip

    [answer] = run_with_server(service, [post(f"/u/{TOKEN}")])

    assert status(answer) == 400


def test_a_short_key_is_refused_naming_the_file_not_the_key(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("00" * 31 + "\n")

    with pytest.raises(SystemExit, match=rf"--keys-file {keys}:1: the key is 31 bytes") as error:
        load_keys(keys)
    assert "00" * 31 not in str(error.value)
    keys.write_text(KEY.hex() + "\n")
    assert load_keys(keys) == [KEY]


def test_the_connection_string_comes_from_the_file_or_the_environment(tmp_path: Path) -> None:
    conn = tmp_path / "db"
    conn.write_text("dbname=bulkmail password=secret\n")

    assert read_conninfo(conn, {}) == "dbname=bulkmail password=secret"
    assert read_conninfo(None, {"BULKMAIL_UNSUBSCRIBE_DATABASE": "dbname=x"}) == "dbname=x"
    with pytest.raises(SystemExit, match="no database"):
        read_conninfo(None, {})
