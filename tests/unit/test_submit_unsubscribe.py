"""`bulkmail submit --campaign ... --unsubscribe-...`: one-click unsubscribe and Feedback-ID
headers, added before signing so the DKIM signature covers them."""

from __future__ import annotations

import email
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dkim
import pytest
from aiosmtpd.controller import Controller
from bulkmail.logic.feedback.original import parse_feedback_id
from bulkmail.logic.feedback.unsubscribe import read_token, token_from_mailto_subject
from cryptography.hazmat.primitives.asymmetric import rsa
from test_signer import MESSAGE, tags, txt_for, write_tables
from test_submit import SUFFIXES, Instance, fake_resolver, free_port

from bulkmail.cli import build_parser
from bulkmail.submit import run

KEY = bytes(range(32))


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def instance() -> Iterator[tuple[Instance, int]]:
    handler = Instance()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


def submit(
    tmp_path: Path, key: rsa.RSAPrivateKey, port: int, recipients: list[str], *options: str
) -> tuple[int, list[dict[str, Any]], str]:
    write_tables(tmp_path, key)
    routes, suffixes = tmp_path / "lane-routes.json", tmp_path / "provider-suffixes.json"
    routes.write_text(json.dumps({"lane-bulk": {"default": f"handoff:[127.0.0.1]:{port}"}}))
    suffixes.write_text(json.dumps(SUFFIXES))
    keys = tmp_path / "unsubscribe.keys"
    keys.write_text(f"# signing key first\n{KEY.hex()}\n")
    argv = ["submit", "--lane", "bulk", "--from", "bounces@rp.example.test",
            "--routes", str(routes), "--suffixes", str(suffixes),
            "--opendkim-conf", str(tmp_path / "opendkim.conf"),
            *(option.replace("KEYS", str(keys)) for option in options)]  # fmt: skip
    for address in recipients:
        argv += ["--to", address]
    stdout, stderr = io.StringIO(), io.StringIO()
    code = run(build_parser().parse_args(argv), fake_resolver(), io.BytesIO(MESSAGE), stdout,
               stderr)  # fmt: skip
    return code, [json.loads(line) for line in stdout.getvalue().splitlines()], stderr.getvalue()


UNSUBSCRIBE = ("--campaign", "oct-offers", "--unsubscribe-keys-file", "KEYS",
               "--unsubscribe-url", "https://unsub.example.test",
               "--unsubscribe-mailto", "unsubscribe@example.test")  # fmt: skip


def test_one_recipient_gets_signed_one_click_and_feedback_id_headers(
    tmp_path: Path, key: rsa.RSAPrivateKey, instance: tuple[Instance, int]
) -> None:
    handler, port = instance

    code, _lines, err = submit(tmp_path, key, port, ["Bob@Example.org"], *UNSUBSCRIBE)

    assert (code, err) == (0, "")
    [envelope] = handler.received
    raw = envelope.original_content
    assert isinstance(raw, bytes)
    assert dkim.verify(raw, dnsfunc=txt_for(key))
    signed = tags(raw)[b"h"].lower().split(b":")
    assert {b"list-unsubscribe", b"list-unsubscribe-post", b"feedback-id"} <= set(signed)
    message = email.message_from_bytes(raw)
    [value] = message.get_all("List-Unsubscribe")  # the message's own was replaced
    https, mailto = re.findall(r"<([^>]+)>", value)
    token = https.removeprefix("https://unsub.example.test/u/")
    data = read_token([KEY], token)
    expected = ("example.test", "bob@example.org", "oct-offers")
    assert (data.tenant, data.recipient, data.campaign) == expected
    assert token_from_mailto_subject(mailto.partition("?subject=")[2]) == token
    assert message.get_all("List-Unsubscribe-Post") == ["List-Unsubscribe=One-Click"]
    parsed = parse_feedback_id(message["Feedback-ID"])
    assert parsed is not None
    assert (parsed.campaign, parsed.tenant, parsed.stream, parsed.sender_id) == (
        "oct-offers", "example.test", "bulk", "bulkmail"
    )  # fmt: skip


