"""End to end: the server on 127.0.0.1, a real SMTP client, records on disk.

DNS answers come from a dict (StaticDns); everything else is the code the lab runs.
"""

from __future__ import annotations

import json
import smtplib
import time

import pytest
from bulkmail_providers.cli import main
from conftest import HELO, VERP, Lab
from signing import make_message, sign


def test_a_signed_message_over_tls_passes_and_is_recorded(lab: Lab) -> None:
    message = sign(make_message(to="alice@gmail.test"))
    with lab.tls_client() as client:
        assert "starttls" not in client.esmtp_features  # already in TLS
        assert "auth" not in client.esmtp_features  # an MX offers no AUTH
        client.sendmail(VERP, ["alice@gmail.test", "bob@acme.test"], message)
    [record] = lab.records()  # read at once: the line is on disk before the 250
    assert record["message_id"] == "<test-1@example.test>"
    assert record["mail_from"] == VERP
    assert record["rcpt_to"] == ["alice@gmail.test", "bob@acme.test"]
    assert record["provider"] == "google"
    assert record["from_header_domain"] == "example.test"
    assert (record["peer_ip"], record["helo"], record["tls"]) == ("127.0.0.1", HELO, True)
    assert record["tls_version"].startswith("TLS")
    assert record["dkim"] | {"signatures": None} == {
        "result": "pass",
        "domain": "example.test",
        "selector": "lab2026a",
        "signatures": None,
    }
    assert record["spf"] == {
        "result": "pass",
        "domain": "bounce.example.test",
        "identity": "mailfrom",
    }
    assert record["dmarc"] == {
        "result": "pass",
        "policy": "none",
        "disposition": "none",
        "alignment": {"spf": True, "dkim": True},
    }
    assert record["list_unsubscribe_post"] == "List-Unsubscribe=One-Click"
    assert record["size"] == len(message)
    stored = (lab.data_dir / record["stored_as"]).read_bytes()
    assert stored.startswith(b"Authentication-Results: mx.google.test;\r\n       dkim=pass")
    assert b"spf=pass" in stored and b"dmarc=pass" in stored
    assert b"\r\nReceived: from mta1.example.test ([127.0.0.1])" in stored
    assert stored.endswith(b"Hello from the lab.\r\n")


def test_each_provider_of_a_transaction_gets_its_own_record(lab: Lab) -> None:
    with lab.client() as client:
        client.sendmail(VERP, ["a@gmail.test", "b@yahoo.test"], make_message())
    records = lab.records()
    assert [(r["provider"], r["rcpt_to"], r["tls"]) for r in records] == [
        ("google", ["a@gmail.test"], False),
        ("yahoo", ["b@yahoo.test"], False),
    ]
    assert records[0]["queue_id"] == records[1]["queue_id"]
    assert records[0]["dkim"]["result"] == "none"


def test_unaligned_unsigned_mail_fails_dmarc_and_says_so(lab: Lab) -> None:
    with lab.client() as client:
        client.sendmail(
            "app@shop.test", ["a@outlook.test"], make_message(from_addr="app@shop.test")
        )
    [record] = lab.records()
    assert record["spf"]["result"] == "fail"
    assert record["dmarc"] == {
        "result": "fail",
        "policy": "reject",
        "disposition": "reject",
        "alignment": {"spf": False, "dkim": False},
    }
    stored = (lab.data_dir / record["stored_as"]).read_bytes()
    assert b"dmarc=fail (p=REJECT dis=REJECT) header.from=shop.test" in stored


def test_a_null_sender_is_checked_by_helo(lab: Lab) -> None:
    with lab.client() as client:
        client.sendmail("", ["a@gmail.test"], make_message())
    [record] = lab.records()
    assert record["mail_from"] == ""
    assert record["spf"] == {"result": "pass", "domain": HELO, "identity": "helo"}


def test_unknown_user_is_refused_with_googles_text(lab: Lab) -> None:
    with lab.client() as client, pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        client.sendmail(VERP, ["user-unknown@gmail.test"], make_message())
    code, text = refused.value.recipients["user-unknown@gmail.test"]
    assert code == 550
    assert text.startswith(b"5.1.1 The email account that you tried to reach does not exist.")
    assert lab.records() == []


def test_yahoo_defers_at_rcpt_and_hangs_up(lab: Lab) -> None:
    client = lab.client()
    client.mail(VERP)
    code, text = client.rcpt("defer-1@yahoo.test")
    assert code == 421
    assert text.startswith(b"4.7.0 [TSS04] Messages from 127.0.0.1 temporarily deferred")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.noop()
    client.close()


def test_google_defers_after_data_and_records_nothing(lab: Lab) -> None:
    with lab.client() as client, pytest.raises(smtplib.SMTPDataError) as deferred:
        client.sendmail(VERP, ["a@gmail.test", "defer-2@gmail.test"], make_message())
    assert deferred.value.smtp_code == 421
    assert (
        b"4.7.28 [127.0.0.1] Our system has detected an unusual rate" in deferred.value.smtp_error
    )
    assert lab.records() == []


def test_tarpit_delays_the_data_reply_then_accepts(lab: Lab) -> None:
    with lab.client() as client:
        started = time.monotonic()
        client.sendmail(VERP, ["tarpit-1@outlook.test"], make_message())
        elapsed = time.monotonic() - started
    assert elapsed >= 1.0
    [record] = lab.records()
    assert record["behaviours"] == {"tarpit-1@outlook.test": "tarpit"}


def test_relaying_is_denied(lab: Lab) -> None:
    with lab.client() as client, pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        client.sendmail(VERP, ["someone@example.test"], make_message())
    assert refused.value.recipients["someone@example.test"][0] == 550


def test_cli_prints_and_resets_the_records(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    with lab.client() as client:
        for rcpt in ("a@gmail.test", "b@gmail.test"):
            client.sendmail(VERP, [rcpt], make_message())
    data_dir = str(lab.data_dir)
    assert main(["--data-dir", data_dir, "received", "--since", "1"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["rcpt_to"] == ["b@gmail.test"]
    assert main(["--data-dir", data_dir, "received", "--table"]) == 0
    assert "dkim=none spf=pass dmarc=pass" in capsys.readouterr().out
    assert main(["--data-dir", data_dir, "reset", "--messages"]) == 0
    assert lab.records() == []
    assert not list((lab.data_dir / "messages").glob("*/*.eml"))


def test_ping_answers_when_the_server_is_up(lab: Lab) -> None:
    assert main(["ping", "--port", str(lab.server.port)]) == 0
