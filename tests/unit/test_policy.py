"""`bulkmail policy`: Postfix's policy protocol over a real socket, from an in-memory database."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from bulkmail.logic.feedback.suppression import (
    SUPPRESSION_TABLE,
    Fetch,
    SoftBounceRow,
    SuppressionRow,
    TenantMap,
    address_hash,
    default_tenants,
)

from bulkmail.cli import build_parser
from bulkmail.policy import (
    BACKLOG,
    DATABASE_ENV,
    DatabaseUnavailable,
    PolicyService,
    PostgresLoader,
    StateFile,
    load_erasure_keys,
    read_conninfo,
)

TENANTS = TenantMap.load(default_tenants(["acme.test", "shop.test"]))
NOV_30 = 1796030000.0  # 2026-11-30 in UTC
DAY = 86400.0
REFUSED_ALICE = (
    b"action=REJECT 5.7.1 alice@example.org is suppressed for acme.test: "
    b"hard bounce on 2026-11-30 (5.1.1)\n\n"
)


class MemoryDatabase:
    """What PostgreSQL would hold, read the way PostgresLoader reads it."""

    def __init__(self, *rows: SuppressionRow | SoftBounceRow) -> None:
        self.rows = list(rows)
        self.down = False
        self.fetches: list[Fetch] = []

    async def __call__(self, fetch: Fetch) -> list[SuppressionRow | SoftBounceRow]:
        self.fetches.append(fetch)
        if self.down:
            raise DatabaseUnavailable("OperationalError: connection refused")
        kind = SuppressionRow if fetch.table == SUPPRESSION_TABLE else SoftBounceRow
        rows = sorted(
            (r for r in self.rows if isinstance(r, kind)),
            key=lambda r: r.id,
        )
        if kind is SoftBounceRow:
            rows = [r for r in rows if r.at >= fetch.since]
        new = [r for r in rows if r.id > fetch.after][: fetch.limit]
        late = [r for r in rows if r.id in fetch.holes and r.id <= fetch.after]
        return sorted(late + new, key=lambda r: r.id)


def hard_bounce(row_id: int, address: str, tenant: str = "acme.test") -> SuppressionRow:
    return SuppressionRow(row_id, tenant, address, "hard_bounce", "5.1.1", NOV_30)


def request(recipient: str, sender: str = "news@acme.test") -> bytes:
    return (
        "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
        f"client_address=10.25.0.100\nsender={sender}\nrecipient={recipient}\n"
        "instance=1a2b.3c4d.5e6f.0\nsasl_username=news@acme.test\n\n"
    ).encode()


async def with_server(service: PolicyService, talk: Callable[[int], Awaitable[None]]) -> None:
    loop = asyncio.get_running_loop()
    # the daemon's backlog: with asyncio's default (100), 1,000 connections at once would
    # overflow the accept queue and wait for TCP retransmissions (1 s, 3 s)
    server = await loop.create_server(service.connection, "127.0.0.1", 0, backlog=BACKLOG)
    try:
        await talk(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


async def exchange(port: int, *requests: bytes) -> list[bytes]:
    """One connection, as Postfix keeps it: a request, its answer, the next request."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = [b""] * len(requests)
    for index, one in enumerate(requests):
        writer.write(one)
        await writer.drain()
        answers[index] = await reader.readuntil(b"\n\n")
    writer.close()
    return answers


def test_one_connection_answers_many_requests_from_the_snapshot() -> None:
    database = MemoryDatabase(hard_bounce(1, "alice@example.org"))
    service = PolicyService(TENANTS, load=database)

    async def talk(port: int) -> None:
        await service.refresh()
        answers = await exchange(
            port,
            request("Alice@Example.org"),
            request("bob@example.org"),
            request("alice@example.org", "orders@shop.test"),  # another tenant
            request("alice@example.org", "bounces+a1@bounces.acme.test"),
        )
        assert answers == [REFUSED_ALICE, b"action=DUNNO\n\n", b"action=DUNNO\n\n", REFUSED_ALICE]

    asyncio.run(with_server(service, talk))
    assert (service.requests, service.refused) == (4, 2)


