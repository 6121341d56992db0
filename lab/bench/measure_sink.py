#!/usr/bin/env python3
"""Messages per second delivered at smtp-sink, for mail that smtp-source submits to TARGET.

Runs inside the bench container, which holds both ends: the sink listens on the
address the bench domain's MX points at, and smtp-source submits from an address
in the trusted network. A warm-up round first fills the caches (connections, DNS,
the signer's key) and, with --expect-dkim, proves from a dump of the received mail
that the path signs. The timed round starts with smtp-source and ends when the sink
has counted N messages (smtp-sink -c): delivery, not submission, is counted.
Prints one line, `<name>: <messages per second>`.
"""

from __future__ import annotations

import argparse
import os
import pty
import re
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

COUNTER = re.compile(rb"mesg=(\d+)")


def listening(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


def wait_listening(address: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"measure_sink: smtp-sink did not listen on {address}:{port}")


class Sink:
    """smtp-sink with its running counter (-c): mesg=N each time "." is received."""

    def __init__(self, address: str, port: int, extra: list[str]) -> None:
        # 1024: listen backlog; -m 512 sessions at once, more than any client here opens.
        argv = ["smtp-sink", "-u", "nobody", "-c", "-m", "512", *extra, f"{address}:{port}"]
        if listening(address, port):
            raise SystemExit(f"measure_sink: {address}:{port} is taken; another sink still runs?")
        # A terminal, so that smtp-sink writes each counter update at once.
        self._tty, tty = pty.openpty()
        self.proc = subprocess.Popen([*argv, "1024"], stdout=tty)
        os.close(tty)
        self.received = 0
        self.reached: dict[int, float] = {}
        self._wanted: list[int] = []
        self._done = threading.Condition()
        threading.Thread(target=self._count, daemon=True).start()
        wait_listening(address, port)
        if self.proc.poll() is not None:
            raise SystemExit(f"measure_sink: smtp-sink exited; is port {port} taken?")

    def _count(self) -> None:
        tail = b""
        while chunk := self._read():
            now = time.monotonic()
            found = COUNTER.findall(tail + chunk)
            tail = chunk[-32:]
            if found:
                with self._done:
                    self.received = max(self.received, int(found[-1]))
                    for want in self._wanted:
                        if self.received >= want and want not in self.reached:
                            self.reached[want] = now
                    self._done.notify_all()

    def _read(self) -> bytes:
        try:
            return os.read(self._tty, 65536)
        except OSError:  # EIO: smtp-sink has gone
            return b""

    def wait_for(self, count: int, timeout: float) -> float:
        """Block until the sink has counted `count` messages; return when that happened."""
        with self._done:
            self._wanted.append(count)
            if self.received >= count:
                self.reached.setdefault(count, time.monotonic())
            if not self._done.wait_for(lambda: count in self.reached, timeout=timeout):
                raise SystemExit(
                    f"measure_sink: the sink counted {self.received} of {count} messages "
                    f"within {timeout:.0f}s"
                )
            return self.reached[count]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        os.close(self._tty)


def submit(args: argparse.Namespace, count: int) -> None:
    """What an application does on 587: per session one connection, STARTTLS, AUTH as
    --auth (password in BENCH_PASSWORD), then its share of `count` messages on it."""
    password = os.environ.get("BENCH_PASSWORD", "")
    body = "".join(f"line {n:04d} " + "x" * 66 + "\n" for n in range(args.size // 78 + 1))
    message = (
        f"From: {args.sender}\r\nTo: {args.recipient}\r\nSubject: bulkmail submission bench\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        + body[: args.size].replace("\n", "\r\n")
    ).encode("ascii")
    context = ssl.create_default_context()
    context.check_hostname = False  # the lab's snakeoil certificate
    context.verify_mode = ssl.CERT_NONE
    failures: list[BaseException] = []

    def session(share: int) -> None:
        try:
            with smtplib.SMTP(args.target, args.port, timeout=args.timeout) as client:
                client.starttls(context=context)
                client.login(args.auth, password)
                for _ in range(share):
                    client.sendmail(args.sender, [args.recipient], message)
        except (OSError, smtplib.SMTPException) as error:
            failures.append(error)

    shares = [count // args.sessions + (1 if n < count % args.sessions else 0)
              for n in range(args.sessions)]  # fmt: skip
    threads = [threading.Thread(target=session, args=(share,)) for share in shares if share]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"measure_sink: {len(failures)} sessions failed, e.g. {failures[0]!r}")


def send(args: argparse.Namespace, count: int) -> None:
    if args.auth:
        submit(args, count)
        return
    # -F: a message prepared (and signed) beforehand, sent as it is; else smtp-source's own
    # generated message of --size bytes.
    content = ["-F", args.message_file] if args.message_file else ["-l", str(args.size)]
    argv = [
        "smtp-source", "-d", "-s", str(args.sessions), "-m", str(count),
        *content, "-f", args.sender, "-t", args.recipient,
        "-S", "bulkmail throughput bench", "-M", "bench.example.test",
        f"inet:{args.target}:{args.port}",
    ]  # fmt: skip
    subprocess.run(argv, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="figure name printed with the result")
    parser.add_argument("target", help="address smtp-source submits to")
    parser.add_argument("--port", type=int, default=25, help="port smtp-source submits to")
    parser.add_argument("--message-file", help="send this prepared message (smtp-source -F)")
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--size", type=int, default=2048, help="body bytes per message")
    parser.add_argument("--sink", default="198.51.100.30", help="address smtp-sink listens on")
    parser.add_argument("--sender", default="bench@example.test")
    parser.add_argument("--recipient", default="bench@bench.test")
    parser.add_argument("--expect-dkim", action="store_true")
    parser.add_argument("--auth", help="submit as this SASL account over STARTTLS "
                        "(password in BENCH_PASSWORD) instead of smtp-source")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as dump:
        Path(dump).chmod(0o777)  # smtp-sink writes as nobody
        sink = Sink(args.sink, 25, ["-D", f"{dump}/warmup"])
        try:
            send(args, args.warmup)
            sink.wait_for(args.warmup, args.timeout)
        finally:
            sink.stop()
        signed = Path(dump, "warmup").read_text(errors="replace").count("DKIM-Signature:")
        if args.expect_dkim and signed < args.warmup:
            raise SystemExit(
                f"measure_sink: {args.name}: only {signed} of {args.warmup} warm-up messages "
                "arrived with a DKIM-Signature"
            )

    sink = Sink(args.sink, 25, [])
    try:
        started = time.monotonic()
        send(args, args.messages)
        finished = sink.wait_for(args.messages, args.timeout)
    finally:
        sink.stop()
    print(f"{args.name}: {args.messages / (finished - started):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
