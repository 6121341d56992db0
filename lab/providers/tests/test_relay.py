"""The emulated smarthost: AUTH only after STARTTLS, only with its account, then it records."""

from __future__ import annotations

import asyncio
import json
import smtplib
import ssl
from pathlib import Path

import pytest
from bulkmail_providers.relay import relay_log, start_relay

MESSAGE = b"From: app@shop.test\r\nTo: bob@gmail.test\r\nSubject: via relay\r\n\r\nhi\r\n"


def client_session(port: int, login: tuple[str, str] | None, tls: bool = True) -> str:
    """One SMTP session against the relay; returns 'sent' or the refusal's code."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.ehlo("mta1.example.test")
        if tls:
            smtp.starttls(context=context)
            smtp.ehlo("mta1.example.test")
        try:
            if login is not None:  # one mechanism, as Postfix's client uses
                smtp.user, smtp.password = login
                smtp.auth("PLAIN", smtp.auth_plain)
            smtp.sendmail("app@shop.test", ["bob@gmail.test"], MESSAGE)
        except smtplib.SMTPResponseException as error:
            return str(error.smtp_code)
        except smtplib.SMTPException as error:
            return type(error).__name__
    return "sent"


@pytest.mark.parametrize(
    ("login", "tls", "outcome"),
    [
        (("lab", "s3cret"), True, "sent"),
        (("lab", "wrong"), True, "535"),
        (None, True, "530"),  # MAIL before AUTH
        (("lab", "s3cret"), False, "530"),  # AUTH before STARTTLS
    ],
)
def test_the_relay_takes_mail_only_from_its_account_over_tls(
    tmp_path: Path, login: tuple[str, str] | None, tls: bool, outcome: str
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret salt=ignored\n")

    async def scenario() -> str:
        server = await start_relay("relay1", "127.0.0.1", 0, ("lab", secret), tmp_path)
        port = server.sockets[0].getsockname()[1]
        try:
            return await asyncio.get_running_loop().run_in_executor(
                None, client_session, port, login, tls
            )
        finally:
            server.close()
            await server.wait_closed()

    assert asyncio.run(scenario()) == outcome
    records = (
        [json.loads(line) for line in relay_log(tmp_path, "relay1").read_text().splitlines()]
        if (relay_log(tmp_path, "relay1").exists())
        else []
    )
    if outcome == "sent":
        (record,) = records
        assert (record["relay"], record["login"], record["tls"]) == ("relay1", "lab", True)
        assert record["rcpt_to"] == ["bob@gmail.test"] and record["subject"] == "via relay"
    else:
        assert records == []