def test_a_campaign_alone_adds_feedback_id_for_any_number_of_recipients(
    tmp_path: Path, key: rsa.RSAPrivateKey, instance: tuple[Instance, int]
) -> None:
    handler, port = instance

    code, _lines, _err = submit(tmp_path, key, port, ["a@example.org", "b@example.org"],
                                "--campaign", "c1", "--tenant", "Shop", "--stream", "news",
                                "--feedback-sender-id", "shop-mail")  # fmt: skip

    assert code == 0
    [envelope] = handler.received
    message = email.message_from_bytes(envelope.original_content)
    assert message["Feedback-ID"] == "c1:shop:news:shop-mail"
    assert message["List-Unsubscribe"] == "<https://example.test/u/1>"  # the message's own
    assert "List-Unsubscribe-Post" not in message


@pytest.mark.parametrize(
    ("recipients", "options", "problem"),
    [
        (["a@example.org", "b@example.org"], UNSUBSCRIBE, "exactly one --to .*not 2"),
        (["a@example.org"], UNSUBSCRIBE[:4], "both --unsubscribe-keys-file and --unsubscribe-url"),
        (["a@example.org"], UNSUBSCRIBE[2:], "need --campaign"),
        (["a@example.org"], ("--campaign", "a:b"), "Feedback-ID campaign 'a:b'"),
        (["a@example.org"], ("--campaign", "c", "--feedback-sender-id", "abc"), "5 to 15"),
        (["a@example.org"], (*UNSUBSCRIBE[:-4], "--unsubscribe-url", "http://u.test"), "https"),
    ],
)
def test_options_that_do_not_go_together_send_nothing_and_exit_2(
    tmp_path: Path,
    key: rsa.RSAPrivateKey,
    instance: tuple[Instance, int],
    recipients: list[str],
    options: tuple[str, ...],
    problem: str,
) -> None:
    handler, port = instance

    code, lines, err = submit(tmp_path, key, port, recipients, *options)

    assert (code, lines, handler.received) == (2, [], [])
    assert re.search(problem, err), err
    assert "nothing was sent" in err


def test_a_short_unsubscribe_key_is_refused_without_printing_it(
    tmp_path: Path, key: rsa.RSAPrivateKey, instance: tuple[Instance, int]
) -> None:
    short = tmp_path / "short.keys"
    short.write_text("ab" * 20 + "\n")
    options = [short.as_posix() if option == "KEYS" else option for option in UNSUBSCRIBE]

    code, _lines, err = submit(tmp_path, key, instance[1], ["a@example.org"], *options)

    assert code == 2
    assert f"{short}:1: the key is 20 bytes" in err and "ab" * 20 not in err


def test_the_signer_covers_the_unsubscribe_headers_when_signheaders_omits_them(
    tmp_path: Path, key: rsa.RSAPrivateKey
) -> None:
    from bulkmail.signer import Signer

    write_tables(tmp_path, key)
    conf = tmp_path / "opendkim.conf"
    conf.write_text(re.sub(r",List-Unsubscribe,List-Unsubscribe-Post,Feedback-ID", "",
                           conf.read_text()))  # fmt: skip
    message = MESSAGE.replace(b"\r\n\r\n", b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-"
                              b"Click\r\nFeedback-ID: a:b:c:sender1\r\n\r\n", 1)  # fmt: skip

    signed = Signer.from_conf(conf).sign(message)

    assert "List-Unsubscribe" not in conf.read_text()
    assert {b"list-unsubscribe", b"list-unsubscribe-post", b"feedback-id"} <= set(
        tags(signed)[b"h"].lower().split(b":")
    )
    assert dkim.verify(signed, dnsfunc=txt_for(key))
