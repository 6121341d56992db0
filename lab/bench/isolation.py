#!/usr/bin/env python3
"""make bench-isolation: do transactional messages wait behind a saturated bulk queue?

Runs on the machine that runs the lab (standard library only; `docker exec` into the lab).
Each configuration gets the same test (docs/benchmarks.md):

1. A bulk campaign is injected with smtp-source from the bench host: a third each to a fast
   provider (gmail.test), a tarpitting one (outlook.test: DATA answered after 30 s) and a
   deferring one (yahoo.test: 421 at RCPT), switched on with `bulkmail_providers behave`.
2. While it saturates the queue, 50 transactional messages to gmail.test are submitted one by
   one; each one's latency is the provider's receive time minus the end of its submission.
3. Results after a fixed wait: how many arrived, and the p99 latency (a message that never
   arrived counts as infinitely late).

The baseline is an untuned Debian Postfix (the bench-mta container, one instance), the stack
is smtp1 with its lanes (campaign on the bulk lane's 2525, transactional on 25; the bulk lane
is an intake plus one instance per provider). Every instance of both gets
`qmgr_message_active_limit = BENCH_ACTIVE_LIMIT` (500): the active queue of a platform
sending millions, scaled down to a lab the same way for each queue. The stack is also timed
delivering the campaign's fast-provider third: alone; in the same three-provider campaign with
every provider accepting ("calm": the control for "without the tarpit"); and with the
tarpitting and deferring thirds beside it ("mixed").

Prints `name: value` lines, the stack's and the baseline's figures from the same run.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence

CAMPAIGN = int(os.environ.get("BENCH_CAMPAIGN", "3000"))  # messages, a third per provider
TX_MESSAGES = int(os.environ.get("BENCH_TX", "50"))
TX_INTERVAL = float(os.environ.get("BENCH_TX_INTERVAL", "0.2"))  # seconds between submissions
TX_WAIT = float(os.environ.get("BENCH_TX_WAIT", "60"))  # after the last submission
ACTIVE_LIMIT = int(os.environ.get("BENCH_ACTIVE_LIMIT", "500"))
SESSIONS = 10

BENCH = "bulkmail-bench"
UNTUNED = "bulkmail-bench-mta"
SMTP1, SMTP2 = "bulkmail-smtp1", "bulkmail-smtp2"
PROVIDERS = "bulkmail-providers"
STACK_TX = "10.25.0.10:25"  # the transactional lane, trusted network, no AUTH
STACK_BULK = "10.25.0.10:2525"  # the bulk lane
UNTUNED_SMTP = "10.25.0.102:25"
FAST, TARPIT, DEFER = "gmail.test", "outlook.test", "yahoo.test"
SENDER = "news@example.test"

# Submitted from the bench host, one message at a time: prints the end of each submission.
TX_PROBE = """
import json, smtplib, sys, time
from email.message import EmailMessage
host, port = sys.argv[1].split(":")
count, interval, tag = int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
for n in range(count):
    msg = EmailMessage()
    msg["From"] = "app@example.test"
    msg["To"] = f"tx-{tag}-{n}@gmail.test"
    msg["Subject"] = f"bench-tx {tag} {n}"
    msg.set_content("Your password reset code is 123456.\\n")
    with smtplib.SMTP(host, int(port), timeout=60) as smtp:
        smtp.ehlo("bench.example.test")
        smtp.send_message(msg)
    print(json.dumps({"n": n, "submitted": time.time()}), flush=True)
    time.sleep(interval)
