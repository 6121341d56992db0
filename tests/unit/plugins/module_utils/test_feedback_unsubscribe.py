"""One-click unsubscribe: tokens a provider's POST proves itself with, the headers that carry
them, Feedback-ID, and the erased address's hash."""

from __future__ import annotations

import base64
import json

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.original import (
    parse_feedback_id,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.suppression import (
    address_hash,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.unsubscribe import (
    ONE_CLICK,
    TokenData,
    TokenError,
    UnsubscribeRow,
    feedback_id,
    make_token,
    parse_keys,
    read_token,
    replace_headers,
    row_from_record,
    spool_line,
    suppression_row,
    token_from_mailto_subject,
    token_from_path,
    unsubscribe_headers,
)

KEY = bytes(range(32))
OLD_KEY = b"\x01" * 32
DAY = 20730  # 2026-10-04


def test_a_token_reads_back_what_it_was_made_of() -> None:
    token = make_token(KEY, "Example.com", "John.Doe@Example.COM", "oct-offers", DAY)

    assert read_token([KEY], token) == TokenData("example.com", "john.doe@example.com",
                                                 "oct-offers", DAY)  # fmt: skip
    assert token.isascii() and "=" not in token and len(token) < 100


@pytest.mark.parametrize(
    "recipient",
    ['"odd, user"@example.com', "ü-ser@bücher.example", "a:b;c<d>%20@example.com", "x" * 200],
)
def test_any_address_survives_the_token(recipient: str) -> None:
    token = make_token(KEY, "t", recipient, "c", DAY)

    data = read_token([KEY], token)

    assert token_from_path(f"/u/{token}") == token  # URL-safe as it is
    assert data.recipient == suppression_row(data).address
    assert data.recipient.endswith(("example.com", "xn--bcher-kva.example")) or "x" * 200 in (
        data.recipient
    )


def test_the_first_key_signs_and_every_key_verifies() -> None:
    old = make_token(OLD_KEY, "t", "a@example.com", "c", DAY)
    new = make_token(KEY, "t", "a@example.com", "c", DAY)

    assert read_token([KEY, OLD_KEY], old).recipient == "a@example.com"
    assert read_token([KEY, OLD_KEY], new).recipient == "a@example.com"
    with pytest.raises(TokenError, match="bad signature"):
        read_token([KEY], old)  # the old key was dropped


def test_a_changed_token_is_refused_for_its_signature() -> None:
    token = make_token(KEY, "victim-tenant", "a@example.com", "c", DAY)
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[5] ^= 0x01  # one bit of the tenant
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()

    with pytest.raises(TokenError, match="bad signature"):
        read_token([KEY], forged)


@pytest.mark.parametrize("token", ["", "short", "has space", "a/b", "abcde", "é" * 40])
def test_what_is_not_a_token_says_so(token: str) -> None:
    with pytest.raises(TokenError, match="not a token"):
        read_token([KEY], token)


def test_an_unknown_version_is_refused_even_when_signed() -> None:
    import hashlib
    import hmac

    payload = bytes([9]) + DAY.to_bytes(2, "big") + b"\x01t\x01a\x01c"
    mac = hmac.new(KEY, payload, hashlib.sha256).digest()[:16]
    token = base64.urlsafe_b64encode(payload + mac).rstrip(b"=").decode()

    with pytest.raises(TokenError, match="unknown token version 9"):
        read_token([KEY], token)


def test_tokens_do_not_expire_unless_a_maximum_age_is_asked_for() -> None:
    token = make_token(KEY, "t", "a@example.com", "c", DAY)

    assert read_token([KEY], token).issued_day == DAY
    assert read_token([KEY], token, max_age_days=30, today=DAY + 30).issued_day == DAY
    with pytest.raises(TokenError, match="31 days old; at most 30"):
        read_token([KEY], token, max_age_days=30, today=DAY + 31)


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ((b"short", "t", "a@x", "c", DAY), "at least 32"),
        ((KEY, "", "a@x", "c", DAY), "tenant is empty"),
        ((KEY, "global", "a@x", "c", DAY), "every tenant"),
        ((KEY, "t", "a@x", "", DAY), "campaign is empty"),
        ((KEY, "t", "a@x", "c" * 256, DAY), "at most 255"),
        ((KEY, "t", "a@x", "c", -1), "between 0"),
        ((KEY, "t", "a@x", "c", 70000), "between 0"),
    ],
)
def test_a_token_that_cannot_be_made_says_why(arguments: tuple, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        make_token(*arguments)


def test_a_valid_token_gives_the_tenants_unsubscribe_row() -> None:
    data = read_token([KEY], make_token(KEY, "shop", "A@Example.com", "spring", DAY))

    row = suppression_row(data)

    assert row == UnsubscribeRow("shop", "a@example.com", "unsubscribe", "spring")
    assert row_from_record(json.loads(spool_line(row))) == row
    with pytest.raises(ValueError, match="not an unsubscribe record"):
        row_from_record({"tenant": "shop"})


def test_the_headers_carry_the_https_and_mailto_uris_and_one_click() -> None:
    headers = unsubscribe_headers(KEY, "shop", "a@example.com", "spring",
                                  "https://unsub.example.com/", "unsubscribe@Example.COM",
                                  DAY)  # fmt: skip

    [(name, value), post] = headers
    token = make_token(KEY, "shop", "a@example.com", "spring", DAY)
    assert name == "List-Unsubscribe"
    assert value == (
        f"<https://unsub.example.com/u/{token}>,\r\n"
        f" <mailto:unsubscribe@example.com?subject=unsubscribe-{token}>"
    )
    assert post == ("List-Unsubscribe-Post", ONE_CLICK)
    assert token_from_mailto_subject(f"Re: Unsubscribe-{token}") == token
    assert token_from_mailto_subject("hello") is None
    assert token_from_path(f"/mail/u/{token}?x=1") == token
    assert token_from_path("/healthz") is None


@pytest.mark.parametrize(
    ("url", "mailto", "problem"),
    [
        ("http://unsub.example.com", None, "https"),
        ("https://unsub.example.com/a b", None, "ASCII without spaces"),
        ("https://unsub.example.com", "a?b@example.com", "plain ASCII address"),
    ],
)
def test_bad_header_arguments_are_refused(url: str, mailto: str | None, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        unsubscribe_headers(KEY, "t", "a@example.com", "c", url, mailto, DAY)


def test_the_https_uri_alone_is_enough() -> None:
    [(_name, value), _post] = unsubscribe_headers(KEY, "t", "a@x.test", "c", "https://u.test",
                                                  None, DAY)  # fmt: skip
    assert value.startswith("<https://u.test/u/") and "mailto" not in value


def test_feedback_id_reads_back_field_by_field() -> None:
    value = feedback_id("spring", "shop", "bulk", "bulkmail")

    parsed = parse_feedback_id(value)

    assert value == "spring:shop:bulk:bulkmail"
    assert parsed is not None
    assert (parsed.campaign, parsed.tenant, parsed.stream, parsed.sender_id) == (
        "spring", "shop", "bulk", "bulkmail"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (("a:b", "t", "s", "sender1"), "campaign"),
        (("c", "", "s", "sender1"), "tenant"),
        (("c", "t", "s s", "sender1"), "stream"),
        (("c", "t", "s", "abcd"), "sender id 'abcd': 5 to 15"),
        (("c", "t", "s", "a" * 16), "5 to 15"),
        (("c" * 65, "t", "s", "sender1"), "1 to 64"),
    ],
)
def test_a_feedback_id_field_that_gmail_would_misread_is_refused(
    fields: tuple[str, str, str, str], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        feedback_id(*fields)


def test_headers_replace_their_namesakes_folded_lines_included() -> None:
    message = (
        b"From: a@example.com\r\nList-Unsubscribe: <https://old>,\r\n <mailto:old@x>\r\n"
        b"Subject: hi\r\nlist-unsubscribe-post: List-Unsubscribe=One-Click\r\n\r\nbody\r\n"
    )

    changed = replace_headers(
        message, [("List-Unsubscribe", "<https://new>,\r\n <mailto:new@x>"),
                  ("List-Unsubscribe-Post", ONE_CLICK)]
    )  # fmt: skip

    assert changed == (
        b"From: a@example.com\r\nSubject: hi\r\nList-Unsubscribe: <https://new>,\r\n"
        b" <mailto:new@x>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\nbody\r\n"
    )
    assert replace_headers(b"From: a\n\nbody\n", [("Feedback-ID", "a:b:c:sender")]) == (
        b"From: a\nFeedback-ID: a:b:c:sender\n\nbody\n"
    )


def test_keys_are_hex_or_base64_and_at_least_32_bytes() -> None:
    text = f"# signing key first\n{KEY.hex()}\n\n{base64.b64encode(OLD_KEY).decode()}  # old\n"

    assert parse_keys(text, "/etc/k") == [KEY, OLD_KEY]
    assert parse_keys(base64.urlsafe_b64encode(b"\xff" * 40).decode().rstrip("="), "k") == [
        b"\xff" * 40
    ]
    with pytest.raises(ValueError, match=r"^/etc/k:2: the key is 16 bytes") as error:
        parse_keys("\n" + "ab" * 16, "/etc/k")
    assert "ab" * 16 not in str(error.value)
    with pytest.raises(ValueError, match="neither hex nor base64"):
        parse_keys("not a key!", "/etc/k")
    with pytest.raises(ValueError, match="no key"):
        parse_keys("# empty\n", "/etc/k")


def test_an_erased_address_hashes_as_it_is_looked_up() -> None:
    hashed = address_hash(KEY, "<John@Example.COM>")

    assert hashed == address_hash(KEY, "john@example.com")
    assert hashed != address_hash(OLD_KEY, "john@example.com")
    assert hashed.startswith("hmac-sha256:") and hashed == hashed.lower()
    assert len(hashed) == len("hmac-sha256:") + 64
