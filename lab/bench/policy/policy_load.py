#!/usr/bin/env python3
"""Load for `bulkmail policy`: a snapshot file of N rows, and Postfix's side of the protocol.

Standard library only: it runs on smtp1 with Debian's python3, beside the service.

    policy_load.py state-file --rows 1000000 --out DIR/snapshot.jsonl --tenants DIR/tenants.json
    policy_load.py load --target 127.0.0.1:10041 --rows 1000000 [--connections 1000]
                        [--duration 20] [--warmup 3] [--processes 1] [--known-share 0.05]

`state-file` writes what the service's StateFile reads back at start (src/bulkmail/policy.py:
a header line, then one JSON array per row), so the service answers from a snapshot of that
size with no database. The rows follow one plan (`address_kind`): address i is
`u<i>@<domain>`, and i % 20 says what the snapshot holds for it (suppressed for the sender's
tenant, globally, for another tenant only, three soft bounces or one), hence whether a request
for it from news@example.test must be refused. `load` opens `--connections` connections and
on each sends one request, waits for its answer, sends the next (what an smtpd process does:
its connection kept open, one request outstanding), for `--warmup` then `--duration` seconds.
Recipients are unknown addresses except a `--known-share` drawn from the snapshot's; a tenth
are written in mixed case. Every answer is checked against the plan: a wrong one fails the
run. Prints `name: value` lines: checks per second, latency percentiles, answers by action.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import random
import resource
import socket
import sys
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE_FORMAT = "bulkmail-policy-snapshot"  # src/bulkmail/policy.py's header
SENDER = "news@example.test"
TENANT = "example.test"
OTHER_TENANT = "other.test"
DOMAINS = ("gmail.test", "outlook.test", "yahoo.test", "web.test")
DAY = 86400.0
# What the snapshot holds for address i, by i % 20 (BLOCK): its records, and whether a
# request from SENDER (tenant example.test) is refused.
BLOCK = 20
SUPPRESSED, GLOBAL_ROW, OTHER_ONLY, SOFT_THREE, SOFT_ONE = (
    "suppressed", "global", "other-tenant", "soft-3", "soft-1",
)  # fmt: skip
_KINDS = (SUPPRESSED,) * 14 + (GLOBAL_ROW,) * 2 + (OTHER_ONLY,) * 2 + (SOFT_THREE, SOFT_ONE)
_RECORDS = {SUPPRESSED: 1, GLOBAL_ROW: 1, OTHER_ONLY: 1, SOFT_THREE: 3, SOFT_ONE: 1}
REFUSED_KINDS = frozenset({SUPPRESSED, GLOBAL_ROW, SOFT_THREE})
_REASONS = ("hard_bounce", "complaint", "unsubscribe")
RECORDS_PER_BLOCK = sum(_RECORDS[kind] for kind in _KINDS)


# ---------------------------------------------------------------------- the snapshot


def address(index: int) -> str:
    return f"u{index:07d}@{DOMAINS[index % len(DOMAINS)]}"


def address_kind(index: int) -> str:
    return _KINDS[index % BLOCK]


def addresses_for_rows(rows: int) -> int:
    """How many addresses `records(rows)` covers (the last one's records may be cut short,
    so the load draws only from the whole ones)."""
    whole, rest = divmod(rows, RECORDS_PER_BLOCK)
    count = whole * BLOCK
    for kind in _KINDS:
        if rest < _RECORDS[kind]:
            break
        rest -= _RECORDS[kind]
        count += 1
    return count


def records(rows: int, now: float) -> Iterator[list[Any]]:
    """`rows` snapshot records (row_from_record's arrays), ids ascending as the database's."""
    row_id = {"s": 0, "b": 0}
    written = 0

    def record(kind: str, *fields: Any) -> list[Any]:
        row_id[kind] += 1
        return [kind, row_id[kind], *fields]

    index = 0
    while written < rows:
        kind, mailbox = address_kind(index), address(index)
        at = now - DAY * (1 + index % 300)  # suppressed within the last 300 days
        if kind == SUPPRESSED:
            reason = _REASONS[index % len(_REASONS)]
            dsn = "5.1.1" if reason == "hard_bounce" else None
            made = [record("s", TENANT, mailbox, reason, dsn, at)]
        elif kind == GLOBAL_ROW:
            made = [record("s", "global", mailbox, "manual", None, at)]
        elif kind == OTHER_ONLY:
            made = [record("s", OTHER_TENANT, mailbox, "unsubscribe", None, at)]
        elif kind == SOFT_THREE:  # inside the default window (3 in 7 days)
            made = [record("b", TENANT, mailbox, "4.2.2", now - DAY * n) for n in (3, 2, 1)]
        else:
            made = [record("b", TENANT, mailbox, "4.2.2", now - DAY)]
        for one in made[: rows - written]:
            yield one
            written += 1
        index += 1


def write_state_file(path: Path, rows: int, now: float) -> int:
    """The snapshot file of `rows` records; returns how many whole addresses it holds."""
    header = {"format": STATE_FORMAT, "version": 1, "written_at": now}
    with path.open("w", encoding="utf-8") as stream:
        stream.write(json.dumps(header) + "\n")
        batch: list[str] = []
        for one in records(rows, now):
            batch.append(json.dumps(one, separators=(",", ":")))
            if len(batch) >= 10000:
                stream.write("\n".join(batch) + "\n")
                batch.clear()
        if batch:
            stream.write("\n".join(batch) + "\n")
    path.chmod(0o600)
    return addresses_for_rows(rows)


def tenants_file() -> dict[str, dict[str, str]]:
    return {"domains": {TENANT: TENANT, OTHER_TENANT: OTHER_TENANT}}


# ---------------------------------------------------------------------- the protocol


def policy_request(recipient: str, sequence: int, client_port: int) -> bytes:
    """One RCPT-stage request with the attributes Postfix 3.7 sends (SMTPD_POLICY_README)."""
    queue_id = f"4Zk{sequence:09X}"[-12:]
    attributes = (
        ("request", "smtpd_access_policy"),
        ("protocol_state", "RCPT"),
        ("protocol_name", "ESMTP"),
        ("helo_name", "app.internal"),
        ("queue_id", queue_id),
        ("sender", SENDER),
        ("recipient", recipient),
        ("recipient_count", "0"),
        ("client_address", "10.25.0.100"),
        ("client_name", "app.internal"),
        ("client_port", str(client_port)),
        ("reverse_client_name", "app.internal"),
        ("server_address", "10.25.0.10"),
        ("server_port", "25"),
        ("instance", f"{sequence:x}.{client_port:x}.0"),
        ("sasl_method", ""),
        ("sasl_username", ""),
        ("sasl_sender", ""),
        ("size", "4211"),
        ("ccert_subject", ""),
        ("ccert_issuer", ""),
        ("ccert_fingerprint", ""),
        ("ccert_pubkey_fingerprint", ""),
        ("encryption_protocol", ""),
        ("encryption_cipher", ""),
        ("encryption_keysize", "0"),
        ("etrn_domain", ""),
        ("stress", ""),
        ("policy_context", ""),
        ("compatibility_level", "3.6"),
        ("mail_version", "3.7.11"),
    )
    return ("".join(f"{name}={value}\n" for name, value in attributes) + "\n").encode()


class AnswerSplitter:
    """Bytes from the service in, complete answers (the action's first word) out."""

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, data: bytes) -> list[str]:
        buffer = self._rest + data if self._rest else data
        *answers, self._rest = buffer.split(b"\n\n")
        words = []
        for answer in answers:
            line = answer.strip().split(b"\n", 1)[0]
            if not line.startswith(b"action="):
                raise ValueError(f"not a policy answer: {line[:80]!r}")
            words.append(line[len(b"action=") :].split(b" ", 1)[0].decode("ascii", "replace"))
        return words


class RecipientMix:
    """The recipients a campaign sends to: mostly unknown to the snapshot, `known_share` of
    them drawn from its addresses; a tenth in mixed case (the service normalises)."""

    def __init__(self, addresses: int, known_share: float, seed: int) -> None:
        self.addresses = addresses
        self.known_share = known_share if addresses else 0.0
        self.random = random.Random(seed)
        self.unknown = 0

    def next(self) -> tuple[str, bool]:
        """(recipient, whether the service must refuse it)."""
        pick = self.random
        if pick.random() < self.known_share:
            index = pick.randrange(self.addresses)
            recipient, refused = address(index), address_kind(index) in REFUSED_KINDS
        else:
            self.unknown += 1
            recipient, refused = f"r{self.unknown}-{pick.getrandbits(32):08x}@gmail.test", False
        if pick.random() < 0.1:
            local, _sep, domain = recipient.partition("@")
            recipient = f"{local.capitalize()}@{domain.capitalize()}"
        return recipient, refused


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest rank on sorted `values` (the p99 of 1,000 values is the 990th)."""
    if not values:
        return math.nan
    rank = max(1, math.ceil(share * len(values)))
    return values[min(rank, len(values)) - 1]


# ---------------------------------------------------------------------- the load


@dataclass
class Window:
    """Monotonic clock times (CLOCK_MONOTONIC: the same in every process of the host)."""

    begin: float  # requests start
    measure_from: float  # end of the warm-up
    measure_until: float


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)  # seconds from the write to the answer
    # seconds from when it was due (paced: includes waiting behind the previous answer, and
    # the generator's own lateness)
    due_latencies: list[float] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    wrong: int = 0  # refused when it must not be, or the reverse
    wrong_example: str = ""
    answered: int = 0  # every answer, warm-up included
    errors: list[str] = field(default_factory=list)

    def merge(self, other: Result) -> None:
        self.latencies += other.latencies
        self.due_latencies += other.due_latencies
        self.answers.update(other.answers)
        self.wrong += other.wrong
        self.wrong_example = self.wrong_example or other.wrong_example
        self.answered += other.answered
        self.errors += other.errors


class PostfixClient(asyncio.Protocol):
    """One smtpd's connection to the policy service: a request, its answer, the next.

    Closed loop (`paced` False): the next request goes as soon as the answer is in. Paced:
    requests are due at times the schedule gives (`due()`); one that falls due while the
    previous is unanswered waits for it, as the smtpd would, and its latency counts from when
    it was due, so a slow answer is not hidden by the requests it held back.
    """

    def __init__(
        self, mix: RecipientMix, window: Window, result: Result, done: Any, paced: bool
    ) -> None:
        self.mix, self.window, self.result, self.done = mix, window, result, done
        self.paced = paced
        self.splitter = AnswerSplitter()
        self.transport: asyncio.Transport | None = None
        self.sequence = 0
        self.port = 0
        self.busy = False
        self.ending = False  # paced: no more requests will fall due
        self.waiting: deque[float] = deque()  # due times of requests not sent yet
        self.due_at = self.sent_at = 0.0
        self.expect_refusal = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.port = transport.get_extra_info("sockname")[1]

    def start(self) -> None:
        if not self.paced:
            self.send(time.monotonic())

    def due(self, when: float) -> None:
        """A paced request falls due."""
        if self.busy:
            self.waiting.append(when)
        else:
            self.send(when)

    def send(self, due_at: float) -> None:
        if self.transport is None:
            return
        recipient, self.expect_refusal = self.mix.next()
        self.sequence += 1
        request = policy_request(recipient, self.sequence, self.port)
        self.sent_at = time.monotonic()
        # sent a little early (the schedule's wake-ups): it counts from when it went
        self.due_at, self.busy = min(due_at, self.sent_at), True
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        try:
            words = self.splitter.feed(data)
        except ValueError as error:
            self.fail(str(error))
            return
        if len(words) > 1:
            self.fail(f"{len(words)} answers to one request")
            return
        if not words:
            return
        word, result, window = words[0], self.result, self.window
        result.answered += 1
        self.busy = False
        if window.measure_from <= self.due_at and now <= window.measure_until:
            result.latencies.append(now - self.sent_at)
            result.due_latencies.append(now - self.due_at)
            result.answers[word] += 1
            if (word == "REJECT") != self.expect_refusal:
                result.wrong += 1
                result.wrong_example = result.wrong_example or (
                    f"{word} where {'REJECT' if self.expect_refusal else 'DUNNO'} was due"
                )
        if self.waiting:
            self.send(self.waiting.popleft())
        elif now >= window.measure_until or self.ending:
            self.finish()
        elif not self.paced:
            self.send(now)

    def idle_after_end(self) -> None:
        """The schedule is over: close once the last answer is in."""
        self.ending = True
        if not self.busy and not self.waiting:
            self.finish()

    def fail(self, reason: str) -> None:
        self.result.errors.append(reason)
        self.finish()

    def finish(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        if not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:  # the service closed it
            self.transport = None
            self.result.errors.append(f"the service closed a connection ({exc or 'EOF'})")
            if not self.done.done():
                self.done.set_result(None)


def schedule(begin: float, rate: float, count: int, offset: float = 0.0) -> Iterator[float]:
    """Due times at `rate` per second from `begin`: request j at begin + (j + offset) / rate
    (`offset` in [0, 1) staggers the processes that share a rate)."""
    for index in range(count):
        yield begin + (index + offset) / rate


async def run_share(
    host: str,
    port: int,
    connections: int,
    window: Window,
    mix: RecipientMix,
    rate: float = 0.0,
    offset: float = 0.0,
) -> Result:
    """`connections` clients from one process, all started at `window.begin`; closed loop,
    or paced at `rate` requests per second in all (spread over the connections in turn)."""
    loop = asyncio.get_running_loop()
    result = Result()
    clients: list[tuple[PostfixClient, asyncio.Future[None]]] = []
    opening = asyncio.Semaphore(64)  # bursts under the service's listen backlog
    paced = rate > 0

    async def connect() -> tuple[PostfixClient, asyncio.Future[None]]:
        done: asyncio.Future[None] = loop.create_future()
        async with opening:
            _transport, client = await loop.create_connection(
                lambda: PostfixClient(mix, window, result, done, paced), host, port
            )
        return client, done

    try:
        clients = list(await asyncio.gather(*(connect() for _n in range(connections))))
    except OSError as error:
        result.errors.append(f"connecting to {host}:{port}: {error}")
        return result
    delay = window.begin - time.monotonic()
    if delay < 0:
        result.errors.append(f"opening {connections} connections took {-delay:.1f} s too long")
        for client, _done in clients:
            client.finish()
        return result
    await asyncio.sleep(delay)
    for client, _done in clients:
        client.start()
    if paced:
        count = int((window.measure_until - window.begin) * rate)
        for index, when in enumerate(schedule(window.begin, rate, count, offset)):
            ahead = when - time.monotonic()
            if ahead > 0.001:
                await asyncio.sleep(ahead)
            clients[index % len(clients)][0].due(when)
        for client, _done in clients:
            client.idle_after_end()
    try:
        await asyncio.wait_for(
            asyncio.gather(*(done for _client, done in clients)),
            timeout=window.measure_until - time.monotonic() + 30,
        )
    except TimeoutError:
        result.errors.append("answers stopped coming: 30 s after the end, connections waited")
    return result


def _worker(
    host: str,
    port: int,
    connections: int,
    window: Window,
    addresses: int,
    share: float,
    seed: int,
    rate: float,
    offset: float,
) -> Result:
    raise_open_files_limit()
    mix = RecipientMix(addresses, share, seed)
    return asyncio.run(run_share(host, port, connections, window, mix, rate, offset))


def shares(total: int, parts: int) -> list[int]:
    """`total` split into `parts` near-equal whole shares, none empty."""
    parts = max(1, min(parts, total))
    return [total // parts + (1 if n < total % parts else 0) for n in range(parts)]


def raise_open_files_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def probe(host: str, port: int, recipient: str, timeout: float = 5.0) -> str:
    """One request on a connection of its own; the answer's first word."""
    with socket.create_connection((host, port), timeout=timeout) as conn:
        conn.sendall(policy_request(recipient, 0, conn.getsockname()[1]))
        splitter = AnswerSplitter()
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                raise ValueError("the service closed the connection without an answer")
            words = splitter.feed(chunk)
            if words:
                return words[0]


def wait_ready(host: str, port: int, addresses: int, timeout: float) -> None:
    """Until the service answers, and refuses a suppressed address: its snapshot is loaded."""
    deadline = time.monotonic() + timeout
    refused_one = next(i for i in range(BLOCK) if address_kind(i) == SUPPRESSED)
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            word = probe(host, port, address(refused_one))
        except (OSError, ValueError) as error:
            last = str(error)
        else:
            if word == "REJECT" or not addresses:
                return
            last = f"{word} for a suppressed address: the snapshot is not loaded yet"
        time.sleep(0.5)
    raise SystemExit(f"policy_load: {host}:{port} not ready within {timeout:.0f} s ({last})")


def report(result: Result, window: Window, connections: int, prefix: str = "policy_") -> list[str]:
    """The figures, `<prefix>name: value` each."""
    latencies = sorted(result.latencies)
    due = sorted(result.due_latencies)
    seconds = window.measure_until - window.measure_from
    figures = [
        ("checks_per_s", f"{len(latencies) / seconds:.0f}"),
        ("p50_ms", f"{percentile(latencies, 0.50) * 1000:.2f}"),
        ("p99_ms", f"{percentile(latencies, 0.99) * 1000:.2f}"),
        ("p999_ms", f"{percentile(latencies, 0.999) * 1000:.2f}"),
        ("max_ms", f"{(latencies[-1] if latencies else math.nan) * 1000:.2f}"),
        ("p99_from_due_ms", f"{percentile(due, 0.99) * 1000:.2f}"),
    ]
    for word in sorted(set(result.answers) | {"DUNNO", "REJECT"}):
        figures.append((f"answers_{word.lower()}", str(result.answers[word])))
    figures += [
        ("wrong_answers", str(result.wrong)),
        ("checks_measured", str(len(latencies))),
        ("requests_answered", str(result.answered)),
        ("connections", str(connections)),
        ("measured_s", f"{seconds:g}"),
    ]
    return [f"{prefix}{name}: {value}" for name, value in figures]


def load(args: argparse.Namespace) -> int:
    host, _sep, port_text = args.target.rpartition(":")
    port = int(port_text)
    addresses = addresses_for_rows(args.rows)
    raise_open_files_limit()
    wait_ready(host, port, addresses, args.ready_timeout)
    now = time.monotonic()
    begin = now + args.connect_seconds
    window = Window(begin, begin + args.warmup, begin + args.warmup + args.duration)
    parts = shares(args.connections, args.processes)
    print(
        f"policy_load: {args.connections} connections from {len(parts)} processes, "
        f"{args.warmup:g} s warm-up, {args.duration:g} s measured, "
        f"{f'paced at {args.rate:g} requests/s' if args.rate > 0 else 'closed loop'}, "
        f"{addresses} addresses in the snapshot, {args.known_share:.0%} of requests for them",
        file=sys.stderr,
    )
    result = Result()
    rate = args.rate / len(parts)  # each process paces its share, staggered by `offset`
    if len(parts) == 1:
        mix = RecipientMix(addresses, args.known_share, args.seed)
        result = asyncio.run(run_share(host, port, parts[0], window, mix, rate))
    else:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(len(parts), mp_context=context) as pool:
            futures = [
                pool.submit(
                    _worker,
                    host,
                    port,
                    share,
                    window,
                    addresses,
                    args.known_share,
                    args.seed + n,
                    rate,
                    n / len(parts),
                )
                for n, share in enumerate(parts)
            ]
            for future in futures:
                result.merge(future.result())
    for line in report(result, window, args.connections, args.prefix):
        print(line)
    if result.errors:
        print(
            f"policy_load: {len(result.errors)} connections failed, e.g. {result.errors[0]}",
            file=sys.stderr,
        )
        return 1
    if result.wrong:
        print(
            f"policy_load: {result.wrong} wrong answers, e.g. {result.wrong_example}",
            file=sys.stderr,
        )
        return 1
    if not result.latencies:
        print("policy_load: no request was answered in the measured window", file=sys.stderr)
        return 1
    return 0


def state_file(args: argparse.Namespace) -> int:
    started = time.monotonic()
    addresses = write_state_file(args.out, args.rows, time.time())
    args.tenants.write_text(json.dumps(tenants_file()) + "\n", encoding="utf-8")
    print(
        f"policy_load: {args.rows} rows for {addresses} addresses in {args.out} "
        f"({args.out.stat().st_size / 1e6:.0f} MB, {time.monotonic() - started:.1f} s)",
        file=sys.stderr,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("state-file", help="write the snapshot file and the tenants file")
    make.add_argument("--rows", type=int, default=1_000_000)
    make.add_argument("--out", type=Path, required=True)
    make.add_argument("--tenants", type=Path, required=True)
    make.set_defaults(func=state_file)
    run = commands.add_parser("load", help="Postfix's requests at the service")
    run.add_argument("--target", default="127.0.0.1:10041", help="host:port of the service")
    run.add_argument("--rows", type=int, default=1_000_000, help="as given to state-file")
    run.add_argument("--connections", type=int, default=1000)
    run.add_argument("--processes", type=int, default=1, help="client processes")
    run.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    run.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    run.add_argument("--rate", type=float, default=0.0,
                     help="requests per second in all, paced; 0: closed loop, as fast as "
                     "the answers come")  # fmt: skip
    run.add_argument("--prefix", default="policy_", help="prefix of the figures' names")
    run.add_argument("--connect-seconds", type=float, default=5.0,
                     help="time allowed for opening the connections")  # fmt: skip
    run.add_argument("--known-share", type=float, default=0.05,
                     help="share of requests for addresses the snapshot holds")  # fmt: skip
    run.add_argument("--ready-timeout", type=float, default=600.0)
    run.add_argument("--seed", type=int, default=2026)
    run.set_defaults(func=load)
    args = parser.parse_args(argv)
    if getattr(args, "rows", 1) < 0:
        parser.error("--rows: 0 or more")
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