"""


def run(*argv: str, stdin: str | None = None, check: bool = True) -> str:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        sys.exit(f"bench-isolation: {' '.join(argv)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def on(container: str, *argv: str, stdin: str | None = None, check: bool = True) -> str:
    return run("docker", "exec", "-i", container, *argv, stdin=stdin, check=check)


def behave(domain: str, behaviour: str) -> None:
    on(PROVIDERS, "python3", "-m", "bulkmail_providers", "behave", domain, behaviour)


def received_since(start: int) -> list[dict[str, object]]:
    out = on(PROVIDERS, "python3", "-m", "bulkmail_providers", "received", "--since", str(start))
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def received_count() -> int:
    return int(on(PROVIDERS, "python3", "-m", "bulkmail_providers", "received", "--count"))


def epoch(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def campaign(target: str, domains: Sequence[str], tag: str) -> None:
    """CAMPAIGN messages of 2 KB split over `domains`, each recipient unique (-N)."""
    per_domain = CAMPAIGN // 3
    procs = [
        subprocess.Popen(
            ["docker", "exec", BENCH, "smtp-source", "-N", "-d", "-s", str(SESSIONS), "-l",
             "2048", "-m", str(per_domain), "-M", "bench.example.test", "-f", SENDER,
             "-t", f"c{tag}@{domain}", target],
            stdout=subprocess.DEVNULL,
        )
        for domain in domains
    ]  # fmt: skip
    for proc in procs:
        if proc.wait() != 0:
            sys.exit(f"bench-isolation: smtp-source into {target} failed")


def fast_share_done(start: int, tag: str, want: int, timeout: float) -> float:
    """Seconds until `want` campaign messages for FAST arrived (inf if they never did)."""
    began = time.monotonic()
    seen = 0
    offset = start
    while time.monotonic() - began < timeout:
        records = received_since(offset)
        offset += len(records)
        seen += sum(
            1
            for r in records
            for rcpt in r["rcpt_to"]  # type: ignore[attr-defined]
            if str(rcpt).endswith(f"c{tag}@{FAST}")
        )
        if seen >= want:
            return time.monotonic() - began
        time.sleep(0.5)
    return math.inf


def transactional(target: str, tag: str, start: int) -> tuple[int, float]:
    """Submit TX_MESSAGES one by one; (delivered, p99 latency in s) after TX_WAIT."""
    out = on(BENCH, "python3", "-", target, str(TX_MESSAGES), str(TX_INTERVAL), tag,
             stdin=TX_PROBE)  # fmt: skip
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    submitted = {line["n"]: line["submitted"] for line in lines}
    deadline = time.monotonic() + TX_WAIT
    latencies: dict[int, float] = {}
    offset = start
    while time.monotonic() < deadline and len(latencies) < TX_MESSAGES:
        records = received_since(offset)
        offset += len(records)
        for record in records:
            subject = str(record["subject"]).split()
            if subject[:2] == ["bench-tx", tag]:
                n = int(subject[2])
                latencies[n] = epoch(str(record["received_at"])) - submitted[n]
        time.sleep(0.5)
    ordered = sorted(latencies.get(n, math.inf) for n in range(TX_MESSAGES))
    p99 = ordered[max(0, math.ceil(0.99 * TX_MESSAGES) - 1)]
    return len(latencies), p99


def empty_queues(*commands: tuple[str, ...]) -> None:
    for command in commands:
        on(*command, check=False)


def set_active_limit(container: str, configs: Sequence[str], value: str) -> dict[str, str]:
    old = {}
    for config in configs:
        old[config] = on(container, "postconf", "-c", config, "-h",
                         "qmgr_message_active_limit").strip()  # fmt: skip
        on(container, "postconf", "-c", config, "-e", f"qmgr_message_active_limit = {value}")
    on(container, "postfix", "reload")
    return old


def measure(name: str, campaign_target: str, tx_target: str) -> tuple[int, float]:
    tag = uuid.uuid4().hex[:8]
    start = received_count()
    behave(TARPIT, "tarpit")
    behave(DEFER, "defer")
    try:
        campaign(campaign_target, (FAST, TARPIT, DEFER), tag)
        print(f"bench-isolation: {name}: campaign of {CAMPAIGN} injected", file=sys.stderr)
        return transactional(tx_target, tag, start)
    finally:
        behave(TARPIT, "configured")
        behave(DEFER, "configured")


def fast_rate(name: str, domains: Sequence[str], timeout: float = 150, slow: bool = False) -> float:
    """Messages per second for the stack's bulk lane to deliver the campaign's fast third.

    `slow`: the tarpitting and deferring providers misbehave during the round.
    """
    tag = uuid.uuid4().hex[:8]
    start = received_count()
    if slow:
        behave(TARPIT, "tarpit")
        behave(DEFER, "defer")
    try:
        began = time.monotonic()
        campaign(STACK_BULK, domains, tag)
        seconds = time.monotonic() - began
        seconds += fast_share_done(start, tag, CAMPAIGN // 3, timeout)  # inf: not within timeout
        print(f"bench-isolation: {name}: {CAMPAIGN // 3} to {FAST} in {seconds:.1f} s",
              file=sys.stderr)  # fmt: skip
        return (CAMPAIGN // 3) / seconds
    finally:
        behave(TARPIT, "configured")
        behave(DEFER, "configured")


def instance_configs(container: str) -> list[str]:
    """Every Postfix instance's config directory (`postmulti -l`), the default one first."""
    return [line.split()[3] for line in on(container, "postmulti", "-l").splitlines()]


