"""`bulkmail check-dns`'s SMTP probe of report addresses, against a scripted SMTP server."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest
from bulkmail.logic.dns.report import LookupFailed

from bulkmail.check_dns import smtp_probe


class ScriptedSmtp(socketserver.StreamRequestHandler):
    """Answers each command from `server.replies` (by verb) and records what it was sent."""

    def handle(self) -> None:
        server = self.server
        self.wfile.write(server.greeting.encode() + b"\r\n")  # type: ignore[attr-defined]
        while line := self.rfile.readline():
            command = line.decode().rstrip("\r\n")
            server.commands.append(command)  # type: ignore[attr-defined]
            verb = command.split(" ", 1)[0].split(":", 1)[0].upper()
            reply = server.replies.get(verb, "250 2.0.0 Ok")  # type: ignore[attr-defined]
            self.wfile.write(reply.encode() + b"\r\n")
            if verb == "QUIT":
                return


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ScriptedSmtp)
        self.greeting = "220 mx.agency.test ESMTP"
        self.replies: dict[str, str] = {"EHLO": "250 mx.agency.test", "QUIT": "221 Bye"}
        self.commands: list[str] = []

    @property
    def port(self) -> int:
        return int(self.server_address[1])


@pytest.fixture
def server() -> Iterator[Server]:
    server = Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def resolve(name: str, rdtype: str) -> list[str]:
    if name == "broken.agency.test":
        raise LookupFailed(name, rdtype, "SERVFAIL")
    if name == "mx.agency.test" and rdtype == "A":
        return ["127.0.0.1"]
    return []


def test_an_accepted_rcpt_passes_and_no_data_is_sent(server: Server) -> None:
    probe = smtp_probe(resolve, timeout=5, port=server.port, helo="checker.example.test")

    result = probe("dmarc@agency.test", ["mx.agency.test"])

    assert (result.code, result.reply, result.host) == (250, "2.0.0 Ok", "mx.agency.test")
    assert server.commands == [
        "ehlo checker.example.test",
        "mail FROM:<>",
        "rcpt TO:<dmarc@agency.test>",
        "rset",
        "quit",
    ]


def test_a_refused_rcpt_is_the_result(server: Server) -> None:
    server.replies["RCPT"] = "550 5.1.1 <dmarc@agency.test>: Recipient address rejected"
    probe = smtp_probe(resolve, timeout=5, port=server.port)

    result = probe(
        "dmarc@agency.test", ["broken.agency.test", "nothing.agency.test", "mx.agency.test"]
    )

    assert (result.code, result.stage) == (550, "RCPT TO")
    assert result.reply == "5.1.1 <dmarc@agency.test>: Recipient address rejected"


def test_a_refused_null_sender_is_the_result(server: Server) -> None:
    server.replies["MAIL"] = "451 4.3.2 Try again"

    result = smtp_probe(resolve, timeout=5, port=server.port)("d@agency.test", ["mx.agency.test"])

    assert (result.code, result.stage, result.reply) == (451, "MAIL FROM:<>", "4.3.2 Try again")
    assert not any(command.startswith("rcpt") for command in server.commands)


def test_a_greeting_that_refuses_is_the_result(server: Server) -> None:
    server.greeting = "554 5.7.1 No service"

    result = smtp_probe(resolve, timeout=5, port=server.port)("d@agency.test", ["mx.agency.test"])

    assert (result.code, result.stage) == (554, "greeting")


def test_no_mx_answering_says_why() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # closed once the block ends: nothing listens
    probe = smtp_probe(resolve, timeout=2, port=port)

    result = probe("d@agency.test", ["broken.agency.test", "nothing.agency.test", "mx.agency.test"])

    assert result.code is None
    assert result.reply.startswith(
        "broken.agency.test: SERVFAIL; nothing.agency.test: no address; mx.agency.test[127.0.0.1]: "
    )
