"""The emulated smarthost: AUTH only after STARTTLS, only with its account, then it records;
its kept certificates verify as the lab's model expects (a lab CA, a pinned public key)."""

from __future__ import annotations

import asyncio
import datetime
import json
import smtplib
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bulkmail_providers import tls
from bulkmail_providers.relay import relay_events, relay_log, start_relay
from cryptography import x509

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
        (("lab", "s3cret"), False, "538"),  # AUTH before STARTTLS: encryption required
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
    # every AUTH command is recorded, before TLS too, its outcome with it and never its data
    events = [
        json.loads(line) for line in relay_events(tmp_path, "relay1").read_text().splitlines()
    ]
    auths = [(e["mechanism"], e["tls"], e["authenticated"]) for e in events if e["event"] == "auth"]
    if login is None:
        assert auths == []
    else:
        assert auths == [("PLAIN", tls, outcome == "sent")]
        assert login[1] not in json.dumps(events)
    assert [e["event"] for e in events].count("tls") == int(tls)


def run_relay(tmp_path: Path, files: tuple[Path, Path] | None, client: Callable[[int], Any]) -> Any:
    """Run relay1 (with kept `files`, or self-signed) while `client(port)` runs beside it."""
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")

    async def scenario() -> Any:
        server = await start_relay("relay1", "127.0.0.1", 0, ("lab", secret), tmp_path, files)
        port = server.sockets[0].getsockname()[1]
        try:
            return await asyncio.get_running_loop().run_in_executor(None, client, port)
        finally:
            server.close()
            await server.wait_closed()

    return asyncio.run(scenario())


def peer_certificate(port: int, context: ssl.SSLContext) -> x509.Certificate:
    """STARTTLS with `context` (raises ssl.SSLError if it does not verify); the relay's cert."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.ehlo("mta1.example.test")
        smtp.starttls(context=context)
        der = smtp.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
    return x509.load_der_x509_certificate(der)


def verifying(cafile: Path | None, hostname: str) -> Callable[[int], x509.Certificate]:
    """A client that checks the chain against `cafile` and the name, as Postfix's `secure`."""

    def client(port: int) -> x509.Certificate:
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
        original = context.wrap_socket

        def wrap(sock: Any, **kwargs: Any) -> ssl.SSLSocket:
            return original(sock, **{**kwargs, "server_hostname": hostname})

        context.wrap_socket = wrap  # type: ignore[method-assign]
        return peer_certificate(port, context)

    return client


def test_the_lab_ca_signs_a_certificate_that_verifies_for_the_relays_name(tmp_path: Path) -> None:
    written = tls.ensure_lab_certificates(tmp_path, {"relay1": "relay1.relays.test"}, {})
    assert sorted(written) == ["lab-ca.crt", "lab-ca.key", "relay-relay1-tls.crt",
                               "relay-relay1-tls.key"]  # fmt: skip
    files = tls.kept_files(tmp_path, "relay1")
    cert = run_relay(tmp_path, files, verifying(tmp_path / "lab-ca.crt", "relay1.relays.test"))
    assert cert.subject.rfc4514_string() == "CN=relay1.relays.test"
    # another name, or no trust in the lab CA, does not verify
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        run_relay(tmp_path, files, verifying(tmp_path / "lab-ca.crt", "relay2.relays.test"))
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        run_relay(tmp_path, files, verifying(None, "relay1.relays.test"))
    assert (tmp_path / "lab-ca.key").stat().st_mode & 0o777 == 0o600


def test_an_unpinned_relay_makes_a_self_signed_certificate_that_does_not_verify(
    tmp_path: Path,
) -> None:
    tls.ensure_lab_certificates(tmp_path, {"relay1": "relay1.relays.test"}, {})
    with pytest.raises(ssl.SSLCertVerificationError, match=r"self[- ]signed"):
        run_relay(tmp_path, None, verifying(tmp_path / "lab-ca.crt", "relay1.relays.test"))


def test_a_pinned_relay_presents_the_public_key_its_digest_names(tmp_path: Path) -> None:
    tls.ensure_lab_certificates(tmp_path, {}, {"relay2": "relay2.relays.test"})
    pin = tls.pin_file(tmp_path, "relay2").read_text().strip()
    assert len(pin.split(":")) == 32 and pin == pin.upper()

    def unverified(port: int) -> x509.Certificate:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        return peer_certificate(port, context)

    cert = run_relay(tmp_path, tls.kept_files(tmp_path, "relay2"), unverified)
    assert tls.public_key_sha256(cert) == pin


def test_kept_certificates_are_made_once_and_renewed_with_the_same_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    relays = ({"relay1": "relay1.relays.test"}, {"relay2": "relay2.relays.test"})
    assert len(tls.ensure_lab_certificates(tmp_path, *relays)) == 7
    pin = tls.pin_file(tmp_path, "relay2").read_text()
    assert tls.ensure_lab_certificates(tmp_path, *relays) == []  # nothing to do
    # near the end of their validity the certificates are made again, the keys stay
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=tls.LEAF_DAYS - 10)
    monkeypatch.setattr(tls, "_now", lambda: later)
    renewed = tls.ensure_lab_certificates(tmp_path, *relays)
    assert sorted(renewed) == ["relay-relay1-tls.crt", "relay-relay2-tls.crt"]
    assert tls.pin_file(tmp_path, "relay2").read_text() == pin


def test_a_new_lab_ca_reissues_the_certificate_it_signs(tmp_path: Path) -> None:
    relays: tuple[dict[str, str], dict[str, str]] = ({"relay1": "relay1.relays.test"}, {})
    tls.ensure_lab_certificates(tmp_path, *relays)
    (tmp_path / "lab-ca.key").unlink()
    renewed = tls.ensure_lab_certificates(tmp_path, *relays)
    assert sorted(renewed) == ["lab-ca.crt", "lab-ca.key", "relay-relay1-tls.crt"]
