"""bench-policy's load generator: its snapshot file is what the service reads, its requests
are answered as the plan says, and its figures are computed right."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import policy_load
import pytest
from bulkmail.logic.feedback.suppression import (
    RequestParser,
    SuppressionSnapshot,
    TenantMap,
    decide,
    normalise_address,
    row_from_record,
)
from policy_load import (
    REFUSED_KINDS,
    AnswerSplitter,
    RecipientMix,
    Window,
    address,
    address_kind,
    addresses_for_rows,
    percentile,
    policy_request,
    records,
    run_share,
    shares,
    write_state_file,
)

from bulkmail.policy import PolicyService, StateFile


def service_with(tmp_path: Path, rows: int) -> PolicyService:
    """The real service, its snapshot restored from the bench's file."""
    state = tmp_path / "snapshot.jsonl"
    write_state_file(state, rows, time.time())
    tenants = TenantMap.load(policy_load.tenants_file())

    async def no_database(fetch: object) -> list[object]:
        raise RuntimeError("no database in this test")

    service = PolicyService(tenants, load=no_database, state=StateFile(state))  # type: ignore[arg-type]
    service.restore()
    return service


def test_the_state_file_is_what_the_service_restores(tmp_path: Path) -> None:
    service = service_with(tmp_path, 2200)  # 100 whole blocks
    assert service.enforcing
    snapshot = service.snapshot
    # 20 addresses make 22 records (three soft bounces for one of them)
    assert snapshot.suppressions + snapshot.soft_addresses == addresses_for_rows(2200) == 2000
    now = time.time()
    for index in range(2000):
        refusal = snapshot.refusal(address(index), "example.test", now)
        assert (refusal is not None) == (address_kind(index) in REFUSED_KINDS), index


def test_rows_are_cut_at_the_count_and_whole_addresses_counted() -> None:
    assert len(list(records(23, time.time()))) == 23
    assert addresses_for_rows(22) == 20
    assert addresses_for_rows(23) == 21
    # address 18 has three records: two of them do not make it whole
    assert addresses_for_rows(20) == 18 and addresses_for_rows(21) == 19
    ids = [record[1] for record in records(1000, time.time()) if record[0] == "s"]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_a_request_parses_as_postfix_sends_it_and_is_decided() -> None:
    request = policy_request("U0000000@Gmail.test", 7, 40000)
    (parsed,) = RequestParser().feed(request)
    assert parsed["recipient"] == "U0000000@Gmail.test"
    assert parsed["sender"] == "news@example.test" and parsed["protocol_state"] == "RCPT"
    snapshot = SuppressionSnapshot()
    snapshot.apply_all(row_from_record(record) for record in records(1, time.time()))
    decision = decide(parsed, snapshot, TenantMap.load(policy_load.tenants_file()), time.time())
    assert decision.action.startswith("REJECT 5.7.1 u0000000@gmail.test")


def test_answers_are_split_across_reads() -> None:
    splitter = AnswerSplitter()
    assert splitter.feed(b"action=DUN") == []
    assert splitter.feed(b"NO\n\naction=REJECT 5.7.1 x is suppressed\n\nact") == ["DUNNO", "REJECT"]
    assert splitter.feed(b"ion=DUNNO\n\n") == ["DUNNO"]
    with pytest.raises(ValueError):
        splitter.feed(b"hello\n\n")


def test_the_mix_draws_known_addresses_at_its_share_and_knows_their_answer() -> None:
    mix = RecipientMix(20_000, 0.2, seed=1)
    drawn = [mix.next() for _ in range(20_000)]
    known = [r for r, _ in drawn if normalise_address(r).startswith("u")]
    assert 0.18 < len(known) / len(drawn) < 0.22
    refused = sum(1 for _, refused in drawn if refused)
    assert 0.15 * 0.85 < refused / len(drawn) < 0.25 * 0.85
    assert any(r != r.lower() for r, _ in drawn)  # some in mixed case
    assert RecipientMix(0, 0.5, seed=1).next()[1] is False  # an empty snapshot refuses none


def test_percentiles_by_nearest_rank() -> None:
    values = [float(n) for n in range(1, 1001)]
    assert percentile(values, 0.99) == 990.0
    assert percentile(values, 0.5) == 500.0
    assert percentile(values, 0.999) == 999.0
    assert percentile([3.0], 0.99) == 3.0


def test_connections_are_shared_out_between_processes() -> None:
    assert shares(1000, 3) == [334, 333, 333]
    assert shares(2, 8) == [1, 1]


def test_the_load_against_the_real_service_gets_every_answer_right(tmp_path: Path) -> None:
    service = service_with(tmp_path, 4000)

    async def scenario() -> policy_load.Result:
        server = await asyncio.get_running_loop().create_server(service.connection, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        now = time.monotonic()
        window = Window(now + 0.3, now + 0.4, now + 0.9)
        mix = RecipientMix(addresses_for_rows(4000), 0.5, seed=3)
        async with server:
            return await run_share("127.0.0.1", port, 50, window, mix)

    result = asyncio.run(scenario())
    assert not result.errors
    assert result.wrong == 0
    assert result.answers["REJECT"] > 0 and result.answers["DUNNO"] > 0
    assert len(result.latencies) == sum(result.answers.values())
    lines = policy_load.report(result, Window(0, 0.4, 0.9), 50)
    figures = dict(line.split(": ", 1) for line in lines)
    assert float(figures["policy_checks_per_s"]) > 0
    assert figures["policy_wrong_answers"] == "0"
    json.dumps(figures)


def test_the_schedule_paces_and_staggers() -> None:
    assert list(policy_load.schedule(10.0, 10.0, 3, offset=0.5)) == [10.05, 10.15, 10.25]


def test_a_paced_load_sends_at_its_rate(tmp_path: Path) -> None:
    service = service_with(tmp_path, 2200)

    async def scenario() -> policy_load.Result:
        server = await asyncio.get_running_loop().create_server(service.connection, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        now = time.monotonic()
        window = Window(now + 0.2, now + 0.3, now + 1.3)
        mix = RecipientMix(2000, 0.5, seed=4)
        async with server:
            return await run_share("127.0.0.1", port, 20, window, mix, rate=400.0)

    result = asyncio.run(scenario())
    assert not result.errors and result.wrong == 0
    # 400 a second for the measured second, give or take the requests at its edges
    assert 360 <= len(result.latencies) <= 401
    assert len(result.due_latencies) == len(result.latencies)
    assert all(
        due >= sent for due, sent in zip(result.due_latencies, result.latencies, strict=True)
    )