def test_requests_sent_together_are_answered_in_order() -> None:
    service = PolicyService(TENANTS, load=MemoryDatabase(hard_bounce(1, "alice@example.org")))

    async def talk(port: int) -> None:
        await service.refresh()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request("bob@example.org") + request("alice@example.org") * 2)
        await writer.drain()
        answers = [await reader.readuntil(b"\n\n") for _answer in range(3)]
        writer.close()
        assert answers == [b"action=DUNNO\n\n", REFUSED_ALICE, REFUSED_ALICE]

    asyncio.run(with_server(service, talk))


def test_a_thousand_connections_at_once_are_all_answered_quickly() -> None:
    rows = [hard_bounce(i, f"user{i}@example.org") for i in range(1, 5001)]
    service = PolicyService(TENANTS, load=MemoryDatabase(*rows))
    timings: list[float] = []

    async def client(port: int, number: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for turn in range(2):
            recipient = f"user{number * 2 + turn}@example.org"
            started = time.perf_counter()
            writer.write(request(recipient))
            await writer.drain()
            answer = await reader.readuntil(b"\n\n")
            timings.append(time.perf_counter() - started)
            assert answer.startswith(b"action=REJECT 5.7.1 " + recipient.encode())
        writer.close()

    async def talk(port: int) -> None:
        await service.refresh()
        await asyncio.gather(*(client(port, n) for n in range(1, 1001)))

    asyncio.run(with_server(service, talk))
    assert service.refused == 2000
    # not the benchmark (make bench-policy): client and server share one loop here
    assert sorted(timings)[int(len(timings) * 0.99)] < 1.0


def test_garbage_closes_that_connection_only(caplog: pytest.LogCaptureFixture) -> None:
    service = PolicyService(TENANTS, load=MemoryDatabase())

    async def talk(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        assert await reader.read() == b""  # closed without an answer
        writer.close()
        assert await exchange(port, request("bob@example.org")) == [b"action=DUNNO\n\n"]

    with caplog.at_level(logging.WARNING, "bulkmail.policy"):
        asyncio.run(with_server(service, talk))
    assert "does not speak the policy protocol: 'GET / HTTP/1.1' is not name=value" in caplog.text


def test_new_rows_are_read_incrementally_and_late_commits_are_not_missed() -> None:
    database = MemoryDatabase(hard_bounce(1, "a@example.org"))
    service = PolicyService(TENANTS, load=database)
    asyncio.run(service.refresh())
    # ids 2 and 3 were taken by transactions; 3 commits first
    database.rows.append(hard_bounce(3, "c@example.org"))
    asyncio.run(service.refresh())
    assert database.fetches[-2] == Fetch(
        SUPPRESSION_TABLE, 1, (), service.batch, database.fetches[-2].since
    )
    database.rows.append(hard_bounce(2, "b@example.org"))
    asyncio.run(service.refresh())
    assert database.fetches[-2].holes == (2,)
    for address in ("a@example.org", "b@example.org", "c@example.org"):
        assert service.snapshot.refusal(address, "acme.test", time.time()) is not None


def test_a_deleted_row_stops_refusing_at_the_next_full_reload() -> None:
    clock = [NOV_30 + DAY]
    database = MemoryDatabase(hard_bounce(1, "a@example.org"))
    service = PolicyService(TENANTS, load=database, clock=lambda: clock[0], full_reload_every=600)
    asyncio.run(service.refresh())
    database.rows.clear()  # an operator lifted it (or `bulkmail forget`)
    clock[0] += 10
    asyncio.run(service.refresh())
    assert service.snapshot.suppressions == 1  # incremental reads see no deletion
    clock[0] += 600
    asyncio.run(service.refresh())
    assert service.snapshot.suppressions == 0


def test_soft_bounces_in_the_database_refuse_after_the_third() -> None:
    now = NOV_30 + DAY
    database = MemoryDatabase(
        *[SoftBounceRow(i, "acme.test", "full@example.org", "4.2.2", now - i * DAY) for i in (1, 2)]
    )
    service = PolicyService(TENANTS, load=database, clock=lambda: now)
    asyncio.run(service.refresh())
    assert service.answer({"recipient": "full@example.org", "sender": "a@acme.test"}) == "DUNNO"
    database.rows.append(SoftBounceRow(3, "acme.test", "full@example.org", "4.2.2", now - 3 * DAY))
    asyncio.run(service.refresh())
    action = service.answer({"recipient": "full@example.org", "sender": "a@acme.test"})
    assert action.startswith("REJECT 5.7.1 full@example.org is suppressed for acme.test: 3 soft")


def test_database_down_keeps_the_snapshot_and_is_logged_once_each_way(
    caplog: pytest.LogCaptureFixture,
) -> None:
    database = MemoryDatabase(hard_bounce(1, "alice@example.org"))
    service = PolicyService(TENANTS, load=database)

    async def talk(port: int) -> None:
        refresher = asyncio.create_task(service.keep_fresh(0.01))
        await asyncio.sleep(0.05)
        database.down = True
        await asyncio.sleep(0.1)
        assert await exchange(port, request("alice@example.org")) == [REFUSED_ALICE]
        database.down = False
        database.rows.append(hard_bounce(2, "bob@example.org"))
        await asyncio.sleep(0.1)
        refresher.cancel()
        assert (await exchange(port, request("bob@example.org")))[0].startswith(b"action=REJECT")

    with caplog.at_level(logging.INFO, "bulkmail.policy"):
        asyncio.run(with_server(service, talk))
    down = [r.message for r in caplog.records if "database unavailable" in r.message]
    assert down == [
        "database unavailable (OperationalError: connection refused): answering from the last "
        "snapshot (1 suppressions, 0 addresses with soft bounces) until it answers again"
    ]
    back = [r.message for r in caplog.records if "database answers again" in r.message]
    assert len(back) == 1


def test_no_database_and_no_snapshot_still_answers_dunno(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = MemoryDatabase()
    database.down = True
    service = PolicyService(TENANTS, load=database, state=StateFile(tmp_path / "snapshot.jsonl"))
    service.restore()

    async def talk(port: int) -> None:
        refresher = asyncio.create_task(service.keep_fresh(0.01))
        await asyncio.sleep(0.05)
        assert await exchange(port, request("alice@example.org")) == [b"action=DUNNO\n\n"]
        refresher.cancel()

    with caplog.at_level(logging.WARNING, "bulkmail.policy"):
        asyncio.run(with_server(service, talk))
    assert "suppression is NOT enforced, every recipient gets DUNNO" in caplog.text


def test_a_hanging_database_counts_as_down(caplog: pytest.LogCaptureFixture) -> None:
    async def hang(fetch: Fetch) -> list[SuppressionRow | SoftBounceRow]:
        await asyncio.sleep(3600)
        return []

    service = PolicyService(TENANTS, load=hang, load_timeout=0.05)

    async def once() -> None:
        refresher = asyncio.create_task(service.keep_fresh(10))
        await asyncio.sleep(0.2)
        refresher.cancel()

    with caplog.at_level(logging.WARNING, "bulkmail.policy"):
        asyncio.run(once())
    assert "database unavailable (TimeoutError)" in caplog.text


def test_the_snapshot_file_carries_suppression_over_a_restart_without_the_database(
    tmp_path: Path,
) -> None:
    path = tmp_path / "snapshot.jsonl"
    database = MemoryDatabase(hard_bounce(1, "alice@example.org"))
    first = PolicyService(TENANTS, load=database, state=StateFile(path))
    asyncio.run(first.refresh())
    database.rows.append(SoftBounceRow(2, "acme.test", "full@example.org", "4.2.2", time.time()))
    database.rows.append(hard_bounce(3, "carol@example.org"))
    asyncio.run(first.refresh())  # incremental: appended to the file
    assert path.stat().st_mode & 0o777 == 0o600
    with path.open("a") as stream:
        stream.write('["s", 4, "acme.t')  # a write cut short by a crash

    database.down = True
    second = PolicyService(TENANTS, load=database, state=StateFile(path))
    second.restore()
    assert second.enforcing
    assert second.snapshot.suppressions == 2
    assert second.snapshot.soft_addresses == 1
    assert (
        second.answer({"recipient": "alice@example.org", "sender": "x@acme.test"})
        == (REFUSED_ALICE.decode()[len("action=") : -2])
    )


def test_a_full_reload_rewrites_the_file_and_a_failed_one_leaves_it(tmp_path: Path) -> None:
    path = tmp_path / "snapshot.jsonl"
    database = MemoryDatabase(hard_bounce(1, "a@example.org"), hard_bounce(2, "b@example.org"))
    service = PolicyService(TENANTS, load=database, state=StateFile(path), full_reload_every=0)
    asyncio.run(service.refresh())
    database.rows.pop()
    asyncio.run(service.refresh())
    assert len(path.read_text().splitlines()) == 2  # the header and a@
    database.down = True
    with pytest.raises(DatabaseUnavailable):
        asyncio.run(service.refresh())
    assert len(path.read_text().splitlines()) == 2
    assert not (tmp_path / "snapshot.jsonl.new").exists()
    assert service.snapshot.suppressions == 1


def test_an_unwritable_state_file_is_logged_once_and_changes_nothing_else(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "missing-directory" / "snapshot.jsonl"
    service = PolicyService(
        TENANTS,
        load=MemoryDatabase(hard_bounce(1, "alice@example.org")),
        state=StateFile(path),
        full_reload_every=0,
    )
    with caplog.at_level(logging.WARNING, "bulkmail.policy"):
        asyncio.run(service.refresh())
        asyncio.run(service.refresh())
    assert caplog.text.count("cannot write the snapshot") == 1
    assert service.snapshot.suppressions == 1


def test_a_bad_connection_string_is_refused_without_quoting_it() -> None:
    with pytest.raises(ValueError) as error:
        PostgresLoader("host=db password=hunter2 nonsense")
    assert "hunter2" not in str(error.value)
    assert "not libpq syntax" in str(error.value)


def test_an_unreachable_database_is_reported_without_the_password() -> None:
    loader = PostgresLoader("host=127.0.0.1 port=1 dbname=bulkmail user=x password=hunter2")
    with pytest.raises(DatabaseUnavailable) as error:
        asyncio.run(loader(Fetch(SUPPRESSION_TABLE, 0)))
    assert str(error.value).startswith("OperationalError: ")
    assert "hunter2" not in str(error.value)


def test_the_connection_string_comes_from_the_file_or_the_environment(tmp_path: Path) -> None:
    secret = tmp_path / "database"
    secret.write_text("host=db dbname=bulkmail user=bulkmail_reader password=s3cret\n")
    assert (
        read_conninfo(secret, {}) == "host=db dbname=bulkmail user=bulkmail_reader password=s3cret"
    )
    assert read_conninfo(None, {DATABASE_ENV: " host=db2 "}) == "host=db2"
    with pytest.raises(SystemExit, match=r"--database-file FILE or \$BULKMAIL_POLICY_DATABASE"):
        read_conninfo(None, {})
    with pytest.raises(SystemExit, match="is empty"):
        (tmp_path / "empty").write_text("\n")
        read_conninfo(tmp_path / "empty", {})


def test_the_cli_has_the_policy_command_with_its_defaults() -> None:
    args = build_parser().parse_args(["policy", "--tenants", "t.json"])
    assert (args.listen, args.refresh_every, args.full_reload_every) == ("127.0.0.1:10040", 2, 600)
    assert (args.soft_bounce_threshold, args.soft_bounce_days) == (3, 7)
    assert str(args.state_file) == "/var/lib/bulkmail-policy/snapshot.jsonl"
    args = build_parser().parse_args(["policy", "--tenants", "t.json", "--no-state-file"])
    assert args.state_file is None


def test_the_daemon_answers_from_its_file_while_the_database_is_unreachable(
    tmp_path: Path,
) -> None:
    tenants = tmp_path / "tenants.json"
    tenants.write_text(json.dumps(default_tenants(["acme.test"])))
    secret = tmp_path / "database"
    secret.write_text("host=127.0.0.1 port=1 dbname=bulkmail user=x password=hunter2")
    state = tmp_path / "snapshot.jsonl"
    state.write_text(
        json.dumps({"format": "bulkmail-policy-snapshot", "version": 1}) + "\n"
        + json.dumps(hard_bounce(1, "alice@example.org").record()) + "\n"
    )  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "bulkmail", "policy", "--tenants", str(tenants),
         "--database-file", str(secret), "--state-file", str(state),
         "--listen", "127.0.0.1:0", "--refresh-every", "0.2"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        lines = [proc.stderr.readline() for _line in range(2)]
        assert "restored 1 suppressions" in lines[0]
        port = int(lines[1].rsplit(":", 1)[1])
        answers = asyncio.run(
            exchange(port, request("alice@example.org"), request("bob@example.org"))
        )
        assert answers == [REFUSED_ALICE, b"action=DUNNO\n\n"]
        lines.append(proc.stderr.readline())
        assert "database unavailable (OperationalError: " in lines[2]
        proc.terminate()  # SIGTERM, as systemd stops it
        assert proc.wait(timeout=10) == 0
        lines += proc.stderr.readlines()
        assert lines[-1] == "bulkmail.policy: stopped\n"
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert "hunter2" not in "".join(lines)


# -- erased people (`bulkmail forget`) -----------------------------------------------------

ERASURE_KEY = bytes(range(32))


def erased_row(row_id: int, address: str, tenant: str = "acme.test") -> SuppressionRow:
    return SuppressionRow(
        row_id, tenant, address_hash(ERASURE_KEY, address), "manual", None, NOV_30
    )


def test_an_erased_address_is_refused_by_its_hash_across_reloads_and_restarts(
    tmp_path: Path,
) -> None:
    database = MemoryDatabase(erased_row(1, "gone@example.org"))
    path = tmp_path / "snapshot.jsonl"
    clock = [NOV_30]
    service = PolicyService(
        TENANTS,
        load=database,
        state=StateFile(path),
        clock=lambda: clock[0],
        hash_keys=[ERASURE_KEY],
        full_reload_every=600,
    )

    async def talk(port: int) -> None:
        await service.refresh()
        clock[0] += 601  # a full reload builds a new snapshot: it must hold the keys too
        await service.refresh()
        answers = await exchange(
            port,
            request("Gone@example.org"),
            request("gone@example.org", "orders@shop.test"),
        )
        assert answers == [
            b"action=REJECT 5.7.1 gone@example.org is suppressed for acme.test: "
            b"manual suppression on 2026-11-30\n\n",
            b"action=DUNNO\n\n",
        ]

    asyncio.run(with_server(service, talk))
    restarted = PolicyService(
        TENANTS, load=database, state=StateFile(path), hash_keys=[ERASURE_KEY]
    )
    restarted.restore()
    assert restarted.answer(
        {"request": "smtpd_access_policy", "recipient": "gone@example.org",
         "sender": "news@acme.test"}
    ).startswith("REJECT 5.7.1 gone@example.org")  # fmt: skip


def test_erased_rows_without_keys_are_logged_as_not_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = PolicyService(TENANTS, load=MemoryDatabase(erased_row(1, "gone@example.org")))
    with caplog.at_level(logging.WARNING, logger="bulkmail.policy"):
        asyncio.run(service.refresh())
    assert "1 suppression rows are erased addresses" in caplog.text
    assert "NOT refused" in caplog.text


def test_the_erasure_keys_file_is_read_and_its_errors_name_the_file_not_the_key(
    tmp_path: Path,
) -> None:
    keys = tmp_path / "erasure-keys"
    keys.write_text(f"# current first\n{ERASURE_KEY.hex()}\n{bytes(range(32, 64)).hex()}\n")
    assert load_erasure_keys(keys) == (ERASURE_KEY, bytes(range(32, 64)))
    assert load_erasure_keys(None) == ()
    short = tmp_path / "short"
    short.write_text("00112233445566778899\n")
    with pytest.raises(SystemExit) as error:
        load_erasure_keys(short)
    assert str(error.value).startswith(
        f"policy: --erasure-keys-file {short}:1: the key is 10 bytes"
    )
    assert "00112233" not in str(error.value)
    with pytest.raises(SystemExit, match=r"--erasure-keys-file .*missing"):
        load_erasure_keys(tmp_path / "missing")


def test_the_cli_takes_an_erasure_keys_file() -> None:
    args = build_parser().parse_args(["policy", "--tenants", "t.json"])
    assert args.erasure_keys_file is None
    args = build_parser().parse_args(
        ["policy", "--tenants", "t.json", "--erasure-keys-file", "/etc/bulkmail/erasure.keys"]
    )
    assert str(args.erasure_keys_file) == "/etc/bulkmail/erasure.keys"