def main() -> int:
    stack_configs = instance_configs(SMTP1)
    drop_stack: list[tuple[str, ...]] = [
        *((SMTP1, "postsuper", "-c", config, "-d", "ALL") for config in stack_configs),
        (SMTP2, "postsuper", "-d", "ALL"),
    ]
    on(UNTUNED, "/opt/bench/untuned-mta", "plain")
    empty_queues((UNTUNED, "postsuper", "-d", "ALL"), *drop_stack)
    on(UNTUNED, "postconf", "-e", f"qmgr_message_active_limit = {ACTIVE_LIMIT}")
    on(UNTUNED, "postfix", "reload")
    old = set_active_limit(SMTP1, stack_configs, str(ACTIVE_LIMIT))
    try:
        base = measure("baseline (untuned Postfix)", UNTUNED_SMTP, UNTUNED_SMTP)
        empty_queues((UNTUNED, "postsuper", "-d", "ALL"), (UNTUNED, "postfix", "stop"))
        stack = measure("stack (lanes)", STACK_BULK, STACK_TX)
        empty_queues(*drop_stack)
        alone = fast_rate("stack, fast provider alone", (FAST,))
        empty_queues(*drop_stack)
        calm = fast_rate("stack, whole campaign, every provider accepting", (FAST, TARPIT, DEFER))
        empty_queues(*drop_stack)
        mixed = fast_rate("stack, beside tarpit and deferrals", (FAST, TARPIT, DEFER), slow=True)
        empty_queues(*drop_stack)
    finally:
        for config, value in old.items():
            on(SMTP1, "postconf", "-c", config, "-e", f"qmgr_message_active_limit = {value}")
        on(SMTP1, "postfix", "reload", check=False)

    def show(seconds: float) -> str:
        return "inf" if math.isinf(seconds) else f"{seconds:.2f}"

    print(f"tx_delivered: {stack[0]}/{TX_MESSAGES}")
    print(f"tx_p99_s: {show(stack[1])}")
    print(f"baseline_tx_delivered: {base[0]}/{TX_MESSAGES}")
    print(f"baseline_tx_p99_s: {show(base[1])}")
    print(f"bulk_fast_alone_msgs_per_s: {alone:.1f}")
    print(f"bulk_fast_calm_msgs_per_s: {calm:.1f}")
    print(f"bulk_fast_mixed_msgs_per_s: {mixed:.1f}")
    # 0.00: not all within 150 s. The goal: mixed not slower than calm (the same campaign
    # without the tarpit); alone carries a third of the load and is shown for scale.
    print(f"bulk_fast_mixed_vs_calm: {mixed / calm:.2f}")
    print(f"bulk_fast_mixed_vs_alone: {mixed / alone:.2f}")
    print(f"campaign_messages: {CAMPAIGN}")
    print(f"active_limit: {ACTIVE_LIMIT}")
    print(f"stack_instances: {len(stack_configs)}")
    print(f"tx_wait_s: {TX_WAIT:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
